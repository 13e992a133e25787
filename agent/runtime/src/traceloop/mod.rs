//! A native operator for Inspektor Gadget's `traceloop` ABI, the syscall
//! flight recorder whose rows IG makes in user space (its wasm module):
//! recognised by its maps and types ([`recognise`]), it gives the gadget
//! one data source `traceloop` with IG's fields, fills the `syscalls` rules
//! and the `--syscall-filters` maps at start, gives each traced mount
//! namespace an overwritable perf buffer, and reads and reassembles them
//! all when the run stops.
//!
//! Modules, one job each: [`syscalls`] (names, numbers, tracefs
//! declarations, length rules), [`buffers`] (a buffer per namespace in
//! `map_of_perf_buffers`, overwritable [`crate::perf_ring::PerfRing`]s),
//! [`records`] (records into rows).

pub mod buffers;
pub mod records;
pub mod syscalls;

use std::os::fd::AsFd;
use std::sync::Arc;

use aya::Ebpf;
use btf_rs::Type;

use crate::decode::{Decoder, write_json_str};
use crate::enrich::Enricher;
use crate::error::{GadgetError, Result};
use crate::kinds;
use crate::layout::{FieldKind, FieldLayout, Layout, Semantic};
use crate::object::{GadgetObject, map_type};
use crate::params::{ParamKind, ParamSpec};
use crate::reader::Batch;

use buffers::Buffers;
use records::{Collected, RECORD_SIZE};
use syscalls::SyscallTable;

/// The data source's name, as IG's module calls it.
pub const DATASOURCE: &str = "traceloop";
/// IG's parameter: syscall names to record, comma-separated (empty: all).
pub const FILTER_PARAM: &str = "syscall-filters";

const OUTER_MAP: &str = "map_of_perf_buffers";
const SYSCALLS_MAP: &str = "syscalls";
const FILTERS_MAP: &str = "syscall_filters";
const ENABLE_FILTERS_MAP: &str = "syscall_enable_filters";
const BPF_MAP_TYPE_HASH_OF_MAPS: u32 = 13;

/// An object speaking the traceloop ABI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abi {
    /// Whether it has the `syscall_filters` and `syscall_enable_filters` maps.
    pub filters: bool,
}

/// Whether `obj` is a traceloop object: a hash of maps
/// `map_of_perf_buffers` (perf event arrays by mount namespace), a
/// `syscalls` hash map (of `struct syscall_def_t`), and the 160-byte
/// `syscall_event_t` / `syscall_event_cont_t` types. `None` when it has
/// no `map_of_perf_buffers`; an error naming what is off when it has one
/// but the rest does not fit.
pub fn recognise(obj: &GadgetObject) -> Result<Option<Abi>> {
    let Some(outer) = obj.map(OUTER_MAP) else {
        return Ok(None);
    };
    let bad = |reason: String| GadgetError::MapConvention {
        map: OUTER_MAP.into(),
        reason: format!(
            "the traceloop ABI: {reason}; a traceloop gadget declares `{OUTER_MAP}` (BPF_MAP_TYPE_HASH_OF_MAPS of perf event arrays by mount namespace), a `{SYSCALLS_MAP}` hash map of `struct syscall_def_t` and the 160-byte `struct syscall_event_t` and `struct syscall_event_cont_t`"
        ),
    };
    if outer.map_type != BPF_MAP_TYPE_HASH_OF_MAPS {
        return Err(bad(format!(
            "it is a {}, not a hash of maps",
            map_type::name(outer.map_type)
        )));
    }
    match obj.map(SYSCALLS_MAP) {
        Some(m) if m.map_type == map_type::HASH => {}
        _ => return Err(bad(format!("there is no `{SYSCALLS_MAP}` hash map"))),
    }
    for name in ["syscall_event_t", "syscall_event_cont_t"] {
        let size =
            kinds::struct_by_name(obj, name).and_then(|id| match obj.btf.resolve_type_by_id(id) {
                Ok(Type::Struct(s)) => Some(s.size()),
                _ => None,
            });
        match size {
            Some(RECORD_SIZE) => {}
            Some(s) => {
                return Err(bad(format!(
                    "`struct {name}` is {s} bytes, not {RECORD_SIZE}"
                )));
            }
            None => {
                return Err(bad(format!(
                    "there is no `struct {name}` in the object's BTF"
                )));
            }
        }
    }
    let filters = obj.map(FILTERS_MAP).is_some() && obj.map(ENABLE_FILTERS_MAP).is_some();
    Ok(Some(Abi { filters }))
}

/// Bytes of the `parameters` field of a row (IG's longest: six quoted
/// 128-byte contents and their names).
const PARAMETERS_LEN: usize = 2048;

