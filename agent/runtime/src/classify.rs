//! Which maps and programs are data sources. A table of small rules, each
//! object in and sources out, so new conventions (Inspektor Gadget's
//! `gadget_tracer_*` globals) sit beside the seed's map-name prefixes.

use super::error::{GadgetError, Result};
use super::object::{GadgetObject, map_type};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BufferKind {
    RingBuf,
    PerfEventArray,
}

/// A stream of events the gadget produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracer {
    /// Data source name (the map name without `print_`, or IG's tracer name).
    pub name: String,
    pub map: String,
    pub buffer: BufferKind,
    /// BTF type id of the event struct.
    pub event_type: u32,
}

type Rule = fn(&GadgetObject) -> Result<Vec<Tracer>>;

/// The conventions we accept, in order; the first rule to claim a map wins.
const RULES: &[(&str, Rule)] = &[
    ("print_* maps (seed)", print_prefix_maps),
    (
        "gadget_tracer_* globals (Inspektor Gadget)",
        ig_tracer_globals,
    ),
];

pub fn tracers(obj: &GadgetObject) -> Result<Vec<Tracer>> {
    let mut out: Vec<Tracer> = Vec::new();
    for (_, rule) in RULES {
        for t in rule(obj)? {
            if !out.iter().any(|o| o.map == t.map) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

fn buffer_kind(obj: &GadgetObject, map: &str) -> Result<BufferKind> {
    let def = obj.map(map).ok_or_else(|| GadgetError::MapConvention {
        map: map.into(),
        reason: "no such map in SEC(\".maps\")".into(),
    })?;
    match def.map_type {
        map_type::RINGBUF => Ok(BufferKind::RingBuf),
        map_type::PERF_EVENT_ARRAY => Ok(BufferKind::PerfEventArray),
        other => Err(GadgetError::MapConvention {
            map: map.into(),
            reason: format!(
                "tracer maps must be BPF_MAP_TYPE_RINGBUF or BPF_MAP_TYPE_PERF_EVENT_ARRAY, this one is {}",
                map_type::name(other)
            ),
        }),
    }
}

fn print_prefix_maps(obj: &GadgetObject) -> Result<Vec<Tracer>> {
    let mut out = Vec::new();
    // `<map>_lost_samples` counters belong to their tracer map (gadget/buffer.h).
    let is_tracer = |name: &str| name.starts_with("print_") && !name.ends_with("_lost_samples");
    for map in obj.maps.iter().filter(|m| is_tracer(&m.name)) {
        let buffer = buffer_kind(obj, &map.name)?;
        let event_type = map.value_type.ok_or_else(|| GadgetError::MapConvention {
            map: map.name.clone(),
            reason: "a print_ map needs `__type(value, struct <event>)` naming its event type"
                .into(),
        })?;
        out.push(Tracer {
            name: map.name.trim_start_matches("print_").to_string(),
            map: map.name.clone(),
            buffer,
            event_type,
        });
    }
    Ok(out)
}

/// `gadget_tracer_<name>___<map>___<struct>`.
fn ig_tracer_globals(obj: &GadgetObject) -> Result<Vec<Tracer>> {
    let mut out = Vec::new();
    for global in &obj.globals {
        let Some(rest) = global.strip_prefix("gadget_tracer_") else {
            continue;
        };
        let parts: Vec<&str> = rest.split("___").collect();
        let [name, map, event] = parts[..] else {
            return Err(GadgetError::MapConvention {
                map: global.clone(),
                reason: "expected gadget_tracer_<name>___<map>___<struct>".into(),
            });
        };
        let buffer = buffer_kind(obj, map)?;
        let event_type = obj
            .btf
            .resolve_ids_by_name(event)
            .ok()
            .and_then(|ids| {
                ids.into_iter().find(|&id| {
                    matches!(obj.btf.resolve_type_by_id(id), Ok(btf_rs::Type::Struct(_)))
                })
            })
            .ok_or_else(|| GadgetError::MapConvention {
                map: map.into(),
                reason: format!(
                    "tracer `{name}` names struct `{event}`, which is not in the object's BTF"
                ),
            })?;
        out.push(Tracer {
            name: name.into(),
            map: map.into(),
            buffer,
            event_type,
        });
    }
    Ok(out)
}
