//! Which maps and programs are data sources. Inspektor Gadget's markers
//! ([`super::markers`]: `gadget_tracer_*`, `gadget_iter_*`,
//! `gadget_mapiter_*`) sit beside the seed's conventions (`print_*` buffers,
//! `gadget_iter_type`, `stats_*` and `hist_*` maps); each marker or map
//! yields one named [`DataSource`]. Nothing here touches the kernel.

use super::error::{GadgetError, Result};
use super::kinds::{self, Profiler, Snapshotter, Topper};
use super::markers::{Markers, TracerMarker};
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

/// `gadget_tracer_<name>___<map>___<struct>`: the map must be a ring buffer
/// or perf event array and the struct must be in the object's BTF.
fn ig_tracer(obj: &GadgetObject, m: &TracerMarker) -> Result<Tracer> {
    let marker_err = |reason: String| GadgetError::Marker {
        marker: m.marker.clone(),
        reason,
    };
    if obj.map(&m.map).is_none() {
        return Err(marker_err(format!(
            "tracer `{}` names map `{}`, which the object does not declare in SEC(\".maps\") (maps: {})",
            m.name,
            m.map,
            map_names(obj)
        )));
    }
    let buffer = buffer_kind(obj, &m.map).map_err(|e| marker_err(e.to_string()))?;
    let event_type = kinds::struct_by_name(obj, &m.event_struct).ok_or_else(|| {
        marker_err(format!(
            "tracer `{}` names struct `{}`, which is not in the object's BTF",
            m.name, m.event_struct
        ))
    })?;
    Ok(Tracer {
        name: m.name.clone(),
        map: m.map.clone(),
        buffer,
        event_type,
    })
}

fn map_names(obj: &GadgetObject) -> String {
    obj.maps
        .iter()
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One data source of a gadget: a named stream of events or rows.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    /// The marker's name (`GADGET_TRACER(open, ...)`: `open`), or the map name
    /// without its seed prefix (`print_events`: `events`).
    pub name: String,
    pub kind: SourceKind,
}

/// What a data source is and where its data comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// Events from a ring buffer or perf event array.
    Tracer(Tracer),
    /// Rows from `iter/` programs, read once.
    Snapshotter(Snapshotter),
    /// A hash map read (and cleared) every interval.
    Topper(Topper),
    /// A slot → count histogram map.
    Profiler(Profiler),
}

impl SourceKind {
    /// `tracer`, `snapshotter`, `map iterator` or `histogram`, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            SourceKind::Tracer(_) => "tracer",
            SourceKind::Snapshotter(_) => "snapshotter",
            SourceKind::Topper(_) => "map iterator",
            SourceKind::Profiler(_) => "histogram",
        }
    }
}

/// Everything an object declares, and what the agent should warn about.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// In the object's order: Inspektor Gadget's markers first, then the seed's maps.
    pub sources: Vec<DataSource>,
    /// Things that work but deserve a word (deprecated markers, unused tracer maps).
    pub warnings: Vec<String>,
    pub markers: Markers,
}

/// Every data source of an object, by both conventions. A marker that names
/// a missing map, struct or program is an error naming the marker; so is a
/// `print_` map that a `gadget_tracer_` marker gives a different event struct.
pub fn data_sources(obj: &GadgetObject) -> Result<Discovery> {
    let markers = Markers::parse(obj)?;
    let mut sources = Vec::new();
    let mut warnings = Vec::new();

    for m in &markers.tracers {
        let t = ig_tracer(obj, m)?;
        if let Some(other) = sources.iter().find_map(|s: &DataSource| match &s.kind {
            SourceKind::Tracer(o) if o.map == t.map => Some(o.name.clone()),
            _ => None,
        }) {
            return Err(GadgetError::Marker {
                marker: m.marker.clone(),
                reason: format!(
                    "map `{}` already carries tracer `{other}`; give each tracer its own GADGET_TRACER_MAP",
                    t.map
                ),
            });
        }
        sources.push(DataSource {
            name: t.name.clone(),
            kind: SourceKind::Tracer(t),
        });
    }
    for m in &markers.iters {
        sources.push(DataSource {
            name: m.name.clone(),
            kind: SourceKind::Snapshotter(kinds::ig_iterator(obj, m, &markers)?),
        });
    }
    for m in &markers.map_iters {
        sources.push(DataSource {
            name: m.name.clone(),
            kind: SourceKind::Topper(kinds::ig_map_iter(obj, m)?),
        });
    }

    // The seed's conventions, for what the markers did not claim.
    if markers.iters.is_empty()
        && let Some(s) = kinds::snapshotter(obj)?
    {
        sources.push(DataSource {
            name: s.name.clone(),
            kind: SourceKind::Snapshotter(s),
        });
    }
    for t in print_prefix_maps(obj)? {
        match sources.iter().find_map(|s| match &s.kind {
            SourceKind::Tracer(o) if o.map == t.map => Some(o),
            _ => None,
        }) {
            Some(o) if o.event_type != t.event_type => {
                return Err(GadgetError::MapConvention {
                    map: t.map.clone(),
                    reason: format!(
                        "its value type and the marker of tracer `{}` name different event structs; keep one convention (drop `__type(value, ...)` or the GADGET_TRACER marker)",
                        o.name
                    ),
                });
            }
            Some(_) => {}
            None => sources.push(DataSource {
                name: t.name.clone(),
                kind: SourceKind::Tracer(t),
            }),
        }
    }
    for t in kinds::toppers(obj)? {
        let claimed = markers.map_iters.iter().any(|m| m.map == t.map);
        if !claimed {
            sources.push(DataSource {
                name: t.name.clone(),
                kind: SourceKind::Topper(t),
            });
        }
    }
    for p in kinds::profilers(obj)? {
        sources.push(DataSource {
            name: p.name.clone(),
            kind: SourceKind::Profiler(p),
        });
    }

    for marker in &markers.deprecated {
        warnings.push(format!(
            "marker `{marker}`: gadget_snapshotter_ is deprecated; use GADGET_ITER (gadget_iter_)"
        ));
    }
    for map in &markers.tracer_maps {
        let used = sources
            .iter()
            .any(|s| matches!(&s.kind, SourceKind::Tracer(t) if &t.map == map));
        if !used {
            warnings.push(format!(
                "marker `gadget_map_tracer_{map}`: no GADGET_TRACER uses buffer `{map}`; its events are never read"
            ));
        }
    }
    for t in &markers.sk_targets {
        warnings.push(format!(
            "marker `{}`: sk_skb/sk_msg programs are not attached by gadgetd yet; program `{}` stays unattached",
            t.marker, t.program
        ));
    }
    Ok(Discovery {
        sources,
        warnings,
        markers,
    })
}

/// The tracers of an object (both conventions), in order.
pub fn tracers(obj: &GadgetObject) -> Result<Vec<Tracer>> {
    Ok(data_sources(obj)?
        .sources
        .into_iter()
        .filter_map(|s| match s.kind {
            SourceKind::Tracer(t) => Some(t),
            _ => None,
        })
        .collect())
}
