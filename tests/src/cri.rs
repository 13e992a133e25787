//! A minimal CRI (runtime.v1) client, to create pods and containers in
//! containerd's CRI plugin the way the kubelet does (CRI-O is not packaged
//! for Debian 12, `crictl` neither). Only the fields used are declared;
//! the tags are those of k8s.io/cri-api's api.proto.

use std::collections::HashMap;
use std::path::Path;

use containerd_client::tonic::{self, codegen::http::uri::PathAndQuery, transport::Channel};

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceOption {
    /// POD = 0, CONTAINER = 1, NODE = 2.
    #[prost(int32, tag = "1")]
    pub network: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxSandboxSecurityContext {
    #[prost(message, optional, tag = "1")]
    pub namespace_options: Option<NamespaceOption>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxPodSandboxConfig {
    #[prost(message, optional, tag = "2")]
    pub security_context: Option<LinuxSandboxSecurityContext>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxConfig {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(string, tag = "3")]
    pub log_directory: String,
    #[prost(map = "string, string", tag = "6")]
    pub labels: HashMap<String, String>,
    #[prost(message, optional, tag = "8")]
    pub linux: Option<LinuxPodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RunPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    config: Option<PodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RunPodSandboxResponse {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageSpec {
    #[prost(string, tag = "1")]
    pub image: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerConfig {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "2")]
    pub image: Option<ImageSpec>,
    #[prost(string, repeated, tag = "3")]
    pub command: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub args: Vec<String>,
    #[prost(map = "string, string", tag = "9")]
    pub labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CreateContainerRequest {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
    #[prost(message, optional, tag = "2")]
    config: Option<ContainerConfig>,
    #[prost(message, optional, tag = "3")]
    sandbox_config: Option<PodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CreateContainerResponse {
    #[prost(string, tag = "1")]
    container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerIdRequest {
    #[prost(string, tag = "1")]
    container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SandboxIdRequest {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

pub struct Cri {
    channel: Channel,
    rt: tokio::runtime::Runtime,
}

impl Cri {
    pub fn connect(socket: &Path) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let channel = rt
            .block_on(containerd_client::connect(socket))
            .unwrap_or_else(|e| panic!("connecting to the CRI socket {}: {e}", socket.display()));
        Cri { channel, rt }
    }

    fn call<Req, Resp>(&self, method: &'static str, req: Req) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.rt.block_on(async {
            let mut grpc = tonic::client::Grpc::new(self.channel.clone());
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            Ok(grpc
                .unary(
                    tonic::Request::new(req),
                    PathAndQuery::from_static(method),
                    codec,
                )
                .await?
                .into_inner())
        })
    }

    /// A pod in the host network namespace (no CNI needed).
    pub fn run_pod(&self, config: &PodSandboxConfig) -> String {
        let r: RunPodSandboxResponse = self
            .call(
                "/runtime.v1.RuntimeService/RunPodSandbox",
                RunPodSandboxRequest {
                    config: Some(config.clone()),
                },
            )
            .unwrap_or_else(|s| panic!("RunPodSandbox: {s}"));
        r.pod_sandbox_id
    }

    pub fn create_and_start(
        &self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        config: ContainerConfig,
    ) -> String {
        let r: CreateContainerResponse = self
            .call(
                "/runtime.v1.RuntimeService/CreateContainer",
                CreateContainerRequest {
                    pod_sandbox_id: pod.to_string(),
                    config: Some(config),
                    sandbox_config: Some(pod_config.clone()),
                },
            )
            .unwrap_or_else(|s| panic!("CreateContainer: {s}"));
        let _: Empty = self
            .call(
                "/runtime.v1.RuntimeService/StartContainer",
                ContainerIdRequest {
                    container_id: r.container_id.clone(),
                },
            )
            .unwrap_or_else(|s| panic!("StartContainer: {s}"));
        r.container_id
    }

    pub fn stop_container(&self, id: &str) {
        let _: Result<Empty, _> = self.call(
            "/runtime.v1.RuntimeService/StopContainer",
            ContainerIdRequest {
                container_id: id.to_string(),
            },
        );
        let _: Result<Empty, _> = self.call(
            "/runtime.v1.RuntimeService/RemoveContainer",
            ContainerIdRequest {
                container_id: id.to_string(),
            },
        );
    }

    pub fn remove_pod(&self, id: &str) {
        let _: Result<Empty, _> = self.call(
            "/runtime.v1.RuntimeService/StopPodSandbox",
            SandboxIdRequest {
                pod_sandbox_id: id.to_string(),
            },
        );
        let _: Result<Empty, _> = self.call(
            "/runtime.v1.RuntimeService/RemovePodSandbox",
            SandboxIdRequest {
                pod_sandbox_id: id.to_string(),
            },
        );
    }
}

/// A pod config as the kubelet would send it, in the host network.
pub fn pod_config(name: &str, namespace: &str) -> PodSandboxConfig {
    let mut labels = HashMap::new();
    labels.insert("io.kubernetes.pod.name".to_string(), name.to_string());
    labels.insert(
        "io.kubernetes.pod.namespace".to_string(),
        namespace.to_string(),
    );
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{name}"),
            namespace: namespace.to_string(),
            attempt: 0,
        }),
        log_directory: String::new(),
        labels,
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption { network: 2 }),
            }),
        }),
    }
}

/// A container config with the kubelet's labels.
pub fn container_config(
    pod: &str,
    namespace: &str,
    name: &str,
    image: &str,
    script: &str,
) -> ContainerConfig {
    let mut labels = HashMap::new();
    labels.insert("io.kubernetes.pod.name".to_string(), pod.to_string());
    labels.insert(
        "io.kubernetes.pod.namespace".to_string(),
        namespace.to_string(),
    );
    labels.insert("io.kubernetes.container.name".to_string(), name.to_string());
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_string(),
        }),
        image: Some(ImageSpec {
            image: image.to_string(),
        }),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        args: vec![],
        labels,
    }
}
