//! Running a gadget in-process: the library API the agent is built on, and
//! the seed's "Running Gadgets Directly" for other Rust programs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::Ebpf;
use gadgetd_dbus::stream::{Alignment, Field};

use super::classify::{self, SourceKind, Tracer};
use super::decode::Decoder;
use super::definition::Definition;
use super::enrich::{self, SharedEnricher};
use super::error::{GadgetError, Result};
use super::kinds::{self, Profiler, Snapshotter, Topper};
use super::layout::{self, Layout};
use super::load::{self, Attachments, LoadRequest};
use super::mntns_filter::MntnsFilterMap;
use super::object::GadgetObject;
use super::params::{self, ParamSpec};
use super::profiler::HistReader;
use super::rawmap::RawHashMap;
use super::reader::{Batch, EventReader};
use super::snapshot;
use super::stacks;
use super::topper::{self, SortSpec, TopperReader};

/// A parsed and classified gadget, ready to start any number of times.
pub struct Gadget {
    obj: GadgetObject,
    definition: Definition,
    kind: Kind,
    /// The fields of one event or row (for profilers: empty).
    layout: Layout,
    params: Vec<ParamSpec>,
}

/// What a gadget produces (design.md's map and program conventions).
#[derive(Debug, Clone)]
pub enum Kind {
    /// A stream of events (`print_*` buffers).
    Tracer(Tracer),
    /// Rows read once from `iter/*` programs.
    Snapshotter(Snapshotter),
    /// A table re-read every interval (`stats_*` maps); key and value layouts.
    Topper(Topper, Layout, Layout),
    /// Histograms (`hist_*` maps).
    Profiler(Vec<Profiler>),
}

impl Kind {
    /// `tracer`, `snapshotter`, `topper` or `profiler`.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Tracer(_) => "tracer",
            Kind::Snapshotter(_) => "snapshotter",
            Kind::Topper(..) => "topper",
            Kind::Profiler(_) => "profiler",
        }
    }
}

/// How to run a gadget.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Parameter values by name, as a user types them.
    pub params: BTreeMap<String, String>,
    /// Override the tracer's ring buffer size (bytes, a power of two).
    pub ring_buffer_bytes: Option<u32>,
    /// Only these mount namespaces (`gadget_mntns_filter_map`); `None`: all.
    pub mntns_filter: Option<Vec<u64>>,
    /// Fills the container fields after the namespace field.
    pub enricher: Option<SharedEnricher>,
    /// Toppers: how often to print (default 1 s). Profilers: print this
    /// often as well as at the end (default: only at the end).
    pub interval: Option<Duration>,
    /// Toppers and snapshotters: `FIELD[,-FIELD]` (`-`: descending).
    pub sort: Option<String>,
    /// Toppers and snapshotters: at most this many rows per table.
    pub max_rows: Option<usize>,
    /// Network snapshotters: iterate every network namespace of the host
    /// instead of only the agent's.
    pub all_netns: bool,
    /// Network snapshotters and socket filters: exactly these network
    /// namespaces (inodes, e.g. of the selected containers). Wins over `all_netns`.
    pub netns_ids: Option<Vec<u64>>,
    /// Cgroup programs (`cgroup_skb/…`, `cgroup/…`): attach on this cgroup2
    /// directory (a container's, or one the user names); `None`: the cgroup2 root.
    pub cgroup: Option<std::path::PathBuf>,
}

