//! Errors of the gadget runtime. Each names what failed and, where there is
//! one, what to do about it.

use std::io;

/// Why a gadget cannot be parsed, started or read. The message names the
/// map, program, section, parameter or field, and what to do where there is
/// something to do.
#[derive(Debug, thiserror::Error)]
pub enum GadgetError {
    /// The bytes are not an eBPF ELF object (the parser's reason).
    #[error("not an eBPF ELF object: {0}")]
    NotElf(String),
    #[error(
        "the object has no .BTF section: compile the gadget with `clang -g -target bpf` so its types can be decoded"
    )]
    /// The object has no `.BTF` section (compiled without `-g`).
    NoBtf,
    /// The object's BTF does not parse.
    #[error("malformed BTF in the object: {0}")]
    Btf(String),
    /// A map breaks the naming or type conventions of its kind.
    #[error("map `{map}`: {reason}")]
    MapConvention {
        /// The map's name.
        map: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    #[error(
        "the object has no data source: declare a tracer (`GADGET_TRACER_MAP(events, bytes); GADGET_TRACER(name, events, event);`, or a `print_*` ring buffer whose value is the event struct), an iterator (`GADGET_ITER`), a map iterator (`GADGET_MAPITER`), a `stats_*` or a `hist_*` map"
    )]
    /// No tracer, snapshotter, topper or profiler was found.
    NoDataSource,
    /// An Inspektor Gadget marker global (`gadget_tracer_*`, ...) that is malformed
    /// or names a map, struct or program the object does not have.
    #[error("marker `{marker}`: {reason}")]
    Marker {
        /// The marker's whole name.
        marker: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A field of the event has a type the decoder cannot turn into JSON.
    #[error("field `{field}`: {reason}")]
    UnsupportedType {
        /// The field's dotted name.
        field: String,
        /// The type and why.
        reason: String,
    },
    /// The definition YAML is invalid or names what the object lacks.
    #[error("definition file: {0}")]
    Definition(String),
    /// A parameter value (or name) is not accepted.
    #[error("parameter `{name}`: {reason}")]
    Param {
        /// The parameter as given.
        name: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The kernel refused the object (verifier log, errno).
    #[error("loading the object into the kernel failed: {0}")]
    Load(String),
    #[error("program `{program}` (section `{section}`): {reason}")]
    /// A program could not be loaded or attached (every program must).
    Program {
        /// The program's (function's) name.
        program: String,
        /// Its ELF section, which says where it attaches.
        section: String,
        /// The kernel's reason.
        reason: String,
    },
    /// A buffer or map could not be read while running.
    #[error("reading events from `{map}`: {reason}")]
    Reader {
        /// The map read.
        map: String,
        /// Why.
        reason: String,
    },
    /// A gadget image could not be found, pulled or read (feature `oci`).
    #[error("image `{reference}`: {reason}")]
    Image {
        /// The reference as given.
        reference: String,
        /// Not found, registry or store error.
        reason: String,
    },
    /// An I/O error (reading a file, creating the tokio runtime, ...).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl GadgetError {
    /// The same error, saying which data source it concerns (for gadgets
    /// with several): the variant, and so how callers classify it, stays.
    pub fn in_datasource(self, name: &str) -> GadgetError {
        let tag = |reason: String| format!("{reason} (data source `{name}`)");
        match self {
            GadgetError::Btf(r) => GadgetError::Btf(tag(r)),
            GadgetError::Load(r) => GadgetError::Load(tag(r)),
            GadgetError::Definition(r) => GadgetError::Definition(tag(r)),
            GadgetError::MapConvention { map, reason } => GadgetError::MapConvention {
                map,
                reason: tag(reason),
            },
            GadgetError::UnsupportedType { field, reason } => GadgetError::UnsupportedType {
                field,
                reason: tag(reason),
            },
            GadgetError::Param { name: n, reason } => GadgetError::Param {
                name: n,
                reason: tag(reason),
            },
            GadgetError::Reader { map, reason } => GadgetError::Reader {
                map,
                reason: tag(reason),
            },
            other => other,
        }
    }
}

/// `Result` with [`GadgetError`].
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
