//! The gadget image format (design.md, as in the seed): an OCI image index
//! with one manifest per architecture, each with the definition YAML as its
//! config and the ELF object as its only layer.
//!
//! Own serde types instead of oci-spec's: these keep annotations in a
//! BTreeMap, so the same inputs always serialize to the same bytes (and the
//! same digest). Unknown fields of foreign manifests are ignored on read; the
//! original bytes are what the store keeps and what a push sends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::{ImageError, Result};

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker's equivalents, accepted when reading from registries.
pub const DOCKER_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.gadget.config.v1+yaml";
pub const PROGRAM_MEDIA_TYPE: &str = "application/vnd.gadget.ebpf.program.v1+binary";
/// `artifactType` of gadget manifests (OCI 1.1 artifacts).
pub const ARTIFACT_TYPE: &str = "application/vnd.gadget.v1+binary";

pub const ANN_TITLE: &str = "org.opencontainers.image.title";
pub const ANN_AUTHORS: &str = "org.opencontainers.image.authors";
pub const ANN_DESCRIPTION: &str = "org.opencontainers.image.description";
pub const ANN_CREATED: &str = "org.opencontainers.image.created";
pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Largest image index or manifest read from anywhere (registry, archive,
/// store), in bytes.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Largest definition (config blob) accepted, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 256 << 10;
/// Largest eBPF object (program layer) accepted, in bytes.
pub const MAX_PROGRAM_BYTES: u64 = 64 << 20;

/// The most bytes a blob of `media_type` may have: manifests and indexes
/// [`MAX_MANIFEST_BYTES`], definitions [`MAX_CONFIG_BYTES`], everything else
/// (programs, foreign layers kept from IG images) [`MAX_PROGRAM_BYTES`].
pub fn max_blob_bytes(media_type: &str) -> u64 {
    match media_type {
        INDEX_MEDIA_TYPE
        | MANIFEST_MEDIA_TYPE
        | DOCKER_LIST_MEDIA_TYPE
        | DOCKER_MANIFEST_MEDIA_TYPE => MAX_MANIFEST_BYTES,
        CONFIG_MEDIA_TYPE => MAX_CONFIG_BYTES,
        _ => MAX_PROGRAM_BYTES,
    }
}

/// Refuses a descriptor whose size is above [`max_blob_bytes`] for its media type.
pub fn check_size(d: &Descriptor) -> Result<()> {
    let max = max_blob_bytes(&d.media_type);
    if d.size > max {
        return Err(ImageError::Invalid(format!(
            "{} ({}) is {} bytes; at most {max} are accepted for that media type",
            d.digest, d.media_type, d.size
        )));
    }
    Ok(())
}

/// Architectures gadgetd builds and runs (OCI/Go names).
pub const ARCHES: &[&str] = &["amd64", "arm64"];

/// The host's architecture in OCI terms.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn new(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: Digest::of(bytes).to_string(),
            size: bytes.len() as u64,
            artifact_type: None,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    pub fn digest(&self) -> Result<Digest> {
        Digest::parse(&self.digest)
    }

    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.get(ANN_REF_NAME).map(String::as_str)
    }

    pub fn is_index(&self) -> bool {
        self.media_type == INDEX_MEDIA_TYPE || self.media_type == DOCKER_LIST_MEDIA_TYPE
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    pub fn empty() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.into()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// Serializes `v` the one way the store and builds use (stable bytes).
pub fn to_json(v: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec_pretty(v).expect("image structs always serialize")
}

pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Invalid(format!("malformed manifest: {e}")))
}

pub fn parse_index(bytes: &[u8]) -> Result<Index> {
    serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Invalid(format!("malformed image index: {e}")))
}

/// What a gadget manifest contains, checked.
pub struct GadgetParts {
    pub config: Descriptor,
    pub program: Descriptor,
    /// Layers gadgetd does not run (Inspektor Gadget's wasm modules and
    /// btfgen archives, unknown media types): stored, pushed, not used.
    pub ignored: Vec<Descriptor>,
}

/// Whether a manifest is a gadget's (its config is a gadget definition);
/// an index may hold others too (attestations, other artifacts).
pub fn is_gadget_manifest(m: &Manifest) -> bool {
    m.config.media_type == CONFIG_MEDIA_TYPE
}

