//! Testing gadgets (the seed's "Gadgets Testing"), for our gadget library and
//! for third-party authors: run a gadget in-process on the real kernel, run a
//! workload (optionally in fresh namespaces or as another user), and get the
//! captured events, tables or histograms back as JSON to assert on.
//!
//! ```no_run
//! use gadgetd_runtime::testing::{GadgetTest, Workload};
//! let test = GadgetTest::from_files("build/gadgets/trace_open.o", None).unwrap();
//! let child = Workload::new("cat").arg("/etc/hostname");
//! let capture = test.trace(|| child.run()).unwrap();
//! let ev = capture.find(|e| e["fname"] == "/etc/hostname").expect("no event");
//! assert_eq!(ev["comm"], "cat");
//! ```
//!
//! Everything needs root (or CAP_BPF+CAP_PERFMON), like the agent.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::{Gadget, GadgetError, Record, RunOptions};

/// One JSON object: an event, a table row or a histogram.
pub type Event = Map<String, Value>;

/// A gadget plus the options to start it with.
pub struct GadgetTest {
    /// The parsed gadget.
    pub gadget: Gadget,
    /// Parameters and filters for each start (default: none).
    pub options: RunOptions,
    /// How long to keep reading after the workload ends (events are batched).
    pub settle: Duration,
}

/// What a run produced.
#[derive(Debug, Default, Clone)]
pub struct Capture {
    /// Tracer events and profiler histograms, in order.
    pub events: Vec<Event>,
    /// Snapshot and topper tables, in order.
    pub tables: Vec<Vec<Event>>,
    /// Events the kernel dropped.
    pub lost: u64,
}

impl Capture {
    /// The first event (or table row) matching `pred`.
    pub fn find(&self, pred: impl Fn(&Event) -> bool) -> Option<&Event> {
        self.events
            .iter()
            .chain(self.tables.iter().flatten())
            .find(|e| pred(e))
    }

    /// Every event (and table row) matching `pred`.
    pub fn all(&self, pred: impl Fn(&Event) -> bool) -> Vec<&Event> {
        self.events
            .iter()
            .chain(self.tables.iter().flatten())
            .filter(|e| pred(e))
            .collect()
    }
}

impl GadgetTest {
    /// An object file and, optionally, its definition YAML.
    pub fn from_files(
        object: impl AsRef<Path>,
        definition: Option<&Path>,
    ) -> Result<GadgetTest, GadgetError> {
        let bytes = std::fs::read(object.as_ref())?;
        let yaml = match definition {
            Some(p) => Some(std::fs::read_to_string(p)?),
            None => None,
        };
        Ok(GadgetTest {
            gadget: Gadget::from_object(bytes, yaml.as_deref())?,
            options: RunOptions::default(),
            settle: Duration::from_millis(300),
        })
    }

    /// Sets a parameter, as `--NAME VALUE` would.
    pub fn param(mut self, name: &str, value: impl ToString) -> GadgetTest {
        self.options.params.insert(name.into(), value.to_string());
        self
    }

    /// Tracers, toppers and profilers: starts the gadget, runs `workload` on
    /// a thread while reading, keeps reading for [`GadgetTest::settle`], then
    /// stops (profilers print their histograms here).
    pub fn trace<R: Send>(
        &self,
        workload: impl FnOnce() -> R + Send,
    ) -> Result<Capture, GadgetError> {
        self.trace_with(workload).map(|(c, _)| c)
    }

