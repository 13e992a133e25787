//! What every method of the Images and Signatures interfaces starts with:
//! the caller authorized for the method's polkit action, then store work
//! run off the async executor, its errors turned into D-Bus errors that
//! name what failed.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header as MsgHeader;
use zbus::zvariant::OwnedValue;
use zbus::{Connection, fdo};

use super::auth::Caller;
use crate::service::Agent;
use gadgetd_images::error::{ImageError, Result};
use gadgetd_images::service::ImageService;

/// D-Bus errors that name what failed: FileNotFound for a missing local
/// image, Failed for a registry's refusal, IOError, else InvalidArgs.
pub fn to_fdo(e: ImageError) -> fdo::Error {
    let msg = e.to_string();
    match e {
        ImageError::NotFound(_) => fdo::Error::FileNotFound(msg),
        ImageError::Registry { .. } | ImageError::CredentialsRejected { .. } => {
            fdo::Error::Failed(msg)
        }
        ImageError::Io { .. } => fdo::Error::IOError(msg),
        _ => fdo::Error::InvalidArgs(msg),
    }
}

/// Runs blocking store work off the async executor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> fdo::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| fdo::Error::Failed(format!("image task failed: {e}")))?
        .map_err(to_fdo)
}

/// The agent (for authorization and limits) and the image service an
/// Images or Signatures method works with.
pub struct ImageCalls {
    pub agent: Arc<Agent>,
    pub svc: Arc<ImageService>,
}

impl ImageCalls {
    pub fn new(agent: &Arc<Agent>, svc: &Arc<ImageService>) -> ImageCalls {
        ImageCalls {
            agent: agent.clone(),
            svc: svc.clone(),
        }
    }

    /// The caller of `hdr` on `conn`, once allowed `action`.
    ///
    /// Errors: AccessDenied when the caller cannot be identified or
    /// `action` is not allowed to it.
    pub async fn authorize(
        &self,
        conn: &Connection,
        hdr: &MsgHeader<'_>,
        action: &str,
    ) -> fdo::Result<Caller> {
        self.agent.auth.check(conn, hdr, action).await
    }

    /// [`authorize`](Self::authorize), then `options` checked to hold only
    /// `known` keys. Errors: as `authorize`; InvalidArgs naming the first
    /// unknown option.
    pub async fn authorize_options(
        &self,
        conn: &Connection,
        hdr: &MsgHeader<'_>,
        action: &str,
        options: &HashMap<String, OwnedValue>,
        known: &[&str],
    ) -> fdo::Result<Caller> {
        let caller = self.authorize(conn, hdr, action).await?;
        if let Some(k) = options.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(fdo::Error::InvalidArgs(format!("unknown option `{k}`")));
        }
        Ok(caller)
    }

    /// [`authorize`](Self::authorize), then `work` on the image service in
    /// a blocking thread.
    pub async fn authorized_blocking<T: Send + 'static>(
        &self,
        conn: &Connection,
        hdr: &MsgHeader<'_>,
        action: &str,
        work: impl FnOnce(&ImageService) -> Result<T> + Send + 'static,
    ) -> fdo::Result<T> {
        self.authorize(conn, hdr, action).await?;
        let svc = self.svc.clone();
        blocking(move || work(&svc)).await
    }
}
