//! `org.gadgetd.Agent1.Gadgets`: describing a gadget object without running it.

use std::collections::HashMap;
use std::os::fd::AsFd as _;
use std::sync::Arc;

use gadgetd_dbus::gadgets::{Description, ParamInfo};
use zbus::message::Header as MsgHeader;
use zbus::zvariant::OwnedValue;
use zbus::{Connection, fdo, interface};

use super::manager::{ACTION_READ, Agent};
use gadgetd_runtime::Gadget;
use gadgetd_runtime::params::{ParamKind, ParamSpec};

pub struct Gadgets {
    pub agent: Arc<Agent>,
}

/// The type of a parameter as users read it.
pub fn param_type(kind: &ParamKind) -> String {
    match kind {
        ParamKind::Int { size, signed } => {
            format!("{}int{}", if *signed { "" } else { "u" }, size * 8)
        }
        ParamKind::Bool => "bool".into(),
        ParamKind::String { len } => format!("string (up to {} bytes)", len.saturating_sub(1)),
        ParamKind::Enum { .. } => "enum".into(),
    }
}

fn param_info(p: &ParamSpec) -> ParamInfo {
    ParamInfo {
        name: p.name.clone(),
        key: p.key.clone(),
        kind: param_type(&p.kind),
        default: p.default.clone(),
        description: p.description.clone(),
        possible_values: p.possible_values.clone(),
    }
}

pub fn describe(gadget: &Gadget) -> Description {
    Description {
        name: gadget.name(),
        description: gadget.description(),
        documentation: gadget.documentation(),
        kind: gadget.kind().name().into(),
        params: gadget.params().iter().map(param_info).collect(),
        fields: gadget.fields(),
        datasources: gadget.datasource_infos(),
    }
}

#[interface(name = "org.gadgetd.Agent1.Gadgets")]
impl Gadgets {
    /// Parses `object` (an fd the caller opened) and returns its description as JSON.
    async fn describe_object(
        &self,
        object: zbus::zvariant::Fd<'_>,
        definition: String,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.agent.auth.check(conn, &hdr, ACTION_READ).await?;
        if let Some(key) = options.keys().next() {
            return Err(fdo::Error::InvalidArgs(format!(
                "unknown option `{key}` (none are defined yet)"
            )));
        }
        let fd = object
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| fdo::Error::InvalidArgs(format!("bad object fd: {e}")))?;
        super::manager::check_definition(&definition)?;
        let bytes = super::fdread::read_regular(
            fd,
            super::limits::MAX_OBJECT_BYTES,
            super::limits::OBJECT_READ_TIMEOUT,
            "the object",
        )
        .await?;
        let desc = tokio::task::spawn_blocking(move || -> fdo::Result<Description> {
            let def = (!definition.trim().is_empty()).then_some(definition.as_str());
            let gadget = Gadget::from_object(bytes, def)
                .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
            Ok(describe(&gadget))
        })
        .await
        .map_err(|e| fdo::Error::Failed(e.to_string()))??;
        serde_json::to_string(&desc).map_err(|e| fdo::Error::Failed(e.to_string()))
    }
}
