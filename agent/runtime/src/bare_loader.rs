//! An aya [`EbpfLoader`] that has not parsed the kernel's BTF.
//!
//! aya 0.14's `EbpfLoader::new()` always parses `/sys/kernel/btf/vmlinux`
//! into its own structures (~45 ms and ~25 MiB of heap in a release build on
//! a 6.18 kernel), even when the caller then sets `.btf(None)`, and the
//! loader's fields are private. The runtime resolves CO-RE relocations
//! itself ([`super::core_relo::fix_up_all`]), so that parse is pure cost.
//!
//! [`new`] builds the loader on a short-lived thread that Landlock forbids
//! to read files: aya's read of the kernel BTF fails at once and the loader
//! comes back without one. Landlock restricts only the thread that asks
//! (and threads it would start), needs no privilege, and the thread ends
//! right after. Where Landlock is unavailable (kernel before 5.13, LSM not
//! enabled, the syscall filtered), the loader is built as usual: correct,
//! only slower.

use std::sync::atomic::{AtomicBool, Ordering};

use aya::EbpfLoader;

/// `LANDLOCK_ACCESS_FS_READ_FILE` (linux/landlock.h).
const ACCESS_FS_READ_FILE: u64 = 1 << 2;

/// `struct landlock_ruleset_attr` as of Landlock ABI 1 (the kernel takes
/// the size it is given).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// Set once Landlock failed here: later calls go straight to the fallback.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Forbids the calling thread (only it) to open files for reading.
/// Returns false, changing nothing that matters, when the kernel refuses.
fn deny_file_reads_on_this_thread() -> bool {
    let attr = RulesetAttr {
        handled_access_fs: ACCESS_FS_READ_FILE,
    };
    // SAFETY: landlock_create_ruleset reads `size_of::<RulesetAttr>()` bytes
    // of a valid, live struct; the fd it returns is owned right away.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: `fd` is a fresh descriptor returned above, owned from here.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    // Landlock requires no_new_privs (or CAP_SYS_ADMIN); the flag is per
    // thread and this thread ends after building the loader.
    // SAFETY: plain prctl/syscall calls with integer arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return false;
        }
        libc::syscall(
            libc::SYS_landlock_restrict_self,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            0u32,
        ) == 0
    }
}

/// An [`EbpfLoader`] with no kernel BTF, built without parsing it where
/// Landlock allows (see the module docs); set `.btf(...)` on it if a load
/// needs aya's CO-RE after all.
pub fn new<'a>() -> EbpfLoader<'a> {
    if !UNAVAILABLE.load(Ordering::Relaxed) {
        let built = std::thread::Builder::new()
            .name("bare-loader".into())
            .spawn(|| deny_file_reads_on_this_thread().then(EbpfLoader::new))
            .ok()
            .and_then(|t| t.join().ok())
            .flatten();
        if let Some(mut loader) = built {
            loader.btf(None);
            return loader;
        }
        UNAVAILABLE.store(true, Ordering::Relaxed);
        tracing::debug!("Landlock is unavailable: each load parses the kernel BTF once more (aya)");
    }
    let mut loader = EbpfLoader::new();
    loader.btf(None);
    loader
}

#[cfg(test)]
mod tests {
    /// The restricted thread cannot read the kernel's BTF (so aya's parse
    /// fails at once); other threads still can, and the loader comes back.
    #[test]
    fn only_the_loader_thread_is_denied_file_reads() {
        let denied = std::thread::spawn(|| {
            if !super::deny_file_reads_on_this_thread() {
                return None;
            }
            Some(std::fs::read("/sys/kernel/btf/vmlinux").map_err(|e| e.kind()))
        })
        .join()
        .unwrap();
        match denied {
            Some(read) => assert_eq!(read, Err(std::io::ErrorKind::PermissionDenied)),
            None => eprintln!("skipped the Landlock check: this kernel refuses Landlock"),
        }
        let _loader = super::new();
        assert!(std::fs::read("/proc/self/status").is_ok());
    }
}
