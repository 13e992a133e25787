//! Direct output (`output-fd`): the agent writes a client's event lines
//! straight into the client's own pipe, FIFO or regular file; the stream
//! keeps the header, control lines and the end line. Real agent, real
//! kernel, opens this test makes itself.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gadgetd_tests::system::{Service, Users};
use gadgetd_tests::*;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use serde_json::Value;
use zbus::zvariant::{Fd, Value as DValue};

/// File names with one character a terminal acts on each (ESC, DEL, CSI as
/// U+009B, a right-to-left override, a left-to-right isolate, a zero-width
/// no-break space, an invalid UTF-8 byte) and a safe non-ASCII one; with
/// the exact text their `fname` must have in the JSON line.
const NAMES: [(&[u8], &str); 8] = [
    (b"esc\x1b[2J", r"esc\u001b[2J"),
    (b"del\x7f", r"del\u007f"),
    (b"csi\xc2\x9b31m", r"csi\u009b31m"),
    (b"rlo\xe2\x80\xae", r"rlo\u202e"),
    (b"lri\xe2\x81\xa6", r"lri\u2066"),
    (b"bom\xef\xbb\xbf", r"bom\ufeff"),
    (b"bad\xff", r"bad\\xff"),
    (b"ok\xc3\xa9", "ok\u{e9}"),
];

/// `gadgetctl run trace_open -o json` for our own pid with `stdout`, named
/// `name`; opens each of [`NAMES`] under `dir` (missing files) once the run
/// is live, stops it, and returns gadgetctl's exit status and stderr.
fn run_and_open(agent: &Agent, name: &str, stdout: Stdio, dir: &std::path::Path) -> (bool, String) {
    let child = trace_ours(agent, name, stdout);
    let out = open_names_then_stop(
        child,
        name,
        dir,
        || drop(agent.wait_running(1)),
        || drop(ok(&agent.ctl(&["stop", name]), "stop")),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Once `live()` returns (the run `name` of `child` is running), opens
/// each of [`NAMES`] under `dir` (missing files), then `stop()`s the run;
/// `child`'s output.
fn open_names_then_stop(
    child: std::process::Child,
    name: &str,
    dir: &std::path::Path,
    live: impl FnOnce(),
    stop: impl FnOnce(),
) -> std::process::Output {
    live();
    for (file, _) in NAMES {
        let path = dir.join(std::ffi::OsStr::from_bytes(
            &[name.as_bytes(), b"-", file].concat(),
        ));
        assert!(std::fs::File::open(&path).is_err());
    }
    // The stop comes after the events: trace_open's ring is read as they come.
    std::thread::sleep(Duration::from_millis(300));
    stop();
    child.wait_with_output().unwrap()
}

/// `gadgetctl run trace_open -o json --name NAME` for our own pid, its
/// stdout `stdout`, its stderr piped.
fn trace_ours(agent: &Agent, name: &str, stdout: Stdio) -> std::process::Child {
    let gadget = gadget("trace_open");
    let me = format!("targ_pid={}", std::process::id());
    Command::new(bin("gadgetctl"))
        .arg("--address")
        .arg(&agent.bus_address)
        .args([
            "run",
            gadget.to_str().unwrap(),
            "-o",
            "json",
            "--name",
            name,
        ])
        .args(["--timeout", "60s", "-p", &me])
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Our events in `text` (JSON lines), checked: exactly [`NAMES`] opened by
/// us in order, each `fname` written exactly as expected, and every line
/// that holds no safe non-ASCII name plain printable ASCII.
fn check_our_events(text: &[u8], dir: &std::path::Path, name: &str) {
    let prefix = format!("{}/{name}-", dir.to_str().unwrap());
    let ours: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| l.windows(prefix.len()).any(|w| w == prefix.as_bytes()))
        .collect();
    assert_eq!(
        ours.len(),
        NAMES.len(),
        "{name}: {}",
        String::from_utf8_lossy(text)
    );
    for (line, (_, want)) in ours.iter().zip(NAMES) {
        let raw = format!("\"fname\":\"{prefix}{want}\"");
        let text = String::from_utf8(line.to_vec()).unwrap();
        assert!(text.contains(&raw), "{name}: {raw} not in {text}");
        if !want.contains('\u{e9}') {
            assert!(
                line.iter().all(|b| (0x20..0x7f).contains(b)),
                "{name}: not plain ASCII: {text}"
            );
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["proc.pid"], std::process::id(), "{name}");
        assert_eq!(v["error"], "ENOENT", "{name}");
    }
}

/// All `child`'s piped stderr (read to EOF: call once it has exited or is exiting).
fn take_stderr(child: &mut std::process::Child) -> String {
    let mut text = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn is_blocking(fd: impl AsFd) -> bool {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL).unwrap());
    !flags.contains(OFlag::O_NONBLOCK)
}

/// gadgetctl's stdout a pipe, a new file, and a file opened `O_APPEND`
/// with text in it: the agent writes our events there (gadgetctl writes
/// nothing), terminal-safe; the command ends cleanly; the pipe's
/// description stays blocking.
#[test]
fn events_go_straight_into_a_pipe_or_a_file_terminal_safe() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("direct");

    let (r, w) = nix::unistd::pipe().unwrap();
    let ours = w.try_clone().unwrap();
    let (success, stderr) = run_and_open(&agent, "to-pipe", Stdio::from(w), dir.path());
    assert!(success && stderr.is_empty(), "{stderr}");
    assert!(is_blocking(&ours), "the caller's pipe became non-blocking");
    // With every capability the agent reopens the pipe as its own.
    assert_eq!(not_reopened(&agent.log_text()), Vec::<&str>::new());
    drop(ours);
    // EOF: gadgetctl exited and the agent closed its own description.
    let mut text = Vec::new();
    std::fs::File::from(r).read_to_end(&mut text).unwrap();
    check_our_events(&text, dir.path(), "to-pipe");

    let path = dir.path().join("out.json");
    let file = std::fs::File::create(&path).unwrap();
    let (success, stderr) = run_and_open(&agent, "to-file", Stdio::from(file), dir.path());
    assert!(success && stderr.is_empty(), "{stderr}");
    check_our_events(&std::fs::read(&path).unwrap(), dir.path(), "to-file");

    std::fs::write(&path, b"prior text\n").unwrap();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let (success, stderr) = run_and_open(&agent, "append", Stdio::from(file), dir.path());
    assert!(success && stderr.is_empty(), "{stderr}");
    let text = std::fs::read(&path).unwrap();
    assert!(
        text.starts_with(b"prior text\n{"),
        "{}",
        String::from_utf8_lossy(&text)
    );
    check_our_events(&text, dir.path(), "append");
}

