//! What a live run exposes to a metrics scraper (Prometheus): per-program
//! run statistics (`bpf_prog_info.run_cnt` / `run_time_ns`, counted while
//! [`enable_run_time_stats`] is held), read through the run's own program
//! descriptors, so a scrape never touches the run's event path.
//!
//! A [`RunMetrics`] is built once when the run starts and shared (`Arc`):
//! a scrape racing the run's stop still reads valid descriptors, and the
//! kernel objects go away when the last holder drops it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use aya::Ebpf;
use aya_obj::generated::bpf_prog_info;

/// `BPF_OBJ_GET_INFO_BY_FD` (bpf(2) command 15).
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The run statistics of one program of a run, summed over the run's
/// instances (socket filters load once per network namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    /// The program's function name in the object.
    pub name: String,
    /// Times the program ran (0 unless run-time statistics are enabled).
    pub run_count: u64,
    /// Nanoseconds spent running it (0 unless statistics are enabled).
    pub run_time_ns: u64,
    /// Runs skipped because the program was already running on that CPU.
    pub recursion_misses: u64,
}

/// A loaded program's name and a descriptor of our own for reading its info.
struct ProgramHandle {
    name: String,
    fd: OwnedFd,
}

/// The metrics sources of one live run. Built by [`crate::Gadget::start`];
/// get it with [`crate::Running::metrics`].
pub struct RunMetrics {
    programs: Vec<ProgramHandle>,
    maps: Vec<MetricMap>,
}

impl std::fmt::Debug for RunMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMetrics")
            .field("programs", &self.programs.len())
            .field("maps", &self.maps.len())
            .finish()
    }
}

impl RunMetrics {
    /// Duplicates the descriptors of every loaded program of `instances`
    /// (programs that were not loaded, disabled ones, are left out) and
    /// opens the metric maps of `obj` ([`discover`]).
    pub(crate) fn collect(
        instances: &[Ebpf],
        obj: &super::object::GadgetObject,
    ) -> super::error::Result<RunMetrics> {
        let specs = discover(obj)?;
        let maps = open_metric_maps(instances, &specs);
        let mut programs = Vec::new();
        for ebpf in instances {
            for (name, program) in ebpf.programs() {
                let Ok(fd) = program.fd() else { continue };
                match fd.as_fd().try_clone_to_owned() {
                    Ok(fd) => programs.push(ProgramHandle {
                        name: name.to_string(),
                        fd,
                    }),
                    Err(e) => tracing::debug!(program = name, error = %e,
                        "no program statistics: cannot duplicate its descriptor"),
                }
            }
        }
        Ok(RunMetrics { programs, maps })
    }

    /// The run's metric maps (IG's metric-typed map iterators).
    pub fn maps(&self) -> &[MetricMap] {
        &self.maps
    }

    /// The current statistics of each program, one entry per name, in
    /// object order. A program whose info cannot be read is left out.
    pub fn programs(&self) -> Vec<ProgramStats> {
        let mut out: Vec<ProgramStats> = Vec::with_capacity(self.programs.len());
        for p in &self.programs {
            let Ok(info) = prog_info(&p.fd) else { continue };
            match out.iter_mut().find(|s| s.name == p.name) {
                Some(s) => {
                    s.run_count += info.run_cnt;
                    s.run_time_ns += info.run_time_ns;
                    s.recursion_misses += info.recursion_misses;
                }
                None => out.push(ProgramStats {
                    name: p.name.clone(),
                    run_count: info.run_cnt,
                    run_time_ns: info.run_time_ns,
                    recursion_misses: info.recursion_misses,
                }),
            }
        }
        out
    }
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The kernel's `bpf_prog_info` of a program descriptor.
fn prog_info(fd: &OwnedFd) -> std::io::Result<bpf_prog_info> {
    // SAFETY: bpf_prog_info is plain integers and arrays; all-zero is valid.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<bpf_prog_info>() as u32,
        info: &mut info as *mut bpf_prog_info as u64,
    };
    // SAFETY: attr is the `info` member of union bpf_attr; the kernel writes
    // at most info_len bytes into `info`, which lives through the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoAttr,
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(info)
}

/// Keeps the kernel counting every program's runs and run time
/// (`BPF_ENABLE_STATS`, `BPF_STATS_RUN_TIME`) while held. Counting costs
/// two clock reads per program run, host-wide.
pub struct RunTimeStats {
    _fd: OwnedFd,
}

/// Turns run-time statistics on for as long as the result is held; an
/// error says why not (kernels before 5.8, no CAP_SYS_ADMIN).
pub fn enable_run_time_stats() -> std::io::Result<RunTimeStats> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map(|fd| RunTimeStats { _fd: fd })
        .map_err(|e| std::io::Error::other(format!("BPF_ENABLE_STATS: {e}")))
}

