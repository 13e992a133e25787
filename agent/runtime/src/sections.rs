//! Program section names as libbpf reads them, and what aya-obj 0.3 needs.
//!
//! libbpf accepts names aya-obj 0.3 rejects (its whole object then fails to
//! parse: `invalid program section`): `socket1` (any `socket` prefix),
//! `raw_tp.w/<tp>` and `raw_tracepoint.w/<tp>`, `tc`, `tc/…`, `tcx/ingress`
//! and `tcx/egress`. [`aya_name`] gives the spelling aya parses to the same
//! program type, and [`rename`] rewrites the object's section names (ELF
//! `.shstrtab`, and the `.BTF.ext` records that name sections) before aya
//! sees it. Our own [`super::load::attach_point`] reads the original name.
//!
//! [`KNOWN`] lists the accepted forms for error messages.

use object::{Object, ObjectSection};

use super::btf_patch;
use super::error::{GadgetError, Result};

/// The section forms gadgetd attaches, for messages.
pub const KNOWN: &str = "tracepoint/<category>/<name> (or tp/), raw_tracepoint/<name> (or raw_tp/, raw_tp.w/, raw_tracepoint.w/), tp_btf/<name>, kprobe/<function>, kretprobe/<function>, uprobe/<binary>:<symbol> (or uretprobe/, uprobe.s/, uretprobe.s/), fentry/<function>, fexit/<function>, socket (socket1, socket/<anything>), iter/<target>, perf_event, tc (tc/ingress, tc/egress, tcx/ingress, tcx/egress, classifier, classifier/<ingress|egress>/<name>), lsm/<hook> (or lsm.s/), cgroup_skb/ingress, cgroup_skb/egress, cgroup/<sock_create|sock_release|post_bind4|bind4|connect4|sendmsg4|recvmsg4|getpeername4|getsockname4 and their 6 forms>";

/// The name aya-obj 0.3 parses to the same program type, when it differs.
pub fn aya_name(section: &str) -> Option<String> {
    let (kind, rest) = section.split_once('/').unwrap_or((section, ""));
    match kind {
        "socket" => None,
        // Unique per original name: aya-obj finds a section's BTF.ext
        // records by its name, so two sections renamed alike would collide.
        k if k.starts_with("socket") => Some(format!("socket/{section}")),
        "raw_tp.w" | "raw_tracepoint.w" => Some(format!("raw_tp/{rest}")),
        "tc" | "tcx" => Some(format!("classifier/{section}")),
        _ => None,
    }
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}
fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| GadgetError::NotElf(format!("truncated at byte {at}")))
}
fn u64_at(b: &[u8], at: usize) -> usize {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize
}

/// Returns the object with every program section aya-obj 0.3 cannot parse
/// renamed per [`aya_name`], or `None` when none needs it.
pub fn rename(elf: &[u8]) -> Result<Option<Vec<u8>>> {
    let file = object::File::parse(elf).map_err(|e| GadgetError::NotElf(e.to_string()))?;
    let renames: Vec<(String, String)> = file
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text)
        .filter_map(|s| {
            let name = s.name().ok()?;
            aya_name(name).map(|new| (name.to_string(), new))
        })
        .collect();
    if renames.is_empty() {
        return Ok(None);
    }
    let mut out = rename_in_shstrtab(elf, &renames)?;
    let btf = file.section_by_name(".BTF").and_then(|s| s.data().ok());
    let ext = file.section_by_name(".BTF.ext").and_then(|s| s.data().ok());
    if let (Some(btf), Some(ext)) = (btf, ext) {
        let olds: Vec<&str> = renames.iter().map(|(o, _)| o.as_str()).collect();
        let news: Vec<&str> = renames.iter().map(|(_, n)| n.as_str()).collect();
        let (new_btf, new_offs) = btf_patch::append_strings(btf, &news)?;
        let old_offs = btf_patch::string_offsets(btf, &olds)?;
        let map: Vec<(u32, u32)> = old_offs
            .into_iter()
            .zip(new_offs)
            .filter_map(|(o, n)| Some((o?, n)))
            .collect();
        let new_ext = renamed_ext(ext, &map)?;
        out = btf_patch::replace_section(&out, ".BTF", &new_btf)?;
        out = btf_patch::replace_section(&out, ".BTF.ext", &new_ext)?;
    }
    Ok(Some(out))
}

