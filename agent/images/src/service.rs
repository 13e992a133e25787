//! The agent's image service: the store, registries and naming together
//! (the D-Bus side is `gadgetd`'s `service::images`).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gadgetd_dbus::images::ImageSummary;
use oci_client::Reference;

use super::archive;
use super::credentials::Credentials;
use super::error::{ImageError, Result};
use super::format::{self, ANN_CREATED, Descriptor};
use super::reference;
use super::registry::Registries;
use super::store::{Entry, Store};
use super::{signature, signatures};

/// Where packages put the bundled gadgets' images.
pub const BUNDLED_IMAGES: &str = "/usr/lib/gadgetd/gadgets.tar";

/// Largest archive `Import` reads.
const MAX_ARCHIVE_BYTES: u64 = 1 << 30;

/// `gadgetd` options of the image store.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Registry/repository prefix that bare image names (`trace_open`)
    /// resolve to [default: `default-registry` in the registry settings
    /// file, else ghcr.io/gadgetd/gadget].
    #[arg(long, env = "GADGETD_DEFAULT_REGISTRY", value_name = "PREFIX")]
    pub default_registry: Option<String>,
    /// Registry settings (TOML: default-registry, insecure-registries);
    /// a missing file means the defaults. See docs/images.md.
    #[arg(long, value_name = "FILE", default_value = super::config::DEFAULT_PATH)]
    pub registries_config: PathBuf,
    /// A registry (HOST[:PORT]) that may be used over plain HTTP (repeatable).
    /// Loopback registries always may.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// An OCI archive, or a directory of them (*.tar), imported at start
    /// when the images it names are not in the store yet (the gadgets shipped
    /// with gadgetd; `make` builds build/gadgets.tar).
    #[arg(long, value_name = "FILE|DIR", default_value = BUNDLED_IMAGES)]
    pub bundled_images: PathBuf,
    /// Directory of run policies (*.toml: trusted keys, allowed gadgets);
    /// see docs/signing.md. Missing: everything may run.
    #[arg(long, value_name = "DIR", default_value = super::policy::DEFAULT_POLICY_DIR)]
    pub policy_dir: PathBuf,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            default_registry: None,
            registries_config: super::config::DEFAULT_PATH.into(),
            insecure_registries: Vec::new(),
            bundled_images: BUNDLED_IMAGES.into(),
            policy_dir: super::policy::DEFAULT_POLICY_DIR.into(),
        }
    }
}

/// A local image ready to run: the host architecture's program and definition.
pub struct Runnable {
    pub reference: String,
    pub digest: String,
    pub program: Vec<u8>,
    pub definition: String,
    /// Layers of the manifest gadgetd does not run, each as
    /// `<media type> layer <digest>` (for a warning).
    pub ignored: Vec<String>,
}

pub struct ImageService {
    pub store: Store,
    pub registries: Registries,
    pub default_prefix: String,
    /// What may run (re-read when its files change).
    pub policy: super::policy::PolicyStore,
}

impl ImageService {
    /// Opens the store under `state_dir/images` and imports bundled archives.
    pub fn open(state_dir: &Path, opts: &Options) -> Result<Arc<ImageService>> {
        let (default_prefix, insecure) = super::config::resolve(
            opts.default_registry.as_deref(),
            &opts.insecure_registries,
            &opts.registries_config,
        )?;
        let store = Store::open(&state_dir.join("images"))?;
        store.clean_staging()?;
        let svc = Arc::new(ImageService {
            store,
            registries: Registries::new(insecure, Credentials::new(&state_dir.join("auth.json"))),
            default_prefix,
            policy: super::policy::PolicyStore::open(&opts.policy_dir),
        });
        svc.import_bundled(&opts.bundled_images);
        Ok(svc)
    }