// ---------------------------------------------------------------------------
// Metrics from gadgets (Inspektor Gadget's convention): a map iterator
// (`GADGET_MAPITER(name, map)`) whose value struct has members typed
// `gadget_counter__u32/u64`, `gadget_gauge__u32/u64`, or arrays of
// `gadget_histogram_slot__u32/u64` (log2 buckets: slot i counts values in
// [2^i, 2^(i+1)), slot 0 also 0); the key struct's fields are the labels,
// decoded like event fields.

/// What a metric value field is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up; exported as `<name>_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// `slots` log2 buckets; exported as cumulative `_bucket{le}`, `_sum`, `_count`.
    Histogram {
        /// Buckets in the array.
        slots: usize,
    },
}

/// One metric value in a map's value struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricField {
    /// The member's name (the metric's name is `<data source>_<field>`).
    pub name: String,
    /// Byte offset in the value.
    pub offset: usize,
    /// Bytes of one number (4 or 8).
    pub size: usize,
    pub kind: MetricKind,
}

/// A map whose entries are metrics.
#[derive(Debug, Clone)]
pub struct MetricMapSpec {
    /// The data source's name (`GADGET_MAPITER`'s first argument).
    pub source: String,
    /// The BPF map.
    pub map: String,
    /// The key's fields (labels).
    pub key: super::layout::Layout,
    /// Bytes of one value.
    pub value_size: usize,
    pub fields: Vec<MetricField>,
}

/// The metric maps of an object: every IG map iterator whose value has
/// metric-typed members. A histogram typedef on something that is not an
/// array of integers is an error naming the field.
pub fn discover(obj: &super::object::GadgetObject) -> super::error::Result<Vec<MetricMapSpec>> {
    use super::classify::SourceKind;
    let found = super::classify::data_sources(obj)?;
    let mut out = Vec::new();
    for s in &found.sources {
        let SourceKind::Topper(t) = &s.kind else {
            continue;
        };
        let (fields, value_size) = metric_fields(&obj.btf, t.value_type, &t.map)?;
        if fields.is_empty() {
            continue;
        }
        let key = super::layout::build_or_scalar(&obj.btf, t.key_type, "key")?;
        out.push(MetricMapSpec {
            source: t.name.clone(),
            map: t.map.clone(),
            key,
            value_size,
            fields,
        });
    }
    Ok(out)
}

/// The metric-typed members of a value struct, and its size.
fn metric_fields(
    btf: &btf_rs::Btf,
    type_id: u32,
    map: &str,
) -> super::error::Result<(Vec<MetricField>, usize)> {
    use btf_rs::{BtfType, Type};
    let bad = |field: &str, reason: String| super::error::GadgetError::UnsupportedType {
        field: format!("{map}: {field}"),
        reason,
    };
    let mut ty = btf
        .resolve_type_by_id(type_id)
        .map_err(|e| bad("value", e.to_string()))?;
    for _ in 0..16 {
        let next = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t),
            Type::Const(t) => btf.resolve_chained_type(t),
            Type::Volatile(t) => btf.resolve_chained_type(t),
            _ => break,
        };
        ty = next.map_err(|e| bad("value", e.to_string()))?;
    }
    let Type::Struct(s) = ty else {
        return Ok((Vec::new(), 0));
    };
    let mut fields = Vec::new();
    for m in &s.members {
        let name = super::object::name_of(btf, m);
        let Some(id) = m.get_type_id() else { continue };
        let t = btf
            .resolve_type_by_id(id)
            .map_err(|e| bad(&name, e.to_string()))?;
        let offset = (m.bit_offset() / 8) as usize;
        let kind_of = |typedef: &str| -> Option<(MetricKind, usize)> {
            let (kind, size) = typedef.strip_prefix("gadget_")?.split_once("__")?;
            let size = match size {
                "u32" => 4,
                "u64" => 8,
                _ => return None,
            };
            match kind {
                "counter" => Some((MetricKind::Counter, size)),
                "gauge" => Some((MetricKind::Gauge, size)),
                "histogram_slot" => Some((MetricKind::Histogram { slots: 0 }, size)),
                _ => None,
            }
        };
        match &t {
            Type::Typedef(td) => {
                let Some((kind, size)) = kind_of(&super::object::name_of(btf, td)) else {
                    continue;
                };
                if let MetricKind::Histogram { .. } = kind {
                    return Err(bad(
                        &name,
                        "gadget_histogram_slot__* must be an array of buckets (e.g. `gadget_histogram_slot__u32 latency[32]`)".into(),
                    ));
                }
                fields.push(MetricField {
                    name,
                    offset,
                    size,
                    kind,
                });
            }
            Type::Array(a) => {
                let Some(elem) = a.get_type_id() else {
                    continue;
                };
                let et = btf
                    .resolve_type_by_id(elem)
                    .map_err(|e| bad(&name, e.to_string()))?;
                let Type::Typedef(td) = &et else { continue };
                let Some((kind, size)) = kind_of(&super::object::name_of(btf, td)) else {
                    continue;
                };
                if kind != (MetricKind::Histogram { slots: 0 }) {
                    return Err(bad(
                        &name,
                        "an array of counters or gauges is not a metric; use gadget_histogram_slot__* for buckets".into(),
                    ));
                }
                fields.push(MetricField {
                    name,
                    offset,
                    size,
                    kind: MetricKind::Histogram { slots: a.len() },
                });
            }
            _ => {}
        }
    }
    Ok((fields, s.size()))
}

