//! The local image store: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/`) that skopeo and other OCI tools read as `oci:DIR:REF`.
//!
//! Safe under concurrent writers: new blobs are written into a private
//! staging directory first (no lock while downloading), then a commit takes
//! an exclusive `flock`, renames them into `blobs/` and replaces `index.json`
//! atomically (write, fsync, rename). A commit checks that every blob an
//! image references is present first, so a failed pull or import leaves
//! nothing behind. Removing tags garbage-collects unreferenced blobs under
//! the same lock. Every blob read is checked against its digest.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::digest::{self, Digest, Hasher};
use super::error::{ImageError, IoContext, Result};
use super::format::{self, ANN_REF_NAME, Descriptor, Index};

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = b"{\"imageLayoutVersion\":\"1.0.0\"}";
const INDEX_FILE: &str = "index.json";
const STAGING_DIR: &str = ".staging";
const LOCK_FILE: &str = ".lock";
/// Space held back so that `remove` can rewrite index.json on a full disk
/// (it frees this first, then the removed images' blobs, then takes it
/// again).
const RESERVE_FILE: &str = ".reserve";
const RESERVE_BYTES: usize = 256 << 10;

pub struct Store {
    root: PathBuf,
}

/// One image in the store's `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The full reference (`registry/repo:tag`); `None` for untagged images.
    pub name: Option<String>,
    pub descriptor: Descriptor,
}

/// Exclusive store lock, released on drop.
struct Lock(#[allow(dead_code)] Flock<File>);

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write()
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
        .ctx(|| format!("cannot write {}", path.display()))
}

