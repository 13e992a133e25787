//! containerd watcher: the Events service (every namespace: `default`,
//! `k8s.io`, `moby`, ...) for task starts and exits, the Containers and
//! Tasks services for image, labels and PID.

use containerd_client::events::{
    ContainerCreate, ContainerDelete, TaskDelete, TaskExit, TaskStart,
};
use containerd_client::services::v1::{
    GetContainerRequest, ListContainersRequest, ListNamespacesRequest, ListTasksRequest,
    SubscribeRequest, containers_client::ContainersClient, events_client::EventsClient,
    namespaces_client::NamespacesClient, tasks_client::TasksClient, version_client::VersionClient,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{self, Request};
use containerd_client::types::v1::Status;
use prost::Message;

use super::supervise::{Reporter, SessionEnd};
use super::{Discovered, K8s, Registry, RuntimeEndpoint};

const RUNTIME: &str = "containerd";

fn with_ns<T>(msg: T, ns: &str) -> Request<T> {
    let mut req = Request::new(msg);
    if let Ok(v) = ns.parse() {
        req.metadata_mut().insert("containerd-namespace", v);
    }
    req
}

fn status(what: &str, s: tonic::Status) -> String {
    format!("{what}: {} ({:?})", s.message(), s.code())
}

/// The name users know a containerd container by: the Kubernetes container
/// name, nerdctl's name label, else its id.
fn name_of(id: &str, labels: &std::collections::HashMap<String, String>) -> String {
    ["io.kubernetes.container.name", "nerdctl/name"]
        .iter()
        .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()))
        .cloned()
        .unwrap_or_else(|| id.to_string())
}

async fn describe(
    channel: &Channel,
    ns: &str,
    id: &str,
    pid: u32,
) -> Result<Option<Discovered>, String> {
    let got = ContainersClient::new(channel.clone())
        .get(with_ns(GetContainerRequest { id: id.to_string() }, ns))
        .await;
    let c = match got {
        Ok(r) => match r.into_inner().container {
            Some(c) => c,
            None => return Ok(None),
        },
        Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
        Err(s) => return Err(status("Containers.Get", s)),
    };
    Ok(Some(Discovered {
        name: name_of(&c.id, &c.labels),
        image: c.image.clone(),
        pid,
        namespace: ns.to_string(),
        k8s: K8s::from_labels(|k| c.labels.get(k).map(String::as_str)),
        ips: Vec::new(),
        id: c.id,
    }))
}

/// Every running task of every namespace.
async fn list_all(channel: &Channel) -> Result<Vec<super::Container>, String> {
    let namespaces = NamespacesClient::new(channel.clone())
        .list(ListNamespacesRequest::default())
        .await
        .map_err(|s| status("Namespaces.List", s))?
        .into_inner()
        .namespaces;
    let mut out = Vec::new();
    for ns in namespaces {
        let tasks = TasksClient::new(channel.clone())
            .list(with_ns(ListTasksRequest::default(), &ns.name))
            .await
            .map_err(|s| status("Tasks.List", s))?
            .into_inner()
            .tasks;
        let containers = ContainersClient::new(channel.clone())
            .list(with_ns(ListContainersRequest::default(), &ns.name))
            .await
            .map_err(|s| status("Containers.List", s))?
            .into_inner()
            .containers;
        for t in tasks {
            if t.pid == 0 || t.status == Status::Stopped as i32 {
                continue;
            }
            let id = if t.container_id.is_empty() {
                &t.id
            } else {
                &t.container_id
            };
            let Some(c) = containers.iter().find(|c| &c.id == id) else {
                continue;
            };
            let d = Discovered {
                id: c.id.clone(),
                name: name_of(&c.id, &c.labels),
                image: c.image.clone(),
                pid: t.pid,
                namespace: ns.name.clone(),
                k8s: K8s::from_labels(|k| c.labels.get(k).map(String::as_str)),
                ips: Vec::new(),
            };
            out.extend(d.resolve(RUNTIME));
        }
    }
    Ok(out)
}

