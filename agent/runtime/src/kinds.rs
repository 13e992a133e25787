//! The gadget kinds besides tracers, found by convention (design.md):
//! `iter/*` programs with `gadget_iter_type` are snapshotters, `stats_*`
//! hash maps are toppers, `hist_*` hash maps are profilers. Each finder is
//! object in, descriptions out; nothing here touches the kernel.

use btf_rs::{BtfType, Type};

use super::error::{GadgetError, Result};
use super::markers::{IterMarker, MapIterMarker, Markers};
use super::object::{GadgetObject, datasec_vars, map_type, name_of};

/// Iterator programs and the struct each row has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshotter {
    /// Data source name: the GADGET_ITER name, else the first program's.
    pub name: String,
    /// (program name, iterator type such as `task` or `tcp`).
    pub programs: Vec<(String, String)>,
    /// BTF id of the row struct (`gadget_iter_type`).
    pub row_type: u32,
    /// `iter/bpf_map_elem` programs: (program, the map it walks), from
    /// `GADGET_ITER_TARGET_MAP`.
    pub map_targets: Vec<(String, String)>,
}

impl Snapshotter {
    /// Network iterators run once per network namespace and tag rows with it.
    pub fn per_netns(&self) -> bool {
        self.programs.iter().any(|(_, k)| is_net_iter(k))
    }
}

pub fn is_net_iter(kind: &str) -> bool {
    matches!(kind, "tcp" | "udp" | "unix" | "netlink" | "ipv6_route")
}

/// A `stats_*` hash map: one row per key, re-read every interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topper {
    pub name: String,
    pub map: String,
    pub key_type: u32,
    pub value_type: u32,
    /// Entries are deleted after each read unless the gadget says `GADGET_STATS_KEEP()`.
    pub clear: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Slot `n` counts values in `[2^n, 2^(n+1))` (slot 0: `[0, 1]`).
    Log2,
    /// Slot `n` counts values in `[n*step, (n+1)*step)`.
    Linear { step: u64 },
}

/// A `hist_*` hash map: slot → count.
#[derive(Debug, Clone, PartialEq)]
pub struct Profiler {
    pub name: String,
    pub map: String,
    pub scale: Scale,
    pub unit: String,
    pub value_size: usize,
}

fn btf_err(e: impl std::fmt::Display) -> GadgetError {
    GadgetError::Btf(e.to_string())
}

fn conv(map: &str, reason: impl Into<String>) -> GadgetError {
    GadgetError::MapConvention {
        map: map.into(),
        reason: reason.into(),
    }
}

/// `iter/<kind>` programs, with the row type named by `gadget_iter_type`.
pub fn snapshotter(obj: &GadgetObject) -> Result<Option<Snapshotter>> {
    let programs: Vec<(String, String)> = obj
        .programs
        .iter()
        .filter_map(|p| {
            p.section
                .strip_prefix("iter/")
                .map(|k| (p.name.clone(), k.to_string()))
        })
        .collect();
    if programs.is_empty() {
        return Ok(None);
    }
    for (prog, kind) in &programs {
        if kind == "bpf_map_elem" {
            return Err(GadgetError::Program {
                program: prog.clone(),
                section: format!("iter/{kind}"),
                reason: "a map element iterator needs its map named: declare `GADGET_ITER(name, row_struct, program)` and `GADGET_ITER_TARGET_MAP(program, map)`"
                    .into(),
            });
        }
    }
    let row_type = iter_type(obj)?.ok_or_else(|| GadgetError::Program {
        program: programs[0].0.clone(),
        section: format!("iter/{}", programs[0].1),
        reason: "an iterator gadget must declare its row type: `GADGET_ITER_TYPE(struct row);` (a global `const struct row *gadget_iter_type`)".into(),
    })?;
    Ok(Some(Snapshotter {
        name: programs[0].0.clone(),
        programs,
        row_type,
        map_targets: Vec::new(),
    }))
}

/// The BTF id of the struct called `name`, if the object has one.
pub fn struct_by_name(obj: &GadgetObject, name: &str) -> Option<u32> {
    obj.btf
        .resolve_ids_by_name(name)
        .ok()?
        .into_iter()
        .find(|&id| matches!(obj.btf.resolve_type_by_id(id), Ok(Type::Struct(_))))
}

