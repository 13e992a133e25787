//! `org.gadgetd.Agent1.Signatures` on `/org/gadgetd/Agent1`: the payload to
//! sign for a local image, storing (and uploading) a signature made by the
//! client, verifying an image's signatures, and the run policy's verdict.
//! Private keys never reach the agent: `gadgetctl image sign` signs.

use std::collections::HashMap;
use std::sync::Arc;

use gadgetd_dbus::signatures::signature_options;
use serde_json::json;
use zbus::message::Header as MsgHeader;
use zbus::zvariant::OwnedValue;
use zbus::{Connection, fdo, interface};

use super::authz::{ACTION_MANAGE_IMAGES, ACTION_READ};
use super::image_calls::{ImageCalls, blocking, to_fdo};
use crate::images::digest::Digest;
use crate::images::error::{ImageError, Result};
use crate::images::keys::PublicKey;
use crate::images::progress::ProgressSink;
use crate::images::reference::Reference;
use crate::images::service::ImageService;
use crate::images::signature;
use crate::images::signatures::{self, TrustedKey};
use crate::service::Agent;

/// Most public keys one Verify call takes.
const MAX_KEYS: usize = 64;

/// `org.gadgetd.Agent1.Signatures`.
pub struct Signatures(ImageCalls);

impl Signatures {
    pub fn new(agent: &Arc<Agent>, svc: &Arc<ImageService>) -> Signatures {
        Signatures(ImageCalls::new(agent, svc))
    }
}

/// A local image's name (or digest when untagged) and digest.
fn target(svc: &ImageService, image: &str) -> Result<(String, Digest)> {
    let (entry, _) = svc.resolve_local(image)?;
    if entry
        .name
        .as_deref()
        .and_then(signature::signed_digest)
        .is_some()
    {
        return Err(ImageError::Invalid(format!(
            "`{image}` is a signature image; name the image it signs"
        )));
    }
    let digest = entry.descriptor.digest()?;
    Ok((entry.name.unwrap_or_else(|| digest.to_string()), digest))
}

/// The reference of `name` parsed, for the repository and registry.
fn parsed(svc: &ImageService, name: &str) -> Result<Reference> {
    svc.normalize(name).map_err(|_| {
        ImageError::Invalid(format!(
            "`{name}` has no repository name; tag the image first (`gadgetctl tag {name} REGISTRY/NAME:TAG`)"
        ))
    })
}

/// What the policy says about running `name` at `digest`, as JSON.
pub fn policy_json(svc: &ImageService, name: &str, digest: &Digest) -> serde_json::Value {
    match svc.policy.current() {
        Err(e) => json!({"admitted": false, "reason": e}),
        Ok(p) => match p.admit_image(&svc.store, name, digest) {
            Ok(a) => {
                json!({"admitted": true, "reason": format!("{a:?}"), "verifyImage": p.verify_image})
            }
            Err(e) => json!({"admitted": false, "reason": e, "verifyImage": p.verify_image}),
        },
    }
}

