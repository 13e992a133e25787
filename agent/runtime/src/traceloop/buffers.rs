//! One overwritable perf buffer per traced mount namespace: a
//! `BPF_MAP_TYPE_PERF_EVENT_ARRAY` of one backward ring per CPU, put in the
//! gadget's `map_of_perf_buffers` under the namespace's inode, where the
//! programs look it up. A namespace that goes (its container exited) leaves
//! the outer map but keeps its rings, so what it did last is still read at
//! the end, as a flight recorder should; only the last [`KEPT_STOPPED`]
//! such namespaces are kept, so a long run over many short-lived
//! containers does not grow without bound.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use crate::error::{GadgetError, Result};
use crate::perf_ring::{self, PerfRing};

/// Data pages of each CPU's ring (Inspektor Gadget's 64 pages).
pub const PAGES: usize = 64;

/// Namespaces no longer recorded whose rings are kept for the end (the
/// most recently stopped ones).
pub const KEPT_STOPPED: usize = 64;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_TYPE_PERF_EVENT_ARRAY: u32 = 4;

/// One namespace's rings.
struct Namespace {
    /// The inner map, kept open while the rings are.
    _inner: OwnedFd,
    rings: Vec<PerfRing>,
    /// In the outer map now.
    traced: bool,
    /// When it stopped being recorded (a count of removals), if it did.
    stopped: u64,
}

/// The buffers of a run, by mount namespace inode.
pub struct Buffers {
    /// `map_of_perf_buffers`.
    outer: OwnedFd,
    /// CPUs rings are opened on.
    cpus: Vec<u32>,
    /// Slots of each inner map (possible CPUs).
    slots: u32,
    /// Data pages of each ring.
    pages: usize,
    namespaces: Mutex<BTreeMap<u64, Namespace>>,
    /// Removals so far ([`Namespace::stopped`]).
    removals: std::sync::atomic::AtomicU64,
}

fn sys_bpf(cmd: libc::c_long, attr: &mut [u64]) -> io::Result<i64> {
    // SAFETY: attr is a zeroed prefix of union bpf_attr laid out for `cmd`;
    // the pointers in it refer to live locals of the caller.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn err(what: String) -> GadgetError {
    GadgetError::Load(format!("traceloop: {what}"))
}

impl Buffers {
    /// Buffers of [`PAGES`] pages per CPU for the outer map `outer` (a
    /// duplicate of its fd).
    pub fn new(outer: OwnedFd) -> Result<Buffers> {
        Buffers::with_pages(outer, PAGES)
    }

    /// Like [`Buffers::new`] with `pages` data pages per ring (a power of two).
    pub fn with_pages(outer: OwnedFd, pages: usize) -> Result<Buffers> {
        let cpus =
            aya::util::online_cpus().map_err(|(path, e)| err(format!("reading {path}: {e}")))?;
        let slots =
            aya::util::nr_cpus().map_err(|(path, e)| err(format!("reading {path}: {e}")))? as u32;
        Ok(Buffers {
            outer,
            cpus,
            slots,
            pages,
            namespaces: Mutex::new(BTreeMap::new()),
            removals: Default::default(),
        })
    }

    /// Starts recording mount namespace `mntns` (again, if it was before:
    /// its old rings are kept). Errors name the step that failed.
    pub fn insert(&self, mntns: u64) -> Result<()> {
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        if namespaces.get(&mntns).is_some_and(|n| n.traced) {
            return Ok(());
        }
        let ns = match namespaces.remove(&mntns) {
            Some(ns) => ns,
            None => self.create(mntns)?,
        };
        let inner = ns._inner.as_raw_fd() as u32;
        let mut attr = [0u64; 4];
        attr[0] = self.outer.as_raw_fd() as u32 as u64;
        attr[1] = &mntns as *const u64 as u64;
        attr[2] = &inner as *const u32 as u64;
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map_err(|e| {
            err(format!(
                "adding the perf buffer of mount namespace {mntns} to map_of_perf_buffers: {e}"
            ))
        })?;
        namespaces.insert(mntns, Namespace { traced: true, ..ns });
        Ok(())
    }

    fn create(&self, mntns: u64) -> Result<Namespace> {
        // union bpf_attr for BPF_MAP_CREATE: map_type, key_size,
        // value_size, max_entries (then flags, inner_map_fd, ... zero).
        let mut attr = [0u64; 9];
        attr[0] = BPF_MAP_TYPE_PERF_EVENT_ARRAY as u64 | (4u64 << 32);
        attr[1] = 4 | ((self.slots as u64) << 32);
        let fd = sys_bpf(BPF_MAP_CREATE, &mut attr).map_err(|e| {
            err(format!(
                "creating the perf event array of mount namespace {mntns}: {e}"
            ))
        })?;
        // SAFETY: a fresh descriptor the kernel gave us.
        let inner = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let mut rings = Vec::with_capacity(self.cpus.len());
        for &cpu in &self.cpus {
            let ring = PerfRing::open_overwritable(cpu, self.pages).map_err(|e| {
                err(format!(
                    "opening an overwritable perf ring on CPU {cpu} for mount namespace {mntns}: {e}"
                ))
            })?;
            perf_ring::install(inner.as_fd(), cpu, &ring).map_err(|e| {
                err(format!(
                    "installing the ring of CPU {cpu} (mount namespace {mntns}): {e}"
                ))
            })?;
            rings.push(ring);
        }
        Ok(Namespace {
            _inner: inner,
            rings,
            traced: false,
            stopped: 0,
        })
    }

