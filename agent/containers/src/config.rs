//! Which runtime sockets the agent watches.

use std::path::PathBuf;

/// Runtime names as they appear in `runtime.name` and `--runtime`.
pub const RUNTIME_NAMES: &[&str] = &["docker", "podman", "containerd", "cri-o"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Docker Engine API (dockerd).
    Docker,
    /// Docker Engine API served by `podman system service`.
    Podman,
    /// containerd's gRPC API, every namespace.
    Containerd,
    /// The CRI gRPC API (CRI-O, or containerd's CRI plugin).
    Cri,
}

impl RuntimeKind {
    pub fn parse(s: &str) -> Option<RuntimeKind> {
        Some(match s {
            "docker" => RuntimeKind::Docker,
            "podman" => RuntimeKind::Podman,
            "containerd" => RuntimeKind::Containerd,
            "cri-o" | "crio" | "cri" => RuntimeKind::Cri,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Podman => "podman",
            RuntimeKind::Containerd => "containerd",
            RuntimeKind::Cri => "cri-o",
        }
    }
}

/// One socket to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEndpoint {
    pub kind: RuntimeKind,
    pub socket: PathBuf,
}

impl RuntimeEndpoint {
    /// The registry's source key: one per socket.
    pub fn source(&self) -> String {
        format!("{}:{}", self.kind.name(), self.socket.display())
    }
}

/// The default sockets, each watched only when it exists (and picked up
/// when it appears later).
pub fn defaults() -> Vec<RuntimeEndpoint> {
    [
        (RuntimeKind::Docker, "/run/docker.sock"),
        (RuntimeKind::Podman, "/run/podman/podman.sock"),
        (RuntimeKind::Containerd, "/run/containerd/containerd.sock"),
        (RuntimeKind::Cri, "/run/crio/crio.sock"),
    ]
    .into_iter()
    .map(|(kind, p)| RuntimeEndpoint {
        kind,
        socket: p.into(),
    })
    .collect()
}

/// `gadgetd` command-line options of the container watchers.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// Watch this container runtime socket (repeatable): KIND=SOCKET with
    /// KIND one of docker, podman, containerd, cri-o; `none` watches none.
    /// Default: docker=/run/docker.sock, podman=/run/podman/podman.sock,
    /// containerd=/run/containerd/containerd.sock, cri-o=/run/crio/crio.sock.
    #[arg(long = "container-runtime", value_name = "KIND=SOCKET")]
    pub container_runtime: Vec<String>,
}

impl RuntimeArgs {
    pub fn endpoints(&self) -> anyhow::Result<Vec<RuntimeEndpoint>> {
        if self.container_runtime.is_empty() {
            return Ok(defaults());
        }
        let mut out = Vec::new();
        for spec in &self.container_runtime {
            if spec == "none" {
                continue;
            }
            let (kind, socket) = spec.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--container-runtime `{spec}`: expected KIND=SOCKET (or `none`)")
            })?;
            let kind = RuntimeKind::parse(kind).ok_or_else(|| {
                anyhow::anyhow!(
                    "--container-runtime `{spec}`: unknown runtime `{kind}` (one of: {})",
                    RUNTIME_NAMES.join(", ")
                )
            })?;
            let socket = socket.strip_prefix("unix://").unwrap_or(socket);
            if socket.is_empty() {
                anyhow::bail!("--container-runtime `{spec}`: the socket path is empty");
            }
            out.push(RuntimeEndpoint {
                kind,
                socket: socket.into(),
            });
        }
        Ok(out)
    }
}
