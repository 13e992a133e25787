//! OCI archives: a tar of an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/*`), as `skopeo copy ... oci-archive:F.tar` and
//! `ctr images import` use. For air-gapped hosts and for `gadgetctl build`.
//!
//! Writing is deterministic (sorted entries, fixed owner, mode and mtime) so
//! a rebuild yields the same bytes. Reading trusts nothing: only regular
//! files and directories with plain relative paths, every blob hashed
//! against its file name, and nothing reaches the store until the caller
//! commits the staging area.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path};

use super::digest::Digest;
use super::error::{ImageError, IoContext, Result};
use super::format::{self, Descriptor, Index};
use super::store::Staging;

/// Largest `index.json` accepted.
const MAX_INDEX_BYTES: u64 = 4 << 20;

/// Writes an OCI archive holding `blobs` and naming `images` in index.json.
pub fn write(
    out: impl Write,
    blobs: &BTreeMap<Digest, Vec<u8>>,
    images: &[(Option<String>, Descriptor)],
    mtime: u64,
) -> Result<()> {
    write_with(out, blobs.keys(), images, mtime, |d| {
        let bytes = &blobs[d];
        Ok((
            bytes.len() as u64,
            Box::new(bytes.as_slice()) as Box<dyn Read + '_>,
        ))
    })
}

