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
//!
//! The agent's own objects (dispatchers, container catch-up, socket
//! enricher) load the same way: [`own_object`] resolves their CO-RE
//! relocations here, and [`kernel_function`] gives the iterator loads the one
//! kernel type id aya asks for, instead of aya's parse of the whole BTF.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use aya::EbpfLoader;
use aya_obj::btf::{Btf, BtfType, Func, FuncLinkage, Ptr};

use super::btf_table::Kind;
use super::core_relo;
use super::error::{GadgetError, Result};

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
/// needs aya's CO-RE after all. It creates every map type the kernel
/// knows, also those aya 0.14 has no wrapper for (task, inode and cgroup
/// local storage, user ring buffers, struct_ops, arenas): the kernel
/// checks their definitions, and the runtime reaches maps by fd.
pub fn new<'a>() -> EbpfLoader<'a> {
    let mut loader = without_kernel_btf();
    loader.allow_unsupported_maps();
    loader
}

fn without_kernel_btf<'a>() -> EbpfLoader<'a> {
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

/// One of the agent's own objects (`what` names it in errors: "the
/// dispatcher") with every CO-RE relocation resolved against the running
/// kernel ([`core_relo::fix_up_all`]), ready for a [`new`] loader. The
/// kernel's BTF is read only when the object has CO-RE relocations (the
/// dispatchers have none). A relocation this agent cannot parse is an error:
/// a loader without kernel BTF would fail on it later, less clearly.
pub(crate) fn own_object(what: &str, bytes: &'static [u8]) -> Result<Cow<'static, [u8]>> {
    let fixed = core_relo::fix_up_all(bytes, core_relo::kernel_table_transient, None)
        .map_err(|e| GadgetError::Load(format!("{what}: {e}")))?;
    if fixed.left_to_aya > 0 {
        return Err(GadgetError::Load(format!(
            "{what}: {} CO-RE relocation(s) the agent cannot parse (a broken build of gadgetd)",
            fixed.left_to_aya
        )));
    }
    for p in &fixed.poisoned {
        tracing::debug!(object = what, relocation = %p, "CO-RE relocation unresolved; the instruction is poisoned");
    }
    Ok(fixed.bytes.map_or(Cow::Borrowed(bytes), Cow::Owned))
}

/// The kernel's BTF as aya needs it to load an iterator program
/// (`Iter::load` looks up `bpf_iter_<type>` and passes its id to the
/// kernel): an aya [`Btf`] whose only real type is the kernel function
/// `name`, at the id it has in `/sys/kernel/btf/vmlinux`; every id below it
/// is an unnamed pointer. aya's parse of the whole BTF costs ~39 ms and
/// ~25 MiB; this one a few ms and 72 bytes per placeholder (~9 MiB for a
/// 6.18 kernel's ~127,000 types), freed with the value. `None` when the
/// kernel's BTF has no such function; errors say why the BTF was unreadable.
pub(crate) fn kernel_function(name: &str) -> Result<Option<Btf>> {
    let table = core_relo::kernel_table_transient()?;
    let Some(id) = table
        .ids_named(&Kind::Func(0), name)
        .into_iter()
        .find(|&id| table.name(id) == name)
    else {
        return Ok(None);
    };
    let mut btf = Btf::new();
    for _ in 1..id {
        btf.add_type(BtfType::Ptr(Ptr::new(0, 0)));
    }
    let name_offset = btf.add_string(name);
    // The prototype is never read: aya only wants the function's id.
    btf.add_type(BtfType::Func(Func::new(
        name_offset,
        0,
        FuncLinkage::Static,
    )));
    Ok(Some(btf))
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

    /// Iterator targets of several kinds come back at their kernel ids,
    /// where aya's own lookup (which `Iter::load` does) finds them; a
    /// missing function is `None`.
    #[test]
    fn kernel_function_is_at_its_kernel_id() {
        let table = crate::core_relo::kernel_table_transient().unwrap();
        for name in ["bpf_iter_task_file", "bpf_iter_tcp", "bpf_iter_task"] {
            let want = table.ids_named(&super::Kind::Func(0), name);
            assert_eq!(want.len(), 1, "{name}: {want:?}");
            let btf = super::kernel_function(name).unwrap().unwrap();
            let got = btf
                .id_by_type_name_kind(name, aya_obj::btf::BtfKind::Func)
                .unwrap();
            assert_eq!(got, want[0], "{name}");
        }
        assert!(
            super::kernel_function("bpf_iter_no_such_target")
                .unwrap()
                .is_none()
        );
    }

    /// The agent's own objects load without aya's CO-RE: each has CO-RE
    /// relocations (`__sk_buff` and kernel structs are relocatable) and
    /// none is left to aya.
    #[test]
    fn own_objects_need_no_kernel_btf_in_aya() {
        for (what, bytes) in [
            ("net dispatcher", crate::net_dispatch::OBJECT),
            ("tc dispatcher", crate::tc_dispatch::OBJECT),
            ("catch-up", crate::catchup::OBJECT),
            ("socket enricher", crate::socket_enricher::OBJECT),
        ] {
            if bytes.is_empty() {
                eprintln!("skipped {what}: gadgetd was built without clang");
                continue;
            }
            let fixed =
                crate::core_relo::fix_up_all(bytes, crate::core_relo::kernel_table_transient, None)
                    .unwrap();
            assert_eq!(fixed.left_to_aya, 0, "{what}");
            assert!(fixed.resolved > 0, "{what}");
            super::own_object(what, bytes).unwrap();
        }
    }
}
