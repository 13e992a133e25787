//! gadgetd: run eBPF gadgets packaged as ELF objects or OCI images.
//!
//! * [`runtime`]: the gadget runtime, usable without the daemon ("Running
//!   Gadgets Directly"): parse an object, classify its maps and programs,
//!   load and attach it with aya, read and decode its events from BTF.
//! * [`service`]: the `gadgetd` D-Bus service built on the runtime.
//! * [`testing`]: run a gadget against a workload and assert on what it captured.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gadgetd::runtime::GadgetError> {
//! use gadgetd::runtime::{Gadget, RunOptions, Record};
//! let gadget = Gadget::from_object(std::fs::read("trace_open.o")?, None)?;
//! let mut run = gadget.start(&RunOptions::default())?;
//! while let Some(record) = run.next_record().await? {
//!     if let Record::Event(event) = record {
//!         println!("{} opened {}", event["comm"], event["fname"]);
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod journal;
pub mod service;
pub mod state;

pub use gadgetd_containers as containers;
pub use gadgetd_images as images;
pub use gadgetd_runtime as runtime;
pub use gadgetd_runtime::testing;
