//! Gadget parameters: every `const volatile` global not named `gadget_*`.
//! Types and defaults come from BTF and `.rodata`; descriptions and allowed
//! values may come from the definition file.

use btf_rs::{BtfType, Type};
use serde::Serialize;

use super::definition::Definition;
use super::error::{GadgetError, Result};
use super::object::{GadgetObject, name_of};

/// One parameter of a gadget: a `const volatile` global in `.rodata`
/// (seed) or one named by a `GADGET_PARAM` marker (IG), set before loading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamSpec {
    /// The flag name (`--NAME`): the definition's `name`, else the variable's.
    pub name: String,
    /// The `const volatile` variable it sets.
    pub key: String,
    /// Its C type, which decides what values parse.
    pub kind: ParamKind,
    /// The default, as a user would type it.
    pub default: String,
    /// From the definition file; empty when it has none.
    pub description: String,
    /// The only values accepted (definition `possibleValues`, or an enum's
    /// names); empty: any value of the type.
    pub possible_values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
/// The C type of a parameter (serialized with a `type` tag).
pub enum ParamKind {
    /// An integer of `size` bytes (1, 2, 4 or 8).
    Int {
        /// Bytes.
        size: usize,
        /// Whether negative values are accepted.
        signed: bool,
    },
    /// A C `bool`: `true`/`false` (also `1`/`0`, `yes`/`no`).
    Bool,
    /// A `char[len]`: at most `len - 1` bytes, NUL-terminated.
    String {
        /// Bytes of the array, the NUL included.
        len: usize,
    },
    /// A C enum of `size` bytes: a value by name or number.
    Enum {
        /// Bytes.
        size: usize,
        /// (value, name) of every enumerator.
        names: Vec<(i64, String)>,
    },
}

fn btf_err(e: impl std::fmt::Display) -> GadgetError {
    GadgetError::Btf(e.to_string())
}

/// Parameters of an object, in declaration order of `.rodata`.
pub fn specs(obj: &GadgetObject, def: &Definition) -> Result<Vec<ParamSpec>> {
    let mut vars: Vec<_> = obj
        .rodata
        .values()
        .filter(|v| !v.name.starts_with("gadget_"))
        .collect();
    vars.sort_by_key(|v| v.offset);
    let mut out = Vec::new();
    for var in vars {
        let kind = param_kind(obj, var.type_id, &var.name)?;
        let raw = obj
            .rodata_bytes
            .get(var.offset..var.offset + var.size)
            .unwrap_or(&[]);
        let default = format_value(&kind, raw);
        let pdef = def.param(&var.name);
        let mut possible_values = pdef.map(|p| p.possible_values.clone()).unwrap_or_default();
        if let ParamKind::Enum { names, .. } = &kind
            && possible_values.is_empty()
        {
            possible_values = names.iter().map(|(_, n)| n.clone()).collect();
        }
        out.push(ParamSpec {
            name: pdef
                .and_then(|p| p.name.clone())
                .unwrap_or_else(|| var.name.clone()),
            key: var.name.clone(),
            default: pdef.and_then(|p| p.default.clone()).unwrap_or(default),
            description: pdef.and_then(|p| p.description.clone()).unwrap_or_default(),
            possible_values,
            kind,
        });
    }
    Ok(out)
}

fn param_kind(obj: &GadgetObject, type_id: u32, name: &str) -> Result<ParamKind> {
    let mut ty = obj.btf.resolve_type_by_id(type_id).map_err(btf_err)?;
    loop {
        ty = match &ty {
            Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                obj.btf.resolve_chained_type(t).map_err(btf_err)?
            }
            Type::Typedef(t) => obj.btf.resolve_chained_type(t).map_err(btf_err)?,
            Type::Int(i) if i.is_bool() => return Ok(ParamKind::Bool),
            Type::Int(i) => {
                return Ok(ParamKind::Int {
                    size: i.size(),
                    signed: i.is_signed(),
                });
            }
            Type::Enum(e) => {
                return Ok(ParamKind::Enum {
                    size: e.size(),
                    names: e
                        .members
                        .iter()
                        .map(|m| (m.val() as i32 as i64, name_of(&obj.btf, m)))
                        .collect(),
                });
            }
            Type::Array(a) => {
                let mut elem = obj
                    .btf
                    .resolve_type_by_id(a.get_type_id().unwrap_or(0))
                    .map_err(btf_err)?;
                // `const volatile char x[N]`: the qualifiers sit on the element type.
                loop {
                    elem = match &elem {
                        Type::Const(t) | Type::Volatile(t) => {
                            obj.btf.resolve_chained_type(t).map_err(btf_err)?
                        }
                        Type::Typedef(t) => obj.btf.resolve_chained_type(t).map_err(btf_err)?,
                        _ => break,
                    };
                }
                return match elem {
                    Type::Int(i) if i.size() == 1 => Ok(ParamKind::String { len: a.len() }),
                    _ => Err(GadgetError::Param {
                        name: name.into(),
                        reason: "only char arrays can be array parameters".into(),
                    }),
                };
            }
            other => {
                return Err(GadgetError::Param {
                    name: name.into(),
                    reason: format!("type `{}` cannot be a parameter", other.name()),
                });
            }
        }
    }
}

