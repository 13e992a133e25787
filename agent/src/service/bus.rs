//! The connections the agent serves on (the bus and every p2p client), and
//! publishing run objects on all of them.

use std::sync::{Arc, Mutex};

use zbus::Connection;
use zbus::object_server::SignalEmitter;

use super::run::{RunHandle, RunObject, emit_changed};

/// The last id handed out, and the live connections by id.
type Registry = (u64, Vec<(u64, Connection)>);

#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Mutex<Registry>>,
}

impl Connections {
    /// Registers a connection; the id removes it again.
    pub fn add(&self, conn: Connection) -> u64 {
        let mut guard = self.inner.lock().unwrap();
        guard.0 += 1;
        let id = guard.0;
        guard.1.push((id, conn));
        id
    }

    pub fn remove(&self, id: u64) {
        self.inner.lock().unwrap().1.retain(|(i, _)| *i != id);
    }

    pub fn all(&self) -> Vec<Connection> {
        self.inner
            .lock()
            .unwrap()
            .1
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.inner.lock().unwrap().1.len()
    }

    /// Serves the run's object on every connection (and so on ObjectManager).
    pub async fn publish_run(&self, handle: &Arc<RunHandle>, auth: &super::manager::Authorizer) {
        for conn in self.all() {
            publish_on(&conn, handle, auth).await;
        }
    }

    pub async fn unpublish_run(&self, handle: &RunHandle) {
        let path = handle.path();
        for conn in self.all() {
            let _ = conn.object_server().remove::<RunObject, _>(&path).await;
        }
    }

    /// PropertiesChanged for the named Run properties, on every connection.
    pub async fn notify_run(&self, handle: &RunHandle, names: &[&str]) {
        let path = handle.path();
        for conn in self.all() {
            if let Ok(emitter) = SignalEmitter::new(&conn, path.clone())
                && let Err(e) = emit_changed(&emitter, handle, names).await
            {
                tracing::debug!(error = %e, "PropertiesChanged not delivered");
            }
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
