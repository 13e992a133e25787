//! Attach targets a user names, checked before anything is loaded: the
//! interface tc programs attach on (`--iface`) and the cgroup cgroup
//! programs attach on (`--cgroup`). Both come from callers the agent does
//! not trust, so a name is checked for shape here and for existence when
//! the program attaches; messages quote them escaped, never raw.

use std::path::{Path, PathBuf};

/// Checks an interface name's shape (Linux's rules: 1 to 15 bytes, no `/`,
/// no whitespace, no `:` alias suffix, not `.` or `..`).
pub fn check_iface(name: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "interface name `{}` {why}; `ip link` lists the host's interfaces",
            name.escape_debug()
        ))
    };
    if name.is_empty() || name.len() > 15 {
        return bad("must be 1 to 15 bytes long");
    }
    if name == "." || name == ".." {
        return bad("is not an interface name");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("may not contain `/`, `:`, whitespace or control characters");
    }
    Ok(())
}

/// The cgroup2 directory `spec` names: a path inside the cgroup2 hierarchy,
/// either relative to its root (`system.slice/x.service`, as
/// `/proc/PID/cgroup` shows it, with or without the leading `/`) or absolute
/// under the mount (`/sys/fs/cgroup/system.slice/x.service`). It must exist
/// and, with symlinks and `..` resolved, stay inside the hierarchy.
pub fn cgroup_dir(spec: &str) -> Result<PathBuf, String> {
    let root = super::load::cgroup2_root()
        .ok_or("cgroup programs need cgroup v2, and no cgroup2 file system is mounted")?;
    cgroup_dir_in(&root, spec)
}

fn cgroup_dir_in(root: &Path, spec: &str) -> Result<PathBuf, String> {
    let shown = spec.escape_debug();
    if spec.is_empty() || spec.contains('\0') {
        return Err("the cgroup path is empty; name a cgroup2 directory".into());
    }
    let path = Path::new(spec);
    let full = if path.starts_with(root) {
        path.to_path_buf()
    } else {
        root.join(spec.trim_start_matches('/'))
    };
    let real = full.canonicalize().map_err(|e| {
        format!(
            "cgroup `{shown}`: {} ({e}); name a directory of the cgroup2 hierarchy, relative to {} or under it",
            full.display().to_string().escape_debug(),
            root.display()
        )
    })?;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if !real.starts_with(&root) {
        return Err(format!(
            "cgroup `{shown}` resolves to {}, outside the cgroup2 hierarchy at {}",
            real.display().to_string().escape_debug(),
            root.display()
        ));
    }
    if !real.join("cgroup.procs").exists() {
        return Err(format!(
            "cgroup `{shown}` ({}) is not a cgroup2 directory (no cgroup.procs)",
            real.display().to_string().escape_debug()
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernels_rules() {
        for ok in [
            "lo",
            "eth0",
            "veth1a2b3c4d",
            "gd-test_0.1",
            "x234567890abcde",
        ] {
            assert_eq!(check_iface(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "x234567890abcdef",
            ".",
            "..",
            "a/b",
            "eth0:1",
            "a b",
            "a\u{1b}[2J",
        ] {
            assert!(check_iface(bad).is_err(), "{bad:?}");
        }
        assert!(
            check_iface("a\u{1b}[2J")
                .unwrap_err()
                .contains("a\\u{1b}[2J")
        );
    }

    #[test]
    fn cgroup_paths_resolve_inside_the_hierarchy_only() {
        let base = std::env::temp_dir().join(format!("gadgetd-cg-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/cgroup.procs"), "").unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/cgroup.procs"), "").unwrap();
        let want = root.join("a/b").canonicalize().unwrap();
        assert_eq!(cgroup_dir_in(&root, "a/b").unwrap(), want);
        assert_eq!(cgroup_dir_in(&root, "/a/b").unwrap(), want);
        assert_eq!(
            cgroup_dir_in(&root, root.join("a/b").to_str().unwrap()).unwrap(),
            want
        );
        let escape = cgroup_dir_in(&root, "../outside").unwrap_err();
        assert!(escape.contains("outside the cgroup2 hierarchy"), "{escape}");
        let missing = cgroup_dir_in(&root, "nope").unwrap_err();
        assert!(missing.starts_with("cgroup `nope`: "), "{missing}");
        let not_cg = cgroup_dir_in(&root, "a").unwrap_err();
        assert!(not_cg.contains("not a cgroup2 directory"), "{not_cg}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
