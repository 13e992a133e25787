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
    BtfTracePoint, FEntry, FExit, KProbe, Lsm, PerfEvent, RawTracePoint, SchedClassifier,
    SocketFilter, TracePoint, UProbe,
    uprobe::{UProbeAttachLocation, UProbeScope},
};
use aya::{Btf, Ebpf};

use super::bare_loader;
use super::btf_patch;
use super::core_relo;
use super::error::{GadgetError, Result, chain};
use super::externs;
use super::object::{GadgetObject, ProgramDef};
use super::pin_dir::{self, PinDir};
use super::prog_array;
use super::sections;
use super::socket_enricher;
use super::tc;
use super::uprobe_symbol;
use super::uprobe_target;

/// The kernel's BTF as aya parses it, on demand (about 45 ms) and shared by
/// the loads in flight: only for what needs aya's own (fentry, fexit,
/// tp_btf, lsm and iterator programs, a relocation [`core_relo`] leaves to
/// aya). Parsed, it takes ~20 MiB of heap, so it is not kept for the agent's
/// lifetime: [`KernelBtfRelease`] drops it once a gadget is attached.
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
        core_relo::release_kernel_table();
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
/// Maps pinned by name are unpinned again at once (their fds stay open);
/// [`load_pinned`] keeps the pins for the run.
pub fn load(req: &LoadRequest<'_>) -> Result<Ebpf> {
    load_pinned(req).map(|(ebpf, _pins)| ebpf)
}

/// Like [`load`]; maps declared with `LIBBPF_PIN_BY_NAME` are pinned in a
/// bpffs of this run's own ([`PinDir`]), removed when the guard drops.
pub fn load_pinned(req: &LoadRequest<'_>) -> Result<(Ebpf, Option<PinDir>)> {
    ensure_tracefs();
    // Every program's section must say how to attach it (tail-call targets
    // only run from their program array).
    let tail_targets = prog_array::initial_slots(&req.obj.bytes, &req.obj.btf)?;
    for prog in &req.obj.programs {
        if tail_targets.iter().all(|s| s.program != prog.name) {
            attach_point(&prog.section).map_err(|reason| GadgetError::Program {
                program: prog.name.clone(),
                section: prog.section.clone(),
                reason,
            })?;
        }
    }
    let prog_arrays: Vec<u32> = prog_array::prog_array_maps(&req.obj.btf)?
        .iter()
        .map(|m| m.struct_id)
        .collect();
    let bytes = if req.tracer_maps.is_empty() && prog_arrays.is_empty() {
        req.obj.bytes.clone()
    } else {
        let ids = btf_patch::map_struct_ids(&req.obj.btf, &req.tracer_maps)?;
        let btf = btf_patch::rewrite_maps(&req.obj.btf_bytes, &ids, &prog_arrays)?;
        btf_patch::replace_btf_section(&req.obj.bytes, &btf)?
    };
    // Externs: `.kconfig` values defined in the object, anything else named (externs.rs).
    externs::check_undefined(&bytes, &req.obj.btf)?;
    let bytes = externs::place_kconfig(&bytes, &req.obj.btf)?.unwrap_or(bytes);
    let bytes = externs::place_ksyms(&bytes, &req.obj.btf)?.unwrap_or(bytes);
    // Section names as libbpf spells them, which aya-obj 0.3 rejects (sections.rs).
    let bytes = sections::rename(&bytes)?.unwrap_or(bytes);
    // CO-RE relocations aya-obj 0.3 cannot resolve (core_relo.rs).
    // ... and against the socket enricher's types (socket_enricher.rs).
    let sockets = socket_enricher::uses_sockets_map(req.obj);
    let extra = if sockets {
        Some(socket_enricher::value_btf()?)
    } else {
        None
    };
    // Every relocation is resolved here when it can be, so aya gets no
    // kernel BTF: its parse cost ~45 ms and ~25 MiB per load.
    let fixed = core_relo::fix_up_all(&bytes, core_relo::kernel_table, extra.as_deref())?;
    for p in &fixed.poisoned {
        tracing::debug!(relocation = %p, "CO-RE relocation unresolved; the instruction is poisoned");
    }
    let bytes = fixed.bytes.unwrap_or(bytes);
    // The gadget's gadget_sockets is the running enricher's map (a 1-entry
    // dummy when none runs: its full-size value would cost ~130 MiB).
    let sockets_map = sockets
        .then(socket_enricher::current)
        .flatten()
        .map(|e| e.map_path());
    let mut loader = bare_loader::new();
    match &sockets_map {
        Some(path) => loader.map_pin_path(socket_enricher::MAP, path.as_path()),
        None if sockets => loader.map_max_entries(socket_enricher::MAP, 1),
        None => &mut loader,
    };
    let kbtf = (fixed.left_to_aya > 0).then(kernel_btf).flatten();
    if kbtf.is_some() {
        loader.btf(kbtf.as_deref());
    }
    for (name, value) in &req.globals {
        loader.override_global(name, value.as_slice(), true);
    }
    for (name, size) in &req.max_entries {
        loader.map_max_entries(name, *size);
    }
    let pins = if pin_dir::wants_pinning(&req.obj.btf)? {
        let dir = PinDir::create()?;
        loader.default_map_pin_directory(dir.path());
        Some(dir)
    } else {
        None
    };
    let ebpf = loader
        .load(&bytes)
        .map_err(|e| GadgetError::Load(chain(&e)))?;
    Ok((ebpf, pins))
}

