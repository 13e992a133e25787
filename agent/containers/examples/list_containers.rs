//! Watches the container runtimes for two seconds and prints the containers
//! seen, one JSON object per line (id, name, runtime, image, pid, mount and
//! network namespace inodes, cgroup, Kubernetes labels).
//!
//!     sudo cargo run -p gadgetd-containers --example list_containers
//!     sudo cargo run -p gadgetd-containers --example list_containers -- docker=/run/docker.sock
//!
//! Arguments: KIND=SOCKET (docker, podman, containerd, cri-o); none: every
//! default socket that exists. Reading other processes' namespaces needs root.

use std::time::Duration;

use gadgetd_containers::{Registry, RuntimeArgs, supervise};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = RuntimeArgs {
        container_runtime: std::env::args().skip(1).collect(),
    };
    let registry = Registry::new();
    supervise::start(args.endpoints()?, registry.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    for container in registry.list() {
        println!("{}", serde_json::to_string(&*container)?);
    }
    Ok(())
}
