//! One run: its shared state, the task that pumps events from the kernel to
//! its attached streams, and its D-Bus object.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gadgetd_dbus::stream::{self, Control, End, Header, LostCause, SourceCount};
use gadgetd_dbus::types::{RunSummary, state};
use tokio::sync::{mpsc, watch};
use zbus::interface;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, Value};

use super::attach::{Attacher, Fanout};
use super::batch_pool::BatchPool;
use super::bus::Connections;
use gadgetd_runtime::Batch;
use gadgetd_runtime::Running;

/// What a run is and how it is doing. Shared by its task, its D-Bus object
/// and the manager.
pub struct RunHandle {
    pub id: String,
    pub name: String,
    /// The gadget's name (from its definition or object), as the stream header says.
    pub gadget: String,
    pub image: String,
    pub digest: String,
    pub detached: bool,
    /// Its gadget's metrics are exported on /metrics (`--metrics`).
    pub export_metrics: bool,
    pub owner: u32,
    /// Microseconds since the epoch.
    pub started_at: u64,
    pub params: BTreeMap<String, String>,
    /// The stream header line every attacher receives first.
    pub header_line: Vec<u8>,
    pub events_seen: AtomicU64,
    pub events_lost: AtomicU64,
    /// What the metrics endpoint reports beyond the D-Bus properties.
    pub stats: RunStats,
    /// A detached run's crash-proof counters (`state::ledger`).
    pub ledger: Option<Arc<crate::state::Ledger>>,
    state: Mutex<(String, String)>,
    /// Records a requested stop before it happens (detached runs).
    stop_record: std::sync::OnceLock<StopRecord>,
    stop_tx: watch::Sender<Option<&'static str>>,
    attach_tx: mpsc::UnboundedSender<Attacher>,
}

impl RunHandle {
    pub fn path(&self) -> OwnedObjectPath {
        OwnedObjectPath::try_from(gadgetd_dbus::names::run_path(&self.id))
            .expect("hex ids are valid paths")
    }

    pub fn state(&self) -> String {
        self.state.lock().unwrap().0.clone()
    }

    pub fn exit_reason(&self) -> String {
        self.state.lock().unwrap().1.clone()
    }

    pub fn is_live(&self) -> bool {
        matches!(self.state().as_str(), state::STARTING | state::RUNNING)
    }

    fn set_state(&self, new_state: &str, reason: &str) {
        *self.state.lock().unwrap() = (new_state.to_string(), reason.to_string());
    }

    /// Asks the run to stop; `reason` ends up in every stream's end line.
    pub fn stop(&self, reason: &'static str) {
        let _ = self.stop_tx.send(Some(reason));
    }

    /// Sets how a requested stop is recorded (once; detached runs).
    pub fn set_stop_record(&self, record: StopRecord) {
        let _ = self.stop_record.set(record);
    }

    /// Stops the run at a caller's request (`Stop`). A detached run's stop
    /// is recorded first, so a restart cannot bring it back; when that
    /// fails (a full disk), the run keeps running and the error says why.
    pub fn stop_requested(&self) -> Result<(), String> {
        if let Some(record) = self.stop_record.get() {
            record(self)?;
        }
        self.stop(stream::reason::STOPPED);
        Ok(())
    }

    /// Adds a stream; fails when the run has ended.
    pub fn attach(&self, attacher: Attacher) -> Result<(), Attacher> {
        self.attach_tx.send(attacher).map_err(|e| e.0)
    }

    pub fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            image: self.image.clone(),
            digest: self.digest.clone(),
            state: self.state(),
            detached: self.detached,
            started_at: self.started_at,
            owner: self.owner,
            events_seen: self.events_seen.load(Ordering::Relaxed),
            events_lost: self.events_lost.load(Ordering::Relaxed),
            exit_reason: self.exit_reason(),
            path: self.path(),
        }
    }
}