/// Offsets of the row the decoder reads (one per reassembled syscall).
/// `parameters` and `ret` are written after it as JSON strings as they are
/// (already quoted IG's way), not as raw bytes.
mod row {
    pub const MNTNS: usize = 0;
    pub const CPU: usize = 8;
    pub const PID: usize = 12;
    pub const COMM: usize = 16;
    pub const SYSCALL: usize = 32;
    pub const SIZE: usize = 64;
    pub const PARAMETERS: usize = SIZE;
    pub const RET: usize = PARAMETERS + super::PARAMETERS_LEN;
}

/// The rows' layout: IG's fields in IG's order, `mntns_id` a
/// `gadget_mntns_id` (container fields follow it), strings NUL-terminated.
pub fn layout() -> Layout {
    let int = |size, semantic| FieldKind::Int {
        size,
        signed: false,
        semantic,
    };
    let field = |name: &str, offset, kind| FieldLayout {
        name: name.into(),
        offset,
        kind,
    };
    Layout {
        type_name: DATASOURCE.into(),
        size: row::RET + 64,
        fields: vec![
            field("mntns_id", row::MNTNS, int(8, Semantic::MntnsId)),
            field("cpu", row::CPU, int(2, Semantic::None)),
            field("pid", row::PID, int(4, Semantic::Pid)),
            field("comm", row::COMM, FieldKind::Str { len: 16 }),
            field("syscall", row::SYSCALL, FieldKind::Str { len: 32 }),
            field(
                "parameters",
                row::PARAMETERS,
                FieldKind::Str {
                    len: PARAMETERS_LEN,
                },
            ),
            field("ret", row::RET, FieldKind::Str { len: 64 }),
        ],
    }
}

/// The fields the decoder writes: [`layout`]'s up to `syscall`.
fn head_layout() -> Layout {
    let mut l = layout();
    l.fields.retain(|f| f.offset < row::SIZE);
    l.size = row::SIZE;
    l
}

/// The parameter the operator adds (not a `.rodata` variable).
pub fn param(abi: &Abi) -> Option<ParamSpec> {
    abi.filters.then(|| ParamSpec {
        name: FILTER_PARAM.into(),
        key: FILTER_PARAM.into(),
        kind: ParamKind::String { len: 256 },
        default: String::new(),
        description: "Record only these syscalls: names, comma-separated (at most 16)".into(),
        possible_values: Vec::new(),
    })
}

/// A running recorder: the buffers, and what reading them needs.
pub struct Recorder {
    buffers: Buffers,
    names: SyscallTable,
    /// Writes a row's fields up to `syscall` (with the container fields).
    head: Decoder,
    /// Read once: a second stop has nothing more to say.
    done: std::sync::atomic::AtomicBool,
}

