//! The gadget runtime, split like aya: parsing ([`object`], [`classify`],
//! [`layout`], [`params`], [`definition`]) never touches the kernel;
//! [`load`] and [`reader`] do; [`runner`] ties them together.

pub mod btf_patch;
pub mod classify;
pub mod decode;
pub mod definition;
pub mod enrich;
pub mod error;
pub mod formats;
pub mod kernel_enums;
pub mod kinds;
pub mod layout;
pub mod load;
pub mod markers;
pub mod mntns_filter;
pub mod name_tables;
pub mod names;
pub mod object;
pub mod params;
pub mod pinning;
pub mod profiler;
pub mod rawmap;
pub mod reader;
pub mod runner;
pub mod snapshot;
pub mod stacks;
pub mod topper;
pub mod walltime;

pub use error::{GadgetError, Result};
pub use runner::{Gadget, Kind, Record, RunOptions, Running};
