//! Which container an eBPF event came from, and which containers a gadget
//! should watch: watchers over the container runtimes' own sockets (Docker
//! Engine API for dockerd and podman, containerd's gRPC API, the CRI API of
//! CRI-O) keep one [`Registry`] of running [`Container`]s (namespaces
//! resolved from `/proc`).
//!
//! * [`supervise::start`]: one watcher task per [`RuntimeEndpoint`] (from
//!   [`RuntimeArgs`]), reconnecting with backoff; needs a tokio runtime.
//! * [`Selector`] and [`filter`]: containers by name, id, image, runtime or
//!   Kubernetes labels, turned into the mount namespaces a gadget's
//!   `gadget_mntns_filter_map` holds, kept in sync as containers come and go.
//! * The [`Registry`] is a `gadgetd_runtime::enrich::Enricher`: decoded
//!   events get the container's fields beside their namespace field.
//!
//! Runnable: `sudo cargo run -p gadgetd-containers --example list_containers`.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> anyhow::Result<()> {
//! use gadgetd_containers::{Registry, RuntimeArgs, supervise};
//! let registry = Registry::new();
//! supervise::start(RuntimeArgs::default().endpoints()?, registry.clone());
//! tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//! for c in registry.list() {
//!     println!("{} {} mntns {}", c.runtime, c.name, c.mntns);
//! }
//! # Ok(()) }
//! ```

mod config;
mod containerd;
mod cri;
mod docker;
mod enrich;
pub mod filter;
mod podman_events;
mod procinfo;
mod registry;
pub mod selector;
pub mod supervise;
pub mod testing;
pub mod watchers;

pub use config::{RuntimeArgs, RuntimeEndpoint, RuntimeKind};
pub use registry::{Change, Registry};
pub use selector::Selector;

use serde::Serialize;

/// One running container, as the agent knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// `docker`, `podman`, `containerd` or `cri-o`.
    pub runtime: String,
    pub image: String,
    /// The container's init process, as seen from the agent's PID namespace.
    pub pid: u32,
    pub mntns: u64,
    pub netns: u64,
    /// The init process's cgroup path (v2 path, else the first v1 path).
    pub cgroup: String,
    /// containerd namespace (`default`, `k8s.io`, `moby`...), empty elsewhere.
    pub namespace: String,
    pub k8s: K8s,
    /// The container's own IP addresses (none when it shares the host's
    /// network namespace): from its runtime (Docker/podman
    /// `NetworkSettings`), else read from its network namespace.
    pub ips: Vec<std::net::IpAddr>,
}

/// What the CRI labels say about a Kubernetes container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct K8s {
    pub namespace: String,
    pub pod_name: String,
    pub container_name: String,
}

impl K8s {
    /// From the labels CRI implementations put on containers.
    pub fn from_labels<'a>(mut get: impl FnMut(&str) -> Option<&'a str>) -> K8s {
        let mut one = |k: &str| get(k).unwrap_or_default().to_string();
        K8s {
            namespace: one("io.kubernetes.pod.namespace"),
            pod_name: one("io.kubernetes.pod.name"),
            container_name: one("io.kubernetes.container.name"),
        }
    }
}

/// The addresses among `texts` (as runtimes report them), sorted, once
/// each; anything that is not an address is left out.
pub(crate) fn parse_ips<'a>(texts: impl Iterator<Item = &'a String>) -> Vec<std::net::IpAddr> {
    let mut out: Vec<std::net::IpAddr> = texts.filter_map(|s| s.parse().ok()).collect();
    out.sort();
    out.dedup();
    out
}

/// What a watcher learned about a container before its namespaces are read.
#[derive(Debug, Clone)]
pub(crate) struct Discovered {
    pub id: String,
    pub name: String,
    pub image: String,
    pub pid: u32,
    pub namespace: String,
    pub k8s: K8s,
    /// Addresses the runtime reports (empty: read from the network namespace).
    pub ips: Vec<std::net::IpAddr>,
}

impl Discovered {
    /// A created container, before it has a process ([`Change::Created`]).
    pub fn created(self, runtime: &str) -> Container {
        Container {
            id: self.id,
            name: self.name,
            runtime: runtime.to_string(),
            image: self.image,
            pid: 0,
            mntns: 0,
            netns: 0,
            cgroup: String::new(),
            namespace: self.namespace,
            k8s: self.k8s,
            ips: self.ips,
        }
    }

    /// Reads the process's namespaces and cgroup. `None` when the process is
    /// already gone (the container exited meanwhile).
    pub fn resolve(self, runtime: &str) -> Option<Container> {
        let ns = procinfo::namespaces(self.pid)?;
        let ips = if !self.ips.is_empty() {
            self.ips
        } else if Some(ns.net) == procinfo::host_netns() {
            Vec::new() // the host's network: its addresses are the host's
        } else {
            procinfo::addresses(self.pid)
        };
        Some(Container {
            id: self.id,
            name: self.name,
            runtime: runtime.to_string(),
            image: self.image,
            pid: self.pid,
            mntns: ns.mnt,
            netns: ns.net,
            cgroup: procinfo::cgroup(self.pid).unwrap_or_default(),
            namespace: self.namespace,
            k8s: self.k8s,
            ips,
        })
    }
}
