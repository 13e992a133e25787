//! Keeps a run's `gadget_mntns_filter_map` equal to the mount namespaces of
//! the containers its [`Selector`] matches, as containers start and stop.
//!
//! A matching container is awaited from its runtime's create event: the
//! kernel-side catch-up ([`CatchUp`]) adds its mount namespace at its first
//! exec, before its user code runs, and the start event confirms it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::{self, error::RecvError};

use super::{Change, Registry, Selector, procinfo};
use gadgetd_runtime::catchup::{CatchUp, boot_ns, cgroup_names};
use gadgetd_runtime::mntns_filter::MntnsFilterMap;

/// A selection taken before the gadget loads: the ids to fill in before
/// attaching, and the changes since (subscribed first, so none is missed).
pub struct Plan {
    pub initial: Vec<u64>,
    /// The selected containers' network namespaces (and the host's with
    /// `--host`), where socket filters and network iterators run. Taken at
    /// start; socket filters follow containers started later
    /// (`agent/src/service/netns_follow.rs`, with [`Plan::selector`]).
    pub netns: Vec<u64>,
    /// The selected containers' cgroups (v2 paths as in `/proc/PID/cgroup`),
    /// where cgroup programs attach. Taken at start, like `netns`.
    pub cgroups: Vec<String>,
    /// The selected containers' init processes (and pid 1 with `--host`),
    /// whose root file systems uprobe targets are resolved in. Taken at
    /// start, like `netns`.
    pub pids: Vec<u32>,
    changes: broadcast::Receiver<Change>,
    selector: Selector,
    host: Option<u64>,
}

impl Plan {
    /// The selection this plan was made from.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }
}

/// `None` when the selector is empty (no filtering at all).
pub fn plan(registry: &Registry, selector: Selector) -> Option<Plan> {
    if selector.is_empty() {
        return None;
    }
    let changes = registry.subscribe();
    let host = if selector.host {
        procinfo::host_mntns()
    } else {
        None
    };
    let initial: Vec<u64> = wanted(registry, &selector, host).into_iter().collect();
    let host_net = if selector.host {
        procinfo::host_netns()
    } else {
        None
    };
    let netns: Vec<u64> = registry
        .list()
        .iter()
        .filter(|c| selector.matches(c) && c.netns != 0)
        .map(|c| c.netns)
        .chain(host_net)
        .collect::<BTreeSet<u64>>()
        .into_iter()
        .collect();
    let cgroups: Vec<String> = registry
        .list()
        .iter()
        .filter(|c| selector.matches(c) && !c.cgroup.is_empty())
        .map(|c| c.cgroup.clone())
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    let pids: Vec<u32> = registry
        .list()
        .iter()
        .filter(|c| selector.matches(c) && c.pid != 0)
        .map(|c| c.pid)
        // `--host`: the host's files too (pid 1's root).
        .chain(selector.host.then_some(1))
        .collect();
    tracing::debug!(
        ?selector,
        ?initial,
        ?netns,
        ?cgroups,
        ?pids,
        "container filter planned"
    );
    Some(Plan {
        initial,
        netns,
        cgroups,
        pids,
        changes,
        selector,
        host,
    })
}

fn wanted(registry: &Registry, selector: &Selector, host: Option<u64>) -> BTreeSet<u64> {
    registry
        .list()
        .iter()
        .filter(|c| selector.matches(c))
        .map(|c| c.mntns)
        .chain(host)
        .collect()
}

/// How often the task checks that its run still exists when nothing changes.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Follows the registry until the run (the map's owner) is gone.
pub fn keep_in_sync(
    plan: Plan,
    registry: Arc<Registry>,
    map: &Arc<MntnsFilterMap>,
    run_id: String,
) {
    let catchup = match CatchUp::start(map) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(run = %run_id, error = %e, "no kernel-side catch-up: a new container's first events may be missed");
            None
        }
    };
    let map = Arc::downgrade(map);
    tokio::spawn(async move { follow(plan, registry, map, catchup, run_id).await });
}

