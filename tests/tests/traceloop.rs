//! The traceloop operator (issue 13): Inspektor Gadget's syscall flight
//! recorder ABI, run with our own gadget (gadgets/traceloop) in a mount
//! namespace the test creates, rows asserted exactly; the host selection and
//! a missing tracefs through the agent.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use gadgetd::runtime::Gadget;
use gadgetd::testing::GadgetTest;
use gadgetd_tests::*;

/// Unshares its mount namespace, says `ready`, waits for a line, then makes
/// the syscalls the tests assert and prints the descriptors it got; then
/// blocks in a read of stdin until the test closes it.
const SCRIPT: &str = r#"
import ctypes, os, socket, sys
assert ctypes.CDLL(None, use_errno=True).unshare(0x00020000) == 0
print("ready", flush=True)
sys.stdin.readline()
missing, present, payload, port, name = sys.argv[1:6]
try:
    os.open(missing, os.O_RDONLY)
except FileNotFoundError:
    pass
fd = os.open(present, os.O_RDWR)
os.write(fd, payload.encode())
os.lseek(fd, 0, os.SEEK_SET)
os.read(fd, 100)
tcp = socket.socket()
try:
    tcp.connect(("127.0.0.1", int(port)))
except ConnectionRefusedError:
    pass
unix = socket.socket(socket.AF_UNIX)
try:
    unix.connect("\0" + name)
except ConnectionRefusedError:
    pass
print(fd, tcp.fileno(), unix.fileno(), flush=True)
sys.stdin.readline()
"#;

/// A workload in its own mount namespace, waiting for [`Recorded::go`].
struct Recorded {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    mntns: u64,
    missing: String,
    present: String,
    payload: String,
    port: u16,
    name: String,
    _dir: TempDir,
}

impl Recorded {
    fn start() -> Recorded {
        let dir = TempDir::new("traceloop");
        let tag = random_hex(4);
        let missing = dir
            .path()
            .join(format!("missing-{tag}"))
            .display()
            .to_string();
        let present = dir.path().join("present").display().to_string();
        std::fs::write(&present, b"").unwrap();
        let payload = format!("tl-{tag}\t\"quoted\"\n");
        // A port nothing listens on: bound and closed again.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let name = format!("traceloop-{tag}");
        let mut child = Command::new("python3")
            .args([
                "-c",
                SCRIPT,
                &missing,
                &present,
                &payload,
                &port.to_string(),
                &name,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        let mntns = ns_of(child.id(), "mnt");
        assert_ne!(mntns, own_ns("mnt"));
        Recorded {
            stdin: child.stdin.take(),
            child,
            stdout,
            mntns,
            missing,
            present,
            payload,
            port,
            name,
            _dir: dir,
        }
    }

    /// Lets it make its syscalls; returns its (file, tcp, unix) descriptors.
    fn go(&mut self) -> (u64, u64, u64) {
        writeln!(self.stdin.as_mut().unwrap(), "go").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let fds: Vec<u64> = line
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        (fds[0], fds[1], fds[2])
    }

    /// The rows of its two opens (`fd`: the one that worked), as IG prints them.
    fn opens(&self, fd: u64) -> Vec<(String, String, String)> {
        let open = |path: &str, flags: u64, ret: &str| {
            let p = format!("dfd={AT_FDCWD}, filename=\"{path}\", flags={flags}, mode=0");
            row("openat", p, ret)
        };
        vec![
            open(&self.missing, O_CLOEXEC, "-1 (no such file or directory)"),
            open(&self.present, O_CLOEXEC | 2, &fd.to_string()),
        ]
    }

    /// The rows of its two refused connects (TCP, abstract unix socket).
    fn connects(&self, tcp: u64, unix: u64) -> Vec<(String, String, String)> {
        let refused = "-1 (connection refused)";
        let len = 3 + self.name.len();
        vec![
            row(
                "connect",
                format!("fd={tcp}, uservaddr=127.0.0.1:{}, addrlen=16", self.port),
                refused,
            ),
            row(
                "connect",
                format!("fd={unix}, uservaddr=unix:@{}, addrlen={len}", self.name),
                refused,
            ),
        ]
    }

    fn comm(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.child.id()))
            .unwrap()
            .trim_end()
            .to_string()
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

fn traceloop(rec: &Recorded) -> GadgetTest {
    require_root();
    let mut test = GadgetTest::from_files(gadget("traceloop"), None).unwrap();
    test.options.mntns_filter = Some(vec![rec.mntns]);
    test
}

/// (syscall, parameters, ret) of the rows.
fn calls(rows: &[&serde_json::Map<String, serde_json::Value>]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("syscall"), s("parameters"), s("ret"))
        })
        .collect()
}

