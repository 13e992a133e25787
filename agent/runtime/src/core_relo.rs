//! CO-RE relocations that aya-obj 0.3 resolves wrongly or not at all,
//! resolved here against the running kernel's BTF before aya sees the object.
//!
//! | case | aya-obj 0.3 | here |
//! |---|---|---|
//! | a flexible-array member, `ctx->args[1]` of `struct syscall_trace_enter` (access `0:2:1`) or `bpf_raw_tracepoint_args.args[1]` (`0:0:1`) | `invalid access string … array index out of bounds`: it compares the array subscript, not the member index, with the last member | resolved as libbpf does: a zero-length array that is a struct's last member takes any subscript |
//! | kind 12, `bpf_core_type_matches()` | `invalid BTF relocation kind 12`: the whole object fails to parse | resolved with libbpf's type-match rules |
//! | a relocation no kernel type satisfies | the instruction is silently poisoned; the verifier says `invalid func unknown#195896080` | when the verifier reaches it, [`explain_poison`] names the program, instruction, type and access string ([`unresolved`]); ours are poisoned with [`POISON_BASE`] + their number |
//!
//! Every other relocation is left to aya. What we resolve is patched into
//! the program's instructions and removed from `.BTF.ext` (the section is
//! rewritten at the end of the ELF), so aya never sees it.
//!
//! **When aya is upgraded** (aya 0.15+ needs rustc 1.98): its relocation code
//! handles flexible arrays and kind 12; run the tests in
//! `tests/tests/loader.rs` with [`fix_up`] disabled, and if they pass, delete
//! this module and [`super::btf_table`] and the call in `load.rs`; keep
//! [`explain_poison`]'s message if aya's still says `unknown#195896080`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use super::btf_table::{BtfTable, Kind, kind_name};
use super::error::{GadgetError, Result};

/// Poisoned instructions become `call POISON_BASE + n` for relocation `n`
/// (0-based, in `.BTF.ext` order); the verifier prints `unknown#<that>`.
pub const POISON_BASE: i32 = 0x0bad_0000;
const MAX_ACCESS_LEN: usize = 64;

const FIELD_BYTE_OFFSET: u32 = 0;
const FIELD_BYTE_SIZE: u32 = 1;
const FIELD_EXISTS: u32 = 2;
const FIELD_SIGNED: u32 = 3;
const FIELD_LSHIFT_U64: u32 = 4;
const FIELD_RSHIFT_U64: u32 = 5;
const TYPE_ID_LOCAL: u32 = 6;
const TYPE_ID_TARGET: u32 = 7;
const TYPE_EXISTS: u32 = 8;
const TYPE_SIZE: u32 = 9;
const ENUMVAL_EXISTS: u32 = 10;
const ENUMVAL_VALUE: u32 = 11;
const TYPE_MATCHES: u32 = 12;

/// libbpf's names of the relocation kinds, for messages.
fn kind_label(kind: u32) -> &'static str {
    [
        "field byte offset",
        "field byte size",
        "field exists",
        "field signed",
        "field lshift u64",
        "field rshift u64",
        "local type id",
        "target type id",
        "type exists",
        "type size",
        "enum value exists",
        "enum value",
        "type matches",
    ]
    .get(kind as usize)
    .copied()
    .unwrap_or("unknown kind")
}

/// One record of `.BTF.ext`'s CO-RE relocation table.
#[derive(Debug, Clone)]
pub struct CoreRelo {
    /// 0-based position in `.BTF.ext` (the `n` of the poison marker).
    pub number: usize,
    /// The ELF section of the instruction.
    pub section: String,
    /// Byte offset of the instruction in its section.
    pub insn_off: u32,
    /// Local BTF id of the root type.
    pub type_id: u32,
    /// The access string, `0:2:1`.
    pub access: String,
    /// `bpf_core_relo_kind`: 0..=12.
    pub kind: u32,
    sec_name_off: u32,
    access_off: u32,
}

/// The parts of `.BTF.ext` CO-RE relocation needs.
struct BtfExt {
    relos: Vec<CoreRelo>,
    rec_size: usize,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| GadgetError::Btf(format!("truncated .BTF.ext at byte {at}")))
}

fn parse_btf_ext(ext: &[u8], local: &BtfTable) -> Result<BtfExt> {
    let hdr_len = u32_at(ext, 4)? as usize;
    if hdr_len < 32 {
        return Ok(BtfExt {
            relos: Vec::new(),
            rec_size: 16,
        });
    }
    let start = hdr_len + u32_at(ext, 24)? as usize;
    let end = start + u32_at(ext, 28)? as usize;
    if end > ext.len() {
        return Err(GadgetError::Btf(
            ".BTF.ext: the CO-RE relocation table runs past the section".into(),
        ));
    }
    let mut relos = Vec::new();
    if start == end {
        return Ok(BtfExt {
            relos,
            rec_size: 16,
        });
    }
    let rec_size = u32_at(ext, start)? as usize;
    if rec_size < 16 {
        return Err(GadgetError::Btf(format!(
            ".BTF.ext: CO-RE record size {rec_size} is below 16 bytes"
        )));
    }
    let mut at = start + 4;
    while at < end {
        let sec_name_off = u32_at(ext, at)?;
        let count = u32_at(ext, at + 4)? as usize;
        at += 8;
        let section = local.str_at(sec_name_off).to_string();
        for _ in 0..count {
            let access_off = u32_at(ext, at + 8)?;
            relos.push(CoreRelo {
                number: relos.len(),
                section: section.clone(),
                insn_off: u32_at(ext, at)?,
                type_id: u32_at(ext, at + 4)?,
                access: local.str_at(access_off).to_string(),
                kind: u32_at(ext, at + 12)?,
                sec_name_off,
                access_off,
            });
            at += rec_size;
        }
    }
    Ok(BtfExt { relos, rec_size })
}

/// One step of an access path: a member (named) or an array subscript.
#[derive(Debug, Clone)]
struct Accessor<'a> {
    /// The struct/union (member) or the element type (subscript).
    type_id: u32,
    idx: u32,
    name: Option<&'a str>,
}