/// A run's counters by cause and its metrics sources (agent/src/metrics).
#[derive(Default)]
pub struct RunStats {
    /// Events the kernel side dropped (ring or perf buffer full).
    pub lost_kernel: AtomicU64,
    /// Records shorter than the event type, dropped by the decoder.
    pub lost_malformed: AtomicU64,
    /// Events clients missed by reading too slowly (summed over clients).
    pub lost_slow_reader: AtomicU64,
    /// Streams attached now.
    pub clients: AtomicU64,
    /// The live run's program statistics and metric maps; `None` once
    /// the run has ended (its kernel objects are released with it).
    pub metrics: Mutex<Option<Arc<gadgetd_runtime::metrics::RunMetrics>>>,
}

/// Records a requested stop of a run; the error says why it could not.
pub type StopRecord = Box<dyn Fn(&RunHandle) -> Result<(), String> + Send + Sync>;

impl RunStats {
    fn count_lost(&self, kernel: u64, malformed: u64) {
        self.lost_kernel.fetch_add(kernel, Ordering::Relaxed);
        self.lost_malformed.fetch_add(malformed, Ordering::Relaxed);
    }
}

/// Everything needed to start the pump of a run that has loaded.
pub struct RunSpec {
    pub id: String,
    pub name: String,
    pub image: String,
    pub digest: String,
    pub detached: bool,
    pub owner: u32,
    pub params: BTreeMap<String, String>,
    pub header: Header,
    pub timeout: Option<Duration>,
    /// Export the gadget's metrics on /metrics.
    pub metrics: bool,
    /// A detached run's crash-proof counters; the pump adds to them before
    /// events reach any stream.
    pub ledger: Option<Arc<crate::state::Ledger>>,
}

/// Receives the end of the run (for the manager's bookkeeping).
pub type OnEnd = Box<dyn FnOnce(&Arc<RunHandle>) + Send>;

/// Starts the pump task of a loaded gadget and returns its handle.
pub fn spawn(
    spec: RunSpec,
    running: Running,
    conns: Connections,
    first: Option<Attacher>,
    on_end: OnEnd,
) -> Arc<RunHandle> {
    spawn_at(spec, running, conns, first, on_end, now_us())
}

/// A run that ended before this agent started (from the state database):
/// listed, removable, its logs readable, but no task behind it.
pub fn ended(
    spec: RunSpec,
    header_line: Vec<u8>,
    started_at: u64,
    end_state: &str,
    reason: &str,
) -> Arc<RunHandle> {
    let (stop_tx, _) = watch::channel(None);
    let (attach_tx, _) = mpsc::unbounded_channel();
    let state = (end_state.into(), reason.into());
    Arc::new(RunHandle::new(
        spec,
        header_line,
        started_at,
        state,
        stop_tx,
        attach_tx,
    ))
}

impl RunHandle {
    /// `spec.header` is not used: callers pass the encoded `header_line`.
    fn new(
        spec: RunSpec,
        header_line: Vec<u8>,
        started_at: u64,
        state: (String, String),
        stop_tx: watch::Sender<Option<&'static str>>,
        attach_tx: mpsc::UnboundedSender<Attacher>,
    ) -> RunHandle {
        let gadget = match stream::classify(header_line.trim_ascii_end()) {
            Ok(stream::Line::Control(Control::Header(h))) => h.gadget.name,
            _ => String::new(),
        };
        RunHandle {
            id: spec.id,
            name: spec.name,
            gadget,
            image: spec.image,
            digest: spec.digest,
            detached: spec.detached,
            export_metrics: spec.metrics,
            owner: spec.owner,
            started_at,
            params: spec.params,
            header_line,
            events_seen: AtomicU64::new(0),
            events_lost: AtomicU64::new(0),
            stats: RunStats::default(),
            ledger: spec.ledger,
            state: Mutex::new(state),
            stop_record: std::sync::OnceLock::new(),
            stop_tx,
            attach_tx,
        }
    }
}

