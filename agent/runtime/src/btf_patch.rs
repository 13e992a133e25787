//! Rewrites `print_*` map definitions so the kernel accepts them.
//!
//! By the seed's convention a tracer map says `__type(value, struct event)`:
//! the value type names the event, not what the kernel stores. The kernel
//! wants `value_size == 4` for a perf event array (aya rejects it as is) and
//! 0 for a ring buffer (aya forces that one itself). We repoint the map's
//! `value` member at a new `int *` type appended to the BTF, so aya computes
//! 4 and keeps the kernel happy for both kinds; layouts are read from the
//! original BTF, never from the patched one.
//!
//! clang shares one PTR type between all `__type(value, struct event)` users,
//! so repointing that PTR in place would also change unrelated maps: hence a
//! fresh PTR. The grown `.BTF` is appended at the end of the ELF file and its
//! section header repointed there, which keeps every other offset valid.

use object::{Object, ObjectSection};

use super::error::{GadgetError, Result};

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_VAR: u32 = 14;

/// One BTF type record located in the raw bytes.
struct Record {
    /// Byte offset of the record (its `name_off`) within the type section.
    at: usize,
    kind: u32,
    vlen: usize,
    size_or_type: u32,
}

/// Minimal walker over a raw BTF blob: enough to find records by id and
/// patch them where they are (btf-rs does not expose byte offsets).
struct RawBtf<'a> {
    bytes: &'a [u8],
    hdr_len: usize,
    type_start: usize,
    type_len: usize,
    str_start: usize,
    str_len: usize,
    /// Records by type id (index 0 is `void`, unused).
    records: Vec<Record>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| GadgetError::Btf(format!("truncated BTF at byte {at}")))
}

impl<'a> RawBtf<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < 24 || u16::from_le_bytes([bytes[0], bytes[1]]) != BTF_MAGIC {
            return Err(GadgetError::Btf(
                "bad magic (big-endian or not BTF): only little-endian BPF objects are supported"
                    .into(),
            ));
        }
        let hdr_len = u32_at(bytes, 4)? as usize;
        let type_off = u32_at(bytes, 8)? as usize;
        let type_len = u32_at(bytes, 12)? as usize;
        let str_off = u32_at(bytes, 16)? as usize;
        let str_len = u32_at(bytes, 20)? as usize;
        let type_start = hdr_len + type_off;
        let str_start = hdr_len + str_off;
        if type_start + type_len > bytes.len() || str_start + str_len > bytes.len() {
            return Err(GadgetError::Btf("section lengths exceed the data".into()));
        }
        let mut records = vec![Record {
            at: 0,
            kind: 0,
            vlen: 0,
            size_or_type: 0,
        }];
        let types = &bytes[type_start..type_start + type_len];
        let mut at = 0;
        while at < types.len() {
            let info = u32_at(types, at + 4)?;
            let size_or_type = u32_at(types, at + 8)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let extra = match kind {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG
                other => return Err(GadgetError::Btf(format!("unknown BTF kind {other}"))),
            };
            records.push(Record {
                at,
                kind,
                vlen,
                size_or_type,
            });
            at += 12 + extra;
        }
        Ok(RawBtf {
            bytes,
            hdr_len,
            type_start,
            type_len,
            str_start,
            str_len,
            records,
        })
    }

    fn string(&self, off: u32) -> &str {
        let s = &self.bytes[self.str_start..self.str_start + self.str_len];
        let start = (off as usize).min(s.len());
        let end = s[start..]
            .iter()
            .position(|&b| b == 0)
            .map_or(s.len(), |p| start + p);
        std::str::from_utf8(&s[start..end]).unwrap_or("")
    }

    /// A 4-byte INT to point the new PTR at (`int` exists in every object
    /// that uses `__uint()`).
    fn four_byte_int(&self) -> Option<u32> {
        self.records
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, r)| r.kind == KIND_INT && r.size_or_type == 4)
            .map(|(id, _)| id as u32)
    }
}

