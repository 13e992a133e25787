//! tc classifier programs (`classifier/ingress/…`, `classifier`, `tc`,
//! `tc/ingress`, `tcx/ingress`, `tcx/egress`): where they attach and how.
//!
//! * **Direction**: from the section, as Inspektor Gadget and libbpf spell
//!   it: an `egress` path component means egress, anything else (`tc`,
//!   `classifier`, `classifier/ingress/drop`) ingress.
//! * **Interfaces**: the one the run names (`RunOptions::iface`, `--iface`),
//!   else the host-side veth of each selected container: the links of the
//!   container's network namespace whose peer lives in another namespace
//!   give the peer's index in the host ([`host_peers`]).
//! * **Mechanism**: on kernels >= 6.6 a tcx link (no qdisc involved; the link
//!   goes when the run's programs are dropped). On older kernels netlink tc
//!   on the `clsact` qdisc, which is created when missing and removed at the
//!   end of the run only if this run created it ([`Clsact`]).

use std::os::fd::AsFd;

use aya::programs::tc::{self as aya_tc, TcAttachType, TcError};

use super::rtnl;

/// Which way a tc program sees packets.
pub fn direction(section: &str) -> TcAttachType {
    if section.split('/').skip(1).any(|part| part == "egress") {
        TcAttachType::Egress
    } else {
        TcAttachType::Ingress
    }
}

/// Whether the running kernel has tcx links (Linux 6.6).
pub fn has_tcx() -> bool {
    use aya::util::KernelVersion;
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

/// The index of interface `iface` in the calling thread's namespace.
pub(crate) fn ifindex(iface: &str) -> Result<u32, String> {
    let name = std::ffi::CString::new(iface).map_err(|_| {
        format!(
            "interface name `{}` contains a NUL byte",
            iface.escape_debug()
        )
    })?;
    // SAFETY: if_nametoindex(3) reads a NUL-terminated string we own.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(format!(
            "no interface `{}` here ({}); `ip link` lists them",
            iface.escape_debug(),
            std::io::Error::last_os_error()
        )),
        i => Ok(i),
    }
}

/// A `clsact` qdisc this run created; deleted (with its filters) on drop.
#[derive(Debug)]
pub struct Clsact {
    iface: String,
    index: u32,
}

impl Clsact {
    /// Adds the `clsact` qdisc to `iface` unless it has one: `Some` when this
    /// call created it (and so must remove it), `None` when it was there.
    pub fn ensure(iface: &str) -> Result<Option<Clsact>, String> {
        let index = ifindex(iface)?;
        match aya_tc::qdisc_add_clsact(iface) {
            Ok(()) => Ok(Some(Clsact {
                iface: iface.into(),
                index,
            })),
            Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(None),
            Err(e) => Err(format!(
                "adding the clsact qdisc to `{iface}`: {}",
                super::error::chain(&e)
            )),
        }
    }
}

impl Drop for Clsact {
    fn drop(&mut self) {
        // The interface may be gone with its qdisc already (a container stopped).
        if let Err(e) = rtnl::delete_clsact(self.index)
            && e.raw_os_error() != Some(libc::ENODEV)
            && e.raw_os_error() != Some(libc::ENOENT)
            && e.raw_os_error() != Some(libc::EINVAL)
        {
            tracing::warn!(iface = %self.iface, error = %e, "removing the clsact qdisc gadgetd added");
        }
    }
}

/// The host-side interface names of the veths of network namespace `netns`
/// (an open `/proc/PID/ns/net`), as seen from the calling thread's namespace.
pub fn host_peers(netns: &std::fs::File) -> Result<Vec<String>, String> {
    let inside = std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            rtnl::links()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("netlink thread panicked")))
    })
    .map_err(|e| format!("listing the container's interfaces: {e}"))?;
    let host = rtnl::links().map_err(|e| format!("listing the host's interfaces: {e}"))?;
    let mut peers: Vec<String> = inside
        .iter()
        .filter(|l| l.peer_netnsid.is_some())
        .filter_map(|l| l.peer_index)
        .filter_map(|i| {
            host.iter()
                .find(|h| h.index == i && h.peer_netnsid.is_some())
        })
        .map(|h| h.name.clone())
        .collect();
    peers.sort();
    peers.dedup();
    Ok(peers)
}

/// An interface tc programs attach on, and the network namespace its
/// packets are counted to (`skb->cb[0]`, `tc_dispatch.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachIface {
    /// The interface's name in the agent's namespace.
    pub name: String,
    /// A network namespace inode; `None`: the agent's own.
    pub netns: Option<u64>,
}

/// The host-side veths of the selected containers' network namespaces,
/// each with its container's namespace; an error when none of them has one.
pub fn container_veths(netns: &[super::snapshot::Netns]) -> super::error::Result<Vec<AttachIface>> {
    let mut all = Vec::new();
    for ns in netns {
        match host_peers(&ns.file) {
            Ok(peers) => all.extend(peers.into_iter().map(|name| AttachIface {
                name,
                netns: Some(ns.inode),
            })),
            // The container went away meanwhile.
            Err(e) => tracing::debug!(netns = ns.inode, error = %e, "no veths found"),
        }
    }
    if all.is_empty() {
        return Err(super::error::GadgetError::Param {
            name: "iface".into(),
            reason: format!(
                "tc programs attach to the host side of each selected container's veth, and network namespaces {:?} have none; name an interface with --iface",
                netns.iter().map(|n| n.inode).collect::<Vec<_>>()
            ),
        });
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all.dedup_by(|a, b| a.name == b.name);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_follows_the_section_as_ig_and_libbpf_spell_it() {
        for s in [
            "tc",
            "classifier",
            "tc/ingress",
            "tcx/ingress",
            "classifier/ingress/drop",
        ] {
            assert_eq!(direction(s), TcAttachType::Ingress, "{s}");
        }
        for s in ["tc/egress", "tcx/egress", "classifier/egress/drop"] {
            assert_eq!(direction(s), TcAttachType::Egress, "{s}");
        }
    }
}
