//! What a live run exposes to a metrics scraper (Prometheus): per-program
//! run statistics (`bpf_prog_info.run_cnt` / `run_time_ns`, counted while
//! [`enable_run_time_stats`] is held), read through the run's own program
//! descriptors, so a scrape never touches the run's event path.
//!
//! A [`RunMetrics`] is built once when the run starts and shared (`Arc`):
//! a scrape racing the run's stop still reads valid descriptors, and the
//! kernel objects go away when the last holder drops it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use aya::Ebpf;
use aya_obj::generated::bpf_prog_info;

/// `BPF_OBJ_GET_INFO_BY_FD` (bpf(2) command 15).
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The run statistics of one program of a run, summed over the run's
/// instances (socket filters load once per network namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    /// The program's function name in the object.
    pub name: String,
    /// Times the program ran (0 unless run-time statistics are enabled).
    pub run_count: u64,
    /// Nanoseconds spent running it (0 unless statistics are enabled).
    pub run_time_ns: u64,
    /// Runs skipped because the program was already running on that CPU.
    pub recursion_misses: u64,
}

/// A loaded program's name and a descriptor of our own for reading its info.
struct ProgramHandle {
    name: String,
    fd: OwnedFd,
}

/// The metrics sources of one live run. Built by [`crate::Gadget::start`];
/// get it with [`crate::Running::metrics`].
pub struct RunMetrics {
    programs: Vec<ProgramHandle>,
}

impl std::fmt::Debug for RunMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMetrics")
            .field("programs", &self.programs.len())
            .finish()
    }
}

impl RunMetrics {
    /// Duplicates the descriptors of every loaded program of `instances`
    /// (programs that were not loaded, disabled ones, are left out).
    pub(crate) fn collect(instances: &[Ebpf]) -> RunMetrics {
        let mut programs = Vec::new();
        for ebpf in instances {
            for (name, program) in ebpf.programs() {
                let Ok(fd) = program.fd() else { continue };
                match fd.as_fd().try_clone_to_owned() {
                    Ok(fd) => programs.push(ProgramHandle {
                        name: name.to_string(),
                        fd,
                    }),
                    Err(e) => tracing::debug!(program = name, error = %e,
                        "no program statistics: cannot duplicate its descriptor"),
                }
            }
        }
        RunMetrics { programs }
    }

    /// The current statistics of each program, one entry per name, in
    /// object order. A program whose info cannot be read is left out.
    pub fn programs(&self) -> Vec<ProgramStats> {
        let mut out: Vec<ProgramStats> = Vec::with_capacity(self.programs.len());
        for p in &self.programs {
            let Ok(info) = prog_info(&p.fd) else { continue };
            match out.iter_mut().find(|s| s.name == p.name) {
                Some(s) => {
                    s.run_count += info.run_cnt;
                    s.run_time_ns += info.run_time_ns;
                    s.recursion_misses += info.recursion_misses;
                }
                None => out.push(ProgramStats {
                    name: p.name.clone(),
                    run_count: info.run_cnt,
                    run_time_ns: info.run_time_ns,
                    recursion_misses: info.recursion_misses,
                }),
            }
        }
        out
    }
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The kernel's `bpf_prog_info` of a program descriptor.
fn prog_info(fd: &OwnedFd) -> std::io::Result<bpf_prog_info> {
    // SAFETY: bpf_prog_info is plain integers and arrays; all-zero is valid.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<bpf_prog_info>() as u32,
        info: &mut info as *mut bpf_prog_info as u64,
    };
    // SAFETY: attr is the `info` member of union bpf_attr; the kernel writes
    // at most info_len bytes into `info`, which lives through the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoAttr,
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(info)
}

/// Keeps the kernel counting every program's runs and run time
/// (`BPF_ENABLE_STATS`, `BPF_STATS_RUN_TIME`) while held. Counting costs
/// two clock reads per program run, host-wide.
pub struct RunTimeStats {
    _fd: OwnedFd,
}

/// Turns run-time statistics on for as long as the result is held; an
/// error says why not (kernels before 5.8, no CAP_SYS_ADMIN).
pub fn enable_run_time_stats() -> std::io::Result<RunTimeStats> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map(|fd| RunTimeStats { _fd: fd })
        .map_err(|e| std::io::Error::other(format!("BPF_ENABLE_STATS: {e}")))
}
