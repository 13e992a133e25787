//! Talking to systemd while serving (watchdog pings, a status line) and the
//! idle exit of an activated agent.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use super::manager::Agent;

/// The STATUS systemd shows: runs, and where detached runs log.
pub fn status_line(agent: &Agent) -> String {
    let (live, detached) = {
        let runs = agent.runs.lock().unwrap();
        let live: Vec<_> = runs.values().filter(|r| r.is_live()).collect();
        (live.len(), live.iter().filter(|r| r.detached).count())
    };
    format!(
        "{live} runs ({detached} detached), logging to {}",
        agent.journal.describe()
    )
}

/// Pings the watchdog (when systemd asked for it) and keeps STATUS current.
/// Started after READY, which carries the first status line.
pub async fn watchdog_and_status(agent: Arc<Agent>) {
    let every = sd_notify::watchdog_enabled()
        .map(|d| d / 2)
        .unwrap_or(Duration::from_secs(5));
    let ping = sd_notify::watchdog_enabled().is_some();
    let mut tick = tokio::time::interval(every);
    let mut last = String::new();
    loop {
        tick.tick().await;
        let status = status_line(&agent);
        let mut states = Vec::new();
        if ping {
            states.push(NotifyState::Watchdog);
        }
        if status != last {
            states.push(NotifyState::Status(&status));
        }
        if !states.is_empty() {
            let _ = sd_notify::notify(&states);
        }
        last = status;
    }
}

/// Resolves once the agent has been idle for `timeout`: no live runs, no
/// peer-to-peer clients and no method calls (`bus_clients` is the number of
/// connections that are buses, not clients). Never resolves without a timeout.
pub async fn idle(agent: Arc<Agent>, timeout: Option<Duration>, bus_clients: usize) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    let check = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::time::sleep(check).await;
        let busy = agent.live_runs() > 0 || agent.conns.count() > bus_clients;
        if !busy && agent.auth.idle_for() >= timeout {
            tracing::info!(idle_for = ?agent.auth.idle_for(), "idle: no runs, no clients; exiting (activation starts gadgetd again)");
            return;
        }
    }
}
