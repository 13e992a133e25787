//! Reading tracer buffers asynchronously and decoding straight into a byte
//! buffer of JSON lines.
//!
//! Gadgets built with `gadget/buffer.h` batch their wake-ups, so the reader
//! wakes on readiness *or* on a short tick, then drains everything. Losses
//! are counted from the kernel's per-event lost count for perf arrays
//! (perf_ring.rs) and from the per-CPU `<map>_lost_samples` counter the
//! headers maintain for ring buffers.

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

/// How often to drain when the kernel side does not wake us.
pub const DRAIN_TICK: Duration = Duration::from_millis(20);
/// Stop decoding into one batch after this many bytes.
const BATCH_BYTES: usize = 256 * 1024;
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
}

enum Source {
    Ring {
        // Boxed: the ring is much larger than the perf variant, and one
        // indirection per drain is nothing.
        ring: Box<AsyncFd<RingBuf<MapData>>>,
        lost_counter: Option<PerCpuArray<MapData, u64>>,
        lost_reported: u64,
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
    tick: tokio::time::Interval,
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
                let ring =
                    RingBuf::try_from(map).map_err(|e| reader_err(&tracer.map, chain(&e)))?;
                let lost_counter = ebpf
                    .take_map(&format!("{}_lost_samples", tracer.map))
                    .and_then(|m| PerCpuArray::<MapData, u64>::try_from(m).ok());
                Source::Ring {
                    ring: Box::new(register(ring)?),
                    lost_counter,
                    lost_reported: 0,
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
        let mut tick = tokio::time::interval(DRAIN_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(EventReader {
            source,
            decoder,
            tick,
        })
    }

    /// Waits until a buffer is readable or the drain tick fires; polled to
    /// wait on several readers at once.
    pub fn poll_wait(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let EventReader { source, tick, .. } = self;
        let mut ready = false;
        match source {
            Source::Ring { ring, .. } => {
                if let Poll::Ready(Ok(mut guard)) = ring.poll_read_ready(cx) {
                    guard.clear_ready();
                    ready = true;
                }
            }
            Source::Perf { buffers, .. } => {
                for b in buffers.iter() {
                    if let Poll::Ready(Ok(mut guard)) = b.poll_read_ready(cx) {
                        guard.clear_ready();
                        ready = true;
                    }
                }
            }
        }
        if tick.poll_tick(cx).is_ready() {
            ready = true;
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Decodes what is buffered (up to a batch) into `out` as JSON lines.
    pub fn drain(&mut self, out: &mut Vec<u8>) -> Batch {
        let mut batch = Batch::default();
        let decoder = &self.decoder;
        match &mut self.source {
            Source::Ring { ring, .. } => {
                let ring = ring.get_mut();
                while out.len() < BATCH_BYTES {
                    let Some(item) = ring.next() else { break };
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
        batch
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
