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
    let mut index = Index::empty();
    for (name, desc) in images {
        let mut d = desc.clone();
        d.annotations.remove(format::ANN_REF_NAME);
        if let Some(n) = name {
            d.annotations.insert(format::ANN_REF_NAME.into(), n.clone());
        }
        index.manifests.push(d);
    }
    let mut tar = tar::Builder::new(out);
    let io = |e| ImageError::Io {
        context: "cannot write the archive".into(),
        source: e,
    };
    let file = |tar: &mut tar::Builder<_>, path: &str, bytes: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, bytes).map_err(io)
    };
    let dir = |tar: &mut tar::Builder<_>, path: &str| -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Directory);
        tar.append_data(&mut h, path, std::io::empty()).map_err(io)
    };
    file(
        &mut tar,
        "oci-layout",
        b"{\"imageLayoutVersion\":\"1.0.0\"}",
    )?;
    file(&mut tar, "index.json", &format::to_json(&index))?;
    dir(&mut tar, "blobs/")?;
    dir(&mut tar, "blobs/sha256/")?;
    for (d, bytes) in blobs {
        file(&mut tar, &format!("blobs/sha256/{}", d.hex()), bytes)?;
    }
    tar.into_inner().map_err(io)?.flush().map_err(io)
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
    let tmp = path.with_extension("tar.partial");
    std::fs::write(&tmp, &buf).ctx(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("cannot write {}", path.display()))
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
