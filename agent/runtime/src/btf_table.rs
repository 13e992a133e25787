//! A BTF blob (an object's `.BTF` or the kernel's `/sys/kernel/btf/vmlinux`)
//! read into a table of types by id, with names and member bit offsets: what
//! CO-RE relocation needs ([`super::core_relo`]). btf-rs takes about a second
//! for the kernel's BTF and aya-obj keeps its type walk private; this reader
//! takes one pass over the bytes (tens of milliseconds for vmlinux).

use super::error::{GadgetError, Result};

const BTF_MAGIC: u16 = 0xeb9f;

/// One member of a struct or union.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub name_off: u32,
    pub type_id: u32,
    /// Offset from the start of the struct, in bits.
    pub bit_offset: u32,
    /// Width of a bitfield in bits; 0 for a plain member.
    pub bitfield_size: u32,
}

/// One enumerator: its name and value (sign-extended for signed enums).
#[derive(Debug, Clone, Copy)]
pub struct Enumerator {
    pub name_off: u32,
    pub value: i64,
}

/// A BTF type, by kind (the kernel's `BTF_KIND_*`).
#[derive(Debug, Clone)]
pub enum Kind {
    Void,
    /// `size` in bytes; `bits_offset` non-zero only for deprecated bitfield ints.
    Int {
        size: u32,
        signed: bool,
        bits_offset: u32,
    },
    Ptr(u32),
    Array {
        elem: u32,
        len: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    Union {
        size: u32,
        members: Vec<Member>,
    },
    /// ENUM (4-byte values) and ENUM64 alike; `is64` tells them apart.
    Enum {
        size: u32,
        signed: bool,
        is64: bool,
        values: Vec<Enumerator>,
    },
    Fwd {
        is_union: bool,
    },
    Typedef(u32),
    Volatile(u32),
    Const(u32),
    Restrict(u32),
    #[allow(dead_code)] // parsed for completeness; no fix-up reads it yet
    Func(u32),
    FuncProto {
        ret: u32,
        params: Vec<u32>,
    },
    Var(u32),
    Datasec,
    Float {
        size: u32,
    },
    #[allow(dead_code)]
    DeclTag(u32),
    TypeTag(u32),
}

/// A named type.
#[derive(Debug, Clone)]
pub struct Type {
    pub name_off: u32,
    pub kind: Kind,
}

/// The types of one BTF blob, by id (id 0 is `void`).
///
/// Only the record offsets are indexed up front (4 bytes per type); a type
/// is decoded when asked for. The kernel's BTF (~150,000 types, ~6 MiB)
/// is indexed in a few milliseconds and costs its bytes plus the index, where
/// decoding every type took ~15 MiB of heap; CO-RE relocation looks at a
/// few hundred of them.
pub struct BtfTable {
    /// The whole blob, header included.
    bytes: Vec<u8>,
    /// Where the string section starts and ends in `bytes`.
    strings: std::ops::Range<usize>,
    /// Byte offset in `bytes` of each type's record, by id; id 0 (`void`)
    /// has none (0).
    offsets: Vec<u32>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| GadgetError::Btf(format!("truncated BTF at byte {at}")))
}

/// Bytes after a type's 12-byte header, by kind; an unknown kind is an
/// error naming it and the type id.
fn body_len(kind: u32, vlen: usize, id: usize) -> Result<usize> {
    Ok(match kind {
        1 => 4,
        2 | 7..=12 | 16 | 18 => 0,
        13 => 8 * vlen,
        3 => 12,
        4 | 5 => 12 * vlen,
        6 => 8 * vlen,
        14 | 17 => 4,
        15 | 19 => 12 * vlen,
        other => {
            return Err(GadgetError::Btf(format!(
                "unknown BTF kind {other} (type {id})"
            )));
        }
    })
}