/// An access string resolved in one BTF (libbpf's `bpf_core_spec`).
struct Spec<'a> {
    btf: &'a BtfTable,
    root: u32,
    accessors: Vec<Accessor<'a>>,
    bit_offset: u64,
    /// A zero-length trailing array was subscripted (aya-obj 0.3 rejects these).
    flex: bool,
    /// The path in C terms, `syscall_trace_enter.args[2]`.
    path: String,
}

fn essential(name: &str) -> &str {
    name.split_once("___").map_or(name, |(base, _)| base)
}

fn is_composite(k: &Kind) -> bool {
    matches!(k, Kind::Struct { .. } | Kind::Union { .. })
}

fn members(k: &Kind) -> &[super::btf_table::Member] {
    match k {
        Kind::Struct { members, .. } | Kind::Union { members, .. } => members,
        _ => &[],
    }
}

/// libbpf's `is_flex_arr`: a zero-length array that is the last member.
fn is_flex(btf: &BtfTable, parent: Option<&Accessor<'_>>, len: u32) -> bool {
    let Some(parent) = parent.filter(|p| p.name.is_some()) else {
        return false;
    };
    len == 0
        && btf
            .get(parent.type_id)
            .is_ok_and(|t| parent.idx as usize + 1 == members(&t.kind).len())
}

fn parse_indices(access: &str) -> std::result::Result<Vec<u32>, String> {
    let parts: std::result::Result<Vec<u32>, _> = access.split(':').map(str::parse).collect();
    match parts {
        Ok(p) if !p.is_empty() && p.len() <= MAX_ACCESS_LEN => Ok(p),
        _ => Err(format!("malformed access string `{access}`")),
    }
}

/// Parses the local access string (libbpf's `bpf_core_parse_spec`).
fn local_spec<'a>(btf: &'a BtfTable, relo: &CoreRelo) -> std::result::Result<Spec<'a>, String> {
    let idx = parse_indices(&relo.access)?;
    let root_name = btf.name(relo.type_id);
    let mut spec = Spec {
        btf,
        root: relo.type_id,
        accessors: Vec::new(),
        bit_offset: 0,
        flex: false,
        path: root_name.to_string(),
    };
    let b = |e: GadgetError| e.to_string();
    match relo.kind {
        TYPE_ID_LOCAL | TYPE_ID_TARGET | TYPE_EXISTS | TYPE_SIZE | TYPE_MATCHES => {
            if idx != [0] {
                return Err(format!(
                    "type relocation with access string `{}`",
                    relo.access
                ));
            }
            return Ok(spec);
        }
        ENUMVAL_EXISTS | ENUMVAL_VALUE => {
            let id = btf.skip_mods_and_typedefs(relo.type_id).map_err(b)?;
            let Kind::Enum { values, .. } = &btf.get(id).map_err(b)?.kind else {
                return Err(format!(
                    "enum relocation on `{root_name}`, which is no enum"
                ));
            };
            let [i] = idx[..] else {
                return Err(format!(
                    "enum relocation with access string `{}`",
                    relo.access
                ));
            };
            let e = values
                .get(i as usize)
                .ok_or_else(|| format!("`{root_name}` has no enumerator #{i}"))?;
            let name = btf.str_at(e.name_off);
            spec.path = format!("{root_name}::{name}");
            spec.accessors.push(Accessor {
                type_id: id,
                idx: i,
                name: Some(name),
            });
            return Ok(spec);
        }
        FIELD_BYTE_OFFSET..=FIELD_RSHIFT_U64 => {}
        other => return Err(format!("unknown CO-RE relocation kind {other}")),
    }
    let mut id = btf.skip_mods_and_typedefs(relo.type_id).map_err(b)?;
    spec.accessors.push(Accessor {
        type_id: id,
        idx: idx[0],
        name: None,
    });
    spec.bit_offset = idx[0] as u64 * btf.size_of(id).map_err(b)? * 8;
    if idx[0] != 0 {
        spec.path = format!("{root_name}[{}]", idx[0]);
    }
    for &i in &idx[1..] {
        id = btf.skip_mods_and_typedefs(id).map_err(b)?;
        let ty = &btf.get(id).map_err(b)?.kind;
        if is_composite(ty) {
            let m = members(ty)
                .get(i as usize)
                .ok_or_else(|| format!("`{}` has no member #{i}", btf.name(id)))?;
            spec.bit_offset += m.bit_offset as u64;
            let name = btf.str_at(m.name_off);
            if !name.is_empty() {
                spec.path.push('.');
                spec.path.push_str(name);
                spec.accessors.push(Accessor {
                    type_id: id,
                    idx: i,
                    name: Some(name),
                });
            }
            id = m.type_id;
        } else if let Kind::Array { elem, len } = *ty {
            let flex = is_flex(btf, spec.accessors.last(), len);
            if !flex && i >= len {
                return Err(format!(
                    "subscript {i} past the end of `{}` ({len} elements)",
                    spec.path
                ));
            }
            spec.flex |= flex;
            id = btf.skip_mods_and_typedefs(elem).map_err(b)?;
            spec.accessors.push(Accessor {
                type_id: id,
                idx: i,
                name: None,
            });
            spec.bit_offset += i as u64 * btf.size_of(id).map_err(b)? * 8;
            spec.path.push_str(&format!("[{i}]"));
        } else {
            return Err(format!(
                "access `{}` steps into a {}, which has no members",
                relo.access,
                kind_name(ty)
            ));
        }
    }
    Ok(spec)
}

/// libbpf's `bpf_core_fields_are_compat`.
fn fields_compat(l: &BtfTable, lid: u32, t: &BtfTable, tid: u32, depth: u32) -> Result<bool> {
    if depth > 32 {
        return Ok(false);
    }
    let lid = l.skip_mods_and_typedefs(lid)?;
    let tid = t.skip_mods_and_typedefs(tid)?;
    let (lk, tk) = (&l.get(lid)?.kind, &t.get(tid)?.kind);
    if is_composite(lk) && is_composite(tk) {
        return Ok(true);
    }
    Ok(match (lk, tk) {
        (Kind::Ptr(_), Kind::Ptr(_)) | (Kind::Float { .. }, Kind::Float { .. }) => true,
        (Kind::Fwd { .. }, Kind::Fwd { .. }) | (Kind::Enum { .. }, Kind::Enum { .. }) => {
            essential(l.name(lid)) == essential(t.name(tid))
        }
        (Kind::Int { bits_offset: a, .. }, Kind::Int { bits_offset: b, .. }) => *a == 0 && *b == 0,
        (Kind::Array { elem: le, .. }, Kind::Array { elem: te, .. }) => {
            fields_compat(l, *le, t, *te, depth + 1)?
        }
        _ => false,
    })
}

