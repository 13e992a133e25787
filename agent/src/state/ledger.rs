//! Crash-proof event accounting of a detached run.
//!
//! The contract (docs/dbus.md, "Loss accounting"): every event a detached
//! run saw is in its log or counted as lost. The counters the agent keeps
//! in memory and flushes to SQLite every few seconds cannot keep it across
//! a `kill -9`: the events between the last flush and the crash, and the
//! log writer's backlog, vanish uncounted. So each detached run has a
//! ledger, `STATE_DIR/ledgers/RUN_ID`: 64 bytes mapped shared into the
//! agent, eight native-endian `u64` words updated with plain atomic stores.
//! Stores into a shared file mapping live in the page cache the moment they
//! are made, so they survive the death of the process (not of the machine).
//!
//! Each fact is one word with one writer, so no crash can tear an update:
//! the run's pump adds `seen` (before the events go to any stream) and
//! `kernel_lost`; the log writer adds `logged` (after journald accepted the
//! entry) and `dropped` (rate limit, refused by journald, fell behind).
//! After a crash, `seen - logged - dropped - crash` events were seen but
//! neither logged nor counted: [`Ledger::settle_crash`] counts them as lost
//! with cause `crash`.
//!
//! One event can be in doubt: the one whose send to journald the agent
//! died in (or right after). Before each send the writer notes a hash of
//! the entry and the `logged` value it will make ([`Ledger::sending`]); a
//! restarted agent that finds that note unresolved asks the journal whether
//! its newest entry of the run is that one ([`Ledger::in_doubt`],
//! [`Ledger::resolve`]).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;

/// `GDLEDG01` in the first word: a file from this format.
const MAGIC: u64 = u64::from_le_bytes(*b"GDLEDG01");
const WORDS: usize = 8;
/// Size of a ledger file in bytes.
pub const SIZE: usize = WORDS * 8;

const SEEN: usize = 1;
const KERNEL_LOST: usize = 2;
const LOGGED: usize = 3;
const DROPPED: usize = 4;
const CRASH: usize = 5;
/// `logged + 1` while an entry is being sent (else at most `logged`).
const PENDING_AT: usize = 6;
/// [`entry_hash`] of the entry being sent.
const PENDING_HASH: usize = 7;

/// FNV-1a of a log entry's `MESSAGE` (stable across builds and versions).
pub fn entry_hash(message: &[u8]) -> u64 {
    message.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Errors name the ledger file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("run ledger {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "run ledger {path} is not a gadgetd ledger ({what}); the run's counters come from the state database instead; remove the file to silence this"
    )]
    Corrupt { path: PathBuf, what: String },
}

/// The counters of one detached run, cumulative over its restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Events the run received from the kernel.
    pub seen: u64,
    /// Events the kernel dropped (its buffer was full); not part of `seen`.
    pub kernel_lost: u64,
    /// Events journald accepted into the run's log.
    pub logged: u64,
    /// Events of `seen` the log writer dropped (rate limit, journald
    /// refused them, or the writer fell behind).
    pub dropped: u64,
    /// Events of `seen` lost because the agent died before logging them.
    pub crash: u64,
}

impl Counts {
    /// Events seen but neither logged nor counted as lost (the writer's
    /// backlog; zero once the log writer has caught up).
    pub fn backlog(&self) -> u64 {
        self.seen
            .saturating_sub(self.logged)
            .saturating_sub(self.dropped)
            .saturating_sub(self.crash)
    }

    /// Every loss, as the run's `EventsLost` counts them.
    pub fn lost(&self) -> u64 {
        self.kernel_lost + self.dropped + self.crash
    }
}

/// A run's ledger, mapped into memory (see the module docs).
pub struct Ledger {
    map: MmapMut,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .field("counts", &self.counts())
            .finish()
    }
}

/// The ledger file of run `id` under `dir`.
pub fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(id)
}

