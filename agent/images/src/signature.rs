//! cosign's signature format, so images signed here verify with cosign and
//! the other way round:
//!
//! - the signed **payload** is the "simple signing" JSON
//!   `{"critical":{"identity":{"docker-reference":REPO},"image":{"docker-manifest-digest":DIGEST},"type":"cosign container image signature"},"optional":null}`;
//! - signatures of image `REPO@sha256:HEX` live in the **signature image**
//!   tagged `REPO:sha256-HEX.sig`: an OCI manifest with one layer per
//!   signature, each layer the payload (media type
//!   `application/vnd.dev.cosign.simplesigning.v1+json`) with the base64
//!   signature in annotation `dev.cosignproject.cosign/signature`.
//!
//! In the local store the signature image is an entry like any other,
//! named `REPO:sha256-HEX.sig`, so pulls, exports and imports carry it.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::{ImageError, Result};
use super::format::{self, Descriptor, Manifest};

/// Media type of a signature layer (the payload).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation holding the base64 signature of a layer.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of cosign's payload.
pub const COSIGN_PAYLOAD_TYPE: &str = "cosign container image signature";
/// Media type of the signature image's config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Largest payload accepted (cosign's are ~250 bytes).
pub const MAX_PAYLOAD_BYTES: usize = 64 << 10;

