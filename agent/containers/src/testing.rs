//! A registry of made-up containers, for benchmarks of the enrichment path.

use std::sync::Arc;

use super::{Container, K8s, Registry};

/// The mount namespace of made-up container `i` is `MNTNS_BASE + i` (its
/// network namespace `NETNS_BASE + i`): below the host's for `i` < 800, so
/// an event of the host misses.
pub const MNTNS_BASE: u64 = 4_026_531_000;
pub const NETNS_BASE: u64 = 4_026_532_000;

/// A registry of `n` Docker containers, each with its own id, name,
/// namespaces (see [`MNTNS_BASE`]) and one address in 10.128.0.0/16.
pub fn registry(n: u64) -> Arc<Registry> {
    let r = Registry::new();
    for i in 0..n {
        r.upsert(
            "bench",
            Container {
                id: format!("{i:064x}"),
                name: format!("web-{i}"),
                runtime: "docker".into(),
                image: "registry.example/team/web:1.2.3".into(),
                pid: 1000 + i as u32,
                mntns: MNTNS_BASE + i,
                netns: NETNS_BASE + i,
                cgroup: String::new(),
                namespace: String::new(),
                k8s: K8s::default(),
                ips: vec![std::net::Ipv4Addr::from(0x0a80_0000 + i as u32).into()],
            },
        );
    }
    r
}
