//! Fan-out of a run's event stream to its attached fds.
//!
//! The run task never blocks on a client: each attacher has its own writer
//! task and a bounded queue of batches. A client that falls behind loses
//! whole batches, is told how many events it missed (a `lost` line), and
//! slows no one else. A client that closes its end is noticed even when the
//! gadget is idle (the writer also waits for EOF on the socket).

use bytes::Bytes;
use gadgetd_dbus::stream::{self, Control};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Batches a slow client may have queued before it starts losing them.
const QUEUE_BATCHES: usize = 1024;

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
    tx: mpsc::Sender<Bytes>,
    task: JoinHandle<()>,
    /// Events this client missed and has not been told about yet.
    unreported: u64,
    missed_total: u64,
}

#[derive(Default)]
pub struct Fanout {
    slots: Vec<Slot>,
    ever_attached: bool,
}

impl Fanout {
    pub fn add(&mut self, attacher: Attacher, header_line: &[u8]) {
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let _ = tx.try_send(Bytes::copy_from_slice(header_line));
        let task = tokio::spawn(write_loop(attacher.stream, rx));
        self.slots.push(Slot {
            tx,
            task,
            unreported: 0,
            missed_total: 0,
        });
        self.ever_attached = true;
    }

    pub fn send(&mut self, chunk: Chunk) {
        for slot in &mut self.slots {
            if slot.unreported > 0 && slot.tx.capacity() > 1 {
                let line = stream::encode(&Control::Lost {
                    count: slot.unreported,
                    total: slot.missed_total,
                });
                if slot.tx.try_send(line.into()).is_ok() {
                    slot.unreported = 0;
                }
            }
            if let Err(mpsc::error::TrySendError::Full(_)) = slot.tx.try_send(chunk.data.clone()) {
                slot.unreported += chunk.events;
                slot.missed_total += chunk.events;
            }
        }
    }

    pub fn send_control(&mut self, control: &Control) {
        let line: Bytes = stream::encode(control).into();
        for slot in &self.slots {
            let _ = slot.tx.try_send(line.clone());
        }
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
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), slot.tx.send(line.clone())).await;
            drop(slot.tx);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), slot.task).await;
        }
    }
}

async fn write_loop(stream: UnixStream, mut rx: mpsc::Receiver<Bytes>) {
    let (mut rd, mut wr) = stream.into_split();
    let mut probe = [0u8; 64];
    loop {
        tokio::select! {
            biased;
            chunk = rx.recv() => match chunk {
                Some(data) => {
                    if let Err(e) = wr.write_all(&data).await {
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
