//! The registry as the runtime's [`Enricher`]: per namespace a pre-rendered
//! JSON fragment, so enriching an event is one hash lookup and one copy.

use gadgetd_runtime::decode::write_json_str;
use gadgetd_runtime::enrich::{
    ENDPOINT_FIELDS, EndpointKeys, Enricher, FIELDS, KIND_CONTAINER, KIND_HOST, KIND_POD, NsKind,
    empty_fragment,
};

use super::{Container, Registry};

pub struct Fragments {
    empty: Vec<u8>,
    host: EndpointValues,
}

/// The values of [`ENDPOINT_FIELDS`] for one address, each a JSON string.
pub struct EndpointValues(pub Vec<Vec<u8>>);

impl EndpointValues {
    fn new(values: [&str; 6]) -> EndpointValues {
        debug_assert_eq!(values.len(), ENDPOINT_FIELDS.len());
        EndpointValues(
            values
                .iter()
                .map(|v| {
                    let mut out = Vec::with_capacity(v.len() + 2);
                    write_json_str(&mut out, v.as_bytes());
                    out
                })
                .collect(),
        )
    }
}

impl Default for Fragments {
    fn default() -> Self {
        Fragments {
            empty: empty_fragment(),
            host: EndpointValues::new([KIND_HOST, "", "", "", "", ""]),
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

    /// The endpoint values of container `c`'s addresses: `pod` with its
    /// namespace and pod name when Kubernetes labels say so, else `container`.
    pub fn endpoint(&self, c: &Container) -> EndpointValues {
        let kind = if c.k8s.pod_name.is_empty() {
            KIND_CONTAINER
        } else {
            KIND_POD
        };
        EndpointValues::new([
            kind,
            &c.k8s.namespace,
            &c.k8s.pod_name,
            &c.name,
            &c.id,
            &c.runtime,
        ])
    }

    /// The endpoint values of the host's addresses.
    pub fn host(&self) -> &EndpointValues {
        &self.host
    }
}

impl Enricher for Registry {
    fn mntns(&self, id: u64, out: &mut Vec<u8>) {
        self.write_fields(NsKind::Mnt, id, out);
    }

    fn netns(&self, id: u64, out: &mut Vec<u8>) {
        self.write_fields(NsKind::Net, id, out);
    }

    fn endpoint(&self, ip: std::net::IpAddr, keys: &EndpointKeys, out: &mut Vec<u8>) {
        self.write_endpoint(ip, keys, out);
    }
}
