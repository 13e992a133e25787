//! Gadgets from OCI images (feature `oci`): the image store gadgetd and
//! gadgetctl use (`/var/lib/gadgetd/images`, an OCI image layout), and
//! registries for what is not there yet. The image's program for this host's
//! architecture and its definition are what [`Gadget::from_object`] gets.

use std::path::PathBuf;

use gadgetd_images::credentials::Credentials;
use gadgetd_images::digest::Digest;
use gadgetd_images::error::ImageError;
use gadgetd_images::policy::{DEFAULT_POLICY_DIR, PolicyStore};
use gadgetd_images::progress::ProgressSink;
use gadgetd_images::reference::DEFAULT_PREFIX;
use gadgetd_images::registry::Registries;
use gadgetd_images::service::ImageService;
use gadgetd_images::store::Store;

use crate::error::{GadgetError, Result};
use crate::runner::Gadget;

/// When to pull an image from its registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pull {
    /// Always (the registry's copy wins).
    Always,
    /// Only when the store has no image of that name (default).
    #[default]
    Missing,
    /// Never: only local images run.
    Never,
}

/// Where [`Gadget::from_image`] finds images.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// gadgetd's state directory: images in `STATE_DIR/images`, registry
    /// logins in `STATE_DIR/auth.json` (default `/var/lib/gadgetd`, shared
    /// with the agent and `gadgetctl`).
    pub state_dir: PathBuf,
    /// Registry/repository prefix bare names (`trace_open`) resolve to.
    pub default_registry: String,
    /// Registries (`HOST[:PORT]`) that may be used over plain HTTP. Loopback
    /// registries always may.
    pub insecure_registries: Vec<String>,
    /// When to pull.
    pub pull: Pull,
    /// gadgetd's run policy (docs/signing.md: trusted keys, allowed
    /// images), checked as the agent checks it (default
    /// `/etc/gadgetd/policy.d`; no directory: every image runs).
    pub policy_dir: PathBuf,
}

impl Default for ImageOptions {
    fn default() -> ImageOptions {
        ImageOptions {
            state_dir: PathBuf::from("/var/lib/gadgetd"),
            default_registry: DEFAULT_PREFIX.into(),
            insecure_registries: Vec::new(),
            pull: Pull::default(),
            policy_dir: PathBuf::from(DEFAULT_POLICY_DIR),
        }
    }
}

fn image_error(reference: &str, e: ImageError) -> GadgetError {
    GadgetError::Image {
        reference: reference.to_string(),
        reason: e.to_string(),
    }
}

impl Gadget {
    /// Parses the gadget of an image: this host's program and the image's
    /// definition, from the store, pulled first per [`ImageOptions::pull`].
    /// The run policy is checked first, as gadgetd checks it.
    /// Errors: [`GadgetError::Image`] (not found, registry, store, refused
    /// by the policy), or what
    /// [`Gadget::from_object`] says of the program.
    pub async fn from_image(reference: &str, opts: &ImageOptions) -> Result<Gadget> {
        let err = |e| image_error(reference, e);
        let images = ImageService {
            store: Store::open(&opts.state_dir.join("images")).map_err(err)?,
            registries: Registries::new(
                opts.insecure_registries.clone(),
                Credentials::new(&opts.state_dir.join("auth.json")),
            ),
            default_prefix: opts.default_registry.clone(),
            policy: PolicyStore::open(&opts.policy_dir),
        };
        let local = match opts.pull {
            Pull::Always => None,
            Pull::Missing => match images.runnable(reference) {
                Ok(r) => Some(r),
                Err(ImageError::NotFound(_)) => None,
                Err(e) => return Err(err(e)),
            },
            Pull::Never => Some(images.runnable(reference).map_err(err)?),
        };
        let image = match local {
            Some(r) => r,
            None => {
                let name = images.normalize(reference).map_err(err)?;
                let entry = images
                    .registries
                    .pull(&images.store, &name, &mut ProgressSink::none())
                    .await
                    .map_err(err)?;
                gadgetd_images::signature_registry::pull_signatures_logged(&images, &name, &entry)
                    .await;
                images.runnable(reference).map_err(err)?
            }
        };
        let refused = |reason: String| GadgetError::Image {
            reference: reference.to_string(),
            reason: format!("refused by the run policy: {reason}"),
        };
        let digest = Digest::parse(&image.digest).map_err(err)?;
        images
            .policy
            .current()
            .and_then(|p| p.admit_image(&images.store, &image.reference, &digest))
            .map_err(refused)?;
        Gadget::from_object(image.program, Some(&image.definition))
    }
}
