//! Errors of the gadget runtime. Each names what failed and, where there is
//! one, what to do about it.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum GadgetError {
    #[error("not an eBPF ELF object: {0}")]
    NotElf(String),
    #[error(
        "the object has no .BTF section: compile the gadget with `clang -g -target bpf` so its types can be decoded"
    )]
    NoBtf,
    #[error("malformed BTF in the object: {0}")]
    Btf(String),
    #[error("map `{map}`: {reason}")]
    MapConvention { map: String, reason: String },
    #[error(
        "the object has no data source: declare a tracer (`GADGET_TRACER_MAP(events, bytes); GADGET_TRACER(name, events, event);`, or a `print_*` ring buffer whose value is the event struct), an iterator (`GADGET_ITER`), a map iterator (`GADGET_MAPITER`), a `stats_*` or a `hist_*` map"
    )]
    NoDataSource,
    /// An Inspektor Gadget marker global (`gadget_tracer_*`, ...) that is malformed
    /// or names a map, struct or program the object does not have.
    #[error("marker `{marker}`: {reason}")]
    Marker { marker: String, reason: String },
    #[error("field `{field}`: {reason}")]
    UnsupportedType { field: String, reason: String },
    #[error("definition file: {0}")]
    Definition(String),
    #[error("parameter `{name}`: {reason}")]
    Param { name: String, reason: String },
    #[error("loading the object into the kernel failed: {0}")]
    Load(String),
    #[error("program `{program}` (section `{section}`): {reason}")]
    Program {
        program: String,
        section: String,
        reason: String,
    },
    #[error("reading events from `{map}`: {reason}")]
    Reader { map: String, reason: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub type Result<T, E = GadgetError> = std::result::Result<T, E>;

/// Formats an error with its whole `source()` chain, which aya fills with the
/// part that matters (errno, path, verifier log).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