/// libbpf's `bpf_core_types_are_compat` (TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE).
fn types_compat(l: &BtfTable, lid: u32, t: &BtfTable, tid: u32, depth: u32) -> Result<bool> {
    if depth > 32 {
        return Ok(false);
    }
    let lid = l.skip_mods_and_typedefs(lid)?;
    let tid = t.skip_mods_and_typedefs(tid)?;
    Ok(match (&l.get(lid)?.kind, &t.get(tid)?.kind) {
        (Kind::Void, Kind::Void)
        | (Kind::Struct { .. }, Kind::Struct { .. })
        | (Kind::Union { .. }, Kind::Union { .. })
        | (Kind::Enum { .. }, Kind::Enum { .. })
        | (Kind::Fwd { .. }, Kind::Fwd { .. }) => true,
        (Kind::Int { bits_offset: a, .. }, Kind::Int { bits_offset: b, .. }) => *a == 0 && *b == 0,
        (Kind::Float { .. }, Kind::Float { .. }) => true,
        (Kind::Ptr(a), Kind::Ptr(b)) => types_compat(l, *a, t, *b, depth + 1)?,
        (Kind::Array { elem: a, .. }, Kind::Array { elem: b, .. }) => {
            types_compat(l, *a, t, *b, depth + 1)?
        }
        (
            Kind::FuncProto {
                ret: lr,
                params: lp,
            },
            Kind::FuncProto {
                ret: tr,
                params: tp,
            },
        ) => {
            lp.len() == tp.len()
                && types_compat(l, *lr, t, *tr, depth + 1)?
                && lp.iter().zip(tp).try_fold(true, |ok, (a, b)| {
                    Ok::<_, GadgetError>(ok && types_compat(l, *a, t, *b, depth + 1)?)
                })?
        }
        _ => false,
    })
}

/// libbpf's `__bpf_core_types_match` (kind 12, `bpf_core_type_matches()`):
/// after typedefs and modifiers, names match (a local `___flavor` aside);
/// ints of the same width and signedness (so clang's signed `char` does not
/// match the kernel's unsigned-encoded one); arrays of the same length;
/// every local struct member present in the target with a matching type;
/// every local enumerator present, enums of the same size; behind a
/// pointer, structs match by name and kind alone (or a forward declaration).
fn types_match(
    l: &BtfTable,
    lid: u32,
    t: &BtfTable,
    tid: u32,
    behind_ptr: bool,
    depth: u32,
) -> Result<bool> {
    if depth > 32 {
        return Ok(false);
    }
    let lid = l.skip_mods_and_typedefs(lid)?;
    let tid = t.skip_mods_and_typedefs(tid)?;
    let (lk, tk) = (&l.get(lid)?.kind, &t.get(tid)?.kind);
    let local_name = l.name(lid);
    if !local_name.is_empty() && essential(local_name) != t.name(tid) {
        return Ok(false);
    }
    Ok(match (lk, tk) {
        (Kind::Void, Kind::Void) => true,
        (Kind::Fwd { is_union: a }, Kind::Fwd { is_union: b }) => a == b,
        (Kind::Fwd { is_union }, Kind::Struct { .. }) if behind_ptr => !is_union,
        (Kind::Fwd { is_union }, Kind::Union { .. }) if behind_ptr => *is_union,
        (Kind::Struct { .. }, Kind::Struct { .. }) | (Kind::Union { .. }, Kind::Union { .. })
            if behind_ptr =>
        {
            true
        }
        (Kind::Struct { .. }, Kind::Fwd { is_union }) if behind_ptr => !is_union,
        (Kind::Union { .. }, Kind::Fwd { is_union }) if behind_ptr => *is_union,
        (
            Kind::Enum {
                size: ls,
                values: lv,
                ..
            },
            Kind::Enum {
                size: ts,
                values: tv,
                ..
            },
        ) => {
            ls == ts
                && lv.iter().all(|le| {
                    let n = essential(l.str_at(le.name_off));
                    tv.iter().any(|te| t.str_at(te.name_off) == n)
                })
        }
        (Kind::Struct { members: lm, .. }, Kind::Struct { members: tm, .. })
        | (Kind::Union { members: lm, .. }, Kind::Union { members: tm, .. }) => {
            if lm.len() > tm.len() {
                return Ok(false);
            }
            for m in lm {
                let name = essential(l.str_at(m.name_off));
                let mut matched = false;
                for x in tm.iter().filter(|x| t.str_at(x.name_off) == name) {
                    if types_match(l, m.type_id, t, x.type_id, behind_ptr, depth + 1)? {
                        matched = true;
                        break;
                    }
                }
                if !matched {
                    return Ok(false);
                }
            }
            true
        }
        (
            Kind::Int {
                size: ls,
                signed: lsg,
                ..
            },
            Kind::Int {
                size: ts,
                signed: tsg,
                ..
            },
        ) => ls == ts && lsg == tsg,
        (Kind::Ptr(a), Kind::Ptr(b)) => types_match(l, *a, t, *b, true, depth + 1)?,
        (Kind::Array { elem: le, len: ll }, Kind::Array { elem: te, len: tl }) => {
            ll == tl && types_match(l, *le, t, *te, behind_ptr, depth + 1)?
        }
        (
            Kind::FuncProto {
                ret: lr,
                params: lp,
            },
            Kind::FuncProto {
                ret: tr,
                params: tp,
            },
        ) => {
            if lp.len() != tp.len() {
                return Ok(false);
            }
            for (a, b) in lp.iter().zip(tp) {
                if !types_match(l, *a, t, *b, behind_ptr, depth + 1)? {
                    return Ok(false);
                }
            }
            types_match(l, *lr, t, *tr, behind_ptr, depth + 1)?
        }
        _ => false,
    })
}

