//! Kernel enums by name, from the running kernel's BTF. A gadget compiled
//! against one `vmlinux.h` carries that kernel's enum values; enums like
//! `skb_drop_reason` renumber between kernels, so names are taken from the
//! kernel the gadget runs on. Only ENUM/ENUM64 records are read, by walking
//! the kernel's BTF table (mapped where the kernel allows it; nothing kept).

use std::collections::HashMap;

use super::btf_table::{BtfTable, Kind};

/// Members of the kernel enums named in `wanted` that exist, by name.
pub fn lookup(wanted: &[&str]) -> HashMap<String, Vec<(i64, String)>> {
    if wanted.is_empty() {
        return HashMap::new();
    }
    match super::core_relo::kernel_table_transient() {
        Ok(table) => lookup_in(&table, wanted),
        Err(_) => HashMap::new(),
    }
}

/// [`lookup`] in `table`: ENUM and ENUM64 types named exactly so (the last
/// one when several are).
fn lookup_in(table: &BtfTable, wanted: &[&str]) -> HashMap<String, Vec<(i64, String)>> {
    let any_enum = Kind::Enum {
        size: 0,
        signed: false,
        is64: false,
        values: Vec::new(),
    };
    let mut out = HashMap::new();
    for &name in wanted {
        let found = table
            .ids_named(&any_enum, name)
            .into_iter()
            .rfind(|&id| !name.is_empty() && table.name(id) == name)
            .and_then(|id| table.get(id).ok());
        if let Some(Kind::Enum { values, .. }) = found.map(|t| t.kind) {
            let members = values
                .iter()
                .map(|v| (v.value, table.str_at(v.name_off).to_string()))
                .collect();
            out.insert(name.to_string(), members);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_a_kernel_enum_with_the_running_kernels_values() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            eprintln!("skipping: no kernel BTF");
            return;
        }
        let found = super::lookup(&["bpf_map_type", "no_such_enum_here"]);
        let map_types = &found["bpf_map_type"];
        assert!(
            map_types.contains(&(27, "BPF_MAP_TYPE_RINGBUF".to_string())),
            "{map_types:?}"
        );
        assert!(!found.contains_key("no_such_enum_here"));
    }
}