pub async fn session(
    ep: &RuntimeEndpoint,
    registry: &Registry,
    source: &str,
    reporter: &mut Reporter,
) -> SessionEnd {
    if !ep.socket.exists() {
        return SessionEnd::unavailable(format!("{} does not exist", ep.socket.display()));
    }
    let channel = match containerd_client::connect(&ep.socket).await {
        Ok(c) => c,
        Err(e) => return SessionEnd::unavailable(format!("connecting: {e}")),
    };
    let version = match VersionClient::new(channel.clone()).version(()).await {
        Ok(v) => v.into_inner().version,
        Err(s) => return SessionEnd::unavailable(status("Version", s)),
    };
    // Subscribe first (no namespace header: events of every namespace).
    // containerd sends the response headers only with the first event, so
    // the stream is read by its own task.
    let (tx, mut events) = tokio::sync::mpsc::channel(1024);
    let sub_channel = channel.clone();
    let reader = tokio::spawn(async move {
        let mut stream = match EventsClient::new(sub_channel)
            .subscribe(SubscribeRequest { filters: vec![] })
            .await
        {
            Ok(s) => s.into_inner(),
            Err(s) => return status("Events.Subscribe", s),
        };
        loop {
            match stream.message().await {
                Ok(Some(env)) => {
                    if tx.send(env).await.is_err() {
                        return String::new();
                    }
                }
                Ok(None) => return "the event stream ended".to_string(),
                Err(s) => return status("Events", s),
            }
        }
    });
    let _abort = AbortOnDrop(reader.abort_handle());
    // Give the subscription a moment to register before listing.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let now = match list_all(&channel).await {
        Ok(l) => l,
        Err(e) => return SessionEnd::lost(e),
    };
    let count = now.len();
    registry.replace_source(source, now);
    reporter.connected(RUNTIME, &version, count);
    loop {
        let Some(env) = events.recv().await else {
            let reason = match reader.await {
                Ok(r) => r,
                Err(e) => e.to_string(),
            };
            return SessionEnd::lost(reason);
        };
        let Some(any) = env.event else { continue };
        let ns = env.namespace.as_str();
        match env.topic.as_str() {
            "/tasks/start" => {
                let Ok(ev) = TaskStart::decode(any.value.as_slice()) else {
                    continue;
                };
                match describe(&channel, ns, &ev.container_id, ev.pid).await {
                    Ok(Some(d)) => {
                        if let Some(c) = d.resolve(RUNTIME) {
                            registry.upsert(source, c);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(runtime = RUNTIME, id = %ev.container_id, error = %e, "cannot describe a started container")
                    }
                }
            }
            // Before it starts: its cgroup is awaited (filter.rs, catch-up).
            "/containers/create" => {
                let Ok(ev) = ContainerCreate::decode(any.value.as_slice()) else {
                    continue;
                };
                match describe(&channel, ns, &ev.id, 0).await {
                    Ok(Some(d)) => registry.created(d.created(RUNTIME)),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(runtime = RUNTIME, id = %ev.id, error = %e, "cannot describe a created container")
                    }
                }
            }
            "/tasks/exit" => {
                let Ok(ev) = TaskExit::decode(any.value.as_slice()) else {
                    continue;
                };
                // An exec'd process exiting does not end the container.
                if ev.id == ev.container_id || ev.id.is_empty() {
                    registry.remove(source, &ev.container_id);
                }
            }
            "/tasks/delete" => {
                if let Ok(ev) = TaskDelete::decode(any.value.as_slice()) {
                    registry.remove(source, &ev.container_id);
                }
            }
            "/containers/delete" => {
                if let Ok(ev) = ContainerDelete::decode(any.value.as_slice()) {
                    registry.remove(source, &ev.id);
                }
            }
            _ => {}
        }
    }
}

/// Stops the event reader task when the session ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
