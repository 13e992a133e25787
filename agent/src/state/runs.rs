//! The `runs` and `objects` tables.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Result, StateError, Store};

/// One run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    pub name: String,
    pub image: String,
    pub digest: String,
    pub params: BTreeMap<String, String>,
    pub owner: u32,
    pub detached: bool,
    pub timeout_ms: Option<u64>,
    pub state: String,
    /// Microseconds since the epoch.
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub stopped_at: Option<u64>,
    pub exit_reason: String,
    pub events_seen: u64,
    pub events_lost: u64,
    /// The stream header line (JSON, with its newline).
    pub header: String,
    /// How often the agent restored this run after a restart.
    pub restarts: u32,
    /// sha256 of the stored object, if any.
    pub object: Option<String>,
    /// The scope options (D-Bus `a{sv}`, serialized) the run started with.
    pub options: Vec<u8>,
}

/// What a detached run is loaded from again after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub object: Vec<u8>,
    pub definition: String,
}

const COLUMNS: &str = "id, name, image, digest, params, owner, detached, timeout_ms, state, created_at, started_at, \
                       stopped_at, exit_reason, events_seen, events_lost, header, restarts, object, options";

impl Store {
    /// Records a run that has started.
    pub fn insert_run(&self, r: &RunRecord) -> Result<()> {
        let params_json = serde_json::to_string(&r.params).expect("string maps serialize");
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO runs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"),
                params![
                    r.id,
                    r.name,
                    r.image,
                    r.digest,
                    params_json,
                    r.owner,
                    r.detached,
                    r.timeout_ms.map(|t| t as i64),
                    r.state,
                    r.created_at as i64,
                    r.started_at.map(|t| t as i64),
                    r.stopped_at.map(|t| t as i64),
                    r.exit_reason,
                    r.events_seen as i64,
                    r.events_lost as i64,
                    r.header,
                    r.restarts,
                    r.object,
                    r.options,
                ],
            )
            .map(drop)
        })
    }

    /// Stores an object runs can be loaded from again (deduplicated by
    /// sha256); returns its sha256 for [`RunRecord::object`].
    pub fn put_object(&self, source: &Source) -> Result<String> {
        let sha = hex(&Sha256::digest(&source.object));
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO objects (sha256, object, definition) VALUES (?1, ?2, ?3)",
                params![sha, source.object, source.definition],
            )
            .map(drop)
        })?;
        Ok(sha)
    }

    /// Drops objects no run refers to (left by runs that failed to start).
    pub fn collect_objects(&self) -> Result<u64> {
        self.with(|c| {
            c.execute(
                "DELETE FROM objects WHERE sha256 NOT IN (SELECT object FROM runs WHERE object IS NOT NULL)",
                [],
            )
            .map(|n| n as u64)
        })
    }

    pub fn source(&self, sha256: &str) -> Result<Option<Source>> {
        self.with(|c| {
            c.query_row(
                "SELECT object, definition FROM objects WHERE sha256 = ?1",
                [sha256],
                |row| {
                    Ok(Source {
                        object: row.get(0)?,
                        definition: row.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Latest counters of a live run.
    pub fn update_counters(&self, id: &str, seen: u64, lost: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET events_seen = ?2, events_lost = ?3 WHERE id = ?1",
                params![id, seen as i64, lost as i64],
            )
            .map(drop)
        })
    }

    /// A run that was loaded again after a restart.
    pub fn mark_restored(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET restarts = restarts + 1, state = 'running' WHERE id = ?1",
                [id],
            )
            .map(drop)
        })
    }

    /// Records how a run ended.
    pub fn finish_run(
        &self,
        id: &str,
        state: &str,
        reason: &str,
        stopped_at: u64,
        seen: u64,
        lost: u64,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET state = ?2, exit_reason = ?3, stopped_at = ?4, events_seen = ?5, events_lost = ?6 WHERE id = ?1",
                params![id, state, reason, stopped_at as i64, seen as i64, lost as i64],
            )
            .map(drop)
        })
    }

    /// Every stored run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let rows = self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM runs ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    RunRecord {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        image: row.get(2)?,
                        digest: row.get(3)?,
                        params: BTreeMap::new(),
                        owner: row.get(5)?,
                        detached: row.get(6)?,
                        timeout_ms: row.get::<_, Option<i64>>(7)?.map(|t| t as u64),
                        state: row.get(8)?,
                        created_at: row.get::<_, i64>(9)? as u64,
                        started_at: row.get::<_, Option<i64>>(10)?.map(|t| t as u64),
                        stopped_at: row.get::<_, Option<i64>>(11)?.map(|t| t as u64),
                        exit_reason: row.get(12)?,
                        events_seen: row.get::<_, i64>(13)? as u64,
                        events_lost: row.get::<_, i64>(14)? as u64,
                        header: row.get(15)?,
                        restarts: row.get(16)?,
                        object: row.get(17)?,
                        options: row.get(18)?,
                    },
                    row.get::<_, String>(4)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(mut r, params)| {
                r.params = serde_json::from_str(&params).map_err(|e| StateError::Corrupt {
                    path: self.path.clone(),
                    id: r.id.clone(),
                    what: format!("params: {e}"),
                })?;
                Ok(r)
            })
            .collect()
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        Ok(self.runs()?.into_iter().find(|r| r.id == id))
    }

    /// Forgets a run, and its object when no other run uses it. Returns
    /// whether the run existed.
    pub fn remove_run(&self, id: &str) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute("DELETE FROM runs WHERE id = ?1", [id])?;
            tx.execute(
                "DELETE FROM objects WHERE sha256 NOT IN (SELECT object FROM runs WHERE object IS NOT NULL)",
                [],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    /// Forgets the oldest ended attached runs beyond the newest `keep`
    /// (their history only; detached runs stay until `rm`). Returns how many.
    pub fn prune_history(&self, keep: u64) -> Result<u64> {
        self.with(|c| {
            c.execute(
                "DELETE FROM runs WHERE detached = 0 AND state NOT IN ('running', 'starting') AND id NOT IN \
                 (SELECT id FROM runs WHERE detached = 0 ORDER BY created_at DESC, id DESC LIMIT ?1)",
                [keep as i64],
            )
            .map(|n| n as u64)
        })
    }

    /// Number of stored objects (for tests and `gadgetd` diagnostics).
    pub fn object_count(&self) -> Result<u64> {
        self.with(|c| {
            c.query_row("SELECT COUNT(*) FROM objects", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, detached: bool) -> RunRecord {
        RunRecord {
            id: id.into(),
            name: format!("n-{id}"),
            image: "file:/x.o".into(),
            digest: String::new(),
            params: BTreeMap::from([("targ_pid".to_string(), "42".to_string())]),
            owner: 1000,
            detached,
            timeout_ms: Some(5000),
            state: "running".into(),
            created_at: 10,
            started_at: Some(11),
            stopped_at: None,
            exit_reason: String::new(),
            events_seen: 0,
            events_lost: 0,
            header: "{\"gadgetd\":\"header\"}\n".into(),
            restarts: 0,
            object: None,
            options: vec![1, 2, 3],
        }
    }

    #[test]
    fn runs_round_trip_and_end() {
        let s = Store::in_memory().unwrap();
        assert_eq!(s.schema_version().unwrap(), 2);
        s.insert_run(&record("aa", true)).unwrap();
        s.insert_run(&record("bb", false)).unwrap();
        s.update_counters("aa", 7, 1).unwrap();
        s.finish_run("bb", "failed", "error: x", 20, 3, 0).unwrap();
        let runs = s.runs().unwrap();
        assert_eq!(runs.len(), 2);
        let aa = &runs[0];
        assert_eq!(
            (aa.events_seen, aa.events_lost, aa.state.as_str()),
            (7, 1, "running")
        );
        assert_eq!(aa.params["targ_pid"], "42");
        assert_eq!(aa.timeout_ms, Some(5000));
        assert_eq!(aa.options, [1, 2, 3], "the scope options round-trip");
        let bb = &runs[1];
        assert_eq!(
            (bb.state.as_str(), bb.exit_reason.as_str(), bb.stopped_at),
            ("failed", "error: x", Some(20))
        );
        s.mark_restored("aa").unwrap();
        assert_eq!(s.run("aa").unwrap().unwrap().restarts, 1);
    }

    #[test]
    fn objects_are_shared_and_collected_with_their_last_run() {
        let s = Store::in_memory().unwrap();
        s.insert_run(&record("aa", true)).unwrap();
        s.insert_run(&record("bb", true)).unwrap();
        let src = Source {
            object: vec![0x7f, b'E', b'L', b'F'],
            definition: "name: x\n".into(),
        };
        let sha = s.put_object(&src).unwrap();
        assert_eq!(s.put_object(&src).unwrap(), sha);
        assert_eq!(s.object_count().unwrap(), 1);
        for id in ["aa", "bb"] {
            s.with(|c| c.execute("UPDATE runs SET object = ?2 WHERE id = ?1", [id, &sha]))
                .unwrap();
        }
        assert_eq!(s.source(&sha).unwrap().unwrap(), src);
        assert!(s.remove_run("aa").unwrap());
        assert_eq!(s.object_count().unwrap(), 1);
        assert!(s.remove_run("bb").unwrap());
        assert_eq!(s.object_count().unwrap(), 0);
        assert!(!s.remove_run("bb").unwrap());
        s.put_object(&src).unwrap();
        assert_eq!(s.collect_objects().unwrap(), 1);
        assert_eq!(s.object_count().unwrap(), 0);
    }

    #[test]
    fn history_of_attached_runs_is_bounded_and_detached_runs_stay() {
        let s = Store::in_memory().unwrap();
        for i in 0..5u64 {
            let mut r = record(&format!("a{i}"), false);
            r.created_at = i;
            r.state = if i == 0 {
                "running".into()
            } else {
                "stopped".into()
            };
            s.insert_run(&r).unwrap();
        }
        let mut d = record("d0", true);
        d.state = "stopped".into();
        s.insert_run(&d).unwrap();
        assert_eq!(s.prune_history(2).unwrap(), 2);
        let ids: Vec<String> = s.runs().unwrap().into_iter().map(|r| r.id).collect();
        // The two newest, the running one and the detached one remain.
        assert_eq!(ids, ["a0", "a3", "a4", "d0"]);
    }

    #[test]
    fn a_newer_schema_is_refused_with_the_path() {
        let dir = std::env::temp_dir().join(format!("gadgetd-state-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        {
            let s = Store::open(&dir).unwrap();
            s.with(|c| c.pragma_update(None, "user_version", 99))
                .unwrap();
        }
        let e = Store::open(&dir)
            .err()
            .expect("newer schema must be refused")
            .to_string();
        assert!(
            e.contains("schema version 99") && e.contains("state.db"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