/// libbpf's `bpf_core_match_member`: finds the local member named by `acc`
/// in target type `tid`, descending into anonymous members; on success the
/// member is appended to `spec` and its type id returned.
fn match_member<'t>(
    l: &BtfTable,
    acc: &Accessor<'_>,
    t: &'t BtfTable,
    tid: u32,
    spec: &mut Spec<'t>,
    depth: u32,
) -> Result<Option<u32>> {
    if depth > 32 {
        return Ok(None);
    }
    let local_member = members(&l.get(acc.type_id)?.kind)[acc.idx as usize];
    let local_name = l.str_at(local_member.name_off);
    let tid = t.skip_mods_and_typedefs(tid)?;
    let tk = &t.get(tid)?.kind;
    if !is_composite(tk) {
        return Ok(None);
    }
    for (i, m) in members(tk).iter().enumerate() {
        spec.bit_offset += m.bit_offset as u64;
        let name = t.str_at(m.name_off);
        if name.is_empty() {
            if let Some(found) = match_member(l, acc, t, m.type_id, spec, depth + 1)? {
                return Ok(Some(found));
            }
        } else if name == local_name {
            if fields_compat(l, local_member.type_id, t, m.type_id, 0)? {
                spec.accessors.push(Accessor {
                    type_id: tid,
                    idx: i as u32,
                    name: Some(name),
                });
                return Ok(Some(m.type_id));
            }
            spec.bit_offset -= m.bit_offset as u64;
            return Ok(None);
        }
        spec.bit_offset -= m.bit_offset as u64;
    }
    Ok(None)
}

/// libbpf's `bpf_core_spec_match`: the local spec applied to candidate `cand`.
fn match_spec<'t>(
    local: &Spec<'_>,
    kind: u32,
    t: &'t BtfTable,
    cand: u32,
) -> Result<Option<Spec<'t>>> {
    let mut spec = Spec {
        btf: t,
        root: cand,
        accessors: Vec::new(),
        bit_offset: 0,
        flex: false,
        path: String::new(),
    };
    match kind {
        TYPE_ID_TARGET | TYPE_EXISTS | TYPE_SIZE => {
            return Ok(types_compat(local.btf, local.root, t, cand, 0)?.then_some(spec));
        }
        TYPE_MATCHES => {
            return Ok(types_match(local.btf, local.root, t, cand, false, 0)?.then_some(spec));
        }
        ENUMVAL_EXISTS | ENUMVAL_VALUE => {
            let tid = t.skip_mods_and_typedefs(cand)?;
            let Kind::Enum { values, .. } = &t.get(tid)?.kind else {
                return Ok(None);
            };
            let want = essential(local.accessors[0].name.unwrap_or(""));
            return Ok(values
                .iter()
                .position(|v| essential(t.str_at(v.name_off)) == want)
                .map(|i| {
                    spec.accessors.push(Accessor {
                        type_id: tid,
                        idx: i as u32,
                        name: None,
                    });
                    spec
                }));
        }
        _ => {}
    }
    let mut tid = cand;
    for (i, acc) in local.accessors.iter().enumerate() {
        if acc.name.is_some() {
            match match_member(local.btf, acc, t, tid, &mut spec, 0)? {
                Some(next) => tid = next,
                None => return Ok(None),
            }
            continue;
        }
        if i > 0 {
            tid = t.skip_mods_and_typedefs(tid)?;
            let Kind::Array { elem, len } = t.get(tid)?.kind else {
                return Ok(None);
            };
            if !is_flex(t, spec.accessors.last(), len) && acc.idx >= len {
                return Ok(None);
            }
            tid = t.skip_mods_and_typedefs(elem)?;
        }
        spec.accessors.push(Accessor {
            type_id: tid,
            idx: acc.idx,
            name: None,
        });
        spec.bit_offset += acc.idx as u64 * t.size_of(tid)? * 8;
    }
    Ok(Some(spec))
}

/// A relocation's value, and for field offsets the width of the field (a
/// load of it may need resizing).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Value {
    value: u64,
    /// Byte size and "a resize keeps the value" (unsigned int or pointer).
    field: Option<(u64, bool)>,
}

fn resizable(btf: &BtfTable, id: u32) -> Result<bool> {
    let id = btf.skip_mods_and_typedefs(id)?;
    Ok(matches!(
        btf.get(id)?.kind,
        Kind::Ptr(_) | Kind::Int { signed: false, .. }
    ))
}

/// libbpf's `bpf_core_calc_relo` for one spec.
fn compute(kind: u32, spec: &Spec<'_>) -> std::result::Result<Value, String> {
    let b = |e: GadgetError| e.to_string();
    let btf = spec.btf;
    let plain = |value| Value { value, field: None };
    match kind {
        TYPE_ID_LOCAL | TYPE_ID_TARGET => return Ok(plain(spec.root as u64)),
        TYPE_EXISTS | TYPE_MATCHES | FIELD_EXISTS | ENUMVAL_EXISTS => return Ok(plain(1)),
        TYPE_SIZE => return Ok(plain(btf.size_of(spec.root).map_err(b)?)),
        ENUMVAL_VALUE => {
            let acc = &spec.accessors[0];
            let Kind::Enum { values, .. } = &btf.get(acc.type_id).map_err(b)?.kind else {
                return Err("enum value of a non-enum".into());
            };
            return Ok(plain(values[acc.idx as usize].value as u64));
        }
        _ => {}
    }
    let acc = spec.accessors.last().ok_or("empty access path")?;
    if acc.name.is_none() {
        // An array element (or the root itself).
        let size = btf.size_of(acc.type_id).map_err(b)?;
        return match kind {
            FIELD_BYTE_OFFSET => Ok(Value {
                value: spec.bit_offset / 8,
                field: Some((size, resizable(btf, acc.type_id).map_err(b)?)),
            }),
            FIELD_BYTE_SIZE => Ok(plain(size)),
            _ => Err(format!(
                "{} cannot apply to an array element",
                kind_label(kind)
            )),
        };
    }
    let m = members(&btf.get(acc.type_id).map_err(b)?.kind)[acc.idx as usize];
    let mty = btf.skip_mods_and_typedefs(m.type_id).map_err(b)?;
    let bit_off = spec.bit_offset;
    let (byte_size, byte_off, bit_size) = if m.bitfield_size > 0 {
        let bit_size = m.bitfield_size as u64;
        let mut size = btf.size_of(mty).map_err(b)?;
        let mut off = bit_off / 8 / size * size;
        while bit_off + bit_size - off * 8 > size * 8 {
            if size >= 8 {
                return Err("bitfield wider than 8 bytes".into());
            }
            size *= 2;
            off = bit_off / 8 / size * size;
        }
        (size, off, bit_size)
    } else {
        let size = btf.size_of(mty).map_err(b)?;
        (size, bit_off / 8, size * 8)
    };
    Ok(match kind {
        FIELD_BYTE_OFFSET => Value {
            value: byte_off,
            field: (m.bitfield_size == 0)
                .then(|| resizable(btf, mty).map(|r| (byte_size, r)))
                .transpose()
                .map_err(b)?,
        },
        FIELD_BYTE_SIZE => plain(byte_size),
        FIELD_SIGNED => plain(match btf.get(mty).map_err(b)?.kind {
            Kind::Int { signed, .. } | Kind::Enum { signed, .. } => signed as u64,
            _ => 0,
        }),
        FIELD_LSHIFT_U64 => plain(64 - (bit_off + bit_size - byte_off * 8)),
        FIELD_RSHIFT_U64 => plain(64 - bit_size),
        other => return Err(format!("{} is not a field relocation", kind_label(other))),
    })
}