impl Recorder {
    /// Fills the loaded object's `syscalls` rules and, with `filters`
    /// (`--syscall-filters`), its filter maps, then records each of
    /// `mntns`. Errors name the map or namespace.
    pub fn start(
        ebpf: &mut Ebpf,
        abi: &Abi,
        filters: Option<&str>,
        mntns: &[u64],
        enricher: Option<Arc<dyn Enricher>>,
    ) -> Result<Recorder> {
        let names = SyscallTable::host()?;
        let filters = match filters {
            Some(f) if !f.trim().is_empty() => names.filters(f)?,
            _ => Vec::new(),
        };
        if !filters.is_empty() && !abi.filters {
            return Err(GadgetError::Param {
                name: FILTER_PARAM.into(),
                reason: format!("this gadget has no `{FILTERS_MAP}` map to filter with"),
            });
        }
        let map_err =
            |map: &str, e: String| GadgetError::Load(format!("traceloop: map `{map}`: {e}"));
        {
            let map = ebpf
                .map_mut(SYSCALLS_MAP)
                .ok_or_else(|| map_err(SYSCALLS_MAP, "missing after load".into()))?;
            let mut rules = aya::maps::HashMap::<_, u64, [u64; 6]>::try_from(map)
                .map_err(|e| map_err(SYSCALLS_MAP, e.to_string()))?;
            for (nr, rule) in names.rules() {
                rules
                    .insert(nr, rule, 0)
                    .map_err(|e| map_err(SYSCALLS_MAP, format!("adding syscall {nr}: {e}")))?;
            }
        }
        if !filters.is_empty() {
            let map = ebpf
                .map_mut(FILTERS_MAP)
                .ok_or_else(|| map_err(FILTERS_MAP, "missing after load".into()))?;
            let mut set = aya::maps::HashMap::<_, u64, u8>::try_from(map)
                .map_err(|e| map_err(FILTERS_MAP, e.to_string()))?;
            for nr in &filters {
                set.insert(nr, 1, 0)
                    .map_err(|e| map_err(FILTERS_MAP, format!("adding syscall {nr}: {e}")))?;
            }
            let map = ebpf
                .map_mut(ENABLE_FILTERS_MAP)
                .ok_or_else(|| map_err(ENABLE_FILTERS_MAP, "missing after load".into()))?;
            let mut on = aya::maps::HashMap::<_, u32, u8>::try_from(map)
                .map_err(|e| map_err(ENABLE_FILTERS_MAP, e.to_string()))?;
            on.insert(0, 1, 0)
                .map_err(|e| map_err(ENABLE_FILTERS_MAP, e.to_string()))?;
        }
        let outer = match ebpf.map(OUTER_MAP) {
            Some(aya::maps::Map::HashOfMaps(data)) => data
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| map_err(OUTER_MAP, e.to_string()))?,
            _ => {
                return Err(map_err(
                    OUTER_MAP,
                    "missing after load, or no hash of maps".into(),
                ));
            }
        };
        let buffers = Buffers::new(outer)?;
        for id in mntns {
            buffers.insert(*id)?;
        }
        Ok(Recorder {
            buffers,
            names,
            head: Decoder::new(&head_layout()).with_enricher(enricher),
            done: Default::default(),
        })
    }

    /// Starts recording mount namespace `id` (a container that started).
    pub fn insert(&self, id: u64) -> Result<()> {
        self.buffers.insert(id)
    }

    /// Stops recording `id`; what it recorded is still read at the end.
    pub fn remove(&self, id: u64) {
        self.buffers.remove(id)
    }

    /// The namespaces recorded now.
    pub fn traced(&self) -> Vec<u64> {
        self.buffers.traced()
    }

    /// Pauses the buffers, reassembles every namespace's records and
    /// appends the rows to `out` as JSON lines, oldest first per namespace.
    pub fn finish(&self, out: &mut Vec<u8>) -> Batch {
        if self.done.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Batch::default();
        }
        let mut per_ns: std::collections::BTreeMap<u64, Collected> = Default::default();
        let lost = self
            .buffers
            .read_all(|id, record| per_ns.entry(id).or_default().push(record));
        let mut batch = Batch {
            lost,
            ..Batch::default()
        };
        let mut rows: Vec<records::Row> = Vec::new();
        for (id, collected) in per_ns {
            batch.malformed += collected.malformed;
            rows.extend(collected.rows(id, &self.names));
        }
        rows.sort_by_key(|r| r.timestamp);
        let mut buf = vec![0u8; row::SIZE];
        for r in &rows {
            buf.fill(0);
            buf[row::MNTNS..row::MNTNS + 8].copy_from_slice(&r.mntns_id.to_ne_bytes());
            buf[row::CPU..row::CPU + 2].copy_from_slice(&r.cpu.to_ne_bytes());
            buf[row::PID..row::PID + 4].copy_from_slice(&r.pid.to_ne_bytes());
            put_str(&mut buf[row::COMM..row::COMM + 16], &r.comm);
            put_str(&mut buf[row::SYSCALL..row::SIZE], r.syscall.as_bytes());
            self.head.write_fields(&buf, out);
            out.extend_from_slice(b",\"parameters\":");
            write_json_str(out, r.parameters.as_bytes());
            out.extend_from_slice(b",\"ret\":");
            write_json_str(out, r.ret.as_bytes());
            out.extend_from_slice(b"}\n");
            batch.events += 1;
        }
        batch
    }
}

/// Copies `s` into `dst`, cut to leave a NUL at the end.
fn put_str(dst: &mut [u8], s: &[u8]) {
    let n = s.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&s[..n]);
}

/// The host's mount namespace (pid 1's; the agent's own where pid 1's
/// cannot be read), recorded when a run selects no container.
pub fn host_mntns() -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/1/ns/mnt")
        .or_else(|_| std::fs::metadata("/proc/self/ns/mnt"))
        .map(|m| m.ino())
        .map_err(|e| GadgetError::Load(format!("traceloop: reading /proc/self/ns/mnt: {e}")))
}

/// The recorder as the mount-namespace filter's observer: a container
/// selection's changes add and remove buffers.
pub fn observer(recorder: &Arc<Recorder>) -> crate::mntns_filter::Observer {
    let weak = Arc::downgrade(recorder);
    Arc::new(move |id, added| {
        let Some(r) = weak.upgrade() else { return };
        if added {
            if let Err(e) = r.insert(id) {
                tracing::warn!(mntns = id, error = %e, "traceloop: not recording a mount namespace");
            }
        } else {
            r.remove(id);
        }
    })
}
