//! The fallback log when journald is absent: per run, the last `capacity`
//! lines (events and loss reports) with their time, in memory. Readers can
//! follow it; old lines fall off the front, and a reader that fell behind
//! is told how many it missed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct MemLogs {
    inner: Arc<Mutex<HashMap<String, Arc<MemLog>>>>,
    capacity: usize,
}

pub struct MemLog {
    lines: Mutex<Ring>,
    pub changed: Notify,
}

struct Ring {
    /// (sequence number, microseconds since the epoch, line without newline)
    lines: VecDeque<(u64, u64, Bytes)>,
    next_seq: u64,
    capacity: usize,
}

impl MemLogs {
    pub fn new(capacity: usize) -> MemLogs {
        MemLogs {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// The log of `run`, created on first use.
    pub fn log(&self, run: &str) -> Arc<MemLog> {
        self.inner
            .lock()
            .unwrap()
            .entry(run.to_string())
            .or_insert_with(|| {
                Arc::new(MemLog {
                    lines: Mutex::new(Ring {
                        lines: VecDeque::new(),
                        next_seq: 0,
                        capacity: self.capacity,
                    }),
                    changed: Notify::new(),
                })
            })
            .clone()
    }

    pub fn get(&self, run: &str) -> Option<Arc<MemLog>> {
        self.inner.lock().unwrap().get(run).cloned()
    }

    pub fn remove(&self, run: &str) {
        self.inner.lock().unwrap().remove(run);
    }
}

impl MemLog {
    pub fn push(&self, at_us: u64, line: Bytes) {
        {
            let mut ring = self.lines.lock().unwrap();
            if ring.lines.len() == ring.capacity {
                ring.lines.pop_front();
            }
            let seq = ring.next_seq;
            ring.next_seq += 1;
            ring.lines.push_back((seq, at_us, line));
        }
        self.changed.notify_waiters();
    }

    /// Lines with sequence number >= `from` and time >= `since_us`; returns
    /// them, how many before `from`..first kept were dropped, and the next `from`.
    pub fn read_from(&self, from: u64, since_us: u64) -> (Vec<Bytes>, u64, u64) {
        let ring = self.lines.lock().unwrap();
        let first = ring.lines.front().map(|l| l.0).unwrap_or(ring.next_seq);
        let missed = first.saturating_sub(from);
        let lines = ring
            .lines
            .iter()
            .filter(|(seq, at, _)| *seq >= from && *at >= since_us)
            .map(|(_, _, l)| l.clone())
            .collect();
        (lines, if from == 0 { 0 } else { missed }, ring.next_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_and_reports_what_a_follower_missed() {
        let logs = MemLogs::new(3);
        let log = logs.log("r1");
        for i in 0..5u64 {
            log.push(i * 10, Bytes::from(format!("{{\"n\":{i}}}")));
        }
        let (lines, missed, next) = log.read_from(0, 0);
        assert_eq!(
            lines,
            vec![
                Bytes::from("{\"n\":2}"),
                Bytes::from("{\"n\":3}"),
                Bytes::from("{\"n\":4}")
            ]
        );
        assert_eq!((missed, next), (0, 5));
        let (lines, _, _) = log.read_from(0, 35);
        assert_eq!(lines, vec![Bytes::from("{\"n\":4}")]);
        // A follower at seq 1 missed seqs 1 (seq 2 is the oldest kept).
        for i in 5..8u64 {
            log.push(i * 10, Bytes::from(format!("{{\"n\":{i}}}")));
        }
        let (lines, missed, next) = log.read_from(4, 0);
        assert_eq!((lines.len(), missed, next), (3, 1, 8));
        assert!(logs.get("r2").is_none());
    }
}
