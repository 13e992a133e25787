//! Inspektor Gadget's marker globals (`gadget/macros.h`, `gadget/buffer.h`):
//! unused variables whose names say what the gadget's maps, structs,
//! programs and parameters are. This module only reads and splits the
//! names; [`super::classify`] and [`super::kinds`] turn them into data
//! sources, [`super::params`] into parameters. Nothing here touches the kernel.
//!
//! | marker | meaning |
//! |---|---|
//! | `gadget_tracer_<name>___<map>___<struct>` | tracer `name`: events of `struct` from buffer `map` |
//! | `gadget_iter_<name>___<struct>___<prog>[___<prog>…]` | iterator `name`: rows of `struct` from `iter/` programs |
//! | `gadget_snapshotter_<name>___<struct>___<prog>…` | the same, deprecated spelling |
//! | `gadget_mapiter_<name>___<map>` | map iterator `name`: hash map `map` read every interval |
//! | `gadget_param_<var>` | the `const volatile` global `var` is a parameter |
//! | `gadget_map_tracer_<map>` | `map` is a tracer buffer (`GADGET_TRACER_MAP`) |
//! | `gadget_mapelem_iter_target_<prog>___<map>` | `iter/bpf_map_elem` program `prog` walks `map` |
//! | `gadget_sk_prog_target_<prog>___<map>` | `sk_skb`/`sk_msg` program `prog` attaches to `map` |

use super::error::{GadgetError, Result};
use super::object::{GadgetObject, datasec_vars};

/// The marker prefixes, longest first where one starts another.
const PREFIXES: &[&str] = &[
    "gadget_tracer_",
    "gadget_mapelem_iter_target_",
    "gadget_sk_prog_target_",
    "gadget_iter_",
    "gadget_snapshotter_",
    "gadget_mapiter_",
    "gadget_param_",
    "gadget_map_tracer_",
];

/// Separates the parts of a marker name (names themselves may contain `_` and `__`).
pub const SPLITTER: &str = "___";

/// A `GADGET_TRACER(name, map, event_type)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracerMarker {
    /// The whole marker name, for errors.
    pub marker: String,
    pub name: String,
    pub map: String,
    /// The event struct's name.
    pub event_struct: String,
}

/// A `GADGET_ITER(name, type, progs...)` (or the deprecated `GADGET_SNAPSHOTTER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IterMarker {
    pub marker: String,
    pub name: String,
    /// The row struct's name.
    pub row_struct: String,
    /// Program (function) names, 1 to 3.
    pub programs: Vec<String>,
}

/// A `GADGET_MAPITER(name, map)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapIterMarker {
    pub marker: String,
    pub name: String,
    pub map: String,
}

/// `GADGET_ITER_TARGET_MAP(prog, map)` or `GADGET_SK_TARGET_MAP(prog, map)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetMarker {
    pub marker: String,
    pub program: String,
    pub map: String,
}

/// Every marker of one object, in the order the object declares them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markers {
    pub tracers: Vec<TracerMarker>,
    pub iters: Vec<IterMarker>,
    pub map_iters: Vec<MapIterMarker>,
    /// Variables marked with `GADGET_PARAM(var)`.
    pub params: Vec<String>,
    /// Maps marked by `GADGET_TRACER_MAP(map, size)`.
    pub tracer_maps: Vec<String>,
    pub iter_targets: Vec<TargetMarker>,
    pub sk_targets: Vec<TargetMarker>,
    /// Markers of the deprecated `gadget_snapshotter_` spelling (for a warning).
    pub deprecated: Vec<String>,
}

