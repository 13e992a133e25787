//! Inspektor Gadget's traceloop records (`struct syscall_event_t` and
//! `struct syscall_event_cont_t`, both 160 bytes) read back from a
//! namespace's buffer and put together into rows: one enter record, the
//! continuation records carrying what its pointer arguments pointed to, and
//! the exit record with the return value, all sharing the enter's monotonic
//! timestamp. What a row says follows IG's own user side (its `traceloop`
//! wasm module): `name=value, ...` parameters, pointer contents quoted,
//! `connect`'s address decoded, `-1 (errno text)` for failures, `X` for
//! syscalls that never return, `unfinished` for an enter without its exit.

use std::collections::HashMap;

use super::syscalls::{Declaration, SyscallTable};

/// Bytes of both record types (the ABI requires them equal).
pub const RECORD_SIZE: usize = 160;
/// Bytes of a continuation record's `param`.
pub const PARAM_LEN: usize = 128;
/// A continuation whose `length` is this holds a NUL-terminated string.
pub const USE_NULL_BYTE_LENGTH: u64 = 0x0fff_ffff_ffff_ffff;

const ENTER: u32 = 0;
const EXIT: u32 = 1;
const CONT: u32 = 2;

/// A decoded enter or exit record.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    args: [u64; 6],
    monotonic: u64,
    boot: u64,
    pid: u32,
    cpu: u16,
    id: u16,
}

/// A decoded continuation record: argument `index`'s pointed-to bytes.
#[derive(Debug, Clone, PartialEq)]
struct Cont {
    index: u8,
    /// The bytes IG keeps (up to the length, or the C string).
    param: Vec<u8>,
    /// IG's quoted form of them.
    quoted: String,
}

/// One reassembled syscall, as the `traceloop` data source prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Boot-clock nanoseconds of the enter (or exit) record: the sort key.
    pub timestamp: u64,
    pub mntns_id: u64,
    pub cpu: u16,
    pub pid: u32,
    pub comm: Vec<u8>,
    pub syscall: String,
    pub parameters: String,
    pub ret: String,
}

/// Records of one namespace's buffer, in any order, grouped by the enter's
/// monotonic timestamp.
#[derive(Default)]
pub struct Collected {
    enters: Vec<(Call, Vec<u8>)>,
    exits: Vec<(Call, Vec<u8>)>,
    conts: HashMap<u64, Vec<Cont>>,
    /// Records of an unknown type or too short.
    pub malformed: u64,
}

fn u64_at(r: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(r[at..at + 8].try_into().unwrap())
}

fn comm_of(r: &[u8]) -> Vec<u8> {
    let c = &r[80..96];
    c[..c.iter().position(|&b| b == 0).unwrap_or(c.len())].to_vec()
}

impl Collected {
    /// Adds one raw record (the perf sample's data, at least 160 bytes).
    pub fn push(&mut self, r: &[u8]) {
        if r.len() < RECORD_SIZE {
            self.malformed += 1;
            return;
        }
        let kind = u32::from_ne_bytes(r[0..4].try_into().unwrap());
        match kind {
            ENTER | EXIT => {
                let mut args = [0u64; 6];
                for (i, a) in args.iter_mut().enumerate() {
                    *a = u64_at(r, 8 + 8 * i);
                }
                let call = Call {
                    args,
                    monotonic: u64_at(r, 56),
                    boot: u64_at(r, 64),
                    pid: u32::from_ne_bytes(r[72..76].try_into().unwrap()),
                    cpu: u16::from_ne_bytes(r[76..78].try_into().unwrap()),
                    id: u16::from_ne_bytes(r[78..80].try_into().unwrap()),
                };
                let comm = comm_of(r);
                match kind {
                    ENTER => self.enters.push((call, comm)),
                    _ => self.exits.push((call, comm)),
                }
            }
            CONT => {
                let param = &r[4..4 + PARAM_LEN];
                let monotonic = u64_at(r, 136);
                let length = u64_at(r, 144);
                let index = r[152];
                let failed = r[153] != 0;
                let kept: &[u8] = if failed {
                    param
                } else if length == USE_NULL_BYTE_LENGTH {
                    &param[..param.iter().position(|&b| b == 0).unwrap_or(PARAM_LEN)]
                } else {
                    &param[..(length as usize).min(PARAM_LEN)]
                };
                let quoted = if failed {
                    go_quote(b"(Failed to dereference pointer)")
                } else {
                    go_quote(kept)
                };
                self.conts.entry(monotonic).or_default().push(Cont {
                    index,
                    param: kept.to_vec(),
                    quoted,
                });
            }
            _ => self.malformed += 1,
        }
    }

