//! Maps pinned by name (`__uint(pinning, LIBBPF_PIN_BY_NAME)`, as in
//! Inspektor Gadget's gadget/gpu_bridge_maps.h) are shared through the BPF
//! filesystem at /sys/fs/bpf, where Inspektor Gadget pins them too. Hosts
//! without systemd may not have it mounted; as root we mount it, as
//! libbpf-based tools do.

use std::sync::OnceLock;

use btf_rs::{BtfType, Type};

use super::object::{GadgetObject, datasec_vars, name_of};

/// Where pinned maps live.
pub const PIN_ROOT: &str = "/sys/fs/bpf";

/// Maps of the object that ask to be pinned by name.
pub fn pinned_maps(obj: &GadgetObject) -> Vec<String> {
    let Ok(vars) = datasec_vars(&obj.btf, ".maps") else {
        return Vec::new();
    };
    vars.into_iter()
        .filter(|(_, ty)| {
            let Ok(Type::Struct(def)) = obj.btf.resolve_type_by_id(*ty) else {
                return false;
            };
            def.members.iter().any(|m| {
                name_of(&obj.btf, m) == "pinning" && uint_value(obj, m.get_type_id()) == Some(1)
            })
        })
        .map(|(name, _)| name)
        .collect()
}

/// `__uint(name, N)` is `int (*name)[N]`.
fn uint_value(obj: &GadgetObject, ptr: Option<u32>) -> Option<u32> {
    let Type::Ptr(p) = obj.btf.resolve_type_by_id(ptr?).ok()? else {
        return None;
    };
    match obj.btf.resolve_chained_type(&p).ok()? {
        Type::Array(a) => Some(a.len() as u32),
        _ => None,
    }
}

/// Mounts the BPF filesystem on [`PIN_ROOT`] unless it is there (once).
pub fn ensure_bpffs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let mounted = std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(PIN_ROOT) && l.contains(" bpf "))
        });
        if mounted {
            return;
        }
        match nix::mount::mount(
            Some("bpffs"),
            PIN_ROOT,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        ) {
            Ok(()) => tracing::info!("mounted the BPF filesystem on {PIN_ROOT} for pinned maps"),
            Err(e) => tracing::warn!(
                error = %e,
                "the BPF filesystem is not mounted on {PIN_ROOT} and mounting it failed; gadgets with pinned maps will fail"
            ),
        }
    });
}
