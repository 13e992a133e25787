//! Kernel-side catch-up for a run's container filter: puts a container's
//! mount namespace in the run's `gadget_mntns_filter_map` at its first exec,
//! before any of its user code runs, when the agent knows the container is
//! coming (its runtime's create event) but not yet its processes (the start
//! event arrives after the container has already run).
//!
//! A `tracepoint/sched/sched_process_exec` program (`bpf/container_catchup.bpf.c`)
//! compares the exec'ing task's cgroup names (cgroup v2, and the v1 `pids`
//! and `memory` hierarchies; the cgroup and its parent) with the names the
//! runtime gives the awaited containers ([`cgroup_names`]); on a match it adds
//! the task's mount namespace to the filter. One instance per filtered run,
//! writing the run's own map (pinned for the load, then unpinned).

use std::path::Path;
use std::sync::Mutex;

use aya::Ebpf;
use aya::maps::{HashMap, MapData};
use aya::programs::TracePoint;

use super::error::{GadgetError, Result, chain};
use super::mntns_filter::{MAP_NAME, MntnsFilterMap};
use super::pin_dir::PinDir;

pub(crate) static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/container_catchup.o"));

const NAMES: &str = "gadget_catchup_cgroups";
const CAUGHT: &str = "gadget_catchup_caught";
const PROGRAM: &str = "gadget_catchup_exec";
const IGNORE: &str = "gadget_catchup_ignore";

/// The mount namespace inode of `/proc/<pid>`.
fn mntns_of(pid: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|m| m.ino())
}
/// The key size of [`NAMES`]: a cgroup's name, zero-padded.
pub const CGROUP_NAME_LEN: usize = 128;

/// The names runtimes give a container's cgroup (its last path component),
/// by runtime: `<id>` (cgroupfs drivers: docker, containerd, nerdctl),
/// `docker-<id>.scope`, `libpod-<id>`/`libpod-<id>.scope` (podman),
/// `cri-containerd-<id>.scope`, `crio-<id>`/`crio-<id>.scope` (CRI-O).
/// Names longer than [`CGROUP_NAME_LEN`] - 1 bytes are left out.
pub fn cgroup_names(runtime: &str, id: &str) -> Vec<String> {
    let mut names = vec![id.to_string()];
    let prefixes: &[&str] = match runtime {
        "docker" => &["docker-"],
        "podman" => &["libpod-"],
        "containerd" => &["cri-containerd-"],
        "cri-o" => &["crio-", "cri-containerd-"],
        _ => &[],
    };
    for p in prefixes {
        names.push(format!("{p}{id}"));
        names.push(format!("{p}{id}.scope"));
    }
    names.retain(|n| !n.is_empty() && n.len() < CGROUP_NAME_LEN);
    names
}

/// A run's catch-up program; dropping it detaches it.
pub struct CatchUp {
    ebpf: Mutex<Ebpf>,
}

impl std::fmt::Debug for CatchUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchUp").finish_non_exhaustive()
    }
}

fn key(name: &str) -> [u8; CGROUP_NAME_LEN] {
    let mut k = [0u8; CGROUP_NAME_LEN];
    let n = name.len().min(CGROUP_NAME_LEN - 1);
    k[..n].copy_from_slice(&name.as_bytes()[..n]);
    k
}

