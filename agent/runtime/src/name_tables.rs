//! Number-to-name tables per architecture, from maintained crates rather than
//! tables of our own:
//!
//! - syscalls: the `syscalls` crate (0.8), whose per-architecture tables are
//!   generated from the kernel's own syscall tables; x86_64 and aarch64
//!   (the architectures gadget images ship for) are compiled in on every
//!   host, so an event from an arm64 host decodes right on an x86_64 agent.
//! - errno: `syscalls::Errno`, the kernel's asm-generic numbering, which x86_64
//!   and aarch64 share.
//! - signals: `nix::sys::signal::Signal` (the C library's numbering, again the
//!   same on both), real-time signals as `SIGRTMIN+n`.
//!
//! Which architecture an event came from is the caller's to say ([`Arch`]);
//! [`Arch::EVENTS`] is the seam: today every event comes from this host.

use std::borrow::Cow;

/// A CPU architecture whose syscall numbering we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86_64 (OCI `amd64`): syscall 0 is `read`.
    X86_64,
    /// aarch64 (OCI `arm64`): the asm-generic table, syscall 0 is `io_setup`.
    Aarch64,
}

impl Arch {
    /// The architecture of the host the events come from. Every event comes
    /// from the agent's own host for now; a remote source would carry its
    /// architecture (an OCI platform name, see [`Arch::from_oci`]) and
    /// resolve names with it instead.
    pub const EVENTS: Option<Arch> = Arch::host();

    /// The architecture this agent was built for; `None` on one we have no
    /// tables for (names then print empty, numbers stay).
    pub const fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// From an OCI platform architecture (`amd64`, `arm64`) or a kernel one
    /// (`x86_64`, `aarch64`).
    #[cfg_attr(not(test), allow(dead_code))] // the seam for events of other hosts; tested
    pub fn from_oci(name: &str) -> Option<Arch> {
        match name {
            "amd64" | "x86_64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// The name of syscall `nr` on this architecture (0 is a real syscall).
    pub fn syscall_name(self, nr: u64) -> Option<&'static str> {
        let nr = usize::try_from(nr).ok()?;
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::new(nr).map(|s| s.name()),
            Arch::Aarch64 => syscalls::aarch64::Sysno::new(nr).map(|s| s.name()),
        }
    }

    /// The number of syscall `name` on this architecture.
    pub fn syscall_number(self, name: &str) -> Option<u32> {
        let nr = match self {
            Arch::X86_64 => name.parse::<syscalls::x86_64::Sysno>().ok()?.id(),
            Arch::Aarch64 => name.parse::<syscalls::aarch64::Sysno>().ok()?.id(),
        };
        u32::try_from(nr).ok()
    }
}

/// `ENOENT` for 2; `None` for 0 and numbers with no name.
pub fn errno_name(n: u64) -> Option<&'static str> {
    let n = i32::try_from(n).ok().filter(|n| *n > 0)?;
    syscalls::Errno::new(n).name()
}

/// `SIGKILL` for 9, `SIGRTMIN+2` for 34; `None` for 0 and numbers past `SIGRTMAX`.
pub fn signal_name(n: u64) -> Option<Cow<'static, str>> {
    const SIGRTMIN: u64 = 32;
    const SIGRTMAX: u64 = 64;
    match n {
        0 => None,
        SIGRTMIN..=SIGRTMAX => Some(format!("SIGRTMIN+{}", n - SIGRTMIN).into()),
        _ => nix::sys::signal::Signal::try_from(i32::try_from(n).ok()?)
            .ok()
            .map(|s| s.as_str().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscalls_of_both_architectures_on_any_host() {
        // Syscall 0 is `read` on x86_64 (issue 18 item 13) and io_setup on aarch64.
        for (arch, nr, name) in [
            (Arch::X86_64, 0, "read"),
            (Arch::X86_64, 1, "write"),
            (Arch::X86_64, 2, "open"),
            (Arch::X86_64, 59, "execve"),
            (Arch::X86_64, 257, "openat"),
            (Arch::X86_64, 231, "exit_group"),
            (Arch::Aarch64, 0, "io_setup"),
            (Arch::Aarch64, 56, "openat"),
            (Arch::Aarch64, 63, "read"),
            (Arch::Aarch64, 64, "write"),
            (Arch::Aarch64, 221, "execve"),
            (Arch::Aarch64, 94, "exit_group"),
        ] {
            assert_eq!(arch.syscall_name(nr), Some(name), "{arch:?} {nr}");
            assert_eq!(
                arch.syscall_number(name),
                Some(nr as u32),
                "{arch:?} {name}"
            );
        }
        // aarch64 has no open(2), only openat; numbers past the table have no name.
        assert_eq!(Arch::Aarch64.syscall_number("open"), None);
        for arch in [Arch::X86_64, Arch::Aarch64] {
            assert_eq!(arch.syscall_name(100_000), None);
            assert_eq!(arch.syscall_name(u64::MAX), None);
            assert_eq!(arch.syscall_number("no_such_syscall"), None);
        }
    }

    #[test]
    fn architectures_by_oci_and_kernel_names() {
        assert_eq!(Arch::from_oci("amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_oci("x86_64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_oci("arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::from_oci("aarch64"), Some(Arch::Aarch64));
        assert_eq!(Arch::from_oci("riscv64"), None);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(Arch::EVENTS, Some(Arch::X86_64));
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Arch::EVENTS, Some(Arch::Aarch64));
    }

    #[test]
    fn errno_and_signal_names() {
        for (n, name) in [
            (1, "EPERM"),
            (2, "ENOENT"),
            (3, "ESRCH"),
            (13, "EACCES"),
            (98, "EADDRINUSE"),
            (110, "ETIMEDOUT"),
            (133, "EHWPOISON"),
        ] {
            assert_eq!(errno_name(n), Some(name), "{n}");
        }
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_name(4096), None);
        assert_eq!(errno_name(u64::MAX), None);
        for (n, name) in [
            (1, "SIGHUP"),
            (9, "SIGKILL"),
            (10, "SIGUSR1"),
            (15, "SIGTERM"),
            (17, "SIGCHLD"),
            (31, "SIGSYS"),
            (32, "SIGRTMIN+0"),
            (34, "SIGRTMIN+2"),
            (64, "SIGRTMIN+32"),
        ] {
            assert_eq!(signal_name(n).as_deref(), Some(name), "{n}");
        }
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(65), None);
        assert_eq!(signal_name(u64::MAX), None);
    }
}