/// The tag cosign stores signatures of `digest` under: `sha256-HEX.sig`.
pub fn tag_for(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// The store name of the signatures of `repository`@`digest`.
pub fn store_name(repository: &str, digest: &Digest) -> String {
    format!("{repository}:{}", tag_for(digest))
}

/// When `name` (a store name) is a signature image: the signed digest.
pub fn signed_digest(name: &str) -> Option<Digest> {
    let (_, tag) = name.rsplit_once(':')?;
    let hex = tag.strip_prefix("sha256-")?.strip_suffix(".sig")?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// The payload cosign signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    #[serde(default)]
    pub optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: ImageClaim,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageClaim {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

/// The payload bytes for `repository` (registry/repo, no tag) at `digest`,
/// byte for byte what cosign writes.
pub fn payload(repository: &str, digest: &Digest) -> Vec<u8> {
    let p = SimpleSigning {
        critical: Critical {
            identity: Identity {
                docker_reference: repository.into(),
            },
            image: ImageClaim {
                docker_manifest_digest: digest.to_string(),
            },
            kind: COSIGN_PAYLOAD_TYPE.into(),
        },
        optional: None,
    };
    serde_json::to_vec(&p).expect("the payload serializes")
}

/// Parses a payload and checks it is cosign's kind and names `expected`.
pub fn check_payload(bytes: &[u8], expected: &Digest) -> Result<SimpleSigning> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(ImageError::Invalid(format!(
            "signature payload is {} bytes (at most {MAX_PAYLOAD_BYTES})",
            bytes.len()
        )));
    }
    let p: SimpleSigning = serde_json::from_slice(bytes).map_err(|e| {
        ImageError::Invalid(format!(
            "malformed signature payload (not cosign's simple signing JSON): {e}"
        ))
    })?;
    if p.critical.kind != COSIGN_PAYLOAD_TYPE {
        return Err(ImageError::Invalid(format!(
            "signature payload type is `{}`, not `{COSIGN_PAYLOAD_TYPE}`",
            p.critical.kind.escape_debug()
        )));
    }
    if p.critical.image.docker_manifest_digest != expected.as_str() {
        return Err(ImageError::Invalid(format!(
            "the signature is for {}, not for {expected}",
            p.critical.image.docker_manifest_digest.escape_debug()
        )));
    }
    Ok(p)
}

/// One signature of a signature image: its payload blob and the decoded
/// signature (None with the reason when the annotation is not base64).
#[derive(Debug, Clone)]
pub struct SignatureLayer {
    pub payload: Descriptor,
    pub signature: std::result::Result<Vec<u8>, String>,
}

/// The signature layers of a signature image's manifest.
pub fn layers(m: &Manifest) -> Vec<SignatureLayer> {
    m.layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .map(|l| SignatureLayer {
            payload: l.clone(),
            signature: match l.annotations.get(SIGNATURE_ANNOTATION) {
                None => Err(format!("layer {} has no {SIGNATURE_ANNOTATION}", l.digest)),
                Some(s) => B64
                    .decode(s.trim())
                    .map_err(|e| format!("malformed signature in layer {} ({e})", l.digest)),
            },
        })
        .collect()
}

/// A signature image after adding one signature: manifest bytes and the
/// blobs (config, payload) it needs.
pub struct SignatureImage {
    pub manifest: Vec<u8>,
    pub blobs: Vec<Vec<u8>>,
}

/// Builds the signature image holding the layers of `existing` (if any)
/// plus one layer for `payload`/`signature`. An identical signature is not
/// added twice.
pub fn add_signature(
    existing: Option<&Manifest>,
    payload: &[u8],
    signature: &[u8],
) -> SignatureImage {
    let mut layer = Descriptor::new(SIMPLE_SIGNING_MEDIA_TYPE, payload);
    layer
        .annotations
        .insert(SIGNATURE_ANNOTATION.into(), B64.encode(signature));
    let mut layers: Vec<Descriptor> = existing.map(|m| m.layers.clone()).unwrap_or_default();
    if !layers.contains(&layer) {
        layers.push(layer);
    }
    let (manifest, config) = with_layers(layers);
    SignatureImage {
        manifest,
        blobs: vec![config, payload.to_vec()],
    }
}

/// The signature image holding the layers of `local` plus those of
/// `incoming` it lacks (a pull never drops signatures made here). None when
/// `incoming` adds nothing. The blobs are the new config only: payloads are
/// already in the store or staged.
pub fn merge(local: &Manifest, incoming: &Manifest) -> Option<SignatureImage> {
    let mut layers = local.layers.clone();
    for l in &incoming.layers {
        if !layers.contains(l) {
            layers.push(l.clone());
        }
    }
    if layers.len() == local.layers.len() {
        return None;
    }
    let (manifest, config) = with_layers(layers);
    Some(SignatureImage {
        manifest,
        blobs: vec![config],
    })
}

/// Manifest and config bytes of a signature image with `layers`.
fn with_layers(layers: Vec<Descriptor>) -> (Vec<u8>, Vec<u8>) {
    let config = config_json(&layers);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(format::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: None,
        config: Descriptor::new(CONFIG_MEDIA_TYPE, &config),
        layers,
        annotations: BTreeMap::new(),
    };
    (format::to_json(&manifest), config)
}

/// The image config cosign's signature images carry (rootfs of the layers).
fn config_json(layers: &[Descriptor]) -> Vec<u8> {
    const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let history: Vec<_> = layers
        .iter()
        .map(|_| serde_json::json!({"created": ZERO_TIME}))
        .collect();
    format::to_json(&serde_json::json!({
        "architecture": "",
        "config": {},
        "created": ZERO_TIME,
        "history": history,
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::of(b"image")
    }

    #[test]
    fn payload_is_cosigns_and_checks_the_digest() {
        let d = digest();
        let p = payload("localhost:5000/me/x", &d);
        assert_eq!(
            String::from_utf8(p.clone()).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"localhost:5000/me/x"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        check_payload(&p, &d).unwrap();
        let other = Digest::of(b"other");
        let e = check_payload(&p, &other).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("invalid image: the signature is for {d}, not for {other}")
        );
        let e = check_payload(b"[1]", &d).unwrap_err().to_string();
        assert!(e.contains("malformed signature payload"), "{e}");
    }

    #[test]
    fn tags_round_trip() {
        let d = digest();
        let name = store_name("r.example/me/x", &d);
        assert_eq!(name, format!("r.example/me/x:sha256-{}.sig", d.hex()));
        assert_eq!(signed_digest(&name), Some(d));
        assert_eq!(signed_digest("r.example/me/x:v1"), None);
        assert_eq!(signed_digest("r.example/me/x:sha256-zz.sig"), None);
    }

    #[test]
    fn signatures_accumulate_once() {
        let d = digest();
        let p = payload("r/x", &d);
        let one = add_signature(None, &p, b"sig1");
        let m1 = format::parse_manifest(&one.manifest).unwrap();
        let two = add_signature(Some(&m1), &p, b"sig2");
        let m2 = format::parse_manifest(&two.manifest).unwrap();
        let again = add_signature(Some(&m2), &p, b"sig2");
        assert_eq!(again.manifest, two.manifest);
        // Merging: only what is new is added; nothing new, nothing changes.
        assert!(merge(&m2, &m1).is_none());
        let other = add_signature(None, &p, b"sig3");
        let m3 = format::parse_manifest(&other.manifest).unwrap();
        let merged = merge(&m2, &m3).unwrap();
        let merged = format::parse_manifest(&merged.manifest).unwrap();
        let sigs: Vec<_> = layers(&merged)
            .into_iter()
            .map(|l| l.signature.unwrap())
            .collect();
        assert_eq!(sigs, [b"sig1".to_vec(), b"sig2".to_vec(), b"sig3".to_vec()]);
        let l = layers(&m2);
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].signature.as_deref().unwrap(), b"sig2");
        assert_eq!(l[0].payload.digest, Digest::of(&p).to_string());
    }
}
