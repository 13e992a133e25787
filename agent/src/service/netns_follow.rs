//! A network run with a container selection follows the network
//! namespaces of the containers it selects: a matching container that
//! starts after the run began gets the run's socket-filter dispatchers in
//! its namespace, and the run's tc programs on the host side of its veths,
//! when its runtime reports it started; both are detached when the last
//! selected container in that namespace goes. The mechanisms are the
//! runtime's (`follow_netns.rs`, `tc_follow.rs`); the registry's events
//! drive them here.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use gadgetd_containers::{Change, Container, Registry, Selector};
use gadgetd_runtime::follow_netns::attach_pid;
use gadgetd_runtime::net_dispatch::NetDispatch;
use gadgetd_runtime::tc_follow::TcFollow;
use tokio::sync::broadcast::error::RecvError;

/// How often the task checks that its run still exists when nothing changes.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// A container's veth may be set up just after its start event: how long
/// and how often tc attaching retries.
const VETH_WAIT: Duration = Duration::from_secs(10);
const VETH_RETRY: Duration = Duration::from_millis(100);

/// What a run attaches per network namespace (weak: the run owns them).
#[derive(Clone)]
struct Targets {
    net: Option<Weak<NetDispatch>>,
    tc: Option<Weak<TcFollow>>,
}

impl Targets {
    fn gone(&self) -> bool {
        self.net.as_ref().is_none_or(|w| w.strong_count() == 0)
            && self.tc.as_ref().is_none_or(|w| w.strong_count() == 0)
    }
}

/// Follows the containers `selector` matches for the run `run_id`, until the
/// run (the last strong references to `net` and `tc`) ends. Spawns a task.
pub fn follow(
    registry: Arc<Registry>,
    selector: Selector,
    net: Option<Arc<NetDispatch>>,
    tc: Option<Arc<TcFollow>>,
    run_id: String,
) {
    if net.is_none() && tc.is_none() {
        return;
    }
    // Subscribed before the first sync: no change falls between the two.
    let mut changes = registry.subscribe();
    let targets = Targets {
        net: net.as_ref().map(Arc::downgrade),
        tc: tc.as_ref().map(Arc::downgrade),
    };
    tokio::spawn(async move {
        // The host's namespace stays attached with --host.
        let host = selector.host.then(host_netns).flatten();
        sync(&registry, &selector, host, &targets, &run_id);
        loop {
            let change = match tokio::time::timeout(IDLE_CHECK, changes.recv()).await {
                Err(_) if targets.gone() => return,
                Err(_) => continue,
                Ok(c) => c,
            };
            if targets.gone() {
                return;
            }
            match change {
                Ok(Change::Added(c)) if selector.matches(&c) && c.netns != 0 => {
                    attach(&registry, &targets, c, &run_id, true)
                }
                Ok(Change::Removed(c)) if selector.matches(&c) && c.netns != 0 => {
                    if !wanted(&registry, &selector, host).contains(&c.netns) {
                        detach(&targets, c.netns, &c.name, &run_id);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(run = %run_id, missed = n, "container events missed: resynchronizing the run's network namespaces");
                    sync(&registry, &selector, host, &targets, &run_id);
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Attaches the run in container `c`'s namespace; tc retries in a task of
/// its own while the container has no veth yet (when `wait_veth`).
fn attach(
    registry: &Arc<Registry>,
    targets: &Targets,
    c: Arc<Container>,
    run_id: &str,
    wait_veth: bool,
) {
    if let Some(net) = targets.net.as_ref().and_then(Weak::upgrade) {
        match attach_pid(&net, c.netns, c.pid) {
            Ok(true) => {
                tracing::info!(run = %run_id, container = %c.name, netns = c.netns, "network namespace attached: a selected container started")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(run = %run_id, container = %c.name, error = %e, "not watching a container's network namespace")
            }
        }
    }
    let Some(tc) = targets.tc.clone() else {
        return;
    };
    let (registry, run_id) = (registry.clone(), run_id.to_string());
    let (name, id) = (c.name.clone(), c.id.clone());
    let attempt = move || -> Option<Result<bool, String>> {
        let tc = tc.upgrade()?;
        let path = format!("/proc/{}/ns/net", c.pid);
        let ns = std::fs::File::open(&path).map_err(|e| format!("network namespace {} of process {}: cannot open {path} ({e}); the container exited before it could be attached", c.netns, c.pid));
        Some(ns.and_then(|f| tc.attach(c.netns, &f)))
    };
    let report = |result: Result<bool, String>, name: &str, run_id: &str| match result {
        Ok(true) => {
            tracing::info!(run = %run_id, container = %name, "tc programs attached on a selected container's veths")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(run = %run_id, container = %name, error = %e, "tc programs not attached for a container")
        }
    };
    if !wait_veth {
        if let Some(r) = attempt() {
            report(r, &name, &run_id);
        }
        return;
    }
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + VETH_WAIT;
        loop {
            let Some(result) = attempt() else { return };
            let listed = registry.list().iter().any(|l| l.id == id);
            match result {
                Err(e)
                    if e.ends_with("has no veth (yet)")
                        && listed
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(VETH_RETRY).await;
                }
                r => return report(r, &name, &run_id),
            }
        }
    });
}

fn detach(targets: &Targets, netns: u64, name: &str, run_id: &str) {
    let net = targets.net.as_ref().and_then(Weak::upgrade);
    let tc = targets.tc.as_ref().and_then(Weak::upgrade);
    let gone_net = net.is_some_and(|n| n.detach(netns));
    let gone_tc = tc.is_some_and(|t| t.detach(netns));
    if gone_net || gone_tc {
        tracing::info!(run = %run_id, container = %name, netns, "network namespace detached: its last selected container went");
    }
}

/// Makes the namespaces attached those of the selected containers (plus
/// the host's).
fn sync(
    registry: &Arc<Registry>,
    selector: &Selector,
    host: Option<u64>,
    targets: &Targets,
    run_id: &str,
) {
    let want = wanted(registry, selector, host);
    let net = targets.net.as_ref().and_then(Weak::upgrade);
    let tc = targets.tc.as_ref().and_then(Weak::upgrade);
    let attached: BTreeSet<u64> = net
        .iter()
        .flat_map(|n| n.netns())
        .chain(tc.iter().flat_map(|t| t.netns()))
        .collect();
    for inode in attached.difference(&want) {
        detach(targets, *inode, "", run_id);
    }
    for c in registry.list() {
        if selector.matches(&c) && c.netns != 0 {
            attach(registry, targets, c, run_id, false);
        }
    }
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
