//! The log writer of a detached run: attached to the run like any client,
//! it writes each event to journald (or the memory log) as it arrives.
//!
//! journald drops floods silently (RateLimitBurst), so the writer limits
//! itself first, per run, and *reports* what it drops: a `lost` line in the
//! run's log (`GADGET_CONTROL=rate-limit`), a warning in the agent's log,
//! and the run's EventsLost counter.
//!
//! Every event the writer handles is also counted in the run's ledger
//! (`state::ledger`), logged or dropped, the moment it happens; a restarted
//! agent counts what a dead one left unlogged as lost with cause `crash`
//! and says so in the log ([`start_restored_writer`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use gadgetd_dbus::stream::{self, Control, Line, LostCause};
use tokio::io::AsyncBufReadExt;

use super::attach::Attacher;
use super::run::{RunHandle, now_us};
use crate::journal::{Journal, JournalWriter};

/// Events per second (and burst) a detached run may write to the log.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_sec: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_sec: 1000,
            burst: 5000,
        }
    }
}

/// The run's end of a log pipe: given to the run as its first attacher,
/// before its pump starts, so the log misses no event.
pub struct LogPipe {
    stream: tokio::net::UnixStream,
}

/// A pipe for a detached run's log: the attacher goes to the run, the pipe
/// to [`start_writer`] once the run's handle exists (the socket buffers
/// events meanwhile).
pub fn pipe() -> zbus::fdo::Result<(Attacher, LogPipe)> {
    let fail = |e: std::io::Error| {
        zbus::fdo::Error::Failed(format!(
            "cannot create the log pipe of the detached run: {e}"
        ))
    };
    let (attacher, fd) = Attacher::pair().map_err(fail)?;
    let std_stream = std::os::unix::net::UnixStream::from(fd);
    std_stream.set_nonblocking(true).map_err(fail)?;
    let stream = tokio::net::UnixStream::from_std(std_stream).map_err(fail)?;
    Ok((attacher, LogPipe { stream }))
}

/// The crash-proof counters of a new detached run (`None` for an attached
/// one). A detached run whose ledger cannot be created could not account
/// for its events after a crash, so that is an error for the caller.
pub fn ledger(
    agent: &super::manager::Agent,
    id: &str,
    detached: bool,
) -> zbus::fdo::Result<Option<Arc<crate::state::Ledger>>> {
    if !detached {
        return Ok(None);
    }
    match agent.state.create_ledger(id) {
        Ok(l) => Ok(Some(Arc::new(l))),
        Err(e) => Err(zbus::fdo::Error::Failed(format!(
            "cannot create the event ledger of the detached run: {e}; free disk space or check the state directory"
        ))),
    }
}

/// Starts writing the run's events from `pipe` to the journal.
pub fn start_writer(agent: &super::manager::Agent, handle: &Arc<RunHandle>, pipe: LogPipe) {
    start_restored_writer(agent, handle, pipe, 0);
}

/// [`start_writer`] for a run restored after the agent died: first a
/// `lost` line (cause `crash`) for the `crashed` events the dead agent
/// saw but never logged, when there were any.
pub fn start_restored_writer(
    agent: &super::manager::Agent,
    handle: &Arc<RunHandle>,
    pipe: LogPipe,
    crashed: u64,
) {
    let out = Out::new(&agent.journal, handle);
    let (limit, task_handle) = (agent.log_rate, handle.clone());
    tokio::spawn(async move {
        let mut out = out;
        if crashed > 0 {
            let total = task_handle
                .ledger
                .as_ref()
                .map_or(crashed, |l| l.counts().crash);
            let line = stream::encode(&Control::Lost {
                count: crashed,
                total,
                cause: LostCause::Crash,
                datasource: None,
            });
            if let Err(e) = out.write(&line[..line.len() - 1], Some("lost")).await {
                tracing::warn!(run = %task_handle.id, error = %e, "cannot log the crash loss report");
            }
        }
        write_log(pipe, out, limit, task_handle).await
    });
}

/// Where lines go, with the run's journal fields prepared once.
enum Out {
    Journald {
        writer: Arc<JournalWriter>,
        fields: Vec<(&'static str, Vec<u8>)>,
        buf: Vec<u8>,
    },
    Memory(Arc<crate::journal::memlog::MemLog>),
}

impl Out {
    fn new(journal: &Journal, handle: &RunHandle) -> Out {
        match journal {
            Journal::Journald { writer, .. } => Out::Journald {
                writer: writer.clone(),
                fields: vec![
                    ("GADGET_RUN_ID", handle.id.as_bytes().to_vec()),
                    ("GADGET_RUN_NAME", handle.name.as_bytes().to_vec()),
                    ("GADGET_IMAGE", handle.image.as_bytes().to_vec()),
                    ("GADGET_IMAGE_DIGEST", handle.digest.as_bytes().to_vec()),
                    ("SYSLOG_IDENTIFIER", b"gadgetd".to_vec()),
                ],
                buf: Vec::with_capacity(4096),
            },
            Journal::Memory(logs) => Out::Memory(logs.log(&handle.id)),
        }
    }

