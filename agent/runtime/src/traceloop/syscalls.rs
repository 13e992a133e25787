//! Syscall names, numbers and parameter declarations for traceloop, and the
//! length rules the BPF side follows when it copies what a pointer argument
//! points to (Inspektor Gadget's table, same encoding).
//!
//! Numbers and names come from the running architecture's table
//! ([`crate::name_tables::Arch`]); each syscall's parameters (names, and
//! whether each is a pointer) from tracefs,
//! `events/syscalls/sys_enter_<name>/format`, as IG reads them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{GadgetError, Result};
use crate::name_tables::Arch;

/// Copy the argument as a NUL-terminated string.
pub const USE_NULL_BYTE_LENGTH: u64 = 0x0fff_ffff_ffff_ffff;
/// Copy as many bytes as the syscall returned (at exit).
pub const USE_RET_AS_PARAM_LENGTH: u64 = 0x0fff_ffff_ffff_fffe;
/// Copy as many bytes as argument `N` says (`+ N`).
pub const USE_ARG_INDEX_AS_PARAM_LENGTH: u64 = 0x0fff_ffff_ffff_fff0;
/// Set: copy at the syscall's exit rather than its entry.
pub const PARAM_PROBE_AT_EXIT_MASK: u64 = 0xf000_0000_0000_0000;

const NUL: u64 = USE_NULL_BYTE_LENGTH;
const RET_AT_EXIT: u64 = USE_RET_AS_PARAM_LENGTH | PARAM_PROBE_AT_EXIT_MASK;
const ARG2: u64 = USE_ARG_INDEX_AS_PARAM_LENGTH + 2;

/// For each syscall whose arguments point at something worth copying, the
/// rule per argument (0: copy nothing). The others copy nothing.
pub const RULES: &[(&str, [u64; 6])] = &[
    ("execve", [NUL, 0, 0, 0, 0, 0]),
    ("access", [NUL, 0, 0, 0, 0, 0]),
    ("open", [NUL, 0, 0, 0, 0, 0]),
    ("openat", [0, NUL, 0, 0, 0, 0]),
    ("mkdir", [NUL, 0, 0, 0, 0, 0]),
    ("chdir", [NUL, 0, 0, 0, 0, 0]),
    ("pivot_root", [NUL, NUL, 0, 0, 0, 0]),
    ("mount", [NUL, NUL, NUL, 0, 0, 0]),
    ("umount2", [NUL, 0, 0, 0, 0, 0]),
    ("sethostname", [NUL, 0, 0, 0, 0, 0]),
    ("statfs", [NUL, 0, 0, 0, 0, 0]),
    ("stat", [NUL, 0, 0, 0, 0, 0]),
    ("statx", [0, NUL, 0, 0, 0, 0]),
    ("lstat", [NUL, 0, 0, 0, 0, 0]),
    ("fgetxattr", [0, NUL, 0, 0, 0, 0]),
    ("lgetxattr", [NUL, NUL, 0, 0, 0, 0]),
    ("getxattr", [NUL, NUL, 0, 0, 0, 0]),
    ("newfstatat", [0, NUL, 0, 0, 0, 0]),
    ("read", [0, RET_AT_EXIT, 0, 0, 0, 0]),
    ("write", [0, ARG2, 0, 0, 0, 0]),
    ("getcwd", [NUL | PARAM_PROBE_AT_EXIT_MASK, 0, 0, 0, 0, 0]),
    ("pread64", [0, RET_AT_EXIT, 0, 0, 0, 0]),
    ("connect", [0, ARG2, 0, 0, 0, 0]),
];

/// The most syscalls `--syscall-filters` takes (the `syscall_filters` map's size).
pub const MAX_FILTERS: usize = 16;

/// One declared parameter of a syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub pointer: bool,
}

/// A syscall's parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Declaration {
    pub params: Vec<Param>,
}

/// Where tracefs is usually mounted.
pub const TRACEFS_ROOTS: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Names and declarations of this host's syscalls (declarations read from
/// tracefs on first use, then kept).
pub struct SyscallTable {
    arch: Arch,
    /// `<tracefs>/events/syscalls`.
    dir: PathBuf,
    cache: Mutex<HashMap<String, Option<Arc<Declaration>>>>,
}