/// `GADGET_ITER(name, row_struct, programs...)`: the programs must be
/// `SEC("iter/<type>")` functions of the object and the struct must exist.
pub fn ig_iterator(obj: &GadgetObject, m: &IterMarker, markers: &Markers) -> Result<Snapshotter> {
    let marker_err = |reason: String| GadgetError::Marker {
        marker: m.marker.clone(),
        reason,
    };
    let row_type = struct_by_name(obj, &m.row_struct).ok_or_else(|| {
        marker_err(format!(
            "iterator `{}` names struct `{}`, which is not in the object's BTF",
            m.name, m.row_struct
        ))
    })?;
    let mut programs = Vec::new();
    let mut map_targets = Vec::new();
    for name in &m.programs {
        let prog = obj
            .programs
            .iter()
            .find(|p| &p.name == name)
            .ok_or_else(|| {
                marker_err(format!(
                    "iterator `{}` names program `{name}`, which the object does not have",
                    m.name
                ))
            })?;
        let kind = prog.section.strip_prefix("iter/").ok_or_else(|| {
            marker_err(format!(
                "program `{name}` is in section `{}`, not an `iter/<type>` section",
                prog.section
            ))
        })?;
        if kind == "bpf_map_elem" {
            let target = markers
                .iter_targets
                .iter()
                .find(|t| &t.program == name)
                .ok_or_else(|| GadgetError::Program {
                    program: name.clone(),
                    section: prog.section.clone(),
                    reason: format!(
                        "a map element iterator needs the map it walks: add `GADGET_ITER_TARGET_MAP({name}, <map>)`"
                    ),
                })?;
            if !obj.maps.iter().any(|m| m.name == target.map) {
                return Err(GadgetError::Marker {
                    marker: target.marker.clone(),
                    reason: format!(
                        "program `{name}` walks map `{}`, which the object does not define",
                        target.map
                    ),
                });
            }
            map_targets.push((name.clone(), target.map.clone()));
        }
        programs.push((name.clone(), kind.to_string()));
    }
    Ok(Snapshotter {
        name: m.name.clone(),
        programs,
        row_type,
        map_targets,
    })
}

/// `GADGET_MAPITER(name, map)`: a hash map whose key and value are structs,
/// read and cleared every interval (a topper).
pub fn ig_map_iter(obj: &GadgetObject, m: &MapIterMarker) -> Result<Topper> {
    let marker_err = |reason: String| GadgetError::Marker {
        marker: m.marker.clone(),
        reason,
    };
    if obj.map(&m.map).is_none() {
        return Err(marker_err(format!(
            "map iterator `{}` names map `{}`, which the object does not declare in SEC(\".maps\")",
            m.name, m.map
        )));
    }
    let (key_type, value_type) =
        hash_map_types(obj, &m.map, "map iterator").map_err(|e| marker_err(e.to_string()))?;
    Ok(Topper {
        name: m.name.clone(),
        map: m.map.clone(),
        key_type,
        value_type,
        // Metric maps (issue 15) hold totals: GADGET_STATS_KEEP() keeps them.
        clear: !obj.globals.iter().any(|g| g == "gadget_stats_keep"),
    })
}

/// The struct behind the `gadget_iter_type` global, in whatever section clang put it.
fn iter_type(obj: &GadgetObject) -> Result<Option<u32>> {
    for section in [".bss", ".data", ".rodata"] {
        for (name, ty) in datasec_vars(&obj.btf, section)? {
            if name != "gadget_iter_type" {
                continue;
            }
            let mut id = ty;
            for _ in 0..16 {
                let t = obj.btf.resolve_type_by_id(id).map_err(btf_err)?;
                id = match &t {
                    Type::Ptr(p) => p.get_type_id().ok_or_else(|| btf_err("PTR without type"))?,
                    Type::Const(c) | Type::Volatile(c) => c
                        .get_type_id()
                        .ok_or_else(|| btf_err("modifier without type"))?,
                    Type::Typedef(td) => td
                        .get_type_id()
                        .ok_or_else(|| btf_err("typedef without type"))?,
                    Type::Struct(_) => return Ok(Some(id)),
                    other => {
                        return Err(GadgetError::UnsupportedType {
                            field: "gadget_iter_type".into(),
                            reason: format!("must point to a struct, found {}", other.name()),
                        });
                    }
                };
            }
        }
    }
    Ok(None)
}

fn hash_map_types(obj: &GadgetObject, name: &str, what: &str) -> Result<(u32, u32)> {
    let map = obj.map(name).expect("name comes from obj.maps");
    if ![map_type::HASH, map_type::LRU_HASH].contains(&map.map_type) {
        return Err(conv(
            name,
            format!(
                "{what} maps must be BPF_MAP_TYPE_HASH or BPF_MAP_TYPE_LRU_HASH, this one is {}",
                map_type::name(map.map_type)
            ),
        ));
    }
    let key = map
        .key_type
        .ok_or_else(|| conv(name, "needs `__type(key, ...)` so its keys can be decoded"))?;
    let value = map.value_type.ok_or_else(|| {
        conv(
            name,
            "needs `__type(value, ...)` so its values can be decoded",
        )
    })?;
    Ok((key, value))
}