    /// Writes one line; `control` marks reports (lost, end) apart from events.
    async fn write(&mut self, line: &[u8], control: Option<&str>) -> std::io::Result<()> {
        match self {
            Out::Journald {
                writer,
                fields,
                buf,
            } => {
                let priority: &[u8] = if control.is_some() { b"4" } else { b"6" };
                let mut all: Vec<(&str, &[u8])> =
                    fields.iter().map(|(k, v)| (*k, v.as_slice())).collect();
                all.push(("PRIORITY", priority));
                if let Some(c) = control {
                    all.push(("GADGET_CONTROL", c.as_bytes()));
                }
                writer.send(buf, line, &all).await
            }
            Out::Memory(log) => {
                log.push(now_us(), Bytes::copy_from_slice(line));
                Ok(())
            }
        }
    }
}

/// Token bucket refilled every tick.
struct Bucket {
    tokens: u32,
    limit: RateLimit,
}

const TICK: Duration = Duration::from_millis(100);

async fn write_log(pipe: LogPipe, mut out: Out, limit: RateLimit, handle: Arc<RunHandle>) {
    let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, pipe.stream);
    let mut line = Vec::with_capacity(4096);
    let mut bucket = Bucket {
        tokens: limit.burst,
        limit,
    };
    let refill = (limit.per_sec / (1000 / TICK.as_millis() as u32)).max(1);
    // On the process-wide grid: one wake-up per tick for all detached runs.
    let mut tick = gadgetd_runtime::ticks::aligned_interval(TICK);
    let mut tally = Tally::default();
    loop {
        line.clear();
        tokio::select! {
            n = reader.read_until(b'\n', &mut line) => {
                let n = n.unwrap_or(0);
                if n == 0 {
                    break;
                }
                let body = line.strip_suffix(b"\n").unwrap_or(&line);
                match stream::classify(body) {
                    Ok(Line::Event(ev)) => {
                        if bucket.tokens == 0 {
                            tally.dropped += 1;
                            ledger_dropped(&handle, 1);
                            continue;
                        }
                        bucket.tokens -= 1;
                        if let Some(l) = &handle.ledger {
                            l.sending(ev);
                        }
                        match out.write(ev, None).await {
                            Ok(()) => {
                                if let Some(l) = &handle.ledger {
                                    l.logged(1);
                                }
                            }
                            Err(e) => {
                                tally.failed += 1;
                                if let Some(l) = &handle.ledger {
                                    l.not_sent();
                                }
                                ledger_dropped(&handle, 1);
                                tally.last_error = e.to_string();
                            }
                        }
                    }
                    Ok(Line::Control(Control::Header(_))) => continue,
                    Ok(Line::Control(Control::Lost { count, cause, .. })) => {
                        if cause == LostCause::SlowReader {
                            tally.behind += count;
                            ledger_dropped(&handle, count);
                        }
                        if let Err(e) = out.write(body, Some("lost")).await {
                            tracing::warn!(run = %handle.id, error = %e, "cannot log a loss report");
                        }
                    }
                    Ok(Line::Control(Control::End(mut end))) => {
                        tally.report(&mut out, &handle).await;
                        settle_end(&handle, &mut end);
                        let line = stream::encode(&Control::End(end));
                        let _ = out.write(&line[..line.len() - 1], Some("end")).await;
                        break;
                    }
                    Err(_) => continue,
                }
            }
            _ = tick.tick() => {
                bucket.tokens = (bucket.tokens + refill).min(bucket.limit.burst);
                tally.report(&mut out, &handle).await;
            }
        }
    }
}

/// The log's end line carries the ledger's exact accounting: written after
/// every event before it was logged or dropped, so nothing is pending.
/// The run's counters take the same values (the pump's end line was
/// written before the writer's last drops were counted).
fn settle_end(handle: &RunHandle, end: &mut stream::End) {
    let Some(ledger) = &handle.ledger else {
        return;
    };
    let c = ledger.counts();
    end.events_seen = c.seen;
    end.events_lost = c.lost();
    end.log = Some(stream::LogAccount {
        logged: c.logged,
        kernel_lost: c.kernel_lost,
        dropped: c.dropped,
        crash: c.crash,
    });
    handle.events_seen.store(c.seen, Ordering::Relaxed);
    handle.events_lost.store(c.lost(), Ordering::Relaxed);
}

/// Counts `n` events the writer dropped in the run's ledger, at once (the
/// report to EventsLost follows at the next tick).
fn ledger_dropped(handle: &RunHandle, n: u64) {
    if let Some(l) = &handle.ledger {
        l.dropped(n);
    }
}

