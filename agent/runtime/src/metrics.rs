//! What a live run exposes to a metrics scraper (Prometheus): per-program
//! run statistics (`bpf_prog_info.run_cnt` / `run_time_ns`, counted while
//! [`enable_run_time_stats`] is held), read through the run's own program
//! descriptors, so a scrape never touches the run's event path.
//!
//! A [`RunMetrics`] is built when the run starts and shared (`Arc`): a
//! scrape racing the run's stop still reads valid descriptors, and the
//! kernel objects go away when the last holder drops it. Starting a run
//! costs one descriptor copy per program; the metric maps are found and
//! opened by the first reader of [`RunMetrics::maps`] (a run whose
//! metrics nobody exports never opens them).

use std::collections::BTreeMap;
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
    /// Which instance of the run loaded it (socket filters have one per
    /// network namespace; metric maps are read from the first).
    instance: usize,
}

/// The metrics sources of one live run. Built by [`crate::Gadget::start`];
/// get it with [`crate::Running::metrics`].
pub struct RunMetrics {
    programs: Vec<ProgramHandle>,
    /// The gadget's metric maps, as found at load ([`discover`]).
    specs: std::sync::Arc<[MetricMapSpec]>,
    /// Opened on first use.
    maps: std::sync::OnceLock<Vec<MetricMap>>,
}

impl std::fmt::Debug for RunMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMetrics")
            .field("programs", &self.programs.len())
            .field("maps", &self.specs.len())
            .field("maps_open", &self.maps.get().is_some())
            .finish()
    }
}

impl RunMetrics {
    /// Duplicates the descriptors of every loaded program of `instances`
    /// (programs that were not loaded, disabled ones, are left out); the
    /// metric maps of `specs` are opened later, by [`RunMetrics::maps`].
    pub(crate) fn collect(
        instances: &[Ebpf],
        specs: std::sync::Arc<[MetricMapSpec]>,
    ) -> RunMetrics {
        let mut programs = Vec::new();
        for (instance, ebpf) in instances.iter().enumerate() {
            for (name, program) in ebpf.programs() {
                let Ok(fd) = program.fd() else { continue };
                match fd.as_fd().try_clone_to_owned() {
                    Ok(fd) => programs.push(ProgramHandle {
                        name: name.to_string(),
                        fd,
                        instance,
                    }),
                    Err(e) => tracing::debug!(program = name, error = %e,
                        "no program statistics: cannot duplicate its descriptor"),
                }
            }
        }
        RunMetrics {
            programs,
            specs,
            maps: std::sync::OnceLock::new(),
        }
    }

    /// The run's metric maps (IG's metric-typed map iterators), opened by
    /// the first call through the maps the run's first instance uses.
    pub fn maps(&self) -> &[MetricMap] {
        self.maps.get_or_init(|| {
            if self.specs.is_empty() {
                return Vec::new();
            }
            let mut ids: Vec<u32> = self
                .programs
                .iter()
                .filter(|p| p.instance == 0)
                .filter_map(|p| prog_map_ids(&p.fd).ok())
                .flatten()
                .collect();
            ids.sort_unstable();
            ids.dedup();
            open_metric_maps(&ids, &self.specs)
        })
    }

    /// Whether [`RunMetrics::maps`] has opened the metric maps yet.
    pub fn maps_opened(&self) -> bool {
        self.maps.get().is_some()
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
    get_prog_info(fd, &mut info)?;
    Ok(info)
}

/// The ids of the maps program `fd` uses.
fn prog_map_ids(fd: &OwnedFd) -> std::io::Result<Vec<u32>> {
    let n = prog_info(fd)?.nr_map_ids;
    let mut ids = vec![0u32; n as usize];
    // SAFETY: as in prog_info.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    info.nr_map_ids = n;
    info.map_ids = ids.as_mut_ptr() as u64;
    get_prog_info(fd, &mut info)?;
    ids.truncate(info.nr_map_ids.min(n) as usize);
    Ok(ids)
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info` (whose array pointers, if set,
/// point at buffers of the lengths its counts say).
fn get_prog_info(fd: &OwnedFd, info: &mut bpf_prog_info) -> std::io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<bpf_prog_info>() as u32,
        info: info as *mut bpf_prog_info as u64,
    };
    // SAFETY: attr is the `info` member of union bpf_attr; the kernel writes
    // at most info_len bytes into `info`, and at most the counts `info`
    // gives into the arrays it points at, all of which outlive the call.
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
    Ok(())
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
    /// `metrics.unit` from gadget.yaml (appended to the name, `# UNIT`).
    pub unit: Option<String>,
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
    /// ebpf_exporter's histograms: a key field is the bucket index and the
    /// (plain integer) value the count of that bucket.
    pub bucket: Option<BucketSpec>,
}

/// How a key field indexes histogram buckets (`metrics.type: bucket`).
#[derive(Debug, Clone, PartialEq)]
pub struct BucketSpec {
    /// The key field holding the bucket index (a label no more).
    pub field: String,
    /// `metrics.buckets: exp2` (bucket i counts values up to 2^i ×
    /// multiplier) or `linear` (up to (i+1) × multiplier).
    pub exp2: bool,
    /// `metrics.bucket_multiplier` (default 1).
    pub multiplier: f64,
    /// `metrics.bucket_max`: the last bucket index (default: the largest seen).
    pub max: Option<u64>,
}

impl BucketSpec {
    /// The upper bound (`le`) of bucket `i`.
    pub fn upper_bound(&self, i: u64) -> f64 {
        if self.exp2 {
            2f64.powi(i.min(1023) as i32) * self.multiplier
        } else {
            (i + 1) as f64 * self.multiplier
        }
    }

