//! `org.gadgetd.Agent1.Signatures` on `/org/gadgetd/Agent1`: cosign-format
//! image signatures (docs/signing.md). The client signs (private keys never
//! reach the agent); the agent stores signatures beside the image, uploads
//! them, verifies them and enforces the run policy.

use std::collections::HashMap;

use zbus::proxy;
use zbus::zvariant::Value;

/// Keys of the `options` dictionary of `Attach`.
pub mod signature_options {
    /// `b`: also push the signature image to the image's registry.
    pub const UPLOAD: &str = "upload";
}

/// `org.gadgetd.Agent1.Signatures` (polkit: `org.gadgetd.manage-images` for
/// `Attach`, `org.gadgetd.read` for `Payload` and `Verify`).
#[proxy(
    interface = "org.gadgetd.Agent1.Signatures",
    default_service = "org.gadgetd.Agent1",
    default_path = "/org/gadgetd/Agent1"
)]
pub trait Signatures {
    /// The payload to sign for a local image: (reference, digest, cosign's
    /// simple-signing JSON bytes).
    fn payload(&self, image: &str) -> zbus::Result<(String, String, Vec<u8>)>;

    /// Stores a signature (raw bytes: ASN.1 DER ECDSA P-256 or 64-byte
    /// Ed25519) of `payload` in the image's signature image
    /// `REPO:sha256-HEX.sig`; returns that name.
    fn attach(
        &self,
        image: &str,
        payload: &[u8],
        signature: &[u8],
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<String>;

    /// JSON verdict of the image's stored signatures against `public_keys`
    /// (PEM texts; none: the policy's keys), and the run policy's decision.
    fn verify(&self, image: &str, public_keys: Vec<&str>) -> zbus::Result<String>;
}