/// Rewrites the `value` member of each map struct in `map_struct_ids` to an
/// `int *`, returning the new BTF blob.
#[cfg_attr(not(test), allow(dead_code))] // the loader uses the program-array form below
pub fn rewrite_btf(btf: &[u8], map_struct_ids: &[u32]) -> Result<Vec<u8>> {
    rewrite_maps(btf, map_struct_ids, &[])
}

/// [`rewrite_btf`] for tracer maps, and for each program array in
/// `prog_array_ids` (`__array(values, int (void *))`, prog_array.rs) the
/// `values` member becomes `__uint(value_size, 4)`: aya-obj 0.3 rejects
/// `values` of function pointers, and the kernel wants 4-byte values.
pub fn rewrite_maps(btf: &[u8], map_struct_ids: &[u32], prog_array_ids: &[u32]) -> Result<Vec<u8>> {
    let raw = RawBtf::parse(btf)?;
    let int_id = raw.four_byte_int().ok_or_else(|| {
        GadgetError::Btf("no 4-byte integer type to rewrite tracer maps with".into())
    })?;
    let new_ptr_id = raw.records.len() as u32;
    // int[4] and a pointer to it: `__uint(value_size, 4)`.
    let array_id = new_ptr_id + 1;
    let array_ptr_id = new_ptr_id + 2;
    let mut strings = raw.bytes[raw.str_start..raw.str_start + raw.str_len].to_vec();
    let found = strings.windows(12).position(|w| w == b"\0value_size\0");
    let value_size_off = match found {
        _ if prog_array_ids.is_empty() => 0,
        Some(p) => p as u32 + 1,
        None => {
            let off = strings.len() as u32;
            strings.extend_from_slice(b"value_size\0");
            off
        }
    };

    let mut types = raw.bytes[raw.type_start..raw.type_start + raw.type_len].to_vec();
    for &id in prog_array_ids {
        let rec = raw
            .records
            .get(id as usize)
            .filter(|r| r.kind == KIND_STRUCT)
            .ok_or_else(|| GadgetError::Btf(format!("map definition type {id} is not a struct")))?;
        for i in 0..rec.vlen {
            let member = rec.at + 12 + 12 * i;
            if raw.string(u32_at(&types, member)?) == "values" {
                types[member..member + 4].copy_from_slice(&value_size_off.to_le_bytes());
                types[member + 4..member + 8].copy_from_slice(&array_ptr_id.to_le_bytes());
                // `values` was a zero-length array at the struct's end: the
                // pointer shares the previous member's 8 bytes (offsets
                // may repeat, not decrease), so the struct keeps its size
                // and still fits its `.maps` symbol.
                if i > 0 {
                    let prev = u32_at(&types, member - 12 + 8)?;
                    types[member + 8..member + 12].copy_from_slice(&prev.to_le_bytes());
                }
            }
        }
    }
    for &id in map_struct_ids {
        let rec = raw
            .records
            .get(id as usize)
            .filter(|r| r.kind == KIND_STRUCT || r.kind == KIND_UNION)
            .ok_or_else(|| GadgetError::Btf(format!("map definition type {id} is not a struct")))?;
        for i in 0..rec.vlen {
            let member = rec.at + 12 + 12 * i;
            if raw.string(u32_at(&types, member)?) == "value" {
                types[member + 4..member + 8].copy_from_slice(&new_ptr_id.to_le_bytes());
            }
        }
    }
    // The new `int *`: anonymous PTR record.
    types.extend_from_slice(&0u32.to_le_bytes());
    types.extend_from_slice(&(KIND_PTR << 24).to_le_bytes());
    types.extend_from_slice(&int_id.to_le_bytes());
    // int[4]: ARRAY record (elem, index type, length), then a PTR to it.
    for word in [0, KIND_ARRAY << 24, 0, int_id, int_id, 4] {
        types.extend_from_slice(&word.to_le_bytes());
    }
    for word in [0, KIND_PTR << 24, array_id] {
        types.extend_from_slice(&word.to_le_bytes());
    }
    let mut out = Vec::with_capacity(raw.hdr_len + types.len() + strings.len());
    out.extend_from_slice(&raw.bytes[..raw.hdr_len]);
    // type_off stays 0; strings follow the types directly.
    out[8..12].copy_from_slice(&0u32.to_le_bytes());
    out[12..16].copy_from_slice(&(types.len() as u32).to_le_bytes());
    out[16..20].copy_from_slice(&(types.len() as u32).to_le_bytes());
    out[20..24].copy_from_slice(&(strings.len() as u32).to_le_bytes());
    out.extend_from_slice(&types);
    out.extend_from_slice(&strings);
    Ok(out)
}

