//! At start: bring back what the state database says was running. Detached
//! runs are loaded again from their stored object, with the same id, name,
//! parameters, start time and counters (events between the old agent's end
//! and now were not traced). Attached runs cannot come back (their client's
//! stream died with the old agent) and are marked failed. Ended detached
//! runs are listed again until `gadgetctl rm`.
//!
//! A detached run's counters come from its ledger (`state::ledger`), not
//! from the database row (flushed every few seconds): what the dead agent
//! saw but never logged is counted as lost with cause `crash`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gadgetd_dbus::stream::{GadgetInfo, Header};
use gadgetd_dbus::types::state;

use super::manager::Agent;
use super::run::{self, RunSpec, now_us};
use crate::state::RunRecord;
use gadgetd_runtime::Gadget;

/// Restores every run; returns how many detached runs run again.
pub async fn restore(agent: &Arc<Agent>) -> anyhow::Result<usize> {
    match agent.state.collect_objects() {
        Ok(0) => {}
        Ok(n) => tracing::info!(objects = n, "dropped stored objects no run uses"),
        Err(e) => tracing::warn!(error = %e, "cannot clean up stored objects"),
    }
    let records = agent.state.runs()?;
    remove_orphan_ledgers(agent, &records);
    let mut restored = 0;
    for mut rec in records {
        let live = rec.state == state::RUNNING || rec.state == state::STARTING;
        let (ledger, crashed) = if rec.detached {
            reconcile(agent, &mut rec, live).await
        } else {
            (None, 0)
        };
        match (rec.detached, live) {
            (true, true) => match restore_one(agent, &rec, ledger, crashed).await {
                Ok(()) => {
                    restored += 1;
                    tracing::info!(run = %rec.id, name = %rec.name, restarts = rec.restarts + 1, "detached run restored");
                }
                Err(reason) => {
                    tracing::warn!(run = %rec.id, reason = %reason, "detached run could not be restored");
                    let reason = format!("error: not restored after restart: {reason}");
                    let _ = agent.state.finish_run(
                        &rec.id,
                        state::FAILED,
                        &reason,
                        now_us(),
                        rec.events_seen,
                        rec.events_lost,
                    );
                    list_ended(agent, &rec, state::FAILED, &reason);
                }
            },
            (true, false) => list_ended(agent, &rec, &rec.state, &rec.exit_reason),
            (false, true) => {
                let _ = agent.state.finish_run(
                    &rec.id,
                    state::FAILED,
                    "error: gadgetd stopped while the run's client was attached",
                    now_us(),
                    rec.events_seen,
                    rec.events_lost,
                );
            }
            (false, false) => {}
        }
    }
    Ok(restored)
}

fn spec(rec: &RunRecord, header: Header) -> RunSpec {
    RunSpec {
        id: rec.id.clone(),
        name: rec.name.clone(),
        image: rec.image.clone(),
        digest: rec.digest.clone(),
        detached: rec.detached,
        owner: rec.owner,
        params: rec.params.clone(),
        header,
        timeout: None,
        // Set from the stored options when the run is restored live.
        metrics: false,
        ledger: None,
    }
}

fn list_ended(agent: &Arc<Agent>, rec: &RunRecord, end_state: &str, reason: &str) {
    let h = run::ended(
        spec(rec, Header::default()),
        rec.header.clone().into_bytes(),
        rec.started_at.unwrap_or(rec.created_at),
        end_state,
        reason,
    );
    h.events_seen.store(rec.events_seen, Ordering::Relaxed);
    h.events_lost.store(rec.events_lost, Ordering::Relaxed);
    agent.runs.lock().unwrap().insert(rec.id.clone(), h);
}

/// Takes a detached run's counters from its ledger, counting the backlog
/// a dead agent left as lost (cause `crash`); returns the ledger for the
/// restored run and how many events the crash cost. An ended run's row is
/// corrected at once (a live one gets its row from the restored run).
async fn reconcile(
    agent: &Agent,
    rec: &mut RunRecord,
    live: bool,
) -> (Option<Arc<crate::state::Ledger>>, u64) {
    let ledger = match agent.state.open_ledger(&rec.id) {
        Ok(Some(l)) => l,
        Ok(None) => return (None, 0),
        Err(e) => {
            tracing::warn!(run = %rec.id, error = %e, "run ledger unreadable; counters from the state database");
            return (None, 0);
        }
    };
    if let Some(hash) = ledger.in_doubt() {
        let delivered = in_journal(agent, &rec.id, hash).await;
        tracing::info!(run = %rec.id, delivered, "the entry being sent when gadgetd died was looked up in the journal");
        ledger.resolve(delivered);
    }
    let crashed = ledger.settle_crash();
    let counts = ledger.counts();
    if crashed > 0 {
        tracing::warn!(run = %rec.id, lost = crashed, seen = counts.seen, logged = counts.logged,
            "events the previous gadgetd saw but did not log before it died are counted as lost (cause crash)");
    }
    let changed = (rec.events_seen, rec.events_lost) != (counts.seen, counts.lost());
    (rec.events_seen, rec.events_lost) = (counts.seen, counts.lost());
    if changed && !live {
        let stopped_at = rec.stopped_at.unwrap_or_else(now_us);
        if let Err(e) = agent.state.finish_run(
            &rec.id,
            &rec.state,
            &rec.exit_reason,
            stopped_at,
            counts.seen,
            counts.lost(),
        ) {
            tracing::warn!(run = %rec.id, error = %e, "corrected counters not saved");
        }
    }
    (Some(Arc::new(ledger)), crashed)
}

