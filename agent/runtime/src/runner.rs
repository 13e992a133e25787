//! Running a gadget in-process: the library API the agent is built on, and
//! the seed's "Running Gadgets Directly" for other Rust programs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aya::Ebpf;
use gadgetd_dbus::stream::{DataSourceInfo, Field};

pub use super::datasource::Kind;
use super::datasource::{self, DataSource, Described};
use super::decode::Decoder;
use super::definition::Definition;
use super::enrich::{self, SharedEnricher};
use super::error::{GadgetError, Result};
use super::follow_netns;
use super::kinds;
use super::layout::Layout;
use super::load::{self, Attachments, LoadRequest};
use super::mntns_filter::MntnsFilterMap;
use super::net_dispatch;
use super::object::GadgetObject;
use super::params::{self, ParamSpec};
use super::profiler::HistReader;
use super::rawmap::RawHashMap;
use super::reader::{Batch, EventReader};
use super::snapshot;
use super::socket_enricher;
use super::stacks;
use super::table_sort as sort;
use super::tag;
use super::tc;
use super::tc_follow::TcFollow;
use super::topper::{self, SortSpec, TopperReader};

/// A parsed and classified gadget, ready to start any number of times.
pub struct Gadget {
    obj: GadgetObject,
    definition: Definition,
    /// Every data source, in the object's order; never empty.
    sources: Vec<DataSource>,
    params: Vec<ParamSpec>,
    /// Its metric maps, found (and checked) at load.
    metric_maps: Arc<[super::metrics::MetricMapSpec]>,
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
    /// How often the named toppers and profilers print (wins over
    /// `interval` for them); a name that is no topper or profiler is an error.
    pub interval_per_source: BTreeMap<String, Duration>,
    /// Toppers and snapshotters: `FIELD[,-FIELD]` (`-`: descending). With
    /// several table sources, `SOURCE:FIELD` (or `-SOURCE:FIELD`) sorts that
    /// source only; a bare field sorts every table source that has it.
    pub sort: Option<String>,
    /// Toppers and snapshotters: at most this many rows per table (every table source).
    pub max_rows: Option<usize>,
    /// At most this many rows per table of the named table sources (wins
    /// over `max_rows`); a name that is no table source is an error.
    pub max_rows_per_source: BTreeMap<String, usize>,
    /// Network snapshotters: iterate every network namespace of the host
    /// instead of only the agent's.
    pub all_netns: bool,
    /// Network snapshotters and socket filters: exactly these network
    /// namespaces (inodes, e.g. of the selected containers). Wins over `all_netns`.
    pub netns_ids: Option<Vec<u64>>,
    /// Cgroup programs (`cgroup_skb/…`, `cgroup/…`): attach on each of these
    /// cgroup2 directories (one the user names, see
    /// [`crate::attach_target::cgroup_dir`], or the selected containers');
    /// empty: the cgroup2 root.
    pub cgroups: Vec<std::path::PathBuf>,
    /// tc programs (`tc`, `tcx/*`, `classifier/*`): attach on this host
    /// interface; `None`: each selected container's host-side veth (by
    /// `netns_ids`), and with no container selection the run fails saying so.
    pub iface: Option<String>,
    /// Uprobes: resolve their targets in the root file systems of these
    /// processes (`/proc/PID/root`, one per selected container, through its
    /// own `/etc/ld.so.cache`); empty: the agent's own.
    pub container_pids: Vec<u32>,
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

impl Gadget {
    /// Parses an ELF object and an optional definition YAML. A panic in a
    /// dependency is an error ([`crate::contain`]).
    pub fn from_object(bytes: Vec<u8>, definition_yaml: Option<&str>) -> Result<Gadget> {
        crate::contain::contain(crate::contain::Stage::Parse, || {
            Gadget::parse_object(bytes, definition_yaml)
        })
    }

