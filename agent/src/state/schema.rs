//! The database schema, as numbered migrations. `PRAGMA user_version` holds
//! the number applied; a newer agent applies the rest in one transaction, an
//! older agent refuses a database it does not understand.

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs and the objects detached runs are restored from.
    r#"
    CREATE TABLE objects (
        sha256      TEXT PRIMARY KEY,
        object      BLOB NOT NULL,
        definition  TEXT NOT NULL
    );
    CREATE TABLE runs (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        image        TEXT NOT NULL,
        digest       TEXT NOT NULL,
        object       TEXT REFERENCES objects(sha256),
        params       TEXT NOT NULL,          -- JSON object of strings
        owner        INTEGER NOT NULL,
        detached     INTEGER NOT NULL,
        timeout_ms   INTEGER,
        state        TEXT NOT NULL,
        created_at   INTEGER NOT NULL,       -- microseconds since the epoch
        started_at   INTEGER,
        stopped_at   INTEGER,
        exit_reason  TEXT NOT NULL DEFAULT '',
        events_seen  INTEGER NOT NULL DEFAULT 0,
        events_lost  INTEGER NOT NULL DEFAULT 0,
        header       TEXT NOT NULL,          -- the stream header line
        restarts     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_by_state ON runs(state);
    "#,
    // 2: the run's scope (container selection, kind options) as the a{sv}
    // options it was started with, so a restored run keeps its filter.
    r#"
    ALTER TABLE runs ADD COLUMN options BLOB NOT NULL DEFAULT x'';
    "#,
];

pub const VERSION: i64 = MIGRATIONS.len() as i64;
