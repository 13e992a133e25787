//! Gives back the agent's mappings of code that ran once.
//!
//! Most of the agent's resident memory is not heap but its own executable's
//! file pages (~11 of ~20 MiB with one gadget loaded): start-up, D-Bus
//! handshakes and gadget loads run code that the event path never touches
//! again, and the kernel maps cached pages 64 KiB around every code fault
//! (`fault_around_bytes`), so a few MiB of once-run code stay mapped.
//! [`release`] unmaps them, and the code that runs next faults its pages
//! back in.
//!
//! A mapping can gain privately modified pages at any time (a uprobe placed
//! on a library the agent maps, as system-wide uprobe gadgets do; a
//! debugger's breakpoint), also between reading `smaps` and the `madvise`,
//! and `MADV_DONTNEED` would drop such a page and with it the breakpoint.
//! So only the agent's own binary is unmapped, when `smaps` shows it
//! unmodified; shared libraries are left as they are. `MADV_PAGEOUT`, which
//! never drops data, was measured and not kept (docs/benchmarks.md): on the
//! binary it also evicts the page cache, and the next load read ~870 pages
//! back from disk (first event 42 → 99 ms); on libraries it released no
//! measurable RSS (other processes map their pages) and cost major faults.
//! What is left is a uprobe placed on the gadgetd binary itself in the
//! moment between the read and the `madvise`.

use std::io::{BufRead, BufReader};

/// One executable file mapping of this process, from `/proc/self/smaps`.
#[derive(Debug, PartialEq, Eq)]
struct CodeMapping {
    start: usize,
    end: usize,
    /// Resident KiB (`Rss:`).
    rss_kib: u64,
    /// Privately modified KiB (`Anonymous:`): breakpoints, uprobes. They
    /// stay resident.
    anon_kib: u64,
    /// The mapped file: device (`fe:00`, as smaps writes it) and inode.
    file: (String, u64),
}

/// The executable (`r-xp`) file mappings listed in `smaps` text.
fn code_mappings(smaps: impl BufRead) -> Vec<CodeMapping> {
    let mut out: Vec<CodeMapping> = Vec::new();
    let mut current = false;
    for line in smaps.lines().map_while(Result::ok) {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            // address perms offset dev inode path
            let perms = fields.next().unwrap_or("");
            let dev = fields.nth(1).unwrap_or("");
            let inode = fields.next().and_then(|i| i.parse().ok()).unwrap_or(0);
            let path = fields.next().unwrap_or("");
            current = perms == "r-xp" && path.starts_with('/');
            if current {
                out.push(CodeMapping {
                    start,
                    end,
                    rss_kib: 0,
                    anon_kib: 0,
                    file: (dev.to_string(), inode),
                });
            }
            continue;
        }
        if !current {
            continue;
        }
        let value = || fields.clone().next().and_then(|v| v.parse::<u64>().ok());
        let m = out.last_mut().expect("current mapping");
        match first {
            "Rss:" => m.rss_kib = value().unwrap_or(0),
            "Anonymous:" => m.anon_kib = value().unwrap_or(0),
            _ => {}
        }
    }
    out
}

/// This process's executable as smaps names a mapped file (device, inode).
fn own_binary() -> Option<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/self/exe").ok()?;
    let dev = meta.dev();
    Some((
        format!("{:02x}:{:02x}", libc::major(dev), libc::minor(dev)),
        meta.ino(),
    ))
}

/// Unmaps the resident pages of this process's own executable's code
/// mappings that have no privately modified page. Returns the KiB that were
/// resident in them; errors only when `/proc/self/smaps` cannot be read.
pub fn release() -> std::io::Result<u64> {
    let smaps = std::fs::File::open("/proc/self/smaps")?;
    let own = own_binary();
    let mut released = 0;
    for m in code_mappings(BufReader::new(smaps)) {
        if own.as_ref() != Some(&m.file) || m.anon_kib > 0 || m.rss_kib == 0 {
            continue;
        }
        // SAFETY: our own binary's read-only mapping, unmodified when smaps
        // was read (no anonymous pages): MADV_DONTNEED only drops its page
        // table entries, and the next access maps the same file pages again.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            released += m.rss_kib;
        }
    }
    Ok(released)
}

