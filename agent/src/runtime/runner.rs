//! Running a gadget in-process: the library API the agent is built on, and
//! the seed's "Running Gadgets Directly" for other Rust programs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::Ebpf;
use gadgetd_dbus::stream::{Alignment, Field};

use super::classify::{self, Tracer};
use super::decode::Decoder;
use super::definition::Definition;
use super::enrich::{self, SharedEnricher};
use super::error::{GadgetError, Result};
use super::layout::{self, Layout};
use super::load::{self, Attachments, LoadRequest};
use super::mntns_filter::MntnsFilterMap;
use super::object::GadgetObject;
use super::params::{self, ParamSpec};
use super::reader::{Batch, EventReader};

/// A parsed and classified gadget, ready to start any number of times.
pub struct Gadget {
    obj: GadgetObject,
    definition: Definition,
    tracer: Tracer,
    layout: Layout,
    params: Vec<ParamSpec>,
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
}

/// A definition entry naming no field or parameter is a typo the user
/// should hear about, not a setting silently ignored.
fn check_definition_names(def: &Definition, layout: &Layout, params: &[ParamSpec]) -> Result<()> {
    let fields = || layout.fields.iter().map(|f| f.name.as_str());
    if let Some(c) = def.columns.iter().find(|c| !fields().any(|f| f == c.name)) {
        return Err(GadgetError::Definition(format!(
            "column `{}` names no field of the event (fields: {})",
            c.name,
            fields().collect::<Vec<_>>().join(", ")
        )));
    }
    if let Some(p) = def
        .params
        .iter()
        .find(|p| !params.iter().any(|s| s.name == p.key))
    {
        return Err(GadgetError::Definition(format!(
            "param `{}` names no `const volatile` parameter of the program (parameters: {})",
            p.key,
            params
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

impl Gadget {
    /// Parses an ELF object and an optional definition YAML.
    pub fn from_object(bytes: Vec<u8>, definition_yaml: Option<&str>) -> Result<Gadget> {
        let definition = Definition::parse(definition_yaml.unwrap_or(""))?;
        let obj = GadgetObject::parse(bytes)?;
        let mut tracers = classify::tracers(&obj)?;
        let tracer = match tracers.len() {
            0 => return Err(GadgetError::NoDataSource),
            1 => tracers.remove(0),
            _ => {
                return Err(GadgetError::MapConvention {
                    map: tracers
                        .iter()
                        .map(|t| t.map.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    reason:
                        "several tracer maps in one gadget are not supported; keep one print_ map"
                            .into(),
                });
            }
        };
        let layout = layout::build(&obj.btf, tracer.event_type)?;
        let params = params::specs(&obj, &definition)?;
        check_definition_names(&definition, &layout, &params)?;
        Ok(Gadget {
            obj,
            definition,
            tracer,
            layout,
            params,
        })
    }

    /// The gadget's name: the definition's, else the tracer's.
    pub fn name(&self) -> String {
        self.definition
            .name
            .clone()
            .unwrap_or_else(|| self.tracer.name.clone())
    }

    /// The name the definition file gives, if any.
    pub fn definition_name(&self) -> Option<&str> {
        self.definition.name.as_deref()
    }

    pub fn description(&self) -> String {
        self.definition.description.clone().unwrap_or_default()
    }

    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The fields of the stream header: BTF layout plus the definition's
    /// column attributes.
    pub fn fields(&self) -> Vec<Field> {
        let mut fields: Vec<Field> = self
            .layout
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let col = self.definition.column(&f.name);
                let width = col
                    .and_then(|c| c.width)
                    .unwrap_or_else(|| f.kind.default_width());
                Field {
                    name: f.name.clone(),
                    kind: f.kind.type_name(),
                    width,
                    min_width: col.and_then(|c| c.min_width),
                    max_width: col.and_then(|c| c.max_width),
                    alignment: col
                        .and_then(|c| c.alignment)
                        .unwrap_or(if f.kind.right_aligned() {
                            Alignment::Right
                        } else {
                            Alignment::Left
                        }),
                    visible: col.and_then(|c| c.visible).unwrap_or(true),
                    order: col.and_then(|c| c.order).unwrap_or(i as i32 * 10),
                    ellipsis: col.and_then(|c| c.ellipsis).unwrap_or_default(),
                    description: col.and_then(|c| c.description.clone()).unwrap_or_default(),
                }
            })
            .collect();
        if let Some((at, _)) = enrich::enriched_field(&self.layout) {
            let base = fields[at].order;
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

    /// Loads and attaches the gadget. Blocking (tens of milliseconds of
    /// syscalls); must be called within a tokio runtime.
    pub fn start(&self, opts: &RunOptions) -> Result<Running> {
        let mut globals = Vec::new();
        for (name, value) in &opts.params {
            let spec = self
                .params
                .iter()
                .find(|p| &p.name == name)
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
            globals.push((name.clone(), params::encode(spec, value)?));
        }
        let filtering = opts.mntns_filter.is_some();
        if filtering {
            if !self.obj.rodata.contains_key("gadget_filter_by_mntns") {
                return Err(GadgetError::Param {
                    name: "mntns filter".into(),
                    reason: "this gadget does not include gadget/mntns_filter.h, so it cannot filter by container".into(),
                });
            }
            globals.push(("gadget_filter_by_mntns".into(), vec![1]));
        }
        let max_entries = opts
            .ring_buffer_bytes
            .map(|b| vec![(self.tracer.map.clone(), b)])
            .unwrap_or_default();
        let req = LoadRequest {
            obj: &self.obj,
            tracer_maps: vec![self.tracer.map.as_str()],
            globals,
            max_entries,
        };
        // However loading ends, the parsed kernel BTF is not kept around.
        let _release = load::KernelBtfRelease;
        let mut ebpf = load::load(&req)?;
        let mntns_filter = match &opts.mntns_filter {
            Some(ids) => Some(Arc::new(MntnsFilterMap::take(&mut ebpf, ids)?)),
            None => None,
        };
        let decoder = Decoder::new(&self.layout).with_enricher(opts.enricher.clone().map(|e| e.0));
        let reader = EventReader::new(&mut ebpf, &self.tracer, decoder)?;
        let attachments = load::attach_all(&mut ebpf, &self.obj)?;
        Ok(Running {
            mntns_filter,
            reader,
            _attachments: attachments,
            _ebpf: ebpf,
            last_loss_poll: Instant::now(),
            pending: Vec::new(),
            pending_at: 0,
        })
    }
}

/// A live gadget. Dropping it detaches and unloads every program.
pub struct Running {
    // Field order matters: the reader and sockets go before the programs.
    reader: EventReader,
    _attachments: Attachments,
    _ebpf: Ebpf,
    last_loss_poll: Instant,
    mntns_filter: Option<Arc<MntnsFilterMap>>,
    /// For [`Running::next_record`]: decoded lines not yet handed out.
    pending: Vec<u8>,
    pending_at: usize,
}

/// How often ring-buffer loss counters are read.
const LOSS_POLL: Duration = Duration::from_millis(250);

/// One item of [`Running::next_record`].
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Event(serde_json::Map<String, serde_json::Value>),
    /// Events lost in the kernel since the previous report.
    Lost(u64),
}

impl Running {
    /// The live filter map, when the run was started with a filter.
    pub fn mntns_filter(&self) -> Option<Arc<MntnsFilterMap>> {
        self.mntns_filter.clone()
    }

    /// Waits for events and appends them to `out` as JSON lines.
    pub async fn next_batch(&mut self, out: &mut Vec<u8>) -> Batch {
        loop {
            let mut batch = self.reader.drain(out);
            if self.last_loss_poll.elapsed() >= LOSS_POLL {
                self.last_loss_poll = Instant::now();
                batch.lost += self.reader.poll_ring_losses();
            }
            if batch != Batch::default() {
                return batch;
            }
            self.reader.wait().await;
        }
    }

    /// Final loss count (call before dropping, after the programs stop producing).
    pub fn final_losses(&mut self) -> u64 {
        self.reader.poll_ring_losses()
    }

    /// Convenience for library users: the next event or loss report,
    /// decoded into JSON values. Runs until the caller stops polling.
    pub async fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            if self.pending_at < self.pending.len() {
                let rest = &self.pending[self.pending_at..];
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                let line = &rest[..end];
                self.pending_at += end + 1;
                let value: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(line).map_err(|e| GadgetError::Reader {
                        map: "(decoder)".into(),
                        reason: e.to_string(),
                    })?;
                return Ok(Some(Record::Event(value)));
            }
            self.pending.clear();
            self.pending_at = 0;
            let mut buf = std::mem::take(&mut self.pending);
            let batch = self.next_batch(&mut buf).await;
            self.pending = buf;
            if batch.lost + batch.malformed > 0 {
                return Ok(Some(Record::Lost(batch.lost + batch.malformed)));
            }
        }
    }
}