/// A definition entry naming no field or parameter is a typo the user
/// should hear about, not a setting silently ignored.
fn check_definition_names(
    def: &Definition,
    described: &[Described],
    params: &[ParamSpec],
) -> Result<()> {
    let fields = || {
        described
            .iter()
            .map(|f| f.0.as_str())
            .chain(enrich::FIELDS.iter().map(|(n, _)| *n))
    };
    for c in def
        .columns
        .iter()
        .filter(|c| !fields().any(|f| f == c.name))
    {
        let message = format!(
            "column `{}` names no field of the event (fields: {})",
            c.name,
            fields().collect::<Vec<_>>().join(", ")
        );
        // Inspektor Gadget only warns about field annotations naming no field.
        if c.strict {
            return Err(GadgetError::Definition(message));
        }
        tracing::warn!("gadget.yaml: {message}");
    }
    if let Some(p) = def
        .params
        .iter()
        .find(|p| !params.iter().any(|s| s.key == p.key))
    {
        return Err(GadgetError::Definition(format!(
            "param `{}` names no `const volatile` parameter of the program (parameters: {})",
            p.key,
            params
                .iter()
                .map(|s| s.key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// A field of the stream header before the definition applies: name, type,
/// default width, right-aligned.
type Described = (String, String, u32, bool);

/// Every field a gadget's output has: its layout's, the names beside
/// semantic numbers (`uid_name`), and what the kind adds.
fn described_fields(layout: &Layout, kind: &Kind) -> Vec<Described> {
    let mut described: Vec<Described> = Vec::new();
    for f in &layout.fields {
        let kind = f.value_kind();
        described.push((
            f.name.clone(),
            kind.type_name(),
            kind.default_width(),
            kind.right_aligned(),
        ));
        if let Some((name, kind)) = f.companion() {
            let width = match kind {
                "list" => 40,
                "timestamp" => 30,
                _ => 12,
            };
            described.push((name, kind.into(), width, false));
        }
    }
    match kind {
        Kind::Snapshotter(s) if s.per_netns() && !row_has_netns(layout) => {
            described.push(("netns_id".into(), "netns_id".into(), 10, true))
        }
        Kind::Profiler(_) => {
            for (name, kind, width, right) in [
                ("histogram", "string", 12, false),
                ("unit", "string", 8, false),
                ("scale", "string", 6, false),
                ("total", "u64", 10, true),
                ("buckets", "histogram", 40, false),
            ] {
                described.push((name.into(), kind.into(), width, right));
            }
        }
        _ => {}
    }
    described
}

/// A row with its own `netns_id` field needs no namespace tag added.
fn row_has_netns(layout: &Layout) -> bool {
    layout.fields.iter().any(|f| f.name == "netns_id")
}

/// Inspektor Gadget's conventions for columns: a member `X_raw` whose
/// formatted `X` is printed too, and members whose name (or a parent
/// struct's) starts with `__`, are hidden unless asked for (`--fields`).
fn hidden_by_default(name: &str, all: &[String]) -> bool {
    let raw_with_formatted = name
        .strip_suffix("_raw")
        .is_some_and(|base| all.iter().any(|n| n == base));
    raw_with_formatted || name.split('.').any(|part| part.starts_with("__"))
}

impl Gadget {
    /// Parses an ELF object and an optional definition YAML.
    pub fn from_object(bytes: Vec<u8>, definition_yaml: Option<&str>) -> Result<Gadget> {
        let mut definition = Definition::parse(definition_yaml.unwrap_or(""))?;
        let obj = GadgetObject::parse(bytes)?;
        let kind = classify_kind(&obj)?;
        let source = match &kind {
            Kind::Tracer(t) => t.name.as_str(),
            Kind::Snapshotter(s) => s.name.as_str(),
            Kind::Topper(t, ..) => t.name.as_str(),
            Kind::Profiler(p) => p.first().map_or("", |p| p.name.as_str()),
        };
        for w in definition.select_datasource(source)? {
            tracing::warn!("{w}");
        }
        let layout = match &kind {
            Kind::Tracer(t) => layout::build(&obj.btf, t.event_type)?,
            Kind::Snapshotter(s) => layout::build(&obj.btf, s.row_type)?,
            Kind::Topper(_, key, value) => {
                let mut fields = key.fields.clone();
                fields.extend(value.fields.iter().map(|f| layout::FieldLayout {
                    offset: key.size + f.offset,
                    ..f.clone()
                }));
                Layout {
                    type_name: format!("{}+{}", key.type_name, value.type_name),
                    size: key.size + value.size,
                    fields,
                }
            }
            Kind::Profiler(_) => Layout {
                type_name: "histogram".into(),
                size: 0,
                fields: Vec::new(),
            },
        };
        let params = params::specs(&obj, &definition)?;
        // Metric types and annotations are checked here, at load.
        super::metrics::discover(&obj, &definition)?;
        check_definition_names(&definition, &described_fields(&layout, &kind), &params)?;
        Ok(Gadget {
            obj,
            definition,
            kind,
            layout,
            params,
        })
    }

    /// What it produces: tracer, snapshotter, topper or profiler, with its
    /// maps and programs.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The definition's long `documentation` text; empty without one.
    pub fn documentation(&self) -> String {
        self.definition.documentation.clone().unwrap_or_default()
    }

    /// The gadget's name: the definition's, else the tracer's.
    pub fn name(&self) -> String {
        self.definition
            .name
            .clone()
            .unwrap_or_else(|| match &self.kind {
                Kind::Tracer(t) => t.name.clone(),
                Kind::Topper(t, ..) => t.name.clone(),
                Kind::Profiler(p) => p.first().map(|p| p.name.clone()).unwrap_or_default(),
                Kind::Snapshotter(s) => s.programs.first().map(|p| p.0.clone()).unwrap_or_default(),
            })
    }

    /// The name the definition file gives, if any.
    pub fn definition_name(&self) -> Option<&str> {
        self.definition.name.as_deref()
    }

    /// The definition's one-line `description`; empty without one.
    pub fn description(&self) -> String {
        self.definition.description.clone().unwrap_or_default()
    }

    /// Its parameters, in declaration order (set them in [`RunOptions::params`]).
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// The fields of one event or row, at their byte offsets (profilers: empty).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The fields of the stream header: BTF layout plus the definition's
    /// column attributes.
    pub fn fields(&self) -> Vec<Field> {
        let described = described_fields(&self.layout, &self.kind);
        let names: Vec<String> = described.iter().map(|d| d.0.clone()).collect();
        let mut fields: Vec<Field> = described
            .into_iter()
            .enumerate()
            .map(|(i, (name, kind, default_width, right))| {
                let col = self.definition.column(&name);
                let width = col.and_then(|c| c.width).unwrap_or(default_width);
                let hidden = hidden_by_default(&name, &names);
                Field {
                    name,
                    kind,
                    width,
                    min_width: col.and_then(|c| c.min_width),
                    max_width: col.and_then(|c| c.max_width),
                    alignment: col.and_then(|c| c.alignment).unwrap_or(if right {
                        Alignment::Right
                    } else {
                        Alignment::Left
                    }),
                    visible: col.and_then(|c| c.visible).unwrap_or(!hidden),
                    order: col.and_then(|c| c.order).unwrap_or(i as i32 * 10),
                    ellipsis: col.and_then(|c| c.ellipsis).unwrap_or_default(),
                    description: col.and_then(|c| c.description.clone()).unwrap_or_default(),
                }
            })
            .collect();
        if let Some((at, _)) = enrich::enriched_field(&self.layout) {
            // `at` indexes the layout; the header also has the `_name` fields.
            let at_name = &self.layout.fields[at].name;
            let base = fields
                .iter()
                .find(|f| &f.name == at_name)
                .map_or(0, |f| f.order);
            for (i, (name, visible)) in enrich::FIELDS.iter().enumerate() {
                let col = self.definition.column(name);
                fields.push(Field {
                    name: name.to_string(),
                    kind: "string".into(),
                    width: col.and_then(|c| c.width).unwrap_or(16),
                    min_width: col.and_then(|c| c.min_width),
                    max_width: col.and_then(|c| c.max_width),
                    alignment: col.and_then(|c| c.alignment).unwrap_or(Alignment::Left),
                    visible: col.and_then(|c| c.visible).unwrap_or(*visible),
                    order: col.and_then(|c| c.order).unwrap_or(base + 1 + i as i32),
                    ellipsis: col.and_then(|c| c.ellipsis).unwrap_or_default(),
                    description: col.and_then(|c| c.description.clone()).unwrap_or_default(),
                });
            }
        }
        fields.sort_by_key(|f| f.order);
        fields
    }

    /// Socket filters and per-netns iterators run once per network namespace.
    fn scoped_by_netns(&self) -> bool {
        self.has_socket_filters() || matches!(&self.kind, Kind::Snapshotter(s) if s.per_netns())
    }

    /// Loads and attaches the gadget. Blocking (tens of milliseconds of
    /// syscalls; a snapshot is taken here); must be called within a tokio runtime.
    pub fn start(&self, opts: &RunOptions) -> Result<Running> {
        let globals = self.encode_params(opts)?;
        // Check the kind's options before touching the kernel.
        let sort = match &self.kind {
            Kind::Topper(_, key, value) => Some(SortSpec::parse(
                opts.sort.as_deref().unwrap_or(""),
                key,
                value,
            )?),
            Kind::Snapshotter(_) => match opts.sort.as_deref() {
                Some(spec) => Some(SortSpec::parse(spec, &empty_layout(), &self.layout)?),
                None => None,
            },
            _ => None,
        };
        let mut globals = globals;
        let has_mntns_filter = self.obj.rodata.contains_key("gadget_filter_by_mntns");
        // Network gadgets select containers by network namespace (netns_ids);
        // they need no mount-namespace filter.
        let filtering =
            opts.mntns_filter.is_some() && (has_mntns_filter || !self.scoped_by_netns());
        if filtering {
            if !has_mntns_filter {
                return Err(GadgetError::Param {
                    name: "mntns filter".into(),
                    reason: "this gadget does not include gadget/mntns_filter.h, so it cannot filter by container".into(),
                });
            }
            globals.push(("gadget_filter_by_mntns".into(), vec![1]));
        }
        let tracer_map = match &self.kind {
            Kind::Tracer(t) => Some(t.map.clone()),
            _ => None,
        };
        let mut max_entries = match (&tracer_map, opts.ring_buffer_bytes) {
            (Some(map), Some(b)) => vec![(map.clone(), b)],
            _ => Vec::new(),
        };
        max_entries.extend(kinds::runtime_max_entries(&self.obj, &globals));
        // Socket filters watch the first namespace of interest; more get instances of their own.
        let mut filter_netns = match self.has_socket_filters() {
            true => netns_of_interest(opts)?,
            false => Vec::new(),
        };
        let first_netns = if filter_netns.is_empty() {
            None
        } else {
            Some(filter_netns.remove(0))
        };
        if self.obj.rodata.contains_key(NETNS_GLOBAL) {
            let inode = match &first_netns {
                Some(ns) => ns.inode,
                None => snapshot::own_netns()?.inode,
            };
            globals.push((NETNS_GLOBAL.into(), inode.to_le_bytes().to_vec()));
        }
        let base_globals = globals.clone();
        let req = LoadRequest {
            obj: &self.obj,
            tracer_maps: tracer_map.iter().map(String::as_str).collect(),
            globals,
            max_entries: max_entries.clone(),
        };
        // However loading ends, the parsed kernel BTF is not kept around.
        let _release = load::KernelBtfRelease;
        let (mut ebpf, pins) = load::load_pinned(&req)?;
        let mntns_filter = match &opts.mntns_filter {
            Some(ids) if filtering => Some(Arc::new(MntnsFilterMap::take(&mut ebpf, ids)?)),
            _ => None,
        };
        let enricher = opts.enricher.clone().map(|e| e.0);
        let stack_map = stacks::STACK_MAPS
            .iter()
            .find_map(|name| ebpf.take_map(name).map(|m| (*name, m)));
        let stacks = match stack_map {
            Some((name, map)) => Some(std::sync::Arc::new(
                stacks::KernelStacks::new(map).map_err(|reason| GadgetError::Reader {
                    map: name.into(),
                    reason,
                })?,
            )),
            None => None,
        };
        let source = match &self.kind {
            Kind::Tracer(t) => Source::Tracer(vec![EventReader::new(
                &mut ebpf,
                t,
                Decoder::new(&self.layout)
                    .with_stacks(stacks.clone())
                    .with_enricher(enricher.clone()),
            )?]),
            Kind::Topper(t, key, value) => {
                let map = take_raw(&mut ebpf, &t.map, key.size, value.size)?;
                let reader = TopperReader::new(
                    map,
                    t.clear,
                    key,
                    value,
                    sort.clone().expect("toppers always have a sort order"),
                    opts.max_rows.unwrap_or(topper::DEFAULT_MAX_ROWS),
                )
                .with_stacks(stacks.clone())
                .with_enricher(enricher.clone());
                Source::Topper {
                    reader,
                    tick: interval(opts.interval.unwrap_or(Duration::from_secs(1))),
                }
            }
            Kind::Profiler(profilers) => {
                let mut readers = Vec::new();
                for p in profilers {
                    let map = take_raw(&mut ebpf, &p.map, 4, p.value_size)?;
                    readers.push(HistReader::new(p.clone(), map));
                }
                Source::Profiler {
                    readers,
                    tick: opts.interval.map(interval),
                }
            }
            Kind::Snapshotter(s) => {
                snapshot::load_programs(&mut ebpf, s)?;
                Source::Snapshot {
                    line: Vec::new(),
                    rows: 0,
                    malformed: 0,
                }
            }
        };
        let mut attachments = load::attach_all_with(
            &mut ebpf,
            &self.obj,
            first_netns.as_ref().map(|ns| &ns.file),
            opts.cgroup.as_deref(),
        )?;
        attachments.pins = pins;
        let mut source = source;
        let mut instances = (vec![attachments], Vec::new());
        if let (
            Kind::Snapshotter(s),
            Source::Snapshot {
                line,
                rows,
                malformed,
            },
        ) = (&self.kind, &mut source)
        {
            let netns = if s.per_netns() {
                netns_of_interest(opts)?
            } else {
                Vec::new()
            };
            let decoder = Decoder::new(&self.layout)
                .with_stacks(stacks.clone())
                .with_enricher(enricher.clone());
            let mut collected = snapshot::collect(&mut ebpf, s, self.layout.size, &netns)?;
            if row_has_netns(&self.layout) {
                // The row says its namespace itself (Inspektor Gadget's snapshot_socket).
                collected.netns.iter_mut().for_each(|n| *n = None);
            }
            *rows = collected.len() as u64;
            *malformed = collected.malformed;
            *line = snapshot_line(&collected, &decoder, sort.as_ref(), opts.max_rows);
        }
        if let (Kind::Tracer(t), Source::Tracer(readers)) = (&self.kind, &mut source) {
            // One more instance per other network namespace, each tagged with it.
            for ns in filter_netns {
                let mut globals = base_globals.clone();
                for (name, value) in globals.iter_mut() {
                    if name == NETNS_GLOBAL {
                        *value = ns.inode.to_le_bytes().to_vec();
                    }
                }
                let req = LoadRequest {
                    obj: &self.obj,
                    tracer_maps: vec![t.map.as_str()],
                    globals,
                    max_entries: max_entries.clone(),
                };
                let mut e = load::load(&req)?;
                if let (Some(ids), true) = (&opts.mntns_filter, filtering) {
                    fill_mntns_filter(&mut e, ids)?;
                }
                let decoder = Decoder::new(&self.layout).with_enricher(enricher.clone());
                readers.push(EventReader::new(&mut e, t, decoder)?);
                match load::attach_all_in(&mut e, &self.obj, Some(&ns.file)) {
                    Ok(att) => instances.0.push(att),
                    // The namespace went away meanwhile: nothing to watch there.
                    Err(err) => {
                        tracing::debug!(netns = ns.inode, error = %err, "skipping a network namespace");
                        readers.pop();
                        continue;
                    }
                }
                instances.1.push(e);
            }
        }
        instances.1.insert(0, ebpf);
        let metrics = Arc::new(super::metrics::RunMetrics::collect(
            &instances.1,
            &self.obj,
            &self.definition,
        )?);
        Ok(Running {
            metrics,
            source,
            _attachments: instances.0,
            _ebpf: instances.1,
            last_loss_poll: Instant::now(),
            mntns_filter,
            pending: Vec::new(),
            pending_at: 0,
            finished: false,
        })
    }

    /// Whether any program is a socket filter (they see one network namespace each).
    fn has_socket_filters(&self) -> bool {
        self.obj.programs.iter().any(|p| {
            matches!(
                load::attach_point(&p.section),
                Ok(load::AttachPoint::SocketFilter)
            )
        })
    }

    /// User values (by flag name or variable) plus definition defaults, encoded for `.rodata`.
    fn encode_params(&self, opts: &RunOptions) -> Result<Vec<(String, Vec<u8>)>> {
        let mut globals = Vec::new();
        for (name, value) in &opts.params {
            let spec = self
                .params
                .iter()
                .find(|p| &p.name == name || &p.key == name)
                .ok_or_else(|| GadgetError::Param {
                    name: name.clone(),
                    reason: format!(
                        "unknown parameter (this gadget has: {})",
                        if self.params.is_empty() {
                            "none".to_string()
                        } else {
                            self.params
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                })?;
            globals.push((spec.key.clone(), params::encode(spec, value)?));
        }
        for spec in &self.params {
            let given = globals.iter().any(|(k, _)| *k == spec.key);
            let def_default = self
                .definition
                .param(&spec.key)
                .and_then(|p| p.default.as_ref());
            if let (false, Some(default)) = (given, def_default) {
                globals.push((spec.key.clone(), params::encode(spec, default)?));
            }
        }
        Ok(globals)
    }
}

/// The network namespaces socket filters and network iterators look at:
/// the ones asked for, every one on the host, or the agent's own.
fn netns_of_interest(opts: &RunOptions) -> Result<Vec<snapshot::Netns>> {
    if let Some(ids) = &opts.netns_ids {
        if ids.is_empty() {
            return Err(GadgetError::Param {
                name: "netns".into(),
                reason: "no network namespace selected: no container matches the selection \
                         (start it first, or name namespaces with --netns)"
                    .into(),
            });
        }
        let found: Vec<_> = snapshot::all_netns()
            .into_iter()
            .filter(|ns| ids.contains(&ns.inode))
            .collect();
        if found.is_empty() {
            return Err(GadgetError::Param {
                name: "netns".into(),
                reason: format!("none of the network namespaces {ids:?} exists (any more)"),
            });
        }
        return Ok(found);
    }
    if opts.all_netns {
        return Ok(snapshot::all_netns());
    }
    Ok(vec![snapshot::own_netns()?])
}

/// The `.rodata` global (`GADGET_NETNS_ID` in gadget/macros.h) the agent sets
/// to the inode of the network namespace a socket-filter instance watches.
const NETNS_GLOBAL: &str = "gadget_current_netns";

/// Picks the data source this runtime runs: an object may declare several
/// (`classify::data_sources`), but one run streams one of them. The first
/// in this order wins: snapshotter, tracer, map iterator (topper), then all
/// histograms together; the others are named in a warning.
fn classify_kind(obj: &GadgetObject) -> Result<Kind> {
    let found = classify::data_sources(obj)?;
    for w in &found.warnings {
        tracing::warn!("{w}");
    }
    let rank = |k: &SourceKind| match k {
        SourceKind::Snapshotter(_) => 0,
        SourceKind::Tracer(_) => 1,
        SourceKind::Topper(_) => 2,
        SourceKind::Profiler(_) => 3,
    };
    let Some(first) = found.sources.iter().min_by_key(|s| rank(&s.kind)) else {
        return Err(GadgetError::NoDataSource);
    };
    let kind = match &first.kind {
        SourceKind::Snapshotter(s) => Kind::Snapshotter(s.clone()),
        SourceKind::Tracer(t) => Kind::Tracer(t.clone()),
        SourceKind::Topper(t) => {
            let key = layout::build_or_scalar(&obj.btf, t.key_type, "key")?;
            let value = layout::build_or_scalar(&obj.btf, t.value_type, "value")?;
            Kind::Topper(t.clone(), key, value)
        }
        SourceKind::Profiler(_) => Kind::Profiler(
            found
                .sources
                .iter()
                .filter_map(|s| match &s.kind {
                    SourceKind::Profiler(p) => Some(p.clone()),
                    _ => None,
                })
                .collect(),
        ),
    };
    let skipped: Vec<String> = found
        .sources
        .iter()
        .filter(|s| match (&s.kind, &first.kind) {
            (SourceKind::Profiler(_), SourceKind::Profiler(_)) => false,
            _ => !std::ptr::eq(*s, first),
        })
        .map(|s| format!("`{}` ({})", s.name, s.kind.describe()))
        .collect();
    if !skipped.is_empty() {
        tracing::warn!(
            "the gadget has {} data sources; this agent runs one per run: `{}` ({}), not {}",
            found.sources.len(),
            first.name,
            first.kind.describe(),
            skipped.join(", ")
        );
    }
    Ok(kind)
}

fn empty_layout() -> Layout {
    Layout {
        type_name: String::new(),
        size: 0,
        fields: Vec::new(),
    }
}

fn interval(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

fn take_raw(ebpf: &mut Ebpf, name: &str, key_size: usize, value_size: usize) -> Result<RawHashMap> {
    let map = ebpf.take_map(name).ok_or_else(|| GadgetError::Reader {
        map: name.into(),
        reason: "map missing after load".into(),
    })?;
    RawHashMap::new(map, key_size, value_size).map_err(|reason| GadgetError::Reader {
        map: name.into(),
        reason,
    })
}

/// A snapshot's rows as one JSON array line, sorted and cut when asked.
fn snapshot_line(
    rows: &snapshot::Rows,
    decoder: &Decoder,
    sort: Option<&SortSpec>,
    max_rows: Option<usize>,
) -> Vec<u8> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    if let Some(spec) = sort {
        order.sort_by(|&a, &b| spec.compare(rows.row(a), rows.row(b)));
    }
    if let Some(n) = max_rows {
        order.truncate(n);
    }
    let mut line = Vec::with_capacity(rows.len() * 128 + 3);
    rows.write_json(decoder, &order, &mut line);
    line
}

fn fill_mntns_filter(ebpf: &mut Ebpf, ids: &[u64]) -> Result<()> {
    let map = ebpf
        .map_mut("gadget_mntns_filter_map")
        .ok_or_else(|| GadgetError::Param {
            name: "mntns filter".into(),
            reason: "gadget_mntns_filter_map is missing".into(),
        })?;
    let mut hash = aya::maps::HashMap::<_, u64, u32>::try_from(map)
        .map_err(|e| GadgetError::Load(e.to_string()))?;
    for id in ids {
        hash.insert(id, 1, 0)
            .map_err(|e| GadgetError::Load(e.to_string()))?;
    }
    Ok(())
}

/// Where a live gadget's output comes from.
#[allow(clippy::large_enum_variant)] // one per run; boxing buys nothing
enum Source {
    /// One reader per loaded instance (socket filters load once per network namespace).
    Tracer(Vec<EventReader>),
    /// Taken at start; handed out once.
    Snapshot {
        line: Vec<u8>,
        rows: u64,
        malformed: u64,
    },
    Topper {
        reader: TopperReader,
        tick: tokio::time::Interval,
    },
    Profiler {
        readers: Vec<HistReader>,
        tick: Option<tokio::time::Interval>,
    },
}

/// A live gadget. Dropping it detaches and unloads every program.
pub struct Running {
    // Field order matters: the readers and sockets go before the programs.
    source: Source,
    _attachments: Vec<Attachments>,
    _ebpf: Vec<Ebpf>,
    last_loss_poll: Instant,
    mntns_filter: Option<Arc<MntnsFilterMap>>,
    /// What a metrics scrape reads ([`Running::metrics`]).
    metrics: Arc<super::metrics::RunMetrics>,
    /// For [`Running::next_record`]: decoded lines not yet handed out.
    pending: Vec<u8>,
    pending_at: usize,
    finished: bool,
}

/// How often ring-buffer loss counters are read.
const LOSS_POLL: Duration = Duration::from_millis(250);

/// One item of [`Running::next_record`].
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A tracer's event, or a profiler's histogram.
    Event(serde_json::Map<String, serde_json::Value>),
    /// A snapshot, or one interval of a topper: the rows, in order.
    Rows(Vec<serde_json::Map<String, serde_json::Value>>),
    /// Events lost in the kernel since the previous report.
    Lost(u64),
}

impl Running {
    /// The live filter map, when the run was started with a filter.
    pub fn mntns_filter(&self) -> Option<Arc<MntnsFilterMap>> {
        self.mntns_filter.clone()
    }

    /// The run's metrics sources, shared with scrapers (docs/metrics.md).
    pub fn metrics(&self) -> Arc<super::metrics::RunMetrics> {
        self.metrics.clone()
    }

    /// Waits for output and appends it to `out` as JSON lines: one object per
    /// event (tracers) or histogram (profilers), one array per table
    /// (snapshotters, toppers).
    pub async fn next_batch(&mut self, out: &mut Vec<u8>) -> Batch {
        match &mut self.source {
            Source::Tracer(readers) => loop {
                let mut batch = Batch::default();
                let poll_losses = self.last_loss_poll.elapsed() >= LOSS_POLL;
                if poll_losses {
                    self.last_loss_poll = Instant::now();
                }
                for reader in readers.iter_mut() {
                    let b = reader.drain(out);
                    batch.events += b.events;
                    batch.lost += b.lost;
                    batch.malformed += b.malformed;
                    if poll_losses {
                        batch.lost += reader.poll_ring_losses();
                    }
                }
                if batch != Batch::default() {
                    return batch;
                }
                std::future::poll_fn(|cx| {
                    // Poll every reader so each registers its wake-up.
                    let mut ready = false;
                    for r in readers.iter_mut() {
                        ready |= r.poll_wait(cx).is_ready();
                    }
                    if ready {
                        std::task::Poll::Ready(())
                    } else {
                        std::task::Poll::Pending
                    }
                })
                .await;
            },
            Source::Snapshot {
                line,
                rows,
                malformed,
            } => {
                if line.is_empty() {
                    return std::future::pending().await;
                }
                out.append(line);
                Batch {
                    events: *rows,
                    malformed: *malformed,
                    finished: true,
                    ..Batch::default()
                }
            }
            Source::Topper { reader, tick } => {
                tick.tick().await;
                match reader.read_table(out) {
                    Ok(table) => Batch {
                        events: table.shown,
                        ..Batch::default()
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "reading a stats_ map failed");
                        Batch {
                            malformed: 1,
                            ..Batch::default()
                        }
                    }
                }
            }
            Source::Profiler {
                readers,
                tick: Some(tick),
            } => {
                tick.tick().await;
                write_histograms(readers, out)
            }
            Source::Profiler { tick: None, .. } => std::future::pending().await,
        }
    }

    /// What is left when the run stops: buffered events, and a profiler's
    /// final histograms. Does not wait.
    pub fn drain_final(&mut self, out: &mut Vec<u8>) -> Batch {
        match &mut self.source {
            Source::Tracer(readers) => {
                let mut batch = Batch::default();
                for r in readers.iter_mut() {
                    let b = r.drain(out);
                    batch.events += b.events;
                    batch.lost += b.lost;
                    batch.malformed += b.malformed;
                }
                batch
            }
            Source::Profiler { readers, .. } => write_histograms(readers, out),
            _ => Batch::default(),
        }
    }

    /// What became of each program (attached, disabled, tail-call target,
    /// or skipped and why), for the run's first instance.
    pub fn programs(&self) -> &[load::ProgramReport] {
        self._attachments.first().map_or(&[], |a| &a.programs)
    }

    /// Final loss count (call before dropping, after the programs stop producing).
    pub fn final_losses(&mut self) -> u64 {
        match &mut self.source {
            Source::Tracer(readers) => readers.iter_mut().map(|r| r.poll_ring_losses()).sum(),
            _ => 0,
        }
    }

    /// Convenience for library users: the next event, table or loss report,
    /// decoded into JSON values. `None` once a snapshot has been handed out.
    pub async fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some(rec) = self.pop_pending()? {
                return Ok(Some(rec));
            }
            if self.finished {
                return Ok(None);
            }
            let mut buf = std::mem::take(&mut self.pending);
            buf.clear();
            self.pending_at = 0;
            let batch = self.next_batch(&mut buf).await;
            self.pending = buf;
            self.finished = batch.finished;
            if batch.lost + batch.malformed > 0 {
                return Ok(Some(Record::Lost(batch.lost + batch.malformed)));
            }
        }
    }

    /// Stops producing and returns what remains (a profiler's histograms).
    pub fn finish(&mut self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut buf = std::mem::take(&mut self.pending);
        buf.drain(..self.pending_at.min(buf.len()));
        self.drain_final(&mut buf);
        self.pending = buf;
        self.pending_at = 0;
        while let Some(rec) = self.pop_pending()? {
            out.push(rec);
        }
        Ok(out)
    }

    fn pop_pending(&mut self) -> Result<Option<Record>> {
        if self.pending_at >= self.pending.len() {
            return Ok(None);
        }
        let rest = &self.pending[self.pending_at..];
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = &rest[..end];
        self.pending_at += end + 1;
        let bad = |e: serde_json::Error| GadgetError::Reader {
            map: "(decoder)".into(),
            reason: e.to_string(),
        };
        Ok(Some(if line.first() == Some(&b'[') {
            Record::Rows(serde_json::from_slice(line).map_err(bad)?)
        } else {
            Record::Event(serde_json::from_slice(line).map_err(bad)?)
        }))
    }
}

fn write_histograms(readers: &mut [HistReader], out: &mut Vec<u8>) -> Batch {
    let mut batch = Batch::default();
    for r in readers {
        match r.write_json(true, out) {
            Ok(malformed) => {
                batch.events += 1;
                batch.malformed += malformed;
            }
            Err(e) => {
                tracing::warn!(map = %r.profiler.map, error = %e, "reading a hist_ map failed");
                batch.malformed += 1;
            }
        }
    }
    batch
}
