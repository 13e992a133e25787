//! CRI watcher (CRI-O, or containerd's CRI plugin): `ListContainers` every
//! [`POLL`], and `ContainerStatus` with `verbose` for a new container's PID
//! (the runtime's `info` JSON). Polling, because the CRI event stream
//! (`GetContainerEvents`) is optional in runtimes and off by default in CRI-O.
//!
//! Only the CRI messages and fields used are declared here; protobuf skips
//! the rest, so this stays compatible with every CRI v1 runtime.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use containerd_client::tonic::{self, codegen::http::uri::PathAndQuery, transport::Channel};

use super::supervise::{Reporter, SessionEnd};
use super::{Discovered, K8s, Registry, RuntimeEndpoint};

const POLL: Duration = Duration::from_secs(1);
const SERVICE: &str = "/runtime.v1.RuntimeService";

#[derive(Clone, PartialEq, prost::Message)]
struct VersionRequest {
    #[prost(string, tag = "1")]
    version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct VersionResponse {
    #[prost(string, tag = "2")]
    runtime_name: String,
    #[prost(string, tag = "3")]
    runtime_version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerStateValue {
    #[prost(int32, tag = "1")]
    state: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerFilter {
    #[prost(message, optional, tag = "2")]
    state: Option<ContainerStateValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListContainersRequest {
    #[prost(message, optional, tag = "1")]
    filter: Option<ContainerFilter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerMetadata {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ImageSpec {
    #[prost(string, tag = "1")]
    image: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CriContainer {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    pod_sandbox_id: String,
    #[prost(message, optional, tag = "3")]
    metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "4")]
    image: Option<ImageSpec>,
    #[prost(string, tag = "5")]
    image_ref: String,
    #[prost(map = "string, string", tag = "8")]
    labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListContainersResponse {
    #[prost(message, repeated, tag = "1")]
    containers: Vec<CriContainer>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerStatusRequest {
    #[prost(string, tag = "1")]
    container_id: String,
    #[prost(bool, tag = "2")]
    verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerStatusResponse {
    #[prost(map = "string, string", tag = "2")]
    info: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PodSandboxStatusRequest {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
    #[prost(bool, tag = "2")]
    verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PodSandboxStatusResponse {
    #[prost(message, optional, tag = "1")]
    status: Option<PodSandboxStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PodSandboxStatus {
    #[prost(message, optional, tag = "5")]
    network: Option<PodSandboxNetworkStatus>,
}

/// The pod's addresses (empty for a host-network pod).
#[derive(Clone, PartialEq, prost::Message)]
struct PodSandboxNetworkStatus {
    #[prost(string, tag = "1")]
    ip: String,
    #[prost(message, repeated, tag = "2")]
    additional_ips: Vec<PodIp>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PodIp {
    #[prost(string, tag = "1")]
    ip: String,
}

impl PodSandboxNetworkStatus {
    /// Every address, once; unparsable ones are left out.
    fn ips(&self) -> Vec<IpAddr> {
        super::parse_ips(std::iter::once(&self.ip).chain(self.additional_ips.iter().map(|p| &p.ip)))
    }
}

/// The addresses of the pod `sandbox` as the runtime reports them; empty
/// when it cannot say (then they are read from the pod's namespace).
async fn pod_ips(channel: &Channel, sandbox: &str) -> Vec<IpAddr> {
    if sandbox.is_empty() {
        return Vec::new();
    }
    let req = PodSandboxStatusRequest {
        pod_sandbox_id: sandbox.to_string(),
        verbose: false,
    };
    match call::<_, PodSandboxStatusResponse>(channel, const_path::POD_STATUS, req).await {
        Ok(r) => r
            .status
            .and_then(|s| s.network)
            .map(|n| n.ips())
            .unwrap_or_default(),
        Err(s) => {
            tracing::debug!(sandbox, error = %status("PodSandboxStatus", s), "no pod addresses from the runtime");
            Vec::new()
        }
    }
}

/// `CONTAINER_RUNNING` of the CRI's ContainerState.
const CONTAINER_RUNNING: i32 = 1;

async fn call<Req, Resp>(
    channel: &Channel,
    method: &'static str,
    req: Req,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("CRI connection: {e}")))?;
    let path = PathAndQuery::from_static(method);
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    Ok(grpc
        .unary(tonic::Request::new(req), path, codec)
        .await?
        .into_inner())
}

fn status(what: &str, s: tonic::Status) -> String {
    format!("{what}: {} ({:?})", s.message(), s.code())
}

/// The PID from the runtime's verbose info: CRI-O and containerd both put a
/// JSON object with `pid` under `info`.
fn pid_from_info(info: &HashMap<String, String>) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_str(info.get("info")?).ok()?;
    v.get("pid")?
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0)
}

async fn discover(channel: &Channel, c: &CriContainer) -> Result<Option<Discovered>, String> {
    let resp: ContainerStatusResponse = call(
        channel,
        const_path::STATUS,
        ContainerStatusRequest {
            container_id: c.id.clone(),
            verbose: true,
        },
    )
    .await
    .map_err(|s| status("ContainerStatus", s))?;
    let Some(pid) = pid_from_info(&resp.info) else {
        return Ok(None);
    };
    let image = c
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| c.image_ref.clone());
    Ok(Some(Discovered {
        id: c.id.clone(),
        name: c
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_else(|| c.id.clone()),
        image,
        pid,
        namespace: String::new(),
        k8s: K8s::from_labels(|k| c.labels.get(k).map(String::as_str)),
        ips: pod_ips(channel, &c.pod_sandbox_id).await,
    }))
}

mod const_path {
    pub const VERSION: &str = "/runtime.v1.RuntimeService/Version";
    pub const LIST: &str = "/runtime.v1.RuntimeService/ListContainers";
    pub const STATUS: &str = "/runtime.v1.RuntimeService/ContainerStatus";
    pub const POD_STATUS: &str = "/runtime.v1.RuntimeService/PodSandboxStatus";
}

pub async fn session(
    ep: &RuntimeEndpoint,
    registry: &Registry,
    source: &str,
    reporter: &mut Reporter,
) -> SessionEnd {
    debug_assert!(const_path::LIST.starts_with(SERVICE));
    if !ep.socket.exists() {
        return SessionEnd::unavailable(format!("{} does not exist", ep.socket.display()));
    }
    let channel = match containerd_client::connect(&ep.socket).await {
        Ok(c) => c,
        Err(e) => return SessionEnd::unavailable(format!("connecting: {e}")),
    };
    let version: VersionResponse = match call(
        &channel,
        const_path::VERSION,
        VersionRequest {
            version: "v1".into(),
        },
    )
    .await
    {
        Ok(v) => v,
        Err(s) => return SessionEnd::unavailable(status("CRI Version", s)),
    };
    let runtime = super::RuntimeKind::Cri.name();
    let mut known: HashSet<String> = HashSet::new();
    let mut first = true;
    loop {
        let list: ListContainersResponse = match call(
            &channel,
            const_path::LIST,
            ListContainersRequest {
                filter: Some(ContainerFilter {
                    state: Some(ContainerStateValue {
                        state: CONTAINER_RUNNING,
                    }),
                }),
            },
        )
        .await
        {
            Ok(l) => l,
            Err(s) => return SessionEnd::lost(status("ListContainers", s)),
        };
        let now: HashSet<String> = list.containers.iter().map(|c| c.id.clone()).collect();
        if first {
            let mut all = Vec::new();
            for c in &list.containers {
                match discover(&channel, c).await {
                    Ok(Some(d)) => all.extend(d.resolve(runtime)),
                    Ok(None) => {}
                    Err(e) => return SessionEnd::lost(e),
                }
            }
            let count = all.len();
            registry.replace_source(source, all);
            reporter.connected(
                &format!("cri-o ({})", version.runtime_name),
                &version.runtime_version,
                count,
            );
            first = false;
        } else {
            for c in list.containers.iter().filter(|c| !known.contains(&c.id)) {
                match discover(&channel, c).await {
                    Ok(Some(d)) => {
                        if let Some(c) = d.resolve(runtime) {
                            registry.upsert(source, c);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return SessionEnd::lost(e),
                }
            }
            for gone in known.difference(&now) {
                registry.remove(source, gone);
            }
        }
        known = now;
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_comes_from_the_verbose_info_json() {
        let mut info = HashMap::new();
        info.insert(
            "info".to_string(),
            r#"{"sandboxID":"x","pid":4242,"runtimeSpec":{}}"#.to_string(),
        );
        assert_eq!(pid_from_info(&info), Some(4242));
        info.insert("info".to_string(), r#"{"pid":0}"#.to_string());
        assert_eq!(pid_from_info(&info), None);
        assert_eq!(pid_from_info(&HashMap::new()), None);
    }

    #[test]
    fn pod_addresses_come_from_the_sandbox_network_status() {
        use prost::Message;
        let status = PodSandboxStatusResponse {
            status: Some(PodSandboxStatus {
                network: Some(PodSandboxNetworkStatus {
                    ip: "10.244.0.5".into(),
                    additional_ips: vec![
                        PodIp {
                            ip: "fd00::5".into(),
                        },
                        PodIp {
                            ip: "10.244.0.5".into(),
                        },
                        PodIp {
                            ip: "not an address".into(),
                        },
                    ],
                }),
            }),
        };
        // Through the wire format, as a runtime would send it.
        let back = PodSandboxStatusResponse::decode(status.encode_to_vec().as_slice()).unwrap();
        let ips = back.status.unwrap().network.unwrap().ips();
        assert_eq!(
            ips,
            [
                "10.244.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        // A host-network pod: no addresses of its own.
        assert!(PodSandboxNetworkStatus::default().ips().is_empty());
    }
}