/// What to do with one relocation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Resolution {
    /// Both values: the local one (what the compiler wrote) and the target's.
    Value { local: Value, target: Value },
    /// Nothing in the kernel satisfies it: poison the instruction.
    Poison,
}

/// Candidate kernel types for a local root type: same kind, same name
/// without its `___flavor`.
fn candidates(l: &BtfTable, lid: u32, t: &BtfTable) -> Result<Vec<u32>> {
    let name = essential(l.name(lid));
    if name.is_empty() {
        return Ok(Vec::new());
    }
    Ok(t.ids_named(&l.get(lid)?.kind, name))
}

fn resolve(
    l: &BtfTable,
    t: &BtfTable,
    relo: &CoreRelo,
    local: &Spec<'_>,
    cands: &[u32],
) -> std::result::Result<Resolution, String> {
    let b = |e: GadgetError| e.to_string();
    let local_value = match relo.kind {
        // The compiler writes 1 for "exists" and "matches".
        TYPE_EXISTS | TYPE_MATCHES | FIELD_EXISTS | ENUMVAL_EXISTS => Value {
            value: 1,
            field: None,
        },
        k => compute(k, local)?,
    };
    if relo.kind == TYPE_ID_LOCAL {
        return Ok(Resolution::Value {
            local: local_value,
            target: local_value,
        });
    }
    let mut found: Option<(u32, Value)> = None;
    for &cand in cands {
        let Some(spec) = match_spec(local, relo.kind, t, cand).map_err(b)? else {
            continue;
        };
        let v = compute(relo.kind, &spec)?;
        match found {
            None => found = Some((cand, v)),
            Some((first, prev)) if prev.value != v.value => {
                return Err(format!(
                    "kernel types {first} and {cand} (both `{}`) give different values ({} and {})",
                    t.name(cand),
                    prev.value,
                    v.value
                ));
            }
            Some(_) => {}
        }
    }
    let _ = l;
    Ok(match (found, relo.kind) {
        (Some((_, target)), _) => Resolution::Value {
            local: local_value,
            target,
        },
        (None, TYPE_EXISTS | TYPE_MATCHES | FIELD_EXISTS | ENUMVAL_EXISTS) => Resolution::Value {
            local: local_value,
            target: Value {
                value: 0,
                field: None,
            },
        },
        (None, _) => Resolution::Poison,
    })
}

const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_ST: u8 = 0x02;
const BPF_STX: u8 = 0x03;
const BPF_ALU: u8 = 0x04;
const BPF_ALU64: u8 = 0x07;
const LD_IMM64: u8 = 0x18;
const CALL: u8 = 0x85;

/// Writes `res` into the 8-byte instruction(s) at `insn` (libbpf's
/// `bpf_core_patch_insn`).
fn patch_insn(code: &mut [u8], res: Resolution, marker: i32) -> std::result::Result<(), String> {
    let op = code[0];
    let (local, target) = match res {
        Resolution::Poison => {
            let words = if op == LD_IMM64 { 2 } else { 1 };
            for w in 0..words {
                let insn = &mut code[w * 8..w * 8 + 8];
                insn.copy_from_slice(&[CALL, 0, 0, 0, 0, 0, 0, 0]);
                insn[4..8].copy_from_slice(&marker.to_le_bytes());
            }
            return Ok(());
        }
        Resolution::Value { local, target } => (local, target),
    };
    match op & 0x07 {
        BPF_ALU | BPF_ALU64 => {
            if op & 0x08 != 0 {
                return Err(format!("ALU instruction {op:#04x} takes no immediate"));
            }
            let imm = u32::try_from(target.value)
                .map_err(|_| format!("value {} does not fit a 32-bit immediate", target.value))?;
            code[4..8].copy_from_slice(&imm.to_le_bytes());
        }
        BPF_LDX | BPF_ST | BPF_STX => {
            let off = i16::try_from(target.value)
                .map_err(|_| format!("offset {} does not fit 16 bits", target.value))?;
            code[2..4].copy_from_slice(&off.to_le_bytes());
            if let (Some((lsz, _)), Some((tsz, tresize))) = (local.field, target.field)
                && lsz != tsz
            {
                let lresize = local.field.is_some_and(|(_, r)| r);
                if !(lresize && tresize) {
                    return Err(format!(
                        "the field is {lsz} bytes here and {tsz} bytes in the kernel, and is signed or not an integer"
                    ));
                }
                let size_bits = match tsz {
                    4 => 0x00,
                    2 => 0x08,
                    1 => 0x10,
                    8 => 0x18,
                    other => return Err(format!("cannot load a {other}-byte field")),
                };
                code[0] = (op & !0x18) | size_bits;
            }
        }
        BPF_LD if op == LD_IMM64 && code.len() >= 16 => {
            code[4..8].copy_from_slice(&(target.value as u32).to_le_bytes());
            code[12..16].copy_from_slice(&((target.value >> 32) as u32).to_le_bytes());
        }
        _ => {
            return Err(format!(
                "instruction {op:#04x} cannot take a relocated value"
            ));
        }
    }
    Ok(())
}

