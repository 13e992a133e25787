//! Talking to OCI registries (oci-client): pull, push and login. Manifests
//! travel as raw bytes both ways, so digests never change in transit (the
//! client's own manifest types re-serialize them). Pulled blobs go to a
//! staging area and reach the store only when the whole image is there.

use std::io::Write as _;
use std::time::Duration;

use futures_util::StreamExt;
use gadgetd_dbus::images::progress_state as state;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::credentials::Credentials;
use super::digest::{self, Digest};
use super::error::{ImageError, Result};
use super::format::{self, Descriptor};
use super::progress::ProgressSink;
use super::reference::{self, is_loopback};
use super::store::{Entry, Staging, Store};

const ACCEPTED_MANIFESTS: &[&str] = &[
    format::INDEX_MEDIA_TYPE,
    format::MANIFEST_MEDIA_TYPE,
    format::DOCKER_LIST_MEDIA_TYPE,
    format::DOCKER_MANIFEST_MEDIA_TYPE,
];

pub struct Registries {
    /// Registries the admin allows over plain HTTP (besides loopback ones).
    insecure: Vec<String>,
    pub credentials: Credentials,
    /// For manifests, which are read with a size limit (manifest_fetch).
    http: reqwest::Client,
}

/// Turns a client error into one that says what to do.
pub(super) fn registry_error(registry: &str, e: OciDistributionError) -> ImageError {
    let reason = match &e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            format!(
                "authentication required or credentials rejected (run `gadgetctl login {registry}`)"
            )
        }
        OciDistributionError::ImageManifestNotFoundError(_) => {
            "no such image or tag in the registry".into()
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let unknown = envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            });
            if unknown {
                format!("no such image or tag in the registry ({envelope})")
            } else if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                format!("access denied ({envelope}); run `gadgetctl login {registry}`")
            } else {
                format!("the registry refused the request: {envelope}")
            }
        }
        OciDistributionError::RequestError(re)
            if re
                .status()
                .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
        {
            format!(
                "authentication required or credentials rejected (run `gadgetctl login {registry}`)"
            )
        }
        OciDistributionError::RequestError(re) => {
            let mut msg = format!("cannot talk to the registry: {}", oci_chain(re));
            if re.is_connect() {
                msg.push_str(" (is it running and reachable? plain HTTP is used only for loopback registries and those given to gadgetd --insecure-registry)");
            }
            msg
        }
        OciDistributionError::DigestError(d) => {
            format!("downloaded content does not match its digest: {d}")
        }
        other => other.to_string(),
    };
    ImageError::Registry {
        registry: registry.to_string(),
        reason,
    }
}

fn oci_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The `mediaType` a manifest's JSON declares, or what its shape says.
fn media_type_of(bytes: &[u8]) -> Result<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Invalid(format!("the registry sent a malformed manifest: {e}")))?;
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return Ok(mt.to_string());
    }
    Ok(if v.get("manifests").is_some() {
        format::INDEX_MEDIA_TYPE.into()
    } else {
        format::MANIFEST_MEDIA_TYPE.into()
    })
}

fn oci_descriptor(d: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size as i64,
        ..Default::default()
    }
}

/// Before any layer is downloaded: the image holds at least one gadget
/// manifest, each of them well formed, and when its index has entries
/// without a platform, the one this host would run is decided now
/// ([`format::pick_platform`]), so an image that cannot run here fails the pull.
fn check_gadget_manifests(
    r: &Reference,
    top: &Descriptor,
    top_bytes: &[u8],
    manifests: &[(String, format::Manifest)],
) -> Result<()> {
    let invalid = |e: ImageError| ImageError::Invalid(format!("{r}: {e}"));
    let gadgets: Vec<_> = manifests
        .iter()
        .filter(|(_, m)| format::is_gadget_manifest(m))
        .collect();
    if gadgets.is_empty() {
        // The first manifest's error says why it is not a gadget's.
        if let Some((_, m)) = manifests.first() {
            format::gadget_parts(m).map_err(invalid)?;
        }
        return Err(ImageError::Invalid(format!(
            "{r}: the image has no manifest"
        )));
    }
    for (_, m) in &gadgets {
        format::gadget_parts(m).map_err(invalid)?;
    }
    if top.is_index() {
        let index = format::parse_index(top_bytes)?;
        if index.manifests.iter().any(|m| m.platform.is_none()) {
            let is_gadget = |d: &Descriptor| gadgets.iter().any(|(digest, _)| *digest == d.digest);
            format::pick_platform(&index, format::host_arch(), is_gadget)?;
        }
    }
    Ok(())
}

