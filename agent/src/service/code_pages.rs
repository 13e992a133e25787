//! Gives back the agent's mappings of code that ran once.
//!
//! Most of the agent's resident memory is not heap but its own executable's
//! file pages (~11 of ~20 MiB with one gadget loaded): start-up, D-Bus
//! handshakes and gadget loads run code that the event path never touches
//! again, and the kernel maps cached pages 64 KiB around every code fault
//! (`fault_around_bytes`), so a few MiB of once-run code stay mapped.
//! [`release`] unmaps the executable file mappings (`MADV_DONTNEED`): the
//! pages stay in the page cache, and the code that runs next faults its pages
//! back in (minor faults, a few milliseconds of CPU in all).
//!
//! Only clean mappings are touched: a mapping with privately modified pages
//! (a debugger's breakpoints, uprobes placed on the agent itself) is left as
//! it is, since dropping those pages would drop the modification.

use std::io::{BufRead, BufReader};

/// One executable file mapping of this process, from `/proc/self/smaps`.
#[derive(Debug, PartialEq, Eq)]
struct CodeMapping {
    start: usize,
    end: usize,
    /// Resident KiB (`Rss:`).
    rss_kib: u64,
    /// Privately modified KiB (`Anonymous:`): breakpoints, uprobes.
    anon_kib: u64,
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
            let path = fields.nth(3).unwrap_or("");
            current = perms == "r-xp" && path.starts_with('/');
            if current {
                out.push(CodeMapping {
                    start,
                    end,
                    rss_kib: 0,
                    anon_kib: 0,
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

/// Unmaps the resident pages of this process's clean executable file
/// mappings (its own binary and shared libraries). Returns the KiB that
/// were resident in them; errors only when `/proc/self/smaps` cannot be
/// read.
pub fn release() -> std::io::Result<u64> {
    let smaps = std::fs::File::open("/proc/self/smaps")?;
    let mut released = 0;
    for m in code_mappings(BufReader::new(smaps)) {
        if m.anon_kib > 0 || m.rss_kib == 0 {
            continue;
        }
        // SAFETY: a private, read-only, unmodified file mapping (checked just
        // above: no anonymous pages): MADV_DONTNEED only drops its page table
        // entries, and the next access maps the same file pages again.
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
                    anon_kib: 0
                },
                CodeMapping {
                    start: 0x7f0000000000,
                    end: 0x7f0000200000,
                    rss_kib: 1304,
                    anon_kib: 8
                },
            ]
        );
    }

    /// The pages come back when the code runs again, and the process's own
    /// executable mapping is what shrinks.
    #[test]
    fn releasing_unmaps_code_and_the_code_still_runs() {
        let before = code_mappings(BufReader::new(
            std::fs::File::open("/proc/self/smaps").unwrap(),
        ));
        let resident: u64 = before
            .iter()
            .filter(|m| m.anon_kib == 0)
            .map(|m| m.rss_kib)
            .sum();
        assert!(resident > 0, "{before:?}");
        let released = release().unwrap();
        assert!(released > 0);
        let after: u64 = code_mappings(BufReader::new(
            std::fs::File::open("/proc/self/smaps").unwrap(),
        ))
        .iter()
        .filter(|m| m.anon_kib == 0)
        .map(|m| m.rss_kib)
        .sum();
        // What ran between the release and this read faulted back in.
        assert!(
            after < released,
            "after {after} KiB, released {released} KiB"
        );
        assert_eq!(format!("{:?}", (1..4).collect::<Vec<_>>()), "[1, 2, 3]");
    }
}