/// What must stay alive for attached programs (sockets of socket filters),
/// and what became of each program.
#[derive(Default)]
pub struct Attachments {
    pub sockets: Vec<OwnedFd>,
    /// Socket filters: their dispatchers, per network namespace (net_dispatch.rs).
    pub net: std::sync::Arc<super::net_dispatch::NetDispatch>,
    /// tc programs: their dispatchers, one per interface and program
    /// (tc_dispatch.rs). Declared before `qdiscs`, dropped first.
    pub tc: Vec<super::tc_dispatch::TcDispatcher>,
    /// clsact qdiscs this run added for tc programs (kernels before 6.6),
    /// removed when the run ends. Declared before `pins`, dropped first.
    pub qdiscs: Vec<tc::Clsact>,
    /// The run's bpffs for pinned maps, if any ([`load_pinned`]).
    pub pins: Option<PinDir>,
    /// One entry per program of the object, in object order.
    pub programs: Vec<ProgramReport>,
}

/// What became of one program of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramReport {
    pub program: String,
    pub section: String,
    pub status: ProgramStatus,
}

impl ProgramReport {
    /// As the stream header reports it.
    pub fn state(&self) -> gadgetd_dbus::stream::ProgramState {
        let (status, reason) = match &self.status {
            ProgramStatus::Attached => ("attached", None),
            ProgramStatus::Disabled => ("disabled", None),
            ProgramStatus::TailCall => ("tail-call", None),
            ProgramStatus::Skipped(why) => ("skipped", Some(why.clone())),
        };
        gadgetd_dbus::stream::ProgramState {
            name: self.program.clone(),
            section: self.section.clone(),
            status: status.into(),
            reason,
        }
    }
}

/// The per-program policy: everything must attach, except what is disabled
/// on purpose or probes a library the host does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramStatus {
    Attached,
    /// Its attach target is `gadget_program_disabled` (Inspektor Gadget's
    /// convention): not loaded, not attached.
    Disabled,
    /// Runs only as a tail call from a program array.
    TailCall,
    /// A uprobe whose target binary or library does not exist here, or
    /// lacks the symbol (no debug file has it either): skipped with a
    /// warning, as Inspektor Gadget does. The reason says which.
    Skipped(String),
}

impl std::fmt::Display for ProgramStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProgramStatus::Attached => f.write_str("attached"),
            ProgramStatus::Disabled => f.write_str("disabled (gadget_program_disabled)"),
            ProgramStatus::TailCall => f.write_str("tail-call target"),
            ProgramStatus::Skipped(why) => write!(f, "skipped: {why}"),
        }
    }
}

/// The attach target `gadget_program_disabled` marks a program off.
const DISABLED: &str = "gadget_program_disabled";

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
    attach_all_with(
        ebpf,
        obj,
        &Targets {
            netns,
            ..Targets::default()
        },
    )
}

/// Where a run's programs attach, besides what their sections say.
#[derive(Debug, Default, Clone, Copy)]
pub struct Targets<'a> {
    /// Socket filters: a packet socket of this network namespace (an open
    /// `/proc/PID/ns/net`) instead of the agent's.
    pub netns: Option<&'a std::fs::File>,
    /// Socket filters and tc programs: loaded but attached nowhere yet (a
    /// container selection that matches none so far); `Attachments::net`
    /// and `tc_follow.rs` attach them later.
    pub netns_later: bool,
    /// Cgroup programs: on each of these cgroup2 directories; none: the cgroup2 root.
    pub cgroups: &'a [std::path::PathBuf],
    /// tc programs: behind a dispatcher on each of these interfaces (of the
    /// agent's namespace), each with the namespace its packets are in.
    pub ifaces: &'a [tc::AttachIface],
    /// Uprobes: targets resolved in the root file systems of these
    /// processes (`/proc/PID/root`); none: the agent's.
    pub roots: &'a [u32],
}

