//! Docker Engine API watcher (dockerd, and podman's API service): the
//! `/events` stream for starts and stops, `/containers/{id}/json` for the
//! PID, image and labels.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::supervise::{Reporter, SessionEnd};
use super::{Discovered, K8s, Registry, RuntimeEndpoint, RuntimeKind, podman_events};

/// Both dockerd 20.10 and podman 4 speak it.
const API: &str = "/v1.40";

async fn get(socket: &Path, path: &str) -> Result<Response<Incoming>, String> {
    Ok(get_from(socket, path).await?.0)
}

/// [`get`], and the pid of the process serving the socket (its listener's
/// owner, from the peer credentials).
async fn get_from(socket: &Path, path: &str) -> Result<(Response<Incoming>, Option<u32>), String> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    let server = stream
        .peer_cred()
        .ok()
        .and_then(|c| c.pid())
        .and_then(|p| u32::try_from(p).ok());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get(format!("{API}{path}"))
        .header("Host", "gadgetd")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    Ok((resp, server))
}

async fn get_json<T: DeserializeOwned>(socket: &Path, path: &str) -> Result<Option<T>, String> {
    let resp = get(socket, path).await?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {path}: reading the body: {e}"))?
        .to_bytes();
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(format!(
            "GET {path}: {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| format!("GET {path}: bad JSON: {e}"))
}

#[derive(Deserialize)]
struct Version {
    #[serde(rename = "Version", default)]
    version: String,
    #[serde(rename = "Components", default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct Component {
    #[serde(rename = "Name", default)]
    name: String,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Deserialize)]
struct Inspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "State")]
    state: State,
    #[serde(rename = "Config", default)]
    config: Config,
    #[serde(rename = "ImageName", default)]
    image_name: String,
    #[serde(rename = "NetworkSettings", default)]
    network: NetworkSettings,
}

/// Where a container's addresses are: the default network's at the top
/// (`IPAddress`), every network's under `Networks`.
#[derive(Deserialize, Default)]
struct NetworkSettings {
    #[serde(rename = "IPAddress", default)]
    ip: String,
    #[serde(rename = "GlobalIPv6Address", default)]
    ipv6: String,
    #[serde(rename = "Networks", default)]
    networks: Option<HashMap<String, Network>>,
}

#[derive(Deserialize, Default)]
struct Network {
    #[serde(rename = "IPAddress", default)]
    ip: String,
    #[serde(rename = "GlobalIPv6Address", default)]
    ipv6: String,
}

impl NetworkSettings {
    /// Every address, once; unparsable ones are left out.
    fn ips(&self) -> Vec<std::net::IpAddr> {
        let nets = self.networks.iter().flat_map(|n| n.values());
        super::parse_ips(
            [&self.ip, &self.ipv6]
                .into_iter()
                .chain(nets.flat_map(|n| [&n.ip, &n.ipv6])),
        )
    }
}

#[derive(Deserialize)]
struct State {
    #[serde(rename = "Pid", default)]
    pid: u32,
    #[serde(rename = "Running", default)]
    running: bool,
}

#[derive(Deserialize, Default)]
struct Config {
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: Actor,
}

#[derive(Deserialize, Default)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: String,
    /// `name`, `image` and the container's labels.
    #[serde(rename = "Attributes", default)]
    attributes: Option<HashMap<String, String>>,
}

impl Actor {
    /// A created container from the event alone: no inspect round trip
    /// while the runtime goes on to start it.
    fn created(&self) -> Discovered {
        let attrs = self.attributes.clone().unwrap_or_default();
        let get = |k: &str| attrs.get(k).cloned().unwrap_or_default();
        Discovered {
            id: self.id.clone(),
            name: get("name"),
            image: get("image"),
            pid: 0,
            namespace: String::new(),
            k8s: K8s::from_labels(|k| attrs.get(k).map(String::as_str)),
            ips: Vec::new(),
        }
    }
}

/// The container, if it runs (not found / not running: `None`).
async fn inspect(socket: &Path, id: &str) -> Result<Option<Discovered>, String> {
    let Some(i) = get_json::<Inspect>(socket, &format!("/containers/{id}/json")).await? else {
        return Ok(None);
    };
    if !i.state.running || i.state.pid == 0 {
        return Ok(None);
    }
    let labels = i.config.labels.unwrap_or_default();
    Ok(Some(Discovered {
        name: i.name.trim_start_matches('/').to_string(),
        image: if i.config.image.is_empty() {
            i.image_name
        } else {
            i.config.image
        },
        pid: i.state.pid,
        namespace: String::new(),
        k8s: K8s::from_labels(|k| labels.get(k).map(String::as_str)),
        ips: i.network.ips(),
        id: i.id,
    }))
}