#[interface(name = "org.gadgetd.Agent1.Signatures")]
impl Signatures {
    /// The cosign payload to sign for local image `image`: (reference,
    /// digest, payload bytes).
    async fn payload(
        &self,
        image: String,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<(String, String, Vec<u8>)> {
        self.0
            .authorized_blocking(conn, &hdr, ACTION_READ, move |svc| {
                let (name, digest) = target(svc, &image)?;
                let r = parsed(svc, &name)?;
                let repo = format!("{}/{}", r.registry(), r.repository());
                Ok((name, digest.to_string(), signature::payload(&repo, &digest)))
            })
            .await
    }

    /// Stores `signature` (raw: DER ECDSA or 64-byte Ed25519) of `payload`
    /// beside local image `image`, in its signature image
    /// `REPO:sha256-HEX.sig`. Option `upload` (b) also pushes that to the
    /// image's registry. Returns the signature image's name.
    async fn attach(
        &self,
        image: String,
        payload: Vec<u8>,
        signature: Vec<u8>,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        let caller = self.0.authorize(conn, &hdr, ACTION_MANAGE_IMAGES).await?;
        let mut upload = false;
        for (k, v) in &options {
            match k.as_str() {
                signature_options::UPLOAD => {
                    upload = bool::try_from(v).map_err(|_| {
                        fdo::Error::InvalidArgs(format!("option {k} must be a boolean (b)"))
                    })?
                }
                other => return Err(fdo::Error::InvalidArgs(format!("unknown option `{other}`"))),
            }
        }
        let svc = self.0.svc.clone();
        let (entry, r, digest) = blocking(move || {
            let (name, digest) = target(&svc, &image)?;
            let r = parsed(&svc, &name)?;
            let repo = format!("{}/{}", r.registry(), r.repository());
            let entry = signatures::attach(&svc.store, &repo, &digest, &payload, &signature)?;
            Ok((entry, r, digest))
        })
        .await?;
        let name = entry.name.clone().unwrap_or_default();
        tracing::info!(image = %r, digest = %digest, signatures = %name, uid = caller.uid, "signature stored");
        if upload {
            let target = Reference::with_tag(
                r.registry().into(),
                r.repository().into(),
                signature::tag_for(&digest),
            );
            self.0
                .svc
                .registries
                .push(
                    &self.0.svc.store,
                    &entry,
                    &target,
                    &mut ProgressSink::none(),
                )
                .await
                .map_err(to_fdo)?;
            tracing::info!(signatures = %target, "signature uploaded");
        }
        Ok(name)
    }

    /// Checks the stored signatures of local image `image` against
    /// `public_keys` (PEM texts; empty: the policy's keys for the image).
    /// JSON: reference, digest, signatures, verified (key, fingerprint,
    /// dockerReference, source), problems, policy (admitted, reason).
    async fn verify(
        &self,
        image: String,
        public_keys: Vec<String>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.0.authorize(conn, &hdr, ACTION_READ).await?;
        if public_keys.len() > MAX_KEYS {
            return Err(fdo::Error::InvalidArgs(format!(
                "at most {MAX_KEYS} keys per call"
            )));
        }
        let keys = public_keys
            .iter()
            .enumerate()
            .map(|(i, pem)| {
                PublicKey::from_pem(pem.as_bytes())
                    .map(|key| TrustedKey {
                        label: format!("key {}", i + 1),
                        key,
                    })
                    .map_err(|e| fdo::Error::InvalidArgs(format!("key {}: {e}", i + 1)))
            })
            .collect::<fdo::Result<Vec<_>>>()?;
        let svc = self.0.svc.clone();
        blocking(move || {
            let (name, digest) = target(&svc, &image)?;
            let keys = if keys.is_empty() {
                svc.policy
                    .current()
                    .map(|p| p.keys_for(&name))
                    .unwrap_or_default()
            } else {
                keys
            };
            let verdict = signatures::verify(&svc.store, &digest, &keys)?;
            Ok(json!({
                "reference": name,
                "digest": digest.to_string(),
                "signatures": verdict.signatures,
                "verified": verdict.verified,
                "problems": verdict.problems,
                "refusal": (!verdict.ok()).then(|| verdict.refusal()),
                "policy": policy_json(&svc, &name, &digest),
            })
            .to_string())
        })
        .await
    }
}

/// `signatures` of `gadgetctl image inspect`: how many signatures the store
/// holds for the image, which verify with the policy's keys for it, and the
/// policy's decision.
pub fn signature_status(
    svc: &ImageService,
    entry: &crate::images::store::Entry,
) -> serde_json::Value {
    let Ok(digest) = entry.descriptor.digest() else {
        return serde_json::Value::Null;
    };
    let name = entry.name.clone().unwrap_or_else(|| digest.to_string());
    let keys = svc
        .policy
        .current()
        .map(|p| p.keys_for(&name))
        .unwrap_or_default();
    match signatures::verify(&svc.store, &digest, &keys) {
        Ok(v) => json!({
            "count": v.signatures,
            "verified": v.verified,
            "problems": v.problems,
            "policy": policy_json(svc, &name, &digest),
        }),
        Err(e) => json!({"error": e.to_string()}),
    }
}