/// Like [`attach_all_in`], with every kind of target named ([`Targets`]).
pub fn attach_all_with(
    ebpf: &mut Ebpf,
    obj: &GadgetObject,
    targets: &Targets<'_>,
) -> Result<Attachments> {
    let mut att = Attachments::default();
    let sample_hz = sample_hz(obj);
    let slots = prog_array::initial_slots(&obj.bytes, &obj.btf)?;
    fill_prog_arrays(ebpf, obj, &slots)?;
    for prog in &obj.programs {
        let report = |status| ProgramReport {
            program: prog.name.clone(),
            section: prog.section.clone(),
            status,
        };
        if slots.iter().any(|s| s.program == prog.name) {
            att.programs.push(report(ProgramStatus::TailCall));
            continue;
        }
        let status = attach_one(ebpf, prog, &mut att, targets, sample_hz).map_err(|reason| {
            match core_relo::explain_poison(&obj.bytes, &prog.name, &reason) {
                Some(why) => GadgetError::Load(why),
                None => GadgetError::Program {
                    program: prog.name.clone(),
                    section: prog.section.clone(),
                    reason,
                },
            }
        })?;
        if let ProgramStatus::Skipped(why) = &status {
            tracing::warn!(program = %prog.name, section = %prog.section, "{why}");
        }
        att.programs.push(report(status));
    }
    Ok(att)
}

/// Loads each tail-call target and puts it in its program-array slot
/// (prog_array.rs), before any program attaches.
fn fill_prog_arrays(ebpf: &mut Ebpf, obj: &GadgetObject, slots: &[prog_array::Slot]) -> Result<()> {
    use aya::programs::Program;
    for slot in slots {
        let prog_err = |reason: String| GadgetError::Program {
            program: slot.program.clone(),
            section: obj
                .programs
                .iter()
                .find(|p| p.name == slot.program)
                .map_or_else(String::new, |p| p.section.clone()),
            reason,
        };
        let program = ebpf
            .program_mut(&slot.program)
            .ok_or_else(|| prog_err("aya did not load this program from the object".into()))?;
        let loaded = match program {
            Program::TracePoint(p) => p.load(),
            Program::RawTracePoint(p) => p.load(),
            Program::KProbe(p) => p.load(),
            Program::UProbe(p) => p.load(),
            Program::SocketFilter(p) => p.load(),
            Program::PerfEvent(p) => p.load(),
            Program::SchedClassifier(p) => p.load(),
            Program::Xdp(p) => p.load(),
            other => {
                return Err(prog_err(format!(
                    "a {:?} program cannot be a tail-call target here (use a tracepoint, raw tracepoint, kprobe, uprobe, socket, perf_event, tc or xdp program)",
                    other.prog_type()
                )));
            }
        };
        // Loaded already when it fills two slots.
        if let Err(e) = loaded
            && !matches!(e, aya::programs::ProgramError::AlreadyLoaded)
        {
            return Err(prog_err(program_err(&e)));
        }
        let fd = program
            .fd()
            .and_then(|fd| fd.try_clone().map_err(Into::into))
            .map_err(|e| prog_err(program_err(&e)))?;
        let map_err = |reason: String| GadgetError::MapConvention {
            map: slot.map.clone(),
            reason,
        };
        let map = ebpf
            .map_mut(&slot.map)
            .ok_or_else(|| map_err("aya did not create this map".into()))?;
        let mut array = aya::maps::ProgramArray::try_from(map).map_err(|e| map_err(chain(&e)))?;
        array.set(slot.index, &fd, 0).map_err(|e| {
            map_err(format!(
                "putting `{}` in slot {}: {}",
                slot.program,
                slot.index,
                chain(&e)
            ))
        })?;
    }
    Ok(())
}