/// The same run with stdout a socket: gadgetctl keeps the stream path and
/// escapes the events itself (the agent already did); and with
/// GADGETCTL_NO_DIRECT=1 on a pipe.
#[test]
fn a_socket_stdout_or_the_opt_out_keeps_the_stream_path() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("direct-socket");
    let (ours, theirs) = UnixStream::pair().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        (&ours).read_to_end(&mut text).unwrap();
        text
    });
    let (success, stderr) = run_and_open(
        &agent,
        "to-socket",
        Stdio::from(OwnedFd::from(theirs)),
        dir.path(),
    );
    assert!(success && stderr.is_empty(), "{stderr}");
    check_our_events(&reader.join().unwrap(), dir.path(), "to-socket");

    // SAFETY: tests in this file run one at a time (--test-threads=1 in
    // CI); nothing else reads the environment concurrently.
    unsafe { std::env::set_var("GADGETCTL_NO_DIRECT", "1") };
    let (r, w) = nix::unistd::pipe().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::fs::File::from(r).read_to_end(&mut text).unwrap();
        text
    });
    let result = run_and_open(&agent, "opted-out", Stdio::from(w), dir.path());
    unsafe { std::env::remove_var("GADGETCTL_NO_DIRECT") };
    assert!(result.0 && result.1.is_empty(), "{}", result.1);
    check_our_events(&reader.join().unwrap(), dir.path(), "opted-out");
}

/// Opens `probe` (missing) and reads the first line from `reader`: an
/// event of ours (the probe, or a file this process opened meanwhile, such
/// as /dev/null for a spawned `list`).
fn first_line_is_ours(reader: &mut impl BufRead, probe: &std::path::Path) {
    assert!(std::fs::File::open(probe).is_err());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["proc.pid"], std::process::id(), "{first}");
}

/// Opens `probe` (missing) every 20 ms until `child` exits (20 s at most):
/// its exit status.
fn open_until_exit(
    child: &mut std::process::Child,
    probe: &std::path::Path,
) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        assert!(std::fs::File::open(probe).is_err());
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "gadgetctl did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `gadgetctl run -o json | head -1`: the agent meets the closed pipe,
/// ends that client's delivery and the run (its only client went away);
/// gadgetctl exits successfully, saying nothing.
#[test]
fn a_closed_pipe_ends_the_client_and_the_run_cleanly() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("direct-head");
    let mut child = trace_ours(&agent, "head", Stdio::piped());
    agent.wait_running(1);
    let probe = dir.path().join("probe");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    first_line_is_ours(&mut reader, &probe);
    drop(reader); // head -1 exits
    let status = open_until_exit(&mut child, &probe);
    let stderr = take_stderr(&mut child);
    assert!(status.success() && stderr.is_empty(), "{status}: {stderr}");
    // The run ended because its only client went away.
    wait_for("the run to end", Duration::from_secs(10), || {
        agent.log_text().contains("reason=client disconnected")
    });
    assert!(agent.ctl(&["list", "-o", "json"]).stdout.is_empty());
}

/// Lines of a stream or pipe, read to EOF on a thread; each line matching
/// `notify` is also sent on the returned channel as it comes.
fn read_lines(
    from: impl Read + Send + 'static,
    notify: &'static str,
) -> (
    std::thread::JoinHandle<Vec<String>>,
    std::sync::mpsc::Receiver<String>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(from).lines() {
            let line = line.unwrap();
            if line.contains(notify) {
                let _ = tx.send(line.clone());
            }
            all.push(line);
        }
        all
    });
    (thread, rx)
}