/// Checks a manifest is a gadget's: the config and one program layer.
pub fn gadget_parts(m: &Manifest) -> Result<GadgetParts> {
    if m.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(ImageError::Invalid(format!(
            "config media type is `{}`, not `{CONFIG_MEDIA_TYPE}`: not a gadget image",
            m.config.media_type
        )));
    }
    let programs: Vec<_> = m
        .layers
        .iter()
        .filter(|l| l.media_type == PROGRAM_MEDIA_TYPE)
        .collect();
    match programs.as_slice() {
        [one] => Ok(GadgetParts {
            config: m.config.clone(),
            program: (*one).clone(),
            ignored: m
                .layers
                .iter()
                .filter(|l| l.media_type != PROGRAM_MEDIA_TYPE)
                .cloned()
                .collect(),
        }),
        [] => Err(ImageError::Invalid(format!(
            "the manifest has no `{PROGRAM_MEDIA_TYPE}` layer"
        ))),
        _ => Err(ImageError::Invalid(
            "the manifest has several program layers; gadgetd runs one".into(),
        )),
    }
}

/// One architecture's build output.
pub struct ArchBuild {
    pub arch: String,
    pub program: Vec<u8>,
}

/// Everything that goes into an image besides the programs.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    pub definition: Vec<u8>,
    pub authors: Option<String>,
    pub description: Option<String>,
    /// RFC 3339 creation time; set only from SOURCE_DATE_EPOCH so that
    /// builds stay reproducible.
    pub created: Option<String>,
    /// Extra layer annotations (`--annotation KEY=VALUE`).
    pub annotations: BTreeMap<String, String>,
}

/// A built image: its blobs by digest and the index descriptor.
pub struct BuiltImage {
    pub blobs: BTreeMap<Digest, Vec<u8>>,
    pub index: Descriptor,
}

/// Assembles an image from compiled programs (one per architecture).
pub fn assemble(builds: &[ArchBuild], info: &BuildInfo) -> BuiltImage {
    let mut blobs = BTreeMap::new();
    let mut put = |bytes: Vec<u8>| {
        let d = Digest::of(&bytes);
        blobs.insert(d, bytes);
    };
    let mut config = Descriptor::new(CONFIG_MEDIA_TYPE, &info.definition);
    config
        .annotations
        .insert(ANN_TITLE.into(), "config.yaml".into());
    put(info.definition.clone());
    let mut entries = Vec::new();
    for b in builds {
        let mut layer = Descriptor::new(PROGRAM_MEDIA_TYPE, &b.program);
        layer.annotations = info.annotations.clone();
        layer
            .annotations
            .insert(ANN_TITLE.into(), "program.o".into());
        if let Some(a) = &info.authors {
            layer.annotations.insert(ANN_AUTHORS.into(), a.clone());
        }
        if let Some(d) = &info.description {
            layer.annotations.insert(ANN_DESCRIPTION.into(), d.clone());
        }
        put(b.program.clone());
        let mut annotations = BTreeMap::new();
        if let Some(c) = &info.created {
            annotations.insert(ANN_CREATED.to_string(), c.clone());
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.into()),
            artifact_type: Some(ARTIFACT_TYPE.into()),
            config: config.clone(),
            layers: vec![layer],
            annotations,
        };
        let bytes = to_json(&manifest);
        let mut desc = Descriptor::new(MANIFEST_MEDIA_TYPE, &bytes);
        desc.artifact_type = Some(ARTIFACT_TYPE.into());
        desc.platform = Some(Platform {
            architecture: b.arch.clone(),
            os: "linux".into(),
            variant: None,
        });
        put(bytes);
        entries.push(desc);
    }
    let mut index = Index::empty();
    index.manifests = entries;
    if let Some(c) = &info.created {
        index.annotations.insert(ANN_CREATED.into(), c.clone());
    }
    let bytes = to_json(&index);
    let desc = Descriptor::new(INDEX_MEDIA_TYPE, &bytes);
    put(bytes);
    BuiltImage { blobs, index: desc }
}