impl SyscallTable {
    /// The first of `roots` that has `events/syscalls`. Errors: none has
    /// (tracefs not mounted, or a kernel without syscall tracepoints), or
    /// an architecture without a syscall table.
    pub fn open(roots: &[&Path]) -> Result<SyscallTable> {
        let arch = Arch::host().ok_or_else(|| {
            GadgetError::Load(
                "traceloop: no syscall table for this architecture (x86_64 and aarch64 have one)"
                    .into(),
            )
        })?;
        let dir = roots
            .iter()
            .map(|r| r.join("events/syscalls"))
            .find(|d| d.join("sys_enter_openat/format").is_file() || d.join("sys_enter_read/format").is_file())
            .ok_or_else(|| {
                GadgetError::Load(format!(
                    "traceloop: tracefs has no syscall events ({} missing); mount it (`mount -t tracefs nodev /sys/kernel/tracing`) on a kernel with CONFIG_FTRACE_SYSCALLS",
                    roots
                        .iter()
                        .map(|r| format!("{}/events/syscalls", r.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        Ok(SyscallTable {
            arch,
            dir,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The host's tracefs ([`TRACEFS_ROOTS`]).
    pub fn host() -> Result<SyscallTable> {
        let roots: Vec<&Path> = TRACEFS_ROOTS.iter().map(Path::new).collect();
        SyscallTable::open(&roots)
    }

    /// The name of syscall `nr`; `syscall_N` for a number with none.
    pub fn name(&self, nr: u64) -> String {
        match self.arch.syscall_name(nr) {
            Some(n) => n.to_string(),
            None => format!("syscall_{nr}"),
        }
    }

    /// The number of syscall `name` on this architecture.
    pub fn number(&self, name: &str) -> Option<u32> {
        self.arch.syscall_number(name)
    }

    /// The parameters of syscall `name`; `None` when tracefs does not
    /// describe it.
    pub fn declaration(&self, name: &str) -> Option<Arc<Declaration>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(name.to_string())
            .or_insert_with(|| {
                let path = self.dir.join(format!("sys_enter_{name}/format"));
                std::fs::read_to_string(path)
                    .ok()
                    .map(|f| Arc::new(parse_format(&f)))
            })
            .clone()
    }

    /// Each rule of [`RULES`] by syscall number; syscalls this architecture
    /// lacks (`open` on aarch64) are left out.
    pub fn rules(&self) -> Vec<(u64, [u64; 6])> {
        RULES
            .iter()
            .filter_map(|(name, rule)| self.number(name).map(|n| (n as u64, *rule)))
            .collect()
    }

    /// The numbers of `names` (comma-separated, as `--syscall-filters`
    /// takes them). Errors: an unknown name, or more than [`MAX_FILTERS`].
    pub fn filters(&self, names: &str) -> Result<Vec<u64>> {
        let names: Vec<&str> = names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let bad = |reason: String| GadgetError::Param {
            name: super::FILTER_PARAM.into(),
            reason,
        };
        if names.len() > MAX_FILTERS {
            return Err(bad(format!(
                "{} syscalls given; at most {MAX_FILTERS} can be filtered",
                names.len()
            )));
        }
        names
            .iter()
            .map(|n| {
                self.number(n).map(u64::from).ok_or_else(|| {
                    bad(format!(
                        "syscall `{}` does not exist on this architecture; name syscalls as `man 2 syscalls` lists them, e.g. openat,write",
                        n.escape_debug()
                    ))
                })
            })
            .collect()
    }
}

/// The parameters of a tracefs `format` file: the `field:` lines after
/// `__syscall_nr`, each `TYPE NAME`, a pointer when the type has a `*`.
fn parse_format(format: &str) -> Declaration {
    let mut params = Vec::new();
    let mut after_nr = false;
    for line in format.lines() {
        let Some(rest) = line.trim().strip_prefix("field:") else {
            continue;
        };
        let decl = rest.split(';').next().unwrap_or("").trim();
        let name = decl
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap_or("");
        if name == "__syscall_nr" {
            after_nr = true;
            continue;
        }
        if after_nr && !name.is_empty() {
            params.push(Param {
                name: name.to_string(),
                pointer: decl.contains('*'),
            });
        }
    }
    Declaration { params }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAT: &str = "name: sys_enter_openat\nID: 782\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;\n\nprint fmt: \"dfd: 0x%08lx\"\n";

    #[test]
    fn declarations_from_format_files() {
        let d = parse_format(OPENAT);
        let got: Vec<(&str, bool)> = d
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.pointer))
            .collect();
        assert_eq!(
            got,
            [
                ("dfd", false),
                ("filename", true),
                ("flags", false),
                ("mode", false)
            ]
        );
        let d = parse_format(
            "\tfield:int __syscall_nr;\toffset:8;\n\tfield:struct sockaddr *uservaddr;\toffset:24;\n",
        );
        assert_eq!(
            d.params,
            [Param {
                name: "uservaddr".into(),
                pointer: true
            }]
        );
    }

    #[test]
    fn missing_tracefs_is_named() {
        let err = SyscallTable::open(&[Path::new("/nonexistent-tracefs")])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("/nonexistent-tracefs/events/syscalls"),
            "{err}"
        );
        assert!(err.contains("mount -t tracefs"), "{err}");
    }

    #[test]
    fn rules_and_filters_by_number() {
        let Ok(t) = SyscallTable::host() else {
            eprintln!("skipped: no tracefs on this host");
            return;
        };
        let read = t.number("read").unwrap() as u64;
        let rules = t.rules();
        let rule = rules.iter().find(|(n, _)| *n == read).unwrap().1;
        assert_eq!(rule[1], 0xfffffffffffffffe);
        let write = t.number("write").unwrap() as u64;
        assert_eq!(t.filters("read, write").unwrap(), [read, write]);
        let e = t.filters("read,frobnicate").unwrap_err().to_string();
        assert!(e.contains("`frobnicate` does not exist"), "{e}");
        let many = vec!["read"; 17].join(",");
        let e = t.filters(&many).unwrap_err().to_string();
        assert!(e.contains("17 syscalls given; at most 16"), "{e}");
        assert_eq!(t.declaration("write").unwrap().params.len(), 3);
    }
}
