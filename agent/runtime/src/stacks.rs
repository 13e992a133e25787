//! Kernel stack traces of `gadget/stacks.h`: a stack id in an event or key
//! becomes a list of kernel symbols (`do_syscall_64+0x5d`) from the
//! gadget's `gadget_kernel_stacks` map and /proc/kallsyms.

use std::collections::BTreeMap;

use aya::maps::{Map, MapData, StackTraceMap};

/// The map the stack ids point into.
pub const STACK_MAP: &str = "gadget_kernel_stacks";

/// Stack maps by name, in the order they are looked for: gadget/stacks.h's,
/// then Inspektor Gadget's gadget/kernel_stack_map.h's.
pub const STACK_MAPS: &[&str] = &[STACK_MAP, "ig_kstack"];

pub struct KernelStacks {
    map: StackTraceMap<MapData>,
    /// Symbol start address → name (empty when kallsyms is unreadable).
    symbols: BTreeMap<u64, String>,
}

impl KernelStacks {
    /// Takes the gadget's stack map; reads /proc/kallsyms once (~120k lines).
    pub fn new(map: Map) -> Result<KernelStacks, String> {
        let map = StackTraceMap::try_from(map).map_err(|e| format!("{STACK_MAP}: {e}"))?;
        let symbols = aya::util::kernel_symbols().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read /proc/kallsyms: kernel stacks print as addresses");
            BTreeMap::new()
        });
        Ok(KernelStacks { map, symbols })
    }

    /// The frames of stack `id`, innermost first, as JSON strings into `out`
    /// (`[]` for a negative or vanished id).
    pub fn write_json(&self, id: i64, out: &mut Vec<u8>) {
        out.push(b'[');
        if let Ok(id) = u32::try_from(id)
            && let Ok(trace) = self.map.get(&id, 0)
        {
            for (i, frame) in trace.frames().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                super::decode::write_json_str(out, self.symbolize(frame.ip).as_bytes());
            }
        }
        out.push(b']');
    }

    fn symbolize(&self, ip: u64) -> String {
        match self.symbols.range(..=ip).next_back() {
            Some((start, name)) => format!("{name}+{:#x}", ip - start),
            None => format!("{ip:#x}"),
        }
    }
}
