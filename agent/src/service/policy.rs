//! The run policy (`crate::images::policy`) on every run path: Run (an
//! image), RunObject (an object file) and the restore of detached runs
//! after a restart. Refusals are logged and name what to do.

use crate::images::digest::Digest;
use crate::images::policy::Admission;
use crate::images::service::ImageService;

/// May image `reference` at `digest` run? Err: why not (for the caller).
pub fn check_image(svc: &ImageService, reference: &str, digest: &str) -> Result<Admission, String> {
    let digest = Digest::parse(digest).map_err(|e| format!("image digest: {e}"))?;
    let policy = svc.policy.current()?;
    policy.admit_image(&svc.store, reference, &digest)
}

/// May an object file run? Err: why not.
pub fn check_object(svc: &ImageService) -> Result<Admission, String> {
    svc.policy.current()?.admit_object()
}

/// A run record's check after restart: images by reference and digest,
/// object files (no digest) as RunObject.
pub fn check_record(svc: &ImageService, image: &str, digest: &str) -> Result<Admission, String> {
    if digest.is_empty() {
        check_object(svc)
    } else {
        check_image(svc, image, digest)
    }
}

/// [`check_image`] / [`check_object`] off the executor, as a D-Bus error
/// (`AccessDenied`) and a log line when refused.
pub async fn admit(
    svc: &std::sync::Arc<ImageService>,
    image: &str,
    digest: &str,
    uid: u32,
) -> zbus::fdo::Result<()> {
    let (svc, image_, digest_) = (svc.clone(), image.to_string(), digest.to_string());
    let verdict = tokio::task::spawn_blocking(move || check_record(&svc, &image_, &digest_))
        .await
        .map_err(|e| zbus::fdo::Error::Failed(format!("policy task failed: {e}")))?;
    match verdict {
        Ok(a) => {
            tracing::debug!(image = %image, digest = %digest, admission = ?a, "policy admits the run");
            Ok(())
        }
        Err(reason) => {
            tracing::warn!(image = %image, digest = %digest, uid, reason = %reason, "run refused by policy");
            Err(zbus::fdo::Error::AccessDenied(format!(
                "refused by the run policy: {reason}"
            )))
        }
    }
}
