//! `org.gadgetd.Agent1.Images` (design.md): the D-Bus face of
//! [`ImageService`], plus the loader `Manager.Run` uses.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use gadgetd_dbus::images::{ImageSummary, image_options};
use zbus::message::Header as MsgHeader;
use zbus::zvariant::{Fd, OwnedFd as ZOwnedFd, OwnedValue};
use zbus::{Connection, fdo, interface};

use crate::service::Agent;
use gadgetd_images::error::Result;
use gadgetd_images::format;
use gadgetd_images::progress::ProgressSink;
use gadgetd_images::service::ImageService;
use gadgetd_runtime::object::GadgetObject;
use gadgetd_runtime::{Gadget, GadgetError};
use serde_json::json;

pub use super::authz::ACTION_MANAGE_IMAGES;
use super::authz::ACTION_READ;
pub use super::image_calls::to_fdo;
use super::image_calls::{ImageCalls, blocking};

fn dup(fd: &Fd<'_>, what: &str) -> fdo::Result<OwnedFd> {
    fd.as_fd()
        .try_clone_to_owned()
        .map_err(|e| fdo::Error::InvalidArgs(format!("bad {what} fd: {e}")))
}

fn string_option(opts: &HashMap<String, OwnedValue>, key: &str) -> fdo::Result<Option<String>> {
    match opts.get(key) {
        None => Ok(None),
        Some(v) => v
            .try_clone()
            .ok()
            .and_then(|v| String::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| fdo::Error::InvalidArgs(format!("option {key} must be a string (s)"))),
    }
}

/// `org.gadgetd.Agent1.Images` on `/org/gadgetd/Agent1`.
pub struct Images(ImageCalls);

impl Images {
    pub fn new(agent: &Arc<Agent>, svc: &Arc<ImageService>) -> Images {
        Images(ImageCalls::new(agent, svc))
    }
}

#[interface(name = "org.gadgetd.Agent1.Images")]
impl Images {
    /// Pulls `reference` (every architecture) into the store; progress lines
    /// go to `progress`. Returns the stored reference and its digest.
    async fn pull(
        &self,
        reference: String,
        options: HashMap<String, OwnedValue>,
        progress: Fd<'_>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<(String, String)> {
        let caller = self
            .0
            .authorize_options(conn, &hdr, ACTION_MANAGE_IMAGES, &options, &[])
            .await?;
        let r = self.0.svc.normalize(&reference).map_err(to_fdo)?;
        let mut sink = ProgressSink::new(Some(dup(&progress, "progress")?));
        let started = std::time::Instant::now();
        let entry = self
            .0
            .svc
            .registries
            .pull(&self.0.svc.store, &r, &mut sink)
            .await
            .map_err(to_fdo)?;
        crate::images::signature_registry::pull_signatures_logged(&self.0.svc, &r, &entry).await;
        tracing::info!(image = %r, digest = %entry.descriptor.digest, uid = caller.uid, ms = started.elapsed().as_millis() as u64, "pulled");
        Ok((entry.name.unwrap_or_default(), entry.descriptor.digest))
    }

    /// Pushes a local image to the registry its reference names (blobs the
    /// registry has are skipped). Returns the pushed digest.
    async fn push(
        &self,
        reference: String,
        options: HashMap<String, OwnedValue>,
        progress: Fd<'_>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        let caller = self
            .0
            .authorize_options(conn, &hdr, ACTION_MANAGE_IMAGES, &options, &[])
            .await?;
        let (entry, by_name) = self.0.svc.resolve_local(&reference).map_err(to_fdo)?;
        let target = match (&entry.name, by_name) {
            (Some(name), true) => self.0.svc.normalize(name).map_err(to_fdo)?,
            _ => {
                return Err(fdo::Error::InvalidArgs(format!(
                    "`{reference}` names an image by digest; tag it with the registry to push to (`gadgetctl tag {reference} REGISTRY/NAME:TAG`)"
                )));
            }
        };
        let mut sink = ProgressSink::new(Some(dup(&progress, "progress")?));
        let digest = self
            .0
            .svc
            .registries
            .push(&self.0.svc.store, &entry, &target, &mut sink)
            .await
            .map_err(to_fdo)?;
        crate::images::signature_registry::push_signatures_logged(&self.0.svc, &target, &digest)
            .await
            .map_err(to_fdo)?;
        tracing::info!(image = %target, digest = %digest, uid = caller.uid, "pushed");
        Ok(digest)
    }

