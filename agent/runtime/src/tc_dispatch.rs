//! The tc dispatcher: how a gadget's tc programs know which network
//! namespace a packet is counted to.
//!
//! As with socket filters (`net_dispatch.rs`), Inspektor Gadget's network
//! gadgets read the namespace from `skb->cb[0]`
//! (`gadget_socket_lookup_with_direction(skb, is_ingress)` in
//! `<gadget/sockets-map.h>` keys its socket lookup with it), which only a
//! dispatcher in front of the gadget sets. So the agent never attaches a
//! gadget's tc program itself: per interface and program it loads
//! `bpf/tc_dispatch.bpf.c` with the namespace's inode in
//! `gadget_tc_dispatch_netns`, puts the gadget's program in the
//! dispatcher's one-slot program array and attaches the dispatcher
//! (a tcx link, or netlink tc on `clsact` before Linux 6.6) where the
//! gadget's program would have gone. The namespace is the agent's for an
//! interface named with `--iface`, and the container's for the host side
//! of a container's veth (the sockets that send and receive its packets
//! live there).

use aya::Ebpf;
use aya::programs::ProgramFd;
use aya::programs::tc::{SchedClassifier, TcAttachType};

use super::error::chain;

/// The dispatcher's object, built from `bpf/tc_dispatch.bpf.c` by
/// `build.rs` (empty when clang was missing at build time).
pub(crate) static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tc_dispatch.o"));

const PROGRAM: &str = "gadget_tc_dispatch";
const TARGET_MAP: &str = "gadget_tc_dispatch_target";
const NETNS_GLOBAL: &str = "gadget_tc_dispatch_netns";

/// One dispatcher attached on one interface in one direction; dropping it
/// detaches it (aya removes the tcx link or the tc filter).
pub struct TcDispatcher {
    _ebpf: Ebpf,
}

impl std::fmt::Debug for TcDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TcDispatcher")
    }
}

/// The inode of the agent's own network namespace.
pub fn own_netns() -> Result<u64, String> {
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .map_err(|e| format!("reading /proc/self/ns/net: {e}"))
}

impl TcDispatcher {
    /// Attaches a dispatcher for the loaded tc program `target` on
    /// interface `iface` (of the agent's namespace) in direction `dir`,
    /// telling it that the packets are in network namespace `netns`
    /// (an inode). The error says which step failed.
    pub fn attach(
        netns: u64,
        target: &ProgramFd,
        iface: &str,
        dir: TcAttachType,
    ) -> Result<TcDispatcher, String> {
        let mut ebpf = super::net_dispatch::load_with_target(
            super::net_dispatch::DispatcherObject {
                what: "tc dispatcher",
                object: OBJECT,
                netns_global: NETNS_GLOBAL,
                target_map: TARGET_MAP,
                program_kind: "a tc (`classifier`) program",
            },
            netns,
            target,
        )?;
        let prog: &mut SchedClassifier = ebpf
            .program_mut(PROGRAM)
            .ok_or("the tc dispatcher object has no program (a broken build)")?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| chain(&e))?;
        prog.load()
            .map_err(|e| format!("loading the tc dispatcher: {}", chain(&e)))?;
        prog.attach(iface, dir).map_err(|e| {
            format!(
                "on interface `{}` ({}): {}",
                iface.escape_debug(),
                if super::tc::has_tcx() {
                    "tcx link"
                } else {
                    "netlink tc on clsact, kernel older than 6.6"
                },
                chain(&e)
            )
        })?;
        Ok(TcDispatcher { _ebpf: ebpf })
    }
}
