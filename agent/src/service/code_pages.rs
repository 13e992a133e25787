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
//! on a file the agent maps, as system-wide uprobe gadgets do on libraries;
//! a debugger's breakpoint), also between reading `smaps` and the release.
//! `MADV_DONTNEED` would drop such a page and with it the breakpoint, and
//! the kernel puts a uprobe's breakpoint back only when it maps the file
//! again. So the release maps the file again: each unmodified code mapping
//! of the agent's own binary is replaced in place (`mmap` with `MAP_FIXED`,
//! in one step: no thread sees a hole) by a fresh mapping of the same file
//! range, with nothing resident, and the kernel installs in it every uprobe
//! registered on that range by then (`uprobe_mmap`, as for a library loaded
//! after the uprobe). Shared libraries are left as they are.
//! `MADV_PAGEOUT`, which never drops data, was measured and not kept
//! (docs/benchmarks.md): on the binary it also evicts the page cache, and
//! the next load read ~870 pages back from disk (first event 42 -> 99 ms);
//! on libraries it released no measurable RSS (other processes map their
//! pages) and cost major faults. Not covered: a breakpoint written with
//! `ptrace` into the binary in the moment between the read and the release
//! (the kernel keeps no record of it to put back).
//!
//! Before Linux 6.12 a `MAP_FIXED` mapping that fails after the old one was
//! unmapped (out of kernel memory for the new mapping's bookkeeping) leaves
//! a hole; since 6.12 the old mapping is kept on failure. The checks that
//! can fail (permissions, the file, a security module) run before the old
//! mapping is touched on every kernel.

use std::io::{BufRead, BufReader};