fn format_value(kind: &ParamKind, raw: &[u8]) -> String {
    let int = |size: usize, signed: bool| -> i128 {
        let mut b = [0u8; 8];
        let n = size.min(raw.len()).min(8);
        b[..n].copy_from_slice(&raw[..n]);
        let u = u64::from_le_bytes(b);
        if signed && size < 8 && size > 0 {
            let shift = 64 - size * 8;
            (((u << shift) as i64) >> shift) as i128
        } else if signed {
            u as i64 as i128
        } else {
            u as i128
        }
    };
    match kind {
        ParamKind::Bool => (raw.first().copied().unwrap_or(0) != 0).to_string(),
        ParamKind::Int { size, signed } => int(*size, *signed).to_string(),
        ParamKind::String { .. } => {
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        }
        ParamKind::Enum { size, names } => {
            let v = int(*size, true) as i64;
            names
                .iter()
                .find(|(n, _)| *n == v)
                .map_or(v.to_string(), |(_, n)| n.clone())
        }
    }
}

/// Encodes a user-supplied value for `.rodata`, validating it.
pub fn encode(spec: &ParamSpec, value: &str) -> Result<Vec<u8>> {
    let bad = |reason: String| GadgetError::Param {
        name: spec.name.clone(),
        reason,
    };
    if !spec.possible_values.is_empty() && !spec.possible_values.iter().any(|v| v == value) {
        return Err(bad(format!(
            "`{value}` is not one of {}",
            spec.possible_values.join(", ")
        )));
    }
    match &spec.kind {
        ParamKind::Bool => match value {
            "true" | "1" | "yes" => Ok(vec![1]),
            "false" | "0" | "no" => Ok(vec![0]),
            _ => Err(bad(format!("`{value}` is not a boolean (true or false)"))),
        },
        ParamKind::Int { size, signed } => encode_int(value, *size, *signed).map_err(bad),
        ParamKind::String { len } => {
            if value.len() >= *len {
                return Err(bad(format!("`{value}` is longer than {} bytes", len - 1)));
            }
            let mut out = value.as_bytes().to_vec();
            out.resize(*len, 0);
            Ok(out)
        }
        ParamKind::Enum { size, names } => {
            let v = match names.iter().find(|(_, n)| n == value) {
                Some((v, _)) => *v,
                None => value
                    .parse()
                    .map_err(|_| bad(format!("`{value}` is not a value of this enum")))?,
            };
            Ok(v.to_le_bytes()[..*size].to_vec())
        }
    }
}

fn encode_int(value: &str, size: usize, signed: bool) -> std::result::Result<Vec<u8>, String> {
    let bits = size * 8;
    let parsed: i128 = if let Some(hex) = value.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).map_err(|_| format!("`{value}` is not an integer"))?
    } else {
        value
            .parse()
            .map_err(|_| format!("`{value}` is not an integer"))?
    };
    let (min, max) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    if parsed < min || parsed > max {
        return Err(format!("`{value}` is out of range {min}..={max}"));
    }
    Ok((parsed as i64).to_le_bytes()[..size].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ParamKind) -> ParamSpec {
        ParamSpec {
            name: "p".into(),
            key: "p".into(),
            kind,
            default: String::new(),
            description: String::new(),
            possible_values: vec![],
        }
    }

    #[test]
    fn encodes_and_validates() {
        let int = spec(ParamKind::Int {
            size: 4,
            signed: true,
        });
        assert_eq!(encode(&int, "-2").unwrap(), (-2i32).to_le_bytes());
        assert!(
            encode(&int, "abc")
                .unwrap_err()
                .to_string()
                .contains("not an integer")
        );
        assert!(
            encode(
                &spec(ParamKind::Int {
                    size: 1,
                    signed: false
                }),
                "256"
            )
            .is_err()
        );
        assert_eq!(encode(&spec(ParamKind::Bool), "true").unwrap(), vec![1]);
        assert!(encode(&spec(ParamKind::Bool), "maybe").is_err());
        assert_eq!(
            encode(&spec(ParamKind::String { len: 4 }), "ab").unwrap(),
            b"ab\0\0"
        );
        assert!(encode(&spec(ParamKind::String { len: 4 }), "abcd").is_err());
        assert_eq!(
            format_value(
                &ParamKind::Int {
                    size: 4,
                    signed: true
                },
                &(-7i32).to_le_bytes()
            ),
            "-7"
        );
    }
}
