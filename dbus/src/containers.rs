//! The containers the agent knows (`org.gadgetd.Agent1.Containers`).

use serde::{Deserialize, Serialize};
use zbus::proxy;
use zbus::zvariant::Type;

/// Interface name, on the manager object.
pub const CONTAINERS_INTERFACE: &str = "org.gadgetd.Agent1.Containers";

/// One running container, as the agent's runtime watchers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    /// `docker`, `podman`, `containerd` or `cri-o`.
    pub runtime: String,
    pub image: String,
    /// The container's init process (in the agent's PID namespace).
    pub pid: u32,
    /// Mount namespace inode (what gadgets report as `mntns_id`).
    pub mntns: u64,
    /// Network namespace inode.
    pub netns: u64,
    pub cgroup: String,
    /// containerd namespace (`default`, `k8s.io`, `moby`...), else empty.
    pub namespace: String,
    pub k8s_namespace: String,
    pub k8s_pod_name: String,
    pub k8s_container_name: String,
}

/// `org.gadgetd.Agent1.Containers` on `/org/gadgetd/Agent1`.
#[proxy(
    interface = "org.gadgetd.Agent1.Containers",
    default_service = "org.gadgetd.Agent1",
    default_path = "/org/gadgetd/Agent1"
)]
pub trait Containers {
    /// Running containers of every watched runtime, one entry per id.
    fn list_containers(&self) -> zbus::Result<Vec<ContainerInfo>>;
}