/// Writes an OCI archive of `images` straight from the store's blob files,
/// one file at a time: memory stays bounded whatever the images' size.
/// A blob that changed or went missing meanwhile ends the archive early
/// (without its end-of-archive blocks, so readers see it is truncated).
pub fn write_from_store(
    out: impl Write,
    store: &super::store::Store,
    images: &[(Option<String>, Descriptor)],
    mtime: u64,
) -> Result<()> {
    let mut blobs = std::collections::BTreeSet::new();
    for (_, desc) in images {
        blobs.extend(store.closure(desc)?);
    }
    write_with(out, blobs.iter(), images, mtime, |d| {
        let path = store.blob_path(d);
        let file = std::fs::File::open(&path).ctx(|| format!("cannot read {}", path.display()))?;
        let len = file
            .metadata()
            .ctx(|| format!("cannot read {}", path.display()))?
            .len();
        Ok((len, Box::new(file) as Box<dyn Read + '_>))
    })
}

/// The archive writer behind [`write`] and [`write_from_store`]: `open`
/// gives each blob's size and contents.
fn write_with<'a, 'b>(
    out: impl Write,
    blobs: impl Iterator<Item = &'a Digest>,
    images: &[(Option<String>, Descriptor)],
    mtime: u64,
    mut open: impl FnMut(&Digest) -> Result<(u64, Box<dyn Read + 'b>)>,
) -> Result<()> {
    let mut index = Index::empty();
    for (name, desc) in images {
        let mut d = desc.clone();
        d.annotations.remove(format::ANN_REF_NAME);
        if let Some(n) = name {
            d.annotations.insert(format::ANN_REF_NAME.into(), n.clone());
        }
        index.manifests.push(d);
    }
    // tar's Builder writes the end-of-archive blocks when dropped, even
    // after an error; a cut-off output refuses them.
    let mut tar = tar::Builder::new(CutOff {
        inner: out,
        cut: false,
    });
    let result = write_members(&mut tar, &index, blobs, mtime, &mut open);
    if result.is_err() {
        tar.get_mut().cut = true;
        return result;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| ImageError::Io {
            context: "cannot write the archive".into(),
            source: e,
        })
}

/// Writes every member of the archive (not its end blocks).
fn write_members<'a, 'b, W: Write>(
    tar: &mut tar::Builder<W>,
    index: &Index,
    blobs: impl Iterator<Item = &'a Digest>,
    mtime: u64,
    open: &mut impl FnMut(&Digest) -> Result<(u64, Box<dyn Read + 'b>)>,
) -> Result<()> {
    let io = |e| ImageError::Io {
        context: "cannot write the archive".into(),
        source: e,
    };
    let header = |size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h
    };
    let dir = |tar: &mut tar::Builder<_>, path: &str| -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Directory);
        tar.append_data(&mut h, path, std::io::empty()).map_err(io)
    };
    let layout: &[u8] = b"{\"imageLayoutVersion\":\"1.0.0\"}";
    tar.append_data(&mut header(layout.len() as u64), "oci-layout", layout)
        .map_err(io)?;
    let index = format::to_json(index);
    tar.append_data(
        &mut header(index.len() as u64),
        "index.json",
        index.as_slice(),
    )
    .map_err(io)?;
    dir(tar, "blobs/")?;
    dir(tar, "blobs/sha256/")?;
    for d in blobs {
        let (size, reader) = open(d)?;
        // Exactly `size` bytes, or the archive is broken off (no end blocks).
        let mut reader = ExactReader {
            inner: reader.take(size),
            left: size,
        };
        tar.append_data(
            &mut header(size),
            format!("blobs/sha256/{}", d.hex()),
            &mut reader,
        )
        .map_err(io)?;
        if reader.left != 0 {
            return Err(ImageError::Invalid(format!(
                "blob {d} changed while it was being exported"
            )));
        }
    }
    Ok(())
}

/// A writer that, once `cut`, takes nothing more.
struct CutOff<W> {
    inner: W,
    cut: bool,
}

impl<W: Write> Write for CutOff<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.cut {
            return Err(std::io::Error::other("the archive was cut off"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that fails if its source ends before `left` bytes.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "blob shorter than its size",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Checks that a tar stream is whole: every member's data is there and
/// the end-of-archive blocks (two zero blocks) follow the last member. A
/// stream cut off anywhere, even between members, fails with what is
/// missing. Reads `input` to that end (or to EOF).
pub fn check_complete(mut input: impl Read) -> Result<()> {
    let cut = |what: String| ImageError::Archive(format!("the archive is incomplete: {what}"));
    let mut block = [0u8; 512];
    let mut members = 0u64;
    loop {
        if !read_block(&mut input, &mut block)? {
            return Err(cut(format!(
                "it ends after {members} members without the end-of-archive blocks"
            )));
        }
        if block.iter().all(|b| *b == 0) {
            if !read_block(&mut input, &mut block)? || block.iter().any(|b| *b != 0) {
                return Err(cut("its end-of-archive blocks are cut off".into()));
            }
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(&block);
        let size = header
            .entry_size()
            .map_err(|e| ImageError::Archive(format!("bad tar header: {e}")))?;
        let padded = size.div_ceil(512) * 512;
        let skipped = std::io::copy(&mut (&mut input).take(padded), &mut std::io::sink())
            .map_err(|e| cut(e.to_string()))?;
        if skipped != padded {
            return Err(cut(format!(
                "member {} has {skipped} of its {padded} bytes",
                members + 1
            )));
        }
        members += 1;
    }
}

/// Reads one 512-byte block; false at a clean end of the stream.
fn read_block(input: &mut impl Read, block: &mut [u8; 512]) -> Result<bool> {
    let mut got = 0;
    while got < block.len() {
        match input.read(&mut block[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(ImageError::Archive(
                    "the archive is incomplete: it ends inside a tar header".into(),
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(ImageError::Archive(format!("cannot read the archive: {e}")));
            }
        }
    }
    Ok(true)
}

/// Where an archive member goes; refuses anything that could escape.
enum Member {
    Layout,
    Index,
    Blob(Digest),
    Dir,
    Other,
}

fn classify(path: &Path) -> Result<Member> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(
                s.to_str()
                    .ok_or_else(|| ImageError::Archive(format!("non-UTF-8 path {path:?}")))?,
            ),
            Component::CurDir => {}
            _ => {
                return Err(ImageError::Archive(format!(
                    "unsafe path `{}` (absolute or with `..`); refusing the whole archive",
                    path.display()
                )));
            }
        }
    }
    Ok(match parts.as_slice() {
        ["oci-layout"] => Member::Layout,
        ["index.json"] => Member::Index,
        ["blobs"] | ["blobs", "sha256"] => Member::Dir,
        ["blobs", "sha256", hex] => {
            Member::Blob(Digest::parse(&format!("sha256:{hex}")).map_err(|_| {
                ImageError::Archive(format!("bad blob file name `{}`", path.display()))
            })?)
        }
        _ => Member::Other,
    })
}

/// What an archive held: its images (name from `ref.name`) and their blobs,
/// staged but not yet in the store.
pub struct Imported {
    pub images: Vec<(Option<String>, Descriptor)>,
}

/// Reads an OCI archive into `staging`, checking every blob's digest.
pub fn read(input: impl Read, staging: &mut Staging) -> Result<Imported> {
    let mut tar = tar::Archive::new(input);
    let mut index: Option<Index> = None;
    let mut saw_layout = false;
    let bad = |e: std::io::Error| {
        ImageError::Archive(format!(
            "cannot read the tar stream: {e} (truncated or not a tar file?)"
        ))
    };
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let member = classify(&path)?;
        let kind = entry.header().entry_type();
        match (&member, kind) {
            (Member::Dir, tar::EntryType::Directory) => continue,
            (Member::Other, _) => {
                tracing::debug!(path = %path.display(), "ignoring an archive member outside the OCI layout");
                continue;
            }
            (_, tar::EntryType::Regular) | (_, tar::EntryType::Continuous) => {}
            (_, other) => {
                return Err(ImageError::Archive(format!(
                    "`{}` is a {other:?} entry; only regular files are accepted",
                    path.display()
                )));
            }
        }
        match member {
            Member::Layout => saw_layout = true,
            Member::Index => {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(MAX_INDEX_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(bad)?;
                if bytes.len() as u64 > MAX_INDEX_BYTES {
                    return Err(ImageError::Archive("index.json is too large".into()));
                }
                index = Some(format::parse_index(&bytes)?);
            }
            Member::Blob(d) => {
                let size = entry.header().size().map_err(bad)?;
                let mut w = staging.writer()?;
                std::io::copy(&mut entry, &mut w).map_err(bad)?;
                if w.written() != size {
                    return Err(ImageError::Archive(format!("blob {d} is truncated")));
                }
                w.finish(&d, Some(size))?;
            }
            Member::Dir | Member::Other => {}
        }
    }
    let index = index.ok_or_else(|| {
        ImageError::Archive(
            "no index.json: not an OCI archive (docker-save archives are not supported; convert with `skopeo copy docker-archive:F oci-archive:G`)"
                .into(),
        )
    })?;
    if !saw_layout {
        tracing::debug!("archive has no oci-layout file; accepting it anyway");
    }
    if index.manifests.is_empty() {
        return Err(ImageError::Archive("index.json lists no images".into()));
    }
    let images = index
        .manifests
        .into_iter()
        .map(|d| (d.ref_name().map(str::to_string), d))
        .collect();
    Ok(Imported { images })
}

/// Reads the blobs of `images` from the store, for [`write`](fn@write).
pub fn collect_blobs(
    store: &super::store::Store,
    images: &[(Option<String>, Descriptor)],
) -> Result<BTreeMap<Digest, Vec<u8>>> {
    let mut blobs = BTreeMap::new();
    for (_, desc) in images {
        for d in store.closure(desc)? {
            if let std::collections::btree_map::Entry::Vacant(slot) = blobs.entry(d) {
                let bytes = store.read_blob(slot.key())?;
                slot.insert(bytes);
            }
        }
    }
    Ok(blobs)
}

/// Writes an archive to a file path (atomic: a partial file never appears).
pub fn write_file(
    path: &Path,
    blobs: &BTreeMap<Digest, Vec<u8>>,
    images: &[(Option<String>, Descriptor)],
    mtime: u64,
) -> Result<()> {
    let mut buf = Vec::new();
    write(&mut buf, blobs, images, mtime)?;
    let mut f = super::atomic_file::AtomicFile::create(path)
        .ctx(|| format!("cannot create {}", path.display()))?;
    f.write_all(&buf)
        .ctx(|| format!("cannot write {}", path.display()))?;
    f.commit()
        .ctx(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ArchBuild, BuildInfo, assemble};
    use crate::store::Store;

    fn root(tag: &str) -> std::path::PathBuf {
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).unwrap();
        std::env::temp_dir().join(format!(
            "gadgetd-archive-{tag}-{}",
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ))
    }

    fn archive() -> (Vec<u8>, Descriptor) {
        let img = assemble(
            &[ArchBuild {
                arch: "amd64".into(),
                program: b"PROGRAM".to_vec(),
            }],
            &BuildInfo {
                definition: b"name: x\n".to_vec(),
                ..Default::default()
            },
        );
        let mut out = Vec::new();
        write(
            &mut out,
            &img.blobs,
            &[(Some("r.example/x:1".into()), img.index.clone())],
            0,
        )
        .unwrap();
        (out, img.index)
    }

    #[test]
    fn round_trip_is_deterministic_and_commits() {
        let (a, desc) = archive();
        assert_eq!(a, archive().0);
        let r = root("rt");
        let store = Store::open(&r).unwrap();
        let mut s = store.staging().unwrap();
        let imported = read(&a[..], &mut s).unwrap();
        assert_eq!(imported.images.len(), 1);
        assert_eq!(imported.images[0].0.as_deref(), Some("r.example/x:1"));
        store.commit(&s, &imported.images).unwrap();
        assert_eq!(
            store.resolve("r.example/x:1").unwrap().descriptor.digest,
            desc.digest
        );
        std::fs::remove_dir_all(r).unwrap();
    }

    #[test]
    fn only_whole_archives_are_complete() {
        let (bytes, _) = archive();
        check_complete(bytes.as_slice()).unwrap();
        // Cut at every member boundary and inside members and end blocks.
        for cut in [
            0,
            100,
            512,
            1024,
            1536,
            bytes.len() - 1024,
            bytes.len() - 512,
            bytes.len() - 1,
        ] {
            let e = check_complete(&bytes[..cut]).unwrap_err().to_string();
            assert!(e.contains("the archive is incomplete"), "cut at {cut}: {e}");
        }
    }

    #[test]
    fn a_blob_that_breaks_off_leaves_no_end_blocks() {
        let mut out = Vec::new();
        let d = Digest::of(b"x");
        let blobs = [d.clone()];
        let r = write_with(&mut out, blobs.iter(), &[], 0, |_| {
            Ok((10, Box::new(&b"short"[..]) as Box<dyn Read>))
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains("blob shorter than its size"), "{e}");
        let e = check_complete(out.as_slice()).unwrap_err().to_string();
        assert!(e.contains("member 5 has 5 of its 512 bytes"), "{e}");
    }

    #[test]
    fn truncated_traversing_and_tampered_archives_are_refused() {
        let (a, _) = archive();
        let r = root("bad");
        let store = Store::open(&r).unwrap();

        // Truncated in the middle of the last blob.
        let mut s = store.staging().unwrap();
        let cut = read(&a[..a.len() - 1100], &mut s)
            .err()
            .expect("truncated archive accepted");
        assert!(
            cut.to_string().contains("truncated") || cut.to_string().contains("cannot read"),
            "{cut}"
        );

        // `../` paths.
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`; write the raw name like a hostile tool would.
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../etc/passwd");
        h.set_cksum();
        evil.append(&h, &b"x"[..]).unwrap();
        let evil = evil.into_inner().unwrap();
        let mut s = store.staging().unwrap();
        let err = read(&evil[..], &mut s).err().unwrap().to_string();
        assert!(err.contains("unsafe path `../etc/passwd`"), "{err}");

        // A blob whose content does not match its name.
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(4);
        h.set_entry_type(tar::EntryType::Regular);
        t.append_data(
            &mut h,
            format!("blobs/sha256/{}", Digest::of(b"good").hex()),
            &b"evil"[..],
        )
        .unwrap();
        let t = t.into_inner().unwrap();
        let mut s = store.staging().unwrap();
        assert!(matches!(
            read(&t[..], &mut s),
            Err(ImageError::DigestMismatch { .. })
        ));

        // A symlink.
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        t.append_link(&mut h, "index.json", "/etc/passwd").unwrap();
        let t = t.into_inner().unwrap();
        let mut s = store.staging().unwrap();
        assert!(
            read(&t[..], &mut s)
                .err()
                .unwrap()
                .to_string()
                .contains("only regular files")
        );

        assert!(store.entries().unwrap().is_empty());
        std::fs::remove_dir_all(r).unwrap();
    }
}
