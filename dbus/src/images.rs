//! `org.gadgetd.Agent1.Images` on `/org/gadgetd/Agent1`: the local image
//! store and registries. Wire types and the typed proxy.
//!
//! Long operations (Pull, Push) report progress as newline-delimited JSON
//! [`Progress`] objects written to a file descriptor the caller passes (a
//! pipe; pass `/dev/null` for none). `Export` returns a descriptor from which
//! the caller reads an OCI archive (tar); `Import` reads one from the
//! descriptor the caller passes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use zbus::proxy;
use zbus::zvariant::{OwnedFd, Type, Value};

/// One row of `List`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ImageSummary {
    /// Full reference (`registry/repository:tag`); empty for untagged images.
    pub reference: String,
    /// Digest of the image index (or manifest).
    pub digest: String,
    /// Media type of what `digest` names.
    pub media_type: String,
    /// Bytes of all blobs of the image.
    pub size: u64,
    /// `amd64`, `arm64`, ... (empty when the manifest names none).
    pub architectures: Vec<String>,
    /// `org.opencontainers.image.created`, or empty.
    pub created: String,
}

/// One progress line of Pull/Push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The blob's digest.
    pub digest: String,
    /// `index`, `manifest`, `config`, `program` or `blob`.
    pub kind: String,
    /// One of [`progress_state`].
    pub state: String,
    pub done: u64,
    pub total: u64,
}

/// States of a [`Progress`] line.
pub mod progress_state {
    pub const DOWNLOADING: &str = "downloading";
    pub const UPLOADING: &str = "uploading";
    /// Already present (locally for a pull, in the registry for a push).
    pub const EXISTS: &str = "exists";
    pub const DONE: &str = "done";
}

/// Keys of the `options` dictionary of Pull/Push/Import.
pub mod image_options {
    /// `s`, Import: tag every imported image with this name instead of the
    /// archive's `org.opencontainers.image.ref.name` (only when it holds one image).
    pub const TAG: &str = "tag";
}

/// `org.gadgetd.Agent1.Images` (polkit: `org.gadgetd.manage-images` for
/// changes, `org.gadgetd.read` for List/Inspect/Resolve).
#[proxy(
    interface = "org.gadgetd.Agent1.Images",
    default_service = "org.gadgetd.Agent1",
    default_path = "/org/gadgetd/Agent1"
)]
pub trait Images {
    /// Pulls `reference` (all architectures) into the store. Returns the
    /// stored reference and its digest.
    fn pull(
        &self,
        reference: &str,
        options: HashMap<&str, Value<'_>>,
        progress: zbus::zvariant::Fd<'_>,
    ) -> zbus::Result<(String, String)>;

    /// Pushes a local image to the registry its reference names. Returns the
    /// pushed digest.
    fn push(
        &self,
        reference: &str,
        options: HashMap<&str, Value<'_>>,
        progress: zbus::zvariant::Fd<'_>,
    ) -> zbus::Result<String>;

    /// Imports an OCI archive read from `archive`. Returns (reference, digest)
    /// of each image (reference empty when untagged).
    fn import(
        &self,
        archive: zbus::zvariant::Fd<'_>,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<Vec<(String, String)>>;

    /// Exports images as one OCI archive; read it from the returned fd.
    fn export(&self, references: Vec<&str>) -> zbus::Result<OwnedFd>;

    /// Adds tag `target` to the local image `source`; returns the full target.
    fn tag(&self, source: &str, target: &str) -> zbus::Result<String>;

    /// Removes tags (or, by digest, every tag of an image), then deletes
    /// unreferenced blobs. Returns the removed references and bytes freed.
    fn remove(&self, references: Vec<&str>) -> zbus::Result<(Vec<String>, u64)>;

    fn list(&self) -> zbus::Result<Vec<ImageSummary>>;

    /// JSON: reference, digest, index/manifest, definition, programs, maps,
    /// params and fields of the host architecture's gadget.
    fn inspect(&self, reference: &str) -> zbus::Result<String>;

    /// The local image a name or digest (prefix) means, without pulling:
    /// (reference, digest). Fails with `...Error.FileNotFound` when absent.
    fn resolve(&self, reference: &str) -> zbus::Result<(String, String)>;

    /// Checks and stores credentials for a registry (`host[:port]`).
    fn login(&self, registry: &str, username: &str, password: &str) -> zbus::Result<()>;

    fn logout(&self, registry: &str) -> zbus::Result<()>;

    /// The prefix bare names (`trace_open`) resolve against.
    #[zbus(property)]
    fn default_registry(&self) -> zbus::Result<String>;
}
