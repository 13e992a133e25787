//! The registry as the runtime's [`Enricher`]: per namespace a pre-rendered
//! JSON fragment, so enriching an event is one hash lookup and one copy.

use gadgetd_runtime::decode::write_json_str;
use gadgetd_runtime::enrich::{Enricher, FIELDS, NsKind, empty_fragment};

use super::{Container, Registry};

pub struct Fragments {
    empty: Vec<u8>,
}

impl Default for Fragments {
    fn default() -> Self {
        Fragments {
            empty: empty_fragment(),
        }
    }
}

impl Fragments {
    /// `,"runtime.containerName":"web",...` in the order of [`FIELDS`].
    pub fn render(&self, c: &Container) -> Vec<u8> {
        let values = [
            &c.name,
            &c.id,
            &c.runtime,
            &c.image,
            &c.k8s.namespace,
            &c.k8s.pod_name,
            &c.k8s.container_name,
        ];
        debug_assert_eq!(values.len(), FIELDS.len());
        let mut out = Vec::with_capacity(256);
        for ((key, _), value) in FIELDS.iter().zip(values) {
            out.push(b',');
            write_json_str(&mut out, key.as_bytes());
            out.push(b':');
            write_json_str(&mut out, value.as_bytes());
        }
        out
    }

    pub fn empty(&self) -> &[u8] {
        &self.empty
    }
}

impl Enricher for Registry {
    fn mntns(&self, id: u64, out: &mut Vec<u8>) {
        self.write_fields(NsKind::Mnt, id, out);
    }

    fn netns(&self, id: u64, out: &mut Vec<u8>) {
        self.write_fields(NsKind::Net, id, out);
    }
}