/// One connection's life: sync, then follow events until the stream ends.
pub async fn session(
    ep: &RuntimeEndpoint,
    registry: &Registry,
    source: &str,
    reporter: &mut Reporter,
) -> SessionEnd {
    let socket = ep.socket.as_path();
    let version = match get_json::<Version>(socket, "/version").await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return SessionEnd::unavailable("GET /version: 404 (not a Docker Engine API socket?)");
        }
        Err(e) => return SessionEnd::unavailable(e),
    };
    // podman's service names itself in the version components.
    let podman = version
        .components
        .iter()
        .any(|c| c.name.to_ascii_lowercase().contains("podman"))
        || (ep.kind == RuntimeKind::Podman && version.components.is_empty());
    let runtime = if podman {
        RuntimeKind::Podman
    } else {
        RuntimeKind::Docker
    }
    .name();
    // Subscribe before listing so a container starting in between is seen.
    // {"type":["container","network"]}: network events say when a running
    // container's addresses change.
    let filters = "%7B%22type%22%3A%5B%22container%22%2C%22network%22%5D%7D";
    let (events, server) = match get_from(socket, &format!("/events?filters={filters}")).await {
        Ok((r, pid)) if r.status().is_success() => (r, pid),
        Ok((r, _)) => return SessionEnd::lost(format!("GET /events: {}", r.status())),
        Err(e) => return SessionEnd::lost(e),
    };
    let list = match get_json::<Vec<Summary>>(socket, "/containers/json").await {
        Ok(l) => l.unwrap_or_default(),
        Err(e) => return SessionEnd::lost(e),
    };
    let mut now = Vec::new();
    for s in list {
        match inspect(socket, &s.id).await {
            Ok(Some(d)) => now.extend(d.resolve(runtime)),
            Ok(None) => {}
            Err(e) => return SessionEnd::lost(e),
        }
    }
    let count = now.len();
    registry.replace_source(source, now);
    reporter.connected(runtime, &version.version, count);
    // podman: its events file announces containers the CLI creates earlier
    // than the service's stream does (podman_events.rs).
    let file_follower = AtomicBool::new(false);
    let api = follow(
        events.into_body(),
        socket,
        registry,
        source,
        runtime,
        &file_follower,
    );
    match server.filter(|_| podman) {
        None => api.await,
        Some(pid) => {
            let file = async {
                if let Err(e) = podman_events::follow(pid, registry, &file_follower).await {
                    tracing::info!(runtime, error = %e, "stopped following podman's events file; containers are announced by the /events stream only");
                }
                std::future::pending::<SessionEnd>().await
            };
            tokio::select! {
                end = api => end,
                end = file => end,
            }
        }
    }
}

async fn follow(
    mut body: Incoming,
    socket: &Path,
    registry: &Registry,
    source: &str,
    runtime: &str,
    file_follower: &AtomicBool,
) -> SessionEnd {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = match body.frame().await {
            None => return SessionEnd::lost("the event stream ended"),
            Some(Err(e)) => return SessionEnd::lost(format!("reading events: {e}")),
            Some(Ok(f)) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        let mut events = Vec::new();
        let consumed = {
            let mut stream = serde_json::Deserializer::from_slice(&buf).into_iter::<Event>();
            loop {
                match stream.next() {
                    Some(Ok(ev)) => events.push(ev),
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => return SessionEnd::lost(format!("bad event JSON: {e}")),
                    None => break,
                }
            }
            stream.byte_offset()
        };
        buf.drain(..consumed);
        for ev in events {
            // A network (dis)connected a container: inspect that container again.
            let network_change =
                ev.kind == "network" && matches!(ev.action.as_str(), "connect" | "disconnect");
            let id = match network_change {
                true => ev
                    .actor
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("container"))
                    .cloned()
                    .unwrap_or_default(),
                false if ev.kind == "container" => ev.actor.id.clone(),
                false => continue,
            };
            if id.is_empty() {
                continue;
            }
            let action = if network_change {
                "start"
            } else {
                ev.action.as_str()
            };
            match action {
                "start" | "restart" | "unpause" => match inspect(socket, &id).await {
                    Ok(Some(d)) => {
                        if let Some(c) = d.resolve(runtime) {
                            registry.upsert(source, c);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(runtime, id = %id, error = %e, "cannot inspect a started container")
                    }
                },
                // Before it starts: its cgroup is awaited (filter.rs, catch-up).
                // (podman's own events file said so earlier, when followed.)
                "create" if !file_follower.load(Ordering::Relaxed) => {
                    registry.created(ev.actor.created().created(runtime))
                }
                "die" | "died" | "destroy" | "remove" | "cleanup" => registry.remove(source, &id),
                _ => {}
            }
        }
    }
}