    fn import_bundled(&self, path: &Path) {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "tar"))
                .collect(),
            Err(_) if path.is_file() => vec![path.to_path_buf()],
            Err(_) => return,
        };
        files.sort();
        for f in files {
            let result = std::fs::File::open(&f)
                .map_err(|e| ImageError::Io {
                    context: format!("cannot open {}", f.display()),
                    source: e,
                })
                .and_then(|file| self.import(file, None, true));
            match result {
                Ok(images) if !images.is_empty() => {
                    tracing::info!(archive = %f.display(), images = ?images, "imported bundled images")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(archive = %f.display(), error = %e, "cannot import bundled images")
                }
            }
        }
    }

    pub fn normalize(&self, input: &str) -> Result<Reference> {
        reference::normalize(input, &self.default_prefix)
    }

    /// A local image by full name, by name with the default prefix, or by
    /// digest (prefix). The flag says whether a tag matched.
    pub fn resolve_local(&self, key: &str) -> Result<(Entry, bool)> {
        let entries = self.store.entries()?;
        let by_name = |name: &str| {
            entries
                .iter()
                .find(|e| e.name.as_deref() == Some(name))
                .cloned()
        };
        if let Some(e) = by_name(key) {
            return Ok((e, true));
        }
        if let Some(e) = self
            .normalize(key)
            .ok()
            .and_then(|r| by_name(&reference::store_name(&r)))
        {
            return Ok((e, true));
        }
        self.store.resolve(key).map(|e| (e, false))
    }

    /// The manifest for this host from an image's top descriptor.
    pub fn host_manifest(&self, top: &Descriptor) -> Result<(format::Manifest, String)> {
        let bytes = self
            .store
            .read_blob_max(&top.digest()?, format::MAX_MANIFEST_BYTES)?;
        if top.is_index() {
            let index = format::parse_index(&bytes)?;
            let is_gadget = |d: &Descriptor| {
                d.digest()
                    .and_then(|d| self.store.read_blob_max(&d, format::MAX_MANIFEST_BYTES))
                    .and_then(|b| format::parse_manifest(&b))
                    .is_ok_and(|m| format::is_gadget_manifest(&m))
            };
            let d = format::pick_platform(&index, format::host_arch(), is_gadget)?;
            let m = format::parse_manifest(
                &self
                    .store
                    .read_blob_max(&d.digest()?, format::MAX_MANIFEST_BYTES)?,
            )?;
            Ok((m, d.digest.clone()))
        } else {
            Ok((format::parse_manifest(&bytes)?, top.digest.clone()))
        }
    }

    pub fn runnable(&self, key: &str) -> Result<Runnable> {
        let (entry, _) = self.resolve_local(key)?;
        let (manifest, _) = self.host_manifest(&entry.descriptor)?;
        let parts = format::gadget_parts(&manifest)?;
        let definition = self
            .store
            .read_blob_max(&parts.config.digest()?, format::MAX_CONFIG_BYTES)?;
        let definition = String::from_utf8(definition)
            .map_err(|_| ImageError::Invalid("the definition (config) is not UTF-8 YAML".into()))?;
        let program = self
            .store
            .read_blob_max(&parts.program.digest()?, format::MAX_PROGRAM_BYTES)?;
        Ok(Runnable {
            reference: entry
                .name
                .clone()
                .unwrap_or_else(|| entry.descriptor.digest.clone()),
            digest: entry.descriptor.digest.clone(),
            program,
            definition,
            ignored: parts
                .ignored
                .iter()
                .map(|l| format!("{} layer {}", l.media_type, l.digest))
                .collect(),
        })
    }

    pub fn summary(&self, e: &Entry) -> ImageSummary {
        let d = &e.descriptor;
        let size = self
            .store
            .closure(d)
            .map(|c| {
                c.iter()
                    .filter_map(|b| std::fs::metadata(self.store.blob_path(b)).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let mut architectures = Vec::new();
        let mut created = String::new();
        if let Ok(bytes) = d
            .digest()
            .and_then(|dg| self.store.read_blob_max(&dg, format::MAX_MANIFEST_BYTES))
        {
            if d.is_index() {
                if let Ok(index) = format::parse_index(&bytes) {
                    architectures = index
                        .manifests
                        .iter()
                        .filter_map(|m| m.platform.as_ref().map(|p| p.architecture.clone()))
                        .collect();
                    created = index
                        .annotations
                        .get(ANN_CREATED)
                        .cloned()
                        .unwrap_or_default();
                }
            } else if let Ok(m) = format::parse_manifest(&bytes) {
                created = m.annotations.get(ANN_CREATED).cloned().unwrap_or_default();
            }
        }
        ImageSummary {
            reference: e.name.clone().unwrap_or_default(),
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            size,
            architectures,
            created,
        }
    }

    /// Imports an OCI archive. With `skip_present`, names already in the
    /// store are left alone (bundled images never overwrite the user's).
    pub fn import(
        &self,
        input: impl std::io::Read,
        tag: Option<&str>,
        skip_present: bool,
    ) -> Result<Vec<(String, String)>> {
        let mut staging = self.store.staging()?;
        let imported = archive::read(std::io::Read::take(input, MAX_ARCHIVE_BYTES), &mut staging)?;
        // Signature images come along under their own names.
        let is_sig = |n: &Option<String>| n.as_deref().and_then(signature::signed_digest).is_some();
        let gadgets = imported.images.iter().filter(|(n, _)| !is_sig(n)).count();
        if tag.is_some() && gadgets != 1 {
            return Err(ImageError::Archive(format!(
                "the archive holds {gadgets} images; --tag needs exactly one"
            )));
        }
        let mut images = Vec::new();
        for (name, desc) in imported.images {
            let tag = if is_sig(&name) { None } else { tag };
            let name = match tag.or(name.as_deref()) {
                Some(n) => Some(reference::store_name(&self.normalize(n)?)),
                None => None,
            };
            if skip_present && name.as_ref().is_some_and(|n| self.store.resolve(n).is_ok()) {
                continue;
            }
            images.push((name, desc));
        }
        self.store.commit(&staging, &images)?;
        Ok(images
            .into_iter()
            .map(|(n, d)| (n.unwrap_or_default(), d.digest))
            .collect())
    }

    /// Writes one OCI archive holding `keys` to a pipe; returns its read end.
    /// The archive is streamed from the store's files by a thread of its own
    /// (memory stays bounded); `guard` is dropped when the writing ends (the
    /// caller's export slot). On an error the stream stops without tar's
    /// end-of-archive blocks, so the reader can tell it is incomplete.
    pub fn export(
        self: &Arc<Self>,
        keys: &[String],
        guard: impl Send + 'static,
    ) -> Result<OwnedFd> {
        let mut images = Vec::new();
        for k in keys {
            let (e, _) = self.resolve_local(k)?;
            images.push((e.name.clone(), e.descriptor.clone()));
        }
        // Signatures travel with their images (air-gapped hosts verify offline).
        for sig in signatures::with_signatures(&self.store, &images)? {
            images.push((sig.name, sig.descriptor));
        }
        // Missing or broken blobs are reported to the caller, not mid-stream.
        for (_, d) in &images {
            self.store.closure(d)?;
        }
        let (read, write) = nix::unistd::pipe().map_err(|e| ImageError::Io {
            context: "pipe".into(),
            source: e.into(),
        })?;
        let svc = self.clone();
        std::thread::spawn(move || {
            let out = std::io::BufWriter::with_capacity(256 << 10, std::fs::File::from(write));
            if let Err(e) = archive::write_from_store(out, &svc.store, &images, source_date_epoch())
            {
                tracing::debug!(error = %e, "export ended early");
            }
            drop(guard);
        });
        Ok(read)
    }

    pub fn tag(&self, source: &str, target: &str) -> Result<String> {
        let (entry, _) = self.resolve_local(source)?;
        let name = reference::store_name(&self.normalize(target)?);
        self.store.tag(&entry, &name)?;
        Ok(name)
    }

    pub fn remove(&self, keys: &[String]) -> Result<(Vec<String>, u64)> {
        let mut exact = Vec::new();
        for k in keys {
            let (e, by_name) = self.resolve_local(k)?;
            exact.push(if by_name {
                e.name.unwrap_or_default()
            } else {
                e.descriptor.digest
            });
        }
        let (mut removed, mut freed) = self.store.remove(&exact)?;
        // Signatures of images no longer in the store go too.
        let orphans = signatures::orphaned(&self.store)?;
        if !orphans.is_empty() {
            let (more, more_freed) = self.store.remove(&orphans)?;
            removed.extend(more);
            freed += more_freed;
        }
        Ok((removed, freed))
    }
}

/// The mtime of archive members: SOURCE_DATE_EPOCH, else 0 (reproducible).
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
