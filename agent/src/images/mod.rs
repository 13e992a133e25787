//! Gadget images: the OCI format ([`format`]), content digests
//! ([`digest`]), the local OCI-layout store ([`store`]), OCI archives
//! ([`archive`]), image references ([`reference`]), registries
//! ([`registry`], [`credentials`]), the service tying them together
//! ([`service`]) and its D-Bus interface `org.gadgetd.Agent1.Images`
//! ([`interface`]); signatures ([`keys`], [`cosign_key`], [`signature`],
//! [`signatures`], D-Bus [`signing_interface`]) and the run policy ([`policy`]).

pub mod archive;
pub mod cosign_key;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod format;
pub mod interface;
pub mod keys;
pub mod policy;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod service;
pub mod signature;
pub mod signature_registry;
pub mod signatures;
pub mod signing_interface;
pub mod store;

pub use digest::Digest;
pub use error::{ImageError, Result};
pub use store::Store;