/// Whether the newest entry of run `id` in the journal is the one with
/// `hash` (the entry the dead agent was sending). When the journal cannot
/// tell, the entry counts as lost: a loss may be overstated by one, never
/// hidden.
async fn in_journal(agent: &Agent, id: &str, hash: u64) -> bool {
    let crate::journal::Journal::Journald { namespace, .. } = &agent.journal else {
        return false;
    };
    match crate::journal::read::last_message(namespace.as_deref(), id).await {
        Ok(last) => last.is_some_and(|m| crate::state::ledger::entry_hash(&m) == hash),
        Err(e) => {
            tracing::warn!(run = %id, error = %e, "cannot ask the journal whether the last entry arrived; counting it as lost");
            false
        }
    }
}

/// Ledgers of runs the database does not know (a detached start that
/// failed after its ledger was made).
fn remove_orphan_ledgers(agent: &Agent, records: &[RunRecord]) {
    let Some(dir) = agent.state.ledger_dir() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !records.iter().any(|r| r.id == name)
            && let Err(e) = agent.state.remove_ledger(&name)
        {
            tracing::warn!(error = %e, "cannot remove an orphan run ledger");
        }
    }
}

async fn restore_one(
    agent: &Arc<Agent>,
    rec: &RunRecord,
    ledger: Option<Arc<crate::state::Ledger>>,
    crashed: u64,
) -> Result<(), String> {
    // The policy may have changed while the agent was down.
    super::policy::check_record(agent.images(), &rec.image, &rec.digest)
        .map_err(|e| format!("refused by the run policy: {e}"))?;
    let sha = rec.object.as_deref().ok_or("no object stored for it")?;
    let source = agent
        .state
        .source(sha)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("its object sha256:{sha} is missing from the state database"))?;
    let started_at = rec.started_at.unwrap_or(rec.created_at);
    let timeout = match rec.timeout_ms {
        Some(ms) => {
            let elapsed_ms = now_us().saturating_sub(started_at) / 1000;
            if elapsed_ms >= ms {
                let _ = agent.state.finish_run(
                    &rec.id,
                    state::STOPPED,
                    "timeout",
                    now_us(),
                    rec.events_seen,
                    rec.events_lost,
                );
                list_ended(agent, rec, state::STOPPED, "timeout");
                return Ok(());
            }
            Some(Duration::from_millis(ms - elapsed_ms))
        }
        None => None,
    };
    // The same scope as when it started: containers, netns, kind options.
    let scope = super::scope::decode(&rec.options)?;
    let parsed = super::manager::parse_options(&scope).map_err(|e| e.to_string())?;
    let (run_opts, plan) =
        super::scope::run_options(agent, rec.params.clone(), parsed.containers, &parsed.kinds);
    let (gadget, running) = tokio::task::spawn_blocking(move || {
        let def = (!source.definition.trim().is_empty()).then_some(source.definition.as_str());
        let gadget = Gadget::from_object(source.object, def)?;
        let running = gadget.start(&run_opts)?;
        Ok::<_, gadgetd_runtime::GadgetError>((gadget, running))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    super::scope::follow(agent, plan, &running, &rec.id);
    // The stored header keeps the name the run was started with.
    let stored = match serde_json::from_str(rec.header.trim_end()) {
        Ok(gadgetd_dbus::stream::Control::Header(h)) => Some(h),
        _ => None,
    };
    let mut header = stored.unwrap_or_else(|| Header {
        run_id: rec.id.clone(),
        gadget: GadgetInfo {
            name: gadget.name(),
            description: gadget.description(),
            image: rec.image.clone(),
            digest: rec.digest.clone(),
        },
        fields: gadget.fields(),
        datasources: gadget.datasource_infos(),
        programs: Vec::new(),
        notes: Vec::new(),
    });
    // What attached this time (a library may have come or gone meanwhile).
    header.programs = running.programs().iter().map(|p| p.state()).collect();
    let mut spec = spec(rec, header);
    spec.timeout = timeout;
    spec.ledger = ledger;
    spec.metrics = parsed.metrics;
    let on_end = super::record::on_end(agent.clone());
    let (log_attacher, pipe) = super::detached::pipe().map_err(|e| e.to_string())?;
    let handle = run::spawn_at(
        spec,
        running,
        agent.conns.clone(),
        Some(log_attacher),
        on_end,
        started_at,
    );
    handle.set_stop_record(super::record::stop_record(agent));
    super::detached::start_restored_writer(agent, &handle, pipe, crashed);
    handle
        .events_seen
        .fetch_add(rec.events_seen, Ordering::Relaxed);
    handle
        .events_lost
        .fetch_add(rec.events_lost, Ordering::Relaxed);
    agent
        .runs
        .lock()
        .unwrap()
        .insert(rec.id.clone(), handle.clone());
    agent
        .state
        .mark_restored(&rec.id)
        .map_err(|e| e.to_string())?;
    agent.conns.publish_run(&handle, &agent.auth).await;
    Ok(())
}