/// The kernel's BTF as a [`BtfTable`], parsed once and shared until
/// [`release_kernel_table`].
static KERNEL_TABLE: Mutex<Option<Arc<BtfTable>>> = Mutex::new(None);

/// The running kernel's BTF (`/sys/kernel/btf/vmlinux`), parsed on first use.
pub fn kernel_table() -> Result<Arc<BtfTable>> {
    let mut cached = KERNEL_TABLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(t) = &*cached {
        return Ok(t.clone());
    }
    let table = Arc::new(read_kernel_table()?);
    *cached = Some(table.clone());
    Ok(table)
}

/// The kernel's BTF: the shared table while one is kept (a gadget load in
/// progress), else one parsed for this caller only, freed with its last
/// reference, for loads outside a gadget's (the agent's own objects).
pub fn kernel_table_transient() -> Result<Arc<BtfTable>> {
    if let Some(t) = &*KERNEL_TABLE.lock().unwrap_or_else(|p| p.into_inner()) {
        return Ok(t.clone());
    }
    Ok(Arc::new(read_kernel_table()?))
}

/// Where the running kernel's BTF is.
const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Set by [`read_kernel_btf_on_demand`]: the kernel table is read on demand
/// even where the file can be mapped.
static ON_DEMAND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every kernel table parsed from now on read the file on demand, as
/// on kernels before 6.16 that cannot map it (for measurements and tests of
/// that path; mapping is the default).
pub fn read_kernel_btf_on_demand(on: bool) {
    ON_DEMAND.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The running kernel's BTF read on demand, for this caller only (tests
/// that compare it with the mapped table).
pub fn kernel_table_read_on_demand() -> Result<Arc<BtfTable>> {
    BtfTable::open_read_on_demand(std::path::Path::new(VMLINUX))
        .map(Arc::new)
        .map_err(kernel_btf_error)
}

fn kernel_btf_error(e: GadgetError) -> GadgetError {
    GadgetError::Load(format!(
        "reading the kernel's BTF: {e} (CO-RE relocations and iterators need it; a kernel built with CONFIG_DEBUG_INFO_BTF=y has it)"
    ))
}

/// The kernel's BTF, mapped (Linux 6.16+) or read on demand: neither holds
/// the 5–6 MB file in the heap, only an index of 4 bytes per type.
fn read_kernel_table() -> Result<BtfTable> {
    let path = std::path::Path::new(VMLINUX);
    if ON_DEMAND.load(std::sync::atomic::Ordering::Relaxed) {
        BtfTable::open_read_on_demand(path)
    } else {
        BtfTable::open(path)
    }
    .map_err(kernel_btf_error)
}

/// Drops the kernel BTF (the index, and the mapping or held strings).
pub fn release_kernel_table() {
    KERNEL_TABLE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
}

fn data<'d>(s: &object::Section<'d, '_>) -> Result<&'d [u8]> {
    s.data().map_err(|e| GadgetError::NotElf(e.to_string()))
}

/// Where a relocation is, in words a user can act on.
fn describe(elf: &object::File<'_>, relo: &CoreRelo, path: &str) -> String {
    let program =
        function_at(elf, &relo.section, relo.insn_off as u64).unwrap_or_else(|| "?".to_string());
    format!(
        "program `{program}` (section `{}`), instruction {}: CO-RE relocation #{} ({}) of `{path}` (type id {}, access string {})",
        relo.section,
        relo.insn_off / 8,
        relo.number,
        kind_label(relo.kind),
        relo.type_id,
        relo.access
    )
}

/// The function symbol of `section` that covers byte `offset`.
fn function_at(elf: &object::File<'_>, section: &str, offset: u64) -> Option<String> {
    let index = elf.section_by_name(section)?.index();
    elf.symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.section_index() == Some(index))
        .find(|s| (s.address()..s.address() + s.size().max(1)).contains(&offset))
        .and_then(|s| s.name().ok().map(str::to_string))
}

/// The result of [`fix_up`].
#[derive(Debug)]
pub struct FixedUp {
    /// The rewritten object, `None` when nothing had to change.
    pub bytes: Option<Vec<u8>>,
    /// Relocations resolved here (not by aya).
    pub resolved: usize,
    /// Relocations poisoned (no kernel type satisfies them), described.
    pub poisoned: Vec<String>,
    /// Relocations left in `.BTF.ext` for aya to resolve (it then needs the
    /// kernel's BTF); 0 after [`fix_up_all`] unless one is malformed for us.
    pub left_to_aya: usize,
}

/// Resolves the relocations aya-obj 0.3 gets wrong (see the module docs)
/// against `kernel`, patches them into the program sections and removes them
/// from `.BTF.ext`. An object without CO-RE relocations comes back unchanged.
/// Errors name the program, instruction and relocation.
/// `kernel` is called only when the object has CO-RE relocations.
pub fn fix_up(elf_bytes: &[u8], kernel: impl FnOnce() -> Result<Arc<BtfTable>>) -> Result<FixedUp> {
    fix_up_with(elf_bytes, kernel, None)
}

/// Like [`fix_up`], and relocations whose root type is named in `extra`
/// (a struct or union of that name) are resolved against `extra` instead
/// of the kernel, as libbpf's and cilium/ebpf's extra relocation targets:
/// types the agent provides, such as the socket enricher's
/// `gadget_socket_value` (`socket_enricher.rs`).
pub fn fix_up_with(
    elf_bytes: &[u8],
    kernel: impl FnOnce() -> Result<Arc<BtfTable>>,
    extra: Option<&BtfTable>,
) -> Result<FixedUp> {
    fix_up_some(elf_bytes, kernel, extra, false)
}

/// Like [`fix_up_with`], resolving every CO-RE relocation of the object
/// here, so that aya needs no kernel BTF to load it (parsing it costs aya
/// ~45 ms and ~25 MiB per load). A relocation this module cannot parse is
/// left to aya, whose error names it ([`FixedUp::left_to_aya`]).
pub fn fix_up_all(
    elf_bytes: &[u8],
    kernel: impl FnOnce() -> Result<Arc<BtfTable>>,
    extra: Option<&BtfTable>,
) -> Result<FixedUp> {
    fix_up_some(elf_bytes, kernel, extra, true)
}

