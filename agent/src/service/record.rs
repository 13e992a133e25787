//! Keeps the state database in step with the runs in memory: a row when a
//! run starts, its counters every few seconds, its end state when it ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use zbus::fdo;

use super::manager::Agent;
use super::run::{RunHandle, now_us};
use crate::state::{RunRecord, Source};

/// How often live runs' counters reach the database.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Ended attached runs kept as history (detached runs stay until `rm`).
pub const HISTORY: u64 = 1000;
/// How often that history is trimmed, in flushes (about every 10 minutes).
const PRUNE_EVERY: u64 = 300;

/// Records a run that has just started. A detached run that cannot be
/// recorded would be lost by a restart, so that is an error for the caller.
pub fn started(
    agent: &Agent,
    handle: &RunHandle,
    timeout: Option<Duration>,
    object: Option<String>,
    options: Vec<u8>,
) -> fdo::Result<()> {
    let record = RunRecord {
        id: handle.id.clone(),
        name: handle.name.clone(),
        image: handle.image.clone(),
        digest: handle.digest.clone(),
        params: handle.params.clone(),
        owner: handle.owner,
        detached: handle.detached,
        timeout_ms: timeout.map(|t| t.as_millis() as u64),
        state: handle.state(),
        created_at: handle.started_at,
        started_at: Some(handle.started_at),
        stopped_at: None,
        exit_reason: String::new(),
        events_seen: 0,
        events_lost: 0,
        header: String::from_utf8_lossy(&handle.header_line).into_owned(),
        restarts: 0,
        object,
        options,
    };
    match agent.state.insert_run(&record) {
        Ok(()) => Ok(()),
        Err(e) if handle.detached => Err(fdo::Error::Failed(format!(
            "cannot record the detached run (it would not survive a restart): {e}; free disk space or check the state directory"
        ))),
        Err(e) => {
            tracing::warn!(run = %handle.id, error = %e, "run not recorded in the state database");
            Ok(())
        }
    }
}

/// Stores the object of a detached run before it starts, so a restarted
/// agent can load it; returns its key for [`started`].
pub fn source(agent: &Agent, object: Vec<u8>, definition: String) -> fdo::Result<String> {
    agent.state.put_object(&Source { object, definition }).map_err(|e| {
        fdo::Error::Failed(format!(
            "cannot store the object of the detached run (it would not survive a restart): {e}; free disk space or check the state directory"
        ))
    })
}

/// Records how a run ended. A detached run ended by the agent's shutdown
/// stays `running` in the database: the next agent restores it.
pub fn ended(agent: &Agent, handle: &RunHandle) {
    if handle.detached && handle.exit_reason() == gadgetd_dbus::stream::reason::SHUTDOWN {
        let _ = agent.state.update_counters(
            &handle.id,
            handle.events_seen.load(Ordering::Relaxed),
            handle.events_lost.load(Ordering::Relaxed),
        );
        return;
    }
    if let Err(e) = agent.state.finish_run(
        &handle.id,
        &handle.state(),
        &handle.exit_reason(),
        now_us(),
        handle.events_seen.load(Ordering::Relaxed),
        handle.events_lost.load(Ordering::Relaxed),
    ) {
        tracing::warn!(run = %handle.id, error = %e, "end of run not recorded in the state database");
    }
}

/// How a detached run's requested stop is recorded: its row says
/// `stopped` before the run stops, so a restart never brings back a run
/// that was stopped. A failed write (a full disk) refuses the stop.
pub fn stop_record(agent: &Arc<Agent>) -> super::run::StopRecord {
    let agent = Arc::downgrade(agent);
    Box::new(move |handle| {
        let Some(agent) = agent.upgrade() else {
            return Ok(());
        };
        agent
            .state
            .finish_run(
                &handle.id,
                gadgetd_dbus::types::state::STOPPED,
                gadgetd_dbus::stream::reason::STOPPED,
                now_us(),
                handle.events_seen.load(Ordering::Relaxed),
                handle.events_lost.load(Ordering::Relaxed),
            )
            .map_err(|e| {
                format!(
                    "cannot record the stop of run {} ({e}), so it keeps running (a restart would bring it back); free disk space, e.g. with `gadgetctl image rm`, and retry",
                    handle.id
                )
            })
    })
}

/// Writes the counters of live runs to the database, forever.
pub async fn flush_counters(agent: Arc<Agent>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let mut warned = false;
    for n in 0u64.. {
        tick.tick().await;
        if n % PRUNE_EVERY == 0 {
            match agent.state.prune_history(HISTORY) {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "old run history forgotten"),
                Err(e) => tracing::warn!(error = %e, "cannot trim the run history"),
            }
        }
        let live: Vec<_> = agent
            .runs
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.is_live())
            .cloned()
            .collect();
        for r in live {
            let res = agent.state.update_counters(
                &r.id,
                r.events_seen.load(Ordering::Relaxed),
                r.events_lost.load(Ordering::Relaxed),
            );
            match res {
                Err(e) if !warned => {
                    tracing::warn!(error = %e, "counters not saved (will retry quietly)");
                    warned = true;
                }
                Err(_) => {}
                Ok(()) => warned = false,
            }
        }
    }
}

/// What happens when any run ends: its end is recorded; an attached run
/// disappears from the list (a detached one stays until `rm`).
pub fn on_end(agent: Arc<Agent>) -> super::run::OnEnd {
    Box::new(move |handle| {
        ended(&agent, handle);
        if handle.detached {
            return;
        }
        let handle = handle.clone();
        tokio::spawn(async move {
            agent.runs.lock().unwrap().remove(&handle.id);
            agent.conns.unpublish_run(&handle).await;
        });
    })
}