fn row(syscall: &str, parameters: String, ret: &str) -> (String, String, String) {
    (syscall.into(), parameters, ret.into())
}

/// The payload as Go's strconv.Quote writes it (IG's rows).
fn quoted(payload: &str) -> String {
    format!(
        "\"{}\"",
        payload
            .replace('\t', "\\t")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// `AT_FDCWD` (-100) as glibc passes it (a 32-bit int, zero-extended) and
/// IG prints it (the register as an unsigned number).
const AT_FDCWD: u64 = 4294967196;
const O_CLOEXEC: u64 = 0o2000000;

#[test]
fn records_the_namespace_syscalls_as_inspektor_gadget_prints_them() {
    let mut rec = Recorded::start();
    let test = traceloop(&rec);
    let (capture, (fd, tcp, unix)) = test.trace_with(|| rec.go()).unwrap();
    let pid = rec.child.id();
    let comm = rec.comm();
    // Every row is the workload's: the only process in the namespace.
    assert!(!capture.events.is_empty());
    for e in &capture.events {
        assert_eq!(e["mntns_id"], rec.mntns, "{e:?}");
        assert_eq!(e["pid"], pid, "{e:?}");
        assert_eq!(e["comm"], comm.as_str(), "{e:?}");
    }
    let ours = |s: &str| ["openat", "write", "lseek", "read", "connect"].contains(&s);
    // Its stdin and stdout (the test's lines) are not what we assert.
    let rows: Vec<_> = capture.all(|e| {
        let p = e["parameters"].as_str().unwrap();
        let std = p.starts_with("fd=0,") || p.starts_with("fd=1,");
        ours(e["syscall"].as_str().unwrap()) && !std && e["ret"] != "unfinished"
    });
    let n = rec.payload.len();
    let payload = quoted(&rec.payload);
    let mut want = rec.opens(fd);
    want.extend([
        row(
            "write",
            format!("fd={fd}, buf={payload}, count={n}"),
            &n.to_string(),
        ),
        row("lseek", format!("fd={fd}, offset=0, whence=0"), "0"),
        row(
            "read",
            format!("fd={fd}, buf={payload}, count=100"),
            &n.to_string(),
        ),
    ]);
    want.extend(rec.connects(tcp, unix));
    assert_eq!(calls(&rows), want);
    // Blocked in its last read of stdin when the run stopped: IG's
    // `unfinished`, with no parameters.
    let last = capture.events.last().unwrap();
    assert_eq!(calls(&[last]), [row("read", String::new(), "unfinished")]);
    rec.finish();
}

#[test]
fn syscall_filters_keep_only_the_named_syscalls() {
    let mut rec = Recorded::start();
    let test = traceloop(&rec).param("syscall-filters", "openat,connect");
    let (capture, (fd, tcp, unix)) = test.trace_with(|| rec.go()).unwrap();
    let all: Vec<_> = capture.all(|_| true);
    let mut want = rec.opens(fd);
    want.extend(rec.connects(tcp, unix));
    assert_eq!(calls(&all), want);
    rec.finish();
}

#[test]
fn bad_syscall_filters_are_named() {
    require_root();
    let start = |filters: &str| {
        GadgetTest::from_files(gadget("traceloop"), None)
            .unwrap()
            .param("syscall-filters", filters)
            .trace(|| ())
            .map(|_| ())
            .expect_err("the run started")
            .to_string()
    };
    let e = start("openat,frobnicate");
    assert!(
        e.contains("syscall-filters") && e.contains("syscall `frobnicate` does not exist"),
        "{e}"
    );
    let e = start(&["read"; 17].join(","));
    assert!(e.contains("17 syscalls given; at most 16"), "{e}");
}

#[test]
fn describes_one_traceloop_source_with_inspektor_gadgets_fields() {
    let yaml = std::fs::read_to_string(repo_root().join("gadgets/traceloop/gadget.yaml")).unwrap();
    let g = Gadget::from_object(std::fs::read(gadget("traceloop")).unwrap(), Some(&yaml)).unwrap();
    let infos = g.datasource_infos();
    assert_eq!(infos.len(), 1);
    assert_eq!(
        (infos[0].name.as_str(), infos[0].kind.as_str()),
        ("traceloop", "tracer")
    );
    let fields: Vec<(&str, bool)> = infos[0]
        .fields
        .iter()
        .filter(|f| !f.name.contains('.'))
        .map(|f| (f.name.as_str(), f.visible))
        .collect();
    assert_eq!(
        fields,
        [
            ("mntns_id", true),
            ("cpu", false),
            ("pid", true),
            ("comm", true),
            ("syscall", true),
            ("parameters", true),
            ("ret", true),
        ]
    );
    let params: Vec<(&str, &str)> = g
        .params()
        .iter()
        .map(|p| (p.name.as_str(), p.default.as_str()))
        .collect();
    assert_eq!(params, [("syscall-filters", "")]);
}

/// Rows of a gadgetctl run's JSON output (control lines left out).
fn rows_of(out: &std::process::Output) -> Vec<serde_json::Value> {
    json_lines(out)
        .into_iter()
        .filter(|v| v.get("gadgetd").is_none())
        .collect()
}

/// Fails `chdir` into a missing directory every 100 ms until dropped: a
/// syscall with a path argument the host rarely makes.
struct FailingChdir {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    path: String,
    _dir: TempDir,
}

impl FailingChdir {
    fn start() -> FailingChdir {
        use std::sync::atomic::Ordering;
        let dir = TempDir::new("traceloop-chdir");
        let path = dir.path().join(format!("nowhere-{}", random_hex(4)));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, p) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                assert!(nix::unistd::chdir(&p).is_err());
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        FailingChdir {
            stop,
            path: path.display().to_string(),
            _dir: dir,
        }
    }
}

impl Drop for FailingChdir {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Through the agent: `--host`, and no selection at all (the host too),
/// record the host's mount namespace; the rows come when the run stops:
/// at its timeout, and at Ctrl-C (gadgetctl stops the run and prints what
/// comes); `gadgetctl stop` below.
#[test]
fn the_host_is_recorded_with_host_or_no_selection() {
    require_root();
    let bus = Bus::start();
    let agent = Agent::start_with(&bus, &["--container-runtime", "none"]);
    let obj = gadget("traceloop");
    for (selection, stop) in [(&["--host", "--timeout", "3s"][..], None), (&[], Some(()))] {
        let mut run = vec!["run", obj.to_str().unwrap(), "--syscall-filters", "chdir"];
        run.extend(selection);
        run.extend(["-o", "json"]);
        let client = agent.ctl_spawn(&run);
        agent.wait_running(1);
        let noise = FailingChdir::start();
        if stop.is_some() {
            std::thread::sleep(std::time::Duration::from_secs(2));
            let pid = nix::unistd::Pid::from_raw(client.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        }
        let out = client.wait_with_output().unwrap();
        let path = noise.path.clone();
        drop(noise);
        assert!(out.status.success(), "{selection:?}: {}", stderr(&out));
        let rows = rows_of(&out);
        let ours: Vec<_> = rows
            .iter()
            .filter(|r| r["pid"] == std::process::id())
            .collect();
        assert!(
            !ours.is_empty(),
            "{selection:?}: no row of ours in {rows:?}"
        );
        for r in &ours {
            assert_eq!(r["mntns_id"], own_ns("mnt"), "{r}");
            assert_eq!(r["syscall"], "chdir", "{r}");
            assert_eq!(r["parameters"], format!("filename=\"{path}\""), "{r}");
            assert_eq!(r["ret"], "-1 (no such file or directory)", "{r}");
            assert_eq!(r["runtime.containerName"], "", "{r}");
        }
        // Only the filtered syscall, from every process of the host.
        assert!(rows.iter().all(|r| r["syscall"] == "chdir"), "{rows:?}");
    }
}

/// An agent whose mount namespace has no tracefs, only an empty `events`
/// directory where it should be (so the agent does not mount tracefs
/// itself): the run fails saying where it looked and what to mount.
#[test]
fn missing_tracefs_is_named() {
    require_root();
    let state = TempDir::new("traceloop-notracefs");
    let socket = state.path().join("gadgetd.sock");
    let log = state.path().join("gadgetd.log");
    let script = format!(
        "mount -t tmpfs none /sys/kernel/tracing && mkdir /sys/kernel/tracing/events && {{ mount -t tmpfs none /sys/kernel/debug 2>/dev/null; true; }} && exec {} --no-bus --listen {} --state-dir {}",
        bin("gadgetd").display(),
        socket.display(),
        state.path().display()
    );
    // Stopped however the test ends (`unshare` and `sh` exec into gadgetd).
    struct Stopped(Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            terminate(&mut self.0, std::time::Duration::from_secs(10));
        }
    }
    let _agent = Stopped(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(
        "gadgetd to serve",
        std::time::Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("serving on the peer-to-peer socket"))
        },
    );
    let address = socket.display().to_string();
    let out = ctl(
        &address,
        &[
            "run",
            gadget("traceloop").to_str().unwrap(),
            "--timeout",
            "1s",
        ],
    );
    let err = fails(&out, "traceloop without tracefs");
    assert!(
        err.contains(
            "/sys/kernel/tracing/events/syscalls, /sys/kernel/debug/tracing/events/syscalls"
        ) && err.contains("mount -t tracefs nodev /sys/kernel/tracing"),
        "{err}"
    );
    // The agent keeps serving.
    ok(&ctl(&address, &["list"]), "list after the failed run");
}

/// Through the agent with podman: a container selection gets a buffer for
/// each matching container as it starts (not for others, nor the host),
/// and a container that exits before the run stops still has its syscalls
/// printed (the flight recorder's point); `gadgetctl stop` prints them.
#[test]
fn follows_the_selected_containers_and_keeps_what_exited_ones_did() {
    use gadgetd_tests::runtimes::{self, MARKER, OPEN_LOOP};
    let Some(p) = runtimes::podman() else {
        return;
    };
    let bus = Bus::start();
    let runtime = format!("podman={}", p.socket.display());
    let agent = Agent::start_with(&bus, &["--container-runtime", &runtime]);
    wait_for(
        "the podman watcher",
        std::time::Duration::from_secs(20),
        || agent.log_text().contains("watching container runtime"),
    );
    let tag = format!("gd-tl-{}", random_hex(4));
    let (kept, gone) = (format!("{tag}-kept"), format!("{tag}-gone"));
    let other = format!("gd-other-{}", random_hex(4));
    let obj = gadget("traceloop");
    let selection = format!("{tag}-*");
    let client = agent.ctl_spawn(&[
        "run",
        obj.to_str().unwrap(),
        "--name",
        &tag,
        "--containername",
        &selection,
        "--syscall-filters",
        "openat",
        "-o",
        "json",
    ]);
    agent.wait_running(1);
    for name in [&kept, &gone, &other] {
        p.run(name, OPEN_LOOP);
    }
    let ns = |name: &str| ns_of(p.pid(name), "mnt");
    let (kept_ns, gone_ns, other_ns) = (ns(&kept), ns(&gone), ns(&other));
    std::thread::sleep(std::time::Duration::from_secs(2));
    p.remove(&gone);
    std::thread::sleep(std::time::Duration::from_millis(500));
    ok(&agent.ctl(&["stop", &tag]), "stop");
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = rows_of(&out);
    let marker = format!("filename=\"{MARKER}\"");
    for (name, id) in [(&kept, kept_ns), (&gone, gone_ns)] {
        let theirs: Vec<_> = rows
            .iter()
            .filter(|r| r["mntns_id"] == id && r["parameters"].as_str().unwrap().contains(&marker))
            .collect();
        assert!(
            !theirs.is_empty(),
            "{name}: no open of {MARKER} in {rows:?}"
        );
        for r in theirs {
            assert_eq!(r["comm"], "cat", "{r}");
            assert_eq!(r["syscall"], "openat", "{r}");
            assert_eq!(
                r["parameters"],
                format!("dfd={AT_FDCWD}, {marker}, flags=0, mode=0"),
                "{r}"
            );
            assert_eq!(r["ret"], "3", "{r}");
        }
    }
    let kept_rows: Vec<_> = rows.iter().filter(|r| r["mntns_id"] == kept_ns).collect();
    assert!(
        kept_rows
            .iter()
            .all(|r| r["runtime.containerName"] == kept.as_str()),
        "{kept_rows:?}"
    );
    // Nothing of the container outside the selection, nor of the host.
    assert!(
        rows.iter()
            .all(|r| r["mntns_id"] == kept_ns || r["mntns_id"] == gone_ns),
        "other: {other_ns}, host: {}: {rows:?}",
        own_ns("mnt")
    );
}

/// An object with a `map_of_perf_buffers` that is not the traceloop ABI:
/// the error names the map and what is off, and what the ABI is.
#[test]
fn a_map_of_perf_buffers_of_the_wrong_kind_is_named() {
    let bytes = std::fs::read(test_object("bad_traceloop")).unwrap();
    let err = Gadget::from_object(bytes, None)
        .err()
        .expect("it parsed")
        .to_string();
    assert!(
        err.starts_with(
            "map `map_of_perf_buffers`: the traceloop ABI: it is a BPF_MAP_TYPE_HASH, not a hash of maps; "
        ),
        "{err}"
    );
    assert!(err.contains("160-byte `struct syscall_event_t`"), "{err}");
}
