//! The connections the agent serves on (the bus and every p2p client), and
//! publishing run objects on all of them.
//!
//! Nothing here waits on one slow peer: every connection gets its own task
//! and a deadline ([`SLOW_PEER_TIMEOUT`]); a peer-to-peer client that has
//! not taken a signal by then (it stopped reading) is disconnected.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use zbus::Connection;
use zbus::object_server::SignalEmitter;

use super::limits::SLOW_PEER_TIMEOUT;
use super::run::{RunHandle, RunObject, emit_changed};

/// One connection; `socket` (a duplicate of a p2p client's socket) lets the
/// agent cut off a client that stopped reading. The bus has none.
#[derive(Clone)]
struct Peer {
    id: u64,
    conn: Connection,
    socket: Option<Arc<OwnedFd>>,
}

/// The last id handed out, and the live connections.
type Registry = (u64, Vec<Peer>);

#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Mutex<Registry>>,
    /// Runs whose counters changed since the last [`Connections::publish_counters`] round.
    changed: Arc<Mutex<Vec<Arc<RunHandle>>>>,
}

impl Connections {
    /// Registers the bus connection; the id removes it again.
    pub fn add(&self, conn: Connection) -> u64 {
        self.register(conn, None)
    }

    /// Registers a peer-to-peer client with (a duplicate of) its socket.
    pub fn add_peer(&self, conn: Connection, socket: OwnedFd) -> u64 {
        self.register(conn, Some(Arc::new(socket)))
    }

    fn register(&self, conn: Connection, socket: Option<Arc<OwnedFd>>) -> u64 {
        let mut guard = self.inner.lock().unwrap();
        guard.0 += 1;
        let id = guard.0;
        guard.1.push(Peer { id, conn, socket });
        id
    }

    pub fn remove(&self, id: u64) {
        self.inner.lock().unwrap().1.retain(|p| p.id != id);
    }

    pub fn all(&self) -> Vec<Connection> {
        self.peers().into_iter().map(|p| p.conn).collect()
    }

    fn peers(&self) -> Vec<Peer> {
        self.inner.lock().unwrap().1.clone()
    }

    pub fn count(&self) -> usize {
        self.inner.lock().unwrap().1.len()
    }

    /// Serves the run's object on every connection (and so on ObjectManager).
    pub async fn publish_run(&self, handle: &Arc<RunHandle>, auth: &super::manager::Authorizer) {
        let (handle, auth) = (handle.clone(), auth.clone());
        self.each(move |conn| {
            let (handle, auth) = (handle.clone(), auth.clone());
            async move { publish_on(&conn, &handle, &auth).await }
        })
        .await;
    }

    pub async fn unpublish_run(&self, handle: &RunHandle) {
        let path = handle.path();
        self.each(move |conn| {
            let path = path.clone();
            async move {
                let _ = conn.object_server().remove::<RunObject, _>(&path).await;
            }
        })
        .await;
    }

    /// PropertiesChanged for the named Run properties, on every connection
    /// (at most [`SLOW_PEER_TIMEOUT`]).
    pub async fn notify_run(&self, handle: &Arc<RunHandle>, names: &'static [&'static str]) {
        let handle = handle.clone();
        self.each(move |conn| {
            let handle = handle.clone();
            async move {
                if let Ok(emitter) = SignalEmitter::new(&conn, handle.path())
                    && let Err(e) = emit_changed(&emitter, &handle, names).await
                {
                    tracing::debug!(error = %e, "PropertiesChanged not delivered");
                }
            }
        })
        .await;
    }

    /// Notes that `handle`'s counters changed; the next round of
    /// [`Connections::publish_counters`] tells every connection. The run's
    /// pump calls this and never waits for a client.
    pub fn counters_changed(&self, handle: &Arc<RunHandle>) {
        let mut changed = self.changed.lock().unwrap();
        if !changed.iter().any(|h| Arc::ptr_eq(h, handle)) {
            changed.push(handle.clone());
        }
    }

    /// Every `every`, PropertiesChanged (EventsSeen, EventsLost) for every
    /// run whose counters changed: one task per connection per round, the
    /// signals in order, so a busy agent never piles up sends on one
    /// connection; a p2p client that does not take a round within
    /// [`SLOW_PEER_TIMEOUT`] is disconnected.
    pub async fn publish_counters(self, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let runs = std::mem::take(&mut *self.changed.lock().unwrap());
            if runs.is_empty() {
                continue;
            }
            let runs = Arc::new(runs);
            self.each(move |conn| {
                let runs = runs.clone();
                async move {
                    for handle in runs.iter() {
                        if let Ok(emitter) = SignalEmitter::new(&conn, handle.path())
                            && let Err(e) =
                                emit_changed(&emitter, handle, &["EventsSeen", "EventsLost"]).await
                        {
                            tracing::debug!(error = %e, "PropertiesChanged not delivered");
                        }
                    }
                }
            })
            .await;
        }
    }

    /// Runs `op` on every connection at once and waits at most
    /// [`SLOW_PEER_TIMEOUT`]; p2p clients still busy then are disconnected.
    async fn each<F, Fut>(&self, op: F)
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        let mut pending = std::collections::HashMap::new();
        for peer in self.peers() {
            let id = tasks.spawn(op(peer.conn.clone())).id();
            pending.insert(id, peer);
        }
        let deadline = tokio::time::Instant::now() + SLOW_PEER_TIMEOUT;
        while !pending.is_empty() {
            match tokio::time::timeout_at(deadline, tasks.join_next_with_id()).await {
                Ok(Some(Ok((id, ())))) => {
                    pending.remove(&id);
                }
                Ok(Some(Err(e))) => {
                    pending.remove(&e.id());
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
        tasks.abort_all();
        for peer in pending.into_values() {
            self.cut_off(&peer);
        }
    }

    /// Disconnects a p2p client that stopped reading (its serving task then
    /// ends and forgets it); the bus is only logged about.
    fn cut_off(&self, peer: &Peer) {
        let registered = self.inner.lock().unwrap().1.iter().any(|p| p.id == peer.id);
        if !registered {
            // Gone meanwhile, or already cut off by another round.
            return;
        }
        match &peer.socket {
            Some(socket) => {
                tracing::warn!(
                    connection = peer.id,
                    timeout_ms = SLOW_PEER_TIMEOUT.as_millis() as u64,
                    "peer-to-peer client stopped reading its messages; disconnected"
                );
                let _ = nix::sys::socket::shutdown(
                    std::os::fd::AsRawFd::as_raw_fd(socket.as_ref()),
                    nix::sys::socket::Shutdown::Both,
                );
                self.remove(peer.id);
            }
            None => tracing::warn!(
                timeout_ms = SLOW_PEER_TIMEOUT.as_millis() as u64,
                "the bus did not take a signal in time"
            ),
        }
    }
}

pub async fn publish_on(
    conn: &Connection,
    handle: &Arc<RunHandle>,
    auth: &super::manager::Authorizer,
) {
    let obj = RunObject {
        handle: handle.clone(),
        auth: auth.clone(),
    };
    if let Err(e) = conn.object_server().at(handle.path(), obj).await {
        tracing::warn!(run = %handle.id, error = %e, "cannot publish the run object");
    }
}
