//! What the agent remembers across restarts: `STATE_DIR/state.db` (SQLite in
//! WAL mode). Every run is recorded when it starts and when it ends; detached
//! runs also keep the object they run, so a restarted agent can load them
//! again (see `service::restore`).
//!
//! Calls are short single-row statements, made from async code under a
//! mutex; a failing disk turns into an error for the caller, never a panic.

pub mod ledger;
mod runs;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

pub use ledger::{Ledger, LedgerError};
pub use runs::{RunRecord, Source};

/// Errors name the database file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "state database {path} has schema version {found}, newer than this gadgetd understands ({known}); run a newer gadgetd or move the file away"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("state database {path}: stored value of run {id} is corrupt: {what}")]
    Corrupt {
        path: PathBuf,
        id: String,
        what: String,
    },
}

pub type Result<T> = std::result::Result<T, StateError>;

pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) `dir/state.db` and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Store> {
        let path = dir.join("state.db");
        let err = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        Store::init(path.clone(), conn)
    }

    /// A throw-away database (unit tests).
    pub fn in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory().map_err(|source| StateError::Sqlite {
            path: ":memory:".into(),
            source,
        })?;
        Store::init(":memory:".into(), conn)
    }

    fn init(path: PathBuf, mut conn: Connection) -> Result<Store> {
        let err = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        // WAL: readers never block the writer; NORMAL sync is durable across
        // process crashes (the case that matters) and cheap.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        migrate(&path, &mut conn)?;
        Ok(Store {
            path,
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, naming the file in errors.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| StateError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Where the ledgers of detached runs live (`STATE_DIR/ledgers`);
    /// `None` for an in-memory store.
    pub fn ledger_dir(&self) -> Option<PathBuf> {
        (self.path != Path::new(":memory:"))
            .then(|| self.path.parent().unwrap_or(Path::new(".")).join("ledgers"))
    }

    /// A new, zeroed ledger for detached run `id` (in memory for an
    /// in-memory store).
    pub fn create_ledger(&self, id: &str) -> std::result::Result<Ledger, LedgerError> {
        match self.ledger_dir() {
            Some(dir) => Ledger::create(&dir, id),
            None => Ok(Ledger::memory()),
        }
    }

    /// The ledger of run `id`, if it has one.
    pub fn open_ledger(&self, id: &str) -> std::result::Result<Option<Ledger>, LedgerError> {
        match self.ledger_dir() {
            Some(dir) => Ledger::open(&dir, id),
            None => Ok(None),
        }
    }

    /// Removes the ledger of run `id`, if any.
    pub fn remove_ledger(&self, id: &str) -> std::result::Result<(), LedgerError> {
        match self.ledger_dir() {
            Some(dir) => Ledger::remove(&dir, id),
            None => Ok(()),
        }
    }

    /// The schema version in use.
    pub fn schema_version(&self) -> Result<i64> {
        self.with(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
    }
}

fn migrate(path: &Path, conn: &mut Connection) -> Result<()> {
    let err = |source| StateError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    if current > schema::VERSION {
        return Err(StateError::TooNew {
            path: path.to_path_buf(),
            found: current,
            known: schema::VERSION,
        });
    }
    if current == schema::VERSION {
        return Ok(());
    }
    let tx = conn.transaction().map_err(err)?;
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(err)?;
        tracing::info!(db = %path.display(), version = i + 1, "state database migrated");
    }
    tx.pragma_update(None, "user_version", schema::VERSION)
        .map_err(err)?;
    tx.commit().map_err(err)
}
