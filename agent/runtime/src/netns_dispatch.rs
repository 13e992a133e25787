//! Inspektor Gadget's networking gadgets read their network namespace from
//! `skb->cb[0]`, which IG's dispatcher program sets before it tail-calls
//! them (`gadget_socket_lookup()` in `<gadget/sockets-map.h>` keys the
//! socket enricher's map with it, and IG's `trace_dns` reports it as
//! `netns_id`). gadgetd does the same: a socket filter is attached through a
//! four-instruction dispatcher that stores the namespace's inode in
//! `cb[0]` and tail-calls the gadget's program from a one-slot program
//! array. The socket holds the dispatcher, which holds the array, which
//! holds the gadget's program, so nothing here outlives the socket.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
/// `offsetof(struct __sk_buff, cb[0])`.
const SKB_CB0: i16 = 48;
const BPF_FUNC_TAIL_CALL: i32 = 12;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a zeroed, 128-byte `union bpf_attr` for `cmd`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

fn fd_of(r: libc::c_long) -> OwnedFd {
    // SAFETY: the bpf(2) call returned a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// A socket-filter program that sets `cb[0] = netns` and tail-calls `prog`.
/// Errors name the bpf(2) step that failed.
pub fn dispatcher(prog: BorrowedFd<'_>, netns: u32) -> Result<OwnedFd, String> {
    // The program array: key and value 4 bytes, one slot.
    let mut attr = [0u64; 16];
    attr[0] = BPF_MAP_TYPE_PROG_ARRAY as u64 | (4u64 << 32);
    attr[1] = 4 | (1u64 << 32);
    let array = fd_of(
        bpf(BPF_MAP_CREATE, &mut attr)
            .map_err(|e| format!("creating the dispatcher's program array: {e}"))?,
    );
    let key: u32 = 0;
    let value: u32 = prog.as_raw_fd() as u32;
    let mut attr = [0u64; 16];
    attr[0] = array.as_raw_fd() as u64;
    attr[1] = &key as *const u32 as u64;
    attr[2] = &value as *const u32 as u64;
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
        .map_err(|e| format!("putting the gadget's program in the dispatcher's array: {e}"))?;
    let fd = array.as_raw_fd();
    let insns = [
        // r2 = netns; *(u32 *)(r1 + cb[0]) = r2
        insn(0xb4, 2, 0, 0, netns as i32),
        insn(0x63, 1, 2, SKB_CB0, 0),
        // r2 = the program array (ld_imm64, map fd)
        insn(0x18, 2, BPF_PSEUDO_MAP_FD, 0, fd),
        insn(0, 0, 0, 0, 0),
        // r3 = 0; tail_call(r1, r2, r3); return 0
        insn(0xb7, 3, 0, 0, 0),
        insn(0x85, 0, 0, 0, BPF_FUNC_TAIL_CALL),
        insn(0xb7, 0, 0, 0, 0),
        insn(0x95, 0, 0, 0, 0),
    ];
    let license = c"GPL";
    let mut attr = [0u64; 16];
    attr[0] = BPF_PROG_TYPE_SOCKET_FILTER as u64 | ((insns.len() as u64) << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    let prog =
        fd_of(bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| format!("loading the dispatcher: {e}"))?);
    // The program holds the array now.
    drop(array);
    Ok(prog)
}

/// Attaches `prog` (a socket filter's fd) to `sock` (`SO_ATTACH_BPF`).
pub fn attach(sock: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> std::io::Result<()> {
    let fd: libc::c_int = prog.as_raw_fd();
    // SAFETY: plain setsockopt(2) with an int option value.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_BPF,
            &fd as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Attaches `prog` to `sock` through a dispatcher for the namespace of
/// `netns` (a `/proc/PID/ns/net` file; the calling thread's when `None`).
pub fn attach_for(
    sock: &OwnedFd,
    prog: BorrowedFd<'_>,
    netns: Option<&std::fs::File>,
) -> Result<(), String> {
    use std::os::fd::AsFd;
    let ino = match netns {
        Some(f) => inode(f.as_fd()),
        None => std::fs::File::open("/proc/thread-self/ns/net").and_then(|f| inode(f.as_fd())),
    }
    .map_err(|e| format!("reading the network namespace's inode: {e}"))?;
    let dispatcher = dispatcher(prog, ino)?;
    attach(sock.as_fd(), dispatcher.as_fd()).map_err(|e| format!("attaching the dispatcher: {e}"))
}

/// The inode of a network namespace file (`/proc/PID/ns/net`), which is what
/// gadgets report as `netns_id`.
pub fn inode(ns: BorrowedFd<'_>) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::File::from(ns.try_clone_to_owned()?);
    Ok(f.metadata()?.ino() as u32)
}
