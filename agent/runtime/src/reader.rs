//! Reading tracer buffers asynchronously and decoding straight into a byte
//! buffer of JSON lines.
//!
//! Ring buffers wake the reader through epoll, with no timer while a run is
//! idle. The kernel wakes it for the first record after a drain (the default
//! of `bpf_ringbuf_submit`, which `gadget/buffer.h` and Inspektor Gadget's
//! headers use) and, with `gadget/buffer.h`, when a record takes the ring
//! past a quarter full (and on every record past half full). After a drain that found events the reader pauses for
//! [`BUSY_PAUSE`] before the next one, so a busy gadget is drained in
//! batches, not once per wake-up: a wake-up during the pause is honoured at
//! once only when the ring is filling up (a quarter full, read from its
//! position pages, `ring_fill.rs`). A slow [`SAFETY_TICK`] drains rings of
//! gadgets that never wake anyone (objects built with older headers, which
//! passed `BPF_RB_NO_WAKEUP` below their threshold).
//!
//! A drain that read several records and would pause leaves the last one in
//! the ring (unconsumed): the kernel wakes the reader for a record only
//! when the ring was empty before it, so records written during the pause
//! wake no one until the ring fills up, and the pause's end delivers them
//! with the one held back (which waits at most one pause longer). Without
//! it every pause under a flood cost a wake-up of a parked thread for
//! nothing. A drain that finds only that record takes it, so an idle run's
//! next event wakes the reader at once. Losses are counted from
//! the kernel's per-event lost count for perf arrays (perf_ring.rs) and from
//! the per-CPU `<map>_lost_samples` counter the headers maintain for ring
//! buffers.

use std::task::Poll;
use std::time::Duration;

use aya::Ebpf;
use std::os::fd::AsFd;

use aya::maps::{Map, MapData, PerCpuArray, RingBuf};
use tokio::io::unix::AsyncFd;

use super::classify::{BufferKind, Tracer};
use super::decode::Decoder;
use super::error::{GadgetError, Result, chain};
use super::perf_ring::{self, PerfRing};
use super::ring_fill;

/// After a drain that found events, the next one waits this long unless the
/// ring fills up first: a busy gadget is read in batches of this many
/// milliseconds of events, and an event waits at most this long (the record
/// a busy drain leaves in the ring, twice this).
pub const BUSY_PAUSE: Duration = Duration::from_millis(5);
/// How often a ring is drained when nothing wakes the reader (gadgets that
/// never wake it); also a bound on how late a lost wake-up is noticed.
pub const SAFETY_TICK: Duration = Duration::from_millis(250);
/// Stop decoding into one batch after this many bytes (~90 trace_open
/// events): the batch is still in the CPU's cache when the agent copies it
/// into the clients' sockets. A flood is drained batch after batch without
/// waiting; 64 KiB batches cost the agent ~8% less CPU per event than
/// 256 KiB ones (docs/benchmarks.md).
const BATCH_BYTES: usize = 64 * 1024;
/// Pages per CPU for perf buffers (256 KiB with 4 KiB pages).
const PERF_PAGES: usize = 64;

/// Counts from one drain.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Events (or rows, or histograms) appended to the output.
    pub events: u64,
    /// Events lost in the kernel (full buffer) since the previous batch.
    pub lost: u64,
    /// Records too short for the event type (counted, not decoded).
    pub malformed: u64,
    /// The gadget has produced all it will (every data source is a snapshot,
    /// and each was handed out): end the run.
    pub finished: bool,
    /// Which data source produced it: an index into the gadget's sources
    /// (`Running::source_name`); 0 for readers' own counts.
    pub source: usize,
    /// The drain stopped at a full batch with records left: a final drain
    /// ([`EventReader::drain_final`]) wants another call; a live one
    /// ([`EventReader::drain`]) can be followed by the next batch at once
    /// (`Running::ready_batch`).
    pub more: bool,
}

enum Source {
    Ring {
        // Boxed: the ring is much larger than the perf variant, and one
        // indirection per drain is nothing.
        ring: Box<AsyncFd<RingBuf<MapData>>>,
        lost_counter: Option<PerCpuArray<MapData, u64>>,
        lost_reported: u64,
        /// Bytes waiting in the ring; `None` if its pages could not be
        /// mapped (then every wake-up is honoured at once).
        fill: Option<ring_fill::RingFill>,
        /// A wake-up during the pause is honoured at once from this many
        /// bytes waiting (a quarter of the ring).
        urgent_bytes: u64,
        /// The ring's size in bytes.
        ring_bytes: u64,
    },
    Perf {
        buffers: Vec<AsyncFd<PerfRing>>,
        scratch: Vec<u8>,
        /// The perf event array, kept open while its rings are in use.
        _map: MapData,
        lost_reported: u64,
    },
}

pub struct EventReader {
    source: Source,
    decoder: Decoder,
    /// Drain at the next call of [`EventReader::drain`] (woken, paused
    /// long enough, or a batch left records behind).
    due: bool,
    /// The end of the pause after a drain that found events, if any.
    pause: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    safety: tokio::time::Interval,
    /// Ring bytes the final drain has still to read: what was waiting when
    /// it began. Bounds it while programs still produce.
    final_left: Option<u64>,
}