impl CatchUp {
    /// Loads and attaches the program over `filter` (the run's map).
    /// Errors say what the host lacks (tracepoints, a clang-less build).
    pub fn start(filter: &MntnsFilterMap) -> Result<CatchUp> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            GadgetError::Load(format!("container catch-up: {what}: {e}"))
        };
        if OBJECT.is_empty() {
            return Err(fail("object", &"gadgetd was built without clang"));
        }
        super::load::ensure_tracefs();
        let object = super::bare_loader::own_object("container catch-up", OBJECT)?;
        let pins = PinDir::create()?;
        let path = pins.path().join(MAP_NAME);
        let fd = filter
            .fd()
            .try_clone_to_owned()
            .map_err(|e| fail("duplicating the filter's fd", &e))?;
        MapData::from_fd(fd)
            .map_err(|e| fail("the filter map", &chain(&e)))?
            .pin(&path)
            .map_err(|e| fail("pinning the filter map", &chain(&e)))?;
        let mut ebpf = super::bare_loader::new()
            .map_pin_path(MAP_NAME, Path::new(&path))
            .load(&object)
            .map_err(|e| fail("loading", &chain(&e)))?;
        let prog: &mut TracePoint = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| fail(PROGRAM, &"not in the object"))?
            .try_into()
            .map_err(|e| fail(PROGRAM, &chain(&e)))?;
        prog.load().map_err(|e| fail(PROGRAM, &chain(&e)))?;
        prog.attach("sched", "sched_process_exec")
            .map_err(|e| fail("attaching to sched/sched_process_exec", &chain(&e)))?;
        // The program holds the map now; the pin (and its bpffs) can go.
        drop(pins);
        // Never the host's or the agent's own namespace.
        if let Some(map) = ebpf.map_mut(IGNORE) {
            let mut h =
                HashMap::<_, u64, u8>::try_from(map).map_err(|e| fail(IGNORE, &chain(&e)))?;
            for pid in ["1", "self"] {
                if let Some(ino) = mntns_of(pid) {
                    h.insert(ino, 1, 0).map_err(|e| fail(IGNORE, &chain(&e)))?;
                }
            }
        }
        Ok(CatchUp {
            ebpf: Mutex::new(ebpf),
        })
    }

    fn names(&self, f: impl FnOnce(&mut HashMap<&mut MapData, [u8; CGROUP_NAME_LEN], u8>)) {
        let mut ebpf = self.ebpf.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(map) = ebpf.map_mut(NAMES)
            && let Ok(mut h) = HashMap::try_from(map)
        {
            f(&mut h);
        }
    }

    /// Awaits a container: its first exec in a cgroup named one of `names`
    /// adds its mount namespace to the filter. Errors: the map is full.
    pub fn watch(&self, names: &[String]) -> Result<()> {
        let mut res = Ok(());
        self.names(|h| {
            for n in names {
                if let Err(e) = h.insert(key(n), 1, 0) {
                    res = Err(GadgetError::Load(format!(
                        "container catch-up: awaiting cgroup {n:?}: {e}"
                    )));
                }
            }
        });
        res
    }

    /// Stops awaiting cgroups `names` (absent ones are fine).
    pub fn forget(&self, names: &[String]) {
        self.names(|h| {
            for n in names {
                let _ = h.remove(&key(n));
            }
        });
    }

    /// When (boot clock, ns since boot) the program last added mount
    /// namespace `mntns`, if it did; the record is consumed (inodes are
    /// reused by later namespaces).
    pub fn take_caught_at(&self, mntns: u64) -> Option<u64> {
        let mut ebpf = self.ebpf.lock().unwrap_or_else(|p| p.into_inner());
        let mut h = HashMap::<_, u64, u64>::try_from(ebpf.map_mut(CAUGHT)?).ok()?;
        let at = h.get(&mntns, 0).ok()?;
        let _ = h.remove(&mntns);
        Some(at)
    }

    /// Namespaces the program added more than `age` ago that no runtime
    /// confirmed since ([`CatchUp::take_caught_at`] consumes confirmed ones);
    /// their records are consumed.
    pub fn unconfirmed(&self, age: std::time::Duration) -> Vec<u64> {
        let mut ebpf = self.ebpf.lock().unwrap_or_else(|p| p.into_inner());
        let Some(map) = ebpf.map_mut(CAUGHT) else {
            return Vec::new();
        };
        let Ok(mut h) = HashMap::<_, u64, u64>::try_from(map) else {
            return Vec::new();
        };
        let cutoff = boot_ns().saturating_sub(age.as_nanos() as u64);
        let old: Vec<u64> = h
            .iter()
            .filter_map(|kv| kv.ok())
            .filter(|(_, at)| *at < cutoff)
            .map(|(mntns, _)| mntns)
            .collect();
        for mntns in &old {
            let _ = h.remove(mntns);
        }
        old
    }
}

/// Nanoseconds since boot (`CLOCK_BOOTTIME`, eBPF's `bpf_ktime_get_boot_ns`).
pub fn boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_names_per_runtime() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            cgroup_names("docker", id),
            [
                id.to_string(),
                format!("docker-{id}"),
                format!("docker-{id}.scope")
            ]
        );
        assert_eq!(
            cgroup_names("podman", id),
            [
                id.to_string(),
                format!("libpod-{id}"),
                format!("libpod-{id}.scope")
            ]
        );
        assert_eq!(cgroup_names("containerd", "web")[0], "web");
        assert!(cgroup_names("containerd", "web").contains(&"cri-containerd-web.scope".into()));
        // Too long for the kernel-side key: left out, not cut.
        let long = "x".repeat(CGROUP_NAME_LEN);
        assert!(cgroup_names("docker", &long).is_empty());
        assert!(cgroup_names("docker", "").iter().all(|n| !n.is_empty()));
    }

    #[test]
    fn keys_are_zero_padded() {
        let k = key("abc");
        assert_eq!(&k[..4], b"abc\0");
        assert!(k[3..].iter().all(|b| *b == 0));
    }
}
