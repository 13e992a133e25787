//! The seed's "Running Gadgets Directly", in its shape: one call parses,
//! loads and attaches a gadget ([`run_object`], or `run_image` with the
//! `oci` feature) with [`Opts`], and the returned [`Run`] is a blocking
//! iterator of [`Record`]s (`next()`), with `done()` and `close()`.
//!
//! ```no_run
//! # fn demo() -> Result<(), gadgetd_runtime::GadgetError> {
//! use std::time::Duration;
//! use gadgetd_runtime::{Opts, Record, run_object};
//!
//! let mut opts = Opts::default();
//! opts.run.params.insert("targ_pid".into(), "1234".into());
//! opts.timeout = Some(Duration::from_secs(5));
//! let mut run = run_object(std::fs::read("build/gadgets/trace_open.o")?, &opts)?;
//! for record in &mut run {
//!     if let Record::Event(event) = record? {
//!         println!("{} opened {}", event["comm"], event["fname"]);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The async API underneath is [`Gadget::start`] and [`Running::next_record`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::runner::{Gadget, Record, RunOptions, Running};

/// Options of [`run_object`] and `run_image` (feature `oci`).
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// Parameters, filters, ring buffer size, topper interval and sort.
    pub run: RunOptions,
    /// [`run_object`] only: the definition YAML (`gadget.yaml`); `None`:
    /// everything is derived from the object's BTF. Images carry their own.
    pub definition: Option<String>,
    /// Stop after this long (what remains, e.g. a profiler's histograms, is
    /// still yielded); `None`: run until the gadget ends (a snapshot was
    /// taken) or the caller stops iterating.
    pub timeout: Option<Duration>,
    /// [`run_image`] only: where images are stored and pulled from.
    #[cfg(feature = "oci")]
    pub image: crate::image::ImageOptions,
}

/// A running gadget, as a blocking iterator of records. Owns a
/// single-threaded tokio runtime that drives the readers while `next()`
/// blocks. Dropping it detaches and unloads every program.
pub struct Run {
    // Field order matters: the readers go before the runtime they are registered with.
    running: Running,
    gadget: Gadget,
    deadline: Option<Instant>,
    /// What [`Running::finish`] returned, handed out before `None`.
    tail: VecDeque<Record>,
    stopped: bool,
    rt: tokio::runtime::Runtime,
}

/// Parses `object` (an eBPF ELF object built against the gadget C API),
/// loads and attaches it. Blocking; needs root (or CAP_BPF and
/// CAP_PERFMON). Errors: [`GadgetError`](crate::GadgetError) naming what
/// in the object or options is wrong, or what the kernel refused.
pub fn run_object(object: Vec<u8>, opts: &Opts) -> Result<Run> {
    let gadget = Gadget::from_object(object, opts.definition.as_deref())?;
    Run::start(gadget, opts, runtime()?)
}

/// Like [`run_object`], for a gadget image: `reference` is a name
/// (`trace_open`, resolved with [`ImageOptions::default_registry`](crate::image::ImageOptions)),
/// a full reference (`ghcr.io/me/gadget:v1`) or a digest prefix of a local
/// image; pulled per [`ImageOptions::pull`](crate::image::ImageOptions).
#[cfg(feature = "oci")]
pub fn run_image(reference: &str, opts: &Opts) -> Result<Run> {
    let rt = runtime()?;
    let gadget = rt.block_on(Gadget::from_image(reference, &opts.image))?;
    Run::start(gadget, opts, rt)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

impl Run {
    fn start(gadget: Gadget, opts: &Opts, rt: tokio::runtime::Runtime) -> Result<Run> {
        let running = {
            let _guard = rt.enter();
            gadget.start(&opts.run)?
        };
        Ok(Run {
            running,
            gadget,
            deadline: opts.timeout.map(|t| Instant::now() + t),
            tail: VecDeque::new(),
            stopped: false,
            rt,
        })
    }

    /// The gadget: name, kind, parameters, fields.
    pub fn gadget(&self) -> &Gadget {
        &self.gadget
    }

    /// True once the gadget ended (or the timeout passed) and every record
    /// was handed out.
    pub fn done(&self) -> bool {
        self.stopped && self.tail.is_empty()
    }

    /// Stops the gadget and returns what it still had (a profiler's
    /// histograms, events already read, a final loss report). Dropping a
    /// `Run` stops it as well, discarding those.
    pub fn close(mut self) -> Result<Vec<Record>> {
        if !self.stopped {
            self.stop()?;
        }
        Ok(self.tail.drain(..).collect())
    }

    fn stop(&mut self) -> Result<()> {
        self.stopped = true;
        self.tail.extend(self.running.finish()?);
        let lost = self.running.final_losses();
        if lost > 0 {
            self.tail.push_back(Record::Lost(lost));
        }
        Ok(())
    }
}

impl Iterator for Run {
    type Item = Result<Record>;

    /// Blocks until the next record; `None` when [`Run::done`].
    fn next(&mut self) -> Option<Result<Record>> {
        if let Some(rec) = self.tail.pop_front() {
            return Some(Ok(rec));
        }
        if self.stopped {
            return None;
        }
        let running = &mut self.running;
        let step = match self.deadline {
            Some(at) => self.rt.block_on(async {
                tokio::time::timeout_at(at.into(), running.next_record())
                    .await
                    .unwrap_or(Ok(None))
            }),
            None => self.rt.block_on(running.next_record()),
        };
        match step {
            Ok(Some(rec)) => Some(Ok(rec)),
            Ok(None) => match self.stop() {
                Ok(()) => self.tail.pop_front().map(Ok),
                Err(e) => Some(Err(e)),
            },
            Err(e) => {
                self.stopped = true;
                Some(Err(e))
            }
        }
    }
}
