//! Loading a parsed gadget into the kernel with aya and attaching its
//! programs by section name.
//!
//! Policy: every program must load and attach, or the run fails with an error
//! naming the program, its section and the kernel's reason. A gadget whose
//! programs attach only in part would report partial data as if it were
//! complete, which is worse than a clear failure. Nothing stays attached
//! after a failure: dropping the `Ebpf` detaches and unloads everything.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, OnceLock};

use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{
    FEntry, FExit, KProbe, PerfEvent, RawTracePoint, SocketFilter, TracePoint, UProbe,
    uprobe::UProbeScope,
};
use aya::{Btf, Ebpf, EbpfLoader};

use super::btf_patch;
use super::error::{GadgetError, Result, chain};
use super::object::{GadgetObject, ProgramDef};

/// The kernel's BTF, parsed on demand (about 45 ms) and shared by the loads
/// in flight. Parsed, it takes ~20 MiB of heap, so it is not kept for the
/// agent's lifetime: [`release_kernel_btf`] drops it once a gadget is attached.
static KERNEL_BTF: Mutex<Option<Arc<Btf>>> = Mutex::new(None);

pub(crate) fn kernel_btf() -> Option<Arc<Btf>> {
    let mut cached = KERNEL_BTF.lock().unwrap_or_else(|p| p.into_inner());
    if cached.is_none() {
        *cached = Btf::from_sys_fs().ok().map(Arc::new);
    }
    cached.clone()
}

/// Gives free heap pages back to the system. glibc keeps freed memory in
/// per-thread arenas; a long-lived agent calls this after big, rare frees
/// (a parsed kernel BTF, the buffers of an ended run).
pub fn trim_heap() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe { libc::malloc_trim(0) };
}

/// When dropped, forgets the parsed kernel BTF and gives the freed heap back
/// to the system.
pub struct KernelBtfRelease;

impl Drop for KernelBtfRelease {
    fn drop(&mut self) {
        KERNEL_BTF.lock().unwrap_or_else(|p| p.into_inner()).take();
        trim_heap();
    }
}

pub struct LoadRequest<'a> {
    pub obj: &'a GadgetObject,
    /// Maps whose value type is the event (tracers): rewritten before loading.
    pub tracer_maps: Vec<&'a str>,
    /// Encoded `.rodata` overrides.
    pub globals: Vec<(String, Vec<u8>)>,
    /// Ring buffer size overrides (bytes), by map name.
    pub max_entries: Vec<(String, u32)>,
}

/// Tracepoints need tracefs. Minimal hosts and containers often lack the
/// mount; as root we can add it, as libbpf-based tools do.
pub fn ensure_tracefs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let events = std::path::Path::new("/sys/kernel/tracing/events");
        if events.exists() || std::path::Path::new("/sys/kernel/debug/tracing/events").exists() {
            return;
        }
        match nix::mount::mount(Some("tracefs"), "/sys/kernel/tracing", Some("tracefs"), nix::mount::MsFlags::empty(), None::<&str>) {
            Ok(()) => tracing::info!("mounted tracefs on /sys/kernel/tracing"),
            Err(e) => tracing::warn!(error = %e, "tracefs is not mounted and mounting it failed; tracepoint gadgets will fail"),
        }
    });
}

/// Patches, loads and returns the object; programs are not attached yet.
pub fn load(req: &LoadRequest<'_>) -> Result<Ebpf> {
    ensure_tracefs();
    let bytes = if req.tracer_maps.is_empty() {
        req.obj.bytes.clone()
    } else {
        let ids = btf_patch::map_struct_ids(&req.obj.btf, &req.tracer_maps)?;
        let btf = btf_patch::rewrite_btf(&req.obj.btf_bytes, &ids)?;
        btf_patch::replace_btf_section(&req.obj.bytes, &btf)?
    };
    let mut loader = EbpfLoader::new();
    let kbtf = kernel_btf();
    loader.btf(kbtf.as_deref());
    for (name, value) in &req.globals {
        loader.override_global(name, value.as_slice(), true);
    }
    for (name, size) in &req.max_entries {
        loader.map_max_entries(name, *size);
    }
    loader
        .load(&bytes)
        .map_err(|e| GadgetError::Load(chain(&e)))
}

/// What must stay alive for attached programs (sockets of socket filters).
#[derive(Default)]
pub struct Attachments {
    pub sockets: Vec<OwnedFd>,
}

