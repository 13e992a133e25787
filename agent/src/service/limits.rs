//! Limits that keep one caller from exhausting what every caller shares:
//! connections, log streams, exports (docs/security.md, "Limits").
//!
//! A [`Quota`] counts what each uid holds; [`Quota::acquire`] hands out a
//! [`Permit`] that gives its slot back when dropped, so a slot is freed
//! however its holder ends (client gone, error, task aborted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Peer-to-peer connections open at once, all callers together.
pub const MAX_CONNECTIONS: usize = 512;
/// Peer-to-peer connections one non-root uid may hold open at once.
pub const MAX_CONNECTIONS_PER_UID: usize = 32;
/// Time a new peer-to-peer client has to finish the D-Bus handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection has to take a signal (a new run, a property change)
/// before the agent gives up on it and disconnects it.
pub const SLOW_PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// `Logs` streams (each a journalctl child) one non-root uid may hold open.
pub const MAX_LOG_STREAMS_PER_UID: usize = 8;
/// `Logs` streams open at once, all callers together.
pub const MAX_LOG_STREAMS: usize = 128;
/// `Export` streams one non-root uid may hold open.
pub const MAX_EXPORTS_PER_UID: usize = 2;
/// `Export` streams open at once, all callers together.
pub const MAX_EXPORTS: usize = 16;
/// Largest gadget object accepted from a caller's fd (`RunObject`,
/// `DescribeObject`), in bytes.
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;
/// Largest definition (YAML) accepted from a caller or an image, in bytes.
pub const MAX_DEFINITION_BYTES: usize = 256 << 10;
/// Time the agent waits for an object fd to be read in full.
pub const OBJECT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-uid counts of one kind of resource, with a per-uid and a total cap.
/// Root (uid 0) is held to the total cap only.
#[derive(Clone)]
pub struct Quota {
    what: &'static str,
    per_uid: usize,
    total: usize,
    held: Arc<Mutex<HashMap<u32, usize>>>,
}

/// One slot of a [`Quota`], given back on drop.
pub struct Permit {
    uid: u32,
    held: Arc<Mutex<HashMap<u32, usize>>>,
}

impl Quota {
    /// `what` names the resource in refusals ("log streams").
    pub fn new(what: &'static str, per_uid: usize, total: usize) -> Quota {
        Quota {
            what,
            per_uid,
            total,
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `uid`, or a refusal that names the limit and what to do.
    pub fn acquire(&self, uid: u32) -> Result<Permit, String> {
        let mut held = self.held.lock().unwrap();
        let total: usize = held.values().sum();
        if total >= self.total {
            return Err(format!(
                "too many {} open on this agent ({} at most, all users together); close some and retry",
                self.what, self.total
            ));
        }
        let mine = held.get(&uid).copied().unwrap_or(0);
        if uid != 0 && mine >= self.per_uid {
            return Err(format!(
                "uid {uid} already holds {mine} {} ({} at most per user); close some and retry",
                self.what, self.per_uid
            ));
        }
        *held.entry(uid).or_insert(0) += 1;
        Ok(Permit {
            uid,
            held: self.held.clone(),
        })
    }

    /// What `uid` holds now.
    pub fn held_by(&self, uid: u32) -> usize {
        self.held.lock().unwrap().get(&uid).copied().unwrap_or(0)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap();
        if let Some(n) = held.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.uid);
            }
        }
    }
}

/// Every quota of the agent.
#[derive(Clone)]
pub struct Limits {
    pub connections: Quota,
    pub log_streams: Quota,
    pub exports: Quota,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: Quota::new("connections", MAX_CONNECTIONS_PER_UID, MAX_CONNECTIONS),
            log_streams: Quota::new("log streams", MAX_LOG_STREAMS_PER_UID, MAX_LOG_STREAMS),
            exports: Quota::new("image exports", MAX_EXPORTS_PER_UID, MAX_EXPORTS),
        }
    }
}

/// Raises this process's soft limit of open files to its hard limit (runs
/// hold several fds each: maps, links, perf buffers, streams); returns the
/// new soft limit.
pub fn raise_nofile() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_count_per_uid_and_in_total_and_free_on_drop() {
        let q = Quota::new("things", 2, 3);
        let a1 = q.acquire(1000).unwrap();
        let _a2 = q.acquire(1000).unwrap();
        let e = q.acquire(1000).err().unwrap();
        assert_eq!(
            e,
            "uid 1000 already holds 2 things (2 at most per user); close some and retry"
        );
        let _b = q.acquire(1001).unwrap();
        let e = q.acquire(0).err().unwrap();
        assert!(
            e.starts_with("too many things open on this agent (3 at most"),
            "{e}"
        );
        drop(a1);
        assert_eq!(q.held_by(1000), 1);
        let _root = q.acquire(0).unwrap();
        assert_eq!(q.held_by(0), 1);
    }

    #[test]
    fn root_is_held_to_the_total_only() {
        let q = Quota::new("things", 1, 3);
        let _p: Vec<_> = (0..3).map(|_| q.acquire(0).unwrap()).collect();
        assert!(q.acquire(0).is_err());
    }
}