impl Store {
    /// Opens (creating if needed) the layout at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        let store = Store {
            root: root.to_path_buf(),
        };
        fs::create_dir_all(store.blobs_dir())
            .ctx(|| format!("cannot create the image store {}", root.display()))?;
        fs::create_dir_all(root.join(STAGING_DIR))
            .ctx(|| format!("cannot create {}", root.join(STAGING_DIR).display()))?;
        // Other OCI tools (skopeo as any user) may read the layout; blobs are public content.
        let _ = fs::set_permissions(root, fs::Permissions::from_mode(0o755));
        let _lock = store.lock()?;
        if !root.join(LAYOUT_FILE).exists() {
            write_atomic(&root.join(LAYOUT_FILE), LAYOUT_CONTENT)?;
        }
        if !root.join(INDEX_FILE).exists() {
            write_atomic(&root.join(INDEX_FILE), &format::to_json(&Index::empty()))?;
        }
        store.keep_reserve();
        Ok(store)
    }

    /// Makes sure the reserve file holds its space (best effort: on a full
    /// disk it stays smaller until `remove` frees something).
    fn keep_reserve(&self) {
        let path = self.root.join(RESERVE_FILE);
        if fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
            return;
        }
        // Written, not sparse: the blocks must really be taken.
        if let Err(e) = fs::write(&path, vec![0u8; RESERVE_BYTES]) {
            let _ = fs::remove_file(&path);
            tracing::debug!(error = %e, "no room for the image store's reserve");
        }
    }

    /// Removes staging directories left by a crashed agent. Call once at
    /// agent start, before any pull or import can be staging.
    pub fn clean_staging(&self) -> Result<()> {
        let _lock = self.lock()?;
        let dir = self.root.join(STAGING_DIR);
        for e in fs::read_dir(&dir)
            .ctx(|| format!("cannot list {}", dir.display()))?
            .flatten()
        {
            let _ = fs::remove_dir_all(e.path());
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }

    fn lock(&self) -> Result<Lock> {
        let path = self.root.join(LOCK_FILE);
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .ctx(|| format!("cannot open {}", path.display()))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map(Lock)
            .map_err(|(_, e)| ImageError::Io {
                context: format!("cannot lock {}", path.display()),
                source: e.into(),
            })
    }

    /// The store's `index.json`.
    pub fn index(&self) -> Result<Index> {
        let path = self.root.join(INDEX_FILE);
        let bytes = fs::read(&path).ctx(|| format!("cannot read {}", path.display()))?;
        format::parse_index(&bytes)
    }

    fn write_index(&self, index: &Index, _lock: &Lock) -> Result<()> {
        write_atomic(&self.root.join(INDEX_FILE), &format::to_json(index))
    }

    pub fn entries(&self) -> Result<Vec<Entry>> {
        Ok(self
            .index()?
            .manifests
            .into_iter()
            .map(|d| Entry {
                name: d.ref_name().map(str::to_string),
                descriptor: d,
            })
            .collect())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// A blob's bytes, checked against its digest; refused when larger than
    /// `max` bytes (checked before anything is read).
    pub fn read_blob_max(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        read_capped(&self.blob_path(d), d, max)
    }

    /// A blob's bytes, checked against its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(d);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                ImageError::Invalid(format!("blob {d} is missing from the store"))
            }
            _ => ImageError::Io {
                context: format!("cannot read {}", path.display()),
                source: e,
            },
        })?;
        digest::verify(d, &bytes)?;
        Ok(bytes)
    }

    /// Finds an image by full reference, digest (`sha256:...`), or a unique
    /// prefix (4+ hex digits) of its digest.
    pub fn resolve(&self, key: &str) -> Result<Entry> {
        let entries = self.entries()?;
        if let Some(e) = entries.iter().find(|e| e.name.as_deref() == Some(key)) {
            return Ok(e.clone());
        }
        let hex = key.strip_prefix("sha256:").unwrap_or(key);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found: Vec<&Entry> = entries
                .iter()
                .filter(|e| e.descriptor.digest[7..].starts_with(hex))
                .collect();
            found.dedup_by(|a, b| a.descriptor.digest == b.descriptor.digest);
            return match found.as_slice() {
                [one] => Ok((*one).clone()),
                [] => Err(ImageError::NotFound(key.into())),
                _ => Err(ImageError::Ambiguous(key.into())),
            };
        }
        Err(ImageError::NotFound(key.into()))
    }

    /// A new staging area for blobs of one pull/import/build.
    pub fn staging(&self) -> Result<Staging> {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).expect("the kernel's random source works");
        let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let dir = self.root.join(STAGING_DIR).join(name);
        fs::create_dir(&dir).ctx(|| format!("cannot create {}", dir.display()))?;
        Ok(Staging {
            dir,
            blobs: BTreeSet::new(),
        })
    }

    /// Moves the staged blobs into the store and points `images` at them
    /// (a `Some` name replaces that tag; `None` adds an untagged entry).
    /// Fails, changing nothing, when any referenced blob is missing.
    pub fn commit(&self, staging: &Staging, images: &[(Option<String>, Descriptor)]) -> Result<()> {
        let lock = self.lock()?;
        for (_, desc) in images {
            self.closure_with(desc, Some(staging))?;
        }
        for d in &staging.blobs {
            let dest = self.blob_path(d);
            if dest.exists() {
                continue;
            }
            let src = staging.path_of(d);
            fs::rename(&src, &dest)
                .ctx(|| format!("cannot move {} to {}", src.display(), dest.display()))?;
        }
        File::open(self.blobs_dir())
            .and_then(|d| d.sync_all())
            .ctx(|| "cannot sync the blobs directory".into())?;
        let mut index = self.index()?;
        for (name, desc) in images {
            add_entry(&mut index, name.as_deref(), desc);
        }
        self.write_index(&index, &lock)
    }

    /// Adds tag `name` to the image `target` points at.
    pub fn tag(&self, target: &Entry, name: &str) -> Result<()> {
        let lock = self.lock()?;
        let mut index = self.index()?;
        add_entry(&mut index, Some(name), &target.descriptor);
        self.write_index(&index, &lock)
    }

    /// Removes images by name or digest (a digest removes every tag of it),
    /// then garbage-collects. Returns the removed names and the bytes freed.
    pub fn remove(&self, keys: &[String]) -> Result<(Vec<String>, u64)> {
        let lock = self.lock()?;
        let mut index = self.index()?;
        let mut removed = Vec::new();
        // Resolve everything first: an unknown key removes nothing.
        let mut targets = Vec::new();
        for key in keys {
            targets.push(self.resolve(key)?);
        }
        for (key, t) in keys.iter().zip(targets) {
            let by_name = t.name.as_deref() == Some(key.as_str());
            index.manifests.retain(|d| {
                let hit = if by_name {
                    d.ref_name() == Some(key.as_str())
                } else {
                    d.digest == t.descriptor.digest
                };
                if hit {
                    removed.push(d.ref_name().unwrap_or(&d.digest).to_string());
                }
                !hit
            });
        }
        if let Err(e) = self.write_index(&index, &lock) {
            if !e.is_no_space() {
                return Err(e);
            }
            // A full disk: the reserve makes room for the new index.
            let _ = fs::remove_file(self.root.join(RESERVE_FILE));
            self.write_index(&index, &lock)?;
        }
        let freed = self.gc_locked(&index, &lock)?;
        self.keep_reserve();
        Ok((removed, freed))
    }

    /// Deletes blobs no image references. Returns the bytes freed.
    pub fn gc(&self) -> Result<u64> {
        let lock = self.lock()?;
        let index = self.index()?;
        self.gc_locked(&index, &lock)
    }

    fn gc_locked(&self, index: &Index, _lock: &Lock) -> Result<u64> {
        let mut live = BTreeSet::new();
        for d in &index.manifests {
            // An image with a corrupt manifest keeps what we can still see.
            match self.closure_with(d, None) {
                Ok(c) => live.extend(c),
                Err(e) => {
                    tracing::warn!(image = %d.digest, error = %e, "image is damaged; keeping its blobs");
                    return Ok(0);
                }
            }
        }
        let mut freed = 0;
        let dir = self.blobs_dir();
        for e in fs::read_dir(&dir)
            .ctx(|| format!("cannot list {}", dir.display()))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let keep = Digest::parse(&format!("sha256:{name}")).is_ok_and(|d| live.contains(&d));
            if !keep {
                freed += e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path())
                    .ctx(|| format!("cannot remove {}", e.path().display()))?;
            }
        }
        Ok(freed)
    }

    /// Every blob `desc` references (itself included), checked.
    pub fn closure(&self, desc: &Descriptor) -> Result<Vec<Digest>> {
        self.closure_with(desc, None)
            .map(|s| s.into_iter().collect())
    }

    /// Reads a blob (at most `max` bytes) from the staging area when there,
    /// else from the store.
    fn read_from(&self, d: &Digest, staging: Option<&Staging>, max: u64) -> Result<Vec<u8>> {
        match staging {
            Some(s) if s.blobs.contains(d) => read_capped(&s.path_of(d), d, max),
            _ => self.read_blob_max(d, max),
        }
    }

    fn closure_with(
        &self,
        desc: &Descriptor,
        staging: Option<&Staging>,
    ) -> Result<BTreeSet<Digest>> {
        let mut out = BTreeSet::new();
        let mut todo = vec![desc.clone()];
        while let Some(d) = todo.pop() {
            let digest = d.digest()?;
            if !out.insert(digest.clone()) {
                continue;
            }
            format::check_size(&d)?;
            let is_manifest = d.media_type == format::MANIFEST_MEDIA_TYPE
                || d.media_type == format::DOCKER_MANIFEST_MEDIA_TYPE;
            if d.is_index() || is_manifest {
                let bytes = self.read_from(&digest, staging, format::MAX_MANIFEST_BYTES)?;
                if bytes.len() as u64 != d.size {
                    return Err(ImageError::Invalid(format!(
                        "{} is {} bytes, its descriptor says {}",
                        d.digest,
                        bytes.len(),
                        d.size
                    )));
                }
                if d.is_index() {
                    todo.extend(format::parse_index(&bytes)?.manifests);
                } else {
                    let m = format::parse_manifest(&bytes)?;
                    todo.push(m.config);
                    todo.extend(m.layers);
                }
            } else {
                let present =
                    staging.is_some_and(|s| s.blobs.contains(&digest)) || self.has_blob(&digest);
                if !present {
                    return Err(ImageError::Invalid(format!(
                        "blob {digest} ({}) is missing",
                        d.media_type
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Total size of the blobs directory (for `image list` and the benchmark).
    pub fn disk_usage(&self) -> u64 {
        fs::read_dir(self.blobs_dir())
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

fn add_entry(index: &mut Index, name: Option<&str>, desc: &Descriptor) {
    let mut desc = desc.clone();
    desc.annotations.remove(ANN_REF_NAME);
    match name {
        Some(n) => {
            index.manifests.retain(|d| d.ref_name() != Some(n));
            // The image no longer needs its untagged entry.
            index
                .manifests
                .retain(|d| !(d.ref_name().is_none() && d.digest == desc.digest));
            desc.annotations.insert(ANN_REF_NAME.into(), n.to_string());
            index.manifests.push(desc);
        }
        None => {
            if !index.manifests.iter().any(|d| d.digest == desc.digest) {
                index.manifests.push(desc);
            }
        }
    }
    index.manifests.sort_by(|a, b| {
        a.ref_name()
            .cmp(&b.ref_name())
            .then(a.digest.cmp(&b.digest))
    });
}

/// Blobs of one operation, waiting for [`Store::commit`]. Removed on drop.
pub struct Staging {
    dir: PathBuf,
    blobs: BTreeSet<Digest>,
}

impl Staging {
    fn path_of(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.blobs.contains(d)
    }

    /// Stores `bytes`; returns their digest.
    pub fn put(&mut self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        let path = self.path_of(&d);
        // Durable before index.json can name it.
        File::create(&path)
            .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
            .ctx(|| format!("cannot write {}", path.display()))?;
        self.blobs.insert(d.clone());
        Ok(d)
    }

    /// Stores `bytes` that must hash to `expected`.
    pub fn put_expected(&mut self, expected: &Digest, bytes: &[u8]) -> Result<()> {
        digest::verify(expected, bytes)?;
        self.put(bytes).map(|_| ())
    }

    /// A writer for a streamed blob; [`BlobWriter::finish`] checks the digest.
    pub fn writer(&mut self) -> Result<BlobWriter<'_>> {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).expect("the kernel's random source works");
        let path = self.dir.join(format!(
            "partial-{}",
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        let file = File::create(&path).ctx(|| format!("cannot create {}", path.display()))?;
        Ok(BlobWriter {
            staging: self,
            path,
            file,
            hasher: Hasher::new(),
            written: 0,
        })
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let bytes = fs::read(self.path_of(d)).ctx(|| format!("cannot read staged blob {d}"))?;
        digest::verify(d, &bytes)?;
        Ok(bytes)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A blob being written into a staging area.
pub struct BlobWriter<'a> {
    staging: &'a mut Staging,
    path: PathBuf,
    file: File,
    hasher: Hasher,
    written: u64,
}

impl BlobWriter<'_> {
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks the digest (and size, when known) and keeps the blob.
    pub fn finish(self, expected: &Digest, size: Option<u64>) -> Result<()> {
        let actual = self.hasher.finish();
        if &actual != expected {
            let _ = fs::remove_file(&self.path);
            return Err(ImageError::DigestMismatch {
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        if let Some(size) = size.filter(|s| *s != self.written) {
            let _ = fs::remove_file(&self.path);
            return Err(ImageError::Invalid(format!(
                "blob {expected} is {} bytes, its descriptor says {size}",
                self.written
            )));
        }
        self.file
            .sync_all()
            .ctx(|| format!("cannot sync {}", self.path.display()))?;
        let dest = self.staging.path_of(expected);
        fs::rename(&self.path, &dest).ctx(|| format!("cannot rename {}", self.path.display()))?;
        self.staging.blobs.insert(expected.clone());
        Ok(())
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Copies a reader into a blob writer (for archives).
/// Reads the blob file `path` (digest `d`) if it holds at most `max` bytes.
fn read_capped(path: &Path, d: &Digest, max: u64) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let missing = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => {
            ImageError::Invalid(format!("blob {d} is missing from the store"))
        }
        _ => ImageError::Io {
            context: format!("cannot read {}", path.display()),
            source: e,
        },
    };
    let file = File::open(path).map_err(missing)?;
    let too_large = || {
        ImageError::Invalid(format!(
            "blob {d} is larger than {max} bytes, the limit for it"
        ))
    };
    if file.metadata().map_err(missing)?.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(missing)?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    digest::verify(d, &bytes)?;
    Ok(bytes)
}

pub fn copy_into(mut r: impl Read, w: &mut BlobWriter<'_>) -> std::io::Result<u64> {
    std::io::copy(&mut r, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ArchBuild, BuildInfo, assemble};

    fn temp_root(tag: &str) -> PathBuf {
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).unwrap();
        std::env::temp_dir().join(format!(
            "gadgetd-store-{tag}-{}",
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ))
    }

    fn image(program: &[u8]) -> format::BuiltImage {
        assemble(
            &[ArchBuild {
                arch: "amd64".into(),
                program: program.to_vec(),
            }],
            &BuildInfo {
                definition: b"name: x\n".to_vec(),
                ..Default::default()
            },
        )
    }

    fn commit(store: &Store, name: &str, img: &format::BuiltImage) {
        let mut s = store.staging().unwrap();
        for b in img.blobs.values() {
            s.put(b).unwrap();
        }
        store
            .commit(&s, &[(Some(name.into()), img.index.clone())])
            .unwrap();
    }

    #[test]
    fn commit_tag_resolve_remove_and_gc() {
        let root = temp_root("basic");
        let store = Store::open(&root).unwrap();
        let a = image(b"A");
        let b = image(b"B");
        commit(&store, "r.example/a:1", &a);
        commit(&store, "r.example/b:1", &b);
        assert_eq!(
            std::fs::read(root.join("oci-layout")).unwrap(),
            LAYOUT_CONTENT
        );
        let e = store.resolve("r.example/a:1").unwrap();
        assert_eq!(e.descriptor.digest, a.index.digest);
        assert_eq!(
            store
                .resolve(&a.index.digest[..14])
                .unwrap()
                .descriptor
                .digest,
            a.index.digest
        );
        assert!(matches!(
            store.resolve("r.example/none:1"),
            Err(ImageError::NotFound(_))
        ));

        store.tag(&e, "r.example/a:2").unwrap();
        let names: Vec<_> = store
            .entries()
            .unwrap()
            .into_iter()
            .filter_map(|e| e.name)
            .collect();
        assert_eq!(names, ["r.example/a:1", "r.example/a:2", "r.example/b:1"]);

        // Removing one of two tags frees nothing; the config blob is shared by a and b.
        let (removed, freed) = store.remove(&["r.example/a:1".into()]).unwrap();
        assert_eq!((removed, freed), (vec!["r.example/a:1".to_string()], 0));
        let (_, freed) = store.remove(&["r.example/a:2".into()]).unwrap();
        assert!(freed > 0);
        let a_program = Digest::of(b"A");
        assert!(!store.has_blob(&a_program));
        assert!(!store.has_blob(&a.index.digest().unwrap()));
        assert!(
            store.has_blob(&Digest::of(b"name: x\n")),
            "shared config kept"
        );
        assert!(store.has_blob(&Digest::of(b"B")));
        // Unknown names remove nothing.
        assert!(
            store
                .remove(&["r.example/b:1".into(), "nope:1".into()])
                .is_err()
        );
        assert!(store.resolve("r.example/b:1").is_ok());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn incomplete_commits_and_corrupt_blobs_change_nothing() {
        let root = temp_root("bad");
        let store = Store::open(&root).unwrap();
        let a = image(b"A");
        commit(&store, "r.example/a:1", &a);
        let before = std::fs::read(root.join("index.json")).unwrap();

        // A staged image missing its program blob is refused.
        let b = image(b"B");
        let mut s = store.staging().unwrap();
        for (d, bytes) in &b.blobs {
            if *d != Digest::of(b"B") {
                s.put(bytes).unwrap();
            }
        }
        let err = store
            .commit(&s, &[(Some("r.example/b:1".into()), b.index.clone())])
            .unwrap_err();
        assert!(
            err.to_string().contains(&Digest::of(b"B").to_string()),
            "{err}"
        );
        drop(s);
        assert_eq!(std::fs::read(root.join("index.json")).unwrap(), before);
        assert!(!store.has_blob(&b.index.digest().unwrap()));

        // A streamed blob with the wrong digest is not kept.
        let mut s = store.staging().unwrap();
        let mut w = s.writer().unwrap();
        w.write_all(b"evil").unwrap();
        let err = w.finish(&Digest::of(b"good"), None).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }));
        assert!(!s.contains(&Digest::of(b"good")));

        // A blob corrupted on disk is detected on read.
        let p = store.blob_path(&Digest::of(b"A"));
        std::fs::write(&p, b"Z").unwrap();
        assert!(matches!(
            store.read_blob(&Digest::of(b"A")),
            Err(ImageError::DigestMismatch { .. })
        ));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn concurrent_writers_lose_no_tags() {
        let root = temp_root("conc");
        Store::open(&root).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let root = root.clone();
                std::thread::spawn(move || {
                    let store = Store::open(&root).unwrap();
                    for j in 0..5 {
                        commit(
                            &store,
                            &format!("r.example/t{i}:{j}"),
                            &image(format!("P{i}-{j}").as_bytes()),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let store = Store::open(&root).unwrap();
        assert_eq!(store.entries().unwrap().len(), 40);
        assert_eq!(store.gc().unwrap(), 0);
        std::fs::remove_dir_all(root).unwrap();
    }
}