impl BtfTable {
    /// Parses a little-endian BTF blob. Errors name the byte or kind at fault.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::parse_owned(bytes.to_vec())
    }

    /// Like [`BtfTable::parse`], keeping `bytes` without a copy (the
    /// kernel's BTF read from `/sys/kernel/btf/vmlinux`).
    pub fn parse_owned(bytes: Vec<u8>) -> Result<Self> {
        if bytes.len() < 24 || u16::from_le_bytes([bytes[0], bytes[1]]) != BTF_MAGIC {
            return Err(GadgetError::Btf("bad magic: not little-endian BTF".into()));
        }
        let hdr_len = u32_at(&bytes, 4)? as usize;
        let type_start = hdr_len + u32_at(&bytes, 8)? as usize;
        let type_end = type_start + u32_at(&bytes, 12)? as usize;
        let str_start = hdr_len + u32_at(&bytes, 16)? as usize;
        let str_end = str_start + u32_at(&bytes, 20)? as usize;
        if type_end > bytes.len() || str_end > bytes.len() {
            return Err(GadgetError::Btf("section lengths exceed the data".into()));
        }
        let t = &bytes[..type_end];
        // ~24 bytes per type on average in the kernel's BTF.
        let mut offsets = Vec::with_capacity(1 + (type_end - type_start) / 24);
        offsets.push(0);
        let mut at = type_start;
        while at < type_end {
            let info = u32_at(t, at + 4)?;
            u32_at(t, at + 8)?;
            let vlen = (info & 0xffff) as usize;
            let extra = body_len((info >> 24) & 0x1f, vlen, offsets.len())?;
            if at + 12 + extra > type_end {
                return Err(GadgetError::Btf(format!(
                    "truncated BTF at byte {} (type {})",
                    at + 12 + extra,
                    offsets.len()
                )));
            }
            offsets.push(at as u32);
            at += 12 + extra;
        }
        Ok(BtfTable {
            bytes,
            strings: str_start..str_end,
            offsets,
        })
    }

    /// Ids of the types of `kind`'s kind (ENUM and ENUM64 alike) whose
    /// name, without a `___flavor` suffix, is `name`: CO-RE's candidates,
    /// found from the record headers without decoding the types.
    pub fn ids_named(&self, kind: &Kind, name: &str) -> Vec<u32> {
        let want = kind_code(kind);
        let strings = &self.bytes[self.strings.clone()];
        let name = name.as_bytes();
        let header = |at: usize| {
            let word =
                |i: usize| u32::from_le_bytes(self.bytes[at + i..at + i + 4].try_into().unwrap());
            (word(0) as usize, word(4))
        };
        (1..self.offsets.len())
            .filter(|&id| {
                let (name_off, info) = header(self.offsets[id] as usize);
                let code = match (info >> 24) & 0x1f {
                    19 => 6,
                    c => c,
                };
                code == want
                    && strings.get(name_off..).is_some_and(|s| {
                        s.starts_with(name)
                            && matches!(&s[name.len()..], [0, ..] | [] | [b'_', b'_', b'_', ..])
                    })
            })
            .map(|id| id as u32)
            .collect()
    }

    /// Decodes the record at byte `at`.
    fn decode(&self, at: usize) -> Result<Type> {
        let t = &self.bytes[..];
        let name_off = u32_at(t, at)?;
        let info = u32_at(t, at + 4)?;
        let size_or_type = u32_at(t, at + 8)?;
        let vlen = (info & 0xffff) as usize;
        let kflag = info >> 31 == 1;
        let body = at + 12;
        let kind = match (info >> 24) & 0x1f {
            1 => {
                let enc = u32_at(t, body)?;
                Kind::Int {
                    size: size_or_type,
                    signed: (enc >> 24) & 1 == 1,
                    bits_offset: (enc >> 16) & 0xff,
                }
            }
            2 => Kind::Ptr(size_or_type),
            3 => Kind::Array {
                elem: u32_at(t, body)?,
                len: u32_at(t, body + 8)?,
            },
            k @ (4 | 5) => {
                let mut members = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let m = body + 12 * i;
                    let off = u32_at(t, m + 8)?;
                    let (bit_offset, bitfield_size) = if kflag {
                        (off & 0xff_ffff, off >> 24)
                    } else {
                        (off, 0)
                    };
                    members.push(Member {
                        name_off: u32_at(t, m)?,
                        type_id: u32_at(t, m + 4)?,
                        bit_offset,
                        bitfield_size,
                    });
                }
                if k == 4 {
                    Kind::Struct {
                        size: size_or_type,
                        members,
                    }
                } else {
                    Kind::Union {
                        size: size_or_type,
                        members,
                    }
                }
            }
            6 => {
                let mut values = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let raw = u32_at(t, body + 8 * i + 4)?;
                    values.push(Enumerator {
                        name_off: u32_at(t, body + 8 * i)?,
                        value: if kflag { raw as i32 as i64 } else { raw as i64 },
                    });
                }
                Kind::Enum {
                    size: size_or_type,
                    signed: kflag,
                    is64: false,
                    values,
                }
            }
            19 => {
                let mut values = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let lo = u32_at(t, body + 12 * i + 4)? as u64;
                    let hi = u32_at(t, body + 12 * i + 8)? as u64;
                    values.push(Enumerator {
                        name_off: u32_at(t, body + 12 * i)?,
                        value: ((hi << 32) | lo) as i64,
                    });
                }
                Kind::Enum {
                    size: size_or_type,
                    signed: kflag,
                    is64: true,
                    values,
                }
            }
            7 => Kind::Fwd { is_union: kflag },
            8 => Kind::Typedef(size_or_type),
            9 => Kind::Volatile(size_or_type),
            10 => Kind::Const(size_or_type),
            11 => Kind::Restrict(size_or_type),
            12 => Kind::Func(size_or_type),
            13 => {
                let mut params = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    params.push(u32_at(t, body + 8 * i + 4)?);
                }
                Kind::FuncProto {
                    ret: size_or_type,
                    params,
                }
            }
            14 => Kind::Var(size_or_type),
            15 => Kind::Datasec,
            16 => Kind::Float { size: size_or_type },
            17 => Kind::DeclTag(size_or_type),
            18 => Kind::TypeTag(size_or_type),
            other => {
                return Err(GadgetError::Btf(format!("unknown BTF kind {other}")));
            }
        };
        Ok(Type { name_off, kind })
    }

    /// Number of type ids, `void` included.
    #[allow(dead_code)]
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Always false: `void` is id 0.
    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The type with this id, decoded; an id past the end is an error naming it.
    pub fn get(&self, id: u32) -> Result<Type> {
        match self.offsets.get(id as usize) {
            Some(_) if id == 0 => Ok(Type {
                name_off: 0,
                kind: Kind::Void,
            }),
            Some(&at) => self.decode(at as usize),
            None => Err(GadgetError::Btf(format!("no BTF type with id {id}"))),
        }
    }

    /// Iterates over `(id, type)`, `void` excluded, decoding each (for small
    /// blobs; [`BtfTable::ids_where`] finds types by kind and name cheaply).
    pub fn iter(&self) -> impl Iterator<Item = (u32, Type)> + '_ {
        (1..self.offsets.len() as u32).filter_map(|id| self.get(id).ok().map(|t| (id, t)))
    }

    /// The string at `off` in the string section ("" when out of range or not UTF-8).
    pub fn str_at(&self, off: u32) -> &str {
        let strings = &self.bytes[self.strings.clone()];
        let start = (off as usize).min(strings.len());
        let rest = &strings[start..];
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// The name of type `id` ("" for anonymous types).
    pub fn name(&self, id: u32) -> &str {
        match self.offsets.get(id as usize) {
            Some(&at) if id != 0 => {
                let at = at as usize;
                self.str_at(u32::from_le_bytes(
                    self.bytes[at..at + 4].try_into().unwrap(),
                ))
            }
            _ => "",
        }
    }

    /// Follows typedefs, const/volatile/restrict and type tags to the type
    /// they name; returns its id.
    pub fn skip_mods_and_typedefs(&self, mut id: u32) -> Result<u32> {
        for _ in 0..64 {
            match self.get(id)?.kind {
                Kind::Typedef(next)
                | Kind::Volatile(next)
                | Kind::Const(next)
                | Kind::Restrict(next)
                | Kind::TypeTag(next) => id = next,
                _ => return Ok(id),
            }
        }
        Err(GadgetError::Btf(format!(
            "type {id}: modifier chain too long"
        )))
    }

    /// Size in bytes of type `id` (arrays: element size times length).
    pub fn size_of(&self, id: u32) -> Result<u64> {
        let mut id = id;
        let mut count = 1u64;
        for _ in 0..64 {
            id = self.skip_mods_and_typedefs(id)?;
            match &self.get(id)?.kind {
                Kind::Int { size, .. }
                | Kind::Struct { size, .. }
                | Kind::Union { size, .. }
                | Kind::Enum { size, .. }
                | Kind::Float { size } => return Ok(count * *size as u64),
                Kind::Ptr(_) => return Ok(count * 8),
                Kind::Array { elem, len } => {
                    count *= *len as u64;
                    id = *elem;
                }
                Kind::Var(t) => id = *t,
                other => {
                    return Err(GadgetError::Btf(format!(
                        "type {id} ({}) has no size",
                        kind_name(other)
                    )));
                }
            }
        }
        Err(GadgetError::Btf(format!("type {id}: nested too deep")))
    }
}