/// Picks the manifest for `arch` from an index (os linux), as containerd
/// does: an entry for exactly `linux/arch` first; else the first entry with
/// no `platform` at all that `is_gadget` accepts (a platform-less entry
/// matches any platform; attestations and other artifacts are passed over).
/// The pull makes this choice for the host, so an image that cannot run
/// here fails then, not at run time.
pub fn pick_platform<'a>(
    index: &'a Index,
    arch: &str,
    is_gadget: impl Fn(&Descriptor) -> bool,
) -> Result<&'a Descriptor> {
    let exact = index.manifests.iter().find(|m| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.architecture == arch && p.os == "linux")
    });
    exact
        .or_else(|| {
            index
                .manifests
                .iter()
                .find(|m| m.platform.is_none() && is_gadget(m))
        })
        .ok_or_else(|| ImageError::NoPlatform {
            wanted: format!("linux/{arch}"),
            have: index
                .manifests
                .iter()
                .map(|m| {
                    m.platform
                        .as_ref()
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                        .unwrap_or("no platform, not a gadget manifest".into())
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BuiltImage {
        assemble(
            &[
                ArchBuild {
                    arch: "amd64".into(),
                    program: b"\x7fELF-amd64".to_vec(),
                },
                ArchBuild {
                    arch: "arm64".into(),
                    program: b"\x7fELF-arm64".to_vec(),
                },
            ],
            &BuildInfo {
                definition: b"name: t\n".to_vec(),
                authors: Some("A U Thor".into()),
                description: Some("d".into()),
                ..BuildInfo::default()
            },
        )
    }

    #[test]
    fn assembling_is_reproducible_and_follows_the_seed_layout() {
        let a = sample();
        let b = sample();
        assert_eq!(a.index, b.index, "same inputs, same digest");
        let index = parse_index(&a.blobs[&a.index.digest().unwrap()]).unwrap();
        assert_eq!(index.media_type.as_deref(), Some(INDEX_MEDIA_TYPE));
        let arches: Vec<_> = index
            .manifests
            .iter()
            .map(|m| m.platform.clone().unwrap().architecture)
            .collect();
        assert_eq!(arches, ["amd64", "arm64"]);
        let arm = pick_platform(&index, "arm64", |_| true).unwrap();
        let m = parse_manifest(&a.blobs[&arm.digest().unwrap()]).unwrap();
        assert_eq!(m.config.media_type, CONFIG_MEDIA_TYPE);
        assert_eq!(m.config.annotations[ANN_TITLE], "config.yaml");
        let parts = gadget_parts(&m).unwrap();
        assert_eq!(parts.program.annotations[ANN_TITLE], "program.o");
        assert_eq!(parts.program.annotations[ANN_AUTHORS], "A U Thor");
        assert_eq!(parts.program.annotations[ANN_DESCRIPTION], "d");
        assert_eq!(a.blobs[&parts.program.digest().unwrap()], b"\x7fELF-arm64");
        // Every blob is keyed by its own digest.
        for (d, bytes) in &a.blobs {
            crate::digest::verify(d, bytes).unwrap();
        }
        assert!(matches!(
            pick_platform(&index, "riscv64", |_| true),
            Err(ImageError::NoPlatform { .. })
        ));
    }

    #[test]
    fn blob_sizes_are_bounded_by_media_type() {
        let d = |media_type: &str, size: u64| Descriptor {
            media_type: media_type.into(),
            digest: "sha256:00".into(),
            size,
            artifact_type: None,
            platform: None,
            annotations: Default::default(),
        };
        for (mt, max) in [
            (INDEX_MEDIA_TYPE, MAX_MANIFEST_BYTES),
            (MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES),
            (DOCKER_LIST_MEDIA_TYPE, MAX_MANIFEST_BYTES),
            (DOCKER_MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES),
            (CONFIG_MEDIA_TYPE, MAX_CONFIG_BYTES),
            (PROGRAM_MEDIA_TYPE, MAX_PROGRAM_BYTES),
            (
                "application/vnd.gadget.wasm.program.v1+binary",
                MAX_PROGRAM_BYTES,
            ),
        ] {
            check_size(&d(mt, max)).unwrap();
            let e = check_size(&d(mt, max + 1)).unwrap_err().to_string();
            assert!(
                e.contains(&format!("is {} bytes; at most {max} are accepted", max + 1)),
                "{mt}: {e}"
            );
        }
    }

    #[test]
    fn a_non_gadget_manifest_is_refused_with_its_media_type() {
        let mut m = parse_manifest(
            &sample()
                .blobs
                .values()
                .find(|b| b.starts_with(b"{") && b.windows(6).any(|w| w == b"config"))
                .unwrap()
                .clone(),
        )
        .unwrap();
        m.config.media_type = "application/vnd.oci.image.config.v1+json".into();
        let err = gadget_parts(&m).err().unwrap().to_string();
        assert!(
            err.contains("application/vnd.oci.image.config.v1+json"),
            "{err}"
        );
    }
}