/// [`release`], logged at debug level; a failure is logged, not returned
/// (the agent runs the same either way).
pub fn release_logged(after: &str) {
    match release() {
        Ok(kib) => tracing::debug!(after, kib, "code pages unmapped"),
        Err(e) => tracing::debug!(after, error = %e, "cannot read /proc/self/smaps"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0100000 r--p 00000000 fe:00 123 /usr/bin/gadgetd
Rss:                 400 kB
Anonymous:           100 kB
55d0c0100000-55d0c0e00000 r-xp 00100000 fe:00 123 /usr/bin/gadgetd
Size:              13312 kB
Rss:               11632 kB
Anonymous:             0 kB
7f0000000000-7f0000200000 r-xp 00028000 fe:00 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1304 kB
Anonymous:             8 kB
7f0000400000-7f0000402000 r-xp 00000000 00:00 0 [vdso]
Rss:                   8 kB
Anonymous:             0 kB
7f0000500000-7f0000600000 rw-p 00000000 00:00 0
Rss:                 100 kB
Anonymous:           100 kB
";

    #[test]
    fn only_executable_file_mappings_are_listed_with_their_rss() {
        let found = code_mappings(SMAPS.as_bytes());
        assert_eq!(
            found,
            [
                CodeMapping {
                    start: 0x55d0c0100000,
                    end: 0x55d0c0e00000,
                    rss_kib: 11632,
                    anon_kib: 0,
                    file: ("fe:00".into(), 123),
                },
                CodeMapping {
                    start: 0x7f0000000000,
                    end: 0x7f0000200000,
                    rss_kib: 1304,
                    anon_kib: 8,
                    file: ("fe:00".into(), 77),
                },
            ]
        );
    }

    /// Resident KiB of this process's own executable's code mappings.
    fn own_code_kib() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // code_mappings drops paths; keep the ranges of our own binary.
        let ours: Vec<(usize, usize)> = smaps
            .lines()
            .filter(|l| l.contains(" r-xp ") && l.ends_with(exe.to_str().unwrap()))
            .filter_map(|l| {
                let (s, e) = l.split_whitespace().next()?.split_once('-')?;
                Some((
                    usize::from_str_radix(s, 16).ok()?,
                    usize::from_str_radix(e, 16).ok()?,
                ))
            })
            .collect();
        assert!(!ours.is_empty(), "no code mapping of {}", exe.display());
        code_mappings(smaps.as_bytes())
            .iter()
            .filter(|m| ours.contains(&(m.start, m.end)))
            .map(|m| m.rss_kib)
            .sum()
    }

    /// The process's own executable mapping is what shrinks, and the code
    /// that runs next faults its pages back in and runs.
    #[test]
    fn releasing_reclaims_code_and_the_code_still_runs() {
        let before = own_code_kib();
        assert!(before > 0);
        let released = release().unwrap();
        assert!(released >= before, "released {released} KiB of {before}");
        let after = own_code_kib();
        // What ran between the release and this read (this read itself,
        // other tests) faulted back in, 64 KiB around each fault.
        assert!(after < before, "after {after} KiB, before {before} KiB");
        assert_eq!(format!("{:?}", (1..4).collect::<Vec<_>>()), "[1, 2, 3]");
    }

    /// A library's mapping with a privately modified page (what a uprobe
    /// or a breakpoint makes) keeps the modification: libraries are left
    /// alone, even with file pages only this process maps.
    #[test]
    fn a_modified_private_page_survives_the_release() {
        // A private writable mapping of a file that is not our binary (a
        // copy of its first pages, standing for a library), its first page
        // modified: an anonymous page in a file mapping, as a uprobe's
        // copy-on-write makes one, beside a file page (read), so that
        // release advises it.
        let len = 8192;
        let head = &std::fs::read("/proc/self/exe").unwrap()[..len];
        let path = std::env::temp_dir().join(format!("code-pages-{}", std::process::id()));
        std::fs::write(&path, head).unwrap();
        let exe = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        // SAFETY: a new private mapping of the copy.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE,
                std::os::fd::AsRawFd::as_raw_fd(&exe),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: the page is ours, mapped readable and writable just above.
        let page = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) };
        assert_eq!(&page[..4], b"\x7fELF");
        let second = page[4096];
        page[0] = 0xcc;
        // Made read-only and executable, like a code mapping, so release
        // advises it too.
        // SAFETY: the same mapping, now r-x.
        assert_eq!(
            unsafe { libc::mprotect(p, len, libc::PROT_READ | libc::PROT_EXEC) },
            0
        );
        let listed = code_mappings(BufReader::new(
            std::fs::File::open("/proc/self/smaps").unwrap(),
        ));
        let m = listed
            .iter()
            .find(|m| m.start == p as usize)
            .expect("the modified mapping is listed");
        assert_eq!((m.rss_kib, m.anon_kib), (8, 4));
        release().unwrap();
        assert_eq!(&page[..4], b"\xccELF");
        assert_eq!(page[4096], second);
        // SAFETY: unmapping what we mapped; `page` is not used after.
        assert_eq!(unsafe { libc::munmap(p, len) }, 0);
    }
}