    /// The rows, ordered by timestamp. `names` gives syscall names and
    /// parameter declarations.
    pub fn rows(mut self, mntns_id: u64, names: &SyscallTable) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut exit_used = vec![false; self.exits.len()];
        // Exits by the enter's timestamp they carry.
        let mut exits_at: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, (x, _)) in self.exits.iter().enumerate() {
            exits_at.entry(x.monotonic).or_default().push(i);
        }
        let row = |c: &Call, comm: &[u8], syscall: String| Row {
            timestamp: c.boot,
            mntns_id,
            cpu: c.cpu,
            pid: c.pid,
            comm: comm.to_vec(),
            syscall,
            parameters: String::new(),
            ret: String::new(),
        };
        for (enter, comm) in &self.enters {
            let syscall = names.name(enter.id as u64);
            let mut r = row(enter, comm, syscall.clone());
            let decl = names.declaration(&syscall);
            if matches!(syscall.as_str(), "exit" | "exit_group" | "rt_sigreturn") {
                r.parameters = parameters(enter, &syscall, decl.as_deref(), &self.conts);
                r.ret = "X".into();
                rows.push(r);
                continue;
            }
            let exit = exits_at.get(&enter.monotonic).and_then(|at| {
                at.iter().copied().find(|&i| {
                    let x = &self.exits[i].0;
                    !exit_used[i] && x.id == enter.id && x.pid == enter.pid
                })
            });
            match exit {
                Some(i) => {
                    exit_used[i] = true;
                    r.parameters = parameters(enter, &syscall, decl.as_deref(), &self.conts);
                    r.ret = ret_to_string(self.exits[i].0.args[0]);
                }
                // IG prints an enter without its exit with no parameters.
                None => r.ret = "unfinished".into(),
            }
            rows.push(r);
        }
        for (i, (exit, comm)) in self.exits.iter().enumerate() {
            if !exit_used[i] {
                let mut r = row(exit, comm, names.name(exit.id as u64));
                r.ret = ret_to_string(exit.args[0]);
                rows.push(r);
            }
        }
        self.conts.clear();
        rows.sort_by_key(|r| r.timestamp);
        rows
    }
}

/// `name=value, ...` for each declared parameter: the number (pointers in
/// hex), or what the continuation record for it holds.
fn parameters(
    call: &Call,
    syscall: &str,
    decl: Option<&Declaration>,
    conts: &HashMap<u64, Vec<Cont>>,
) -> String {
    let Some(decl) = decl else {
        return String::new();
    };
    let conts = conts.get(&call.monotonic);
    let mut out = String::new();
    for (i, p) in decl.params.iter().enumerate().take(6) {
        if i > 0 {
            out.push_str(", ");
        }
        let cont = conts.and_then(|c| c.iter().find(|c| c.index as usize == i));
        let value = match cont {
            Some(c) if syscall == "connect" && p.name == "uservaddr" => match sockaddr(&c.param) {
                Ok(s) => s,
                Err(e) => format!("{e} (failed to parse {:?} {})", c.param, c.quoted),
            },
            Some(c) => c.quoted.clone(),
            None if p.pointer => format!("0x{:x}", call.args[i]),
            None => call.args[i].to_string(),
        };
        out.push_str(&p.name);
        out.push('=');
        out.push_str(&value);
    }
    out
}

/// A return value as IG prints it: `-1 (no such file or directory)` for
/// -4095..-1, else the unsigned number.
pub fn ret_to_string(ret: u64) -> String {
    let n = ret as i64;
    if (-4095..=-1).contains(&n) {
        return format!("-1 ({})", errno_text(-n as i32));
    }
    ret.to_string()
}

