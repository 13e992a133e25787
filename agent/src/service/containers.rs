//! `org.gadgetd.Agent1.Containers`: the container registry over D-Bus.

use std::sync::Arc;

use gadgetd_dbus::containers::ContainerInfo;
use zbus::message::Header as MsgHeader;
use zbus::{Connection, fdo, interface};

use super::manager::{ACTION_READ, Agent};
use gadgetd_containers::Container;

pub struct ContainersIface {
    pub agent: Arc<Agent>,
}

fn info(c: &Container) -> ContainerInfo {
    ContainerInfo {
        id: c.id.clone(),
        name: c.name.clone(),
        runtime: c.runtime.clone(),
        image: c.image.clone(),
        pid: c.pid,
        mntns: c.mntns,
        netns: c.netns,
        cgroup: c.cgroup.clone(),
        namespace: c.namespace.clone(),
        k8s_namespace: c.k8s.namespace.clone(),
        k8s_pod_name: c.k8s.pod_name.clone(),
        k8s_container_name: c.k8s.container_name.clone(),
    }
}

#[interface(name = "org.gadgetd.Agent1.Containers")]
impl ContainersIface {
    /// Running containers of every watched runtime, one entry per id.
    async fn list_containers(
        &self,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<ContainerInfo>> {
        self.agent.auth.check(conn, &hdr, ACTION_READ).await?;
        Ok(self
            .agent
            .containers
            .list()
            .iter()
            .map(|c| info(c))
            .collect())
    }
}