async fn follow(
    mut plan: Plan,
    registry: Arc<Registry>,
    map: Weak<MntnsFilterMap>,
    catchup: Option<CatchUp>,
    run_id: String,
) {
    // Containers awaited since their create event: id → (cgroup names,
    // since, since on the boot clock in ns).
    let mut awaited: HashMap<String, Awaited> = HashMap::new();
    // Changes that happened while the gadget loaded are in the queue.
    loop {
        let change = match tokio::time::timeout(IDLE_CHECK, plan.changes.recv()).await {
            Err(_) => {
                let Some(map) = map.upgrade() else { return };
                if let Some(cu) = &catchup {
                    expire(cu, &mut awaited, &registry, &plan, &map, &run_id);
                }
                continue;
            }
            Ok(c) => c,
        };
        let Some(map) = map.upgrade() else { return };
        match change {
            Ok(Change::Created(c)) if plan.selector.matches(&c) => {
                if let Some(cu) = &catchup {
                    let names = cgroup_names(&c.runtime, &c.id);
                    match cu.watch(&names) {
                        Ok(()) => {
                            awaited.insert(c.id.clone(), (names, Instant::now(), boot_ns()));
                        }
                        Err(e) => {
                            tracing::warn!(run = %run_id, container = %c.name, error = %e, "cannot await the container's first exec")
                        }
                    }
                }
            }
            Ok(Change::Added(c)) if plan.selector.matches(&c) => match map.insert(c.mntns) {
                Ok(()) => {
                    // When the catch-up got there first: how long the start
                    // event came after the container's first exec, and how
                    // long before that exec the catch-up awaited it.
                    let exec = catchup.as_ref().and_then(|cu| cu.take_caught_at(c.mntns));
                    let early = exec.map(|at| boot_ns().saturating_sub(at) / 1000);
                    let armed = exec
                        .zip(awaited.get(&c.id).map(|a| a.2))
                        .map(|(at, armed)| at.saturating_sub(armed) / 1000);
                    tracing::info!(run = %run_id, container = %c.name, id = %c.id, mntns = c.mntns, caught_at_exec_us_before = ?early, awaited_us_before_exec = ?armed, "container added to the run's filter")
                }
                Err(e) => {
                    tracing::warn!(run = %run_id, container = %c.name, error = %e, "cannot add the container to the run's filter (map full?)")
                }
            },
            // Awaited but never listed: whatever the catch-up added for it goes.
            Ok(Change::Vanished(id)) if awaited.contains_key(&id) => {
                if let Some(cu) = &catchup {
                    let (names, ..) = awaited.remove(&id).expect("checked");
                    cu.forget(&names);
                    let want = wanted(&registry, &plan.selector, plan.host);
                    for mntns in cu.unconfirmed(Duration::ZERO) {
                        if !want.contains(&mntns) {
                            map.remove(mntns);
                            tracing::info!(run = %run_id, id = %id, mntns, "a container that never started left the run's filter");
                        }
                    }
                }
            }
            Ok(Change::Removed(c)) if plan.selector.matches(&c) => {
                if let Some(cu) = &catchup {
                    cu.forget(&cgroup_names(&c.runtime, &c.id));
                    awaited.remove(&c.id);
                }
                // Another selected record may share the namespace (same
                // container seen through two runtimes, or the host).
                if !wanted(&registry, &plan.selector, plan.host).contains(&c.mntns) {
                    map.remove(c.mntns);
                    tracing::info!(run = %run_id, container = %c.name, id = %c.id, mntns = c.mntns, "container removed from the run's filter");
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(run = %run_id, missed = n, "container changes came too fast; resynchronising the run's filter");
                resync(&registry, &plan, &map);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// A container awaited since its create event: its cgroup names, and since
/// when (monotonic, and on the boot clock in ns as the catch-up records).
type Awaited = (Vec<String>, Instant, u64);

/// How long a namespace the catch-up added may stay in the filter without
/// its runtime confirming the container, and a created container be awaited.
const UNCONFIRMED: Duration = Duration::from_secs(30);

/// A container that died during setup (or whose start event never came):
/// its namespace leaves the filter (inodes are reused by later namespaces)
/// and its cgroup names are no longer awaited.
fn expire(
    cu: &CatchUp,
    awaited: &mut HashMap<String, Awaited>,
    registry: &Registry,
    plan: &Plan,
    map: &MntnsFilterMap,
    run_id: &str,
) {
    awaited.retain(|_, (names, since, _)| {
        let keep = since.elapsed() < UNCONFIRMED;
        if !keep {
            cu.forget(names);
        }
        keep
    });
    let want = wanted(registry, &plan.selector, plan.host);
    for mntns in cu.unconfirmed(UNCONFIRMED) {
        if !want.contains(&mntns) {
            map.remove(mntns);
            tracing::info!(run = %run_id, mntns, "unconfirmed container namespace removed from the run's filter");
        }
    }
}

fn resync(registry: &Registry, plan: &Plan, map: &MntnsFilterMap) {
    let want = wanted(registry, &plan.selector, plan.host);
    let have: BTreeSet<u64> = map.ids().into_iter().collect();
    for gone in have.difference(&want) {
        map.remove(*gone);
    }
    // Every wanted id is inserted again, not only the missing ones: the
    // kernel-side catch-up may have added an id already, and the map's
    // observer (traceloop's per-namespace buffers) must still hear of it.
    // Inserting an id already there is an idempotent update.
    for id in &want {
        let _ = map.insert(*id);
    }
}