/// Appends the new names to a copy of `.shstrtab` (at the end of the file)
/// and points the renamed sections' headers at them.
fn rename_in_shstrtab(elf: &[u8], renames: &[(String, String)]) -> Result<Vec<u8>> {
    if elf.len() < 0x40 {
        return Err(GadgetError::NotElf("truncated ELF header".into()));
    }
    let shoff = u64_at(elf, 0x28);
    let entsize = u16_at(elf, 0x3a);
    let shnum = u16_at(elf, 0x3c);
    let shstrndx = u16_at(elf, 0x3e);
    let header = |i: usize| shoff + i * entsize;
    if header(shnum) > elf.len() || shstrndx >= shnum {
        return Err(GadgetError::NotElf("section headers out of bounds".into()));
    }
    let str_off = u64_at(elf, header(shstrndx) + 0x18);
    let str_size = u64_at(elf, header(shstrndx) + 0x20);
    let strtab = elf
        .get(str_off..str_off + str_size)
        .ok_or_else(|| GadgetError::NotElf(".shstrtab out of bounds".into()))?;
    let name_at = |off: usize| -> &[u8] {
        let rest = &strtab[off.min(strtab.len())..];
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    };
    let mut table = strtab.to_vec();
    let mut out = elf.to_vec();
    for (old, new) in renames {
        let at = table.len() as u32;
        table.extend_from_slice(new.as_bytes());
        table.push(0);
        for i in 0..shnum {
            let h = header(i);
            if name_at(u32_at(elf, h)? as usize) == old.as_bytes() {
                out[h..h + 4].copy_from_slice(&at.to_le_bytes());
            }
        }
    }
    out.resize(out.len().next_multiple_of(8), 0);
    let new_off = out.len() as u64;
    out.extend_from_slice(&table);
    let h = header(shstrndx);
    out[h + 0x18..h + 0x20].copy_from_slice(&new_off.to_le_bytes());
    out[h + 0x20..h + 0x28].copy_from_slice(&(table.len() as u64).to_le_bytes());
    Ok(out)
}

/// `.BTF.ext` with each section-name offset in `map` replaced, in its
/// func_info, line_info and CO-RE relocation tables alike.
fn renamed_ext(ext: &[u8], map: &[(u32, u32)]) -> Result<Vec<u8>> {
    let mut out = ext.to_vec();
    let hdr_len = u32_at(ext, 4)? as usize;
    let mut tables = vec![(8, 12), (16, 20)];
    if hdr_len >= 32 {
        tables.push((24, 28));
    }
    for (off_at, len_at) in tables {
        let start = hdr_len + u32_at(ext, off_at)? as usize;
        let end = start + u32_at(ext, len_at)? as usize;
        if start == end {
            continue;
        }
        let rec_size = u32_at(ext, start)? as usize;
        let mut at = start + 4;
        while at < end {
            let name = u32_at(ext, at)?;
            let count = u32_at(ext, at + 4)? as usize;
            if let Some((_, new)) = map.iter().find(|(old, _)| *old == name) {
                out[at..at + 4].copy_from_slice(&new.to_le_bytes());
            }
            at += 8 + count * rec_size;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_spellings_map_to_what_aya_parses() {
        assert_eq!(aya_name("socket1").as_deref(), Some("socket/socket1"));
        assert_eq!(aya_name("socket"), None);
        assert_eq!(aya_name("socket/xyz"), None);
        assert_eq!(
            aya_name("raw_tp.w/sys_enter").as_deref(),
            Some("raw_tp/sys_enter")
        );
        assert_eq!(
            aya_name("raw_tracepoint.w/sys_enter").as_deref(),
            Some("raw_tp/sys_enter")
        );
        assert_eq!(
            aya_name("tcx/ingress").as_deref(),
            Some("classifier/tcx/ingress")
        );
        assert_eq!(aya_name("tc").as_deref(), Some("classifier/tc"));
        assert_eq!(
            aya_name("tc/egress").as_deref(),
            Some("classifier/tc/egress")
        );
        assert_eq!(aya_name("tracepoint/syscalls/sys_enter_openat"), None);
        assert_eq!(aya_name("uprobe.s//bin/true:main"), None);
    }
}