fn kind_of(d: &Descriptor) -> &'static str {
    match d.media_type.as_str() {
        format::CONFIG_MEDIA_TYPE => "config",
        format::PROGRAM_MEDIA_TYPE => "program",
        _ => "blob",
    }
}

impl Registries {
    pub fn new(insecure: Vec<String>, credentials: Credentials) -> Registries {
        // reqwest is built without a default crypto provider (ring is a much
        // lighter build than aws-lc); install ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(60))
        };
        // A host without CA certificates (a minimal container, a fresh nspawn
        // root) must still start and reach plain-HTTP registries; HTTPS ones
        // then fail with a certificate error naming the registry.
        let http = builder().build().unwrap_or_else(|e| {
            tracing::warn!(
                error = %e,
                "no system CA certificates: HTTPS registries cannot be verified (install ca-certificates)"
            );
            builder()
                .tls_certs_only([])
                .build()
                .expect("a client without root certificates needs no system state")
        });
        Registries {
            insecure,
            credentials,
            http,
        }
    }

    pub fn plain_http_allowed(&self, registry: &str) -> bool {
        is_loopback(registry) || self.insecure.iter().any(|r| r == registry)
    }

    pub(super) fn client(&self, registry: &str) -> Client {
        let plain = if self.plain_http_allowed(registry) {
            vec![registry.to_string()]
        } else {
            Vec::new()
        };
        Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        })
    }

    pub(super) fn auth(&self, registry: &str) -> Result<RegistryAuth> {
        Ok(match self.credentials.get(registry)? {
            Some((u, p)) => RegistryAuth::Basic(u, p),
            None => RegistryAuth::Anonymous,
        })
    }

    async fn fetch_manifest(
        &self,
        client: &Client,
        r: &Reference,
        auth: &RegistryAuth,
        expected: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest)> {
        let fetched = super::manifest_fetch::fetch(
            client,
            &self.http,
            self.plain_http_allowed(r.registry()),
            r,
            auth,
            ACCEPTED_MANIFESTS,
            format::MAX_MANIFEST_BYTES,
        )
        .await?;
        let bytes = fetched.bytes;
        let digest = Digest::of(&bytes);
        if let Some(exp) = expected {
            digest::verify(exp, &bytes)?;
        }
        Ok((bytes, digest))
    }

    /// Pulls every architecture of `r` into `store`, tagged with `r`.
    pub async fn pull(
        &self,
        store: &Store,
        r: &Reference,
        progress: &mut ProgressSink,
    ) -> Result<Entry> {
        let registry = r.registry().to_string();
        let client = self.client(&registry);
        let auth = self.auth(&registry)?;
        let expected = r.digest().map(Digest::parse).transpose()?;
        let (top_bytes, top_digest) = self
            .fetch_manifest(&client, r, &auth, expected.as_ref())
            .await?;
        let media_type = media_type_of(&top_bytes)?;
        let mut staging = store.staging()?;
        staging.put(&top_bytes)?;
        let top = Descriptor {
            size: top_bytes.len() as u64,
            ..Descriptor::new(&media_type, &top_bytes)
        };
        let mut manifests = Vec::new();
        if top.is_index() {
            progress.send(
                top_digest.as_str(),
                "index",
                state::DONE,
                top.size,
                top.size,
            );
            for child in format::parse_index(&top_bytes)?.manifests {
                let d = child.digest()?;
                let child_ref = r.clone_with_digest(d.to_string());
                format::check_size(&child)?;
                let (bytes, _) = if store.has_blob(&d) {
                    (
                        store.read_blob_max(&d, format::MAX_MANIFEST_BYTES)?,
                        d.clone(),
                    )
                } else {
                    self.fetch_manifest(&client, &child_ref, &auth, Some(&d))
                        .await?
                };
                staging.put(&bytes)?;
                progress.send(
                    d.as_str(),
                    "manifest",
                    state::DONE,
                    bytes.len() as u64,
                    bytes.len() as u64,
                );
                manifests.push((d.to_string(), format::parse_manifest(&bytes)?));
            }
        } else {
            progress.send(
                top_digest.as_str(),
                "manifest",
                state::DONE,
                top.size,
                top.size,
            );
            manifests.push((top_digest.to_string(), format::parse_manifest(&top_bytes)?));
        }
        check_gadget_manifests(r, &top, &top_bytes, &manifests)?;
        // Every blob of every manifest is stored, including layers gadgetd
        // does not run (wasm, btfgen, unknown media types) and the manifests
        // of other artifacts in the index: the image stays whole for a push.
        for (_, m) in &manifests {
            for blob in std::iter::once(&m.config).chain(m.layers.iter()) {
                self.pull_blob(&client, r, blob, store, &mut staging, progress)
                    .await?;
            }
        }
        let name = reference::store_name(r);
        store.commit(&staging, &[(Some(name.clone()), top.clone())])?;
        Ok(Entry {
            name: Some(name),
            descriptor: top,
        })
    }

    pub(super) async fn pull_blob(
        &self,
        client: &Client,
        r: &Reference,
        blob: &Descriptor,
        store: &Store,
        staging: &mut Staging,
        progress: &mut ProgressSink,
    ) -> Result<()> {
        let d = blob.digest()?;
        let kind = kind_of(blob);
        if store.has_blob(&d) || staging.contains(&d) {
            progress.send(d.as_str(), kind, state::EXISTS, blob.size, blob.size);
            return Ok(());
        }
        format::check_size(blob)?;
        let registry = r.registry();
        let mut stream = client
            .pull_blob_stream(r, &oci_descriptor(blob))
            .await
            .map_err(|e| registry_error(registry, e))?;
        let mut w = staging.writer()?;
        let io_err = |e: std::io::Error| ImageError::Io {
            context: format!("cannot write blob {d}"),
            source: e,
        };
        progress.send(d.as_str(), kind, state::DOWNLOADING, 0, blob.size);
        while let Some(chunk) = stream.next().await {
            // The client checks the digest at the end of the stream.
            let chunk = chunk.map_err(|e| match e.to_string() {
                m if m.contains("Invalid digest") => ImageError::Registry {
                    registry: registry.to_string(),
                    reason: format!(
                        "downloaded content does not match its digest ({m}); nothing was stored"
                    ),
                },
                m => ImageError::Registry {
                    registry: registry.to_string(),
                    reason: format!("download of {d} broke off: {m}"),
                },
            })?;
            if w.written() + chunk.len() as u64 > blob.size {
                return Err(ImageError::Invalid(format!(
                    "blob {d} is larger than its descriptor says ({} bytes)",
                    blob.size
                )));
            }
            w.write_all(&chunk).map_err(io_err)?;
            progress.send(d.as_str(), kind, state::DOWNLOADING, w.written(), blob.size);
        }
        w.finish(&d, Some(blob.size))?;
        progress.send(d.as_str(), kind, state::DONE, blob.size, blob.size);
        Ok(())
    }

    /// Pushes the local image `entry` to `r` (its blobs, its manifests, then
    /// the index under `r`'s tag). Returns the pushed digest.
    pub async fn push(
        &self,
        store: &Store,
        entry: &Entry,
        r: &Reference,
        progress: &mut ProgressSink,
    ) -> Result<String> {
        let registry = r.registry().to_string();
        let client = self.client(&registry);
        let auth = self.auth(&registry)?;
        let err = |e| registry_error(&registry, e);
        client
            .store_auth_if_needed(r.resolve_registry(), &auth)
            .await;
        client
            .auth(r, &auth, RegistryOperation::Push)
            .await
            .map_err(err)?;
        let top = &entry.descriptor;
        let top_bytes = store.read_blob(&top.digest()?)?;
        let children: Vec<Descriptor> = if top.is_index() {
            format::parse_index(&top_bytes)?.manifests
        } else {
            Vec::new()
        };
        let manifests: Vec<(Descriptor, Vec<u8>)> = if top.is_index() {
            children
                .iter()
                .map(|c| Ok((c.clone(), store.read_blob(&c.digest()?)?)))
                .collect::<Result<_>>()?
        } else {
            vec![(top.clone(), top_bytes.clone())]
        };
        for (desc, bytes) in &manifests {
            let m = format::parse_manifest(bytes)?;
            for blob in std::iter::once(&m.config).chain(m.layers.iter()) {
                let d = blob.digest()?;
                let kind = kind_of(blob);
                if client.blob_exists(r, d.as_str()).await.map_err(err)? {
                    progress.send(d.as_str(), kind, state::EXISTS, blob.size, blob.size);
                    continue;
                }
                progress.send(d.as_str(), kind, state::UPLOADING, 0, blob.size);
                let data = store.read_blob(&d)?;
                client.push_blob(r, data, d.as_str()).await.map_err(err)?;
                progress.send(d.as_str(), kind, state::DONE, blob.size, blob.size);
            }
            if top.is_index() {
                let content_type = desc.media_type.parse().map_err(|_| {
                    ImageError::Invalid(format!("bad media type {}", desc.media_type))
                })?;
                client
                    .push_manifest_raw(
                        &r.clone_with_digest(desc.digest.clone()),
                        bytes.clone(),
                        content_type,
                    )
                    .await
                    .map_err(err)?;
                progress.send(&desc.digest, "manifest", state::DONE, desc.size, desc.size);
            }
        }
        let content_type = top
            .media_type
            .parse()
            .map_err(|_| ImageError::Invalid(format!("bad media type {}", top.media_type)))?;
        let tag_ref = match r.tag() {
            Some(t) => Reference::with_tag(r.registry().into(), r.repository().into(), t.into()),
            None => r.clone(),
        };
        client
            .push_manifest_raw(&tag_ref, top_bytes, content_type)
            .await
            .map_err(err)?;
        progress.send(
            &top.digest,
            if top.is_index() { "index" } else { "manifest" },
            state::DONE,
            top.size,
            top.size,
        );
        Ok(top.digest.clone())
    }

    /// Checks `user`/`password` against `registry` and stores them.
    pub async fn login(&self, registry: &str, user: &str, password: &str) -> Result<()> {
        let client = self.client(registry);
        let auth = RegistryAuth::Basic(user.into(), password.into());
        let err = |e| registry_error(registry, e);
        // A repository that need not exist: 401 means bad credentials, 404 good ones.
        let probe = Reference::with_tag(
            registry.into(),
            "gadgetd/login-check".into(),
            "latest".into(),
        );
        client
            .auth(&probe, &auth, RegistryOperation::Pull)
            .await
            .map_err(err)?;
        match client
            .pull_manifest_raw(&probe, &auth, ACCEPTED_MANIFESTS)
            .await
        {
            Ok(_) => {}
            Err(
                e @ (OciDistributionError::UnauthorizedError { .. }
                | OciDistributionError::AuthenticationFailure(_)),
            ) => {
                tracing::debug!(error = %e, "login rejected");
                return Err(ImageError::Registry {
                    registry: registry.into(),
                    reason: format!("login as `{user}` failed: wrong username or password"),
                });
            }
            Err(e @ OciDistributionError::RequestError(_)) => return Err(err(e)),
            Err(_) => {}
        }
        self.credentials.set(registry, user, password)
    }
}