/// The live `EventsSeen` of a run: each read asks the agent (no cache).
struct Seen<'a> {
    rt: &'a tokio::runtime::Runtime,
    run: gadgetd_dbus::RunProxy<'static>,
}

impl<'a> Seen<'a> {
    fn new(
        rt: &'a tokio::runtime::Runtime,
        mgr: &gadgetd_dbus::ManagerProxy<'static>,
        path: zbus::zvariant::OwnedObjectPath,
    ) -> Seen<'a> {
        let run = rt.block_on(async {
            gadgetd_dbus::RunProxy::builder(mgr.inner().connection())
                .path(path)
                .unwrap()
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
                .unwrap()
        });
        Seen { rt, run }
    }

    fn now(&self) -> u64 {
        self.rt.block_on(self.run.events_seen()).unwrap()
    }
}

/// Opens `{prefix}{tag}0` .. `{prefix}{tag}{n-1}` (missing files); after
/// every `burst`, waits until the agent has read as many more events of
/// the run (`seen`): paced by what the agent read, not by time, so
/// trace_open's ring never overflows however slowly a loaded machine runs
/// the agent.
fn open_missing(prefix: &str, tag: &str, n: u64, burst: u64, seen: &Seen<'_>) {
    let base = seen.now();
    for i in 1..=n {
        assert!(std::fs::File::open(format!("{prefix}{tag}{}", i - 1)).is_err());
        if i % burst == 0 {
            let start = Instant::now();
            while seen.now() < base + i {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "the agent read {} of {i} events",
                    seen.now() - base
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// Our opens of `{prefix}bN` in `lines` came in order, none twice, the
/// last one `b999`.
fn assert_later_opens_in_order(lines: &[String], prefix: &str) {
    let later: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.split(&format!("\"{prefix}b")).nth(1))
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        later.windows(2).all(|w| w[0] < w[1]),
        "out of order or twice"
    );
    assert_eq!(later.last(), Some(&999));
}

/// Events and `slow-reader` losses of one client: (events, lost).
fn count(lines: &[String], who: &str) -> (u64, u64) {
    let (mut events, mut lost) = (0, 0);
    for line in lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{who}: {e}: {line:.200}"));
        match v["gadgetd"].as_str() {
            Some("lost") => {
                assert_eq!(v["cause"], "slow-reader", "{who}: {line}");
                lost += v["count"].as_u64().unwrap();
            }
            Some(_) => {}
            None => events += 1,
        }
    }
    (events, lost)
}

/// A pipe nobody reads: the run goes on (an attacher reading its socket
/// and one reading its own pipe get our marker while the pipe is stuck),
/// the client is told on its stream exactly how many events it lost, and
/// once reading resumes later events arrive. Every event the run saw is
/// in the pipe or counted lost; the stream carries no event; the end line
/// comes after the agent's last write (no writer is left on the pipe).
#[test]
fn a_pipe_nobody_reads_loses_whole_batches_told_on_the_stream() {
    let bus = Bus::start();
    let _agent = Agent::start(&bus);
    let gadget = gadget("trace_open");
    let dir = TempDir::new("direct-slow");
    let prefix = format!("{}/", dir.path().to_str().unwrap());
    let me = std::process::id().to_string();
    let rt = rt();
    let (stuck_r, stuck_w) = nix::unistd::pipe().unwrap();
    let (piped_r, piped_w) = nix::unistd::pipe().unwrap();
    let (mgr, path, id, own, fast, piped) = rt.block_on(async {
        let mgr = bus.manager().await;
        let file = std::fs::File::open(&gadget).unwrap();
        let params = HashMap::from([("targ_pid", me.as_str())]);
        let opts = HashMap::from([("output-fd", DValue::Fd(Fd::from(stuck_w.as_fd())))]);
        let (path, own) = mgr
            .run_object(Fd::from(file.as_fd()), "", params, opts)
            .await
            .unwrap();
        let id = path.as_str().rsplit('/').next().unwrap().to_string();
        let fast = mgr.attach(&id).await.unwrap();
        let opts = HashMap::from([("output-fd", DValue::Fd(Fd::from(piped_w.as_fd())))]);
        let piped = mgr.attach_with_options(&id, opts).await.unwrap();
        (mgr, path, id, own, fast, piped)
    });
    let agent_read = Seen::new(&rt, &mgr, path);
    drop((stuck_w, piped_w)); // the agent writes through descriptions of its own
    let stream = |fd: zbus::zvariant::OwnedFd| UnixStream::from(OwnedFd::from(fd));
    // The caller's stream: at its end line, no writer may be left on the pipe.
    let watch = stuck_r.try_clone().unwrap();
    let own = std::thread::spawn({
        let own = stream(own);
        move || {
            let mut lines = Vec::new();
            for line in BufReader::new(own).lines() {
                let line = line.unwrap();
                if line.starts_with("{\"gadgetd\":\"end\"") {
                    let mut fd = libc::pollfd {
                        fd: std::os::fd::AsRawFd::as_raw_fd(&watch),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd, `watch` open for the call.
                    assert_eq!(unsafe { libc::poll(&mut fd, 1, 0) }, 1);
                    let hup = fd.revents & libc::POLLHUP != 0;
                    assert!(hup, "the end line came while the agent still held the pipe");
                }
                lines.push(line);
            }
            lines
        }
    });
    let (fast, fast_marks) = read_lines(stream(fast), "marker");
    let (piped_stream, _) = read_lines(stream(piped), "\u{0}");
    let (piped, piped_marks) = read_lines(std::fs::File::from(piped_r), "marker");

    // ~60k events of ~600 bytes: far more than the 4 MiB queue and the pipe.
    open_missing(&prefix, "a", 60_000, 1000, &agent_read);
    // The run task never stalled: both other clients get a later open.
    let start = Instant::now();
    let (mut fast_saw, mut piped_saw) = (false, false);
    while !(fast_saw && piped_saw) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the run stalled: {fast_saw} {piped_saw}"
        );
        assert!(std::fs::File::open(format!("{prefix}marker")).is_err());
        fast_saw |= fast_marks.recv_timeout(Duration::from_millis(50)).is_ok();
        piped_saw |= piped_marks.try_recv().is_ok();
    }
    // Reading resumes; later events arrive.
    let (stuck, stuck_marks) = read_lines(std::fs::File::from(stuck_r), "/b999\"");
    open_missing(&prefix, "b", 1000, 100, &agent_read);
    stuck_marks
        .recv_timeout(Duration::from_secs(30))
        .expect("the events after reading resumed never came");
    rt.block_on(mgr.stop(&id)).unwrap();

    let own = own.join().unwrap();
    let stuck = stuck.join().unwrap();
    let header: Value = serde_json::from_str(&own[0]).unwrap();
    assert_eq!(header["gadgetd"], "header");
    let end: Value = serde_json::from_str(own.last().unwrap()).unwrap();
    assert_eq!(end["gadgetd"], "end");
    assert_eq!(end["reason"], "stopped");
    assert!(end["error"].is_null(), "{end}");
    assert!(
        own.iter().all(|l| l.starts_with("{\"gadgetd\":")),
        "an event on the stream"
    );
    let seen = end["events_seen"].as_u64().unwrap();
    let (events, _) = count(&stuck, "stuck pipe");
    let (none, lost) = count(&own, "stuck stream");
    assert_eq!(none, 0);
    assert!(lost > 0, "60k events into a pipe nobody read, none lost?");
    assert_eq!(
        events + lost,
        seen,
        "pipe: {events} events + {lost} told lost"
    );
    // After reading resumed, our later opens came in order, none twice.
    assert_later_opens_in_order(&stuck, &prefix);
    // The other two clients: everything seen is delivered or counted.
    let (events, lost) = count(&fast.join().unwrap(), "socket attacher");
    assert_eq!(events + lost, seen, "socket attacher");
    let (none, lost) = count(&piped_stream.join().unwrap(), "piped attacher stream");
    assert_eq!(none, 0);
    let (events, _) = count(&piped.join().unwrap(), "piped attacher");
    assert_eq!(events + lost, seen, "piped attacher");
}

