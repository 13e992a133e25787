//! Run eBPF gadgets in your own process: the runtime under `gadgetd`,
//! without D-Bus, SQLite or HTTP (the seed's "Running Gadgets Directly").
//! A gadget is an eBPF ELF object written against the gadget C API
//! (`include/gadget/*.h`, Inspektor Gadget's API) and compiled with
//! `clang -g -target bpf`; its events are decoded generically from its BTF.
//!
//! Entry points, as in the seed: [`run_object`] (and, with the `oci`
//! feature, `run_image`) take [`Opts`] and return a [`Run`], a blocking
//! iterator of [`Record`]s. Underneath, [`Gadget::from_object`] (and
//! `Gadget::from_image` with `oci`) parse, and [`Gadget::start`] loads and
//! attaches; [`Running::next_record`] is the async iterator.
//!
//! Split like `aya-obj` and `aya`: these modules never touch the kernel and
//! work on any machine, without privileges:
//! * [`object`]: parse an ELF object (maps, programs, `.rodata`, BTF);
//! * [`classify`], [`kinds`]: its data sources (tracers, snapshotters,
//!   toppers, profilers) by the IG and seed naming conventions;
//! * [`layout`], [`params`], [`definition`]: the fields of an event, the
//!   `const volatile` parameters, the optional `gadget.yaml`;
//! * [`decode`]: a recorded event buffer to JSON.
//!
//! These need root (or CAP_BPF, CAP_PERFMON; tracepoints may mount
//! tracefs): [`load`] (aya, CO-RE against the kernel's BTF, attach every
//! program or fail), [`Gadget::start`], [`Running`], [`Run`];
//! [`mntns_filter`] and [`enrich`] are the hooks container filtering and
//! enrichment plug into (the `gadgetd-containers` crate implements them).
//! [`testing`] runs a gadget against a workload and returns what it captured.
//!
//! Errors are [`GadgetError`]s naming what failed (the map, program,
//! section, parameter or field) and, where there is one, what to do.
//!
//! Features: `oci` (images from the gadgetd store and registries, through
//! `gadgetd-images`); `bench-internals` (not API, for `benches/kinds.rs`).
//!
//! Runnable: `sudo cargo run -p gadgetd-runtime --example run_gadget --
//! build/gadgets/trace_open.o targ_pid=$$` (`make gadgets` first), and
//! `sudo cargo run -p gadgetd-runtime --features oci --example run_image --
//! trace_open`.
//!
//! ```no_run
//! # fn main() -> Result<(), gadgetd_runtime::GadgetError> {
//! use std::time::Duration;
//! use gadgetd_runtime::{Opts, Record, run_object};
//!
//! let mut opts = Opts::default();
//! opts.run.params.insert("targ_failed".into(), "true".into());
//! opts.timeout = Some(Duration::from_secs(10));
//! for record in run_object(std::fs::read("build/gadgets/trace_open.o")?, &opts)? {
//!     match record? {
//!         Record::Event(event) => println!("{} failed to open {}", event["comm"], event["fname"]),
//!         Record::Rows(table) => println!("{} rows", table.len()),
//!         Record::Lost(n) => eprintln!("{n} events lost"),
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod attach_target;
mod bare_loader;
mod btf_patch;
mod btf_table;
pub mod catchup;
pub mod classify;
pub mod contain;
// Public for the end-to-end tests, which check every bundled gadget's relocations.
#[doc(hidden)]
pub mod core_relo;
pub mod datasource;
pub mod decode;
pub mod definition;
mod direct;
pub mod endpoint;
pub mod enrich;
pub mod error;
mod externs;
pub mod follow_netns;
mod formats;
#[cfg(feature = "oci")]
pub mod image;
mod kconfig;
mod kernel_enums;
pub mod kinds;
pub mod layout;
pub mod load;
mod map_elem_iter;
pub mod markers;
pub mod metrics;
pub mod mntns_filter;
mod name_tables;
mod names;
pub mod net_dispatch;
pub mod object;
pub mod params;
mod perf_ring;
pub mod ring_size;
mod rtnl;
// Public for the end-to-end tests, which check that runs leave no pins behind.
#[doc(hidden)]
pub mod pin_dir;
mod profiler;
mod prog_array;
#[cfg(not(feature = "bench-internals"))]
mod rawmap;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod rawmap;
mod reader;
pub mod ring_fill;
mod runner;
mod sections;
#[cfg(not(feature = "bench-internals"))]
mod snapshot;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod snapshot;
pub mod socket_enricher;
mod stacks;
mod table_sort;
mod tag;
/// tc classifier attachment (public for the tests' clsact check).
pub mod tc;
mod tc_dispatch;
pub mod tc_follow;
pub mod testing;
pub mod ticks;
#[cfg(not(feature = "bench-internals"))]
mod topper;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod topper;
pub mod traceloop;
mod uprobe_symbol;
mod uprobe_target;
mod walltime;

#[cfg(feature = "oci")]
pub use direct::run_image;
pub use direct::{Opts, Run, run_object};
pub use error::{GadgetError, Result};
#[cfg(feature = "oci")]
pub use image::{ImageOptions, Pull};
pub use reader::Batch;
pub use runner::{Gadget, Kind, Record, RunOptions, Running, SourceCounts};