/// One entry of a metric map: the decoded labels, then one value per
/// [`MetricField`] (histograms: every slot).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// (label name, value) from the key's fields, in key order.
    pub labels: Vec<(String, String)>,
    /// Per field, its numbers (one for counters and gauges).
    pub values: Vec<Vec<u64>>,
}

/// A metric map of a live run, open through its own descriptor.
pub struct MetricMap {
    pub spec: MetricMapSpec,
    map: std::sync::Mutex<super::rawmap::RawHashMap>,
    decoder: super::decode::Decoder,
}

impl MetricMap {
    /// Every entry now, decoded (entries stay in the map).
    pub fn snapshot(&self) -> std::io::Result<Vec<MetricRow>> {
        let mut rows = Vec::new();
        let mut json = Vec::new();
        let mut map = self.map.lock().unwrap();
        map.read(false, |key, value| {
            json.clear();
            let labels = match self.decoder.write_json(key, &mut json) {
                Ok(()) => labels_of(&json),
                Err(_) => return,
            };
            let values = self
                .spec
                .fields
                .iter()
                .map(|f| {
                    let n = match f.kind {
                        MetricKind::Histogram { slots } => slots,
                        _ => 1,
                    };
                    (0..n)
                        .map(|i| read_uint(value, f.offset + i * f.size, f.size))
                        .collect()
                })
                .collect();
            rows.push(MetricRow { labels, values });
        })?;
        Ok(rows)
    }
}

fn read_uint(value: &[u8], at: usize, size: usize) -> u64 {
    match (size, value.get(at..at + size)) {
        (4, Some(b)) => u32::from_ne_bytes(b.try_into().unwrap()) as u64,
        (8, Some(b)) => u64::from_ne_bytes(b.try_into().unwrap()),
        _ => 0,
    }
}

/// A decoded key's JSON object as label pairs: strings as they are,
/// anything else as its JSON text.
fn labels_of(json: &[u8]) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(json.trim_ascii_end()) else {
        return Vec::new();
    };
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect()
}

/// Opens the maps of `specs` through the programs of `instances` (by map
/// id, so it works after the run's readers took their maps). A map that
/// cannot be opened is logged and left out.
fn open_metric_maps(instances: &[Ebpf], specs: &[MetricMapSpec]) -> Vec<MetricMap> {
    let mut ids = Vec::new();
    for ebpf in instances.iter().take(1) {
        for (_, program) in ebpf.programs() {
            if let Ok(info) = program.info()
                && let Ok(Some(map_ids)) = info.map_ids()
            {
                ids.extend(map_ids);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::new();
    for spec in specs {
        // The kernel keeps 15 bytes of a map's name.
        let short: String = spec.map.chars().take(15).collect();
        let found = ids.iter().find_map(|&id| {
            let data = aya::maps::MapData::from_id(id).ok()?;
            let info = data.info().ok()?;
            (info.name_as_str() == Some(short.as_str())).then_some(data)
        });
        let Some(data) = found else {
            tracing::warn!(map = %spec.map, "metric map not found among the run's maps; not exported");
            continue;
        };
        let map = aya::maps::Map::HashMap(data);
        match super::rawmap::RawHashMap::new(map, spec.key.size, spec.value_size) {
            Ok(raw) => out.push(MetricMap {
                decoder: super::decode::Decoder::new(&spec.key),
                spec: spec.clone(),
                map: std::sync::Mutex::new(raw),
            }),
            Err(e) => tracing::warn!(map = %spec.map, error = %e, "metric map not exported"),
        }
    }
    out
}
