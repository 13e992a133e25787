//! Runs one watcher per socket forever: connect, sync, follow events; when
//! the socket is missing or the runtime goes away, retry with backoff.
//! Each state change is logged once (not every retry).

use std::sync::Arc;
use std::time::Duration;

use super::{Registry, RuntimeEndpoint, RuntimeKind, containerd, cri, docker};

const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Why a watcher session ended.
#[derive(Debug)]
pub struct SessionEnd {
    /// Whether the runtime answered at all during this session.
    pub connected: bool,
    pub reason: String,
}

impl SessionEnd {
    pub fn unavailable(reason: impl std::fmt::Display) -> SessionEnd {
        SessionEnd {
            connected: false,
            reason: reason.to_string(),
        }
    }
    pub fn lost(reason: impl std::fmt::Display) -> SessionEnd {
        SessionEnd {
            connected: true,
            reason: reason.to_string(),
        }
    }
}

/// What a session reports as it goes, for log-once bookkeeping.
pub struct Reporter {
    endpoint: RuntimeEndpoint,
    registry: Arc<Registry>,
    connected_logged: bool,
    unavailable_logged: bool,
}

impl Reporter {
    /// The runtime answered and its containers are synced.
    pub fn connected(&mut self, runtime: &str, version: &str, containers: usize) {
        self.unavailable_logged = false;
        self.connected_logged = true;
        self.registry.watcher_states.set(&self.endpoint, true);
        tracing::info!(runtime, version, socket = %self.endpoint.socket.display(), containers, "watching container runtime");
    }
}

/// How often the host's own addresses are read again between container
/// changes (endpoint enrichment's `host`).
const HOST_ADDRESSES_EVERY: Duration = Duration::from_secs(5);

/// Starts a watcher task per endpoint, and one keeping the host's addresses.
pub fn start(endpoints: Vec<RuntimeEndpoint>, registry: Arc<Registry>) {
    let r = registry.clone();
    tokio::spawn(async move {
        loop {
            r.refresh_host_addresses();
            tokio::time::sleep(HOST_ADDRESSES_EVERY).await;
        }
    });
    for ep in endpoints {
        let registry = registry.clone();
        tokio::spawn(async move { supervise(ep, registry).await });
    }
}

async fn supervise(endpoint: RuntimeEndpoint, registry: Arc<Registry>) {
    let source = endpoint.source();
    registry.watcher_states.set(&endpoint, false);
    let mut reporter = Reporter {
        endpoint: endpoint.clone(),
        registry: registry.clone(),
        connected_logged: false,
        unavailable_logged: false,
    };
    let mut delay = FIRST_RETRY;
    loop {
        let end = match endpoint.kind {
            RuntimeKind::Docker | RuntimeKind::Podman => {
                docker::session(&endpoint, &registry, &source, &mut reporter).await
            }
            RuntimeKind::Containerd => {
                containerd::session(&endpoint, &registry, &source, &mut reporter).await
            }
            RuntimeKind::Cri => cri::session(&endpoint, &registry, &source, &mut reporter).await,
        };
        registry.watcher_states.set(&endpoint, false);
        if reporter.connected_logged {
            // Containers keep running without their runtime; keep them
            // until their processes go, and resync on reconnect.
            tracing::warn!(runtime = endpoint.kind.name(), socket = %endpoint.socket.display(), reason = %end.reason,
                "lost the container runtime; retrying with backoff");
            reporter.connected_logged = false;
            reporter.unavailable_logged = true;
        } else if !reporter.unavailable_logged {
            let level_info = !endpoint.socket.exists();
            if level_info {
                tracing::info!(runtime = endpoint.kind.name(), socket = %endpoint.socket.display(),
                    "container runtime socket not present; will pick it up when it appears");
            } else {
                tracing::warn!(runtime = endpoint.kind.name(), socket = %endpoint.socket.display(), reason = %end.reason,
                    "container runtime not reachable; retrying with backoff");
            }
            reporter.unavailable_logged = true;
        }
        if end.connected {
            delay = FIRST_RETRY;
        }
        registry.prune_dead(&source);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}
