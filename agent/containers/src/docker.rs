//! Docker Engine API watcher (dockerd, and podman's API service): the
//! `/events` stream for starts and stops, `/containers/{id}/json` for the
//! PID, image and labels.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
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

/// Largest answer read about one thing (`/version`, one container's
/// `/containers/{id}/json`; real ones are a few KiB, labels and
/// environment included). The runtime is a local daemon, but whatever it
/// sends is buffered whole, so it is bounded.
pub const MAX_OBJECT_BYTES: usize = 1 << 20;
/// Largest container list read (`/containers/json`: ~1-2 KiB per container).
pub const MAX_LIST_BYTES: usize = 64 << 20;
/// Largest single event of the `/events` stream (real ones are < 2 KiB).
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// How much of an error answer is quoted in messages.
const QUOTED_ERROR_BYTES: usize = 512;

/// Why a `GET` failed, in words naming the endpoint.
#[derive(Debug)]
struct GetError {
    message: String,
    /// The answer was longer than the limit: the runtime is fine, this one
    /// thing cannot be read.
    too_long: bool,
}

impl From<String> for GetError {
    fn from(message: String) -> GetError {
        GetError {
            message,
            too_long: false,
        }
    }
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<GetError> for String {
    fn from(e: GetError) -> String {
        e.message
    }
}

/// The JSON answer of `GET path`, `None` on 404, read up to `limit`
/// bytes: a longer answer is an error naming the endpoint and the limit.
async fn get_json<T: DeserializeOwned>(
    socket: &Path,
    path: &str,
    limit: usize,
) -> Result<Option<T>, GetError> {
    let resp = get(socket, path).await?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map_err(|e| GetError {
            too_long: e.is::<LengthLimitError>(),
            message: if e.is::<LengthLimitError>() {
                format!(
                    "GET {path}: the answer is longer than {limit} bytes, the most gadgetd reads from {}",
                    socket.display()
                )
            } else {
                format!("GET {path}: reading the body: {e}")
            },
        })?
        .to_bytes();
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        let quoted = &body[..body.len().min(QUOTED_ERROR_BYTES)];
        return Err(format!(
            "GET {path}: {status}: {}",
            String::from_utf8_lossy(quoted).trim().escape_debug()
        )
        .into());
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| format!("GET {path}: bad JSON: {e}").into())
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
async fn inspect(socket: &Path, id: &str) -> Result<Option<Discovered>, GetError> {
    let Some(i) =
        get_json::<Inspect>(socket, &format!("/containers/{id}/json"), MAX_OBJECT_BYTES).await?
    else {
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
    let version = match get_json::<Version>(socket, "/version", MAX_OBJECT_BYTES).await {
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
    let list = match get_json::<Vec<Summary>>(socket, "/containers/json", MAX_LIST_BYTES).await {
        Ok(l) => l.unwrap_or_default(),
        Err(e) => return SessionEnd::lost(e),
    };
    let mut now = Vec::new();
    for s in list {
        match inspect(socket, &s.id).await {
            Ok(Some(d)) => now.extend(d.resolve(runtime)),
            Ok(None) => {}
            // One container the agent cannot read (an oversized answer)
            // is left out; the others are watched.
            Err(e) if e.too_long => {
                tracing::warn!(runtime, id = %s.id.escape_debug(), error = %e, "cannot inspect a running container; it is not watched")
            }
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
    // In an event longer than MAX_EVENT_BYTES: its bytes are dropped up to
    // the newline that ends it (the stream is one JSON event per line).
    let mut skipping = false;
    loop {
        let frame = match body.frame().await {
            None => return SessionEnd::lost("the event stream ended"),
            Some(Err(e)) => return SessionEnd::lost(format!("reading events: {e}")),
            Some(Ok(f)) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let data = if skipping {
            match data.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    skipping = false;
                    &data[end + 1..]
                }
                None => continue,
            }
        } else {
            &data[..]
        };
        buf.extend_from_slice(data);
        let mut events = Vec::new();
        // Events longer than MAX_EVENT_BYTES are skipped whether they came
        // whole (here) or are still coming (below, up to their newline).
        let mut skipped = 0;
        let consumed = {
            let mut stream = serde_json::Deserializer::from_slice(&buf).into_iter::<Event>();
            let mut start = 0;
            loop {
                match stream.next() {
                    Some(Ok(_)) if stream.byte_offset() - start > MAX_EVENT_BYTES => skipped += 1,
                    Some(Ok(ev)) => events.push(ev),
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => return SessionEnd::lost(format!("bad event JSON: {e}")),
                    None => break,
                }
                start = stream.byte_offset();
            }
            start
        };
        buf.drain(..consumed);
        if buf.len() > MAX_EVENT_BYTES {
            buf.clear();
            skipping = true;
            skipped += 1;
        }
        if skipped > 0 {
            // Container events carry the container's labels: only a
            // container with about this much of them makes one so long.
            tracing::warn!(
                runtime,
                skipped,
                "GET /events: skipped events longer than {MAX_EVENT_BYTES} bytes, the most gadgetd reads (their containers are not watched)"
            );
        }
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
