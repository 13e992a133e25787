//! A run started over the bus (`RunObject`, no gadgetd-side timeout) that a
//! test drives by conditions instead of sleeps: it waits until the agent
//! has read a number of the run's events (`EventsSeen`, read live), stops
//! the run when it chooses, and reads the raw event stream when it chooses
//! (not at all until then: the agent's queue for it fills up).

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A live run of one object and its (unread) event stream.
pub struct BusRun {
    rt: tokio::runtime::Runtime,
    mgr: gadgetd_dbus::ManagerProxy<'static>,
    run: gadgetd_dbus::RunProxy<'static>,
    /// The run's id (the last element of its object path).
    pub id: String,
    stream: Option<UnixStream>,
}

impl BusRun {
    /// Runs `object` with `params` (gadget parameters, e.g. `targ_pid`);
    /// panics naming the error when the agent refuses it.
    pub fn start(bus: &crate::Bus, object: &std::path::Path, params: &[(&str, &str)]) -> BusRun {
        let rt = crate::rt();
        let (mgr, run, id, fd) = rt.block_on(async {
            let mgr = bus.manager().await;
            let file =
                std::fs::File::open(object).unwrap_or_else(|e| panic!("{}: {e}", object.display()));
            let (path, fd) = mgr
                .run_object(
                    zbus::zvariant::Fd::from(std::os::fd::AsFd::as_fd(&file)),
                    "",
                    params.iter().copied().collect(),
                    std::collections::HashMap::new(),
                )
                .await
                .unwrap_or_else(|e| panic!("RunObject {}: {e}", object.display()));
            // Counters are read from the agent on each call, not from the
            // proxy's cache (which PropertiesChanged updates once a second).
            let run = gadgetd_dbus::RunProxy::builder(mgr.inner().connection())
                .path(path.clone())
                .unwrap()
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
                .unwrap();
            let id = path.as_str().rsplit('/').next().unwrap().to_string();
            (mgr, run, id, fd)
        });
        BusRun {
            rt,
            mgr,
            run,
            id,
            stream: Some(UnixStream::from(std::os::fd::OwnedFd::from(fd))),
        }
    }

    /// The events the agent has read of this run so far (`EventsSeen`).
    pub fn events_seen(&self) -> u64 {
        self.rt
            .block_on(self.run.events_seen())
            .unwrap_or_else(|e| panic!("EventsSeen of run {}: {e}", self.id))
    }

    /// Waits until the agent has read at least `n` events of this run and
    /// returns how many it has; panics after `limit` naming both counts.
    /// A ring's last record may be held back up to one busy pause (5 ms,
    /// `reader.rs`), so this polls every millisecond until the count is there.
    pub fn wait_seen(&self, n: u64, limit: Duration) -> u64 {
        let start = Instant::now();
        loop {
            let seen = self.events_seen();
            if seen >= n {
                return seen;
            }
            assert!(
                start.elapsed() < limit,
                "run {}: the agent read {seen} of {n} events in {limit:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The run's event stream (the caller's end), once.
    pub fn take_stream(&mut self) -> UnixStream {
        self.stream.take().expect("the stream was taken already")
    }

    /// Stops the run (`Manager.Stop`); returns once it has stopped.
    pub fn stop(&self) {
        self.rt
            .block_on(self.mgr.stop(&self.id))
            .unwrap_or_else(|e| panic!("Stop {}: {e}", self.id));
    }
}

/// Reads `stream` to its end on a thread of its own: every line.
pub fn read_lines(stream: UnixStream) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stream)
            .lines()
            .map(|l| l.expect("event stream line"))
            .collect()
    })
}