/// The C library's text for errno `n` with a lower-case first letter, as
/// Go's `syscall.Errno` spells it (`no such file or directory`).
fn errno_text(n: i32) -> String {
    match syscalls::Errno::new(n).description() {
        Some(d) => {
            let mut c = d.chars();
            match c.next() {
                Some(first) => first.to_lowercase().chain(c).collect(),
                None => String::new(),
            }
        }
        None => format!("errno {n}"),
    }
}

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// A `struct sockaddr` as `1.2.3.4:80`, `[::1]:80` (`%scope` when set) or
/// `unix:/path` (`unix:@name` for abstract sockets).
pub fn sockaddr(d: &[u8]) -> Result<String, String> {
    if d.len() < 2 {
        return Err("sockaddr byte slice too short to determine family".into());
    }
    let family = u16::from_le_bytes([d[0], d[1]]);
    match family {
        AF_INET => {
            if d.len() < 8 {
                return Err(format!("IPv4 sockaddr byte slice too short ({})", d.len()));
            }
            let port = u16::from_be_bytes([d[2], d[3]]);
            Ok(format!("{}.{}.{}.{}:{port}", d[4], d[5], d[6], d[7]))
        }
        AF_INET6 => {
            if d.len() < 28 {
                return Err(format!("IPv6 sockaddr byte slice too short ({})", d.len()));
            }
            let port = u16::from_be_bytes([d[2], d[3]]);
            let octets: [u8; 16] = d[8..24].try_into().unwrap();
            let ip = std::net::Ipv6Addr::from(octets);
            let scope = u32::from_le_bytes(d[24..28].try_into().unwrap());
            let ip = match ip.to_ipv4_mapped() {
                // Go prints IPv4-mapped addresses in dotted form.
                Some(v4) => v4.to_string(),
                None => ip.to_string(),
            };
            Ok(match scope {
                0 => format!("[{ip}]:{port}"),
                s => format!("[{ip}%{s}]:{port}"),
            })
        }
        AF_UNIX => {
            if d.len() < 3 {
                return Err(format!("Unix sockaddr byte slice too short ({})", d.len()));
            }
            let path = &d[2..];
            if path[0] == 0 {
                let q = go_quote(&path[1..]);
                Ok(format!("unix:@{}", &q[1..q.len() - 1]))
            } else {
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                Ok(format!("unix:{}", String::from_utf8_lossy(&path[..end])))
            }
        }
        f => Err(format!("unsupported address family: {f}")),
    }
}