/// [`spawn`] with the start time of a run restored after a restart.
pub fn spawn_at(
    mut spec: RunSpec,
    running: Running,
    conns: Connections,
    first: Option<Attacher>,
    on_end: OnEnd,
    started_at: u64,
) -> Arc<RunHandle> {
    let (stop_tx, stop_rx) = watch::channel(None);
    let (attach_tx, attach_rx) = mpsc::unbounded_channel();
    let header_line = stream::encode(&Control::Header(std::mem::take(&mut spec.header)));
    let timeout = spec.timeout;
    let state = (state::RUNNING.into(), String::new());
    let handle = Arc::new(RunHandle::new(
        spec,
        header_line,
        started_at,
        state,
        stop_tx,
        attach_tx,
    ));
    if let Some(a) = first {
        let _ = handle.attach(a);
    }
    let task_handle = handle.clone();
    tokio::spawn(async move {
        let reason = pump(&task_handle, running, stop_rx, attach_rx, timeout, &conns).await;
        let failed = reason.starts_with("error");
        task_handle.set_state(
            if failed {
                state::FAILED
            } else {
                state::STOPPED
            },
            &reason,
        );
        conns
            .notify_run(
                &task_handle,
                &["State", "ExitReason", "EventsSeen", "EventsLost"],
            )
            .await;
        tracing::info!(run = %task_handle.id, reason = %reason, events = task_handle.events_seen.load(Ordering::Relaxed),
            lost = task_handle.events_lost.load(Ordering::Relaxed), "run ended");
        on_end(&task_handle);
        gadgetd_runtime::load::trim_heap();
    });
    handle
}

/// The run's `(events_seen, events_lost)` so far.
fn counts(handle: &RunHandle) -> (u64, u64) {
    (
        handle.events_seen.load(Ordering::Relaxed),
        handle.events_lost.load(Ordering::Relaxed),
    )
}

/// How often counters are published as PropertiesChanged at most.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Bytes of the batch buffer the decoder writes into: twice a batch
/// (`reader.rs` stops at 64 KiB), room for the event that crosses it.
const BATCH_CAPACITY: usize = 128 * 1024;

/// Batch buffers kept for reuse per run (besides the one being filled).
const POOLED_BATCHES: usize = 2;

/// The per-run pools of batch buffers: whole ones, and half-size ones that
/// medium batches are copied into.
struct Pools {
    whole: BatchPool,
    half: BatchPool,
}

impl Pools {
    fn new() -> Pools {
        Pools {
            whole: BatchPool::new(BATCH_CAPACITY, POOLED_BATCHES),
            half: BatchPool::new(BATCH_CAPACITY / 2, POOLED_BATCHES),
        }
    }
}

/// The decoded batch as shared bytes for the clients' queues (called only
/// when some client cannot take it straight into its socket), which count
/// what they hold by length: a batch that fills at least half the buffer is
/// handed over whole (no copy) and the buffer replaced by one from the pool
/// (it returns there once written to every client); a quarter to a half is
/// copied into a half-size pooled buffer (freshly mapped memory for it cost
/// a page fault per page); a smaller one (a few events) is copied out at its
/// size. The buffer is kept in both cases, and a queue never holds more
/// than twice what it counts.
fn take_batch(buf: &mut Vec<u8>, pools: &Pools) -> Bytes {
    if buf.len() >= BATCH_CAPACITY / 2 {
        pools
            .whole
            .share(std::mem::replace(buf, pools.whole.take()))
    } else if buf.len() >= BATCH_CAPACITY / 4 {
        let mut half = pools.half.take();
        half.extend_from_slice(buf);
        buf.clear();
        pools.half.share(half)
    } else {
        let data = Bytes::copy_from_slice(buf);
        buf.clear();
        data
    }
}

