//! A socket-filter run with a container selection follows the network
//! namespaces of the containers it selects: a matching container that
//! starts after the run began gets the run's dispatchers in its namespace
//! when its runtime reports it started, and the namespace is detached when
//! the last selected container in it goes (`gadgetd_runtime::follow_netns`
//! has the mechanism; the registry's events drive it here).

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use gadgetd_containers::{Change, Registry, Selector};
use gadgetd_runtime::follow_netns::attach_pid;
use gadgetd_runtime::net_dispatch::NetDispatch;
use tokio::sync::broadcast::error::RecvError;

/// How often the task checks that its run still exists when nothing changes.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Follows the containers `selector` matches for the run `run_id`, until the
/// run (the last strong reference to `net`) ends. Spawns a task.
pub fn follow(registry: Arc<Registry>, selector: Selector, net: &Arc<NetDispatch>, run_id: String) {
    // Subscribed before the first sync: no change falls between the two.
    let mut changes = registry.subscribe();
    let net = Arc::downgrade(net);
    tokio::spawn(async move {
        // The host's namespace stays attached with --host.
        let host = selector.host.then(host_netns).flatten();
        if !sync(&registry, &selector, host, &net, &run_id) {
            return;
        }
        loop {
            let change = match tokio::time::timeout(IDLE_CHECK, changes.recv()).await {
                Err(_) if net.strong_count() == 0 => return,
                Err(_) => continue,
                Ok(c) => c,
            };
            let Some(dispatch) = net.upgrade() else {
                return;
            };
            match change {
                Ok(Change::Added(c)) if selector.matches(&c) && c.netns != 0 => {
                    attach(&dispatch, c.netns, c.pid, &c.name, &run_id)
                }
                Ok(Change::Removed(c)) if selector.matches(&c) && c.netns != 0 => {
                    let still = wanted(&registry, &selector, host);
                    if !still.contains(&c.netns) && dispatch.detach(c.netns) {
                        tracing::info!(run = %run_id, container = %c.name, netns = c.netns, "network namespace detached: its last selected container went");
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(run = %run_id, missed = n, "container events missed: resynchronizing the run's network namespaces");
                    drop(dispatch);
                    if !sync(&registry, &selector, host, &net, &run_id) {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

fn attach(net: &NetDispatch, netns: u64, pid: u32, name: &str, run_id: &str) {
    match attach_pid(net, netns, pid) {
        Ok(true) => {
            tracing::info!(run = %run_id, container = %name, netns, "network namespace attached: a selected container started")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(run = %run_id, container = %name, error = %e, "not watching a container's network namespace")
        }
    }
}

/// Makes the attached namespaces those of the selected containers (plus
/// the host's); false once the run is gone.
fn sync(
    registry: &Registry,
    selector: &Selector,
    host: Option<u64>,
    net: &Weak<NetDispatch>,
    run_id: &str,
) -> bool {
    let Some(net) = net.upgrade() else {
        return false;
    };
    let want = wanted(registry, selector, host);
    for inode in net.netns() {
        if !want.contains(&inode) {
            net.detach(inode);
        }
    }
    for c in registry.list() {
        if selector.matches(&c) && c.netns != 0 {
            attach(&net, c.netns, c.pid, &c.name, run_id);
        }
    }
    true
}

/// The network namespaces of the selected containers listed now, and the host's.
fn wanted(registry: &Registry, selector: &Selector, host: Option<u64>) -> BTreeSet<u64> {
    registry
        .list()
        .iter()
        .filter(|c| selector.matches(c) && c.netns != 0)
        .map(|c| c.netns)
        .chain(host)
        .collect()
}

/// The host's network namespace (pid 1's).
fn host_netns() -> Option<u64> {
    std::fs::metadata("/proc/1/ns/net")
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}
