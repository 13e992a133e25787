//! tc programs of a container selection, for containers that start after
//! the run began: each gets the run's tc programs on the host side of its
//! veths ([`TcFollow::attach`]), removed when it goes ([`TcFollow::detach`]).
//! Each program goes behind a dispatcher that tells it the container's
//! network namespace (`tc_dispatch.rs`).
//!
//! The run's loaded object belongs to the run's reader, so the follower
//! holds handles of its own on the same kernel programs: each tc program is
//! pinned in a throw-away bpffs ([`PinDir`]) and opened again from its pin,
//! which is then removed (the open handle keeps the program).

use std::collections::BTreeMap;
use std::sync::Mutex;

use aya::Ebpf;
use aya::programs::tc::{SchedClassifier, TcAttachType};

use super::error::{GadgetError, Result, chain};
use super::object::GadgetObject;
use super::pin_dir::PinDir;
use super::tc_dispatch::TcDispatcher;
use super::{load, tc};

/// The tc programs of one run and the network namespaces (containers)
/// they are attached for.
pub struct TcFollow {
    inner: Mutex<Inner>,
}

struct Inner {
    programs: Vec<Program>,
    /// Network namespace inode → what was attached for it (empty for the
    /// namespaces attached when the run started).
    attached: BTreeMap<u64, Attached>,
}

struct Program {
    name: String,
    direction: TcAttachType,
    program: SchedClassifier,
}

#[derive(Default)]
struct Attached {
    /// One per interface and program; declared before `qdiscs`, dropped first.
    dispatchers: Vec<TcDispatcher>,
    /// clsact qdiscs added for them (kernels before 6.6).
    qdiscs: Vec<tc::Clsact>,
}

impl std::fmt::Debug for TcFollow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("TcFollow")
            .field(
                "programs",
                &inner.programs.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .field("netns", &inner.attached.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TcFollow {
    /// Handles on the tc programs of `obj`, loaded in `ebpf`; `started` are
    /// the namespaces whose veths they were attached on at start. `None`
    /// when the object has no tc program.
    pub(crate) fn new(
        ebpf: &mut Ebpf,
        obj: &GadgetObject,
        started: &[u64],
    ) -> Result<Option<TcFollow>> {
        let tc_programs: Vec<_> = obj
            .programs
            .iter()
            .filter(|p| matches!(load::attach_point(&p.section), Ok(load::AttachPoint::Tc)))
            .collect();
        if tc_programs.is_empty() {
            return Ok(None);
        }
        let pins = PinDir::create()?;
        let mut programs = Vec::new();
        for def in tc_programs {
            let err = |reason: String| GadgetError::Program {
                program: def.name.clone(),
                section: def.section.clone(),
                reason: format!(
                    "keeping a handle to attach it for containers started later: {reason}"
                ),
            };
            let p: &mut SchedClassifier = ebpf
                .program_mut(&def.name)
                .ok_or_else(|| err("aya did not load this program".into()))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| err(chain(&e)))?;
            let path = pins.path().join(&def.name);
            p.pin(&path).map_err(|e| err(chain(&e)))?;
            let program = SchedClassifier::from_pin(&path).map_err(|e| err(chain(&e)));
            let _ = std::fs::remove_file(&path);
            programs.push(Program {
                name: def.name.clone(),
                direction: tc::direction(&def.section),
                program: program?,
            });
        }
        let attached = started.iter().map(|&n| (n, Attached::default())).collect();
        Ok(Some(TcFollow {
            inner: Mutex::new(Inner { programs, attached }),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The network namespaces attached for, ascending.
    pub fn netns(&self) -> Vec<u64> {
        self.lock().attached.keys().copied().collect()
    }

    /// Attaches every tc program on the host-side veths of network
    /// namespace `netns` (inode `inode`). `Ok(false)` when attached for it
    /// already. An error (nothing attached) when it has no veth yet, or an
    /// attach fails; it names the namespace, interface and program.
    pub fn attach(&self, inode: u64, netns: &std::fs::File) -> std::result::Result<bool, String> {
        let mut inner = self.lock();
        if inner.attached.contains_key(&inode) {
            return Ok(false);
        }
        let ifaces =
            tc::host_peers(netns).map_err(|e| format!("network namespace {inode}: {e}"))?;
        if ifaces.is_empty() {
            return Err(format!("network namespace {inode} has no veth (yet)"));
        }
        let mut done = Attached::default();
        let tcx = tc::has_tcx();
        let result = (|| {
            for iface in &ifaces {
                if !tcx {
                    done.qdiscs.extend(tc::Clsact::ensure(iface)?);
                }
                for p in &inner.programs {
                    let fd = p.program.fd().map_err(|e| chain(&e))?;
                    let d = TcDispatcher::attach(inode, fd, iface, p.direction)
                        .map_err(|e| format!("program `{}`: {e}", p.name))?;
                    done.dispatchers.push(d);
                }
            }
            Ok::<(), String>(())
        })();
        match result {
            Ok(()) => {
                inner.attached.insert(inode, done);
                Ok(true)
            }
            // Dropping `done` detaches what was attached.
            Err(e) => Err(format!("network namespace {inode}: {e}")),
        }
    }

    /// Detaches what [`TcFollow::attach`] attached for namespace `inode`;
    /// false when nothing was attached for it.
    pub fn detach(&self, inode: u64) -> bool {
        // Dropping the dispatchers detaches them; the veth may be gone with
        // its container, and they with it.
        self.lock().attached.remove(&inode).is_some()
    }
}
