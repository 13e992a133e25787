//! libbpf's declarative program arrays: a `BPF_MAP_TYPE_PROG_ARRAY` in
//! `.maps` with `__array(values, int (void *))` and an initializer,
//!
//! ```c
//! struct { ...; __array(values, int (void *)); } tail_calls SEC(".maps") = {
//!     .values = { [1] = (void *)&tail_getcwd },
//! };
//! ```
//!
//! aya-obj 0.3 rejects the `values` member (it expects a map-in-map's
//! struct there: `unexpected BTF type id`) and ignores the initializer, which
//! lives in `.rel.maps` as relocations against the programs' symbols. Here:
//! [`prog_array_maps`] finds those maps (btf_patch.rs turns `values` into a
//! 4-byte `value_size` aya accepts), [`initial_slots`] reads the initializer,
//! and the loader loads each target program, fills its slot before anything
//! attaches, and does not attach the targets themselves (they run only as
//! tail calls).

use btf_rs::{Btf, BtfType, Type};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

use super::error::{GadgetError, Result};
use super::object::{datasec_vars, name_of};

/// A program array declared with `__array(values, <function type>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgArrayMap {
    pub name: String,
    /// BTF id of the map's definition struct.
    pub struct_id: u32,
    /// Byte offset of `values` in the definition.
    pub values_offset: u64,
}

/// One initialized slot: `map[index] = program`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub map: String,
    pub index: u32,
    pub program: String,
}

fn btf_err(e: impl std::fmt::Display) -> GadgetError {
    GadgetError::Btf(e.to_string())
}

/// The maps whose `values` member is an array of pointers to functions.
pub fn prog_array_maps(btf: &Btf) -> Result<Vec<ProgArrayMap>> {
    let mut out = Vec::new();
    for (name, struct_id) in datasec_vars(btf, ".maps")? {
        let Ok(Type::Struct(def)) = btf.resolve_type_by_id(struct_id) else {
            continue;
        };
        for m in &def.members {
            if name_of(btf, m) != "values" {
                continue;
            }
            let Some(Type::Array(a)) = m
                .get_type_id()
                .and_then(|id| btf.resolve_type_by_id(id).ok())
            else {
                continue;
            };
            let Some(Type::Ptr(p)) = a
                .get_type_id()
                .and_then(|id| btf.resolve_type_by_id(id).ok())
            else {
                continue;
            };
            if let Ok(Type::FuncProto(_)) = btf.resolve_chained_type(&p) {
                out.push(ProgArrayMap {
                    name: name.clone(),
                    struct_id,
                    values_offset: m.bit_offset() as u64 / 8,
                });
            }
        }
    }
    Ok(out)
}

/// The initializer of every program array: which program goes in which slot.
/// A slot that names something other than a program is an error naming it.
pub fn initial_slots(elf: &[u8], btf: &Btf) -> Result<Vec<Slot>> {
    let maps = prog_array_maps(btf)?;
    if maps.is_empty() {
        return Ok(Vec::new());
    }
    let file = object::File::parse(elf).map_err(|e| GadgetError::NotElf(e.to_string()))?;
    let Some(section) = file.section_by_name(".maps") else {
        return Ok(Vec::new());
    };
    let index = section.index();
    let map_symbols: Vec<_> = file
        .symbols()
        .filter(|s| s.section_index() == Some(index))
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.address(), s.size())))
        .collect();
    let mut slots = Vec::new();
    for (offset, rel) in section.relocations() {
        let Some((map, start, _)) = map_symbols
            .iter()
            .find(|(_, start, size)| (*start..start + size).contains(&offset))
        else {
            continue;
        };
        let Some(def) = maps.iter().find(|m| &m.name == map) else {
            continue;
        };
        let RelocationTarget::Symbol(sym) = rel.target() else {
            continue;
        };
        let target = file.symbol_by_index(sym).map_err(btf_err)?;
        let program = target.name().unwrap_or_default().to_string();
        if target.kind() != object::SymbolKind::Text {
            return Err(GadgetError::MapConvention {
                map: map.clone(),
                reason: format!(
                    "its initializer names `{program}`, which is not a program (only `&prog` may go in a program array)"
                ),
            });
        }
        let rel_off = offset - start;
        if rel_off < def.values_offset {
            continue;
        }
        slots.push(Slot {
            map: map.clone(),
            index: ((rel_off - def.values_offset) / 8) as u32,
            program,
        });
    }
    Ok(slots)
}
