//! What /proc says about a container's init process.

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

#[cfg(test)]
mod tests {
    use super::*;

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
