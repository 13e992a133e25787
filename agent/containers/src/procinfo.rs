//! What /proc says about a container's init process.

use std::net::IpAddr;

/// Namespace inodes of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces {
    pub mnt: u64,
    pub net: u64,
}

/// The inode of `/proc/<pid>/ns/<kind>` (the link reads `mnt:[4026532177]`).
pub fn ns_inode(pid: u32, kind: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    parse_ns_link(&link.to_string_lossy())
}

fn parse_ns_link(s: &str) -> Option<u64> {
    let start = s.find('[')? + 1;
    let end = s.rfind(']')?;
    s.get(start..end)?.parse().ok()
}

pub fn namespaces(pid: u32) -> Option<Namespaces> {
    if pid == 0 {
        return None;
    }
    Some(Namespaces {
        mnt: ns_inode(pid, "mnt")?,
        net: ns_inode(pid, "net")?,
    })
}

/// The cgroup v2 path of a process, else its first v1 hierarchy's path.
pub fn cgroup(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    pick_cgroup(&text)
}

fn pick_cgroup(text: &str) -> Option<String> {
    let mut first = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(_ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" {
            return Some(path.to_string());
        }
        first.get_or_insert_with(|| path.to_string());
    }
    first
}

/// The host's mount namespace: the one PID 1 lives in, else (when PID 1's
/// namespaces cannot be read, as in some sandboxes) the agent's own.
pub fn host_mntns() -> Option<u64> {
    ns_inode(1, "mnt").or_else(|| ns_inode(std::process::id(), "mnt"))
}

/// The host's network namespace, found like [`host_mntns`].
pub fn host_netns() -> Option<u64> {
    ns_inode(1, "net").or_else(|| ns_inode(std::process::id(), "net"))
}

/// The addresses of the network namespace process `pid` is in, loopback
/// left out: IPv4 from `/proc/PID/net/fib_trie` (its `/32 host LOCAL`
/// entries), IPv6 from `/proc/PID/net/if_inet6` (global scope). Empty when
/// the process is gone.
pub fn addresses(pid: u32) -> Vec<IpAddr> {
    let read =
        |f: &str| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).unwrap_or_default();
    let mut out = local_v4(&read("fib_trie"));
    out.extend(global_v6(&read("if_inet6")));
    out
}

/// The host's addresses: those of PID 1's network namespace, else the agent's.
pub fn host_addresses() -> Vec<IpAddr> {
    let pid = if ns_inode(1, "net").is_some() {
        1
    } else {
        std::process::id()
    };
    addresses(pid)
}

fn local_v4(fib_trie: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<std::net::Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start();
        if let Some(ip) = t.strip_prefix("|-- ") {
            last = ip.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !ip.is_loopback()
            && !out.contains(&IpAddr::V4(ip))
        {
            out.push(IpAddr::V4(ip));
        }
    }
    out
}

fn global_v6(if_inet6: &str) -> Vec<IpAddr> {
    if_inet6
        .lines()
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let hex = cols.next()?;
            let scope = cols.nth(2)?;
            if scope != "00" || hex.len() != 32 {
                return None;
            }
            let v = u128::from_str_radix(hex, 16).ok()?;
            let ip = std::net::Ipv6Addr::from(v);
            (!ip.is_loopback()).then_some(IpAddr::V6(ip))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_local_addresses() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     |-- 10.213.7.2\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 10.213.7.255\n        /32 link BROADCAST\nLocal:\n     |-- 10.213.7.2\n        /32 host LOCAL\n";
        assert_eq!(local_v4(trie), [IpAddr::from([10, 213, 7, 2])]);
        let v6 = "00000000000000000000000000000001 01 80 10 80       lo\n\
                  fe800000000000000000000000000001 02 40 20 80     eth0\n\
                  20010db8000000000000000000000002 02 40 00 80     eth0\n";
        assert_eq!(global_v6(v6), ["2001:db8::2".parse::<IpAddr>().unwrap()]);
        assert!(local_v4("garbage\n|-- not-an-ip\n/32 host LOCAL").is_empty());
        assert!(
            addresses(u32::MAX).is_empty(),
            "no such process: no addresses"
        );
    }

    #[test]
    fn parses_namespace_links_and_cgroups() {
        assert_eq!(parse_ns_link("mnt:[4026532177]"), Some(4026532177));
        assert_eq!(parse_ns_link("mnt:"), None);
        let v1 = "12:pids:/docker/abc\n11:cpu,cpuacct:/docker/abc\n0::/system.slice/x\n";
        assert_eq!(pick_cgroup(v1).as_deref(), Some("/system.slice/x"));
        assert_eq!(
            pick_cgroup("3:memory:/a\n2:pids:/b\n").as_deref(),
            Some("/a")
        );
        let me = std::process::id();
        assert_eq!(namespaces(me).unwrap().mnt, ns_inode(me, "mnt").unwrap());
        assert!(host_mntns().is_some());
    }
}
