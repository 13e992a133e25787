//! `iter/bpf_map_elem` programs walk one map, named by
//! `GADGET_ITER_TARGET_MAP(prog, map)` (Inspektor Gadget's
//! `gadget_mapelem_iter_target_<prog>___<map>` marker). aya 0.14 creates
//! iterator links without a target, so this module makes the link itself:
//! `BPF_LINK_CREATE` with attach type `BPF_TRACE_ITER` and a
//! `bpf_iter_link_info` naming the map fd, then `BPF_ITER_CREATE` for the
//! readable fd. It goes away once aya can pass an iterator target.
//!
//! The kernel checks at link creation that the program reads no more of a
//! key or value than the map has (`max_rdonly_access`): that error names
//! the map.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use aya::maps::{Map, MapData};

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_ITER_CREATE: libc::c_long = 33;
const BPF_TRACE_ITER: u32 = 28;

/// `union bpf_attr` for `BPF_LINK_CREATE`, iterator form (prefix).
#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    iter_info: u64,
    iter_info_len: u32,
    _pad: u32,
}

/// `union bpf_attr` for `BPF_ITER_CREATE`.
#[repr(C)]
#[derive(Default)]
struct IterCreate {
    link_fd: u32,
    flags: u32,
}

/// `bpf(2)` returning a new fd.
fn sys_bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: attr is a #[repr(C)] prefix of union bpf_attr for `cmd`, and
    // every pointer in it refers to a live buffer of the size the kernel reads.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// The fd of a map an element iterator can walk (hash and array maps).
pub fn map_fd(map: &Map) -> Result<BorrowedFd<'_>, String> {
    let data: &MapData = match map {
        Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::PerCpuLruHashMap(d)
        | Map::Array(d)
        | Map::PerCpuArray(d) => d,
        _ => {
            return Err(
                "a map element iterator walks a hash, LRU hash or array map (per-CPU ones too)"
                    .into(),
            );
        }
    };
    Ok(data.fd().as_fd())
}

/// Runs the element iterator `prog` over `map` once and returns what it wrote.
pub fn read(prog: BorrowedFd<'_>, map: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let info: u32 = map.as_raw_fd() as u32; // bpf_iter_link_info.map.map_fd
    let mut attr = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_TRACE_ITER,
        iter_info: &info as *const u32 as u64,
        iter_info_len: size_of::<u32>() as u32,
        ..LinkCreate::default()
    };
    let link = sys_bpf_fd(BPF_LINK_CREATE, &mut attr)?;
    let mut attr = IterCreate {
        link_fd: link.as_raw_fd() as u32,
        flags: 0,
    };
    let mut file = std::fs::File::from(sys_bpf_fd(BPF_ITER_CREATE, &mut attr)?);
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

/// Runs the loaded element iterator `program` over the object's map `map`.
pub fn run(ebpf: &aya::Ebpf, program: &str, map: &str) -> Result<Vec<u8>, String> {
    let prog = ebpf
        .program(program)
        .ok_or("aya did not load this program from the object")?
        .fd()
        .map_err(|e| super::error::chain(&e))?;
    let map_ref = ebpf.map(map).ok_or_else(|| {
        format!("map `{map}` it walks was not created (or was taken by a reader)")
    })?;
    let fd = map_fd(map_ref).map_err(|e| format!("map `{map}`: {e}"))?;
    read(prog.as_fd(), fd).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EACCES) {
            " (the program reads more of a key or value than the map has)"
        } else {
            ""
        };
        format!("walking map `{map}`: {e}{hint}")
    })
}
