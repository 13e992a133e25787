//! Fan-out of a run's event stream to its attached fds.
//!
//! The run task never blocks on a client: each attacher has its own writer
//! task and a queue bounded in bytes. A client that falls behind loses
//! whole batches, is told how many events it missed (a `lost` line with
//! cause `slow-reader`), and slows no one else. A client that closes its end is noticed even when the
//! gadget is idle (the writer also waits for EOF on the socket).

use bytes::Bytes;
use gadgetd_dbus::stream::{self, Control, LostCause};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bytes a slow client may have queued before it starts losing batches:
/// ~50 ms of a flood (trace_open at 300k events/s is ~75 MB/s of JSON), so
/// a client that is briefly descheduled loses nothing, and a stuck one
/// costs bounded memory: at most twice this per client, since a queued
/// batch may hold a buffer up to twice its length (docs/benchmarks.md).
const QUEUE_BYTES: usize = 4 << 20;

/// The agent's end of a stream socket pair.
pub struct Attacher {
    pub stream: UnixStream,
}

impl Attacher {
    /// A connected pair: the attacher (agent side) and the fd for the client.
    pub fn pair() -> std::io::Result<(Attacher, std::os::fd::OwnedFd)> {
        let (agent, client) = std::os::unix::net::UnixStream::pair()?;
        agent.set_nonblocking(true)?;
        Ok((
            Attacher {
                stream: UnixStream::from_std(agent)?,
            },
            client.into(),
        ))
    }
}

/// One decoded batch: JSON lines and how many events they hold.
pub struct Chunk {
    pub data: Bytes,
    pub events: u64,
}

struct Slot {
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes sent to the writer and not yet written out.
    queued: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    /// Events this client missed and has not been told about yet.
    unreported: u64,
    missed_total: u64,
}

#[derive(Default)]
pub struct Fanout {
    slots: Vec<Slot>,
    ever_attached: bool,
    /// Events any client missed (summed over clients, ever).
    missed: u64,
}

impl Fanout {
    pub fn add(&mut self, attacher: Attacher, header_line: &[u8]) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(write_loop(attacher.stream, rx, queued.clone()));
        let slot = Slot {
            tx,
            queued,
            task,
            unreported: 0,
            missed_total: 0,
        };
        slot.enqueue(Bytes::copy_from_slice(header_line));
        self.slots.push(slot);
        self.ever_attached = true;
    }

    pub fn send(&mut self, chunk: Chunk) {
        for slot in &mut self.slots {
            let room = QUEUE_BYTES.saturating_sub(slot.queued.load(Ordering::Relaxed));
            if slot.unreported > 0 && room > chunk.data.len() {
                let line = stream::encode(&Control::Lost {
                    count: slot.unreported,
                    total: slot.missed_total,
                    cause: LostCause::SlowReader,
                    datasource: None,
                });
                slot.enqueue(line.into());
                slot.unreported = 0;
            }
            if room >= chunk.data.len() {
                slot.enqueue(chunk.data.clone());
            } else {
                slot.unreported += chunk.events;
                slot.missed_total += chunk.events;
                self.missed += chunk.events;
            }
        }
    }

    /// Control lines are small and rare: they are never dropped.
    pub fn send_control(&mut self, control: &Control) {
        let line: Bytes = stream::encode(control).into();
        for slot in &self.slots {
            slot.enqueue(line.clone());
        }
    }

    /// Streams attached now.
    pub fn clients(&self) -> usize {
        self.slots.len()
    }

    /// Events clients missed because they read too slowly, summed over
    /// every client this run ever had.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Forgets clients whose writer ended (closed socket).
    pub fn prune(&mut self) {
        self.slots.retain(|s| !s.tx.is_closed());
    }

    /// Someone attached once and every stream has since gone away.
    pub fn was_abandoned(&mut self) -> bool {
        self.prune();
        self.ever_attached && self.slots.is_empty()
    }

    /// Sends the end line and waits (briefly) for every writer to flush.
    pub async fn finish(self, end: &Control) {
        let line: Bytes = stream::encode(end).into();
        for slot in self.slots {
            if slot.unreported > 0 {
                slot.enqueue(
                    stream::encode(&Control::Lost {
                        count: slot.unreported,
                        total: slot.missed_total,
                        cause: LostCause::SlowReader,
                        datasource: None,
                    })
                    .into(),
                );
            }
            slot.enqueue(line.clone());
            drop(slot.tx);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), slot.task).await;
        }
    }
}

impl Slot {
    fn enqueue(&self, data: Bytes) {
        // Counted before sending, so the writer's decrement never goes first.
        let len = data.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(data).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }
}

async fn write_loop(
    stream: UnixStream,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut probe = [0u8; 64];
    loop {
        tokio::select! {
            biased;
            chunk = rx.recv() => match chunk {
                Some(data) => {
                    let written = wr.write_all(&data).await;
                    queued.fetch_sub(data.len(), Ordering::Relaxed);
                    if let Err(e) = written {
                        tracing::debug!(error = %e, "event stream client went away");
                        break;
                    }
                }
                None => break,
            },
            read = rd.read(&mut probe) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // clients do not talk; ignore
            },
        }
    }
    let _ = wr.shutdown().await;
}