    /// The lower bound of bucket `i` (for the estimated `_sum`).
    pub fn lower_bound(&self, i: u64) -> f64 {
        match (self.exp2, i) {
            (_, 0) => 0.0,
            (true, _) => self.upper_bound(i - 1),
            (false, _) => i as f64 * self.multiplier,
        }
    }
}

/// The metric maps of an object: every IG map iterator whose value has
/// metric-typed members, or members `gadget.yaml` annotates
/// (`datasources.<ds>.fields.<f>.annotations`: `metrics.type` counter,
/// gauge, histogram or key; `metrics.unit`), or whose value is a plain
/// integer when the data source says `metrics.collect: true`
/// (ebpf_exporter's layout: key fields are labels, the value a counter).
/// `metrics.collect: false` turns a data source off. A metric type on
/// something that is not a number is an error naming the field.
pub fn discover(
    obj: &super::object::GadgetObject,
    def: &super::definition::Definition,
) -> super::error::Result<Vec<MetricMapSpec>> {
    use super::classify::SourceKind;
    use super::error::GadgetError;
    let found = super::classify::data_sources(obj)?;
    let mut out = Vec::new();
    for s in &found.sources {
        let SourceKind::Topper(t) = &s.kind else {
            continue;
        };
        let ds = def.datasources.get(&t.name);
        let collect = ds
            .and_then(|d| d.annotations.get("metrics.collect"))
            .map(|v| v.0.clone());
        let collect = match collect.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(GadgetError::Definition(format!(
                    "datasources.{}.annotations.metrics.collect: `{other}` is not true or false",
                    t.name
                )));
            }
        };
        if collect == Some(false) {
            continue;
        }
        let mut annotated: BTreeMap<String, Annotation> = BTreeMap::new();
        for (field, f) in ds.map(|d| &d.fields).into_iter().flatten() {
            let Some(f) = f else { continue };
            let kind = f.annotations.get("metrics.type").map(|v| v.0.clone());
            let unit = f.annotations.get("metrics.unit").map(|v| v.0.clone());
            if kind.is_none() && unit.is_none() {
                continue;
            }
            let at = format!("datasources.{}.fields.{field}", t.name);
            match kind.as_deref() {
                None | Some("counter" | "gauge" | "histogram" | "key" | "bucket") => {}
                Some(other) => {
                    return Err(GadgetError::Definition(format!(
                        "{at}: metrics.type `{other}` is not counter, gauge, histogram, key or bucket"
                    )));
                }
            }
            let all = f
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect();
            annotated.insert(
                field.clone(),
                Annotation {
                    at,
                    kind,
                    unit,
                    all,
                },
            );
        }
        let key = super::layout::build_or_scalar(&obj.btf, t.key_type, "key")?;
        let bucket = bucket_spec(&key, &annotated)?;
        for f in &key.fields {
            if let Some(a) = annotated.get(&f.name)
                && a.kind
                    .as_deref()
                    .is_some_and(|k| k != "key" && k != "bucket")
            {
                return Err(GadgetError::Definition(format!(
                    "{}: metrics.type {} on a key field; key fields are the labels (metrics.type: key)",
                    a.at,
                    a.kind.as_deref().unwrap_or_default()
                )));
            }
        }
        let (fields, value_size) = metric_fields(
            &obj.btf,
            t.value_type,
            &t.map,
            &annotated,
            collect == Some(true) || bucket.is_some(),
        )?;
        if let Some(b) = &bucket
            && !(fields.len() == 1 && fields[0].name.is_empty())
        {
            return Err(GadgetError::Definition(format!(
                "datasources.{}.fields.{}: a bucket index needs the map's value to be the bucket's count \
                 (a plain integer), as in ebpf_exporter",
                t.name, b.field
            )));
        }
        for (name, a) in &annotated {
            let known = key.fields.iter().any(|f| &f.name == name)
                || fields.iter().any(|f| &f.name == name)
                || (name == "value" && fields.iter().any(|f| f.name.is_empty()));
            if !known && a.kind.as_deref() != Some("key") {
                return Err(GadgetError::Definition(format!(
                    "{}: names no member of the map's key or value (map `{}`)",
                    a.at, t.map
                )));
            }
        }
        if fields.is_empty() {
            if collect == Some(true) {
                return Err(GadgetError::Definition(format!(
                    "datasources.{}: metrics.collect is true but no value member of map `{}` is a number \
                     (type it gadget_counter__u64, gadget_gauge__u64 or gadget_histogram_slot__u32[N], \
                     or annotate it with metrics.type)",
                    t.name, t.map
                )));
            }
            continue;
        }
        out.push(MetricMapSpec {
            source: t.name.clone(),
            map: t.map.clone(),
            key,
            value_size,
            fields,
            bucket,
        });
    }
    Ok(out)
}

