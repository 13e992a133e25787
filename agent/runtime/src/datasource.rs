//! A gadget's named data sources, ready to run: what each is ([`Kind`]), the
//! layout of its events or rows, and the fields its stream header lists.
//! [`super::classify`] finds them; this module gives each its layout and
//! column attributes.

use gadgetd_dbus::stream::{Alignment, DATASOURCE_KEY, DataSourceInfo, Field};

use super::classify::{self, SourceKind, Tracer};
use super::definition::Definition;
use super::enrich;
use super::error::{GadgetError, Result};
use super::kinds::{Profiler, Snapshotter, Topper};
use super::layout::{self, Layout};
use super::object::GadgetObject;

/// What a data source produces (design.md's map and program conventions).
#[derive(Debug, Clone)]
pub enum Kind {
    /// A stream of events (`print_*` buffers, `GADGET_TRACER`).
    Tracer(Tracer),
    /// Rows read once from `iter/*` programs.
    Snapshotter(Snapshotter),
    /// A table re-read every interval (`stats_*` maps, `GADGET_MAPITER`);
    /// key and value layouts.
    Topper(Topper, Layout, Layout),
    /// One histogram (a `hist_*` map).
    Profiler(Profiler),
    /// Inspektor Gadget's traceloop flight recorder: rows made from its
    /// per-namespace buffers when the run stops ([`crate::traceloop`]).
    Traceloop(crate::traceloop::Abi),
}

impl Kind {
    /// `tracer`, `snapshotter`, `topper` or `profiler`.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Tracer(_) | Kind::Traceloop(_) => "tracer",
            Kind::Snapshotter(_) => "snapshotter",
            Kind::Topper(..) => "topper",
            Kind::Profiler(_) => "profiler",
        }
    }

    /// Whether it prints tables (toppers, snapshotters), which `sort` and
    /// `max_rows` shape.
    pub fn is_table(&self) -> bool {
        matches!(self, Kind::Topper(..) | Kind::Snapshotter(_))
    }
}

