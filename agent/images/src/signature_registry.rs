//! Signatures travel with their image: a pull also fetches the image's
//! signature image (`REPO:sha256-HEX.sig`, cosign's tag) when the registry
//! has one, a push also pushes the signature images the store holds for it.

use oci_client::Reference;

use super::digest::Digest;
use super::error::{ImageError, Result};
use super::format::{self, Descriptor};
use super::progress::ProgressSink;
use super::registry::Registries;
use super::registry_http::Access;
use super::signature::{self, MAX_PAYLOAD_BYTES};
use super::signatures;
use super::store::{Entry, Store};

/// Most signatures one signature image may hold.
const MAX_SIGNATURES: usize = 64;
/// Largest signature manifest accepted.
const MAX_SIGNATURE_MANIFEST: u64 = 256 << 10;

/// The signature image tag of `digest` in `r`'s repository.
pub fn signature_ref(r: &Reference, digest: &Digest) -> Reference {
    Reference::with_tag(
        r.registry().into(),
        r.repository().into(),
        signature::tag_for(digest),
    )
}

impl Registries {
    /// Fetches the signatures of `digest` from `r`'s repository into the
    /// store (replacing the local signature image of that repository).
    /// None when the registry has no signatures for it.
    pub async fn pull_signatures(
        &self,
        store: &Store,
        r: &Reference,
        digest: &Digest,
    ) -> Result<Option<Entry>> {
        let session = self.session(r, Access::Pull).await?;
        let sig_ref = signature_ref(r, digest);
        let Some(fetched) = super::manifest_fetch::fetch_if_present(
            &session,
            &sig_ref,
            &[format::MANIFEST_MEDIA_TYPE],
            MAX_SIGNATURE_MANIFEST,
            "",
        )
        .await?
        else {
            return Ok(None);
        };
        let bytes = fetched.bytes;
        let m = format::parse_manifest(&bytes)
            .map_err(|e| ImageError::Invalid(format!("{sig_ref}: {e}")))?;
        if m.layers.len() > MAX_SIGNATURES {
            return Err(ImageError::Invalid(format!(
                "{sig_ref}: {} signatures (at most {MAX_SIGNATURES})",
                m.layers.len()
            )));
        }
        let mut staging = store.staging()?;
        staging.put(&bytes)?;
        let mut sink = ProgressSink::none();
        for blob in std::iter::once(&m.config).chain(m.layers.iter()) {
            if blob.size > MAX_PAYLOAD_BYTES as u64 {
                return Err(ImageError::Invalid(format!(
                    "{sig_ref}: blob {} is {} bytes (signature blobs are at most {MAX_PAYLOAD_BYTES})",
                    blob.digest, blob.size
                )));
            }
            self.pull_blob(&session, blob, store, &mut staging, &mut sink)
                .await?;
        }
        let name = signature::store_name(&format!("{}/{}", r.registry(), r.repository()), digest);
        let _writer = signatures::writer_lock();
        // Signatures made here and not uploaded stay beside the registry's.
        let local = match store.resolve(&name) {
            Ok(e) => Some(format::parse_manifest(
                &store.read_blob(&e.descriptor.digest()?)?,
            )?),
            Err(ImageError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let manifest = match &local {
            None => bytes.to_vec(),
            Some(local) => match signature::merge(local, &m) {
                None => return Ok(store.resolve(&name).ok()),
                Some(merged) => {
                    for b in &merged.blobs {
                        staging.put(b)?;
                    }
                    staging.put(&merged.manifest)?;
                    merged.manifest
                }
            },
        };
        let desc = Descriptor::new(format::MANIFEST_MEDIA_TYPE, &manifest);
        store.commit(&staging, &[(Some(name.clone()), desc.clone())])?;
        Ok(Some(Entry {
            name: Some(name),
            descriptor: desc,
        }))
    }

    /// Pushes every local signature image of `digest` to `r`'s repository
    /// (as its `sha256-HEX.sig` tag). Returns how many were pushed.
    pub async fn push_signatures(
        &self,
        store: &Store,
        r: &Reference,
        digest: &Digest,
    ) -> Result<usize> {
        let entries = signatures::signature_entries(store, digest)?;
        let target = signature_ref(r, digest);
        // The signature image of the target repository wins; another
        // repository's (a retagged image) is pushed when it is the only one.
        let own = signature::store_name(&format!("{}/{}", r.registry(), r.repository()), digest);
        let pick = entries
            .iter()
            .find(|e| e.name.as_deref() == Some(own.as_str()))
            .or(entries.first());
        match pick {
            None => Ok(0),
            Some(e) => {
                self.push(store, e, &target, &mut ProgressSink::none())
                    .await?;
                Ok(1)
            }
        }
    }
}

/// After a pull: fetches the image's signatures too. A registry without
/// them is normal; other failures are logged (the run policy, not the pull,
/// decides whether an unsigned image may run).
pub async fn pull_signatures_logged(
    svc: &super::service::ImageService,
    r: &Reference,
    entry: &Entry,
) {
    let Ok(digest) = entry.descriptor.digest() else {
        return;
    };
    match svc.registries.pull_signatures(&svc.store, r, &digest).await {
        Ok(Some(e)) => {
            tracing::info!(image = %r, signatures = %e.name.unwrap_or_default(), "pulled signatures")
        }
        Ok(None) => tracing::debug!(image = %r, "the registry has no signatures for it"),
        Err(e) => tracing::warn!(image = %r, error = %e, "cannot pull the image's signatures"),
    }
}

/// After a push: pushes the image's signatures too.
pub async fn push_signatures_logged(
    svc: &super::service::ImageService,
    r: &Reference,
    digest: &str,
) -> Result<()> {
    let digest = Digest::parse(digest)?;
    let n = svc
        .registries
        .push_signatures(&svc.store, r, &digest)
        .await?;
    if n > 0 {
        tracing::info!(image = %r, signatures = %signature_ref(r, &digest), "pushed signatures");
    }
    Ok(())
}