/// BTF kind number of a DATASEC.
const KIND_DATASEC: u32 = 15;
/// `BTF_VAR_GLOBAL_ALLOCATED`: the only non-static linkage the kernel takes.
const VAR_GLOBAL_ALLOCATED: u32 = 1;

/// Renames DATASEC `from` to `to` and turns its VARs' extern linkage into
/// global, as if the variables were defined in section `to`; its size is
/// zeroed so the loader takes it (and the offsets) from the ELF. Returns
/// `None` when `btf` has no DATASEC `from`. Used for `.kconfig` externs
/// (externs.rs): the kernel refuses extern VARs.
pub fn rename_datasec(btf: &[u8], from: &str, to: &str) -> Result<Option<Vec<u8>>> {
    let raw = RawBtf::parse(btf)?;
    let Some(rec) = raw.records.iter().find(|r| {
        r.kind == KIND_DATASEC
            && raw.string(u32_at(raw.bytes, raw.type_start + r.at).unwrap_or(0)) == from
    }) else {
        return Ok(None);
    };
    let (at, vlen) = (rec.at, rec.vlen);
    let (grown, offs) = append_strings(btf, &[to])?;
    // append_strings keeps the type section where it was relative to the
    // header (type_off 0) and its length: record offsets stay valid.
    let raw = RawBtf::parse(&grown)?;
    let mut out = grown.clone();
    let base = raw.type_start;
    out[base + at..base + at + 4].copy_from_slice(&offs[0].to_le_bytes());
    out[base + at + 8..base + at + 12].copy_from_slice(&0u32.to_le_bytes());
    for i in 0..vlen {
        let var_id = u32_at(&out, base + at + 12 + 12 * i)? as usize;
        let var = raw
            .records
            .get(var_id)
            .filter(|r| r.kind == KIND_VAR)
            .ok_or_else(|| GadgetError::Btf(format!("DATASEC `{from}` entry {i} is not a VAR")))?;
        let linkage = base + var.at + 12;
        out[linkage..linkage + 4].copy_from_slice(&VAR_GLOBAL_ALLOCATED.to_le_bytes());
    }
    Ok(Some(out))
}

