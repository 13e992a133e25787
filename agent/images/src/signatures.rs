//! Signatures in the local store: adding one beside an image, finding every
//! signature of a digest, and checking them against trusted keys.

use serde::Serialize;

use super::digest::Digest;
use super::error::{ImageError, Result};
use super::format::{self, Descriptor};
use super::keys::PublicKey;
use super::signature::{self, SignatureLayer};
use super::store::{Entry, Store};

/// A public key the caller or the policy trusts, with a label naming where
/// it came from (a file path, `key 1`, ...).
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub label: String,
    pub key: PublicKey,
}

/// A signature that verified.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    /// The trusted key's label.
    pub key: String,
    /// `sha256:` of the key's DER SubjectPublicKeyInfo.
    pub fingerprint: String,
    /// `critical.identity.docker-reference` of the payload.
    pub docker_reference: String,
    /// The store name of the signature image.
    pub source: String,
}

/// The result of checking every signature of a digest.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub digest: String,
    /// Signature layers found in the store.
    pub signatures: usize,
    pub verified: Vec<Verified>,
    /// Why the other signatures did not verify.
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        !self.verified.is_empty()
    }

    /// One sentence for errors: why `digest` is not verified.
    pub fn refusal(&self) -> String {
        if self.signatures == 0 {
            format!("image {} has no signature", self.digest)
        } else {
            format!(
                "no signature of image {} verifies with a trusted key ({})",
                self.digest,
                self.problems.join("; ")
            )
        }
    }
}

/// The signature images in the store for `digest` (any repository).
pub fn signature_entries(store: &Store, digest: &Digest) -> Result<Vec<Entry>> {
    Ok(store
        .entries()?
        .into_iter()
        .filter(|e| {
            e.name
                .as_deref()
                .and_then(signature::signed_digest)
                .is_some_and(|d| &d == digest)
        })
        .collect())
}

/// Serializes read-modify-write of signature images in this process (two
/// signers of one image must not lose a signature).
pub fn writer_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stores a signature of `digest` (made over `payload`) in the signature
/// image of `repository`, beside existing ones. The payload must be cosign's
/// and name `digest`. Returns the signature image's entry.
pub fn attach(
    store: &Store,
    repository: &str,
    digest: &Digest,
    payload: &[u8],
    sig: &[u8],
) -> Result<Entry> {
    signature::check_payload(payload, digest)?;
    if sig.is_empty() || sig.len() > 1024 {
        return Err(ImageError::Invalid(format!(
            "a signature of {} bytes is not an ECDSA or Ed25519 signature",
            sig.len()
        )));
    }
    let name = signature::store_name(repository, digest);
    let _writer = writer_lock();
    let existing = match store.resolve(&name) {
        Ok(e) => Some(format::parse_manifest(
            &store.read_blob(&e.descriptor.digest()?)?,
        )?),
        Err(ImageError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let image = signature::add_signature(existing.as_ref(), payload, sig);
    let mut staging = store.staging()?;
    for b in &image.blobs {
        staging.put(b)?;
    }
    staging.put(&image.manifest)?;
    let desc = Descriptor::new(format::MANIFEST_MEDIA_TYPE, &image.manifest);
    store.commit(&staging, &[(Some(name.clone()), desc.clone())])?;
    Ok(Entry {
        name: Some(name),
        descriptor: desc,
    })
}

/// Every signature layer of `digest` in the store, with its source name.
fn layers_of(store: &Store, digest: &Digest) -> Result<Vec<(String, SignatureLayer)>> {
    let mut out = Vec::new();
    for e in signature_entries(store, digest)? {
        let name = e.name.clone().unwrap_or_default();
        let m = format::parse_manifest(&store.read_blob(&e.descriptor.digest()?)?)?;
        out.extend(signature::layers(&m).into_iter().map(|l| (name.clone(), l)));
    }
    Ok(out)
}

/// Checks every stored signature of `digest` against `keys`.
pub fn verify(store: &Store, digest: &Digest, keys: &[TrustedKey]) -> Result<Verdict> {
    let layers = layers_of(store, digest)?;
    let mut verdict = Verdict {
        digest: digest.to_string(),
        signatures: layers.len(),
        verified: Vec::new(),
        problems: Vec::new(),
    };
    for (source, layer) in layers {
        match check_layer(store, digest, &layer, keys) {
            Ok((key, docker_reference)) => verdict.verified.push(Verified {
                key: key.label.clone(),
                fingerprint: key.key.fingerprint(),
                docker_reference,
                source,
            }),
            Err(problem) => verdict.problems.push(problem),
        }
    }
    Ok(verdict)
}

/// The key that verifies one layer, or why none does.
fn check_layer<'k>(
    store: &Store,
    digest: &Digest,
    layer: &SignatureLayer,
    keys: &'k [TrustedKey],
) -> std::result::Result<(&'k TrustedKey, String), String> {
    let sig = layer.signature.as_ref().map_err(Clone::clone)?;
    let payload = layer
        .payload
        .digest()
        .and_then(|d| store.read_blob(&d))
        .map_err(|e| format!("signature payload {}: {e}", layer.payload.digest))?;
    let claims = signature::check_payload(&payload, digest).map_err(|e| match e {
        ImageError::Invalid(m) => m,
        other => other.to_string(),
    })?;
    let mut reasons = Vec::new();
    for k in keys {
        match k.key.verify(&payload, sig) {
            Ok(()) => return Ok((k, claims.critical.identity.docker_reference)),
            Err(e) => reasons.push(format!("{}: {e}", k.label)),
        }
    }
    if keys.is_empty() {
        return Err("no trusted key to check it with".into());
    }
    Err(format!(
        "signature in {} does not verify ({})",
        layer.payload.digest,
        reasons.join(", ")
    ))
}

/// Whether `e` is a signature image (`REPO:sha256-HEX.sig`).
pub fn is_signature_entry(e: &Entry) -> bool {
    e.name
        .as_deref()
        .and_then(signature::signed_digest)
        .is_some()
}

/// The signature images of `images` (for exports), each once.
pub fn with_signatures(
    store: &Store,
    images: &[(Option<String>, Descriptor)],
) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    for (_, desc) in images {
        for e in signature_entries(store, &desc.digest()?)? {
            if !out.iter().any(|o| o.name == e.name) && !images.iter().any(|(n, _)| n == &e.name) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// Names of signature images whose image is no longer in the store.
pub fn orphaned(store: &Store) -> Result<Vec<String>> {
    let entries = store.entries()?;
    Ok(entries
        .iter()
        .filter_map(|e| {
            let name = e.name.as_deref()?;
            let signed = signature::signed_digest(name)?;
            let present = entries
                .iter()
                .any(|o| !is_signature_entry(o) && o.descriptor.digest == signed.as_str());
            (!present).then(|| name.to_string())
        })
        .collect())
}
