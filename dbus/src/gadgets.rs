//! `org.gadgetd.Agent1.Gadgets` on `/org/gadgetd/Agent1`: describing a
//! gadget without running it (its kind, parameters and fields), for
//! `gadgetctl run FILE --help` and `--NAME value` parameter flags.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use zbus::proxy;

use crate::stream::Field;

/// Interface name.
pub const GADGETS_INTERFACE: &str = "org.gadgetd.Agent1.Gadgets";

/// What `DescribeObject` returns (as JSON text: it nests freely and grows).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Description {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub documentation: String,
    /// The first data source's kind: `tracer`, `snapshotter`, `topper` or `profiler`.
    pub kind: String,
    #[serde(default)]
    pub params: Vec<ParamInfo>,
    /// The first data source's fields.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Every data source with its kind and fields, in the gadget's order.
    #[serde(default)]
    pub datasources: Vec<crate::stream::DataSourceInfo>,
}

/// One parameter: a `const volatile` global of the gadget.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ParamInfo {
    /// The flag: `--NAME`.
    pub name: String,
    /// The variable it sets.
    pub key: String,
    /// `int32`, `uint16`, `bool`, `string`, `enum`...
    #[serde(rename = "type")]
    pub kind: String,
    pub default: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub possible_values: Vec<String>,
}

#[proxy(
    interface = "org.gadgetd.Agent1.Gadgets",
    default_service = "org.gadgetd.Agent1",
    default_path = "/org/gadgetd/Agent1"
)]
pub trait Gadgets {
    /// Parses an object (an open fd) and optional definition YAML and
    /// returns a [`Description`] as JSON. Loads nothing into the kernel.
    fn describe_object(
        &self,
        object: zbus::zvariant::Fd<'_>,
        definition: &str,
        options: HashMap<&str, zbus::zvariant::Value<'_>>,
    ) -> zbus::Result<String>;
}