/// How a section name says to attach.
#[derive(Debug, PartialEq, Eq)]
pub enum AttachPoint<'s> {
    TracePoint {
        category: &'s str,
        name: &'s str,
    },
    RawTracePoint(&'s str),
    /// `tp_btf/<name>`: a BTF-enabled raw tracepoint.
    BtfTracePoint(&'s str),
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
    /// Attach target `gadget_program_disabled`: left alone.
    Disabled,
    /// `lsm/<hook>` (BPF LSM; `lsm.s/` sleepable).
    Lsm(&'s str),
    /// `cgroup_skb/ingress|egress`, `cgroup/sock_create`, `cgroup/connect4`, ...:
    /// on the run's cgroup (`RunOptions::cgroup`, else the cgroup2 root).
    Cgroup,
    /// `tc`, `tc/ingress`, `classifier/egress/…`, `tcx/ingress`, ...: on the
    /// run's interfaces (`RunOptions::iface` or the containers' veths); see tc.rs.
    Tc,
}

pub fn attach_point(section: &str) -> std::result::Result<AttachPoint<'_>, String> {
    let (kind, rest) = section.split_once('/').unwrap_or((section, ""));
    let need = |what: &str| format!("section `{section}` needs {what}");
    if rest.rsplit(['/', ':']).next() == Some(DISABLED) {
        return Ok(AttachPoint::Disabled);
    }
    Ok(match kind {
        "tracepoint" | "tp" => {
            let (category, name) = rest
                .split_once('/')
                .ok_or_else(|| need("`tracepoint/<category>/<name>`"))?;
            AttachPoint::TracePoint { category, name }
        }
        "raw_tracepoint" | "raw_tp" | "raw_tracepoint.w" | "raw_tp.w" if !rest.is_empty() => {
            AttachPoint::RawTracePoint(rest)
        }
        "tp_btf" if !rest.is_empty() => AttachPoint::BtfTracePoint(rest),
        "kprobe" | "kretprobe" if !rest.is_empty() => AttachPoint::KProbe(rest),
        "uprobe" | "uretprobe" | "uprobe.s" | "uretprobe.s" => {
            // libbpf form: uprobe/<binary path>:<symbol>
            let (target, symbol) = rest
                .rsplit_once(':')
                .ok_or_else(|| need("`uprobe/<binary>:<symbol>`"))?;
            uprobe_target::parse(symbol)?;
            AttachPoint::UProbe { target, symbol }
        }
        "fentry" | "fentry.s" if !rest.is_empty() => AttachPoint::FEntry(rest),
        "fexit" | "fexit.s" if !rest.is_empty() => AttachPoint::FExit(rest),
        // libbpf: `socket`, `socket/<anything>`; before 1.0 any `socket` prefix (`socket1`).
        k if k.starts_with("socket") => AttachPoint::SocketFilter,
        "iter" if !rest.is_empty() => AttachPoint::Iter(rest),
        "perf_event" => AttachPoint::PerfEvent,
        "tc" | "classifier" => AttachPoint::Tc,
        "tcx" if matches!(rest, "ingress" | "egress") => AttachPoint::Tc,
        "lsm" | "lsm.s" if !rest.is_empty() => AttachPoint::Lsm(rest),
        "cgroup_skb" if matches!(rest, "ingress" | "egress") => AttachPoint::Cgroup,
        "cgroup"
            if matches!(
                rest,
                "skb"
                    | "sock"
                    | "sock_create"
                    | "sock_release"
                    | "post_bind4"
                    | "post_bind6"
                    | "bind4"
                    | "bind6"
                    | "connect4"
                    | "connect6"
                    | "getpeername4"
                    | "getpeername6"
                    | "getsockname4"
                    | "getsockname6"
                    | "sendmsg4"
                    | "sendmsg6"
                    | "recvmsg4"
                    | "recvmsg6"
            ) =>
        {
            AttachPoint::Cgroup
        }
        _ => {
            return Err(format!(
                "section `{section}` is not a program type gadgetd can attach; it knows {}",
                sections::KNOWN
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
    targets: &Targets<'_>,
    sample_hz: u64,
) -> std::result::Result<ProgramStatus, String> {
    let point = attach_point(&prog.section)?;
    if point == AttachPoint::Disabled {
        return Ok(ProgramStatus::Disabled);
    }
    // Only BTF-typed attachments need aya's parse of the kernel's BTF.
    let kbtf = matches!(
        point,
        AttachPoint::BtfTracePoint(_)
            | AttachPoint::FEntry(_)
            | AttachPoint::FExit(_)
            | AttachPoint::Lsm(_)
    )
    .then(kernel_btf)
    .flatten();
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
        AttachPoint::BtfTracePoint(name) => {
            let btf = btf.ok_or("tp_btf needs kernel BTF (/sys/kernel/btf/vmlinux)")?;
            let p: &mut BtfTracePoint = program.try_into().map_err(|x| e(&x))?;
            p.load(name, btf).map_err(|x| e(&x))?;
            p.attach().map_err(|x| e(&x))?;
        }
        AttachPoint::KProbe(func) => {
            let p: &mut KProbe = program.try_into().map_err(|x| e(&x))?;
            p.load().map_err(|x| e(&x))?;
            p.attach(func, 0).map_err(|x| e(&x))?;
        }
        AttachPoint::UProbe { target, symbol } => {
            let absent = if targets.roots.is_empty() {
                format!(
                    "uprobe target `{target}` is not on this host (no such file, and not in /etc/ld.so.cache)"
                )
            } else {
                format!(
                    "uprobe target `{target}` is in none of the selected containers (looked up in /proc/PID/root of {:?}, through each one's /etc/ld.so.cache)",
                    targets.roots
                )
            };
            let paths = uprobe_paths(target, targets.roots);
            if paths.is_empty() {
                return Ok(ProgramStatus::Skipped(absent));
            }
            let parsed = uprobe_target::parse(symbol)?;
            let p: &mut UProbe = program.try_into().map_err(|x| e(&x))?;
            p.load().map_err(|x| e(&x))?;
            let mut attached = 0;
            // Symbols are resolved here, not by aya: it fails where a
            // library names a debug file that is not installed (uprobe_symbol.rs).
            let mut missing = None;
            for path in &paths {
                let location = match parsed {
                    uprobe_target::Location::Symbol { name, offset } => {
                        match uprobe_symbol::resolve(path, name)? {
                            Ok(at) => UProbeAttachLocation::AbsoluteOffset(at + offset),
                            // A symbol one copy lacks is that copy's problem.
                            Err(why) => {
                                missing.get_or_insert(why);
                                continue;
                            }
                        }
                    }
                    uprobe_target::Location::FileOffset(off) => {
                        UProbeAttachLocation::AbsoluteOffset(off)
                    }
                };
                match p.attach(location, path, UProbeScope::AllProcesses) {
                    Ok(_) => attached += 1,
                    // A target one container's copy lacks is that copy's problem.
                    Err(aya::programs::ProgramError::UProbeError(
                        aya::programs::uprobe::UProbeError::InvalidTarget { .. },
                    )) => {}
                    Err(x) => return Err(format!("in {}: {}", path.display(), e(&x))),
                }
            }
            if attached == 0 {
                return Ok(ProgramStatus::Skipped(missing.unwrap_or(absent)));
            }
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
            // Behind a dispatcher that tells it the namespace (net_dispatch.rs).
            let p: &mut SocketFilter = program.try_into().map_err(|x| e(&x))?;
            p.load().map_err(|x| e(&x))?;
            let fd = p.fd().and_then(|fd| fd.try_clone().map_err(Into::into));
            att.net.add_program(&prog.name, fd.map_err(|x| e(&x))?);
            if targets.netns_later {
                return Ok(ProgramStatus::Attached);
            }
            att.net.attach_one(&prog.name, targets.netns)?;
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
        AttachPoint::Disabled => return Ok(ProgramStatus::Disabled),
        AttachPoint::Cgroup => {
            use aya::programs::{CgroupAttachMode, Program};
            let root;
            let dirs = match targets.cgroups {
                [] => {
                    root = [cgroup2_root().ok_or(
                        "cgroup programs need cgroup v2, and no cgroup2 file system is mounted",
                    )?];
                    &root[..]
                }
                dirs => dirs,
            };
            match program {
                Program::CgroupSkb(p) => p.load(),
                Program::CgroupSock(p) => p.load(),
                Program::CgroupSockAddr(p) => p.load(),
                other => {
                    return Err(format!(
                        "aya loaded this cgroup section as {:?}, which gadgetd does not attach",
                        other.prog_type()
                    ));
                }
            }
            .map_err(|x| e(&x))?;
            for dir in dirs {
                let fd = std::fs::File::open(dir).map_err(|x| {
                    format!(
                        "opening cgroup {}: {x} (name a cgroup2 directory, e.g. under {})",
                        dir.display(),
                        cgroup2_root().map_or("/sys/fs/cgroup".into(), |r| r.display().to_string())
                    )
                })?;
                // aya attaches with a BPF link where the kernel has them (links
                // coexist with other programs on the cgroup; the kernel rejects
                // the ALLOW_MULTI flag on a link).
                let mode = CgroupAttachMode::Single;
                let on =
                    |x: &dyn std::error::Error| format!("on cgroup {}: {}", dir.display(), e(x));
                match program {
                    Program::CgroupSkb(p) => {
                        let ty = match prog.section.rsplit('/').next() {
                            Some("egress") => aya::programs::CgroupSkbAttachType::Egress,
                            _ => aya::programs::CgroupSkbAttachType::Ingress,
                        };
                        p.attach(&fd, ty, mode).map_err(|x| on(&x))?;
                    }
                    Program::CgroupSock(p) => {
                        p.attach(&fd, mode).map_err(|x| on(&x))?;
                    }
                    Program::CgroupSockAddr(p) => {
                        p.attach(&fd, mode).map_err(|x| on(&x))?;
                    }
                    _ => unreachable!("checked when loading"),
                }
            }
        }
        AttachPoint::Tc => {
            if targets.ifaces.is_empty() && targets.netns_later {
                let p: &mut SchedClassifier = program.try_into().map_err(|x| e(&x))?;
                p.load().map_err(|x| e(&x))?;
                return Ok(ProgramStatus::Attached); // on containers' veths later (tc_follow.rs)
            }
            if targets.ifaces.is_empty() {
                return Err("tc programs need an interface: name one (--iface, the `iface` run option) or select containers (their host-side veths)".into());
            }
            let p: &mut SchedClassifier = program.try_into().map_err(|x| e(&x))?;
            p.load().map_err(|x| e(&x))?;
            // Behind a dispatcher that tells it the namespace (tc_dispatch.rs).
            let fd = p.fd().and_then(|fd| fd.try_clone().map_err(Into::into));
            let fd = fd.map_err(|x| e(&x))?;
            let dir = tc::direction(&prog.section);
            let own = super::tc_dispatch::own_netns()?;
            for iface in targets.ifaces {
                tc::ifindex(&iface.name)?;
                if !tc::has_tcx() {
                    att.qdiscs.extend(tc::Clsact::ensure(&iface.name)?);
                }
                att.tc.push(super::tc_dispatch::TcDispatcher::attach(
                    iface.netns.unwrap_or(own),
                    &fd,
                    &iface.name,
                    dir,
                )?);
            }
        }
        AttachPoint::Lsm(hook) => {
            let btf = btf.ok_or("lsm programs need kernel BTF (/sys/kernel/btf/vmlinux)")?;
            if let Some(active) = active_lsms()
                && !active.split(',').any(|l| l == "bpf")
            {
                return Err(format!(
                    "BPF LSM is not enabled on this kernel (active LSMs: {active}); boot with `bpf` in the `lsm=` list"
                ));
            }
            let p: &mut Lsm = program.try_into().map_err(|x| e(&x))?;
            p.load(hook, btf).map_err(|x| {
                format!(
                    "BPF LSM hook `{hook}` is not usable on this kernel: {}",
                    e(&x)
                )
            })?;
            p.attach()
                .map_err(|x| format!("BPF LSM programs cannot attach on this kernel: {}", e(&x)))?;
        }
    }
    Ok(ProgramStatus::Attached)
}

/// The files a uprobe target names: on the agent's own root, or in each of
/// `roots`' (`/proc/PID/root`), each file once (by device and inode).
fn uprobe_paths(target: &str, roots: &[u32]) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    if roots.is_empty() {
        return uprobe_target::resolve_library(target)
            .filter(|p| p.exists())
            .into_iter()
            .collect();
    }
    let mut seen = std::collections::BTreeSet::new();
    roots
        .iter()
        .filter_map(|pid| {
            uprobe_target::resolve_library_in(
                std::path::Path::new(&format!("/proc/{pid}/root")),
                target,
            )
        })
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| seen.insert((m.dev(), m.ino()))))
        .collect()
}

/// Where the cgroup2 hierarchy is mounted (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on hybrid hosts).
pub fn cgroup2_root() -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split(' ').next() == Some("cgroup2"))
            .then(|| left.split(' ').nth(4).map(Into::into))?
    })
}

/// The kernel's active LSMs (`/sys/kernel/security/lsm`), when securityfs
/// is mounted; `None` when that cannot be told.
fn active_lsms() -> Option<String> {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .ok()
        .map(|s| s.trim().to_string())
}

/// A packet socket of another network namespace: a socket belongs to the
/// namespace it was created in, so create it from a thread that joined it.
pub(crate) fn packet_socket_in(netns: &std::fs::File) -> std::io::Result<OwnedFd> {
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
