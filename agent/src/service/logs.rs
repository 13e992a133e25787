//! `Logs`: a detached run's events read back from its log, sent over an fd
//! in the usual stream format (header, events, `lost` reports, end), so
//! `gadgetctl logs` prints them like a live run.

use std::sync::Arc;
use std::time::Duration;

use gadgetd_dbus::stream::{self, Control, End, Line, LostCause};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use zbus::fdo;

use super::attach::Attacher;
use super::run::RunHandle;
use crate::journal::{self, Journal};

/// How often a follower checks whether the run has ended.
const POLL: Duration = Duration::from_millis(300);
/// After the run ends, how long a follower waits for journald to catch up.
const GRACE: Duration = Duration::from_millis(1500);

pub struct LogRequest {
    pub follow: bool,
    pub since_us: Option<u64>,
}

/// Starts sending the log of `handle`; returns the client's end. `permit`
/// (the caller's log stream slot) is given back when the stream ends.
pub fn serve(
    journal: &Journal,
    handle: Arc<RunHandle>,
    req: LogRequest,
    permit: super::limits::Permit,
) -> fdo::Result<std::os::fd::OwnedFd> {
    let (attacher, client) =
        Attacher::pair().map_err(|e| fdo::Error::Failed(format!("socketpair: {e}")))?;
    let source = match journal {
        Journal::Journald { namespace, .. } => {
            if !journal::read::available() {
                return Err(fdo::Error::Failed(
                    "journalctl is not installed on the agent's host".into(),
                ));
            }
            let read =
                journal::read::open(namespace.as_deref(), &handle.id, req.since_us, req.follow)
                    .map_err(|e| fdo::Error::Failed(format!("cannot run journalctl: {e}")))?;
            Source::Journald(Box::new(read))
        }
        Journal::Memory(logs) => match logs.get(&handle.id) {
            Some(log) => Source::Memory(log, 0),
            None => Source::Empty,
        },
    };
    tokio::spawn(async move {
        let (mut rd, mut wr) = attacher.stream.into_split();
        let mut probe = [0u8; 16];
        let closed = async move {
            // Clients never write; EOF or an error means they went away.
            let _ = rd.read(&mut probe).await;
        };
        tokio::select! {
            r = send(&mut wr, source, &handle, &req) => {
                if let Err(e) = r {
                    tracing::debug!(run = %handle.id, error = %e, "log reader went away");
                }
            }
            _ = closed => {}
        }
        let _ = wr.shutdown().await;
        drop(permit);
    });
    Ok(client)
}

enum Source {
    Journald(Box<journal::read::JournalRead>),
    /// The log and the next sequence number to read.
    Memory(Arc<journal::memlog::MemLog>, u64),
    Empty,
}

struct Counts {
    events: u64,
    lost: u64,
}

impl Counts {
    /// Forwards one stored line; the run's own end lines are dropped (a
    /// restored run has several), the stream gets a single end of its own.
    async fn forward(&mut self, wr: &mut OwnedWriteHalf, line: &[u8]) -> std::io::Result<()> {
        match stream::classify(line) {
            Ok(Line::Event(_)) => self.events += 1,
            Ok(Line::Control(Control::Lost { count, .. })) => self.lost += count,
            Ok(Line::Control(_)) | Err(_) => return Ok(()),
        }
        wr.write_all(line).await?;
        wr.write_all(b"\n").await
    }
}

async fn send(
    wr: &mut OwnedWriteHalf,
    source: Source,
    handle: &RunHandle,
    req: &LogRequest,
) -> std::io::Result<()> {
    wr.write_all(&handle.header_line).await?;
    let mut counts = Counts { events: 0, lost: 0 };
    match source {
        Source::Journald(mut read) => {
            let mut poll = tokio::time::interval(POLL);
            let mut ended_at: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    line = read.lines.next_line() => match line? {
                        Some(l) => counts.forward(wr, l.as_bytes()).await?,
                        None => break,
                    },
                    _ = poll.tick(), if req.follow => {
                        if handle.is_live() {
                            continue;
                        }
                        let since = *ended_at.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() >= GRACE {
                            break;
                        }
                    }
                }
            }
            let _ = read.child.start_kill();
        }
        Source::Memory(log, mut next) => {
            let since = req.since_us.unwrap_or(0);
            let mut final_pass = false;
            loop {
                let notified = log.changed.notified();
                let (lines, missed, after) = log.read_from(next, since);
                if missed > 0 {
                    counts.lost += missed;
                    let l = stream::encode(&Control::Lost {
                        count: missed,
                        total: counts.lost,
                        cause: LostCause::SlowReader,
                        datasource: None,
                    });
                    wr.write_all(&l).await?;
                }
                for l in &lines {
                    counts.forward(wr, l).await?;
                }
                next = after;
                if !req.follow || final_pass {
                    break;
                }
                if !handle.is_live() {
                    // One more pass for lines the writer had not stored yet.
                    final_pass = true;
                    tokio::time::sleep(GRACE / 3).await;
                    continue;
                }
                let _ = tokio::time::timeout(POLL, notified).await;
            }
        }
        Source::Empty => {}
    }
    let reason = if handle.is_live() {
        "log".to_string()
    } else {
        handle.exit_reason()
    };
    let end = Control::End(End {
        reason,
        error: None,
        events_seen: counts.events,
        events_lost: counts.lost,
        datasources: Vec::new(),
        log: None,
    });
    wr.write_all(&stream::encode(&end)).await
}
