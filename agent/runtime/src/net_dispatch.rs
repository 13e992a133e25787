//! The network dispatcher: how a gadget's socket-filter programs see the
//! packets of network namespaces and know which namespace each packet is in.
//!
//! Inspektor Gadget's network gadgets read the namespace of a packet from
//! `skb->cb[0]` (`gadget_socket_lookup(skb)` in `<gadget/sockets-map.h>`
//! keys its lookup with it, and `trace_dns` copies it into `netns_id`),
//! which nothing but a dispatcher in front of the gadget sets. So the agent
//! never attaches a gadget's socket filter itself: per network namespace
//! and per socket-filter program, it loads `bpf/net_dispatch.bpf.c` with
//! that namespace's inode in `gadget_dispatch_netns`, puts the gadget's
//! program in the dispatcher's one-slot program array, and attaches the
//! dispatcher to a raw packet socket opened in that namespace. The
//! dispatcher writes `cb[0]` and tail-calls the gadget's program, whose
//! return value stays the filter's verdict.
//!
//! One loaded gadget thus serves any number of namespaces, and namespaces
//! can be added and removed while it runs ([`NetDispatch::attach`],
//! [`NetDispatch::detach`]): that is how a run follows containers started
//! after it (`follow_netns.rs`). The packet socket holds its namespace: a
//! namespace followed stays alive until it is detached.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use aya::Ebpf;
use aya::maps::ProgramArray;
use aya::programs::{ProgramFd, SocketFilter};

use super::error::chain;

/// The dispatcher's object, built from `bpf/net_dispatch.bpf.c` by
/// `build.rs` (empty when clang was missing at build time).
pub(crate) static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/net_dispatch.o"));

const PROGRAM: &str = "gadget_dispatch";
const TARGET_MAP: &str = "gadget_dispatch_target";
const NETNS_GLOBAL: &str = "gadget_dispatch_netns";

/// At most this many network namespaces per run (each costs one loaded
/// dispatcher and one packet socket per socket-filter program).
pub const MAX_NETNS: usize = 4096;

/// The socket-filter programs of one loaded gadget and the namespaces they
/// are attached in. Shared between the run and whatever follows new
/// namespaces for it; dropping it detaches everything.
#[derive(Default)]
pub struct NetDispatch {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The gadget's socket-filter programs (loaded, not attached), in object order.
    programs: Vec<Target>,
    /// Network namespace inode → one dispatcher per program.
    attached: BTreeMap<u64, Vec<Dispatcher>>,
}

struct Target {
    name: String,
    fd: ProgramFd,
}

/// One dispatcher attached to one packet socket. Field order: the socket
/// closes (and the filter detaches) before the program and its array go.
struct Dispatcher {
    _socket: OwnedFd,
    _ebpf: Ebpf,
}

impl std::fmt::Debug for NetDispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("NetDispatch")
            .field(
                "programs",
                &inner.programs.iter().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .field("netns", &inner.attached.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl NetDispatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a loaded socket-filter program of the gadget; namespaces
    /// attached from now on get a dispatcher for it too.
    pub fn add_program(&self, name: &str, fd: ProgramFd) {
        self.lock().programs.push(Target {
            name: name.to_string(),
            fd,
        });
    }

    /// Whether the gadget has socket-filter programs at all.
    pub fn has_programs(&self) -> bool {
        !self.lock().programs.is_empty()
    }

    /// The inodes of the network namespaces attached, ascending.
    pub fn netns(&self) -> Vec<u64> {
        self.lock().attached.keys().copied().collect()
    }

    /// Attaches every program of the gadget in the network namespace
    /// `netns` (an open `/proc/PID/ns/net` or `/run/netns/NAME`, whose inode
    /// is `inode`). `Ok(false)` when it is attached there already. On error
    /// nothing stays attached in that namespace; the message names the
    /// namespace and the program.
    pub fn attach(&self, inode: u64, netns: &std::fs::File) -> Result<bool, String> {
        let mut inner = self.lock();
        if inner.attached.contains_key(&inode) {
            return Ok(false);
        }
        if inner.attached.len() >= MAX_NETNS {
            return Err(too_many(inode));
        }
        let mut dispatchers = Vec::with_capacity(inner.programs.len());
        for target in &inner.programs {
            let d = Dispatcher::attach(inode, netns, &target.fd).map_err(|e| {
                format!(
                    "network namespace {inode}, socket filter `{}`: {e}",
                    target.name
                )
            })?;
            dispatchers.push(d);
        }
        inner.attached.insert(inode, dispatchers);
        Ok(true)
    }

    /// Attaches the program `name` (added before) in the network namespace
    /// `netns` (an open `/proc/PID/ns/net`; `None`: the agent's), beside
    /// whatever is attached there already: the loader does this for each
    /// program as it loads it.
    pub fn attach_one(&self, name: &str, netns: Option<&std::fs::File>) -> Result<(), String> {
        let own;
        let netns = match netns {
            Some(ns) => ns,
            None => {
                own = std::fs::File::open("/proc/self/ns/net")
                    .map_err(|e| format!("opening /proc/self/ns/net: {e}"))?;
                &own
            }
        };
        let inode = std::os::unix::fs::MetadataExt::ino(
            &netns
                .metadata()
                .map_err(|e| format!("reading the network namespace: {e}"))?,
        );
        let mut inner = self.lock();
        if !inner.attached.contains_key(&inode) && inner.attached.len() >= MAX_NETNS {
            return Err(too_many(inode));
        }
        let target = inner
            .programs
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("socket filter `{name}` was not loaded"))?;
        let d = Dispatcher::attach(inode, netns, &target.fd)
            .map_err(|e| format!("in network namespace {inode}: {e}"))?;
        inner.attached.entry(inode).or_default().push(d);
        Ok(())
    }

    /// Detaches the gadget from network namespace `inode`; false when it
    /// was not attached there.
    pub fn detach(&self, inode: u64) -> bool {
        self.lock().attached.remove(&inode).is_some()
    }
}

