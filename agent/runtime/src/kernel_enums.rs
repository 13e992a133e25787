//! Kernel enums by name, from the running kernel's BTF. A gadget compiled
//! against one `vmlinux.h` carries that kernel's enum values; enums like
//! `skb_drop_reason` renumber between kernels, so names are taken from the
//! kernel the gadget runs on. Only ENUM/ENUM64 records are read, by walking
//! the raw BTF type section (no full parse, nothing kept in memory).

use std::collections::HashMap;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;

/// Members of the kernel enums named in `wanted` that exist, by name.
pub fn lookup(wanted: &[&str]) -> HashMap<String, Vec<(i64, String)>> {
    if wanted.is_empty() {
        return HashMap::new();
    }
    match std::fs::read("/sys/kernel/btf/vmlinux") {
        Ok(bytes) => parse(&bytes, wanted).unwrap_or_default(),
        Err(_) => HashMap::new(),
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn str_at(strings: &[u8], off: u32) -> Option<&str> {
    let s = strings.get(off as usize..)?;
    let end = s.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&s[..end]).ok()
}

/// Bytes that follow a type record's 12-byte header, by kind.
fn trailing(kind: u32, vlen: usize) -> usize {
    match kind {
        1 => 4,             // INT
        3 => 12,            // ARRAY
        4 | 5 => vlen * 12, // STRUCT, UNION
        6 => vlen * 8,      // ENUM
        13 => vlen * 8,     // FUNC_PROTO
        14 => 4,            // VAR
        15 => vlen * 12,    // DATASEC
        17 => 4,            // DECL_TAG
        19 => vlen * 12,    // ENUM64
        _ => 0,             // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG
    }
}

fn parse(b: &[u8], wanted: &[&str]) -> Option<HashMap<String, Vec<(i64, String)>>> {
    if u16::from_le_bytes(b.get(0..2)?.try_into().ok()?) != BTF_MAGIC {
        return None;
    }
    let hdr_len = u32_at(b, 4)? as usize;
    let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
    let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
    let types = b.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
    let strings = b.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
    let mut out = HashMap::new();
    let mut at = 0;
    while at + 12 <= types.len() {
        let name_off = u32_at(types, at)?;
        let info = u32_at(types, at + 4)?;
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        let kflag = info >> 31 == 1; // enums: signed
        let body = at + 12;
        if kind == KIND_ENUM || kind == KIND_ENUM64 {
            let name = str_at(strings, name_off)?;
            if !name.is_empty() && wanted.contains(&name) {
                let mut members = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let m = body + i * if kind == KIND_ENUM { 8 } else { 12 };
                    let member = str_at(strings, u32_at(types, m)?)?.to_string();
                    let lo = u32_at(types, m + 4)?;
                    let v = if kind == KIND_ENUM {
                        if kflag { lo as i32 as i64 } else { lo as i64 }
                    } else {
                        ((u32_at(types, m + 8)? as u64) << 32 | lo as u64) as i64
                    };
                    members.push((v, member));
                }
                out.insert(name.to_string(), members);
            }
        }
        at = body + trailing(kind, vlen);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_a_kernel_enum_with_the_running_kernels_values() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            eprintln!("skipping: no kernel BTF");
            return;
        }
        let found = super::lookup(&["bpf_map_type", "no_such_enum_here"]);
        let map_types = &found["bpf_map_type"];
        assert!(
            map_types.contains(&(27, "BPF_MAP_TYPE_RINGBUF".to_string())),
            "{map_types:?}"
        );
        assert!(!found.contains_key("no_such_enum_here"));
    }
}
