//! The two route-netlink requests tc attachment needs and aya 0.14 does not
//! expose: listing the links of the calling thread's network namespace
//! (`RTM_GETLINK` dump: name, index, peer index and peer namespace of
//! veths), and deleting a `clsact` qdisc (`RTM_DELQDISC`).
//!
//! Hand-written on `libc` (a few fixed-size headers and attributes) rather
//! than a netlink crate: two requests do not justify a dependency tree.
//! Messages are native-endian, as route netlink is.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDR: usize = 16;
const IFINFOMSG: usize = 16;
const TCMSG: usize = 20;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_DELQDISC: u16 = 37;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_LINK_NETNSID: u16 = 37;
const TCA_KIND: u16 = 1;
/// `TC_H_CLSACT`: the clsact qdisc's parent; its handle is `ffff:0`.
const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
const CLSACT_HANDLE: u32 = 0xFFFF_0000;

/// One network interface of a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index in its namespace.
    pub index: u32,
    /// Interface name (`eth0`).
    pub name: String,
    /// `IFLA_INFO_KIND` (`veth`, `bridge`, ...), if the driver says.
    pub kind: Option<String>,
    /// `IFLA_LINK`: the peer's index (a veth's other end), if any.
    pub peer_index: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when the peer is in another namespace.
    pub peer_netnsid: Option<i32>,
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn header(len: usize, ty: u16, flags: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    m
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

/// Sends `req` and calls `each(type, payload)` for every reply message
/// until `NLMSG_DONE` (dumps) or the acknowledgement (`NLM_F_ACK`).
fn request(req: &[u8], mut each: impl FnMut(u16, &[u8])) -> io::Result<()> {
    let sock = socket()?;
    // SAFETY: send(2) of a buffer we own.
    let n = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: recv(2) into a buffer we own, at most its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let data = &buf[..n as usize];
        let mut at = 0;
        while at + NLMSG_HDR <= data.len() {
            let len = u32_at(data, at) as usize;
            if len < NLMSG_HDR || at + len > data.len() {
                return Err(io::Error::other("malformed netlink reply"));
            }
            let ty = u16_at(data, at + 4);
            let payload = &data[at + NLMSG_HDR..at + len];
            match ty {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes(payload[..4].try_into().unwrap());
                    // 0: the acknowledgement.
                    return match errno {
                        0 => Ok(()),
                        e => Err(io::Error::from_raw_os_error(-e)),
                    };
                }
                _ => each(ty, payload),
            }
            at += len.next_multiple_of(4);
        }
    }
}

/// Route attributes from `at` to the end of `b`: `(type, value)`.
fn attrs(b: &[u8], mut at: usize) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if at + 4 > b.len() {
            return None;
        }
        let len = u16_at(b, at) as usize;
        if len < 4 || at + len > b.len() {
            return None;
        }
        let item = (u16_at(b, at + 2) & 0x3fff, &b[at + 4..at + len]);
        at += len.next_multiple_of(4);
        Some(item)
    })
}

fn c_string(v: &[u8]) -> String {
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// The interfaces of the calling thread's network namespace.
pub fn links() -> io::Result<Vec<Link>> {
    let mut req = header(
        NLMSG_HDR + IFINFOMSG,
        RTM_GETLINK,
        NLM_F_REQUEST | NLM_F_DUMP,
    );
    req.resize(NLMSG_HDR + IFINFOMSG, 0); // ifinfomsg: AF_UNSPEC, every index
    let mut out = Vec::new();
    request(&req, |ty, p| {
        if ty != RTM_NEWLINK || p.len() < IFINFOMSG {
            return;
        }
        let mut link = Link {
            index: u32_at(p, 4),
            name: String::new(),
            kind: None,
            peer_index: None,
            peer_netnsid: None,
        };
        for (t, v) in attrs(p, IFINFOMSG) {
            match t {
                IFLA_IFNAME => link.name = c_string(v),
                IFLA_LINK if v.len() >= 4 => link.peer_index = Some(u32_at(v, 0)),
                IFLA_LINK_NETNSID if v.len() >= 4 => link.peer_netnsid = Some(u32_at(v, 0) as i32),
                IFLA_LINKINFO => {
                    link.kind = attrs(v, 0)
                        .find(|(t, _)| *t == IFLA_INFO_KIND)
                        .map(|(_, k)| c_string(k));
                }
                _ => {}
            }
        }
        out.push(link);
    })?;
    Ok(out)
}

/// Deletes the `clsact` qdisc of interface `ifindex` (and with it every tc
/// filter on it) in the calling thread's namespace.
pub fn delete_clsact(ifindex: u32) -> io::Result<()> {
    let kind = b"clsact\0";
    let attr_len = 4 + kind.len();
    let len = NLMSG_HDR + TCMSG + attr_len.next_multiple_of(4);
    let mut req = header(len, RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK);
    req.extend_from_slice(&[0u8; 4]); // family AF_UNSPEC, padding
    req.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    req.extend_from_slice(&CLSACT_HANDLE.to_ne_bytes());
    req.extend_from_slice(&TC_H_CLSACT.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes()); // info
    req.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    req.extend_from_slice(&TCA_KIND.to_ne_bytes());
    req.extend_from_slice(kind);
    req.resize(len, 0);
    request(&req, |_, _| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_walked_with_their_padding() {
        // IFLA_IFNAME "lo\0" (len 7, padded to 8), then IFLA_LINK 3.
        let mut b = vec![7, 0, 3, 0, b'l', b'o', 0, 0];
        b.extend_from_slice(&[8, 0, 5, 0]);
        b.extend_from_slice(&3u32.to_ne_bytes());
        let got: Vec<_> = attrs(&b, 0).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(
            got,
            [
                (IFLA_IFNAME, b"lo\0".to_vec()),
                (IFLA_LINK, 3u32.to_ne_bytes().to_vec())
            ]
        );
        // A truncated attribute ends the walk instead of reading past the end.
        assert_eq!(attrs(&[9, 0, 3, 0, 1], 0).count(), 0);
    }
}
