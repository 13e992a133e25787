//! `gadgetctl run IMAGE`: tells images from object files, and pulls per
//! `--pull` before the agent runs the image.

use std::path::Path;

use anyhow::Result;
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullPolicy {
    /// Pull every time (a newer image under the same tag is picked up).
    Always,
    /// Pull only when the image is not in the local store.
    Missing,
    /// Never pull; fail when the image is not local.
    Never,
}

#[derive(Args, Debug)]
pub struct RunImageArgs {
    /// When to pull an image before running it.
    #[arg(long, value_enum, default_value = "missing")]
    pub pull: PullPolicy,
}

/// The image `gadget` names, or `None` when it is an object file on disk.
pub fn image_of(gadget: &Path) -> Option<&str> {
    if gadget.is_file() {
        return None;
    }
    gadget.to_str()
}

/// Makes sure `image` is local, pulling per `policy`.
pub async fn ensure_local(address: Option<&str>, image: &str, policy: PullPolicy) -> Result<()> {
    let proxy = crate::images::images_proxy(address).await?;
    let pull = match policy {
        PullPolicy::Always => true,
        PullPolicy::Never => false,
        PullPolicy::Missing => match proxy.resolve(image).await {
            Ok(_) => false,
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.DBus.Error.FileNotFound" =>
            {
                true
            }
            Err(e) => return Err(e.into()),
        },
    };
    if pull {
        let (reference, digest) = crate::images::pull(address, image).await?;
        eprintln!("pulled {reference} ({digest})");
    }
    Ok(())
}