async fn pump(
    handle: &Arc<RunHandle>,
    mut running: Running,
    mut stop_rx: watch::Receiver<Option<&'static str>>,
    mut attach_rx: mpsc::UnboundedReceiver<Attacher>,
    timeout: Option<Duration>,
    conns: &Connections,
) -> String {
    *handle.stats.metrics.lock().unwrap() = Some(running.metrics());
    let mut fanout = Fanout::default();
    // The caller's own stream is queued before the pump starts: add it before
    // the first batch, or the run's first events would reach no one.
    while let Ok(attacher) = attach_rx.try_recv() {
        fanout.add(attacher, &handle.header_line);
    }
    handle
        .stats
        .clients
        .store(fanout.clients() as u64, Ordering::Relaxed);
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    // On the process-wide grid: one wake-up per second for all runs.
    let mut publish = gadgetd_runtime::ticks::aligned_interval(PUBLISH_EVERY);
    let mut published = (0u64, 0u64);
    let pools = Pools::new();
    let mut buf = pools.whole.take();
    // Loss reports name their data source when there are several.
    let multi = running.counts().len() > 1;
    let ended = fanout.writer_ended();
    // One timer for the whole run: a fresh `sleep_until` per round of the
    // `select!` registered and removed a timer entry per batch.
    let timed_out = sleep_until(deadline);
    tokio::pin!(timed_out);
    let reason: &str = 'run: loop {
        tokio::select! {
            mut batch = running.next_batch(&mut buf) => {
                let mut taken = 1;
                loop {
                    if let Some(reason) = deliver(handle, &mut fanout, &running, &mut buf, &pools, multi, batch) {
                        break 'run reason;
                    }
                    // A flood: take the batches already waiting back to
                    // back, a bounded number before the other branches
                    // (stop, attach, timeout) are looked at again.
                    if !batch.more || taken == BACK_TO_BACK {
                        break;
                    }
                    match running.ready_batch(&mut buf) {
                        Some(next) => batch = next,
                        None => break,
                    }
                    taken += 1;
                }
            }
            () = ended.notified() => {
                // A client closed its stream: when it was the last, the run
                // ends now rather than on the next publish tick.
                let abandoned = fanout.was_abandoned(counts(handle));
                handle.stats.clients.store(fanout.clients() as u64, Ordering::Relaxed);
                if abandoned && !handle.detached {
                    break "client disconnected";
                }
            }
            Some(attacher) = attach_rx.recv() => {
                fanout.add(attacher, &handle.header_line);
                handle.stats.clients.store(fanout.clients() as u64, Ordering::Relaxed);
            }
            changed = stop_rx.changed() => {
                match (changed, *stop_rx.borrow()) {
                    (Ok(()), Some(reason)) => break reason,
                    (Err(_), _) => break stream::reason::SHUTDOWN,
                    _ => {}
                }
            }
            () = &mut timed_out => break stream::reason::TIMEOUT,
            _ = publish.tick() => {
                let abandoned = fanout.was_abandoned(counts(handle));
                handle.stats.clients.store(fanout.clients() as u64, Ordering::Relaxed);
                handle.stats.lost_slow_reader.store(fanout.missed(), Ordering::Relaxed);
                if abandoned && !handle.detached {
                    break "client disconnected";
                }
                let now = (handle.events_seen.load(Ordering::Relaxed), handle.events_lost.load(Ordering::Relaxed));
                if now != published {
                    published = now;
                    // Published by one task for all runs: the pump never waits.
                    conns.counters_changed(handle);
                }
            }
        }
    };
    // Drain what the kernel already produced, a batch at a time, then
    // count final losses.
    loop {
        let batch = running.drain_final(&mut buf);
        handle
            .events_seen
            .fetch_add(batch.events, Ordering::Relaxed);
        handle
            .events_lost
            .fetch_add(batch.lost + batch.malformed, Ordering::Relaxed);
        handle.stats.count_lost(batch.lost, batch.malformed);
        if let Some(ledger) = &handle.ledger {
            ledger.saw(batch.events, batch.lost + batch.malformed);
        }
        if batch.events > 0 {
            fanout.send_batch(&mut buf, batch.events, |buf| take_batch(buf, &pools));
        }
        if !batch.more {
            break;
        }
    }
    let late_lost = running.final_losses();
    handle.events_lost.fetch_add(late_lost, Ordering::Relaxed);
    let datasources = running
        .counts()
        .into_iter()
        .map(|c| SourceCount {
            name: c.name,
            events_seen: c.seen,
            events_lost: c.lost,
        })
        .collect();
    handle.stats.count_lost(late_lost, 0);
    *handle.stats.metrics.lock().unwrap() = None;
    if let Some(ledger) = &handle.ledger {
        ledger.saw(0, late_lost);
    }
    drop(running); // detaches every program before the streams end
    let end = End {
        reason: reason.to_string(),
        error: None,
        events_seen: handle.events_seen.load(Ordering::Relaxed),
        events_lost: handle.events_lost.load(Ordering::Relaxed),
        datasources,
        log: None,
    };
    handle
        .stats
        .lost_slow_reader
        .store(fanout.missed(), Ordering::Relaxed);
    handle.stats.clients.store(0, Ordering::Relaxed);
    fanout.finish(&end).await;
    reason.to_string()
}