/// Go's `strconv.Quote`: double quotes; `\"`, `\\`, `\n`-style escapes;
/// other control characters and invalid UTF-8 bytes as `\xNN`, non-printing
/// runes as `\uNNNN`. Untrusted bytes come out safe for a terminal.
pub fn go_quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\x7f' => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() || ('\u{80}'..'\u{a0}').contains(&c) => {
                    if (c as u32) < 0x10000 {
                        out.push_str(&format!("\\u{:04x}", c as u32))
                    } else {
                        out.push_str(&format!("\\U{:08x}", c as u32))
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An enter or exit record of syscall `nr`.
    fn call(kind: u32, nr: u16, mono: u64, boot: u64, args: [u64; 6]) -> Vec<u8> {
        let mut r = vec![0u8; RECORD_SIZE];
        r[0..4].copy_from_slice(&kind.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            r[8 + 8 * i..16 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        r[56..64].copy_from_slice(&mono.to_ne_bytes());
        r[64..72].copy_from_slice(&boot.to_ne_bytes());
        r[72..76].copy_from_slice(&42u32.to_ne_bytes());
        r[76..78].copy_from_slice(&1u16.to_ne_bytes());
        r[78..80].copy_from_slice(&nr.to_ne_bytes());
        r[80..84].copy_from_slice(b"demo");
        r
    }

    fn cont(mono: u64, index: u8, param: &[u8], length: u64, failed: bool) -> Vec<u8> {
        let mut r = vec![0u8; RECORD_SIZE];
        r[0..4].copy_from_slice(&CONT.to_ne_bytes());
        r[4..4 + param.len()].copy_from_slice(param);
        r[136..144].copy_from_slice(&mono.to_ne_bytes());
        r[144..152].copy_from_slice(&length.to_ne_bytes());
        r[152] = index;
        r[153] = failed as u8;
        r
    }

    /// A tracefs with the declarations of a few syscalls.
    fn tracefs() -> (std::path::PathBuf, SyscallTable) {
        let root = std::env::temp_dir().join(format!("traceloop-unit-{}", std::process::id()));
        let decls: &[(&str, &[&str])] = &[
            (
                "openat",
                &[
                    "int dfd",
                    "const char * filename",
                    "int flags",
                    "umode_t mode",
                ],
            ),
            ("read", &["unsigned int fd", "char * buf", "size_t count"]),
            ("exit_group", &["int error_code"]),
        ];
        for (name, params) in decls {
            let dir = root.join(format!("events/syscalls/sys_enter_{name}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut f = String::from("format:\n\tfield:int __syscall_nr;\toffset:8;\n");
            for p in *params {
                f.push_str(&format!("\tfield:{p};\toffset:16;\n"));
            }
            std::fs::write(dir.join("format"), f).unwrap();
        }
        let table = SyscallTable::open(&[root.as_path()]).unwrap();
        (root, table)
    }

    #[test]
    fn records_become_rows_as_inspektor_gadget_makes_them() {
        let (root, names) = tracefs();
        let nr = |n: &str| names.number(n).unwrap() as u16;
        let (openat, read, exit_group) = (nr("openat"), nr("read"), nr("exit_group"));
        let mut c = Collected::default();
        // Newest first, as the ring gives them; rows come out by boot time.
        c.push(&call(EXIT, read, 300, 310, [5, 0, 0, 0, 0, 0]));
        c.push(&cont(300, 1, b"hello", 5, false));
        c.push(&call(ENTER, read, 300, 301, [3, 0x7f00, 64, 0, 0, 0]));
        c.push(&call(ENTER, exit_group, 400, 401, [0; 6]));
        c.push(&call(ENTER, read, 500, 501, [0, 0x10, 8, 0, 0, 0]));
        c.push(&call(EXIT, openat, 50, 60, [-2i64 as u64, 0, 0, 0, 0, 0]));
        c.push(&cont(200, 1, b"/etc\0junk", USE_NULL_BYTE_LENGTH, false));
        c.push(&call(
            EXIT,
            openat,
            200,
            210,
            [-13i64 as u64, 0, 0, 0, 0, 0],
        ));
        c.push(&call(
            ENTER,
            openat,
            200,
            201,
            [-100i32 as u32 as u64, 0x1000, 0, 0, 0, 0],
        ));
        c.push(&cont(600, 1, b"", 0, true));
        c.push(&call(ENTER, openat, 600, 601, [1, 0x2000, 0, 0, 0, 0]));
        c.push(&call(EXIT, openat, 600, 610, [3, 0, 0, 0, 0, 0]));
        c.push(&[0u8; 12]);
        assert_eq!(c.malformed, 1);
        let rows = c.rows(7, &names);
        let got: Vec<(u64, &str, &str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.timestamp,
                    r.syscall.as_str(),
                    r.parameters.as_str(),
                    r.ret.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                // An exit whose enter was overwritten: no parameters.
                (60, "openat", "", "-1 (no such file or directory)"),
                (
                    201,
                    "openat",
                    "dfd=4294967196, filename=\"/etc\", flags=0, mode=0",
                    "-1 (permission denied)"
                ),
                (301, "read", "fd=3, buf=\"hello\", count=64", "5"),
                (401, "exit_group", "error_code=0", "X"),
                (501, "read", "", "unfinished"),
                (
                    601,
                    "openat",
                    "dfd=1, filename=\"(Failed to dereference pointer)\", flags=0, mode=0",
                    "3"
                ),
            ]
        );
        assert!(
            rows.iter()
                .all(|r| r.mntns_id == 7 && r.pid == 42 && r.cpu == 1)
        );
        assert_eq!(rows[0].comm, b"demo");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn quotes_as_go_does() {
        assert_eq!(go_quote(b"/etc/hostname"), r#""/etc/hostname""#);
        assert_eq!(go_quote(b"a\"b\\c\n\t\x01\x7f"), r#""a\"b\\c\n\t\x01\x7f""#);
        assert_eq!(go_quote(b"\xff\xfeok"), r#""\xff\xfeok""#);
        assert_eq!(go_quote("héllo".as_bytes()), "\"héllo\"");
        assert_eq!(go_quote("\u{85}".as_bytes()), r#""\u0085""#);
    }

    #[test]
    fn return_values() {
        assert_eq!(ret_to_string(3), "3");
        assert_eq!(
            ret_to_string(-2i64 as u64),
            "-1 (no such file or directory)"
        );
        assert_eq!(ret_to_string(-13i64 as u64), "-1 (permission denied)");
        assert_eq!(ret_to_string(-111i64 as u64), "-1 (connection refused)");
        // Below -4095 is no errno: the unsigned number, as IG prints it.
        assert_eq!(ret_to_string(-4096i64 as u64), "18446744073709547520");
    }

    #[test]
    fn socket_addresses() {
        let mut v4 = vec![2, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend([0; 8]);
        assert_eq!(sockaddr(&v4).unwrap(), "127.0.0.1:8080");
        let mut v6 = vec![10, 0, 0, 80, 0, 0, 0, 0];
        v6.extend(std::net::Ipv6Addr::LOCALHOST.octets());
        v6.extend(3u32.to_le_bytes());
        assert_eq!(sockaddr(&v6).unwrap(), "[::1%3]:80");
        let mut un = vec![1, 0];
        un.extend(b"/run/x.sock\0junk");
        assert_eq!(sockaddr(&un).unwrap(), "unix:/run/x.sock");
        let mut abs = vec![1, 0, 0];
        abs.extend(b"name\n");
        assert_eq!(sockaddr(&abs).unwrap(), r"unix:@name\n");
        assert_eq!(
            sockaddr(&[9, 0, 1]).unwrap_err(),
            "unsupported address family: 9"
        );
        assert!(sockaddr(&[2, 0, 1]).unwrap_err().contains("IPv4"));
        assert!(sockaddr(&[1]).unwrap_err().contains("too short"));
    }
}