/// The key field annotated `metrics.type: bucket`, if any, with its
/// `metrics.buckets`, `metrics.bucket_multiplier` and `metrics.bucket_max`.
fn bucket_spec(
    key: &super::layout::Layout,
    annotated: &BTreeMap<String, Annotation>,
) -> super::error::Result<Option<BucketSpec>> {
    use super::error::GadgetError;
    use super::layout::FieldKind;
    let mut found = annotated
        .iter()
        .filter(|(_, a)| a.kind.as_deref() == Some("bucket"));
    let Some((name, a)) = found.next() else {
        return Ok(None);
    };
    if let Some((other, _)) = found.next() {
        return Err(GadgetError::Definition(format!(
            "{}: a second bucket field (`{other}` is one too); a histogram has one bucket index",
            a.at
        )));
    }
    let bad = |why: String| GadgetError::Definition(format!("{}: {why}", a.at));
    match key.fields.iter().find(|f| &f.name == name).map(|f| &f.kind) {
        Some(FieldKind::Int { signed: false, .. }) => {}
        Some(_) => {
            return Err(bad(format!(
                "the bucket index `{name}` must be an unsigned integer"
            )));
        }
        None => {
            return Err(bad(format!(
                "the bucket index `{name}` is not a field of the map's key"
            )));
        }
    }
    let exp2 = match a.all.get("metrics.buckets").map(String::as_str) {
        Some("exp2") => true,
        Some("linear") => false,
        other => {
            return Err(bad(format!(
                "metrics.buckets must be exp2 or linear, found {}",
                other.map_or("nothing".to_string(), |o| format!("`{o}`"))
            )));
        }
    };
    let number = |k: &str| -> super::error::Result<Option<f64>> {
        match a.all.get(k) {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .map(Some)
                .ok_or_else(|| bad(format!("{k}: `{v}` is not a positive number"))),
        }
    };
    Ok(Some(BucketSpec {
        field: name.clone(),
        exp2,
        multiplier: number("metrics.bucket_multiplier")?.unwrap_or(1.0),
        max: number("metrics.bucket_max")?.map(|m| m as u64),
    }))
}

/// A field's `metrics.*` annotations and where they are (for errors).
struct Annotation {
    at: String,
    kind: Option<String>,
    unit: Option<String>,
    /// Every annotation of the field (bucket settings).
    all: BTreeMap<String, String>,
}

/// What a metric typedef (`gadget_counter__u64`, ...) says: kind and size.
fn typedef_kind(typedef: &str) -> Option<(MetricKind, usize)> {
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
}

/// A member's type: the first typedef on the way, and the concrete type.
fn resolve_member(
    btf: &btf_rs::Btf,
    type_id: u32,
) -> std::result::Result<(Option<String>, btf_rs::Type), String> {
    use btf_rs::Type;
    let mut ty = btf.resolve_type_by_id(type_id).map_err(|e| e.to_string())?;
    let mut typedef = None;
    for _ in 0..16 {
        let next = match &ty {
            Type::Typedef(t) => {
                typedef.get_or_insert_with(|| super::object::name_of(btf, t));
                btf.resolve_chained_type(t)
            }
            Type::Const(t) => btf.resolve_chained_type(t),
            Type::Volatile(t) => btf.resolve_chained_type(t),
            _ => break,
        };
        ty = next.map_err(|e| e.to_string())?;
    }
    Ok((typedef, ty))
}