    /// Like [`GadgetTest::trace`], also returning what the workload returned.
    pub fn trace_with<R: Send>(
        &self,
        workload: impl FnOnce() -> R + Send,
    ) -> Result<(Capture, R), GadgetError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let _guard = rt.enter();
        let mut running = self.gadget.start(&self.options)?;
        let mut capture = Capture::default();
        std::thread::scope(|scope| {
            let work = scope.spawn(workload);
            rt.block_on(async {
                let mut until: Option<Instant> = None;
                loop {
                    if until.is_none() && work.is_finished() {
                        until = Some(Instant::now() + self.settle);
                    }
                    let wait = match until {
                        Some(t) if Instant::now() >= t => break,
                        Some(t) => t - Instant::now(),
                        None => Duration::from_millis(50),
                    };
                    match tokio::time::timeout(wait, running.next_record()).await {
                        Ok(Ok(Some(rec))) => capture.add(rec),
                        Ok(Ok(None)) => break,
                        Ok(Err(e)) => return Err(e),
                        Err(_) => {}
                    }
                }
                Ok(())
            })?;
            for rec in running.finish()? {
                capture.add(rec);
            }
            capture.lost += running.final_losses();
            let result = work.join().expect("the workload panicked");
            Ok((capture, result))
        })
    }

    /// Snapshotters: takes the snapshot now (run the workload before).
    pub fn snapshot(&self) -> Result<Vec<Event>, GadgetError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let _guard = rt.enter();
        let mut running = self.gadget.start(&self.options)?;
        rt.block_on(async {
            while let Some(rec) = running.next_record().await? {
                if let Record::Rows(rows) = rec {
                    return Ok(rows);
                }
            }
            Err(GadgetError::Reader {
                map: "(snapshot)".into(),
                reason: "the gadget ended without a snapshot".into(),
            })
        })
    }
}

impl Capture {
    fn add(&mut self, rec: Record) {
        match rec {
            Record::Event(e) => self.events.push(e),
            Record::Rows(rows) => self.tables.push(rows),
            Record::Lost(n) => self.lost += n,
        }
    }
}

/// A process to generate activity: a command, optionally as another user
/// and in fresh namespaces.
#[derive(Debug, Clone)]
pub struct Workload {
    program: String,
    args: Vec<String>,
    uid: Option<(u32, u32)>,
    unshare: nix::sched::CloneFlags,
}

impl Workload {
    /// Runs `program` (looked up in `PATH`) with no arguments, as the caller.
    pub fn new(program: &str) -> Workload {
        Workload {
            program: program.into(),
            args: Vec::new(),
            uid: None,
            unshare: nix::sched::CloneFlags::empty(),
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, a: impl Into<String>) -> Workload {
        self.args.push(a.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Workload {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    /// Runs as this uid and gid.
    pub fn as_user(mut self, uid: u32, gid: u32) -> Workload {
        self.uid = Some((uid, gid));
        self
    }

    /// Runs in a new network namespace (only `lo`, down).
    pub fn in_new_netns(mut self) -> Workload {
        self.unshare |= nix::sched::CloneFlags::CLONE_NEWNET;
        self
    }

    /// Runs in a new mount namespace (mounts stay private to it).
    pub fn in_new_mntns(mut self) -> Workload {
        self.unshare |= nix::sched::CloneFlags::CLONE_NEWNS;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        // cargo's test environment puts every build-script output directory
        // in LD_LIBRARY_PATH: a workload would then probe each for each
        // library, hundreds of failed opens that can fill a tracer's ring
        // before the activity under test.
        cmd.args(&self.args)
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let flags = self.unshare;
        let ids = self.uid;
        if !flags.is_empty() || ids.is_some() {
            // std switches uid before pre_exec runs, so unshare (which needs
            // privileges) and the uid switch both happen here, in that order.
            // SAFETY: only async-signal-safe syscalls run in the child.
            unsafe {
                cmd.pre_exec(move || {
                    use nix::unistd::{Gid, Uid};
                    if !flags.is_empty() {
                        nix::sched::unshare(flags).map_err(std::io::Error::from)?;
                    }
                    if flags.contains(nix::sched::CloneFlags::CLONE_NEWNS) {
                        nix::mount::mount(
                            None::<&str>,
                            "/",
                            None::<&str>,
                            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                            None::<&str>,
                        )
                        .map_err(std::io::Error::from)?;
                    }
                    if let Some((uid, gid)) = ids {
                        nix::unistd::setgroups(&[]).map_err(std::io::Error::from)?;
                        nix::unistd::setgid(Gid::from_raw(gid)).map_err(std::io::Error::from)?;
                        nix::unistd::setuid(Uid::from_raw(uid)).map_err(std::io::Error::from)?;
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// Runs to completion; returns the child's pid and exit status (stderr on failure in the panic).
    pub fn run(&self) -> (u32, ExitStatus) {
        let child = self
            .command()
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program));
        let pid = child.id();
        let out = child.wait_with_output().expect("waiting for the workload");
        (pid, out.status)
    }

    /// Starts it and returns the child (for long-running workloads).
    pub fn spawn(&self) -> std::process::Child {
        self.command()
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program))
    }
}