fn fix_up_some(
    elf_bytes: &[u8],
    kernel: impl FnOnce() -> Result<Arc<BtfTable>>,
    extra: Option<&BtfTable>,
    all: bool,
) -> Result<FixedUp> {
    let mut out = FixedUp {
        bytes: None,
        resolved: 0,
        poisoned: Vec::new(),
        left_to_aya: 0,
    };
    let elf = object::File::parse(elf_bytes).map_err(|e| GadgetError::NotElf(e.to_string()))?;
    let (Some(btf_sec), Some(ext_sec)) =
        (elf.section_by_name(".BTF"), elf.section_by_name(".BTF.ext"))
    else {
        return Ok(out);
    };
    let local = BtfTable::parse(data(&btf_sec)?)?;
    let ext_bytes = data(&ext_sec)?;
    let ext = parse_btf_ext(ext_bytes, &local)?;
    // Only what aya-obj 0.3 cannot do is ours: kind 12 and flexible-array
    // accesses. Finding them needs no kernel BTF, so ordinary objects pay
    // nothing here (parsing the kernel's BTF takes ~170 ms in a debug build).
    let mut mine = Vec::new();
    let in_extra = |id: u32| {
        let name = essential(local.name(id));
        extra.is_some_and(|t| {
            !name.is_empty()
                && t.iter().any(|(_, ty)| {
                    is_composite(&ty.kind) && essential(t.str_at(ty.name_off)) == name
                })
        })
    };
    for relo in &ext.relos {
        match local_spec(&local, relo) {
            Ok(spec) if all || relo.kind == TYPE_MATCHES || spec.flex || in_extra(relo.type_id) => {
                mine.push((relo, spec))
            }
            Ok(_) => out.left_to_aya += 1,
            // Malformed for us: leave it to aya, whose message will say why.
            Err(_) if relo.kind < TYPE_MATCHES => out.left_to_aya += 1,
            Err(e) => {
                return Err(GadgetError::Load(format!(
                    "{}: {e}",
                    describe(&elf, relo, &relo.access)
                )));
            }
        }
    }
    if mine.is_empty() {
        return Ok(out);
    }
    let mut kernel = Some(kernel);
    let mut kernel_table: Option<Arc<BtfTable>> = None;
    let mut patched = elf_bytes.to_vec();
    let mut ours = vec![false; ext.relos.len()];
    let mut cand_cache: HashMap<u32, Vec<u32>> = HashMap::new();
    for (relo, spec) in mine {
        let fail = |reason: String| {
            GadgetError::Load(format!("{}: {reason}", describe(&elf, relo, &relo.access)))
        };
        let target: &BtfTable = match extra {
            Some(t) if in_extra(relo.type_id) => t,
            _ => {
                if kernel_table.is_none() {
                    let load = kernel.take().expect("the kernel's BTF is loaded once");
                    kernel_table = Some(load()?);
                }
                kernel_table.as_deref().expect("just loaded")
            }
        };
        let cands = match cand_cache.entry(relo.type_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(candidates(&local, relo.type_id, target)?),
        };
        let res = resolve(&local, target, relo, &spec, cands).map_err(fail)?;
        let sec = elf
            .section_by_name(&relo.section)
            .ok_or_else(|| fail(format!("no section `{}` in the object", relo.section)))?;
        let (file_off, size) = sec
            .file_range()
            .ok_or_else(|| fail("the section has no data".into()))?;
        let at = relo.insn_off as u64;
        // Up to two instruction slots: `ld_imm64` takes both (patch_insn
        // reads the opcode).
        let end = (at + 16).min(size);
        if at + 8 > size {
            return Err(fail(format!(
                "instruction offset {at} is past the section's {size} bytes"
            )));
        }
        let insn = &mut patched[(file_off + at) as usize..(file_off + end) as usize];
        let marker = POISON_BASE + relo.number as i32;
        patch_insn(insn, res, marker).map_err(fail)?;
        ours[relo.number] = true;
        if res == Resolution::Poison {
            out.poisoned.push(describe(&elf, relo, &spec.path));
        } else {
            out.resolved += 1;
        }
    }
    if !ours.contains(&true) {
        return Ok(out);
    }
    let new_ext = without_relos(ext_bytes, &ext, &ours)?;
    out.bytes = Some(super::btf_patch::replace_section(
        &patched, ".BTF.ext", &new_ext,
    )?);
    Ok(out)
}

/// `.BTF.ext` with the relocations marked in `drop` removed: the old table
/// stays in place unreferenced, the new one is appended.
fn without_relos(ext_bytes: &[u8], ext: &BtfExt, drop: &[bool]) -> Result<Vec<u8>> {
    let hdr_len = u32_at(ext_bytes, 4)? as usize;
    let mut table = Vec::new();
    table.extend_from_slice(&(ext.rec_size as u32).to_le_bytes());
    let mut i = 0;
    while i < ext.relos.len() {
        let sec = ext.relos[i].sec_name_off;
        let group: Vec<&CoreRelo> = ext.relos[i..]
            .iter()
            .take_while(|r| r.sec_name_off == sec)
            .collect();
        i += group.len();
        let kept: Vec<&&CoreRelo> = group.iter().filter(|r| !drop[r.number]).collect();
        if kept.is_empty() {
            continue;
        }
        table.extend_from_slice(&sec.to_le_bytes());
        table.extend_from_slice(&(kept.len() as u32).to_le_bytes());
        for r in kept {
            for v in [r.insn_off, r.type_id, r.access_off, r.kind] {
                table.extend_from_slice(&v.to_le_bytes());
            }
            table.resize(table.len() + ext.rec_size - 16, 0);
        }
    }
    let mut out = ext_bytes.to_vec();
    out.resize(out.len().next_multiple_of(4), 0);
    let off = (out.len() - hdr_len) as u32;
    out[24..28].copy_from_slice(&off.to_le_bytes());
    out[28..32].copy_from_slice(&(table.len() as u32).to_le_bytes());
    out.extend_from_slice(&table);
    Ok(out)
}

/// aya-obj 0.3 poisons an unresolvable relocation with this call number
/// (as libbpf does); the verifier prints `unknown#195896080`.
const AYA_POISON: i64 = 0x0bad_2310;