/// Lays out DATASEC `name` as if its variables were defined: each VAR made
/// global, entry i at the next 8-byte boundary with `sizes[i]` bytes, the
/// section's size their total (non-zero, so the loader leaves it alone).
/// `None` when there is no such DATASEC; an error when an entry is not a
/// variable (a kfunc in `.ksyms`) or `sizes` does not match.
pub fn lay_out_datasec(btf: &[u8], name: &str, sizes: &[u32]) -> Result<Option<Vec<u8>>> {
    let raw = RawBtf::parse(btf)?;
    let Some(rec) = raw.records.iter().find(|r| {
        r.kind == KIND_DATASEC
            && raw.string(u32_at(raw.bytes, raw.type_start + r.at).unwrap_or(0)) == name
    }) else {
        return Ok(None);
    };
    if rec.vlen != sizes.len() {
        return Err(GadgetError::Btf(format!(
            "DATASEC `{name}` has {} entries, {} variables were sized",
            rec.vlen,
            sizes.len()
        )));
    }
    let mut out = btf.to_vec();
    let base = raw.type_start + rec.at;
    let mut at = 0u32;
    for (i, size) in sizes.iter().enumerate() {
        let entry = base + 12 + 12 * i;
        let var_id = u32_at(&out, entry)? as usize;
        let var = raw
            .records
            .get(var_id)
            .filter(|r| r.kind == KIND_VAR)
            .ok_or_else(|| {
                GadgetError::Btf(format!(
                    "DATASEC `{name}` entry {i} is not a variable (a kfunc?): only typed variables are resolved"
                ))
            })?;
        let linkage = raw.type_start + var.at + 12;
        out[linkage..linkage + 4].copy_from_slice(&VAR_GLOBAL_ALLOCATED.to_le_bytes());
        out[entry + 4..entry + 8].copy_from_slice(&at.to_le_bytes());
        out[entry + 8..entry + 12].copy_from_slice(&size.to_le_bytes());
        at = (at + size).next_multiple_of(8);
    }
    out[base + 8..base + 12].copy_from_slice(&at.max(8).to_le_bytes());
    Ok(Some(out))
}

/// Appends `names` to the string section of BTF blob `btf`; returns the new
/// blob and each name's offset.
pub fn append_strings(btf: &[u8], names: &[&str]) -> Result<(Vec<u8>, Vec<u32>)> {
    let raw = RawBtf::parse(btf)?;
    let types = &raw.bytes[raw.type_start..raw.type_start + raw.type_len];
    let mut strings = raw.bytes[raw.str_start..raw.str_start + raw.str_len].to_vec();
    let mut offsets = Vec::with_capacity(names.len());
    for name in names {
        offsets.push(strings.len() as u32);
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
    }
    let mut out = Vec::with_capacity(raw.hdr_len + types.len() + strings.len());
    out.extend_from_slice(&raw.bytes[..raw.hdr_len]);
    out[8..12].copy_from_slice(&0u32.to_le_bytes());
    out[12..16].copy_from_slice(&(types.len() as u32).to_le_bytes());
    out[16..20].copy_from_slice(&(types.len() as u32).to_le_bytes());
    out[20..24].copy_from_slice(&(strings.len() as u32).to_le_bytes());
    out.extend_from_slice(types);
    out.extend_from_slice(&strings);
    Ok((out, offsets))
}

/// The offset of each of `names` in the string section of `btf` (a whole
/// string, not a suffix of a longer one), `None` when absent.
pub fn string_offsets(btf: &[u8], names: &[&str]) -> Result<Vec<Option<u32>>> {
    let raw = RawBtf::parse(btf)?;
    let strings = &raw.bytes[raw.str_start..raw.str_start + raw.str_len];
    Ok(names
        .iter()
        .map(|name| {
            let mut at = 0;
            for s in strings.split(|&b| b == 0) {
                if s == name.as_bytes() {
                    return Some(at as u32);
                }
                at += s.len() + 1;
            }
            None
        })
        .collect())
}

/// Returns a copy of the ELF `elf` whose `.BTF` section holds `new_btf`.
pub fn replace_btf_section(elf: &[u8], new_btf: &[u8]) -> Result<Vec<u8>> {
    replace_section(elf, ".BTF", new_btf)
}