/// `stats_*` hash maps.
pub fn toppers(obj: &GadgetObject) -> Result<Vec<Topper>> {
    let keep = obj.globals.iter().any(|g| g == "gadget_stats_keep");
    let mut out = Vec::new();
    for map in obj.maps.iter().filter(|m| m.name.starts_with("stats_")) {
        let (key_type, value_type) = hash_map_types(obj, &map.name, "topper (stats_)")?;
        out.push(Topper {
            name: map.name.trim_start_matches("stats_").to_string(),
            map: map.name.clone(),
            key_type,
            value_type,
            clear: !keep,
        });
    }
    Ok(out)
}

/// `hist_*` hash maps with a `gadget_hist_log2` / `gadget_hist_linear` slot key.
pub fn profilers(obj: &GadgetObject) -> Result<Vec<Profiler>> {
    let mut out = Vec::new();
    for map in obj.maps.iter().filter(|m| m.name.starts_with("hist_")) {
        let (key, value) = hash_map_types(obj, &map.name, "profiler (hist_)")?;
        let name = map.name.trim_start_matches("hist_").to_string();
        let key_name = match obj.btf.resolve_type_by_id(key).map_err(btf_err)? {
            Type::Typedef(t) => name_of(&obj.btf, &t),
            other => other.name().to_string(),
        };
        let scale = match key_name.as_str() {
            "gadget_hist_log2" => Scale::Log2,
            "gadget_hist_linear" => Scale::Linear {
                step: rodata_u64(obj, &format!("gadget_hist_{name}_step"))
                    .unwrap_or(1)
                    .max(1),
            },
            other => {
                return Err(conv(
                    &map.name,
                    format!(
                        "a histogram's key must be a `gadget_hist_log2` or `gadget_hist_linear` slot number (gadget/histogram.h), found `{other}`"
                    ),
                ));
            }
        };
        let value_size = match int_size(obj, value)? {
            Some(s @ (4 | 8)) => s,
            _ => {
                return Err(conv(
                    &map.name,
                    "a histogram's value must be a __u32 or __u64 count",
                ));
            }
        };
        let unit =
            rodata_str(obj, &format!("gadget_hist_{name}_unit")).unwrap_or_else(|| "value".into());
        out.push(Profiler {
            name,
            map: map.name.clone(),
            scale,
            unit,
            value_size,
        });
    }
    Ok(out)
}

/// Maps Inspektor Gadget's headers declare with `max_entries` 0 and size at
/// run time from a `.rodata` parameter: (map, parameter, default).
const RUNTIME_SIZED: &[(&str, &str, u32)] = &[("ig_build_id", "ig_build_id_max_entries", 1024)];

/// Sizes for the object's run-time-sized maps (see [`RUNTIME_SIZED`]): the
/// parameter's value as the run sets it (`globals`), else its default in
/// `.rodata`. Only maps declared with `max_entries` 0 are sized.
pub fn runtime_max_entries(
    obj: &GadgetObject,
    globals: &[(String, Vec<u8>)],
) -> Vec<(String, u32)> {
    RUNTIME_SIZED
        .iter()
        .filter(|(map, ..)| obj.map(map).is_some_and(|m| m.max_entries == 0))
        .map(|(map, param, default)| {
            let set = globals.iter().find(|(k, _)| k == param).map(|(_, v)| {
                let mut b = [0u8; 4];
                let n = v.len().min(4);
                b[..n].copy_from_slice(&v[..n]);
                u32::from_le_bytes(b)
            });
            let n = set
                .or_else(|| rodata_u64(obj, param).map(|v| v as u32))
                .filter(|&n| n > 0)
                .unwrap_or(*default);
            (map.to_string(), n)
        })
        .collect()
}

fn int_size(obj: &GadgetObject, mut id: u32) -> Result<Option<usize>> {
    for _ in 0..16 {
        match obj.btf.resolve_type_by_id(id).map_err(btf_err)? {
            Type::Typedef(t) => id = t.get_type_id().unwrap_or(0),
            Type::Const(t) | Type::Volatile(t) => id = t.get_type_id().unwrap_or(0),
            Type::Int(i) => return Ok(Some(i.size())),
            _ => return Ok(None),
        }
    }
    Ok(None)
}

fn rodata_raw<'a>(obj: &'a GadgetObject, name: &str) -> Option<&'a [u8]> {
    let v = obj.rodata.get(name)?;
    obj.rodata_bytes.get(v.offset..v.offset + v.size)
}

fn rodata_u64(obj: &GadgetObject, name: &str) -> Option<u64> {
    let raw = rodata_raw(obj, name)?;
    let mut b = [0u8; 8];
    let n = raw.len().min(8);
    b[..n].copy_from_slice(&raw[..n]);
    Some(u64::from_le_bytes(b))
}

fn rodata_str(obj: &GadgetObject, name: &str) -> Option<String> {
    let raw = rodata_raw(obj, name)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    Some(String::from_utf8_lossy(&raw[..end]).into_owned())
}
