//! Parsing a gadget's ELF object: its programs (by section), its BTF-defined
//! maps and its `.rodata` globals. Nothing here touches the kernel.

use std::collections::BTreeMap;

use btf_rs::{Btf, BtfType, Type};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

use super::error::{GadgetError, Result};

/// A parsed gadget object. Keeps the original bytes: the loader patches a
/// copy, while layouts are always read from the original BTF.
pub struct GadgetObject {
    /// The ELF object as given.
    pub bytes: Vec<u8>,
    /// The object's own BTF (types of maps, events, parameters).
    pub btf: Btf,
    /// Raw `.BTF` section, for the loader's rewrite.
    pub btf_bytes: Vec<u8>,
    /// Every program, in section order.
    pub programs: Vec<ProgramDef>,
    /// Every BTF-defined map.
    pub maps: Vec<MapDef>,
    /// `const volatile` globals, by name.
    pub rodata: BTreeMap<String, RodataVar>,
    /// Initial contents of `.rodata` (parameter defaults).
    pub rodata_bytes: Vec<u8>,
    /// Other global variables (for conventions that mark things with unused globals).
    pub globals: Vec<String>,
}

/// An eBPF program: the function symbol aya names it by, and its ELF section,
/// which says how to attach it (`tracepoint/syscalls/sys_enter_openat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramDef {
    /// The function's symbol name.
    pub name: String,
    /// The ELF section (`kprobe/do_sys_openat2`, `iter/task`, ...).
    pub section: String,
}

/// A BTF-defined map (`SEC(".maps")`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDef {
    /// The map's variable name.
    pub name: String,
    /// The kernel's `BPF_MAP_TYPE_*` number ([`map_type`]).
    pub map_type: u32,
    /// `__uint(max_entries, ...)` (ring buffers: bytes); 0 when absent.
    pub max_entries: u32,
    /// BTF type id of `__type(key, ...)`.
    pub key_type: Option<u32>,
    /// BTF type id of `__type(value, ...)`: for tracers, the event struct.
    pub value_type: Option<u32>,
}

/// A `.rodata` global: a gadget parameter unless its name starts with `gadget_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RodataVar {
    /// The variable's name.
    pub name: String,
    /// Its BTF type id (qualifiers included).
    pub type_id: u32,
    /// Byte offset in `.rodata`.
    pub offset: usize,
    /// Bytes.
    pub size: usize,
}

