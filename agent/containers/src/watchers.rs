//! Whether each container runtime watcher is connected, for the agent's
//! metrics (`gadgetd_container_watcher_connected`).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One watcher (one runtime socket) and whether it is connected now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherState {
    /// `docker`, `podman`, `containerd` or `cri`.
    pub runtime: String,
    /// The socket it watches.
    pub socket: String,
    /// Connected and synced (false while the socket is missing or refusing).
    pub connected: bool,
}

/// The state of every watcher, by source key.
#[derive(Debug, Default)]
pub struct Watchers(Mutex<BTreeMap<String, WatcherState>>);

impl Watchers {
    /// Records the state of the watcher of `endpoint`.
    pub fn set(&self, endpoint: &super::RuntimeEndpoint, connected: bool) {
        let state = WatcherState {
            runtime: endpoint.kind.name().to_string(),
            socket: endpoint.socket.display().to_string(),
            connected,
        };
        self.0.lock().unwrap().insert(endpoint.source(), state);
    }

    /// Every watcher started so far, in source order.
    pub fn list(&self) -> Vec<WatcherState> {
        self.0.lock().unwrap().values().cloned().collect()
    }
}