/// What the log writer could not log since its last report, and in all.
#[derive(Default)]
struct Tally {
    /// Over the rate limit.
    dropped: u64,
    dropped_total: u64,
    /// Refused by journald.
    failed: u64,
    failed_total: u64,
    last_error: String,
    /// Dropped before reaching the writer (it fell behind journald); the
    /// fan-out put a `lost` line (slow reader) into the stream for them.
    behind: u64,
    behind_total: u64,
}

impl Tally {
    /// Turns what was dropped since the last report into a `lost` line,
    /// warnings and the run's EventsLost.
    async fn report(&mut self, out: &mut Out, handle: &RunHandle) {
        if self.dropped > 0 {
            self.dropped_total += self.dropped;
            handle
                .events_lost
                .fetch_add(self.dropped, Ordering::Relaxed);
            let line = stream::encode(&Control::Lost {
                count: self.dropped,
                total: self.dropped_total,
                cause: LostCause::Log,
                datasource: None,
            });
            let _ = out.write(&line[..line.len() - 1], Some("rate-limit")).await;
            tracing::warn!(run = %handle.id, dropped = self.dropped, total = self.dropped_total,
                "detached run exceeds the log rate limit; events dropped");
            self.dropped = 0;
        }
        if self.failed > 0 {
            self.failed_total += self.failed;
            handle.events_lost.fetch_add(self.failed, Ordering::Relaxed);
            tracing::warn!(run = %handle.id, count = self.failed, total = self.failed_total, error = %self.last_error,
                "journald did not accept events (journal full or too slow); counted as lost");
            self.failed = 0;
        }
        let behind = std::mem::take(&mut self.behind);
        if behind > 0 {
            self.behind_total += behind;
            handle.events_lost.fetch_add(behind, Ordering::Relaxed);
            tracing::warn!(run = %handle.id, count = behind, total = self.behind_total,
                "the journal cannot keep up with the detached run; events lost");
        }
    }
}

/// `Logs`: the stored events of a run.
/// `permit` is the caller's log stream slot, held until the stream ends.
pub fn logs(
    agent: &super::manager::Agent,
    handle: Arc<RunHandle>,
    options: &std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
    permit: super::limits::Permit,
) -> zbus::fdo::Result<std::os::fd::OwnedFd> {
    use gadgetd_dbus::types::options as keys;
    if !handle.detached {
        return Err(zbus::fdo::Error::InvalidArgs(format!(
            "run {} is not detached and has no log; use `gadgetctl attach {}`",
            handle.id, handle.id
        )));
    }
    let mut req = super::logs::LogRequest {
        follow: false,
        since_us: None,
    };
    for (key, value) in options {
        match key.as_str() {
            keys::FOLLOW => req.follow = super::options_ext::flag(key, value)?,
            keys::SINCE_US => req.since_us = Some(super::options_ext::uint(key, value)?),
            other => {
                return Err(zbus::fdo::Error::InvalidArgs(format!(
                    "unknown Logs option `{other}`"
                )));
            }
        }
    }
    super::logs::serve(&agent.journal, handle, req, permit)
}

/// `Remove`: forgets an ended run.
pub async fn remove(
    agent: &super::manager::Agent,
    handle: Arc<RunHandle>,
) -> zbus::fdo::Result<()> {
    if handle.is_live() {
        return Err(zbus::fdo::Error::Failed(format!(
            "run {} is still {}; stop it first (`gadgetctl stop {}`)",
            handle.id,
            handle.state(),
            handle.id
        )));
    }
    agent
        .state
        .remove_run(&handle.id)
        .map_err(|e| zbus::fdo::Error::Failed(format!("cannot remove run {}: {e}", handle.id)))?;
    if let Err(e) = agent.state.remove_ledger(&handle.id) {
        tracing::warn!(run = %handle.id, error = %e, "cannot remove the run's ledger");
    }
    agent.runs.lock().unwrap().remove(&handle.id);
    if let Journal::Memory(logs) = &agent.journal {
        logs.remove(&handle.id);
    }
    agent.conns.unpublish_run(&handle).await;
    Ok(())
}

/// Stores the program and definition of the local image `digest` for a
/// detached run, so a restarted agent can load it even if the image is
/// removed; returns the key for the run's record.
pub async fn store_image(agent: &super::manager::Agent, digest: &str) -> zbus::fdo::Result<String> {
    let svc = agent.images().clone();
    let key = digest.to_string();
    let runnable = tokio::task::spawn_blocking(move || svc.runnable(&key))
        .await
        .map_err(|e| zbus::fdo::Error::Failed(format!("image task failed: {e}")))?
        .map_err(|e| {
            zbus::fdo::Error::Failed(format!(
                "cannot read image {digest} for the detached run: {e}"
            ))
        })?;
    super::record::source(agent, runnable.program, runnable.definition)
}
