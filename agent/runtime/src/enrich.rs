//! Enrichment contract: a gadget's `gadget_mntns_id` field (or, without one,
//! its `gadget_netns_id` field) is followed in every event by the fields of
//! the container that namespace belongs to. Who knows the containers (the
//! agent's registry) implements [`Enricher`]; without one, or for a
//! namespace no container owns, the fields are empty strings, so every event
//! of a stream has the same keys as its header.
//!
//! With an enricher, every `gadget_l3endpoint_t`/`gadget_l4endpoint_t` field
//! `X` is also followed by `X.kind` and the fields of the container or pod
//! whose address it is ([`ENDPOINT_FIELDS`]).

use super::layout::{FieldKind, Layout, Semantic};

/// The added fields, in order: (JSON key, shown as a column by default).
pub const FIELDS: &[(&str, bool)] = &[
    ("runtime.containerName", true),
    ("runtime.containerId", false),
    ("runtime.name", false),
    ("runtime.image", false),
    ("k8s.namespace", false),
    ("k8s.podName", false),
    ("k8s.containerName", false),
];

/// The fields added after an endpoint field `X`, as `X.<suffix>`, in order:
/// (suffix, shown as a column by default). `kind` is one of [`KIND_POD`],
/// [`KIND_CONTAINER`], [`KIND_HOST`], [`KIND_RAW`]; the names are those of
/// Inspektor Gadget's endpoint enrichment (`k8s.namespace`, `k8s.name`) and
/// of the container fields.
pub const ENDPOINT_FIELDS: &[(&str, bool)] = &[
    ("kind", false),
    ("k8s.namespace", false),
    ("k8s.name", false),
    ("runtime.containerName", false),
    ("runtime.containerId", false),
    ("runtime.name", false),
];

/// `X.kind` of a Kubernetes pod's address (`k8s.*` set).
pub const KIND_POD: &str = "pod";
/// `X.kind` of a container's address outside Kubernetes.
pub const KIND_CONTAINER: &str = "container";
/// `X.kind` of an address of this host (its interfaces, loopback).
pub const KIND_HOST: &str = "host";
/// `X.kind` of any other address.
pub const KIND_RAW: &str = "raw";

/// The pre-rendered keys of one endpoint field's [`ENDPOINT_FIELDS`]
/// (`,"src.kind":`, ...), built once per decoder.
#[derive(Debug, Clone)]
pub struct EndpointKeys(Vec<Vec<u8>>);

impl EndpointKeys {
    /// The keys for endpoint field `field` (its JSON name).
    pub fn new(field: &str) -> EndpointKeys {
        EndpointKeys(
            ENDPOINT_FIELDS
                .iter()
                .map(|(suffix, _)| {
                    let mut k = vec![b','];
                    super::decode::write_json_str(&mut k, format!("{field}.{suffix}").as_bytes());
                    k.push(b':');
                    k
                })
                .collect(),
        )
    }

    /// Appends each key followed by its value; `values` are JSON strings
    /// (quotes included), one per [`ENDPOINT_FIELDS`] entry.
    pub fn write<V: AsRef<[u8]>>(&self, values: &[V], out: &mut Vec<u8>) {
        for (k, v) in self.0.iter().zip(values) {
            out.extend_from_slice(k);
            out.extend_from_slice(v.as_ref());
        }
    }

    /// An address nobody is known to hold: `kind` [`KIND_RAW`], the rest empty.
    pub fn write_raw(&self, out: &mut Vec<u8>) {
        self.write(&RAW_VALUES, out);
    }
}

const RAW_VALUES: [&str; 6] = ["\"raw\"", "\"\"", "\"\"", "\"\"", "\"\"", "\"\""];
const _: () = assert!(RAW_VALUES.len() == ENDPOINT_FIELDS.len());

/// Whether fields of `kind` get [`ENDPOINT_FIELDS`].
pub fn is_endpoint(kind: &FieldKind) -> bool {
    matches!(kind, FieldKind::L3Endpoint(_) | FieldKind::L4Endpoint(_))
}

/// Appends `,"key":"value"` pairs for [`FIELDS`], in order.
pub trait Enricher: Send + Sync {
    fn mntns(&self, id: u64, out: &mut Vec<u8>);
    fn netns(&self, id: u64, out: &mut Vec<u8>);
    /// Appends the [`ENDPOINT_FIELDS`] of address `ip` under `keys`, with
    /// no allocation (on the event path). The default knows no address.
    fn endpoint(&self, ip: std::net::IpAddr, keys: &EndpointKeys, out: &mut Vec<u8>) {
        let _ = ip;
        keys.write_raw(out);
    }
}

/// Which namespace a field's value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    Mnt,
    Net,
}

/// The index of the layout field that gets the container fields, if any.
pub fn enriched_field(layout: &Layout) -> Option<(usize, NsKind)> {
    let find = |want: Semantic| {
        layout
            .fields
            .iter()
            .position(|f| matches!(f.kind, FieldKind::Int { semantic, .. } if semantic == want))
    };
    find(Semantic::MntnsId)
        .map(|i| (i, NsKind::Mnt))
        .or_else(|| find(Semantic::NetnsId).map(|i| (i, NsKind::Net)))
}

/// The fields with empty values (no enricher, or an unknown namespace).
pub fn empty_fragment() -> Vec<u8> {
    let mut out = Vec::new();
    for (key, _) in FIELDS {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":\"\"");
    }
    out
}

/// An [`Enricher`] to hand to [`super::RunOptions`].
#[derive(Clone)]
pub struct SharedEnricher(pub std::sync::Arc<dyn Enricher>);

impl std::fmt::Debug for SharedEnricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedEnricher")
    }
}