    /// Imports the OCI archive read from `archive`; option `tag` (s) names a
    /// single image. Returns (reference, digest) per image.
    async fn import(
        &self,
        archive: Fd<'_>,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<(String, String)>> {
        self.0
            .authorize_options(
                conn,
                &hdr,
                ACTION_MANAGE_IMAGES,
                &options,
                &[image_options::TAG],
            )
            .await?;
        let tag = string_option(&options, image_options::TAG)?;
        let file = std::fs::File::from(dup(&archive, "archive")?);
        // A FIFO or socket could be held open forever, pinning a thread.
        let is_file = file.metadata().is_ok_and(|m| m.file_type().is_file());
        if !is_file {
            return Err(fdo::Error::InvalidArgs(
                "the archive must be passed as an fd of a regular file (not a pipe or socket); save it to a file first".into(),
            ));
        }
        let svc = self.0.svc.clone();
        blocking(move || svc.import(file, tag.as_deref(), false)).await
    }

    /// Writes the named images as one OCI archive to the returned fd.
    async fn export(
        &self,
        references: Vec<String>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<ZOwnedFd> {
        let caller = self.0.authorize(conn, &hdr, ACTION_READ).await?;
        if references.is_empty() {
            return Err(fdo::Error::InvalidArgs(
                "name at least one image to export".into(),
            ));
        }
        let permit = self
            .0
            .agent
            .limits
            .exports
            .acquire(caller.uid)
            .map_err(fdo::Error::LimitsExceeded)?;
        let svc = self.0.svc.clone();
        blocking(move || svc.export(&references, permit))
            .await
            .map(ZOwnedFd::from)
    }

    /// Adds name `target` to the local image `source`; returns the full name.
    async fn tag(
        &self,
        source: String,
        target: String,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.0
            .authorized_blocking(conn, &hdr, ACTION_MANAGE_IMAGES, move |svc| {
                svc.tag(&source, &target)
            })
            .await
    }

    /// Removes names (by digest: every name of that image), then deletes
    /// unreferenced blobs. Returns the removed names and the bytes freed.
    async fn remove(
        &self,
        references: Vec<String>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<(Vec<String>, u64)> {
        self.0
            .authorized_blocking(conn, &hdr, ACTION_MANAGE_IMAGES, move |svc| {
                svc.remove(&references)
            })
            .await
    }

    /// Local images: reference, digest, media type, size, architectures, created.
    async fn list(
        &self,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<ImageSummary>> {
        self.0
            .authorized_blocking(conn, &hdr, ACTION_READ, move |svc| {
                Ok(svc
                    .store
                    .entries()?
                    .iter()
                    .filter(|e| !crate::images::signatures::is_signature_entry(e))
                    .map(|e| svc.summary(e))
                    .collect())
            })
            .await
    }

    /// JSON describing a local image: index, host manifest, definition,
    /// programs, maps, params, fields.
    async fn inspect(
        &self,
        reference: String,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.0
            .authorized_blocking(conn, &hdr, ACTION_READ, move |svc| {
                inspect(svc, &reference).map(|v| v.to_string())
            })
            .await
    }

    /// The local image a name, digest or digest prefix means (no pull):
    /// (reference, digest); FileNotFound when absent.
    async fn resolve(
        &self,
        reference: String,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<(String, String)> {
        self.0
            .authorized_blocking(conn, &hdr, ACTION_READ, move |svc| {
                let (e, _) = svc.resolve_local(&reference)?;
                Ok((e.name.unwrap_or_default(), e.descriptor.digest))
            })
            .await
    }

    /// Checks the credentials against `registry` (HOST[:PORT]) and stores them
    /// (root-only file, docker config.json format).
    async fn login(
        &self,
        registry: String,
        username: String,
        password: String,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        let caller = self.0.authorize(conn, &hdr, ACTION_MANAGE_IMAGES).await?;
        if registry.is_empty() || registry.contains('/') {
            return Err(fdo::Error::InvalidArgs(format!(
                "`{registry}`: give a registry as HOST[:PORT]"
            )));
        }
        self.0
            .svc
            .registries
            .login(&registry, &username, &password)
            .await
            .map_err(to_fdo)?;
        tracing::info!(registry = %registry, user = %username, uid = caller.uid, "logged in");
        Ok(())
    }

    /// Forgets the credentials of `registry`.
    async fn logout(
        &self,
        registry: String,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        self.0.authorize(conn, &hdr, ACTION_MANAGE_IMAGES).await?;
        let svc = self.0.svc.clone();
        let found = blocking(move || svc.registries.credentials.remove(&registry)).await?;
        if !found {
            return Err(fdo::Error::InvalidArgs(
                "not logged in to that registry".into(),
            ));
        }
        Ok(())
    }

    /// The prefix bare names (`trace_open`) resolve against.
    #[zbus(property)]
    fn default_registry(&self) -> String {
        self.0.svc.default_prefix.clone()
    }
}

/// Maps runtime errors of an image's program like RunObject does.
pub fn gadget_error(e: GadgetError) -> fdo::Error {
    fdo::Error::InvalidArgs(format!("the image's program cannot run: {e}"))
}

/// Loads the local image `key` for `Manager.Run`: (gadget, reference,
/// digest, the layers it does not use).
pub async fn load_gadget(
    svc: &Arc<ImageService>,
    key: String,
) -> fdo::Result<(Gadget, String, String, Vec<String>)> {
    let svc = svc.clone();
    tokio::task::spawn_blocking(move || -> fdo::Result<_> {
        let r = svc.runnable(&key).map_err(to_fdo)?;
        let gadget = Gadget::from_object(r.program, Some(&r.definition)).map_err(gadget_error)?;
        Ok((gadget, r.reference, r.digest, r.ignored))
    })
    .await
    .map_err(|e| fdo::Error::Failed(format!("image task failed: {e}")))?
}

/// Everything `gadgetctl image inspect` shows, as JSON.
pub fn inspect(svc: &ImageService, key: &str) -> Result<serde_json::Value> {
    let (entry, _) = svc.resolve_local(key)?;
    let top_bytes = svc
        .store
        .read_blob_max(&entry.descriptor.digest()?, format::MAX_MANIFEST_BYTES)?;
    let top: serde_json::Value = serde_json::from_slice(&top_bytes).unwrap_or_default();
    let (manifest, manifest_digest) = svc.host_manifest(&entry.descriptor)?;
    let run = svc.runnable(key)?;
    let obj = GadgetObject::parse(run.program.clone());
    let (programs, maps) = match &obj {
        Ok(o) => (
            o.programs.iter().map(|p| json!({"name": p.name, "section": p.section})).collect(),
            o.maps
                .iter()
                .map(|m| json!({"name": m.name, "type": map_type_name(m.map_type), "max_entries": m.max_entries}))
                .collect(),
        ),
        Err(_) => (vec![], vec![]),
    };
    let gadget = Gadget::from_object(run.program, Some(&run.definition));
    let (params, fields, datasources, error) = match &gadget {
        Ok(g) => (
            serde_json::to_value(g.params()).unwrap_or_default(),
            serde_json::to_value(g.fields()).unwrap_or_default(),
            serde_json::to_value(g.datasource_infos()).unwrap_or_default(),
            None,
        ),
        Err(e) => (json!([]), json!([]), json!([]), Some(e.to_string())),
    };
    Ok(json!({
        "reference": entry.name,
        "digest": entry.descriptor.digest,
        "mediaType": entry.descriptor.media_type,
        "size": svc.summary(&entry).size,
        "index": if entry.descriptor.is_index() { top } else { serde_json::Value::Null },
        "platform": format!("linux/{}", format::host_arch()),
        "manifestDigest": manifest_digest,
        "manifest": serde_json::to_value(&manifest).unwrap_or_default(),
        "definition": run.definition,
        "programs": programs,
        "maps": maps,
        "params": params,
        "fields": fields,
        "datasources": datasources,
        "runnable": error.is_none(),
        "error": error,
        "signatures": super::signatures::signature_status(svc, &entry),
    }))
}

fn map_type_name(t: u32) -> String {
    match t {
        1 => "hash".into(),
        2 => "array".into(),
        4 => "perf_event_array".into(),
        5 => "percpu_hash".into(),
        6 => "percpu_array".into(),
        9 => "lru_hash".into(),
        27 => "ringbuf".into(),
        other => format!("type {other}"),
    }
}
