//! Network namespaces that appear or go while a socket-filter gadget runs.
//!
//! A run's socket filters sit behind one dispatcher per namespace
//! ([`NetDispatch`]), so following a namespace is attaching or detaching
//! dispatchers; the gadget itself stays loaded once. Two ways to learn of
//! namespaces:
//!
//! * **every namespace of the host** (`--all-netns`): [`follow_host`] scans
//!   `/proc/*/ns/net` and `/run/netns` (stat only) every [`HOST_SCAN`] and
//!   attaches new namespaces, detaching those no process or bind mount holds
//!   any more. The kernel announces no namespace creation without kprobes,
//!   so a namespace's packets before its first scan are not seen.
//! * **selected containers**: the agent attaches a container's namespace
//!   when its runtime reports the container started ([`attach_pid`]), and
//!   detaches it when the last selected container in it goes (the service's
//!   `netns_follow.rs`).
//!
//! The dispatcher's packet socket holds its namespace: detaching is what
//! lets a namespace that emptied be freed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::net_dispatch::NetDispatch;
use super::snapshot;

/// How often [`follow_host`] looks for namespaces.
pub const HOST_SCAN: Duration = Duration::from_millis(250);

/// Attaches `net` in the network namespace of process `pid`, which should
/// be `inode` (as a container runtime reported it). `Ok(false)` when
/// attached there already. Errors name the namespace and the process: one
/// that exited before it could be attached, a pid reused by a process of
/// another namespace, a dispatcher the kernel refused.
pub fn attach_pid(net: &NetDispatch, inode: u64, pid: u32) -> Result<bool, String> {
    let path = format!("/proc/{pid}/ns/net");
    let ns = snapshot::open_netns_at(&path).map_err(|e| {
        format!("network namespace {inode} of process {pid}: cannot open {path} ({e}); the process exited before it could be attached")
    })?;
    if ns.inode != inode {
        return Err(format!(
            "network namespace {inode} of process {pid}: the process is now in namespace {} (it exited and its pid was reused)",
            ns.inode
        ));
    }
    net.attach(ns.inode, &ns.file)
}

/// Keeps `net` attached in every network namespace of the host, from now
/// until the run (the last strong reference to `net`) ends. Spawns a task
/// on the current tokio runtime.
pub fn follow_host(net: &Arc<NetDispatch>) {
    let net = Arc::downgrade(net);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOST_SCAN);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Namespaces that could not be attached: said once, not retried.
        let mut failed = std::collections::BTreeSet::new();
        loop {
            tick.tick().await;
            if !sync_host(&net, &mut failed) {
                return;
            }
        }
    });
}

/// One scan of [`follow_host`]; false once the run is gone.
fn sync_host(net: &Weak<NetDispatch>, failed: &mut std::collections::BTreeSet<u64>) -> bool {
    let Some(net) = net.upgrade() else {
        return false;
    };
    let present = snapshot::netns_paths();
    failed.retain(|inode| present.contains_key(inode));
    for inode in net.netns() {
        if !present.contains_key(&inode) && net.detach(inode) {
            tracing::info!(netns = inode, "network namespace gone: detached");
        }
    }
    let attached = net.netns();
    for (inode, path) in present {
        if attached.binary_search(&inode).is_ok() || failed.contains(&inode) {
            continue;
        }
        // It may go between the scan and here: then there is nothing to watch.
        let result = snapshot::open_netns_at(&path)
            .map_err(|e| format!("network namespace {inode}: cannot open {path} ({e}); it went away before it could be attached"))
            .and_then(|ns| {
                if ns.inode == inode {
                    net.attach(inode, &ns.file)
                } else {
                    Ok(false) // the path names another namespace by now: next scan
                }
            });
        match result {
            Ok(true) => tracing::info!(netns = inode, "new network namespace: attached"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(netns = inode, error = %e, "not watching a network namespace");
                failed.insert(inode);
            }
        }
    }
    true
}