/// Returns a copy of the ELF `elf` whose section `name` holds `data`: the
/// data is appended at the end of the file and the section header repointed
/// there, so every other offset stays valid.
pub fn replace_section(elf: &[u8], name: &str, data: &[u8]) -> Result<Vec<u8>> {
    let new_btf = data;
    let file = object::File::parse(elf).map_err(|e| GadgetError::NotElf(e.to_string()))?;
    if !file.is_64() || !file.is_little_endian() {
        return Err(GadgetError::NotElf(
            "only 64-bit little-endian BPF objects are supported".into(),
        ));
    }
    let index = file
        .section_by_name(name)
        .ok_or_else(|| GadgetError::NotElf(format!("the object has no `{name}` section")))?
        .index()
        .0;
    let sh_off = u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap()) as usize;
    let sh_entsize = u16::from_le_bytes([elf[0x3a], elf[0x3b]]) as usize;
    let header = sh_off + index * sh_entsize;
    if header + 0x28 > elf.len() {
        return Err(GadgetError::NotElf(
            "section header table out of bounds".into(),
        ));
    }
    let mut out = elf.to_vec();
    out.resize(out.len().next_multiple_of(8), 0);
    let new_offset = out.len() as u64;
    out.extend_from_slice(new_btf);
    out[header + 0x18..header + 0x20].copy_from_slice(&new_offset.to_le_bytes());
    out[header + 0x20..header + 0x28].copy_from_slice(&(new_btf.len() as u64).to_le_bytes());
    Ok(out)
}

/// BTF type ids of the anonymous structs that define the given maps.
pub fn map_struct_ids(btf: &btf_rs::Btf, maps: &[&str]) -> Result<Vec<u32>> {
    Ok(super::object::datasec_vars(btf, ".maps")?
        .into_iter()
        .filter(|(name, _)| maps.contains(&name.as_str()))
        .map(|(_, id)| id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made BTF: int, struct { int *value; } (as a map def would be).
    fn tiny_btf() -> Vec<u8> {
        let strings = b"\0int\0value\0".to_vec();
        let mut types = Vec::new();
        // [1] INT "int" size 4, encoding signed, 32 bits
        types.extend_from_slice(&1u32.to_le_bytes());
        types.extend_from_slice(&(KIND_INT << 24).to_le_bytes());
        types.extend_from_slice(&4u32.to_le_bytes());
        types.extend_from_slice(&((1u32 << 24) | 32).to_le_bytes());
        // [2] PTR -> 1
        types.extend_from_slice(&0u32.to_le_bytes());
        types.extend_from_slice(&(KIND_PTR << 24).to_le_bytes());
        types.extend_from_slice(&1u32.to_le_bytes());
        // [3] STRUCT size 8, 1 member "value" type 2
        types.extend_from_slice(&0u32.to_le_bytes());
        types.extend_from_slice(&((KIND_STRUCT << 24) | 1).to_le_bytes());
        types.extend_from_slice(&8u32.to_le_bytes());
        types.extend_from_slice(&5u32.to_le_bytes());
        types.extend_from_slice(&2u32.to_le_bytes());
        types.extend_from_slice(&0u32.to_le_bytes());
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&24u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(types.len() as u32).to_le_bytes());
        out.extend_from_slice(&(types.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&types);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn value_member_points_at_a_new_int_pointer() {
        let patched = rewrite_btf(&tiny_btf(), &[3]).unwrap();
        let raw = RawBtf::parse(&patched).unwrap();
        assert_eq!(
            raw.records.len(),
            7,
            "a PTR, an int[4] and its PTR appended"
        );
        let new_ptr = &raw.records[4];
        assert_eq!((new_ptr.kind, new_ptr.size_or_type), (KIND_PTR, 1));
        let member = raw.type_start + raw.records[3].at + 12;
        assert_eq!(raw.string(u32_at(&patched, member).unwrap()), "value");
        assert_eq!(u32_at(&patched, member + 4).unwrap(), 4);
        // The original shared PTR is untouched.
        assert_eq!(raw.records[2].size_or_type, 1);
        // And btf-rs reads the result.
        btf_rs::Btf::from_bytes(&patched).unwrap();
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        let err = rewrite_btf(b"not btf at all, clearly not", &[1]).unwrap_err();
        assert!(err.to_string().contains("bad magic"), "{err}");
        let mut truncated = tiny_btf();
        truncated.truncate(30);
        assert!(rewrite_btf(&truncated, &[3]).is_err());
    }
}