/// Batches a run takes back to back under a flood before it looks at its
/// other wake-ups again (~1 MiB of JSON: a few ms at most).
const BACK_TO_BACK: u32 = 16;

/// Counts `batch` and sends its events (in `buf`) and any loss report to
/// the run's clients (naming the data source when there are several,
/// `multi`): the reason to end the run, if it should end (the
/// gadget is done, or its last client went away).
fn deliver(
    handle: &RunHandle,
    fanout: &mut Fanout,
    running: &Running,
    buf: &mut Vec<u8>,
    pools: &Pools,
    multi: bool,
    batch: Batch,
) -> Option<&'static str> {
    let events = batch.events;
    let lost = batch.lost + batch.malformed;
    handle.events_seen.fetch_add(events, Ordering::Relaxed);
    if let Some(ledger) = &handle.ledger {
        ledger.saw(events, lost);
    }
    if events > 0 {
        fanout.send_batch(buf, events, |buf| take_batch(buf, pools));
    }
    if lost > 0 {
        handle.stats.count_lost(batch.lost, batch.malformed);
        let total = handle.events_lost.fetch_add(lost, Ordering::Relaxed) + lost;
        if batch.malformed > 0 {
            tracing::warn!(run = %handle.id, count = batch.malformed, "records shorter than the event type were dropped");
        }
        fanout.send_control(&Control::Lost {
            count: lost,
            total,
            cause: LostCause::Kernel,
            datasource: multi.then(|| running.source_name(batch.source).to_string()),
        });
    }
    if batch.finished {
        return Some(stream::reason::DONE);
    }
    if !handle.detached && fanout.was_abandoned(counts(handle)) {
        return Some("client disconnected");
    }
    None
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// `org.gadgetd.Agent1.Run`: one object per run.
pub struct RunObject {
    pub handle: Arc<RunHandle>,
    pub auth: super::manager::Authorizer,
}

#[interface(name = "org.gadgetd.Agent1.Run")]
impl RunObject {
    /// Stops this run.
    async fn stop(
        &self,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> zbus::fdo::Result<()> {
        super::ownership::check(
            &self.auth,
            conn,
            &hdr,
            super::manager::ACTION_RUN,
            &self.handle,
            super::ownership::Access::Control,
        )
        .await?;
        self.handle
            .stop_requested()
            .map_err(zbus::fdo::Error::Failed)
    }

    #[zbus(property)]
    fn id(&self) -> String {
        self.handle.id.clone()
    }
    #[zbus(property)]
    fn name(&self) -> String {
        self.handle.name.clone()
    }
    #[zbus(property)]
    fn image(&self) -> String {
        self.handle.image.clone()
    }
    #[zbus(property)]
    fn digest(&self) -> String {
        self.handle.digest.clone()
    }
    #[zbus(property)]
    fn state(&self) -> String {
        self.handle.state()
    }
    #[zbus(property)]
    fn detached(&self) -> bool {
        self.handle.detached
    }
    #[zbus(property)]
    fn started_at(&self) -> u64 {
        self.handle.started_at
    }
    /// The run's parameters: empty unless the reader may read this run
    /// (its owner, root, or a holder of `org.gadgetd.run-gadget`).
    #[zbus(property)]
    async fn params(
        &self,
        #[zbus(header)] hdr: Option<zbus::message::Header<'_>>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> HashMap<String, String> {
        if super::ownership::may_read(&self.auth, conn, hdr.as_ref(), &self.handle).await {
            self.handle.params.clone().into_iter().collect()
        } else {
            HashMap::new()
        }
    }
    #[zbus(property)]
    fn events_seen(&self) -> u64 {
        self.handle.events_seen.load(Ordering::Relaxed)
    }
    #[zbus(property)]
    fn events_lost(&self) -> u64 {
        self.handle.events_lost.load(Ordering::Relaxed)
    }
    #[zbus(property)]
    fn owner(&self) -> u32 {
        self.handle.owner
    }
    #[zbus(property)]
    fn exit_reason(&self) -> String {
        self.handle.exit_reason()
    }
}

/// The current value of a Run property, for PropertiesChanged.
pub fn property_value(handle: &RunHandle, name: &str) -> Option<Value<'static>> {
    Some(match name {
        "State" => Value::from(handle.state()),
        "ExitReason" => Value::from(handle.exit_reason()),
        "EventsSeen" => Value::from(handle.events_seen.load(Ordering::Relaxed)),
        "EventsLost" => Value::from(handle.events_lost.load(Ordering::Relaxed)),
        _ => return None,
    })
}

