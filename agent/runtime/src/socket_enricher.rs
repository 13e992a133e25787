//! The socket enricher: one eBPF object, shared by every run whose gadget
//! declares the map `gadget_sockets` (`<gadget/sockets-map.h>`), that keeps
//! that map current with the owner (pid, tid, comm, uid, gid, mount
//! namespace, parent) of every TCP and UDP socket of the host, keyed by
//! (network namespace inode, family, protocol, local port).
//!
//! No kprobes: cgroup socket hooks on the root of the cgroup v2 hierarchy
//! (`sock_create`, `post_bind4/6`, `sock_release`, `cgroup_skb/egress`) and an
//! `iter/task_file` sweep for the sockets that existed before it started
//! (`bpf/socket_enricher.bpf.c`; docs/enrichment.md has the design and what
//! it misses).
//!
//! Sharing: [`acquire`] loads it on first use and hands out [`Arc`]s; the
//! last one dropped detaches it. Gadgets reuse its map as libbpf map reuse
//! does: the map is pinned in the enricher's own bpffs ([`PinDir`]) and the
//! loader points the gadget's `gadget_sockets` at that pin
//! ([`SocketEnricher::map_path`]); their CO-RE relocations against
//! `struct gadget_socket_value` resolve against this object's BTF
//! ([`value_btf`]), which has the always-present fields only.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use aya::Ebpf;
use aya::programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, Iter};
use object::{Object, ObjectSection};

use super::btf_table::BtfTable;
use super::error::{GadgetError, Result, chain};
use super::object::GadgetObject;
use super::pin_dir::PinDir;

/// The enricher's object, built from `bpf/socket_enricher.bpf.c` by
/// `build.rs` (empty when clang was missing at build time).
pub(crate) static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/socket_enricher.o"));

/// The map gadgets look sockets up in.
pub const MAP: &str = "gadget_sockets";

/// The cgroup programs and where they attach.
const CGROUP_SOCK: [&str; 4] = [
    "gadget_se_sock_create",
    "gadget_se_post_bind4",
    "gadget_se_post_bind6",
    "gadget_se_sock_release",
];
const EGRESS: &str = "gadget_se_egress";
const SWEEP: &str = "gadget_se_sweep";

/// The running enricher. Dropping the last [`Arc`] detaches its programs
/// and removes its map's pin (gadgets still holding the map keep a copy that
/// no longer changes).
pub struct SocketEnricher {
    // Field order: the programs detach before the pin goes.
    ebpf: Mutex<Ebpf>,
    pins: PinDir,
    swept: usize,
}

impl std::fmt::Debug for SocketEnricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketEnricher")
            .field("map", &self.map_path())
            .field("swept", &self.swept)
            .finish()
    }
}

static SHARED: Mutex<Weak<SocketEnricher>> = Mutex::new(Weak::new());

/// Whether `obj` declares the map `gadget_sockets` (includes `<gadget/sockets-map.h>`).
pub fn uses_sockets_map(obj: &GadgetObject) -> bool {
    obj.maps.iter().any(|m| m.name == MAP)
}

/// The running enricher, started if none is. Errors say what the host
/// lacks (cgroup v2, privileges, a clang-less build).
pub fn acquire() -> Result<Arc<SocketEnricher>> {
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = shared.upgrade() {
        return Ok(e);
    }
    let e = Arc::new(SocketEnricher::start()?);
    *shared = Arc::downgrade(&e);
    Ok(e)
}

/// For a run of `obj`: the running enricher when `obj` looks sockets up,
/// `None` otherwise or when it cannot start (logged: events then carry no
/// process, and the run goes on).
pub fn for_object(obj: &GadgetObject) -> Option<Arc<SocketEnricher>> {
    if !uses_sockets_map(obj) {
        return None;
    }
    acquire()
        .inspect_err(|e| tracing::warn!(error = %e, "no socket enricher: network events will carry no process"))
        .ok()
}

/// The running enricher, if some run holds it.
pub fn current() -> Option<Arc<SocketEnricher>> {
    SHARED.lock().unwrap_or_else(|p| p.into_inner()).upgrade()
}

/// The BTF of the enricher's object: the target of gadgets' CO-RE
/// relocations against `struct gadget_socket_value` (parsed once).
pub fn value_btf() -> Result<Arc<BtfTable>> {
    static BTF: OnceLock<std::result::Result<Arc<BtfTable>, String>> = OnceLock::new();
    BTF.get_or_init(|| {
        let elf = object::File::parse(object_bytes()?).map_err(|e| e.to_string())?;
        let sec = elf
            .section_by_name(".BTF")
            .ok_or("the socket enricher's object has no BTF")?;
        let data = sec.data().map_err(|e| e.to_string())?;
        BtfTable::parse(data)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|e| GadgetError::Load(format!("socket enricher: {e}")))
}

fn object_bytes() -> std::result::Result<&'static [u8], String> {
    if OBJECT.is_empty() {
        return Err(
            "gadgetd was built without clang, so it has no socket enricher; \
                    install clang and rebuild (network events carry no process meanwhile)"
                .into(),
        );
    }
    Ok(OBJECT)
}

