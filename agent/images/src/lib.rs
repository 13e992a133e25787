//! Gadget images: eBPF gadgets packaged as OCI images (design.md, as in
//! the seed and Inspektor Gadget): an image index with one manifest per
//! architecture, each with the definition YAML as config and the ELF object
//! as its only layer. No kernel, no privileges.
//!
//! * [`format`](mod@format): the media types, assembling and parsing indexes and
//!   manifests; [`digest`]: `sha256:` content digests.
//! * [`store`]: a local OCI image layout (`oci-layout`, `index.json`,
//!   `blobs/sha256/`), readable by skopeo and oras; atomic commits, GC.
//! * [`archive`]: OCI archives (tar) for air-gapped hosts, deterministic.
//! * [`reference`](mod@reference), [`registry`], [`credentials`]: image names, pull and push
//!   over the OCI distribution API, registry logins.
//! * Signed images: [`keys`] and [`cosign_key`] (cosign's key formats),
//!   [`signature`] (cosign's payload and `sha256-HEX.sig` images),
//!   [`signatures`] (stored signatures, verification),
//!   [`signature_registry`] (they travel with pulls and pushes) and the run
//!   [`policy`] (`/etc/gadgetd/policy.d`); docs/signing.md.
//! * [`service`]: the store, registries and naming together, as gadgetd
//!   (and `gadgetd_runtime::Gadget::from_image`) use them.
//!
//! Errors are [`ImageError`]s naming the image, blob or registry and what
//! to do. Runnable: `cargo run -p gadgetd-images --example build_archive`.
//!
//! ```no_run
//! # fn main() -> gadgetd_images::Result<()> {
//! use gadgetd_images::Store;
//! let store = Store::open(std::path::Path::new("/var/lib/gadgetd/images"))?;
//! for image in store.entries()? {
//!     println!("{} {}", image.name.unwrap_or_default(), image.descriptor.digest);
//! }
//! # Ok(()) }
//! ```

pub mod archive;
pub mod atomic_file;
pub mod config;
pub mod cosign_key;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod format;
pub mod keys;
pub mod manifest_fetch;
pub mod policy;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod registry_http;
pub mod service;
pub mod signature;
pub mod signature_registry;
pub mod signatures;
pub mod store;

pub use digest::Digest;
pub use error::{ImageError, Result};
pub use store::Store;