/// Emits PropertiesChanged for `names` of the run at `emitter`'s path.
pub async fn emit_changed(
    emitter: &SignalEmitter<'_>,
    handle: &RunHandle,
    names: &[&str],
) -> zbus::Result<()> {
    let changed: HashMap<&str, Value<'_>> = names
        .iter()
        .filter_map(|n| property_value(handle, n).map(|v| (*n, v)))
        .collect();
    zbus::fdo::Properties::properties_changed(
        emitter,
        zbus::names::InterfaceName::from_static_str_unchecked(gadgetd_dbus::names::RUN_INTERFACE),
        changed,
        std::borrow::Cow::Borrowed(&[]),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_batches_are_copied_out_and_full_ones_handed_over() {
        let pools = Pools::new();
        let mut buf = pools.whole.take();
        // Small and medium batches: copied, the buffer kept.
        for len in [
            1,
            300,
            BATCH_CAPACITY / 4 - 1,
            BATCH_CAPACITY / 4,
            BATCH_CAPACITY / 2 - 1,
        ] {
            buf.extend(std::iter::repeat_n(b'x', len));
            let kept = buf.as_ptr();
            let data = take_batch(&mut buf, &pools);
            assert_eq!(data.len(), len);
            assert!(buf.is_empty());
            assert_eq!(buf.as_ptr(), kept, "{len}: the buffer is reused");
            assert_ne!(data.as_ptr(), kept, "{len}: the batch is a copy");
        }
        // Medium batches: copied into the same half-size buffer once it is written.
        let mut seen = Vec::new();
        for _ in 0..3 {
            buf.extend(std::iter::repeat_n(b'm', BATCH_CAPACITY / 3));
            let data = take_batch(&mut buf, &pools);
            assert_eq!(&data[..], &[b'm'; BATCH_CAPACITY / 3][..]);
            seen.push(data.as_ptr());
        }
        assert!(seen.iter().all(|p| *p == seen[0]), "{seen:?}");
        // A full batch: the buffer itself, and another in its place; once
        // written (dropped), it is the one the batch after next is decoded into.
        let mut handed = Vec::new();
        for len in [BATCH_CAPACITY / 2, BATCH_CAPACITY - 1] {
            buf.extend(std::iter::repeat_n(b'y', len));
            let given = buf.as_ptr();
            let data = take_batch(&mut buf, &pools);
            assert_eq!((data.len(), data.as_ptr()), (len, given));
            assert!(buf.is_empty() && buf.capacity() >= BATCH_CAPACITY);
            assert_ne!(buf.as_ptr(), given);
            handed.push((given, data));
        }
        let (first, data) = handed.remove(0);
        drop(data);
        buf.extend_from_slice(&[b'z'; BATCH_CAPACITY / 2]);
        let _ = take_batch(&mut buf, &pools);
        assert_eq!(buf.as_ptr(), first, "the written batch's buffer is reused");
    }
}