/// The metric members of a value type, and its size: typed members, and
/// members annotated with `metrics.type`; a plain-integer value is one
/// counter (or what its `value` annotation says) when `scalar` is allowed.
fn metric_fields(
    btf: &btf_rs::Btf,
    type_id: u32,
    map: &str,
    annotated: &BTreeMap<String, Annotation>,
    scalar: bool,
) -> super::error::Result<(Vec<MetricField>, usize)> {
    use btf_rs::{BtfType, Type};
    let bad = |field: &str, reason: String| super::error::GadgetError::UnsupportedType {
        field: format!("{map}: {field}"),
        reason,
    };
    let (_, ty) = resolve_member(btf, type_id).map_err(|e| bad("value", e))?;
    // Annotated metric type and unit of a member, checked against its type.
    let classify = |name: &str,
                    typedef: Option<&str>,
                    ty: &Type|
     -> super::error::Result<Option<MetricField>> {
        let a = annotated.get(name);
        let from_typedef = typedef.and_then(typedef_kind);
        let wanted = match a.and_then(|a| a.kind.as_deref()) {
            Some("counter") => Some(MetricKind::Counter),
            Some("gauge") => Some(MetricKind::Gauge),
            Some("histogram") => Some(MetricKind::Histogram { slots: 0 }),
            Some(_) => return Ok(None), // key
            None => from_typedef.as_ref().map(|(k, _)| k.clone()),
        };
        let Some(wanted) = wanted else {
            return Ok(None);
        };
        let at = a.map(|a| a.at.clone()).unwrap_or_else(|| name.to_string());
        let what = |ty: &Type| match ty {
            Type::Int(i) => format!("a {}-byte integer", i.size()),
            Type::Array(a) => format!("an array of {}", a.len()),
            other => format!("a {}", other.name()),
        };
        let unit = a.and_then(|a| a.unit.clone());
        match (&wanted, ty) {
            (MetricKind::Counter | MetricKind::Gauge, Type::Int(i))
                if [1, 2, 4, 8].contains(&i.size()) && !i.is_bool() =>
            {
                Ok(Some(MetricField {
                    name: name.into(),
                    offset: 0,
                    size: i.size(),
                    kind: wanted,
                    unit,
                }))
            }
            (MetricKind::Histogram { .. }, Type::Array(arr)) => {
                let elem = arr
                    .get_type_id()
                    .ok_or_else(|| bad(name, "array without element type".into()))?;
                let (_, et) = resolve_member(btf, elem).map_err(|e| bad(name, e))?;
                match et {
                    Type::Int(i) if i.size() == 4 || i.size() == 8 => Ok(Some(MetricField {
                        name: name.into(),
                        offset: 0,
                        size: i.size(),
                        kind: MetricKind::Histogram { slots: arr.len() },
                        unit,
                    })),
                    other => Err(bad(
                        &at,
                        format!(
                            "a histogram needs an array of 4- or 8-byte integers (buckets), but `{name}` is an array of {}",
                            what(&other)
                        ),
                    )),
                }
            }
            (MetricKind::Histogram { .. }, other) => Err(bad(
                &at,
                format!(
                    "a histogram needs an array of buckets (e.g. `gadget_histogram_slot__u32 {name}[32]`), but `{name}` is {}",
                    what(other)
                ),
            )),
            (_, other) => Err(bad(
                &at,
                format!(
                    "metrics.type {} needs a number, but `{name}` is {}",
                    match wanted {
                        MetricKind::Counter => "counter",
                        _ => "gauge",
                    },
                    what(other)
                ),
            )),
        }
    };
    let Type::Struct(s) = &ty else {
        // ebpf_exporter's layout: the whole value is the number.
        if !scalar {
            return Ok((Vec::new(), 0));
        }
        let size = match &ty {
            Type::Int(i) => i.size(),
            _ => 0,
        };
        // Named after the data source alone (an empty field name).
        let value = match classify("value", Some("gadget_counter__u64"), &ty)? {
            Some(f) => vec![MetricField {
                name: String::new(),
                ..f
            }],
            None => Vec::new(),
        };
        return Ok((value, size));
    };
    let mut fields = Vec::new();
    for m in &s.members {
        let name = super::object::name_of(btf, m);
        let Some(id) = m.get_type_id() else { continue };
        let (typedef, mty) = resolve_member(btf, id).map_err(|e| bad(&name, e))?;
        // An array of metric-typed elements: the typedef is on the element.
        let typedef = match (&typedef, &mty) {
            (None, Type::Array(a)) => a
                .get_type_id()
                .and_then(|e| resolve_member(btf, e).ok())
                .and_then(|(t, _)| t),
            _ => typedef,
        };
        if let Some(mut f) = classify(&name, typedef.as_deref(), &mty)? {
            f.offset = (m.bit_offset() / 8) as usize;
            fields.push(f);
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
        (1, Some(b)) => b[0] as u64,
        (2, Some(b)) => u16::from_ne_bytes(b.try_into().unwrap()) as u64,
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
/// Opens the map of each of `specs` among the maps `ids`.
fn open_metric_maps(ids: &[u32], specs: &[MetricMapSpec]) -> Vec<MetricMap> {
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