    fn parse_object(bytes: Vec<u8>, definition_yaml: Option<&str>) -> Result<Gadget> {
        let definition = Definition::parse(definition_yaml.unwrap_or(""))?;
        let obj = GadgetObject::parse(bytes)?;
        let sources = datasource::discover(&obj, &definition)?;
        // traceloop: only marked variables are parameters (its constants
        // and templates are not), and the operator adds `--syscall-filters`.
        let traceloop = sources.iter().find_map(|s| match &s.kind {
            Kind::Traceloop(abi) => Some(abi),
            _ => None,
        });
        let mut params = params::specs(&obj, &definition, traceloop.is_some())?;
        params.extend(traceloop.and_then(crate::traceloop::param));
        // Metric types and annotations are checked here, at load.
        let metric_maps = super::metrics::discover(&obj, &definition)?.into();
        // The gadget-wide columns may name a field of any source; a source's
        // own `datasources.<name>` entries must name one of its fields.
        let all: Vec<Described> = sources.iter().flat_map(|s| s.described()).collect();
        check_definition_names(&definition, &all, &params)?;
        for s in &sources {
            let own = Definition {
                columns: s
                    .definition()
                    .columns
                    .iter()
                    .filter(|c| !definition.columns.iter().any(|d| d.name == c.name))
                    .cloned()
                    .collect(),
                ..Definition::default()
            };
            check_definition_names(&own, &s.described(), &params).map_err(|e| match e {
                GadgetError::Definition(m) => {
                    GadgetError::Definition(format!("datasources.{}: {m}", s.name))
                }
                other => other,
            })?;
        }
        Ok(Gadget {
            obj,
            definition,
            sources,
            params,
            metric_maps,
        })
    }

    /// Every data source, in the object's order (IG markers in BTF order,
    /// then the seed's maps); never empty.
    pub fn datasources(&self) -> &[DataSource] {
        &self.sources
    }

    /// Every data source as the stream header and `DescribeObject` list them.
    pub fn datasource_infos(&self) -> Vec<DataSourceInfo> {
        self.sources.iter().map(DataSource::info).collect()
    }

    /// What the first data source produces: tracer, snapshotter, topper or
    /// profiler, with its maps and programs ([`Gadget::datasources`]: all).
    pub fn kind(&self) -> &Kind {
        &self.sources[0].kind
    }

    /// The definition's long `documentation` text; empty without one.
    pub fn documentation(&self) -> String {
        self.definition.documentation.clone().unwrap_or_default()
    }