/// Loads and attaches every program of the object.
pub fn attach_all(ebpf: &mut Ebpf, obj: &GadgetObject) -> Result<Attachments> {
    attach_all_in(ebpf, obj, None)
}

/// Like [`attach_all`], with socket filters on a packet socket of the
/// network namespace `netns` (an open `/proc/PID/ns/net`) instead of the agent's.
pub fn attach_all_in(
    ebpf: &mut Ebpf,
    obj: &GadgetObject,
    netns: Option<&std::fs::File>,
) -> Result<Attachments> {
    let mut att = Attachments::default();
    let sample_hz = sample_hz(obj);
    for prog in &obj.programs {
        attach_one(ebpf, prog, &mut att, netns, sample_hz).map_err(|reason| {
            GadgetError::Program {
                program: prog.name.clone(),
                section: prog.section.clone(),
                reason,
            }
        })?;
    }
    Ok(att)
}

/// How a section name says to attach.
#[derive(Debug, PartialEq, Eq)]
pub enum AttachPoint<'s> {
    TracePoint {
        category: &'s str,
        name: &'s str,
    },
    RawTracePoint(&'s str),
    KProbe(&'s str),
    UProbe {
        target: &'s str,
        symbol: &'s str,
    },
    FEntry(&'s str),
    FExit(&'s str),
    SocketFilter,
    Iter(&'s str),
    /// Sampling on every CPU (software CPU clock).
    PerfEvent,
}

pub fn attach_point(section: &str) -> std::result::Result<AttachPoint<'_>, String> {
    let (kind, rest) = section.split_once('/').unwrap_or((section, ""));
    let need = |what: &str| format!("section `{section}` needs {what}");
    Ok(match kind {
        "tracepoint" | "tp" => {
            let (category, name) = rest
                .split_once('/')
                .ok_or_else(|| need("`tracepoint/<category>/<name>`"))?;
            AttachPoint::TracePoint { category, name }
        }
        "raw_tracepoint" | "raw_tp" if !rest.is_empty() => AttachPoint::RawTracePoint(rest),
        "kprobe" | "kretprobe" if !rest.is_empty() => AttachPoint::KProbe(rest),
        "uprobe" | "uretprobe" => {
            // libbpf form: uprobe/<binary path>:<symbol>
            let (target, symbol) = rest
                .rsplit_once(':')
                .ok_or_else(|| need("`uprobe/<binary>:<symbol>`"))?;
            AttachPoint::UProbe { target, symbol }
        }
        "fentry" if !rest.is_empty() => AttachPoint::FEntry(rest),
        "fexit" if !rest.is_empty() => AttachPoint::FExit(rest),
        "socket" | "socket_filter" => AttachPoint::SocketFilter,
        "iter" if !rest.is_empty() => AttachPoint::Iter(rest),
        "perf_event" => AttachPoint::PerfEvent,
        _ => {
            return Err(format!(
                "section `{section}` is not a program type gadgetd can attach"
            ));
        }
    })
}

fn program_err(e: &dyn std::error::Error) -> String {
    let text = chain(e);
    if text.contains("kprobe/type") {
        return format!("kprobes are not available on this kernel (no kprobe PMU): {text}");
    }
    text
}

/// Sampling rate of `perf_event` programs: `GADGET_SAMPLE_HZ(n)` (gadget/macros.h), default 49 Hz.
fn sample_hz(obj: &GadgetObject) -> u64 {
    obj.rodata
        .get("gadget_sample_hz")
        .and_then(|v| obj.rodata_bytes.get(v.offset..v.offset + 4))
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as u64)
        .filter(|&hz| hz > 0)
        .unwrap_or(49)
}

fn attach_one(
    ebpf: &mut Ebpf,
    prog: &ProgramDef,
    att: &mut Attachments,
    netns: Option<&std::fs::File>,
    sample_hz: u64,
) -> std::result::Result<(), String> {
    let point = attach_point(&prog.section)?;
    let kbtf = kernel_btf();
    let btf = kbtf.as_deref();
    let program = ebpf
        .program_mut(&prog.name)
        .ok_or_else(|| "aya did not load this program from the object".to_string())?;
    let e = |e: &dyn std::error::Error| program_err(e);
    match point {
        AttachPoint::TracePoint { category, name } => {
            let p: &mut TracePoint = program.try_into().map_err(|x| e(&x))?;
            p.load().map_err(|x| e(&x))?;
            p.attach(category, name).map_err(|x| {
                if std::path::Path::new(&format!("/sys/kernel/tracing/events/{category}/{name}"))
                    .exists()
                    || std::path::Path::new(&format!(
                        "/sys/kernel/debug/tracing/events/{category}/{name}"
                    ))
                    .exists()
                {
                    e(&x)
                } else {
                    format!(
                        "tracepoint {category}/{name} does not exist on this kernel ({})",
                        e(&x)
                    )
                }
            })?;
        }
        AttachPoint::RawTracePoint(name) => {
            let p: &mut RawTracePoint = program.try_into().map_err(|x| e(&x))?;
            p.load().map_err(|x| e(&x))?;
            p.attach(name).map_err(|x| e(&x))?;
        }
        AttachPoint::KProbe(func) => {
            let p: &mut KProbe = program.try_into().map_err(|x| e(&x))?;
            p.load().map_err(|x| e(&x))?;
            p.attach(func, 0).map_err(|x| e(&x))?;
        }
        AttachPoint::UProbe { target, symbol } => {
            let p: &mut UProbe = program.try_into().map_err(|x| e(&x))?;
            p.load().map_err(|x| e(&x))?;
            p.attach(symbol, target, UProbeScope::AllProcesses)
                .map_err(|x| e(&x))?;
        }
        AttachPoint::FEntry(func) => {
            let btf = btf.ok_or("fentry needs kernel BTF (/sys/kernel/btf/vmlinux)")?;
            let p: &mut FEntry = program.try_into().map_err(|x| e(&x))?;
            p.load(func, btf)
                .map_err(|x| format!("fentry is not usable on this kernel: {}", e(&x)))?;
            p.attach().map_err(|x| e(&x))?;
        }
        AttachPoint::FExit(func) => {
            let btf = btf.ok_or("fexit needs kernel BTF (/sys/kernel/btf/vmlinux)")?;
            let p: &mut FExit = program.try_into().map_err(|x| e(&x))?;
            p.load(func, btf)
                .map_err(|x| format!("fexit is not usable on this kernel: {}", e(&x)))?;
            p.attach().map_err(|x| e(&x))?;
        }
        AttachPoint::SocketFilter => {
            let p: &mut SocketFilter = program.try_into().map_err(|x| e(&x))?;
            p.load().map_err(|x| e(&x))?;
            let sock = match netns {
                None => packet_socket(),
                Some(ns) => packet_socket_in(ns),
            }
            .map_err(|x| format!("opening a packet socket: {x}"))?;
            p.attach(&sock).map_err(|x| e(&x))?;
            att.sockets.push(sock);
        }
        // Snapshotters load and run their iterators themselves (snapshot.rs).
        AttachPoint::Iter(_) => {}
        AttachPoint::PerfEvent => {
            let p: &mut PerfEvent = program.try_into().map_err(|x| e(&x))?;
            p.load().map_err(|x| e(&x))?;
            let cpus = aya::util::online_cpus().map_err(|(path, err)| format!("{path}: {err}"))?;
            for cpu in cpus {
                p.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(sample_hz),
                    false,
                )
                .map_err(|x| format!("sampling on CPU {cpu}: {}", e(&x)))?;
            }
        }
    }
    Ok(())
}

/// A packet socket of another network namespace: a socket belongs to the
/// namespace it was created in, so create it from a thread that joined it.
fn packet_socket_in(netns: &std::fs::File) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsFd;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            packet_socket()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("socket thread panicked")))
    })
}

/// A raw packet socket seeing every packet of the agent's network namespace.
fn packet_socket() -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_map_to_attach_points() {
        assert_eq!(
            attach_point("tracepoint/syscalls/sys_enter_openat").unwrap(),
            AttachPoint::TracePoint {
                category: "syscalls",
                name: "sys_enter_openat"
            }
        );
        assert_eq!(
            attach_point("raw_tp/sys_enter").unwrap(),
            AttachPoint::RawTracePoint("sys_enter")
        );
        assert_eq!(
            attach_point("kretprobe/do_exit").unwrap(),
            AttachPoint::KProbe("do_exit")
        );
        assert_eq!(
            attach_point("uprobe//bin/bash:readline").unwrap(),
            AttachPoint::UProbe {
                target: "/bin/bash",
                symbol: "readline"
            }
        );
        assert_eq!(attach_point("socket").unwrap(), AttachPoint::SocketFilter);
        assert!(
            attach_point("tracepoint/nocategory")
                .unwrap_err()
                .contains("tracepoint/<category>/<name>")
        );
        assert!(
            attach_point("xdp")
                .unwrap_err()
                .contains("not a program type")
        );
    }
}