/// Every relocation of the object that nothing in `kernel` satisfies,
/// described (program, instruction, `type.field`, access string), with the
/// name of the program it is in. Walks all candidates: for error paths and
/// checks, not for every load.
pub fn unresolved(elf_bytes: &[u8], kernel: &BtfTable) -> Result<Vec<(String, String)>> {
    let elf = object::File::parse(elf_bytes).map_err(|e| GadgetError::NotElf(e.to_string()))?;
    let (Some(btf_sec), Some(ext_sec)) =
        (elf.section_by_name(".BTF"), elf.section_by_name(".BTF.ext"))
    else {
        return Ok(Vec::new());
    };
    let local = BtfTable::parse(data(&btf_sec)?)?;
    let ext = parse_btf_ext(data(&ext_sec)?, &local)?;
    let mut cand_cache: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut out = Vec::new();
    for relo in &ext.relos {
        let Ok(spec) = local_spec(&local, relo) else {
            continue;
        };
        let cands = match cand_cache.entry(relo.type_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(candidates(&local, relo.type_id, kernel)?),
        };
        if let Ok(Resolution::Poison) = resolve(&local, kernel, relo, &spec, cands) {
            let program =
                function_at(&elf, &relo.section, relo.insn_off as u64).unwrap_or_default();
            out.push((program, describe(&elf, relo, &spec.path)));
        }
    }
    Ok(out)
}

const WHAT_TO_DO: &str = "nothing in the running kernel's BTF matches it, and the program uses the result. Guard the access with bpf_core_field_exists()/bpf_core_type_exists(), or check the field's name and type against this kernel";

/// Turns a verifier error about a poisoned instruction (`unknown#N`) of
/// `program` into the relocation that could not be resolved: program,
/// instruction, type, access string and what to do. N is ours
/// ([`POISON_BASE`] + the relocation's number: exact) or aya's
/// (`195896080`: the program's unresolvable relocations are listed, with
/// the instruction the verifier stopped at). `None` when `reason` holds no
/// such marker.
pub fn explain_poison(elf_bytes: &[u8], program: &str, reason: &str) -> Option<String> {
    let pos = reason.find("unknown#")?;
    let digits: String = reason[pos + 8..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    let marker = digits.parse::<i64>().ok()?;
    let elf = object::File::parse(elf_bytes).ok()?;
    // The verifier's own line: `123: (85) call unknown#195896080`.
    let at = reason[..pos]
        .rsplit('\n')
        .next()
        .and_then(|line| line.split(':').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(|n| format!(" (the verifier stopped at instruction {n} of the loaded program)"))
        .unwrap_or_default();
    if marker == AYA_POISON {
        let kernel = kernel_table().ok()?;
        let found: Vec<String> = unresolved(elf_bytes, &kernel)
            .ok()?
            .into_iter()
            .filter(|(p, _)| p == program)
            .map(|(_, d)| d)
            .collect();
        if found.is_empty() {
            return None;
        }
        return Some(format!("{}: {WHAT_TO_DO}{at}", found.join("; ")));
    }
    let n = marker.checked_sub(POISON_BASE as i64)?;
    if !(0..0x10000).contains(&n) {
        return None;
    }
    let local = BtfTable::parse(elf.section_by_name(".BTF")?.data().ok()?).ok()?;
    let ext = parse_btf_ext(elf.section_by_name(".BTF.ext")?.data().ok()?, &local).ok()?;
    let relo = ext.relos.get(n as usize)?;
    let path = local_spec(&local, relo).map_or_else(|_| relo.access.clone(), |s| s.path);
    Some(format!("{}: {WHAT_TO_DO}{at}", describe(&elf, relo, &path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_strings_are_checked() {
        assert!(parse_indices("0:2:1").is_ok());
        assert_eq!(
            parse_indices("0:x").unwrap_err(),
            "malformed access string `0:x`"
        );
        assert!(parse_indices("").is_err());
    }

    #[test]
    fn poisoned_loads_become_marked_calls() {
        let mut insn = [0x79u8, 0x12, 0x10, 0, 0, 0, 0, 0];
        patch_insn(&mut insn, Resolution::Poison, POISON_BASE + 3).unwrap();
        assert_eq!(insn[0], CALL);
        assert_eq!(
            i32::from_le_bytes(insn[4..8].try_into().unwrap()),
            POISON_BASE + 3
        );
    }

    #[test]
    fn ld_imm64_takes_the_value_in_both_halves() {
        // r1 = 0 ll: the enum value of an ENUMVAL_VALUE relocation.
        let mut insn = [LD_IMM64, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let plain = |value| Value { value, field: None };
        let res = Resolution::Value {
            local: plain(131),
            target: plain(0x1_0000_0083),
        };
        patch_insn(&mut insn, res, 0).unwrap();
        assert_eq!(u32::from_le_bytes(insn[4..8].try_into().unwrap()), 0x83);
        assert_eq!(u32::from_le_bytes(insn[12..16].try_into().unwrap()), 1);
        // Given one slot only, it is an error, not a half-written value.
        let err = patch_insn(&mut insn[..8], res, 0).unwrap_err();
        assert!(err.contains("cannot take a relocated value"), "{err}");
    }

    #[test]
    fn field_loads_get_the_target_offset_and_width() {
        // r2 = *(u64 *)(r1 + 16): ldxdw
        let mut insn = [0x79u8, 0x12, 16, 0, 0, 0, 0, 0];
        let v = |value, size| Value {
            value,
            field: Some((size, true)),
        };
        let res = Resolution::Value {
            local: v(16, 8),
            target: v(24, 4),
        };
        patch_insn(&mut insn, res, 0).unwrap();
        assert_eq!(i16::from_le_bytes([insn[2], insn[3]]), 24);
        assert_eq!(insn[0], 0x61, "ldxw");
        // A signed field cannot change width.
        let mut insn = [0x79u8, 0x12, 16, 0, 0, 0, 0, 0];
        let signed = Resolution::Value {
            local: Value {
                value: 16,
                field: Some((8, false)),
            },
            target: v(24, 4),
        };
        assert!(
            patch_insn(&mut insn, signed, 0)
                .unwrap_err()
                .contains("signed")
        );
    }

    #[test]
    fn explain_ignores_other_errors() {
        assert_eq!(
            explain_poison(b"", "p", "invalid func unknown#195896080"),
            None
        );
        assert_eq!(explain_poison(b"", "p", "permission denied"), None);
    }
}