/// Kernel map type numbers used by the classifier.
pub mod map_type {
    /// `BPF_MAP_TYPE_HASH`.
    pub const HASH: u32 = 1;
    /// `BPF_MAP_TYPE_LRU_HASH`.
    pub const LRU_HASH: u32 = 9;
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`.
    pub const PERF_EVENT_ARRAY: u32 = 4;
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    pub const PERCPU_ARRAY: u32 = 6;
    /// `BPF_MAP_TYPE_RINGBUF`.
    pub const RINGBUF: u32 = 27;

    /// The kernel's name of a map type (`BPF_MAP_TYPE_RINGBUF`), or `map type N`.
    pub fn name(t: u32) -> String {
        match t {
            1 => "BPF_MAP_TYPE_HASH".into(),
            2 => "BPF_MAP_TYPE_ARRAY".into(),
            4 => "BPF_MAP_TYPE_PERF_EVENT_ARRAY".into(),
            5 => "BPF_MAP_TYPE_PERCPU_HASH".into(),
            6 => "BPF_MAP_TYPE_PERCPU_ARRAY".into(),
            9 => "BPF_MAP_TYPE_LRU_HASH".into(),
            27 => "BPF_MAP_TYPE_RINGBUF".into(),
            n => format!("map type {n}"),
        }
    }
}

impl GadgetObject {
    /// Parses an eBPF ELF object. Errors: [`GadgetError::NotElf`],
    /// [`GadgetError::NoBtf`], [`GadgetError::Btf`].
    pub fn parse(bytes: Vec<u8>) -> Result<GadgetObject> {
        let (programs, rodata_syms, rodata_bytes, btf_bytes, globals) = {
            let file =
                object::File::parse(&*bytes).map_err(|e| GadgetError::NotElf(e.to_string()))?;
            if file.architecture() != object::Architecture::Bpf {
                return Err(GadgetError::NotElf(format!(
                    "it is an ELF for {:?}, not for BPF (compile with `clang -target bpf`)",
                    file.architecture()
                )));
            }
            let btf_bytes = file
                .section_by_name(".BTF")
                .ok_or(GadgetError::NoBtf)?
                .data()
                .map_err(|e| GadgetError::NotElf(format!("unreadable .BTF section: {e}")))?
                .to_vec();
            let rodata = file.section_by_name(".rodata");
            let rodata_index = rodata.as_ref().map(|s| s.index());
            let rodata_bytes = match &rodata {
                Some(s) => s.data().map(<[u8]>::to_vec).unwrap_or_default(),
                None => Vec::new(),
            };
            let mut programs = Vec::new();
            let mut rodata_syms = BTreeMap::new();
            let mut globals = Vec::new();
            for sym in file.symbols() {
                let Some(index) = sym.section_index() else {
                    continue;
                };
                let Ok(name) = sym.name() else { continue };
                if Some(index) == rodata_index {
                    // clang 14 leaves DATASEC offsets at 0: the symbol table is the truth.
                    rodata_syms.insert(
                        name.to_string(),
                        (sym.address() as usize, sym.size() as usize),
                    );
                    continue;
                }
                let section = file
                    .section_by_index(index)
                    .map_err(|e| GadgetError::NotElf(e.to_string()))?;
                let section_name = section.name().unwrap_or_default();
                if sym.kind() == SymbolKind::Text
                    && sym.is_global()
                    && section.kind() == SectionKind::Text
                {
                    if section_name != ".text" {
                        programs.push(ProgramDef {
                            name: name.to_string(),
                            section: section_name.to_string(),
                        });
                    }
                } else if sym.kind() == SymbolKind::Data && sym.is_global() {
                    globals.push(name.to_string());
                }
            }
            (programs, rodata_syms, rodata_bytes, btf_bytes, globals)
        };
        let btf = Btf::from_bytes(&btf_bytes).map_err(|e| GadgetError::Btf(e.to_string()))?;
        let maps = parse_maps(&btf)?;
        let rodata = parse_rodata(&btf, &rodata_syms)?;
        Ok(GadgetObject {
            bytes,
            btf,
            btf_bytes,
            programs,
            maps,
            rodata,
            rodata_bytes,
            globals,
        })
    }

    /// The map named `name`.
    pub fn map(&self, name: &str) -> Option<&MapDef> {
        self.maps.iter().find(|m| m.name == name)
    }
}

/// Name of a BTF type or member ("" when anonymous).
pub fn name_of(btf: &Btf, t: &dyn BtfType) -> String {
    btf.resolve_name(t).unwrap_or_default()
}

fn btf_err(e: impl std::fmt::Display) -> GadgetError {
    GadgetError::Btf(e.to_string())
}

/// Finds a DATASEC by name and returns its (VAR name, VAR type id) entries.
pub fn datasec_vars(btf: &Btf, section: &str) -> Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for t in btf.resolve_types_by_name(section).unwrap_or_default() {
        let Type::Datasec(ds) = t else { continue };
        for v in &ds.variables {
            let var_id = v
                .get_type_id()
                .ok_or_else(|| btf_err("DATASEC entry without type"))?;
            let Type::Var(var) = btf.resolve_type_by_id(var_id).map_err(btf_err)? else {
                continue;
            };
            let ty = var
                .get_type_id()
                .ok_or_else(|| btf_err("VAR without type"))?;
            out.push((name_of(btf, &var), ty));
        }
    }
    Ok(out)
}

fn parse_maps(btf: &Btf) -> Result<Vec<MapDef>> {
    let mut maps = Vec::new();
    for (name, type_id) in datasec_vars(btf, ".maps")? {
        let Type::Struct(def) = btf.resolve_type_by_id(type_id).map_err(btf_err)? else {
            return Err(GadgetError::MapConvention {
                map: name,
                reason: "its definition in SEC(\".maps\") is not a struct".into(),
            });
        };
        let mut map = MapDef {
            name: name.clone(),
            map_type: 0,
            max_entries: 0,
            key_type: None,
            value_type: None,
        };
        for m in &def.members {
            let field = name_of(btf, m);
            let ty = m.get_type_id().unwrap_or(0);
            match field.as_str() {
                "type" => map.map_type = uint_field(btf, ty, &name)?,
                "max_entries" => map.max_entries = uint_field(btf, ty, &name)?,
                "key" => map.key_type = Some(pointee(btf, ty, &name)?),
                "value" => map.value_type = Some(pointee(btf, ty, &name)?),
                _ => {}
            }
        }
        maps.push(map);
    }
    Ok(maps)
}

/// `__uint(name, N)` is `int (*name)[N]`: N is the array length.
fn uint_field(btf: &Btf, ptr: u32, map: &str) -> Result<u32> {
    let Type::Ptr(p) = btf.resolve_type_by_id(ptr).map_err(btf_err)? else {
        return Err(GadgetError::MapConvention {
            map: map.into(),
            reason: "a __uint() field is not a pointer to an array".into(),
        });
    };
    match btf.resolve_chained_type(&p).map_err(btf_err)? {
        Type::Array(a) => Ok(a.len() as u32),
        _ => Err(GadgetError::MapConvention {
            map: map.into(),
            reason: "a __uint() field is not a pointer to an array".into(),
        }),
    }
}

/// `__type(name, T)` is `T *name`.
fn pointee(btf: &Btf, ptr: u32, map: &str) -> Result<u32> {
    match btf.resolve_type_by_id(ptr).map_err(btf_err)? {
        Type::Ptr(p) => p.get_type_id().ok_or_else(|| btf_err("PTR without type")),
        _ => Err(GadgetError::MapConvention {
            map: map.into(),
            reason: "a __type() field is not a pointer".into(),
        }),
    }
}

fn parse_rodata(
    btf: &Btf,
    syms: &BTreeMap<String, (usize, usize)>,
) -> Result<BTreeMap<String, RodataVar>> {
    let mut vars = BTreeMap::new();
    for (name, type_id) in datasec_vars(btf, ".rodata")? {
        let Some(&(offset, size)) = syms.get(&name) else {
            continue;
        };
        vars.insert(
            name.clone(),
            RodataVar {
                name,
                type_id,
                offset,
                size,
            },
        );
    }
    Ok(vars)
}