/// How often each source prints: `per_source` (by data source name) wins
/// over `all`, for the sources that print every interval (toppers,
/// profilers); `None` for the others and where neither says (toppers then
/// print every second, profilers only at the end). A name that is no
/// topper or profiler is an error naming the ones there are.
pub fn intervals(
    sources: &[DataSource],
    all: Option<std::time::Duration>,
    per_source: &std::collections::BTreeMap<String, std::time::Duration>,
) -> Result<Vec<Option<std::time::Duration>>> {
    let periodic = |s: &DataSource| matches!(s.kind, Kind::Topper(..) | Kind::Profiler(_));
    if let Some(name) = per_source
        .keys()
        .find(|n| !sources.iter().any(|s| &s.name == *n && periodic(s)))
    {
        let names: Vec<&str> = sources
            .iter()
            .filter(|s| periodic(s))
            .map(|s| s.name.as_str())
            .collect();
        return Err(GadgetError::Param {
            name: "interval".into(),
            reason: format!(
                "`{name}:DURATION` names no data source that prints every interval (map iterators, histograms: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        });
    }
    Ok(sources
        .iter()
        .map(|s| match periodic(s) {
            true => per_source.get(&s.name).copied().or(all),
            false => None,
        })
        .collect())
}

/// One named data source of a gadget.
#[derive(Debug, Clone)]
pub struct DataSource {
    /// IG's marker name, or the seed map name without its prefix
    /// (`print_events`: `events`); the events' `"datasource"` value.
    pub name: String,
    pub kind: Kind,
    /// The fields of one event or row at their byte offsets (profilers: empty).
    pub layout: Layout,
    /// The definition with this source's `datasources.<name>` annotations.
    definition: Definition,
    /// Tracers: IG's trailing bytes after the event (`ebpf.rest.*`), as
    /// (field name, decoder part).
    pub rest: Option<(String, crate::decode::Rest)>,
}

/// A field of the stream header before the definition applies: name, type,
/// default width, right-aligned.
pub(crate) type Described = (String, String, u32, bool);

impl DataSource {
    /// The `traceloop` source of an object speaking that ABI, with the
    /// definition's `datasources.traceloop` annotations.
    pub fn traceloop(abi: crate::traceloop::Abi, definition: &Definition) -> Result<DataSource> {
        let name = crate::traceloop::DATASOURCE;
        let mut definition = definition.clone();
        if definition.datasources.contains_key(name) {
            definition.select_datasource(name)?;
        }
        Ok(DataSource {
            name: name.into(),
            kind: Kind::Traceloop(abi),
            layout: crate::traceloop::layout(),
            definition,
            rest: None,
        })
    }

    /// Builds a classified source's layout; `definition` is the gadget's
    /// (this source's IG annotations are added to a copy of it).
    pub fn new(
        obj: &GadgetObject,
        found: &classify::DataSource,
        definition: &Definition,
    ) -> Result<DataSource> {
        let named = |e: GadgetError| e.in_datasource(&found.name);
        let (kind, layout) = match &found.kind {
            SourceKind::Tracer(t) => (
                Kind::Tracer(t.clone()),
                layout::build(&obj.btf, t.event_type).map_err(named)?,
            ),
            SourceKind::Snapshotter(s) => (
                Kind::Snapshotter(s.clone()),
                layout::build(&obj.btf, s.row_type).map_err(named)?,
            ),
            SourceKind::Topper(t) => {
                let key = layout::build_or_scalar(&obj.btf, t.key_type, "key").map_err(named)?;
                let value =
                    layout::build_or_scalar(&obj.btf, t.value_type, "value").map_err(named)?;
                let mut fields = key.fields.clone();
                fields.extend(value.fields.iter().map(|f| layout::FieldLayout {
                    offset: key.size + f.offset,
                    ..f.clone()
                }));
                let row = Layout {
                    type_name: format!("{}+{}", key.type_name, value.type_name),
                    size: key.size + value.size,
                    fields,
                };
                (Kind::Topper(t.clone(), key, value), row)
            }
            SourceKind::Profiler(p) => (
                Kind::Profiler(p.clone()),
                Layout {
                    type_name: "histogram".into(),
                    size: 0,
                    fields: Vec::new(),
                },
            ),
        };
        let mut definition = definition.clone();
        if definition.datasources.contains_key(&found.name) {
            // Only warns when the source is missing, which it is not.
            definition.select_datasource(&found.name)?;
        }
        let rest = match &kind {
            Kind::Tracer(_) => rest_of(&definition, &found.name, &layout)?,
            _ => None,
        };
        Ok(DataSource {
            name: found.name.clone(),
            kind,
            layout,
            definition,
            rest,
        })
    }

    /// A member named like the reserved `"datasource"` key of multi-source
    /// streams becomes `datasource_` (as one named `gadgetd` does).
    fn rename_reserved(&mut self) {
        let mut layouts = vec![&mut self.layout];
        if let Kind::Topper(_, key, value) = &mut self.kind {
            layouts.extend([key, value]);
        }
        for layout in layouts {
            for f in &mut layout.fields {
                if f.name == DATASOURCE_KEY {
                    f.name.push('_');
                }
            }
        }
    }

    /// The definition that applies to this source's columns.
    pub(crate) fn definition(&self) -> &Definition {
        &self.definition
    }

    /// Every field its output has: its layout's, the names beside semantic
    /// numbers (`uid_name`), and what the kind adds.
    pub(crate) fn described(&self) -> Vec<Described> {
        let mut described: Vec<Described> = Vec::new();
        for f in &self.layout.fields {
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
        match &self.kind {
            Kind::Snapshotter(s) if s.per_netns() && !self.row_has_netns() => {
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
        if let Some((name, _)) = &self.rest {
            described.push((name.clone(), "bytes".into(), 32, false));
        }
        described
    }

    /// A row with its own `netns_id` field needs no namespace tag added.
    pub(crate) fn row_has_netns(&self) -> bool {
        self.layout.fields.iter().any(|f| f.name == "netns_id")
    }

    /// The fields of its stream header: BTF layout plus the definition's
    /// column attributes, in display order.
    pub fn fields(&self) -> Vec<Field> {
        let def = &self.definition;
        let described = self.described();
        let names: Vec<String> = described.iter().map(|d| d.0.clone()).collect();
        let mut fields: Vec<Field> = described
            .into_iter()
            .enumerate()
            .map(|(i, (name, kind, default_width, right))| {
                let col = def.column(&name);
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
                fields.push(added_field(
                    def,
                    name.to_string(),
                    *visible,
                    base + 1 + i as i32,
                ));
            }
        }
        // With the agent's enricher, endpoints are followed by whose address
        // they are (enrich::ENDPOINT_FIELDS).
        for f in self
            .layout
            .fields
            .iter()
            .filter(|f| enrich::is_endpoint(&f.kind))
        {
            let base = fields
                .iter()
                .find(|h| h.name == f.name)
                .map_or(0, |h| h.order);
            for (i, (suffix, visible)) in enrich::ENDPOINT_FIELDS.iter().enumerate() {
                let name = format!("{}.{suffix}", f.name);
                fields.push(added_field(def, name, *visible, base + 1 + i as i32));
            }
        }
        fields.sort_by_key(|f| f.order);
        fields
    }

    /// Its entry in the stream header and `DescribeObject`.
    pub fn info(&self) -> DataSourceInfo {
        DataSourceInfo {
            name: self.name.clone(),
            kind: self.kind.name().into(),
            fields: self.fields(),
        }
    }
}

/// A string field the agent adds (enrichment), placed at `order` unless the
/// definition's column says otherwise.
fn added_field(def: &Definition, name: String, visible: bool, order: i32) -> Field {
    let col = def.column(&name);
    Field {
        kind: "string".into(),
        width: col.and_then(|c| c.width).unwrap_or(16),
        min_width: col.and_then(|c| c.min_width),
        max_width: col.and_then(|c| c.max_width),
        alignment: col.and_then(|c| c.alignment).unwrap_or(Alignment::Left),
        visible: col.and_then(|c| c.visible).unwrap_or(visible),
        order: col.and_then(|c| c.order).unwrap_or(order),
        ellipsis: col.and_then(|c| c.ellipsis).unwrap_or_default(),
        description: col.and_then(|c| c.description.clone()).unwrap_or_default(),
        name,
    }
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

/// Every data source of an object, each with its layout: in the order of
/// the definition's `datasources`, then in the object's order (IG markers in
/// BTF order, then the seed's maps). Errors name the
/// source; an object with none is [`GadgetError::NoDataSource`].
pub fn discover(obj: &GadgetObject, definition: &Definition) -> Result<Vec<DataSource>> {
    let found = classify::data_sources(obj)?;
    for w in &found.warnings {
        tracing::warn!("{w}");
    }
    // Inspektor Gadget's traceloop declares no marker: its ABI says it.
    let traceloop = crate::traceloop::recognise(obj)?;
    if found.sources.is_empty() && traceloop.is_none() {
        return Err(GadgetError::NoDataSource);
    }
    let names = || {
        found
            .sources
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, s) in found.sources.iter().enumerate() {
        if found.sources[..i].iter().any(|o| o.name == s.name) {
            return Err(GadgetError::Definition(format!(
                "two data sources are named `{}` (data sources: {}); give each its own name",
                s.name,
                names()
            )));
        }
    }
    for ds in definition.datasources.keys() {
        let recorder = traceloop.is_some() && ds == crate::traceloop::DATASOURCE;
        if !recorder && !found.sources.iter().any(|s| &s.name == ds) {
            tracing::warn!(
                "gadget.yaml describes data source `{ds}`, which the gadget does not have (data sources: {}); its field annotations are not used",
                names()
            );
        }
    }
    let mut sources = found
        .sources
        .iter()
        .map(|s| DataSource::new(obj, s, definition))
        .collect::<Result<Vec<_>>>()?;
    if let Some(abi) = traceloop {
        sources.push(DataSource::traceloop(abi, definition)?);
    }
    // The definition's order first; the others keep the object's (stable sort).
    let order = &definition.datasource_order;
    sources.sort_by_key(|s| {
        order
            .iter()
            .position(|n| *n == s.name)
            .unwrap_or(usize::MAX)
    });
    if sources.len() > 1 {
        sources.iter_mut().for_each(DataSource::rename_reserved);
    }
    Ok(sources)
}

/// IG's `ebpf.rest.name` / `ebpf.rest.len` annotations of data source `ds`:
/// the trailing bytes' field name and the integer field that holds their
/// length. Errors: the length names no integer field of the event.
fn rest_of(
    definition: &Definition,
    ds: &str,
    layout: &Layout,
) -> Result<Option<(String, crate::decode::Rest)>> {
    let Some(def) = definition.datasources.get(ds) else {
        return Ok(None);
    };
    let Some(name) = def.annotations.get("ebpf.rest.name").map(|v| v.0.trim()) else {
        return Ok(None);
    };
    let len_field = match def.annotations.get("ebpf.rest.len").map(|v| v.0.trim()) {
        None => None,
        Some(len) => {
            let field = layout.fields.iter().find(|f| f.name == len);
            match field.map(|f| (f.offset, &f.kind)) {
                Some((offset, layout::FieldKind::Int { size, .. })) => Some((offset, *size)),
                _ => {
                    return Err(GadgetError::Definition(format!(
                        "gadget.yaml: data source `{ds}`: `ebpf.rest.len: {len}` names no integer field of the event (fields: {}); name the field that holds the trailing data's length, or drop the annotation",
                        layout
                            .fields
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
    };
    Ok(Some((
        name.to_string(),
        crate::decode::Rest::new(name, len_field),
    )))
}