/// The kernel's `BTF_KIND_*` of a kind (ENUM for ENUM64 too).
fn kind_code(kind: &Kind) -> u32 {
    match kind {
        Kind::Void => 0,
        Kind::Int { .. } => 1,
        Kind::Ptr(_) => 2,
        Kind::Array { .. } => 3,
        Kind::Struct { .. } => 4,
        Kind::Union { .. } => 5,
        Kind::Enum { .. } => 6,
        Kind::Fwd { .. } => 7,
        Kind::Typedef(_) => 8,
        Kind::Volatile(_) => 9,
        Kind::Const(_) => 10,
        Kind::Restrict(_) => 11,
        Kind::Func(_) => 12,
        Kind::FuncProto { .. } => 13,
        Kind::Var(_) => 14,
        Kind::Datasec => 15,
        Kind::Float { .. } => 16,
        Kind::DeclTag(_) => 17,
        Kind::TypeTag(_) => 18,
    }
}

/// The kernel's name of a kind, for messages.
pub fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Void => "void",
        Kind::Int { .. } => "int",
        Kind::Ptr(_) => "ptr",
        Kind::Array { .. } => "array",
        Kind::Struct { .. } => "struct",
        Kind::Union { .. } => "union",
        Kind::Enum { is64: false, .. } => "enum",
        Kind::Enum { is64: true, .. } => "enum64",
        Kind::Fwd { .. } => "fwd",
        Kind::Typedef(_) => "typedef",
        Kind::Volatile(_) => "volatile",
        Kind::Const(_) => "const",
        Kind::Restrict(_) => "restrict",
        Kind::Func(_) => "func",
        Kind::FuncProto { .. } => "func_proto",
        Kind::Var(_) => "var",
        Kind::Datasec => "datasec",
        Kind::Float { .. } => "float",
        Kind::DeclTag(_) => "decl_tag",
        Kind::TypeTag(_) => "type_tag",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob of `types` (each: name offset, info, size/type, body
    /// words) over `strings`.
    fn blob(types: &[(u32, u32, u32, &[u32])], strings: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        for (name, info, size, body) in types {
            for w in [*name, *info, *size].iter().chain(body.iter()) {
                t.extend_from_slice(&w.to_le_bytes());
            }
        }
        let mut b = Vec::new();
        b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(strings);
        b
    }

    const STRINGS: &[u8] = b"\0foo___v1\0foo\0fo\0bar\0x\0";
    const FOO_V1: u32 = 1;
    const FOO: u32 = 10;
    const FO: u32 = 14;
    const BAR: u32 = 17;
    const X: u32 = 21;

    fn table() -> BtfTable {
        let st = |vlen: u32| (4 << 24) | vlen;
        BtfTable::parse(&blob(
            &[
                // 1: int (4 bytes, signed)
                (0, 1 << 24, 4, &[(1 << 24) | 32]),
                // 2: struct foo___v1 { int x; }
                (FOO_V1, st(1), 4, &[X, 1, 0]),
                // 3: struct foo {}
                (FOO, st(0), 0, &[]),
                // 4: union foo {}
                (FOO, 5 << 24, 0, &[]),
                // 5: struct fo {}
                (FO, st(0), 0, &[]),
                // 6: enum64 bar { x = 2^32 }
                (BAR, (19 << 24) | 1, 8, &[X, 0, 1]),
            ],
            STRINGS,
        ))
        .unwrap()
    }

    #[test]
    fn candidates_are_found_by_kind_and_name_without_the_flavor() {
        let t = table();
        let strukt = Kind::Struct {
            size: 0,
            members: Vec::new(),
        };
        assert_eq!(t.ids_named(&strukt, "foo"), [2, 3]);
        assert_eq!(t.ids_named(&strukt, "fo"), [5]);
        assert_eq!(
            t.ids_named(
                &Kind::Union {
                    size: 0,
                    members: Vec::new()
                },
                "foo"
            ),
            [4]
        );
        // ENUM and ENUM64 are one kind for CO-RE.
        let enum32 = Kind::Enum {
            size: 4,
            signed: false,
            is64: false,
            values: Vec::new(),
        };
        assert_eq!(t.ids_named(&enum32, "bar"), [6]);
        assert!(t.ids_named(&strukt, "ba").is_empty());
    }

    #[test]
    fn types_decode_on_demand() {
        let t = table();
        assert_eq!(t.len(), 7);
        assert_eq!(t.name(2), "foo___v1");
        assert_eq!(t.name(0), "");
        let Kind::Struct { size: 4, members } = t.get(2).unwrap().kind else {
            panic!("not the struct");
        };
        assert_eq!(t.str_at(members[0].name_off), "x");
        assert_eq!(members[0].type_id, 1);
        let Kind::Enum {
            is64: true, values, ..
        } = t.get(6).unwrap().kind
        else {
            panic!("not the enum64");
        };
        assert_eq!(values[0].value, 1 << 32);
        assert_eq!(t.size_of(2).unwrap(), 4);
        assert_eq!(
            t.get(7).unwrap_err().to_string(),
            GadgetError::Btf("no BTF type with id 7".into()).to_string()
        );
    }

    #[test]
    fn a_truncated_or_unknown_record_is_an_error_naming_it() {
        let cut = blob(&[(FOO, (4 << 24) | 2, 8, &[X, 1, 0])], STRINGS);
        let err = BtfTable::parse(&cut).err().unwrap().to_string();
        assert!(
            err.contains("truncated BTF") && err.contains("type 1"),
            "{err}"
        );
        let unknown = blob(&[(FOO, 31 << 24, 0, &[])], STRINGS);
        let err = BtfTable::parse(&unknown).err().unwrap().to_string();
        assert!(err.contains("unknown BTF kind 31 (type 1)"), "{err}");
    }
}