    /// The gadget's name: the definition's, else its first data source's
    /// (a snapshotter's: its first program's).
    pub fn name(&self) -> String {
        self.definition
            .name
            .clone()
            .unwrap_or_else(|| match &self.sources[0].kind {
                Kind::Snapshotter(s) => s.programs.first().map(|p| p.0.clone()).unwrap_or_default(),
                _ => self.sources[0].name.clone(),
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

    /// The fields of the first data source's events or rows, at their byte
    /// offsets (profilers: empty).
    pub fn layout(&self) -> &Layout {
        &self.sources[0].layout
    }

    /// The first data source's stream header fields: BTF layout plus the
    /// definition's column attributes ([`Gadget::datasource_infos`]: all).
    pub fn fields(&self) -> Vec<Field> {
        self.sources[0].fields()
    }

    /// Socket filters and per-netns iterators run once per network namespace;
    /// tc programs select containers by their veths.
    fn scoped_by_netns(&self) -> bool {
        self.has_socket_filters()
            || self.has_tc()
            || self
                .sources
                .iter()
                .any(|s| matches!(&s.kind, Kind::Snapshotter(s) if s.per_netns()))
    }

    /// The tracer maps of every tracer source.
    /// The tracers' maps that are BPF ring buffers.
    fn ring_buffer_maps(&self) -> Vec<&str> {
        self.sources
            .iter()
            .filter_map(|s| match &s.kind {
                Kind::Tracer(t) if t.buffer == crate::classify::BufferKind::RingBuf => {
                    Some(t.map.as_str())
                }
                _ => None,
            })
            .collect()
    }

    fn tracer_maps(&self) -> Vec<&str> {
        self.sources
            .iter()
            .filter_map(|s| match &s.kind {
                Kind::Tracer(t) => Some(t.map.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The decoder of one source's events or rows.
    fn decoder(
        &self,
        source: &DataSource,
        stacks: &Option<Arc<stacks::KernelStacks>>,
        enricher: &Option<Arc<dyn enrich::Enricher>>,
    ) -> Decoder {
        Decoder::new(&source.layout)
            .with_stacks(stacks.clone())
            .with_enricher(enricher.clone())
            .with_rest(source.rest.as_ref().map(|(_, r)| r.clone()))
    }

    /// Loads and attaches the gadget: every data source at once. Blocking
    /// (tens of milliseconds of syscalls; snapshots are taken here); must be
    /// called within a tokio runtime.
    pub fn start(&self, opts: &RunOptions) -> Result<Running> {
        crate::contain::contain(crate::contain::Stage::Load, || self.start_contained(opts))
    }

    fn start_contained(&self, opts: &RunOptions) -> Result<Running> {
        let globals = self.encode_params(opts)?;
        // Check the sources' options before touching the kernel.
        let sorts = sort::per_source(&self.sources, opts.sort.as_deref())?;
        let max_rows = sort::max_rows(&self.sources, opts.max_rows, &opts.max_rows_per_source)?;
        let intervals =
            datasource::intervals(&self.sources, opts.interval, &opts.interval_per_source)?;
        let mut globals = globals;
        let has_mntns_filter = self.obj.rodata.contains_key("gadget_filter_by_mntns");
        // Network gadgets select containers by network namespace (netns_ids);
        // they need no mount-namespace filter.
        // traceloop selects namespaces by its buffers; the filter map, when
        // the object has one, only tells it of the selection's changes.
        let filtering = opts.mntns_filter.is_some()
            && (has_mntns_filter || !(self.scoped_by_netns() || self.traceloop().is_some()));
        if filtering {
            if !has_mntns_filter {
                return Err(GadgetError::Param {
                    name: "mntns filter".into(),
                    reason: "this gadget does not include gadget/mntns_filter.h, so it cannot filter by container".into(),
                });
            }
            globals.push(("gadget_filter_by_mntns".into(), vec![1]));
        }
        let tracer_maps = self.tracer_maps();
        // A ring size applies to BPF ring buffers only: a perf event
        // array's entries are CPUs, its per-CPU buffers the reader's.
        let mut max_entries: Vec<(String, u32)> = match opts.ring_buffer_bytes {
            Some(b) => self
                .ring_buffer_maps()
                .into_iter()
                .map(|m| (m.to_string(), b))
                .collect(),
            None => Vec::new(),
        };
        max_entries.extend(kinds::runtime_max_entries(&self.obj, &globals));
        // Socket filters watch the first namespace of interest; more get
        // dispatchers (or, for gadget_current_netns, instances) of their own.
        let legacy_netns = self.obj.rodata.contains_key(NETNS_GLOBAL);
        // A container selection that matches no container yet: socket
        // filters start attached nowhere and get the containers' namespaces
        // as they start (follow_netns.rs).
        let netns_later =
            !legacy_netns && opts.netns_ids.as_ref().is_some_and(|ids| ids.is_empty());
        let mut filter_netns = match self.has_socket_filters() && !netns_later {
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
            tracer_maps: tracer_maps.clone(),
            globals,
            max_entries: max_entries.clone(),
        };
        // Held for the run: the shared socket enricher, if the gadget looks sockets up.
        let sockets = socket_enricher::for_object(&self.obj);
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
        // Several sources: each object names its source. Tracers' decoders
        // write the key themselves; the other kinds' output is tagged by copying.
        let tag = |ds: &DataSource| (self.sources.len() > 1).then(|| tag::key(&ds.name));
        let mut live = Vec::with_capacity(self.sources.len());
        for (((ds, sort), max_rows), every) in self
            .sources
            .iter()
            .zip(&sorts)
            .zip(&max_rows)
            .zip(&intervals)
        {
            let named = |e: GadgetError| e.in_datasource(&ds.name);
            let source = match &ds.kind {
                Kind::Tracer(t) => {
                    let mut decoder = self.decoder(ds, &stacks, &enricher);
                    if let Some(tag) = tag(ds) {
                        decoder = decoder.with_tag(&tag);
                    }
                    Source::Tracer {
                        readers: vec![EventReader::new(&mut ebpf, t, decoder).map_err(named)?],
                        last_loss_poll: Instant::now(),
                    }
                }
                Kind::Topper(t, key, value) => {
                    let map = take_raw(&mut ebpf, &t.map, key.size, value.size).map_err(named)?;
                    let reader = TopperReader::new(
                        map,
                        t.clear,
                        key,
                        value,
                        sort.clone().expect("toppers always have a sort order"),
                        max_rows.unwrap_or(topper::DEFAULT_MAX_ROWS),
                    )
                    .with_stacks(stacks.clone())
                    .with_enricher(enricher.clone());
                    Source::Topper {
                        reader,
                        tick: interval(every.unwrap_or(Duration::from_secs(1))),
                    }
                }
                Kind::Profiler(p) => {
                    let map = take_raw(&mut ebpf, &p.map, 4, p.value_size).map_err(named)?;
                    Source::Profiler {
                        reader: HistReader::new(p.clone(), map),
                        tick: every.map(interval),
                    }
                }
                Kind::Traceloop(abi) => {
                    let mntns = match &opts.mntns_filter {
                        Some(ids) => ids.clone(),
                        None => vec![crate::traceloop::host_mntns()?],
                    };
                    let filters = self.operator_param(opts, crate::traceloop::FILTER_PARAM);
                    let recorder = crate::traceloop::Recorder::start(
                        &mut ebpf,
                        abi,
                        filters.as_deref(),
                        &mntns,
                        enricher.clone(),
                    )
                    .map(Arc::new)
                    .map_err(named)?;
                    if let Some(filter) = &mntns_filter {
                        filter.observe(crate::traceloop::observer(&recorder));
                    }
                    Source::Traceloop { recorder }
                }
                Kind::Snapshotter(s) => {
                    snapshot::load_programs(&mut ebpf, s).map_err(named)?;
                    Source::Snapshot {
                        line: Vec::new(),
                        rows: 0,
                        malformed: 0,
                    }
                }
            };
            let copy_tag = match &ds.kind {
                Kind::Tracer(_) => None,
                _ => tag(ds),
            };
            live.push(Live::new(&ds.name, copy_tag, source));
        }
        let ifaces = self.tc_interfaces(opts)?;
        let targets = load::Targets {
            netns: first_netns.as_ref().map(|ns| &ns.file),
            netns_later,
            cgroups: &opts.cgroups,
            ifaces: &ifaces,
            roots: &opts.container_pids,
        };
        let mut attachments = load::attach_all_with(&mut ebpf, &self.obj, &targets)?;
        attachments.pins = pins;
        // tc programs of a container selection: handles to attach them for
        // containers started later.
        let tc = match (&opts.iface, &opts.netns_ids) {
            (None, Some(ids)) => TcFollow::new(&mut ebpf, &self.obj, ids)?.map(Arc::new),
            _ => None,
        };
        let mut instances = (vec![attachments], Vec::new());
        for (((ds, sort), max_rows), l) in self
            .sources
            .iter()
            .zip(&sorts)
            .zip(&max_rows)
            .zip(live.iter_mut())
        {
            let (
                Kind::Snapshotter(s),
                Source::Snapshot {
                    line,
                    rows,
                    malformed,
                },
            ) = (&ds.kind, &mut l.source)
            else {
                continue;
            };
            let netns = if s.per_netns() {
                netns_of_interest(opts)?
            } else {
                Vec::new()
            };
            let decoder = self.decoder(ds, &stacks, &enricher);
            let mut collected = snapshot::collect(&mut ebpf, s, ds.layout.size, &netns)
                .map_err(|e| e.in_datasource(&ds.name))?;
            if ds.row_has_netns() {
                // The row says its namespace itself (Inspektor Gadget's snapshot_socket).
                collected.netns.iter_mut().for_each(|n| *n = None);
            }
            *rows = collected.len() as u64;
            *malformed = collected.malformed;
            *line = snapshot_line(&collected, &decoder, sort.as_ref(), *max_rows);
        }
        // Socket filters: one dispatcher per other network namespace, which
        // tells the gadget's programs the namespace in skb->cb[0]
        // (net_dispatch.rs); a namespace gone meanwhile is skipped.
        let net = instances.0[0].net.clone();
        if !legacy_netns {
            for ns in &filter_netns {
                if let Err(e) = net.attach(ns.inode, &ns.file) {
                    tracing::warn!(netns = ns.inode, error = %e, "not watching a network namespace");
                }
            }
        }
        // Objects that take their namespace from the `.rodata` global
        // gadget_current_netns (GADGET_NETNS_ID) get one more instance per
        // other network namespace instead, each with its own value.
        let instances_per_netns = legacy_netns && !tracer_maps.is_empty();
        for ns in filter_netns.into_iter().filter(|_| instances_per_netns) {
            let mut globals = base_globals.clone();
            for (name, value) in globals.iter_mut() {
                if name == NETNS_GLOBAL {
                    *value = ns.inode.to_le_bytes().to_vec();
                }
            }
            let req = LoadRequest {
                obj: &self.obj,
                tracer_maps: tracer_maps.clone(),
                globals,
                max_entries: max_entries.clone(),
            };
            let mut e = load::load(&req)?;
            if let (Some(ids), true) = (&opts.mntns_filter, filtering) {
                fill_mntns_filter(&mut e, ids)?;
            }
            let mut readers = Vec::new();
            for (i, ds) in self.sources.iter().enumerate() {
                if let Kind::Tracer(t) = &ds.kind {
                    let mut decoder = Decoder::new(&ds.layout)
                        .with_enricher(enricher.clone())
                        .with_rest(ds.rest.as_ref().map(|(_, r)| r.clone()));
                    if let Some(tag) = tag(ds) {
                        decoder = decoder.with_tag(&tag);
                    }
                    readers.push((i, EventReader::new(&mut e, t, decoder)?));
                }
            }
            match load::attach_all_in(&mut e, &self.obj, Some(&ns.file)) {
                Ok(att) => instances.0.push(att),
                // The namespace went away meanwhile: nothing to watch there.
                Err(err) => {
                    tracing::debug!(netns = ns.inode, error = %err, "skipping a network namespace");
                    continue;
                }
            }
            for (i, reader) in readers {
                if let Source::Tracer { readers, .. } = &mut live[i].source {
                    readers.push(reader);
                }
            }
            instances.1.push(e);
        }
        instances.1.insert(0, ebpf);
        let metrics = Arc::new(super::metrics::RunMetrics::collect(
            &instances.1,
            self.metric_maps.clone(),
        ));
        let net = (net.has_programs() && !legacy_netns).then_some(net);
        // Every namespace of the host: those that appear later too.
        if let (Some(net), true, None) = (&net, opts.all_netns, &opts.netns_ids) {
            follow_netns::follow_host(net);
        }
        Ok(Running {
            tc,
            sources: live,
            next: 0,
            scratch: Vec::new(),
            metrics,
            _attachments: instances.0,
            _ebpf: instances.1,
            _sockets: sockets,
            mntns_filter,
            net,
            pending: Vec::new(),
            pending_at: 0,
            finished: false,
        })
    }

    /// The traceloop ABI, when the gadget speaks it.
    fn traceloop(&self) -> Option<&crate::traceloop::Abi> {
        self.sources.iter().find_map(|s| match &s.kind {
            Kind::Traceloop(abi) => Some(abi),
            _ => None,
        })
    }

    /// The value of an operator's parameter `key` (by flag name or key),
    /// else the definition's default.
    fn operator_param(&self, opts: &RunOptions, key: &str) -> Option<String> {
        let spec = self.params.iter().find(|p| p.key == key)?;
        opts.params
            .get(&spec.name)
            .or_else(|| opts.params.get(&spec.key))
            .cloned()
            .or_else(|| self.definition.param(key).and_then(|p| p.default.clone()))
    }

    /// Whether any program is a socket filter (they see one network namespace each).
    /// The interfaces tc programs attach on (none when it has none).
    fn tc_interfaces(&self, opts: &RunOptions) -> Result<Vec<tc::AttachIface>> {
        Ok(match (self.has_tc(), &opts.iface, &opts.netns_ids) {
            (false, ..) | (true, None, None) => Vec::new(),
            (true, Some(iface), _) => vec![tc::AttachIface {
                name: iface.clone(),
                netns: None,
            }],
            // No container selected yet: they come later (tc_follow.rs).
            (true, None, Some(ids)) if ids.is_empty() => Vec::new(),
            (true, None, Some(_)) => tc::container_veths(&netns_of_interest(opts)?)?,
        })
    }

    fn has_tc(&self) -> bool {
        self.obj
            .programs
            .iter()
            .any(|p| matches!(load::attach_point(&p.section), Ok(load::AttachPoint::Tc)))
    }

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
            if spec.key == crate::traceloop::FILTER_PARAM {
                continue; // the operator's, not a .rodata variable
            }
            globals.push((spec.key.clone(), params::encode(spec, value)?));
        }
        for spec in self
            .params
            .iter()
            .filter(|p| p.key != crate::traceloop::FILTER_PARAM)
        {
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

/// Where a live data source's output comes from.
#[allow(clippy::large_enum_variant)] // one per source; boxing buys nothing
enum Source {
    /// One reader per loaded instance (socket filters load once per network namespace).
    Tracer {
        readers: Vec<EventReader>,
        /// When ring-buffer loss counters were last read.
        last_loss_poll: Instant,
    },
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
        reader: HistReader,
        tick: Option<tokio::time::Interval>,
    },
    /// Rows only when the run stops.
    Traceloop {
        recorder: Arc<crate::traceloop::Recorder>,
    },
}

impl Source {
    /// Appends output to `out` when there is some: events and losses, a
    /// table on its tick, the snapshot once. Registers its wake-ups otherwise.
    fn poll_batch(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<Batch> {
        match self {
            Source::Tracer {
                readers,
                last_loss_poll,
            } => loop {
                let mut batch = Batch::default();
                let poll_losses = last_loss_poll.elapsed() >= LOSS_POLL;
                if poll_losses {
                    *last_loss_poll = Instant::now();
                }
                for reader in readers.iter_mut() {
                    let b = reader.drain(out);
                    batch.events += b.events;
                    batch.lost += b.lost;
                    batch.malformed += b.malformed;
                    batch.more |= b.more;
                    if poll_losses {
                        batch.lost += reader.poll_ring_losses();
                    }
                }
                if batch != Batch::default() {
                    return Poll::Ready(batch);
                }
                // Poll every reader so each registers its wake-up.
                let mut ready = false;
                for r in readers.iter_mut() {
                    ready |= r.poll_wait(cx).is_ready();
                }
                if !ready {
                    return Poll::Pending;
                }
            },
            Source::Snapshot {
                line,
                rows,
                malformed,
            } => {
                if line.is_empty() {
                    return Poll::Pending;
                }
                out.append(line);
                Poll::Ready(Batch {
                    events: *rows,
                    malformed: *malformed,
                    finished: true,
                    ..Batch::default()
                })
            }
            Source::Topper { reader, tick } => {
                std::task::ready!(tick.poll_tick(cx));
                Poll::Ready(match reader.read_table(out) {
                    Ok(table) => Batch {
                        events: table.shown,
                        ..Batch::default()
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "reading a map iterator's map failed");
                        Batch {
                            malformed: 1,
                            ..Batch::default()
                        }
                    }
                })
            }
            Source::Profiler {
                reader,
                tick: Some(tick),
            } => {
                std::task::ready!(tick.poll_tick(cx));
                Poll::Ready(write_histogram(reader, out))
            }
            Source::Profiler { tick: None, .. } | Source::Traceloop { .. } => Poll::Pending,
        }
    }

    /// What is left when the run stops: buffered events, a final histogram.
    fn drain_final(&mut self, out: &mut Vec<u8>) -> Batch {
        match self {
            Source::Tracer { readers, .. } => {
                let mut batch = Batch::default();
                for r in readers.iter_mut() {
                    let b = r.drain_final(out);
                    batch.events += b.events;
                    batch.lost += b.lost;
                    batch.malformed += b.malformed;
                    batch.more |= b.more;
                }
                batch
            }
            Source::Profiler { reader, .. } => write_histogram(reader, out),
            Source::Traceloop { recorder } => recorder.finish(out),
            _ => Batch::default(),
        }
    }
}

/// One data source of a live run, with its own counts.
struct Live {
    name: String,
    /// `"datasource":"NAME"` inserted by copying (tag.rs): table and
    /// histogram sources of gadgets with several sources. Tracers' decoders
    /// write it themselves ([`Decoder::with_tag`]).
    tag: Option<Vec<u8>>,
    source: Source,
    seen: u64,
    lost: u64,
    /// A snapshot handed out: nothing more will come.
    finished: bool,
    /// Its final drain is over (profilers' last histogram written, rings
    /// read up to what waited at the end).
    drained: bool,
}

impl Live {
    fn new(name: &str, tag: Option<Vec<u8>>, source: Source) -> Live {
        Live {
            name: name.into(),
            tag,
            source,
            seen: 0,
            lost: 0,
            finished: false,
            drained: false,
        }
    }

    /// Runs `produce` into `out`, through `scratch` and the tag when tagged;
    /// counts the batch.
    fn produce(
        &mut self,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
        produce: impl FnOnce(&mut Source, &mut Vec<u8>) -> Poll<Batch>,
    ) -> Poll<Batch> {
        let batch = match &self.tag {
            None => produce(&mut self.source, out),
            Some(tag) => {
                scratch.clear();
                let batch = produce(&mut self.source, scratch);
                tag::tag_lines(scratch, tag, out);
                batch
            }
        };
        if let Poll::Ready(b) = &batch {
            self.seen += b.events;
            self.lost += b.lost + b.malformed;
            self.finished |= b.finished;
        }
        batch
    }
}

/// A live gadget. Dropping it detaches and unloads every program.
pub struct Running {
    // Field order matters: the readers and sockets go before the programs.
    sources: Vec<Live>,
    /// The source polled first next time (round robin, so none starves).
    next: usize,
    /// Output of a tagged source before its tag is inserted (reused).
    scratch: Vec<u8>,
    _attachments: Vec<Attachments>,
    _ebpf: Vec<Ebpf>,
    _sockets: Option<Arc<socket_enricher::SocketEnricher>>,
    mntns_filter: Option<Arc<MntnsFilterMap>>,
    /// Socket filters' dispatchers, when namespaces can be added while it
    /// runs ([`Running::net_dispatch`]).
    net: Option<Arc<net_dispatch::NetDispatch>>,
    /// tc programs of a container selection ([`Running::tc_follow`]).
    tc: Option<Arc<TcFollow>>,
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

/// One data source's counts so far (see [`Running::counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCounts {
    /// The data source's name.
    pub name: String,
    /// Events, rows or histograms it produced.
    pub seen: u64,
    /// Its events lost in the kernel, plus its malformed records.
    pub lost: u64,
}

impl Running {
    /// The dispatchers of the gadget's socket filters, to attach it in
    /// network namespaces that appear while it runs and detach it from those
    /// that go (`follow_netns.rs`). `None` without socket filters, and for
    /// objects that take their namespace from `gadget_current_netns`
    /// (loaded once per namespace at start; they do not follow).
    pub fn net_dispatch(&self) -> Option<Arc<net_dispatch::NetDispatch>> {
        self.net.clone()
    }

    /// The tc programs of a run with a container selection, to attach them
    /// on the veths of containers that start while it runs; `None` without
    /// tc programs or with an interface named.
    pub fn tc_follow(&self) -> Option<Arc<TcFollow>> {
        self.tc.clone()
    }

    /// The live filter map, when the run was started with a filter.
    pub fn mntns_filter(&self) -> Option<Arc<MntnsFilterMap>> {
        self.mntns_filter.clone()
    }

    /// The run's metrics sources, shared with scrapers (docs/metrics.md).
    pub fn metrics(&self) -> Arc<super::metrics::RunMetrics> {
        self.metrics.clone()
    }

    /// The name of data source `index` ([`Batch::source`]), in the gadget's order.
    pub fn source_name(&self, index: usize) -> &str {
        self.sources.get(index).map_or("", |s| s.name.as_str())
    }

    /// Per data source, in the gadget's order: what it produced and lost so far.
    pub fn counts(&self) -> Vec<SourceCounts> {
        self.sources
            .iter()
            .map(|s| SourceCounts {
                name: s.name.clone(),
                seen: s.seen,
                lost: s.lost,
            })
            .collect()
    }

    /// Waits for output of any data source and appends it to `out` as JSON
    /// lines: one object per event (tracers) or histogram (profilers), one
    /// array per table (snapshotters, toppers); with several sources, each
    /// object and row starts with its `"datasource"` key. One batch is one
    /// source's ([`Batch::source`]); `finished` once every source is done.
    pub async fn next_batch(&mut self, out: &mut Vec<u8>) -> Batch {
        std::future::poll_fn(|cx| self.poll_batch(cx, out)).await
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<Batch> {
        let n = self.sources.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let live = &mut self.sources[i];
            if live.finished {
                continue;
            }
            if let Poll::Ready(mut batch) =
                live.produce(&mut self.scratch, out, |s, o| s.poll_batch(cx, o))
            {
                self.next = i + 1;
                batch.source = i;
                batch.finished = self.sources.iter().all(|s| s.finished);
                return Poll::Ready(batch);
            }
        }
        Poll::Pending
    }

    /// The next batch when one can be had without waiting: after a batch
    /// whose [`Batch::more`] is set (a full batch left records in a ring),
    /// the next one is drained at once, so a flood's batches are taken back
    /// to back rather than one per round of the caller's `select!`. `None`
    /// when nothing is ready; then wait in [`Running::next_batch`], which
    /// registers the wake-ups (this call registers none that count).
    pub fn ready_batch(&mut self, out: &mut Vec<u8>) -> Option<Batch> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.poll_batch(&mut cx, out) {
            Poll::Ready(batch) => Some(batch),
            Poll::Pending => None,
        }
    }

    /// What is left when the run stops: buffered events, and profilers'
    /// final histograms, of every source, about a batch per call: call it
    /// again while the result says `more` (each source's final output is
    /// written once). Does not wait.
    pub fn drain_final(&mut self, out: &mut Vec<u8>) -> Batch {
        let mut total = Batch::default();
        for live in self.sources.iter_mut().filter(|l| !l.drained) {
            if let Poll::Ready(b) =
                live.produce(&mut self.scratch, out, |s, o| Poll::Ready(s.drain_final(o)))
            {
                total.events += b.events;
                total.lost += b.lost;
                total.malformed += b.malformed;
                total.more |= b.more;
                live.drained = !b.more;
            } else {
                live.drained = true;
            }
        }
        total
    }

    /// What became of each program (attached, disabled, tail-call target,
    /// or skipped and why), for the run's first instance.
    pub fn programs(&self) -> &[load::ProgramReport] {
        self._attachments.first().map_or(&[], |a| &a.programs)
    }

    /// Final loss count of every source together (call before dropping,
    /// after the programs stop producing); [`Running::counts`] has them per source.
    pub fn final_losses(&mut self) -> u64 {
        let mut total = 0;
        for live in &mut self.sources {
            if let Source::Tracer { readers, .. } = &mut live.source {
                let lost: u64 = readers.iter_mut().map(|r| r.poll_ring_losses()).sum();
                live.lost += lost;
                total += lost;
            }
        }
        total
    }

    /// Convenience for library users: the next event, table or loss report,
    /// decoded into JSON values. `None` once every snapshot has been handed out.
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

    /// Stops producing and returns what remains (profilers' histograms).
    pub fn finish(&mut self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut buf = std::mem::take(&mut self.pending);
        buf.drain(..self.pending_at.min(buf.len()));
        while self.drain_final(&mut buf).more {}
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

fn write_histogram(r: &mut HistReader, out: &mut Vec<u8>) -> Batch {
    match r.write_json(true, out) {
        Ok(malformed) => Batch {
            events: 1,
            malformed,
            ..Batch::default()
        },
        Err(e) => {
            tracing::warn!(map = %r.profiler.map, error = %e, "reading a hist_ map failed");
            Batch {
                malformed: 1,
                ..Batch::default()
            }
        }
    }
}
