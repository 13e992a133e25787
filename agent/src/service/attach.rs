//! Fan-out of a run's event stream to its attached fds.
//!
//! The run task never blocks on a client. While a client keeps up (nothing
//! waits in its queue), the run task writes each batch straight into the
//! client's socket with one non-blocking `send`: no copy of the batch, no
//! wake-up of another task. What the socket does not take goes to the
//! client's queue, bounded in bytes, which its own writer task empties
//! (and while anything waits there, later batches queue behind it, so the
//! order holds). A client that falls behind loses whole batches, is told
//! how many events it missed (a `lost` line with cause `slow-reader`), and
//! slows no one else. A client that closes its end is noticed even when the
//! gadget is idle (the writer also waits for EOF on the socket).
//!
//! The agent's end of a stream is registered with the reactor for reading
//! only (EOF). Registered for writing too, every read by the client that
//! frees room in the socket would wake a parked worker thread for nothing
//! (`EPOLLOUT`): under a flood that was 80% of the agent's wake-ups
//! (docs/benchmarks.md). A writer task that finds the socket full registers
//! a duplicate of the fd for writing while its queue holds data.
//!
//! A client that passed its own output (`output-fd`, `direct_out.rs`) gets
//! its event batches there, the same way (direct write while its queue is
//! empty, the same queue bound, the same `slow-reader` losses, told on
//! the stream); its stream carries the header and the control lines, and
//! its end line only once every queued event is in the output.

use super::direct_out::{DirectLane, Flushed, Output};
use bytes::Bytes;
use gadgetd_dbus::stream::{self, Control, End, LostCause};
use nix::sys::socket::{MsgFlags, Shutdown, setsockopt, sockopt};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// Bytes a slow client may have queued before it starts losing batches:
/// ~50 ms of a flood (trace_open at 300k events/s is ~75 MB/s of JSON), so
/// a client that is briefly descheduled loses nothing, and a stuck one
/// costs bounded memory: at most twice this per client, since a queued
/// batch may hold a buffer up to twice its length (docs/benchmarks.md),
/// plus one batch buffer pinned by the rest of a partial direct write
/// (only one at a time: a rest is queued only into an empty queue).
const QUEUE_BYTES: usize = 4 << 20;

/// Send buffer of the agent's end of a stream (`SO_SNDBUF`; the kernel
/// doubles it for its bookkeeping): a client that is briefly descheduled
/// still takes whole batches (64 KiB of JSON, `reader.rs`) in one `send`
/// each, straight from the run task, for ~15 ms of a flood, before its
/// queue and writer task are needed. Kernel memory, charged only while the
/// client has not read it; the agent's own queue (`QUEUE_BYTES`) comes after it.
const SOCKET_SEND_BYTES: usize = 1 << 20;

/// How long the end of a run waits for each client's writers to flush.
const FINISH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The agent's end of a stream socket pair.
pub struct Attacher {
    pub stream: tokio::net::UnixStream,
    /// The client's own output for its event lines (`output-fd`), if it
    /// gave one: the stream then carries only the header and control lines.
    pub output: Option<Output>,
}

impl Attacher {
    /// A connected pair: the attacher (agent side) and the fd for the client.
    pub fn pair() -> std::io::Result<(Attacher, std::os::fd::OwnedFd)> {
        let (agent, client) = UnixStream::pair()?;
        agent.set_nonblocking(true)?;
        set_send_buffer(&agent, SOCKET_SEND_BYTES);
        Ok((
            Attacher {
                stream: tokio::net::UnixStream::from_std(agent)?,
                output: None,
            },
            client.into(),
        ))
    }
}

struct Slot {
    /// The agent's end of the client's socket (registered for reading
    /// only), shared with the writer task: the run task writes to it
    /// directly while `queued` is 0.
    stream: Arc<AsyncFd<UnixStream>>,
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes sent to the writer and not yet written out.
    queued: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    /// The client's own output, when it gave one: its event lines go
    /// there instead of into the socket.
    direct: Option<DirectLane>,
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
    /// Signalled when a client's writer ends (the client closed its end,
    /// or went away): the run notices a lost client at once, not on its
    /// next publish tick, so a run whose last client is gone ends now.
    ended: Arc<Notify>,
}