fn too_many(inode: u64) -> String {
    format!(
        "network namespace {inode}: this run already watches {MAX_NETNS} network namespaces, the most one run can (select fewer containers)"
    )
}

/// One of our dispatcher objects: what it is called in errors, its bytes
/// (empty when gadgetd was built without clang), the `.rodata` global that
/// holds the namespace inode and its one-slot program array.
pub(crate) struct DispatcherObject {
    pub what: &'static str,
    pub object: &'static [u8],
    pub netns_global: &'static str,
    pub target_map: &'static str,
    /// The kind of gadget program its array takes, for the error when the
    /// kernel refuses one (`a tc (`classifier`) program`).
    pub program_kind: &'static str,
}

/// Loads `d`'s maps with namespace inode `inode` in its global and the
/// gadget's program `target` in slot 0 of its program array; the caller
/// loads and attaches the dispatcher program. Errors say which step failed.
pub(crate) fn load_with_target(
    d: DispatcherObject,
    inode: u64,
    target: &ProgramFd,
) -> Result<Ebpf, String> {
    let what = d.what;
    if d.object.is_empty() {
        return Err(format!(
            "gadgetd was built without clang, so it has no {what} (install clang and rebuild gadgetd)"
        ));
    }
    // Namespace inodes are 32-bit (proc_inum); cb[0] holds 32 bits, as in
    // Inspektor Gadget's key.
    let netns_id = u32::try_from(inode)
        .map_err(|_| format!("the namespace inode {inode} does not fit skb->cb[0]"))?;
    let object = super::bare_loader::own_object(&format!("the {what}"), d.object)
        .map_err(|e| e.to_string())?;
    let mut ebpf = super::bare_loader::new()
        .override_global(d.netns_global, &netns_id, true)
        .load(&object)
        .map_err(|e| format!("loading the {what}: {}", chain(&e)))?;
    let map = ebpf
        .map_mut(d.target_map)
        .ok_or_else(|| format!("the {what} object has no program array (a broken build)"))?;
    let mut array = ProgramArray::try_from(map).map_err(|e| chain(&e))?;
    let clone = target
        .try_clone()
        .map_err(|e| format!("duplicating the program's fd: {e}"))?;
    array.set(0, &clone, 0).map_err(|e| {
        format!(
            "the {what}'s program array refused the gadget's program ({}); is it {}?",
            chain(&e),
            d.program_kind
        )
    })?;
    Ok(ebpf)
}

impl Dispatcher {
    fn attach(inode: u64, netns: &std::fs::File, target: &ProgramFd) -> Result<Dispatcher, String> {
        let mut ebpf = load_with_target(
            DispatcherObject {
                what: "dispatcher",
                object: OBJECT,
                netns_global: NETNS_GLOBAL,
                target_map: TARGET_MAP,
                program_kind: "a `socket` program",
            },
            inode,
            target,
        )?;
        let prog: &mut SocketFilter = ebpf
            .program_mut(PROGRAM)
            .ok_or("the dispatcher object has no program (a broken build)")?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| chain(&e))?;
        prog.load()
            .map_err(|e| format!("loading the dispatcher: {}", chain(&e)))?;
        let socket = super::load::packet_socket_in(netns)
            .map_err(|e| format!("opening a packet socket in it: {e}"))?;
        prog.attach(&socket)
            .map_err(|e| format!("attaching the dispatcher: {}", chain(&e)))?;
        Ok(Dispatcher {
            _socket: socket,
            _ebpf: ebpf,
        })
    }
}
