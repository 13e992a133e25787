//! Enrichment contract: a gadget's `gadget_mntns_id` field (or, without one,
//! its `gadget_netns_id` field) is followed in every event by the fields of
//! the container that namespace belongs to. Who knows the containers (the
//! agent's registry) implements [`Enricher`]; without one, or for a
//! namespace no container owns, the fields are empty strings, so every event
//! of a stream has the same keys as its header.

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

/// Appends `,"key":"value"` pairs for [`FIELDS`], in order.
pub trait Enricher: Send + Sync {
    fn mntns(&self, id: u64, out: &mut Vec<u8>);
    fn netns(&self, id: u64, out: &mut Vec<u8>);
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