/// Registers a map-owned fd with tokio's reactor.
fn register<T: std::os::fd::AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: the fd is owned by `inner` (an aya map or perf buffer), which
    // the AsyncFd owns and never closes or replaces while registered.
    unsafe { AsyncFd::register(inner) }.map_err(|e| e.into_parts().1)
}

fn reader_err(map: &str, e: impl std::fmt::Display) -> GadgetError {
    GadgetError::Reader {
        map: map.into(),
        reason: e.to_string(),
    }
}

impl EventReader {
    /// Takes the tracer's map (and its lost counter) out of `ebpf`. Must run
    /// inside a tokio runtime.
    pub fn new(ebpf: &mut Ebpf, tracer: &Tracer, decoder: Decoder) -> Result<EventReader> {
        let map = ebpf
            .take_map(&tracer.map)
            .ok_or_else(|| reader_err(&tracer.map, "map missing after load"))?;
        let source = match tracer.buffer {
            BufferKind::RingBuf => {
                let ring_bytes = match &map {
                    Map::RingBuf(data) => data.info().map_or(0, |i| i.max_entries()),
                    _ => 0,
                };
                let ring =
                    RingBuf::try_from(map).map_err(|e| reader_err(&tracer.map, chain(&e)))?;
                let fill = ring_fill::RingFill::new(ring.as_fd())
                    .inspect_err(|e| {
                        tracing::debug!(map = %tracer.map, error = %e,
                            "ring positions not mapped: every wake-up drains at once")
                    })
                    .ok();
                let lost_counter = ebpf
                    .take_map(&format!("{}_lost_samples", tracer.map))
                    .and_then(|m| PerCpuArray::<MapData, u64>::try_from(m).ok());
                Source::Ring {
                    ring: Box::new(register(ring)?),
                    lost_counter,
                    lost_reported: 0,
                    fill,
                    urgent_bytes: u64::from(ring_bytes / 4),
                    ring_bytes: u64::from(ring_bytes),
                }
            }
            BufferKind::PerfEventArray => {
                let Map::PerfEventArray(data) = map else {
                    return Err(reader_err(&tracer.map, "not a perf event array"));
                };
                let cpus = aya::util::online_cpus()
                    .map_err(|(path, e)| reader_err(&tracer.map, format!("{path}: {e}")))?;
                let mut buffers = Vec::with_capacity(cpus.len());
                for cpu in cpus {
                    let ring = PerfRing::open(cpu, PERF_PAGES).map_err(|e| {
                        reader_err(&tracer.map, format!("perf ring on CPU {cpu}: {e}"))
                    })?;
                    perf_ring::install(data.fd().as_fd(), cpu, &ring).map_err(|e| {
                        reader_err(&tracer.map, format!("installing the CPU {cpu} ring: {e}"))
                    })?;
                    buffers.push(register(ring)?);
                }
                Source::Perf {
                    buffers,
                    scratch: Vec::new(),
                    _map: data,
                    lost_reported: 0,
                }
            }
        };
        // On the process-wide grid: idle runs' safety drains wake the agent
        // once per tick for all of them (ticks.rs).
        let safety = super::ticks::aligned_interval(SAFETY_TICK);
        Ok(EventReader {
            source,
            decoder,
            // Whatever the programs wrote before the reader existed.
            due: true,
            pause: None,
            safety,
            final_left: None,
        })
    }

    /// Waits until the buffer should be drained: woken by the kernel (at
    /// once, or at the end of the pause after a busy drain), or the safety
    /// tick; polled to wait on several readers at once.
    pub fn poll_wait(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.due {
            return Poll::Ready(());
        }
        let EventReader {
            source,
            safety,
            pause,
            due,
            ..
        } = self;
        // Each fd is polled until it is pending, so its next wake-up wakes
        // this task even when this one is not acted on (paused).
        let mut woken = false;
        match source {
            Source::Ring { ring, .. } => {
                while let Poll::Ready(Ok(mut guard)) = ring.poll_read_ready(cx) {
                    guard.clear_ready();
                    woken = true;
                }
            }
            Source::Perf { buffers, .. } => {
                for b in buffers.iter() {
                    while let Poll::Ready(Ok(mut guard)) = b.poll_read_ready(cx) {
                        guard.clear_ready();
                        woken = true;
                    }
                }
            }
        }
        let waiting = source.waiting();
        if let Some(sleep) = pause {
            if sleep.as_mut().poll(cx).is_ready() {
                *pause = None;
                // Drain when something came during the pause (or when we
                // cannot tell).
                *due |= waiting != Some(0);
            } else if woken {
                // Paused: only a ring filling up is drained before its end.
                *due |= match (source, waiting) {
                    (Source::Ring { urgent_bytes, .. }, Some(w)) => w >= *urgent_bytes,
                    _ => true,
                };
            }
        } else {
            *due |= woken;
        }
        if safety.poll_tick(cx).is_ready() {
            *due |= waiting != Some(0);
        }
        if *due { Poll::Ready(()) } else { Poll::Pending }
    }

