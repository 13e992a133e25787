//! Where the events of detached runs go: journald (one entry per event,
//! fields per design.md), or, when journald is not running, a bounded
//! in-memory log per run that `Logs` serves instead.

pub mod memlog;
pub mod native;
pub mod read;

use std::path::PathBuf;
use std::sync::Arc;

pub use memlog::MemLogs;
pub use native::JournalWriter;

/// The log detached runs write to.
#[derive(Clone)]
pub enum Journal {
    /// journald, reached on its native socket; read back with journalctl.
    Journald {
        writer: Arc<JournalWriter>,
        /// `journalctl --namespace` (journald started with a namespace).
        namespace: Option<String>,
    },
    /// No journald: the last events of each run, in memory.
    Memory(MemLogs),
}

impl Journal {
    /// journald's socket for `namespace` (None: the default instance).
    pub fn socket_path(namespace: Option<&str>) -> PathBuf {
        match namespace {
            Some(ns) => PathBuf::from(format!("/run/systemd/journal.{ns}/socket")),
            None => PathBuf::from("/run/systemd/journal/socket"),
        }
    }

    /// journald when its socket takes datagrams, else the memory log.
    pub fn detect(namespace: Option<&str>, mem_lines: usize) -> Journal {
        let path = Journal::socket_path(namespace);
        match JournalWriter::connect(&path) {
            Ok(writer) => {
                tracing::info!(socket = %path.display(), "detached runs log to journald");
                Journal::Journald {
                    writer: Arc::new(writer),
                    namespace: namespace.map(str::to_string),
                }
            }
            Err(e) => {
                tracing::warn!(
                    socket = %path.display(),
                    error = %e,
                    lines_per_run = mem_lines,
                    "journald is not running: detached runs keep only their last events in memory (lost when gadgetd stops)"
                );
                Journal::Memory(MemLogs::new(mem_lines))
            }
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Journal::Journald { .. } => "journald",
            Journal::Memory(_) => "memory",
        }
    }
}
