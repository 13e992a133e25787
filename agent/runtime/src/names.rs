//! Conversions of semantic numbers to names (the seed's "conversions"):
//! errno, signal, syscall (per architecture, [`name_tables`]), uid/gid through
//! the host's user database, interface index. Tables come from maintained
//! crates; user and interface lookups are cached, so a busy event stream
//! pays one lookup per distinct value.

use std::sync::Mutex;

use super::name_tables::{self, Arch};

/// `ENOENT` for 2 or -2 (kernels return negative errnos); "" for 0 or unknown.
pub fn errno(v: i64) -> &'static str {
    name_tables::errno_name(v.unsigned_abs()).unwrap_or("")
}

/// `SIGKILL` for 9; real-time signals as `SIGRTMIN+n`; "" when unknown.
pub fn signal(v: u64) -> std::borrow::Cow<'static, str> {
    name_tables::signal_name(v).unwrap_or_default()
}

/// The syscall's name on the architecture of the host the event came from
/// ([`Arch::EVENTS`]); "" when unknown. Syscall 0 is a real one (`read` on
/// x86_64), unlike errno or signal 0.
pub fn syscall(nr: u64) -> &'static str {
    Arch::EVENTS
        .and_then(|arch| arch.syscall_name(nr))
        .unwrap_or("")
}

/// The number of a syscall on the architecture events come from (for seccomp profiles).
#[cfg_attr(not(test), allow(dead_code))] // the inverse of syscall; tested, no caller yet
pub fn syscall_number(name: &str) -> Option<u32> {
    Arch::EVENTS?.syscall_number(name)
}

/// The caches hash their numeric ids with Fx (one multiply; SipHash was
/// ~300 instructions per event and field). The ids come from the kernel
/// (uids, gids, interface indexes), not from what a traced process writes,
/// and the cache is bounded, so collision flooding is not a concern.
type Cache = Mutex<rustc_hash::FxHashMap<u64, Box<str>>>;

/// The last id a thread looked up in one cache and a copy of its name: a
/// stream of events from one user takes neither the lock nor the lookup.
type Last = std::thread::LocalKey<std::cell::RefCell<(Option<u64>, String)>>;

/// Hands the cached name of `key` to `with`, resolving it once (outside the
/// lock: NSS lookups can be slow). Called per event: no allocation on a hit
/// (the thread's copy keeps its capacity), no lock when the thread's
/// previous lookup in this cache was the same id.
fn cached<R>(
    cache: &'static std::sync::OnceLock<Cache>,
    last: &'static Last,
    key: u64,
    resolve: impl FnOnce() -> Option<String>,
    with: impl FnOnce(&str) -> R,
) -> R {
    last.with_borrow_mut(|(last_key, name)| {
        if *last_key != Some(key) {
            let cache = cache.get_or_init(Default::default);
            name.clear();
            let guard = cache.lock().unwrap();
            match guard.get(&key) {
                Some(v) => name.push_str(v),
                None => {
                    drop(guard);
                    let resolved: Box<str> = resolve().unwrap_or_default().into();
                    let mut guard = cache.lock().unwrap();
                    if guard.len() > 65536 {
                        guard.clear(); // bounded: a hostile stream of ids cannot grow it forever
                    }
                    name.push_str(guard.entry(key).or_insert(resolved));
                }
            }
            *last_key = Some(key);
        }
        with(name)
    })
}

/// The user name of a uid on this host ("" when it has none), given to `with`.
pub fn user<R>(uid: u64, with: impl FnOnce(&str) -> R) -> R {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    thread_local!(static LAST: std::cell::RefCell<(Option<u64>, String)> = const { std::cell::RefCell::new((None, String::new())) });
    let resolve = || {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid as u32))
            .ok()
            .flatten()
            .map(|u| u.name)
    };
    cached(&CACHE, &LAST, uid, resolve, with)
}

/// The group name of a gid on this host ("" when it has none), given to `with`.
pub fn group<R>(gid: u64, with: impl FnOnce(&str) -> R) -> R {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    thread_local!(static LAST: std::cell::RefCell<(Option<u64>, String)> = const { std::cell::RefCell::new((None, String::new())) });
    let resolve = || {
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid as u32))
            .ok()
            .flatten()
            .map(|g| g.name)
    };
    cached(&CACHE, &LAST, gid, resolve, with)
}

/// The name of a network interface of the agent's network namespace, given to `with`.
pub fn interface<R>(index: u64, with: impl FnOnce(&str) -> R) -> R {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    thread_local!(static LAST: std::cell::RefCell<(Option<u64>, String)> = const { std::cell::RefCell::new((None, String::new())) });
    let resolve = || {
        let mut buf = [0u8; libc::IF_NAMESIZE];
        // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
        let p = unsafe { libc::if_indextoname(index as u32, buf.as_mut_ptr().cast()) };
        if p.is_null() {
            return None;
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Some(String::from_utf8_lossy(&buf[..end]).into_owned())
    };
    cached(&CACHE, &LAST, index, resolve, with)
}

/// A DNS name in wire format (length-prefixed labels) as a dotted name.
pub fn dns_name(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < wire.len() {
        let len = wire[i] as usize;
        if len == 0 || len > 63 || i + 1 + len > wire.len() {
            break;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&String::from_utf8_lossy(&wire[i + 1..i + 1 + len]));
        i += 1 + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_names() {
        assert_eq!(errno(-2), "ENOENT");
        assert_eq!(errno(13), "EACCES");
        assert_eq!(errno(0), "");
        assert_eq!(signal(9), "SIGKILL");
        assert_eq!(signal(34), "SIGRTMIN+2");
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(syscall(257), "openat");
            assert_eq!(syscall(0), "read");
            assert_eq!(syscall(u64::MAX), "");
            assert_eq!(syscall_number("execve"), Some(59));
        }
        assert_eq!(user(0, str::to_owned), "root");
        assert_eq!(
            user(0, str::to_owned),
            "root",
            "a cache hit gives the same name"
        );
        assert_eq!(group(0, str::to_owned), "root");
        assert_eq!(interface(1, str::to_owned), "lo");
        assert_eq!(
            dns_name(b"\x03www\x07example\x03com\x00"),
            "www.example.com"
        );
    }
}