    /// Decodes what is buffered (up to a batch) into `out` as JSON lines,
    /// when a drain is due ([`EventReader::poll_wait`]); nothing otherwise.
    pub fn drain(&mut self, out: &mut Vec<u8>) -> Batch {
        if !self.due {
            return Batch::default();
        }
        let (mut batch, more, _) = self.drain_now(out, BATCH_BYTES, true);
        batch.more = more;
        // A full batch left records behind: drain again at once. Otherwise
        // the ring is empty (or holds the one record left in it); after
        // events, pause before the next drain.
        self.due = more;
        if !more && batch.events + batch.malformed > 0 && self.pause.is_none() {
            self.pause = Some(Box::pin(tokio::time::sleep(BUSY_PAUSE)));
        }
        batch
    }

    /// The run's end: what was buffered when the first call was made,
    /// whether a drain is due or not, a batch per call; `more` is set while
    /// some of it is left (call again). Never more than the ring holds, so
    /// programs still producing cannot keep it going.
    pub fn drain_final(&mut self, out: &mut Vec<u8>) -> Batch {
        let left = match self.final_left {
            Some(0) => return Batch::default(),
            Some(left) => left,
            None => match &self.source {
                Source::Ring { ring_bytes, .. } => self.source.waiting().unwrap_or(*ring_bytes),
                Source::Perf { .. } => 0,
            },
        };
        // A batch more than `out` holds: a final drain may append to what
        // it wrote before.
        let (mut batch, more, read) = self.drain_now(out, out.len() + BATCH_BYTES, false);
        let left = left.saturating_sub(read);
        self.final_left = Some(left);
        batch.more = more && left > 0;
        batch
    }

    /// Drains into `out` until it holds `full` bytes; true when it stopped
    /// there with records left, and the ring bytes read (record headers
    /// included). With `hold_last`, a ring's last record is left in it when
    /// others were read before it (see the module's doc).
    fn drain_now(&mut self, out: &mut Vec<u8>, full: usize, hold_last: bool) -> (Batch, bool, u64) {
        let mut batch = Batch::default();
        let mut more = false;
        let mut read = 0u64;
        let decoder = &self.decoder;
        match &mut self.source {
            Source::Ring { ring, fill, .. } => {
                let ring = ring.get_mut();
                let fill = fill.as_ref().filter(|_| hold_last);
                // Bytes known to wait (from the drain's start): the ring's
                // producer position is read again only when the drain gets
                // there, not per record (the kernel writes that line).
                let mut known = fill.map_or(0, |f| f.waiting());
                loop {
                    if out.len() >= full {
                        more = true;
                        break;
                    }
                    let Some(item) = ring.next() else { break };
                    // An 8-byte header, the record padded to 8 bytes.
                    let size = 8 + (item.len() as u64).next_multiple_of(8);
                    if let Some(fill) = fill
                        && read + size >= known
                    {
                        let waiting = fill.waiting();
                        if waiting == size && read > 0 {
                            // The last record: not consumed (aya consumes
                            // an item when it is dropped).
                            std::mem::forget(item);
                            break;
                        }
                        known = read + waiting;
                    }
                    read += size;
                    match decoder.write_json(&item, out) {
                        Ok(()) => batch.events += 1,
                        Err(_) => batch.malformed += 1,
                    }
                }
            }
            Source::Perf {
                buffers, scratch, ..
            } => {
                // Losses come from poll_ring_losses (the kernel's count),
                // not from LOST records (late, and the same samples).
                for buf in buffers.iter_mut() {
                    buf.get_mut()
                        .drain(scratch, |data| match decoder.write_json(data, out) {
                            Ok(()) => batch.events += 1,
                            Err(_) => batch.malformed += 1,
                        });
                }
            }
        }
        (batch, more, read)
    }

    /// Events lost since the last call: for ring buffers the reservation
    /// failures the gadget counted, for perf arrays the kernel's count of
    /// samples that did not fit (even when no later event arrives on that
    /// CPU). One syscall per buffer; call it at most a few times per second,
    /// and once when the run ends.
    pub fn poll_ring_losses(&mut self) -> u64 {
        if let Source::Perf {
            buffers,
            lost_reported,
            ..
        } = &mut self.source
        {
            let total: u64 = buffers
                .iter()
                .filter_map(|b| b.get_ref().lost_total().ok())
                .sum();
            let new = total.saturating_sub(*lost_reported);
            *lost_reported = total;
            return new;
        }
        let Source::Ring {
            lost_counter: Some(counter),
            lost_reported,
            ..
        } = &mut self.source
        else {
            return 0;
        };
        let Ok(values) = counter.get(&0, 0) else {
            return 0;
        };
        let total: u64 = values.iter().sum();
        let new = total.saturating_sub(*lost_reported);
        *lost_reported = total;
        new
    }
}

impl Source {
    /// Bytes waiting in a ring buffer; `None` for perf arrays and rings
    /// whose positions are not mapped (unknown).
    fn waiting(&self) -> Option<u64> {
        match self {
            Source::Ring { fill: Some(f), .. } => Some(f.waiting()),
            _ => None,
        }
    }
}