    /// Stops recording `mntns` (absent ones are fine); what it recorded stays.
    pub fn remove(&self, mntns: u64) {
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ns) = namespaces.get_mut(&mntns) {
            let mut attr = [0u64; 4];
            attr[0] = self.outer.as_raw_fd() as u32 as u64;
            attr[1] = &mntns as *const u64 as u64;
            let _ = sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr);
            ns.traced = false;
            ns.stopped = 1 + self
                .removals
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let stopped = namespaces.values().filter(|n| !n.traced).count();
        if stopped > KEPT_STOPPED
            && let Some(oldest) = namespaces
                .iter()
                .filter(|(_, n)| !n.traced)
                .min_by_key(|(_, n)| n.stopped)
                .map(|(id, _)| *id)
        {
            namespaces.remove(&oldest);
        }
    }

    /// The namespaces whose rings are kept, recorded now or not.
    pub fn kept(&self) -> Vec<u64> {
        let namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        namespaces.keys().copied().collect()
    }

    /// The namespaces being recorded now.
    pub fn traced(&self) -> Vec<u64> {
        let namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        namespaces
            .iter()
            .filter(|(_, n)| n.traced)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Pauses every ring, then calls `f` with each namespace's records
    /// (newest first per CPU). Returns the samples the kernel could not
    /// store while recording (read before the pause, which drops the
    /// syscalls made after it).
    pub fn read_all(&self, mut f: impl FnMut(u64, &[u8])) -> u64 {
        let namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        let rings = || namespaces.values().flat_map(|ns| ns.rings.iter());
        let lost = rings().map(|r| r.lost_total().unwrap_or(0)).sum();
        for ring in rings() {
            if let Err(e) = ring.pause() {
                tracing::warn!(error = %e, "traceloop: pausing a perf ring failed; its last records may be torn");
            }
        }
        let mut scratch = Vec::new();
        for (id, ns) in namespaces.iter() {
            for ring in &ns.rings {
                ring.read_backward(&mut scratch, |d| f(*id, d));
            }
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
    const BPF_MAP_TYPE_HASH_OF_MAPS: u64 = 13;

    /// A `map_of_perf_buffers` as the gadget declares it.
    fn outer_map() -> OwnedFd {
        let slots = aya::util::nr_cpus().unwrap() as u64;
        let mut attr = [0u64; 9];
        attr[0] = BPF_MAP_TYPE_PERF_EVENT_ARRAY as u64 | (4 << 32);
        attr[1] = 4 | (slots << 32);
        // SAFETY: a fresh descriptor from the kernel.
        let inner =
            unsafe { OwnedFd::from_raw_fd(sys_bpf(BPF_MAP_CREATE, &mut attr).unwrap() as RawFd) };
        let mut attr = [0u64; 9];
        attr[0] = BPF_MAP_TYPE_HASH_OF_MAPS | (8 << 32);
        attr[1] = 4 | (1024 << 32);
        attr[2] = (inner.as_raw_fd() as u64) << 32; // map_flags 0, inner_map_fd
        // SAFETY: as above.
        unsafe { OwnedFd::from_raw_fd(sys_bpf(BPF_MAP_CREATE, &mut attr).unwrap() as RawFd) }
    }

    fn in_outer(outer: &OwnedFd, mntns: u64) -> bool {
        let mut id = 0u32;
        let mut attr = [0u64; 4];
        attr[0] = outer.as_raw_fd() as u32 as u64;
        attr[1] = &mntns as *const u64 as u64;
        attr[2] = &mut id as *mut u32 as u64;
        sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr).is_ok()
    }

    /// Namespaces come and go in the outer map; stopped ones keep their
    /// rings, the most recent [`KEPT_STOPPED`] of them.
    #[test]
    fn namespaces_come_and_go_and_the_latest_stopped_are_kept() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: creating BPF maps needs root");
            return;
        }
        let outer = outer_map();
        let buffers = Buffers::with_pages(outer.try_clone().unwrap(), 1).unwrap();
        let n = KEPT_STOPPED as u64 + 6;
        for id in 1..=n {
            buffers.insert(id).unwrap();
            assert!(in_outer(&outer, id));
        }
        assert_eq!(buffers.traced(), (1..=n).collect::<Vec<_>>());
        for id in 1..=n {
            buffers.remove(id);
            assert!(!in_outer(&outer, id));
        }
        assert!(buffers.traced().is_empty());
        assert_eq!(buffers.kept(), (7..=n).collect::<Vec<_>>());
        // Back again (an inode reused): recorded, its old rings kept.
        buffers.insert(n).unwrap();
        assert!(in_outer(&outer, n));
        assert_eq!(buffers.traced(), [n]);
        buffers.remove(12345); // never recorded: nothing happens
        assert_eq!(buffers.kept().len(), KEPT_STOPPED);
    }
}
