//! Talking to OCI registries: pull, push and login, over
//! [`registry_http`](super::registry_http) sessions whose every read is
//! bounded. Manifests travel as raw bytes both ways, so digests never
//! change in transit. Pulled blobs go to a staging area and reach the
//! store only when the whole image is there.

use std::io::Write as _;
use std::time::Duration;

use gadgetd_dbus::images::progress_state as state;
use oci_client::Reference;
use reqwest::{Method, StatusCode, header};

use super::credentials::Credentials;
use super::digest::{self, Digest};
use super::error::{ImageError, Result};
use super::format::{self, Descriptor};
use super::progress::ProgressSink;
use super::reference::{self, is_loopback};
use super::registry_http::{Access, Session, failed};
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
    /// Every registry request (registry_http), reads bounded.
    http: reqwest::Client,
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

    /// The stored credentials (user, password) of `registry`, if any.
    fn credentials_of(&self, registry: &str) -> Result<Option<(String, String)>> {
        self.credentials.get(registry)
    }

    /// An authorized session with `r`'s repository, with the stored
    /// credentials of its registry.
    pub(super) async fn session(&self, r: &Reference, access: Access) -> Result<Session<'_>> {
        let creds = self.credentials_of(r.registry())?;
        Session::open(
            &self.http,
            self.plain_http_allowed(r.registry()),
            r,
            creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
            access,
        )
        .await
    }

    async fn fetch_manifest(
        &self,
        session: &Session<'_>,
        r: &Reference,
        expected: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest)> {
        let fetched = super::manifest_fetch::fetch(
            session,
            r,
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
        let session = self.session(r, Access::Pull).await?;
        let expected = r.digest().map(Digest::parse).transpose()?;
        let (top_bytes, top_digest) = self.fetch_manifest(&session, r, expected.as_ref()).await?;
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
                    self.fetch_manifest(&session, &child_ref, Some(&d)).await?
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
                self.pull_blob(&session, blob, store, &mut staging, progress)
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
        session: &Session<'_>,
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
        let registry = session.registry();
        let url = session.url(&format!("blobs/{d}"));
        let mut resp = session
            .send(
                session.request(Method::GET, &url),
                &url,
                &[StatusCode::OK],
                " (no such blob)",
            )
            .await?;
        if let Some(len) = resp.content_length()
            && len > blob.size
        {
            return Err(ImageError::Invalid(format!(
                "blob {d} is {len} bytes, larger than its descriptor says ({} bytes)",
                blob.size
            )));
        }
        let mut w = staging.writer()?;
        let io_err = |e: std::io::Error| ImageError::Io {
            context: format!("cannot write blob {d}"),
            source: e,
        };
        progress.send(d.as_str(), kind, state::DOWNLOADING, 0, blob.size);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| failed(registry, format!("download of {d} broke off: {e}")))?
        {
            if w.written() + chunk.len() as u64 > blob.size {
                return Err(ImageError::Invalid(format!(
                    "blob {d} is larger than its descriptor says ({} bytes)",
                    blob.size
                )));
            }
            w.write_all(&chunk).map_err(io_err)?;
            progress.send(d.as_str(), kind, state::DOWNLOADING, w.written(), blob.size);
        }
        // The writer checks the digest and size before the blob is staged.
        w.finish(&d, Some(blob.size))?;
        progress.send(d.as_str(), kind, state::DONE, blob.size, blob.size);
        Ok(())
    }

    /// Whether the registry holds blob `d` in the session's repository.
    async fn blob_exists(&self, session: &Session<'_>, d: &Digest) -> Result<bool> {
        let url = session.url(&format!("blobs/{d}"));
        let resp = session
            .send(
                session.request(Method::HEAD, &url),
                &url,
                &[StatusCode::OK, StatusCode::NOT_FOUND],
                "",
            )
            .await?;
        Ok(resp.status() == StatusCode::OK)
    }

    /// Uploads `data` as blob `d` (a monolithic upload: POST, then PUT).
    async fn push_blob(&self, session: &Session<'_>, d: &Digest, data: Vec<u8>) -> Result<()> {
        let start = session.url("blobs/uploads/");
        let resp = session
            .send(
                session.request(Method::POST, &start),
                &start,
                &[StatusCode::ACCEPTED],
                "",
            )
            .await?;
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| resp.url().join(l).ok())
            .ok_or_else(|| {
                failed(
                    session.registry(),
                    format!("{start}: the upload was accepted without a usable Location"),
                )
            })?;
        drop(resp);
        let mut put = location;
        put.query_pairs_mut().append_pair("digest", d.as_str());
        let url = put.to_string();
        session
            .send(
                session
                    .request(Method::PUT, &url)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(data),
                &format!("upload of {d}"),
                &[StatusCode::CREATED],
                "",
            )
            .await?;
        Ok(())
    }

    /// PUTs manifest `bytes` under `key` (a tag or digest).
    async fn push_manifest(
        &self,
        session: &Session<'_>,
        key: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let url = session.url(&format!("manifests/{key}"));
        session
            .send(
                session
                    .request(Method::PUT, &url)
                    .header(header::CONTENT_TYPE, media_type)
                    .body(bytes),
                &url,
                &[StatusCode::CREATED],
                "",
            )
            .await?;
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
        let session = self.session(r, Access::Push).await?;
        let top = &entry.descriptor;
        let top_bytes = store.read_blob(&top.digest()?)?;
        let manifests: Vec<(Descriptor, Vec<u8>)> = if top.is_index() {
            format::parse_index(&top_bytes)?
                .manifests
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
                if self.blob_exists(&session, &d).await? {
                    progress.send(d.as_str(), kind, state::EXISTS, blob.size, blob.size);
                    continue;
                }
                progress.send(d.as_str(), kind, state::UPLOADING, 0, blob.size);
                let data = store.read_blob(&d)?;
                self.push_blob(&session, &d, data).await?;
                progress.send(d.as_str(), kind, state::DONE, blob.size, blob.size);
            }
            if top.is_index() {
                self.push_manifest(&session, &desc.digest, &desc.media_type, bytes.clone())
                    .await?;
                progress.send(&desc.digest, "manifest", state::DONE, desc.size, desc.size);
            }
        }
        let key = r.tag().or(r.digest()).unwrap_or("latest");
        self.push_manifest(&session, key, &top.media_type, top_bytes)
            .await?;
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
        // A repository that need not exist: the registry's challenge and
        // `/v2/` decide whether the credentials are good.
        let probe = Reference::with_tag(
            registry.into(),
            "gadgetd/login-check".into(),
            "latest".into(),
        );
        let rejected = || {
            failed(
                registry,
                format!("login as `{user}` failed: wrong username or password"),
            )
        };
        let session = match Session::open(
            &self.http,
            self.plain_http_allowed(registry),
            &probe,
            Some((user, password)),
            Access::Pull,
        )
        .await
        {
            Ok(s) => s,
            Err(ImageError::CredentialsRejected { reason, .. }) => {
                tracing::debug!(%reason, "login rejected");
                return Err(rejected());
            }
            Err(e) => return Err(e),
        };
        if !session.authorized().await? {
            return Err(rejected());
        }
        self.credentials.set(registry, user, password)
    }
}
