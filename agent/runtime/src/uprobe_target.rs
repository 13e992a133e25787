//! The location part of a `uprobe/<target>:<location>` section, as users
//! write it (libbpf's forms):
//!
//! | location | meaning |
//! |---|---|
//! | `readline` | a symbol |
//! | `malloc@@GLIBC_2.2.5`, `getgid@GLIBC_2.2.5` | a versioned symbol: the version is dropped, the name resolved |
//! | `readline+16`, `readline+0x10` | a symbol plus a byte offset |
//! | `0x1234`, `4660` | an offset in the file |
//!
//! The target is a full path, or a bare library name or soname (`libc`,
//! `libc.so.6`) resolved through `/etc/ld.so.cache` ([`resolve_library`]:
//! aya 0.14's own lookup misses sonames).

use std::path::{Path, PathBuf};

const LD_SO_CACHE: &str = "/etc/ld.so.cache";
const CACHE_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";

/// Resolves a uprobe target: a path (containing `/`) as it is; a soname
/// (`libc.so.6`) or bare library name (`libc`, `libc.so`) through
/// `/etc/ld.so.cache`, exact soname first. `None` when the cache has no
/// such library (or cannot be read).
pub fn resolve_library(target: &str) -> Option<std::path::PathBuf> {
    if target.contains('/') {
        return Some(target.into());
    }
    let cache = std::fs::read(LD_SO_CACHE).ok()?;
    resolve_in_cache(&cache, target).map(Into::into)
}

/// Like [`resolve_library`], inside the root file system `root` (a
/// container's, as `/proc/PID/root` shows it): its own `/etc/ld.so.cache`,
/// and symlinks followed within `root` (an absolute link target is taken
/// relative to `root`, as the container's processes see it, not the host's).
/// The result is a path through `root` the agent can open; `None` when the
/// library is not there.
pub fn resolve_library_in(root: &Path, target: &str) -> Option<PathBuf> {
    let inside = if target.contains('/') {
        target.to_string()
    } else {
        let cache = std::fs::read(root.join(LD_SO_CACHE.trim_start_matches('/'))).ok()?;
        resolve_in_cache(&cache, target)?
    };
    let path = follow_in_root(root, Path::new(&inside))?;
    path.is_file().then_some(path)
}

/// `path` (as seen inside `root`) with every symlink resolved within
/// `root`; `..` never climbs above it. At most 40 links, as the kernel.
fn follow_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut done = PathBuf::new(); // relative to root, no links
    let mut todo: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let next = done.join(&part);
        match std::fs::read_link(root.join(&next)) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return None;
                }
                if target.is_absolute() {
                    done = PathBuf::new();
                }
                todo.extend(target.components().rev().filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_os_string()),
                    Component::ParentDir => Some("..".into()),
                    _ => None,
                }));
            }
            Err(_) => done = next,
        }
    }
    Some(root.join(done))
}

/// [`resolve_library`] over the bytes of an ld.so.cache (the glibc
/// `glibc-ld.so.cache1.1` format: 48-byte header, 24-byte entries whose
/// key/value are string offsets from the header).
fn resolve_in_cache(cache: &[u8], name: &str) -> Option<String> {
    let base = cache
        .windows(CACHE_MAGIC.len())
        .position(|w| w == CACHE_MAGIC)?;
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(cache.get(at..at + 4)?.try_into().ok()?))
    };
    let string = |off: u32| -> Option<&str> {
        let rest = cache.get(base + off as usize..)?;
        std::str::from_utf8(&rest[..rest.iter().position(|&b| b == 0)?]).ok()
    };
    let count = u32_at(base + 20)? as usize;
    let bare = name.strip_suffix(".so").unwrap_or(name);
    let mut prefix_match = None;
    for i in 0..count.min(1 << 20) {
        let entry = base + 48 + 24 * i;
        let (Some(key), Some(value)) = (string(u32_at(entry + 4)?), string(u32_at(entry + 8)?))
        else {
            continue;
        };
        if key == name {
            return Some(value.to_string());
        }
        if prefix_match.is_none() && key.strip_prefix(bare).is_some_and(|r| r.starts_with(".so")) {
            prefix_match = Some(value.to_string());
        }
    }
    prefix_match
}

/// A parsed location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location<'s> {
    /// `offset` bytes past the start of `name`.
    Symbol { name: &'s str, offset: u64 },
    /// An offset from the start of the file.
    FileOffset(u64),
}

fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Parses a location; the error says which forms are accepted.
pub fn parse(location: &str) -> Result<Location<'_>, String> {
    let bad = || {
        format!(
            "uprobe location `{location}`: expected a symbol (`readline`), a versioned symbol (`malloc@@GLIBC_2.2.5`), a symbol plus offset (`readline+0x10`) or a file offset (`0x1234`)"
        )
    };
    if location.starts_with(|c: char| c.is_ascii_digit()) {
        return number(location).map(Location::FileOffset).ok_or_else(bad);
    }
    let (symbol, offset) = match location.split_once('+') {
        Some((s, off)) => (s, number(off).ok_or_else(bad)?),
        None => (location, 0),
    };
    let name = symbol.split('@').next().unwrap_or("");
    if name.is_empty() {
        return Err(bad());
    }
    Ok(Location::Symbol { name, offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_users_write_parses() {
        let sym = |name, offset| Location::Symbol { name, offset };
        assert_eq!(parse("readline"), Ok(sym("readline", 0)));
        assert_eq!(parse("malloc@@GLIBC_2.2.5"), Ok(sym("malloc", 0)));
        assert_eq!(parse("getgid@GLIBC_2.2.5"), Ok(sym("getgid", 0)));
        assert_eq!(parse("readline+16"), Ok(sym("readline", 16)));
        assert_eq!(parse("readline+0x10"), Ok(sym("readline", 16)));
        assert_eq!(parse("0x1234"), Ok(Location::FileOffset(0x1234)));
        assert_eq!(parse("4660"), Ok(Location::FileOffset(4660)));
        for bad in ["", "@@GLIBC", "f+x", "0xzz"] {
            assert!(
                parse(bad).unwrap_err().contains("expected a symbol"),
                "{bad}"
            );
        }
    }

    /// A cache with two entries, built as ldconfig writes it.
    fn cache(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut offs = Vec::new();
        let table = 48 + 24 * entries.len();
        for (k, v) in entries {
            offs.push((table + strings.len(), 0));
            strings.extend_from_slice(k.as_bytes());
            strings.push(0);
            offs.last_mut().unwrap().1 = table + strings.len();
            strings.extend_from_slice(v.as_bytes());
            strings.push(0);
        }
        let mut out = CACHE_MAGIC.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.resize(48, 0);
        for (k, v) in offs {
            out.extend_from_slice(&0x303u32.to_le_bytes());
            out.extend_from_slice(&(k as u32).to_le_bytes());
            out.extend_from_slice(&(v as u32).to_le_bytes());
            out.resize(out.len() + 12, 0);
        }
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn links_inside_a_root_resolve_within_it() {
        let root = std::env::temp_dir().join(format!("gadgetd-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("usr/lib/x86_64-linux-gnu/libc-2.99.so"), b"x").unwrap();
        // Absolute and relative links, as distributions ship them.
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink(
            "/usr/lib/x86_64-linux-gnu/libc-2.99.so",
            root.join("usr/lib/x86_64-linux-gnu/libc.so.6"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/../../../etc", root.join("escape")).unwrap();
        std::fs::write(
            root.join("etc/ld.so.cache"),
            cache(&[("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")]),
        )
        .unwrap();
        let real = root.join("usr/lib/x86_64-linux-gnu/libc-2.99.so");
        assert_eq!(resolve_library_in(&root, "libc"), Some(real.clone()));
        assert_eq!(
            resolve_library_in(&root, "/lib/x86_64-linux-gnu/libc.so.6"),
            Some(real)
        );
        // `..` and absolute links stay inside the root.
        assert_eq!(
            follow_in_root(&root, Path::new("/escape/ld.so.cache")),
            Some(root.join("etc/ld.so.cache"))
        );
        assert_eq!(resolve_library_in(&root, "libnope"), None);
        assert_eq!(resolve_library_in(&root, "/usr/lib/nope.so"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn sonames_and_bare_names_resolve_through_the_cache() {
        let c = cache(&[
            ("libcrypt.so.1", "/lib/x86_64-linux-gnu/libcrypt.so.1"),
            ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
        ]);
        let libc = Some("/lib/x86_64-linux-gnu/libc.so.6".to_string());
        assert_eq!(resolve_in_cache(&c, "libc.so.6"), libc);
        assert_eq!(resolve_in_cache(&c, "libc"), libc);
        assert_eq!(resolve_in_cache(&c, "libc.so"), libc);
        assert_eq!(resolve_in_cache(&c, "libnope"), None);
        assert_eq!(resolve_in_cache(b"garbage", "libc"), None);
    }
}