impl Markers {
    /// Reads the markers from the object's global symbols and BTF variables.
    /// A marker whose name does not split into its parts is an error naming it.
    pub fn parse(obj: &GadgetObject) -> Result<Markers> {
        let mut names: Vec<String> = obj.globals.clone();
        for section in [".bss", ".data", ".rodata"] {
            for (name, _) in datasec_vars(&obj.btf, section)? {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Markers::from_names(names.iter().map(String::as_str))
    }

    /// Parses marker names (other names are ignored).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Markers> {
        let mut m = Markers::default();
        for global in names {
            // The seed's convention, not a marker: the row type of `iter/` programs.
            if global == "gadget_iter_type" {
                continue;
            }
            // Longest prefixes first: `gadget_iter_` must not take `gadget_mapelem_iter_target_`.
            if let Some(rest) = global.strip_prefix("gadget_tracer_") {
                let [name, map, event_struct] =
                    parts::<3>(global, rest, "<name>___<map>___<struct>")?;
                m.tracers.push(TracerMarker {
                    marker: global.into(),
                    name,
                    map,
                    event_struct,
                });
            } else if let Some(rest) = global.strip_prefix("gadget_mapelem_iter_target_") {
                let [program, map] = parts::<2>(global, rest, "<program>___<map>")?;
                m.iter_targets.push(TargetMarker {
                    marker: global.into(),
                    program,
                    map,
                });
            } else if let Some(rest) = global.strip_prefix("gadget_sk_prog_target_") {
                let [program, map] = parts::<2>(global, rest, "<program>___<map>")?;
                m.sk_targets.push(TargetMarker {
                    marker: global.into(),
                    program,
                    map,
                });
            } else if let Some((rest, deprecated)) = global
                .strip_prefix("gadget_iter_")
                .map(|r| (r, false))
                .or_else(|| {
                    global
                        .strip_prefix("gadget_snapshotter_")
                        .map(|r| (r, true))
                })
            {
                let split: Vec<&str> = rest.split(SPLITTER).collect();
                if split.len() < 3 || split.len() > 5 || split.iter().any(|p| p.is_empty()) {
                    return Err(malformed(
                        global,
                        "<name>___<struct>___<program>[___<program>[___<program>]]",
                    ));
                }
                if deprecated {
                    m.deprecated.push(global.into());
                }
                m.iters.push(IterMarker {
                    marker: global.into(),
                    name: split[0].into(),
                    row_struct: split[1].into(),
                    programs: split[2..].iter().map(|p| p.to_string()).collect(),
                });
            } else if let Some(rest) = global.strip_prefix("gadget_mapiter_") {
                let [name, map] = parts::<2>(global, rest, "<name>___<map>")?;
                m.map_iters.push(MapIterMarker {
                    marker: global.into(),
                    name,
                    map,
                });
            } else if let Some(var) = global.strip_prefix("gadget_param_") {
                if var.is_empty() {
                    return Err(malformed(global, "<variable>"));
                }
                m.params.push(var.into());
            } else if let Some(map) = global.strip_prefix("gadget_map_tracer_") {
                if map.is_empty() {
                    return Err(malformed(global, "<map>"));
                }
                m.tracer_maps.push(map.into());
            }
        }
        Ok(m)
    }

    /// True when the object uses Inspektor Gadget's conventions at all: then
    /// only `GADGET_PARAM`-marked globals are parameters.
    pub fn any(&self) -> bool {
        !(self.tracers.is_empty()
            && self.iters.is_empty()
            && self.map_iters.is_empty()
            && self.params.is_empty()
            && self.tracer_maps.is_empty()
            && self.iter_targets.is_empty()
            && self.sk_targets.is_empty())
    }
}

fn malformed(marker: &str, shape: &str) -> GadgetError {
    let prefix = PREFIXES
        .iter()
        .find(|p| marker.starts_with(**p))
        .copied()
        .unwrap_or("");
    GadgetError::Marker {
        marker: marker.into(),
        reason: format!(
            "expected {prefix}{shape} (parts separated by `{SPLITTER}`, none empty); rename it with the macro from gadget/macros.h"
        ),
    }
}

fn parts<const N: usize>(marker: &str, rest: &str, shape: &str) -> Result<[String; N]> {
    let split: Vec<&str> = rest.split(SPLITTER).collect();
    if split.len() != N || split.iter().any(|p| p.is_empty()) {
        return Err(malformed(marker, shape));
    }
    Ok(std::array::from_fn(|i| split[i].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_every_kind_of_marker() {
        let m = Markers::from_names([
            "gadget_tracer_open___events___event",
            "gadget_iter_procs___proc_row___ig_snap_proc___ig_snap_thread",
            "gadget_snapshotter_files___file_row___dump_files",
            "gadget_mapiter_file___stats_map",
            "gadget_param_targ_failed",
            "gadget_param_paths",
            "gadget_map_tracer_events",
            "gadget_mapelem_iter_target_dump_map___pinned_map",
            "gadget_sk_prog_target_verdict___sock_map",
            "targ_failed",
            "gadget_filter_by_mntns",
            "gadget_iter_type",
        ])
        .unwrap();
        assert_eq!(
            m.tracers,
            [TracerMarker {
                marker: "gadget_tracer_open___events___event".into(),
                name: "open".into(),
                map: "events".into(),
                event_struct: "event".into(),
            }]
        );
        assert_eq!(m.iters.len(), 2);
        assert_eq!(m.iters[0].name, "procs");
        assert_eq!(m.iters[0].row_struct, "proc_row");
        assert_eq!(m.iters[0].programs, ["ig_snap_proc", "ig_snap_thread"]);
        assert_eq!(m.iters[1].programs, ["dump_files"]);
        assert_eq!(
            m.deprecated,
            ["gadget_snapshotter_files___file_row___dump_files"]
        );
        assert_eq!(
            m.map_iters,
            [MapIterMarker {
                marker: "gadget_mapiter_file___stats_map".into(),
                name: "file".into(),
                map: "stats_map".into(),
            }]
        );
        assert_eq!(m.params, ["targ_failed", "paths"]);
        assert_eq!(m.tracer_maps, ["events"]);
        assert_eq!(m.iter_targets[0].program, "dump_map");
        assert_eq!(m.iter_targets[0].map, "pinned_map");
        assert_eq!(m.sk_targets[0].program, "verdict");
        assert_eq!(m.sk_targets[0].map, "sock_map");
        assert!(m.any());
        assert!(
            !Markers::from_names(["targ_pid", "gadget_filter_by_mntns"])
                .unwrap()
                .any()
        );
    }

    #[test]
    fn names_with_single_and_double_underscores_stay_whole() {
        let m = Markers::from_names(["gadget_tracer_tcp_state__x___my_events___event_t"]).unwrap();
        assert_eq!(m.tracers[0].name, "tcp_state__x");
        assert_eq!(m.tracers[0].map, "my_events");
        assert_eq!(m.tracers[0].event_struct, "event_t");
    }

    #[test]
    fn malformed_markers_are_named_with_the_expected_shape() {
        for (bad, shape) in [
            (
                "gadget_tracer_open___events",
                "gadget_tracer_<name>___<map>___<struct>",
            ),
            (
                "gadget_tracer_open______event",
                "gadget_tracer_<name>___<map>___<struct>",
            ),
            ("gadget_mapiter_top", "gadget_mapiter_<name>___<map>"),
            (
                "gadget_iter_procs___row",
                "gadget_iter_<name>___<struct>___<program>",
            ),
            ("gadget_param_", "gadget_param_<variable>"),
            (
                "gadget_sk_prog_target_prog",
                "gadget_sk_prog_target_<program>___<map>",
            ),
        ] {
            let err = Markers::from_names([bad]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("marker `{bad}`: expected {shape}")),
                "{err}"
            );
        }
    }
}