/// One executable file mapping of this process, from `/proc/self/smaps`.
#[derive(Debug, PartialEq, Eq)]
struct CodeMapping {
    start: usize,
    end: usize,
    /// Offset of `start` in the file, bytes.
    offset: u64,
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
            let offset = fields.next().and_then(|o| u64::from_str_radix(o, 16).ok());
            let dev = fields.next().unwrap_or("");
            let inode = fields.next().and_then(|i| i.parse().ok()).unwrap_or(0);
            let path = fields.next().unwrap_or("");
            current = perms == "r-xp" && path.starts_with('/') && offset.is_some();
            if let (true, Some(offset)) = (current, offset) {
                out.push(CodeMapping {
                    start,
                    end,
                    offset,
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

/// A file as smaps names it: device (`fe:00`) and inode.
fn file_id(file: &std::fs::File) -> std::io::Result<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    let dev = meta.dev();
    Ok((
        format!("{:02x}:{:02x}", libc::major(dev), libc::minor(dev)),
        meta.ino(),
    ))
}

/// What [`release`] maps again: this process's executable (open) and its
/// code mappings that have resident pages and no privately modified one in
/// `/proc/self/smaps` now. Errors when either file cannot be read.
fn unmodified_own_code() -> std::io::Result<(std::fs::File, Vec<CodeMapping>)> {
    // The running binary itself, even when its path was replaced or removed
    // since (an upgrade): /proc/self/exe opens the mapped inode.
    let exe = std::fs::File::open("/proc/self/exe")?;
    let own = file_id(&exe)?;
    let smaps = std::fs::File::open("/proc/self/smaps")?;
    let mappings = code_mappings(BufReader::new(smaps))
        .into_iter()
        .filter(|m| m.file == own && m.anon_kib == 0 && m.rss_kib > 0)
        .collect();
    Ok((exe, mappings))
}

/// Replaces each of `mappings` of `exe` by a fresh mapping of the same file
/// range (nothing resident; uprobes on it installed again by the kernel).
/// Returns the KiB that were resident in those replaced.
fn map_again(exe: &std::fs::File, mappings: &[CodeMapping]) -> u64 {
    use std::os::fd::AsRawFd;
    let mut released = 0;
    for m in mappings {
        let Ok(offset) = libc::off_t::try_from(m.offset) else {
            continue;
        };
        // SAFETY: the range is one of our binary's read-only code mappings,
        // replaced by a private mapping of the same file at the same offset
        // with the same protection: every page reads the bytes it read
        // before (it was unmodified when smaps was read; a uprobe placed
        // since is installed in the new mapping by the kernel). MAP_FIXED
        // replaces it in one step under the address space's lock, so code
        // running in it (on other threads, or this call's callers) faults
        // its pages in again and runs on.
        let p = unsafe {
            libc::mmap(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                exe.as_raw_fd(),
                offset,
            )
        };
        if p != libc::MAP_FAILED {
            released += m.rss_kib;
        }
    }
    released
}

/// Gives back the resident pages of this process's own executable's code
/// mappings that have no privately modified page, by mapping the same file
/// range again in their place. Returns the KiB that were resident in them;
/// errors only when `/proc/self/exe` or `/proc/self/smaps` cannot be read.
pub fn release() -> std::io::Result<u64> {
    let (exe, mappings) = unmodified_own_code()?;
    Ok(map_again(&exe, &mappings))
}

/// [`release`], logged at debug level; a failure is logged, not returned
/// (the agent runs the same either way).
pub fn release_logged(after: &str) {
    match release() {
        Ok(kib) => tracing::debug!(after, kib, "code pages mapped again"),
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
                    offset: 0x100000,
                    rss_kib: 11632,
                    anon_kib: 0,
                    file: ("fe:00".into(), 123),
                },
                CodeMapping {
                    start: 0x7f0000000000,
                    end: 0x7f0000200000,
                    offset: 0x28000,
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
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Held by the tests that need this binary's code mapping unmodified
    /// (a uprobe's breakpoint makes it modified while the uprobe lasts).
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A function of this binary for a uprobe to count calls of.
    #[inline(never)]
    fn probed(x: u64) -> u64 {
        std::hint::black_box(x.wrapping_mul(31).rotate_left(7))
    }

    /// A counting uprobe on `offset` of the file at `path`, in this process
    /// (`perf_event_open` with the uprobe PMU): its fd, or why there is none.
    fn uprobe_counter(path: &std::path::Path, offset: u64) -> Result<std::fs::File, String> {
        use std::os::fd::FromRawFd;
        let kind =
            std::fs::read_to_string("/sys/bus/event_source/devices/uprobe/type").map_err(|e| {
                format!("no uprobe PMU (/sys/bus/event_source/devices/uprobe/type: {e})")
            })?;
        let kind: u32 = kind
            .trim()
            .parse()
            .map_err(|e| format!("uprobe PMU type: {e}"))?;
        let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // perf_event_attr, version 5 (112 bytes): type, size, config 0 (an
        // entry probe), counting (no sample period), config1 the path,
        // config2 the offset.
        let mut attr = [0u8; 112];
        attr[0..4].copy_from_slice(&kind.to_ne_bytes());
        attr[4..8].copy_from_slice(&112u32.to_ne_bytes());
        attr[56..64].copy_from_slice(&(path.as_ptr() as u64).to_ne_bytes());
        attr[64..72].copy_from_slice(&offset.to_ne_bytes());
        // SAFETY: perf_event_open(2) with a fully initialised attr; `path`
        // outlives the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr.as_ptr(),
                0 as libc::pid_t,   // this process
                -1 as libc::c_int,  // any CPU
                -1 as libc::c_int,  // no group
                8 as libc::c_ulong, // PERF_FLAG_FD_CLOEXEC
            )
        };
        if fd < 0 {
            return Err(format!(
                "perf_event_open(uprobe): {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: a new fd we own.
        Ok(unsafe { std::fs::File::from_raw_fd(fd as i32) })
    }

    /// Calls counted by a counter from [`uprobe_counter`].
    fn hits(counter: &std::fs::File) -> u64 {
        let mut count = [0u8; 8];
        std::io::Read::read_exact(&mut &*counter, &mut count).unwrap();
        u64::from_ne_bytes(count)
    }

    /// The race a release must not lose: a uprobe placed on the agent's own
    /// binary after smaps was read (the mapping then unmodified) and before
    /// the release. Its breakpoint is a privately modified page the release
    /// does not know of; it still fires after the release (with
    /// MADV_DONTNEED it was dropped: 1 hit instead of 4).
    #[test]
    fn a_uprobe_placed_after_the_read_survives_the_release() {
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        let target = probed as fn(u64) -> u64 as usize;
        // Resident: this test runs from it.
        assert_eq!(probed(0), 0);
        let (exe, plan) = unmodified_own_code().unwrap();
        let m = plan
            .iter()
            .find(|m| m.start <= target && target < m.end)
            .expect("probed() is in an unmodified, resident code mapping of this binary");
        let offset = (target - m.start) as u64 + m.offset;
        let path = std::fs::read_link("/proc/self/exe").unwrap();
        let counter = match uprobe_counter(&path, offset) {
            Ok(c) => c,
            Err(why) => {
                eprintln!(
                    "skipped: cannot place a uprobe here ({why}; needs root and CONFIG_UPROBE_EVENTS)"
                );
                return;
            }
        };
        assert_eq!(probed(1), 31 << 7);
        assert_eq!(hits(&counter), 1, "the uprobe fires before the release");
        map_again(&exe, &plan);
        for i in 0..3 {
            probed(i);
        }
        let after = hits(&counter);
        // The uprobe gone, its mapping is made clean again for the other
        // tests (a kernel may keep the restored page as a modified one).
        drop(counter);
        map_again(&exe, &plan);
        assert_eq!(after, 4, "the uprobe fires after the release");
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