impl Fanout {
    /// Adds a client; its stream starts with `header_line`. A socket that
    /// cannot be registered with the reactor (out of memory) is closed, so
    /// the client sees its stream end at once.
    pub fn add(&mut self, attacher: Attacher, header_line: &[u8]) {
        self.ever_attached = true;
        let stream = match reading_only(attacher.stream) {
            Ok(stream) => Arc::new(stream),
            Err(e) => {
                tracing::warn!(error = %e, "event stream dropped: cannot register its socket");
                return;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(write_loop(
            stream.clone(),
            rx,
            queued.clone(),
            self.ended.clone(),
        ));
        let slot = Slot {
            stream,
            tx,
            queued,
            task,
            direct: attacher.output.map(DirectLane::start),
            unreported: 0,
            missed_total: 0,
        };
        slot.deliver(header_line);
        self.slots.push(slot);
    }

    /// Sends the batch in `buf` (`events` events) to every client: written
    /// straight into the socket of each client whose queue is empty, queued
    /// for the others (or counted as lost to a client whose queue is full).
    /// `share` turns `buf` into shared bytes, at most once and only when
    /// some client needs the batch queued (the rest of a partial write, or
    /// a client that is behind). `buf` is empty after the call (taken by
    /// `share`, or cleared): when every client took the batch directly, it
    /// was never copied and its buffer is reused as it is.
    pub fn send_batch(
        &mut self,
        buf: &mut Vec<u8>,
        events: u64,
        share: impl FnOnce(&mut Vec<u8>) -> Bytes,
    ) {
        let mut share = Some(share);
        let mut shared: Option<Bytes> = None;
        for slot in &mut self.slots {
            let len = shared.as_ref().map_or(buf.len(), Bytes::len);
            let room = QUEUE_BYTES.saturating_sub(slot.events_queued());
            if slot.unreported > 0 && room > len {
                let line = stream::encode(&Control::Lost {
                    count: slot.unreported,
                    total: slot.missed_total,
                    cause: LostCause::SlowReader,
                    datasource: None,
                });
                slot.deliver(&line);
                slot.unreported = 0;
            }
            if room < len {
                slot.unreported += events;
                slot.missed_total += events;
                self.missed += events;
                continue;
            }
            let written = slot.write_events(shared.as_deref().unwrap_or(buf));
            if written < len {
                let data = match (&shared, share.take()) {
                    (Some(data), _) => data.clone(),
                    (None, Some(share)) => shared.insert(share(buf)).clone(),
                    (None, None) => unreachable!("share is only taken to fill `shared`"),
                };
                slot.enqueue_events(data.slice(written..));
            }
        }
        buf.clear();
    }

    /// Control lines are small and rare: they are never dropped.
    pub fn send_control(&mut self, control: &Control) {
        let line = stream::encode(control);
        for slot in &self.slots {
            slot.deliver(&line);
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

    /// Forgets clients whose writer ended (closed socket) or whose own
    /// output went away (its reader closed it: `gadgetctl run | head -1`).
    /// Dropping a slot closes its stream after what is queued there; a
    /// client whose output could not be written for another reason (a full
    /// disk under `> file`) gets an end line saying so first, with the
    /// run's counts so far, `(events_seen, events_lost)`.
    pub fn prune(&mut self, counts: (u64, u64)) {
        self.slots.retain(|s| {
            let gone = s.tx.is_closed() || s.direct.as_ref().is_some_and(DirectLane::is_gone);
            if gone && let Some(why) = s.direct.as_ref().and_then(DirectLane::failure) {
                s.enqueue(output_failed_end(why, counts).into());
            }
            !gone
        });
    }

    /// Signalled (a stored permit, so none is missed between polls) each
    /// time a client's writer ends; then [`Fanout::prune`] forgets it.
    pub fn writer_ended(&self) -> Arc<Notify> {
        self.ended.clone()
    }

    /// Someone attached once and every stream has since gone away
    /// (pruned first, see [`Fanout::prune`]).
    pub fn was_abandoned(&mut self, counts: (u64, u64)) -> bool {
        self.prune(counts);
        self.ever_attached && self.slots.is_empty()
    }

    /// Sends the end line and waits (briefly) for every writer to flush.
    /// A client with its own output gets the end line once its events are
    /// all written there (and the agent's fd of it closed); when they could
    /// not be within [`FINISH_WAIT`], its end line says so as an error.
    pub async fn finish(self, end: &End) {
        let line: Bytes = stream::encode(&Control::End(end.clone())).into();
        for mut slot in self.slots {
            let (flushed, failure) = match slot.direct.take() {
                Some(direct) => {
                    let failure = direct.failure().map(str::to_string);
                    (direct.finish(FINISH_WAIT).await, failure)
                }
                None => (Flushed::All, None),
            };
            let line = match (flushed, failure) {
                (Flushed::All, _) => line.clone(),
                // A write into its output failed (a full disk).
                (Flushed::Gone, Some(why)) => {
                    output_failed_end(&why, (end.events_seen, end.events_lost)).into()
                }
                // Its reader went away (`| head -1`): the stream closes
                // without an end line, as when the slot is pruned.
                (Flushed::Gone, None) => continue,
                (Flushed::TimedOut, _) => {
                    let mut failed = end.clone();
                    failed.error = Some(format!(
                        "the run's last events were not written to the output ({} did not \
                         take them within {} s)",
                        gadgetd_dbus::types::options::OUTPUT_FD,
                        FINISH_WAIT.as_secs()
                    ));
                    stream::encode(&Control::End(failed)).into()
                }
            };
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
            slot.enqueue(line);
            drop(slot.tx);
            let _ = tokio::time::timeout(FINISH_WAIT, slot.task).await;
        }
    }
}

/// The end line of a client whose own output could not be written (`why`:
/// the error's text), with the run's `(events_seen, events_lost)` so far:
/// the run goes on for its other clients, this client's part of it failed.
fn output_failed_end(why: &str, (events_seen, events_lost): (u64, u64)) -> Vec<u8> {
    stream::encode(&Control::End(End {
        reason: stream::reason::ERROR.into(),
        error: Some(format!(
            "the agent could not write the events into this command's output: {why} \
             (the run goes on for its other clients)"
        )),
        events_seen,
        events_lost,
        datasources: Vec::new(),
        log: None,
    }))
}

impl Slot {
    /// Bytes of events waiting in this client's queue (its output's, when
    /// it gave one).
    fn events_queued(&self) -> usize {
        match &self.direct {
            Some(direct) => direct.queued(),
            None => self.queued.load(Ordering::Acquire),
        }
    }

    /// [`Slot::write_direct`] of event lines, into the client's output
    /// when it gave one.
    fn write_events(&mut self, data: &[u8]) -> usize {
        match &mut self.direct {
            Some(direct) => direct.write_now(data),
            None => self.write_direct(data),
        }
    }

    /// Queues event lines for the writer of the client's output (or of
    /// its stream).
    fn enqueue_events(&self, data: Bytes) {
        match &self.direct {
            Some(direct) => direct.enqueue(data),
            None => self.enqueue(data),
        }
    }

    /// Writes as much of `data` as the socket takes now, if nothing waits
    /// in the queue (the writer task is idle, so the order holds): the
    /// bytes written, which the caller queues the rest after.
    fn write_direct(&self, data: &[u8]) -> usize {
        if self.queued.load(Ordering::Acquire) != 0 {
            return 0;
        }
        // Errors (the client went away) are left to the writer, which
        // meets them on its next write or its read of EOF.
        send_now(&self.stream, data)
    }

    /// A small line (header, control): written directly when it can be,
    /// else queued (a copy).
    fn deliver(&self, line: &[u8]) {
        let written = self.write_direct(line);
        if written < line.len() {
            self.enqueue(Bytes::copy_from_slice(&line[written..]));
        }
    }

    fn enqueue(&self, data: Bytes) {
        // Counted before sending, so the writer's decrement never goes first.
        let len = data.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(data).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }
}

/// The agent's end of a stream, moved to a registration for reading only
/// (EOF): the run task and the writer write to it without the reactor.
fn reading_only(stream: tokio::net::UnixStream) -> std::io::Result<AsyncFd<UnixStream>> {
    // into_std leaves the socket non-blocking.
    register(stream.into_std()?, Interest::READABLE)
}

/// Registers `stream` with the reactor for `interest`.
fn register(stream: UnixStream, interest: Interest) -> std::io::Result<AsyncFd<UnixStream>> {
    // SAFETY: the AsyncFd owns the socket and never closes or replaces its
    // fd while registered.
    unsafe { AsyncFd::register_with_interest(stream, interest) }.map_err(|e| e.into_parts().1)
}

/// One non-blocking `send` of `data` (`MSG_DONTWAIT`, `MSG_NOSIGNAL`): the
/// bytes the socket took, 0 when its buffer is full or on an error.
fn send_now(stream: &AsyncFd<UnixStream>, data: &[u8]) -> usize {
    if data.is_empty() {
        return 0;
    }
    try_send(stream.get_ref(), data).unwrap_or(0)
}

/// One non-blocking `send`: the bytes taken; `WouldBlock` when the socket
/// is full.
fn try_send(stream: &UnixStream, data: &[u8]) -> std::io::Result<usize> {
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    nix::sys::socket::send(stream.as_raw_fd(), data, flags).map_err(std::io::Error::from)
}

/// Asks for a send buffer of `bytes` on `stream` (best effort: the
/// default stays when the kernel refuses).
fn set_send_buffer(stream: &UnixStream, bytes: usize) {
    if let Err(e) = setsockopt(stream, sockopt::SndBuf, &bytes) {
        tracing::debug!(error = %e, "stream send buffer left at the default");
    }
}

/// Waits for room in a full socket: a duplicate of its fd registered for
/// writing, made on the first wait and kept while the writer has data.
struct Room {
    writable: Option<AsyncFd<UnixStream>>,
}

impl Room {
    /// Writes all of `data`, waiting for room when the socket is full.
    async fn write_all(&mut self, stream: &UnixStream, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            match try_send(stream, data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let writable = match &mut self.writable {
                        Some(w) => w,
                        None => self
                            .writable
                            .insert(register(stream.try_clone()?, Interest::WRITABLE)?),
                    };
                    // Cleared before the retry: an edge that comes after
                    // it is not lost.
                    writable.writable().await?.clear_ready();
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The queue is empty: stop being woken when the socket has room.
    fn release(&mut self) {
        self.writable = None;
    }
}

/// Empties the client's queue into its socket, and ends when the client
/// closes its end (EOF) or the queue's sender is dropped; then signals
/// `ended`.
async fn write_loop(
    stream: Arc<AsyncFd<UnixStream>>,
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
    ended: Arc<Notify>,
) {
    write_until_closed(&stream, rx, queued).await;
    // The fd stays open (the stream owns it); an error means the client
    // is gone already.
    let _ = nix::sys::socket::shutdown(stream.get_ref().as_raw_fd(), Shutdown::Write);
    ended.notify_one();
}

async fn write_until_closed(
    stream: &AsyncFd<UnixStream>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
) {
    let mut probe = [0u8; 64];
    let mut room = Room { writable: None };
    loop {
        tokio::select! {
            biased;
            chunk = rx.recv() => match chunk {
                Some(data) => {
                    let written = room.write_all(stream.get_ref(), &data).await;
                    // Release: the run task's direct write that sees the
                    // queue empty comes after these bytes.
                    if queued.fetch_sub(data.len(), Ordering::Release) == data.len() {
                        room.release();
                    }
                    if let Err(e) = written {
                        tracing::debug!(error = %e, "event stream client went away");
                        break;
                    }
                }
                None => break,
            },
            ready = stream.readable() => match ready {
                Ok(mut guard) => match guard.try_io(|s| {
                    nix::sys::socket::recv(s.as_raw_fd(), &mut probe, MsgFlags::MSG_DONTWAIT)
                        .map_err(std::io::Error::from)
                }) {
                    Ok(Ok(0)) => break,
                    Ok(Ok(_)) => {} // clients do not talk; ignore
                    Ok(Err(_)) => break,
                    Err(_would_block) => {}
                },
                Err(_) => break,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How long a test waits for a signal that should come at once.
    const PROMPTLY: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn a_client_closing_its_stream_signals_the_run_at_once() {
        let mut fanout = Fanout::default();
        let ended = fanout.writer_ended();
        let (first, first_client) = Attacher::pair().unwrap();
        let (second, second_client) = Attacher::pair().unwrap();
        fanout.add(first, b"{\"header\":1}\n");
        fanout.add(second, b"{\"header\":1}\n");
        assert!(!fanout.was_abandoned((0, 0)));

        // No events flow: only the writer's read of EOF can tell.
        drop(first_client);
        tokio::time::timeout(PROMPTLY, ended.notified())
            .await
            .expect("the first client's hang-up was not signalled");
        assert!(!fanout.was_abandoned((0, 0)), "one client is still there");
        assert_eq!(fanout.clients(), 1);

        drop(second_client);
        tokio::time::timeout(PROMPTLY, ended.notified())
            .await
            .expect("the last client's hang-up was not signalled");
        assert!(fanout.was_abandoned((0, 0)));
        assert_eq!(fanout.clients(), 0);
    }

    #[tokio::test]
    async fn a_client_that_stays_is_not_signalled() {
        let mut fanout = Fanout::default();
        let ended = fanout.writer_ended();
        let (attacher, _client) = Attacher::pair().unwrap();
        fanout.add(attacher, b"{\"header\":1}\n");
        let mut buf = b"{\"a\":1}\n".to_vec();
        fanout.send_batch(&mut buf, 1, |b| Bytes::copy_from_slice(b));
        assert!(
            tokio::time::timeout(Duration::from_millis(200), ended.notified())
                .await
                .is_err(),
            "a client that keeps its stream open was taken for gone"
        );
        assert!(!fanout.was_abandoned((1, 0)));
    }
}
