//! The gadget runtime, split like aya: parsing ([`object`], [`classify`],
//! [`layout`], [`params`], [`definition`]) never touches the kernel;
//! [`load`] and [`reader`] do; [`runner`] ties them together.

mod btf_patch;
pub mod classify;
pub mod decode;
pub mod definition;
mod direct;
pub mod enrich;
pub mod error;
#[cfg(feature = "oci")]
pub mod image;
mod kernel_enums;
pub mod kinds;
pub mod layout;
pub mod load;
pub mod mntns_filter;
mod name_tables;
mod names;
pub mod object;
pub mod params;
mod profiler;
#[cfg(not(feature = "bench-internals"))]
mod rawmap;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod rawmap;
mod reader;
mod runner;
#[cfg(not(feature = "bench-internals"))]
mod snapshot;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod snapshot;
mod stacks;
pub mod testing;
#[cfg(not(feature = "bench-internals"))]
mod topper;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod topper;
mod walltime;

#[cfg(feature = "oci")]
pub use direct::run_image;
pub use direct::{Opts, Run, run_object};
pub use error::{GadgetError, Result};
#[cfg(feature = "oci")]
pub use image::{ImageOptions, Pull};
pub use reader::Batch;
pub use runner::{Gadget, Kind, Record, RunOptions, Running};
