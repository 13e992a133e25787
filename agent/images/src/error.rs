//! Errors of the image store and registries. Each message says what failed
//! and, where it helps, what to do.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ImageError {
    #[error("bad digest: {0}")]
    BadDigest(String),
    #[error(
        "content does not match its digest: expected {expected}, got {actual} (corrupted or tampered blob; nothing was stored)"
    )]
    DigestMismatch { expected: String, actual: String },
    #[error("invalid image reference `{reference}`: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("image `{0}` not found locally (see `gadgetctl image list`, or pull it)")]
    NotFound(String),
    #[error("`{0}` matches several images; use more of the digest or a full tag")]
    Ambiguous(String),
    #[error("invalid image: {0}")]
    Invalid(String),
    #[error("image has no manifest for {wanted} (it has: {have})")]
    NoPlatform { wanted: String, have: String },
    #[error("invalid archive: {0}")]
    Archive(String),
    #[error("registry {registry}: {reason}")]
    Registry { registry: String, reason: String },
    /// The registry (its token endpoint) refused the credentials given.
    #[error("registry {registry}: {reason}")]
    CredentialsRejected { registry: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Adds a context (usually the path) to io errors.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| ImageError::Io {
            context: context(),
            source,
        })
    }
}

impl ImageError {
    /// Whether this is the file system saying it is full (ENOSPC, EDQUOT).
    pub fn is_no_space(&self) -> bool {
        matches!(self, ImageError::Io { source, .. }
        if source.raw_os_error().is_some_and(|e| {
            e == nix::errno::Errno::ENOSPC as i32 || e == nix::errno::Errno::EDQUOT as i32
        }))
    }
}