impl Ledger {
    /// Creates the zeroed ledger of run `id` in `dir` (replacing any file).
    pub fn create(dir: &Path, id: &str) -> Result<Ledger, LedgerError> {
        let path = path(dir, id);
        let io = |source| LedgerError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io)?;
        // Allocate the blocks now: a full disk fails here, not with SIGBUS
        // on a later store into the mapping.
        nix::fcntl::posix_fallocate(&file, 0, SIZE as i64)
            .map_err(|e| io(std::io::Error::from(e)))?;
        // SAFETY: the file is ours (STATE_DIR is root's) and SIZE bytes
        // long; it is only accessed through the mapping's atomics.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(io)?;
        let ledger = Ledger {
            map,
            path: Some(path),
        };
        ledger.word(0).store(MAGIC, Ordering::Relaxed);
        Ok(ledger)
    }

    /// Opens the ledger of run `id` in `dir`; `None` when the run has none
    /// (it started under an older agent, or is attached).
    pub fn open(dir: &Path, id: &str) -> Result<Option<Ledger>, LedgerError> {
        let path = path(dir, id);
        let io = |source| LedgerError::Io {
            path: path.clone(),
            source,
        };
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let len = file.metadata().map_err(io)?.len();
        if len != SIZE as u64 {
            return Err(LedgerError::Corrupt {
                path,
                what: format!("{len} bytes, not {SIZE}"),
            });
        }
        // SAFETY: as in `create`; the length was checked.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(io)?;
        let ledger = Ledger {
            map,
            path: Some(path.clone()),
        };
        let magic = ledger.word(0).load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(LedgerError::Corrupt {
                path,
                what: format!("first word {magic:#018x}"),
            });
        }
        Ok(Some(ledger))
    }

    /// A ledger in anonymous memory (an agent without a state directory,
    /// unit tests): the same accounting, no crash safety.
    pub fn memory() -> Ledger {
        let map = MmapMut::map_anon(SIZE).expect("a 48-byte anonymous mapping");
        let ledger = Ledger { map, path: None };
        ledger.word(0).store(MAGIC, Ordering::Relaxed);
        ledger
    }

    /// The file, if the ledger has one.
    pub fn file(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < WORDS);
        // SAFETY: the mapping is page-aligned and at least SIZE bytes, so
        // word i is an aligned u64 inside it, alive as long as `self`;
        // every access to it goes through this atomic.
        unsafe { &*(self.map.as_ptr().add(i * 8) as *const AtomicU64) }
    }

    /// The pump received `events` and the kernel reported `kernel_lost`
    /// more lost. Called before the events go to any stream.
    pub fn saw(&self, events: u64, kernel_lost: u64) {
        if events > 0 {
            self.word(SEEN).fetch_add(events, Ordering::Release);
        }
        if kernel_lost > 0 {
            self.word(KERNEL_LOST)
                .fetch_add(kernel_lost, Ordering::Release);
        }
    }

    /// The writer is about to send the entry `message` to journald.
    pub fn sending(&self, message: &[u8]) {
        self.word(PENDING_HASH)
            .store(entry_hash(message), Ordering::Release);
        let next = self.word(LOGGED).load(Ordering::Acquire) + 1;
        self.word(PENDING_AT).store(next, Ordering::Release);
    }

    /// The send noted by [`Ledger::sending`] failed: nothing is in doubt.
    pub fn not_sent(&self) {
        self.word(PENDING_AT).store(0, Ordering::Release);
    }

    /// The hash of the entry a dead agent was sending when it died, if it
    /// may or may not have reached journald.
    pub fn in_doubt(&self) -> Option<u64> {
        let logged = self.word(LOGGED).load(Ordering::Acquire);
        (self.word(PENDING_AT).load(Ordering::Acquire) == logged + 1)
            .then(|| self.word(PENDING_HASH).load(Ordering::Acquire))
    }

    /// Settles the entry in doubt: `delivered` when the journal holds it.
    pub fn resolve(&self, delivered: bool) {
        if self.in_doubt().is_none() {
            return;
        }
        if delivered {
            self.logged(1);
        } else {
            self.not_sent();
        }
    }

    /// journald accepted `n` more events of the run.
    pub fn logged(&self, n: u64) {
        self.word(LOGGED).fetch_add(n, Ordering::Release);
    }

    /// The log writer dropped `n` more events it had seen.
    pub fn dropped(&self, n: u64) {
        self.word(DROPPED).fetch_add(n, Ordering::Release);
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        let w = |i| self.word(i).load(Ordering::Acquire);
        Counts {
            seen: w(SEEN),
            kernel_lost: w(KERNEL_LOST),
            logged: w(LOGGED),
            dropped: w(DROPPED),
            crash: w(CRASH),
        }
    }

    /// At restore, before the run's pump and writer start again: counts the
    /// backlog the dead agent left (seen, neither logged nor lost) as lost
    /// with cause `crash`. Returns how many events that was.
    pub fn settle_crash(&self) -> u64 {
        let backlog = self.counts().backlog();
        if backlog > 0 {
            self.word(CRASH).fetch_add(backlog, Ordering::Release);
        }
        backlog
    }

    /// Removes the ledger file of run `id` in `dir` (gone already is fine).
    pub fn remove(dir: &Path, id: &str) -> Result<(), LedgerError> {
        let path = path(dir, id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LedgerError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gadgetd-ledger-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn counts_survive_in_the_file_and_a_backlog_settles_as_crash() {
        let d = dir("settle");
        let l = Ledger::create(&d, "aa").unwrap();
        l.saw(100, 3);
        l.logged(60);
        l.dropped(15);
        // The agent dies here: 25 events seen, neither logged nor dropped.
        drop(l);
        assert_eq!(std::fs::metadata(d.join("aa")).unwrap().len(), 64);
        let l = Ledger::open(&d, "aa").unwrap().unwrap();
        let c = l.counts();
        assert_eq!(
            (c.seen, c.kernel_lost, c.logged, c.dropped, c.crash),
            (100, 3, 60, 15, 0)
        );
        assert_eq!(c.backlog(), 25);
        assert_eq!(l.settle_crash(), 25);
        let c = l.counts();
        assert_eq!((c.crash, c.backlog(), c.lost()), (25, 0, 43));
        assert_eq!(c.seen, c.logged + c.dropped + c.crash);
        // A second restart without new events adds nothing.
        assert_eq!(l.settle_crash(), 0);
        // The next incarnation keeps counting on top.
        l.saw(10, 0);
        l.logged(4);
        assert_eq!(l.settle_crash(), 6);
        assert_eq!(l.counts().lost(), 49);
        Ledger::remove(&d, "aa").unwrap();
        Ledger::remove(&d, "aa").unwrap();
        assert!(Ledger::open(&d, "aa").unwrap().is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_of_the_wrong_size_or_magic_is_named_not_trusted() {
        let d = dir("corrupt");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("short"), [0u8; 7]).unwrap();
        let e = Ledger::open(&d, "short").unwrap_err().to_string();
        assert!(e.contains("short") && e.contains("7 bytes, not 64"), "{e}");
        std::fs::write(d.join("zeros"), [0u8; 64]).unwrap();
        let e = Ledger::open(&d, "zeros").unwrap_err().to_string();
        assert!(
            e.contains("zeros") && e.contains("first word 0x0000000000000000"),
            "{e}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_entry_sent_when_the_agent_died_is_in_doubt_until_resolved() {
        let l = Ledger::memory();
        l.saw(3, 0);
        for (i, m) in [b"one", b"two"].iter().enumerate() {
            l.sending(*m);
            assert_eq!(l.in_doubt(), Some(entry_hash(*m)), "entry {i}");
            l.logged(1);
            assert_eq!(l.in_doubt(), None, "entry {i} logged");
        }
        // Died during the third send: delivered, so it counts as logged.
        l.sending(b"three");
        assert_eq!(l.in_doubt(), Some(entry_hash(b"three")));
        l.resolve(true);
        assert_eq!(
            (l.in_doubt(), l.counts().logged, l.settle_crash()),
            (None, 3, 0)
        );
        // Died during a send journald never got: a crash loss.
        l.saw(1, 0);
        l.sending(b"four");
        l.resolve(false);
        assert_eq!(
            (l.in_doubt(), l.counts().logged, l.settle_crash()),
            (None, 3, 1)
        );
        // A failed send is not in doubt.
        l.sending(b"five");
        l.not_sent();
        assert_eq!(l.in_doubt(), None);
        assert_ne!(entry_hash(b"four"), entry_hash(b"five"));
        assert_eq!(entry_hash(b""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn a_memory_ledger_counts_the_same() {
        let l = Ledger::memory();
        l.saw(5, 1);
        l.logged(5);
        assert_eq!(l.counts().backlog(), 0);
        assert_eq!(l.counts().lost(), 1);
        assert!(l.file().is_none());
    }
}