/// What the agent refuses as `output-fd`, each with an error naming the
/// problem: a socket, a character device, a read-only fd, any fd with
/// `detach`, a value that is not an fd, and an unknown attach option.
#[test]
fn unsupported_outputs_are_refused_with_a_clear_error() {
    let bus = Bus::start();
    let _agent = Agent::start(&bus);
    let gadget = gadget("trace_open");
    let rt = rt();
    rt.block_on(async {
        let mgr = bus.manager().await;
        let (socket, _peer) = UnixStream::pair().unwrap();
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let cases: [(DValue<'_>, bool, &str); 5] = [
            (
                DValue::Fd(Fd::from(socket.as_fd())),
                false,
                "option output-fd: the fd is a socket (gadgetd writes event lines only into a \
                 pipe, a FIFO or a regular file; leave output-fd out to get the events on the \
                 event stream)",
            ),
            (
                DValue::Fd(Fd::from(null.as_fd())),
                false,
                "option output-fd: the fd is a character device (a terminal?) (gadgetd writes \
                 event lines only into a pipe, a FIFO or a regular file; leave output-fd out to \
                 get the events on the event stream)",
            ),
            (
                DValue::Fd(Fd::from(read_end.as_fd())),
                false,
                "option output-fd: the fd is not open for writing (pass a descriptor opened \
                 write-only or read-write, such as your stdout)",
            ),
            (
                DValue::Fd(Fd::from(write_end.as_fd())),
                true,
                "option output-fd cannot be used with detach: a detached run's events go to the \
                 journal (read them with Logs)",
            ),
            (
                DValue::U32(1),
                false,
                "option output-fd must be a file descriptor (h)",
            ),
        ];
        for (value, detach, want) in cases {
            let file = std::fs::File::open(&gadget).unwrap();
            let mut opts = HashMap::from([("output-fd", value)]);
            if detach {
                opts.insert("detach", DValue::Bool(true));
            }
            let err = mgr
                .run_object(Fd::from(file.as_fd()), "", HashMap::new(), opts)
                .await
                .unwrap_err();
            let zbus::Error::MethodError(name, Some(msg), _) = &err else {
                panic!("{err}");
            };
            assert_eq!(name.as_str(), "org.freedesktop.DBus.Error.InvalidArgs");
            assert_eq!(msg, want);
        }
        // Attach: the same checks, and unknown options named.
        let file = std::fs::File::open(&gadget).unwrap();
        let (path, _stream) = mgr
            .run_object(Fd::from(file.as_fd()), "", HashMap::new(), HashMap::new())
            .await
            .unwrap();
        let id = path.as_str().rsplit('/').next().unwrap();
        for (key, value, want) in [
            (
                "output-fd",
                DValue::Fd(Fd::from(socket.as_fd())),
                "option output-fd: the fd is a socket",
            ),
            (
                "color",
                DValue::Bool(true),
                "unknown option `color` (AttachWithOptions takes output-fd)",
            ),
        ] {
            let err = mgr
                .attach_with_options(id, HashMap::from([(key, value)]))
                .await
                .unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
    });
}

// ---------------------------------------------------------------------
// The packaged unit and an ordinary user: the pipe is not reopened.
//
// units/gadgetd.service bounds the agent's capabilities to CAP_BPF,
// CAP_PERFMON, CAP_SYS_ADMIN, CAP_SYS_RESOURCE and CAP_NET_ADMIN: no
// CAP_DAC_OVERRIDE. A pipe made by an ordinary user is mode 0600 and
// theirs, so the agent may not reopen it through /proc/self/fd and writes
// the caller's own description with pwritev2(RWF_NOWAIT): in production
// this is the path every user's `gadgetctl run -o json | ...` takes.

/// Capability numbers (linux/capability.h) the unit leaves out and that
/// would let the agent open a pipe it does not own.
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_FOWNER: u32 = 3;
const CAP_BPF: u32 = 39;

/// What the agent logs (debug) when it may not reopen a pipe.
const NOT_REOPENED: &str = "pipe not reopened";

/// The unit's `CapabilityBoundingSet=` as setpriv's `--bounding-set`
/// argument: `-all,+bpf,+perfmon,...`.
fn unit_bounding_set() -> String {
    let unit = std::fs::read_to_string(repo_root().join("units/gadgetd.service")).unwrap();
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("units/gadgetd.service sets CapabilityBoundingSet=");
    let mut arg = String::from("-all");
    for cap in caps.split_whitespace() {
        let cap = cap
            .strip_prefix("CAP_")
            .expect("capability names start with CAP_");
        arg.push_str(",+");
        arg.push_str(&cap.to_lowercase());
    }
    arg
}

/// A capability set line (`CapEff:` ...) of `/proc/PID/status`.
fn capabilities(pid: u32, which: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(which))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

/// gadgetd with the unit's capability bounding set, serving `users`'s
/// group on its p2p socket. systemd is not PID 1 here (no systemd-run),
/// so setpriv drops the bounding set before the exec: uid 0 executing
/// gadgetd then gets exactly that set as its permitted and effective
/// capabilities, as under the unit (checked).
fn unit_agent(bus: &Bus, users: &Users) -> Service {
    let bounding = unit_bounding_set();
    let mut svc = Service::new(bus, &["--group", &users.group]).wrapped(&[
        "setpriv",
        "--bounding-set",
        &bounding,
        "--",
    ]);
    svc.start();
    let eff = capabilities(svc.pid(), "CapEff:");
    for (cap, name) in [
        (CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"),
        (CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
        (CAP_FOWNER, "CAP_FOWNER"),
    ] {
        assert_eq!(eff & (1 << cap), 0, "the agent has {name}: {eff:#x}");
    }
    assert_ne!(eff & (1 << CAP_BPF), 0, "the agent lacks CAP_BPF: {eff:#x}");
    assert_eq!(eff, capabilities(svc.pid(), "CapBnd:"));
    svc
}

/// `script` run by bash as `user` (with their groups), with `"$0" "$@"`
/// standing for `gadgetctl --address SOCKET ARGS...`; stdout and stderr
/// piped. The pipes and FIFOs the script makes are the user's.
fn ctl_as(
    user: &str,
    socket: &std::path::Path,
    args: &[&str],
    script: &str,
) -> std::process::Child {
    Users::command_as(user)
        .args(["bash", "-c", script])
        .arg(bin("gadgetctl"))
        .arg("--address")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `gadgetctl | TAIL` in bash, exiting with gadgetctl's status.
fn piped_into(tail: &str) -> String {
    format!("\"$0\" \"$@\" | {tail}; exit \"${{PIPESTATUS[0]}}\"")
}

/// `run trace_open -o json` of our own pid, named `name`.
fn trace_ours_args(name: &str) -> Vec<String> {
    [
        "run",
        gadget("trace_open").to_str().unwrap(),
        "-o",
        "json",
        "--name",
        name,
        "--timeout",
        "120s",
        "-p",
        &format!("targ_pid={}", std::process::id()),
    ]
    .map(String::from)
    .to_vec()
}

/// Waits until the run named `name` is running; its id.
fn wait_live(svc: &Service, name: &str) -> String {
    poll(
        &format!("run {name} to be running"),
        Duration::from_secs(20),
        || {
            svc.runs()
                .into_iter()
                .find(|r| r["name"] == name && r["state"] == "running")
                .map(|r| r["id"].as_str().unwrap().to_string())
        },
    )
}

/// The agent's debug lines saying it may not reopen a pipe.
fn not_reopened(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(NOT_REOPENED)).collect()
}

/// A user's pipe (`gadgetctl ... | cat`) and a user's FIFO (`mkfifo -m
/// 600`, `gadgetctl ... > fifo`) under the unit's capabilities: the agent
/// may not reopen either (EACCES, logged once per output). The pipe's own
/// description is written with RWF_NOWAIT; the FIFO, which Linux does not
/// write with RWF_NOWAIT, is refused (exact message) and gadgetctl falls
/// back to the stream. Either way our events arrive exactly,
/// terminal-safe, and gadgetctl exits 0 saying nothing.
#[test]
fn a_users_pipe_or_fifo_is_written_under_the_units_capabilities() {
    let users = Users::create();
    let bus = Bus::start();
    let svc = unit_agent(&bus, &users);
    let dir = TempDir::new("direct-nowait");
    let user_dir = TempDir::new("direct-nowait-user");
    let uid = Users::uid(&users.member);
    std::os::unix::fs::chown(user_dir.path(), Some(uid), None).unwrap();
    let fifo = user_dir.path().join("fifo");

    let cases = [
        (
            "user-pipe",
            piped_into("cat"),
            "fallback=RWF_NOWAIT on the caller's description",
        ),
        (
            "user-fifo",
            format!(
                "mkfifo -m 600 {0} && exec \"$0\" \"$@\" > {0}",
                fifo.display()
            ),
            "fallback=none, refused (a named FIFO takes no RWF_NOWAIT)",
        ),
    ];
    for (i, (name, script, fallback)) in cases.iter().enumerate() {
        let args = trace_ours_args(name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = ctl_as(&users.member, &svc.socket, &args, script);
        // The FIFO's reader: us (the open waits for the user's writer).
        let from_fifo = (*name == "user-fifo").then(|| {
            wait_for("the user's FIFO", Duration::from_secs(10), || fifo.exists());
            let st = nix::sys::stat::stat(&fifo).unwrap();
            assert_eq!((st.st_uid, st.st_mode & 0o777), (uid, 0o600));
            let mut fifo = std::fs::File::open(&fifo).unwrap();
            std::thread::spawn(move || {
                let mut text = Vec::new();
                fifo.read_to_end(&mut text).unwrap();
                text
            })
        });
        let out = open_names_then_stop(
            child,
            name,
            dir.path(),
            || drop(wait_live(&svc, name)),
            || {
                let out = svc.ctl(&["stop", name]);
                assert!(out.status.success(), "{}: {}", stderr(&out), svc.log());
            },
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.is_empty(),
            "{name}: {}: {err}",
            out.status
        );
        let text = match from_fifo {
            Some(reader) => {
                assert!(out.stdout.is_empty());
                reader.join().unwrap()
            }
            None => out.stdout,
        };
        check_our_events(&text, dir.path(), name);
        // Refused, and said so: once per output, with the reason.
        let log = svc.log();
        let refused = not_reopened(&log);
        assert_eq!(refused.len(), i + 1, "{name}: {log}");
        let want = format!("error=EACCES: Permission denied owner_uid={uid} mode=600 {fallback}");
        assert!(
            refused[i].contains(&want),
            "{name}: {want} not in {}",
            refused[i]
        );
    }

    // The FIFO's refusal, as a D-Bus client sees it.
    let writer = std::thread::spawn({
        let fifo = fifo.clone();
        move || std::fs::OpenOptions::new().write(true).open(fifo).unwrap()
    });
    let _reader = std::fs::File::open(&fifo).unwrap();
    let writer = writer.join().unwrap();
    let err = rt().block_on(async {
        let file = std::fs::File::open(gadget("trace_open")).unwrap();
        let opts = HashMap::from([("output-fd", DValue::Fd(Fd::from(writer.as_fd())))]);
        bus.manager()
            .await
            .run_object(Fd::from(file.as_fd()), "", HashMap::new(), opts)
            .await
            .unwrap_err()
    });
    let zbus::Error::MethodError(name, Some(msg), _) = &err else {
        panic!("{err}");
    };
    assert_eq!(name.as_str(), "org.freedesktop.DBus.Error.InvalidArgs");
    assert_eq!(
        msg,
        &format!(
            "option output-fd: gadgetd may not open the FIFO for writing (EACCES: Permission \
             denied; mode 600, owner uid {uid}) and cannot write your description of a named \
             FIFO without blocking; leave output-fd out to get the events on the event stream"
        )
    );
}

/// `gadgetctl run -o json | head -n 1` by a user under the unit's
/// capabilities: the agent writes the user's description of the pipe
/// (logged), meets EPIPE once head is gone, and ends the run; gadgetctl
/// exits 0 saying nothing.
#[test]
fn a_users_head_1_ends_the_client_and_the_run_cleanly_under_the_unit() {
    let users = Users::create();
    let bus = Bus::start();
    let svc = unit_agent(&bus, &users);
    let dir = TempDir::new("direct-nowait-head");
    let args = trace_ours_args("head");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = ctl_as(&users.member, &svc.socket, &args, &piped_into("head -n 1"));
    wait_live(&svc, "head");
    let probe = dir.path().join("probe");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    first_line_is_ours(&mut reader, &probe);
    // head has exited; the agent meets the closed pipe at its next write.
    let status = open_until_exit(&mut child, &probe);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "head printed one line");
    let err = take_stderr(&mut child);
    assert!(status.success() && err.is_empty(), "{status}: {err}");
    wait_for("the run to end", Duration::from_secs(10), || {
        svc.log().contains("reason=client disconnected")
    });
    let log = svc.log();
    let refused = not_reopened(&log);
    assert_eq!(refused.len(), 1, "{log}");
    assert!(
        refused[0].contains("fallback=RWF_NOWAIT on the caller's description"),
        "{}",
        refused[0]
    );
    assert!(
        log.contains("a client's output went away error=Broken pipe"),
        "{log}"
    );
    assert!(svc.ctl(&["list", "-o", "json"]).stdout.is_empty());
}

/// The pid of `parent`'s child whose command name is `comm`.
fn child_named(parent: u32, comm: &str) -> u32 {
    poll(
        &format!("{comm}, a child of {parent}"),
        Duration::from_secs(10),
        || {
            std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                let (head, rest) = stat.rsplit_once(") ")?;
                let name = head.split_once(" (")?.1;
                let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
                let pid = e.file_name().to_str()?.parse().ok()?;
                (name == comm && ppid == parent).then_some(pid)
            })
        },
    )
}

/// The `flags:` of `/proc/PID/fdinfo/FD` (octal).
fn fd_flags(pid: u32, fd: u32) -> u32 {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .unwrap()
        .trim();
    u32::from_str_radix(flags, 8).unwrap()
}

/// gadgetctl's reports of events lost (on its stderr), checked to be all
/// it said and all of cause `slow-reader`: their sum.
fn told_lost(stderr: &str) -> u64 {
    let mut sum = 0;
    for line in stderr.lines() {
        let told = line
            .strip_prefix("gadgetctl: ")
            .and_then(|l| l.split_once(" events lost ("))
            .and_then(|(count, rest)| Some((count, rest.split_once(" in all): ")?)));
        let Some((count, (total, why))) = told else {
            panic!("gadgetctl said more than losses: {line}");
        };
        assert_eq!(
            why,
            gadgetd_dbus::stream::LostCause::SlowReader.explain(),
            "{line}"
        );
        sum += count.parse::<u64>().unwrap();
        assert_eq!(total.parse::<u64>().unwrap(), sum, "{line}");
    }
    sum
}

/// A user's pipe nobody reads under the unit's capabilities (`gadgetctl
/// ... | cat`, cat's own output unread): the agent writes the user's
/// blocking description without ever blocking (a socket attacher gets a
/// later open while the pipe is stuck; the description stays blocking),
/// gadgetctl tells the user exactly how many events were lost, and once
/// reading resumes later events arrive in order. Events in the pipe plus
/// those told lost are exactly the run's `events_seen`.
#[test]
fn a_users_pipe_nobody_reads_loses_whole_batches_under_the_unit() {
    let users = Users::create();
    let bus = Bus::start();
    let svc = unit_agent(&bus, &users);
    let dir = TempDir::new("direct-nowait-slow");
    let prefix = format!("{}/", dir.path().to_str().unwrap());
    let args = trace_ours_args("stuck");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Made before the run: from its start to the attach, this process
    // opens nothing (its opens are the run's events; the attacher must
    // see every one).
    let rt = rt();
    let mgr = rt.block_on(bus.manager());
    let mut child = ctl_as(&users.member, &svc.socket, &args, &piped_into("cat"));
    let (fast, path) = rt.block_on(async {
        let start = Instant::now();
        loop {
            let runs = mgr.list_runs().await.unwrap();
            if let Some(run) = runs
                .iter()
                .find(|r| r.name == "stuck" && r.state == "running")
            {
                break (mgr.attach(&run.id).await.unwrap(), run.path.clone());
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{runs:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let (fast, fast_marks) = read_lines(UnixStream::from(OwnedFd::from(fast)), "marker");
    let agent_read = Seen::new(&rt, &mgr, path);
    let ctl = child_named(child.id(), "gadgetctl");
    let out = std::fs::metadata(format!("/proc/{ctl}/fd/1")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (out.uid(), out.mode()),
        (Users::uid(&users.member), libc::S_IFIFO | 0o600),
        "gadgetctl's stdout is the user's pipe"
    );
    let err = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || std::io::read_to_string(err).unwrap());

    // ~60k events of ~600 bytes: far more than the 4 MiB queue and the pipes.
    open_missing(&prefix, "a", 60_000, 1000, &agent_read);
    // The run task never stalled: the socket attacher gets a later open.
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(20), "the run stalled");
        assert!(std::fs::File::open(format!("{prefix}marker")).is_err());
        if fast_marks.recv_timeout(Duration::from_millis(50)).is_ok() {
            break;
        }
    }
    assert_eq!(
        fd_flags(ctl, 1) & libc::O_NONBLOCK as u32,
        0,
        "the user's description became non-blocking"
    );
    // Reading resumes; later events arrive.
    let (stuck, stuck_marks) = read_lines(child.stdout.take().unwrap(), "/b999\"");
    open_missing(&prefix, "b", 1000, 100, &agent_read);
    stuck_marks
        .recv_timeout(Duration::from_secs(30))
        .expect("the events after reading resumed never came");
    ok(&svc.ctl(&["stop", "stuck"]), "stop");
    let status = child.wait().unwrap();
    let err = err.join().unwrap();
    assert!(status.success(), "{status}: {err}");
    let lost = told_lost(&err);
    assert!(lost > 0, "60k events into a pipe nobody read, none lost?");

    let fast = fast.join().unwrap();
    let end: Value = serde_json::from_str(fast.last().unwrap()).unwrap();
    assert_eq!(end["gadgetd"], "end");
    assert_eq!(end["reason"], "stopped");
    let seen = end["events_seen"].as_u64().unwrap();
    let (events, fast_lost) = count(&fast, "socket attacher");
    assert_eq!(events + fast_lost, seen, "socket attacher");

    let stuck = stuck.join().unwrap();
    let (events, none) = count(&stuck, "user's pipe");
    assert_eq!(none, 0, "a control line in the pipe");
    assert_eq!(
        events + lost,
        seen,
        "pipe: {events} events + {lost} told lost"
    );
    // After reading resumed, our later opens came in order, none twice.
    assert_later_opens_in_order(&stuck, &prefix);
    let log = svc.log();
    let refused = not_reopened(&log);
    assert_eq!(refused.len(), 1, "{log}");
    assert!(refused[0].contains("fallback=RWF_NOWAIT"), "{}", refused[0]);
    eprintln!("measured: {seen} events seen; {events} in the user's pipe, {lost} told lost");
}

/// A tmpfs of `size` mounted at `at` for the test's life (unmounted, lazily,
/// when dropped).
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(at: std::path::PathBuf, size: &str) -> SmallFs {
        std::fs::create_dir_all(&at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount a tmpfs: {out:?}");
        SmallFs(at)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `gadgetctl run -o json > file` on a file system that fills up: the
/// agent's write fails with ENOSPC, and gadgetctl says that, naming the
/// error, and exits 1 (not "did gadgetd stop?"); the run goes on for its
/// other client, which gets later events and a clean end.
#[test]
fn a_full_disk_under_the_output_ends_that_client_with_the_error() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("direct-full");
    let small = SmallFs::mount(dir.path().join("small"), "64k");
    let path = small.0.join("out.json");
    let file = std::fs::File::create(&path).unwrap();
    let mut child = trace_ours(&agent, "full-disk", Stdio::from(file));
    agent.wait_running(1);
    // A second client on the stream path (its own stdout a pipe, direct
    // output turned off), attached before the disk fills.
    let mut attacher = Command::new(bin("gadgetctl"))
        .arg("--address")
        .arg(&agent.bus_address)
        .args(["attach", "full-disk", "-o", "json"])
        .env("GADGETCTL_NO_DIRECT", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, notes) = read_lines(attacher.stdout.take().unwrap(), "marker");
    // Attached once it gets an open made now.
    let ready = dir.path().join("marker-attached");
    wait_for(
        "the attacher's first event",
        Duration::from_secs(20),
        || {
            let _ = std::fs::File::open(&ready);
            notes.recv_timeout(Duration::from_millis(200)).is_ok()
        },
    );
    // ~400 bytes a line: 1,000 opens are six times the file system.
    let start = Instant::now();
    let mut i = 0;
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gadgetctl went on past a full disk"
        );
        for _ in 0..100 {
            let _ = std::fs::File::open(dir.path().join(format!("fill{i}")));
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().last().unwrap_or(""),
        "gadgetctl: run failed: the agent could not write the events into this command's \
         output: No space left on device (os error 28) (the run goes on for its other clients)",
        "{stderr}"
    );
    // The file holds what fitted, from the first byte.
    let text = std::fs::read(&path).unwrap();
    assert!(
        text.starts_with(b"{\"timestamp_raw\":"),
        "{}",
        String::from_utf8_lossy(&text[..text.len().min(200)])
    );
    assert!(
        text.len() <= 64 * 1024 && text.len() > 4096,
        "{} bytes",
        text.len()
    );
    // The run goes on: the attacher gets an open made after that.
    let marker = dir.path().join("marker-after-the-disk-filled");
    while notes.try_recv().is_ok() {}
    wait_for("the attacher's marker", Duration::from_secs(20), || {
        let _ = std::fs::File::open(&marker);
        notes
            .recv_timeout(Duration::from_millis(200))
            .is_ok_and(|l| l.contains("after-the-disk-filled"))
    });
    ok(&agent.ctl(&["stop", "full-disk"]), "stop");
    let status = attacher.wait().unwrap();
    let err = take_stderr(&mut attacher);
    assert!(status.success() && err.is_empty(), "{status}: {err}");
    let lines = lines.join().unwrap();
    assert!(
        lines.iter().any(|l| l.contains(marker.to_str().unwrap())),
        "the attacher missed the marker"
    );
    drop(small);
}