impl SocketEnricher {
    fn start() -> Result<SocketEnricher> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            GadgetError::Load(format!("starting the socket enricher: {what}: {e}"))
        };
        let bytes = object_bytes().map_err(|e| fail("object", &e))?;
        let cgroup = super::load::cgroup2_root().ok_or_else(|| {
            fail(
                "cgroup v2",
                &"no cgroup2 file system is mounted (the enricher's hooks attach to its root)",
            )
        })?;
        let cgroup_fd = std::fs::File::open(&cgroup)
            .map_err(|e| fail(&format!("opening {}", cgroup.display()), &e))?;
        let object = super::bare_loader::own_object("the socket enricher", bytes)
            .map_err(|e| fail("object", &e))?;
        let pins = PinDir::create()?;
        let map_path = pins.path().join(MAP);
        let mut ebpf = super::bare_loader::new()
            .map_pin_path(MAP, map_path.as_path())
            .load(&object)
            .map_err(|e| fail("loading", &chain(&e)))?;
        // Hooks first, then the sweep: a socket made in between is seen by
        // the hooks (the sweep never overwrites what they published).
        for name in CGROUP_SOCK {
            let prog: &mut CgroupSock = program(&mut ebpf, name)?;
            prog.load().map_err(|e| fail(name, &chain(&e)))?;
            prog.attach(&cgroup_fd, CgroupAttachMode::Single)
                .map_err(|e| fail(&format!("{name} on {}", cgroup.display()), &chain(&e)))?;
        }
        let egress: &mut CgroupSkb = program(&mut ebpf, EGRESS)?;
        egress.load().map_err(|e| fail(EGRESS, &chain(&e)))?;
        egress
            .attach(
                &cgroup_fd,
                CgroupSkbAttachType::Egress,
                CgroupAttachMode::Single,
            )
            .map_err(|e| fail(&format!("{EGRESS} on {}", cgroup.display()), &chain(&e)))?;
        let sweep: &mut Iter = program(&mut ebpf, SWEEP)?;
        let btf = super::bare_loader::kernel_function("bpf_iter_task_file")
            .map_err(|e| fail(SWEEP, &e))?
            .ok_or_else(|| {
                fail(
                    SWEEP,
                    &"this kernel has no task_file iterator (no bpf_iter_task_file in its BTF; Linux 5.8 or later has it)",
                )
            })?;
        sweep
            .load("task_file", &btf)
            .map_err(|e| fail(SWEEP, &chain(&e)))?;
        let link = sweep.attach().map_err(|e| fail(SWEEP, &chain(&e)))?;
        let link = sweep.take_link(link).map_err(|e| fail(SWEEP, &chain(&e)))?;
        let mut file = link.into_file().map_err(|e| fail(SWEEP, &chain(&e)))?;
        file.read_to_end(&mut Vec::new())
            .map_err(|e| fail("running the sweep", &e))?;
        let enricher = SocketEnricher {
            ebpf: Mutex::new(ebpf),
            pins,
            swept: 0,
        };
        let swept = enricher.len();
        tracing::info!(sockets = swept, map = %map_path.display(), "socket enricher started");
        Ok(SocketEnricher { swept, ..enricher })
    }

    /// Where the map is pinned: gadgets' `gadget_sockets` is this map.
    pub fn map_path(&self) -> PathBuf {
        self.pins.path().join(MAP)
    }

    /// The sockets known right after the start-up sweep.
    pub fn swept(&self) -> usize {
        self.swept
    }

    /// The sockets in the map now (walks its keys).
    pub fn len(&self) -> usize {
        let ebpf = self.ebpf.lock().unwrap_or_else(|p| p.into_inner());
        let Some(map) = ebpf.map(MAP) else {
            return 0;
        };
        match aya::maps::HashMap::<_, [u8; 12], [u8; 88]>::try_from(map) {
            Ok(h) => h.keys().filter(|k| k.is_ok()).count(),
            Err(_) => 0,
        }
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pin's directory (tests check it goes away).
    pub fn pin_dir(&self) -> &Path {
        self.pins.path()
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
    <&'a mut T as TryFrom<&'a mut aya::programs::Program>>::Error: std::fmt::Display,
{
    let missing =
        |reason: String| GadgetError::Load(format!("socket enricher: program {name}: {reason}"));
    ebpf.program_mut(name)
        .ok_or_else(|| missing("not in the object".into()))?
        .try_into()
        .map_err(|e| missing(format!("{e}")))
}
