//! Test harness: real components on private sockets, stopped on drop.
//!
//! * [`Bus`]: a private `dbus-daemon` (system-bus policy, our policy file included).
//! * [`Agent`]: the `gadgetd` binary on that bus and on a private p2p socket.
//! * [`ctl`]: runs the `gadgetctl` binary.
//! * [`gadget`]/[`test_object`]: compiled objects from `make gadgets test-objects`.
//!
//! Tests need root (they load eBPF). Binaries come from `GADGETD_BIN`
//! (default `target/debug`), objects from `GADGETD_GADGETS` (default `build/gadgets`).

pub mod bus_run;
pub mod cri;
pub mod hostile_registry;
pub mod net;
pub mod prometheus;
pub mod registry;
pub mod runtimes;
pub mod system;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn bin_dir() -> PathBuf {
    std::env::var_os("GADGETD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug"))
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` (or `make test`)",
        p.display()
    );
    p
}

/// A gadget built by `make gadgets`.
pub fn gadget(name: &str) -> PathBuf {
    let dir = std::env::var_os("GADGETD_GADGETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("build/gadgets"));
    let p = dir.join(format!("{name}.o"));
    assert!(p.exists(), "{} is missing: run `make gadgets`", p.display());
    p
}

/// An edge-case object built by `make test-objects`.
pub fn test_object(name: &str) -> PathBuf {
    let p = repo_root().join("build/tests").join(format!("{name}.o"));
    assert!(
        p.exists(),
        "{} is missing: run `make test-objects`",
        p.display()
    );
    p
}

/// A current-thread tokio runtime for tests that drive the runtime library
/// in-process (no agent).
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Test object `build/tests/NAME.o` parsed as a gadget (panics, naming the
/// error, when it does not parse).
pub fn load(name: &str) -> gadgetd::runtime::Gadget {
    gadgetd::runtime::Gadget::from_object(std::fs::read(test_object(name)).unwrap(), None).unwrap()
}

pub fn require_root() {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "these tests load eBPF programs into the kernel and must run as root"
    );
}

/// A private temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("gadgetd-{tag}-{}", random_hex(6)));
        std::fs::create_dir_all(&p).unwrap();
        // polkitd/other users must traverse it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `bytes` random bytes as hex: unique names for users, dirs, containers.
pub fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Polls `ready` until it holds, or panics naming `what`.
pub fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Calls `f` every 100 ms until it gives a value, and returns that; fails
/// naming `what` after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `run trace_open --detach -p targ_pid=PID EXTRA...` through `ctl` (an
/// agent's or a service's `ctl`); returns the run id, asserted to be one.
pub fn detach_trace_open(ctl: impl Fn(&[&str]) -> Output, pid: u32, extra: &[&str]) -> String {
    let gadget = gadget("trace_open");
    let pid = format!("targ_pid={pid}");
    let mut args = vec!["run", gadget.to_str().unwrap(), "--detach", "-p", &pid];
    args.extend_from_slice(extra);
    let id = ok(&ctl(&args), "run --detach").trim().to_string();
    assert_eq!(id.len(), 16, "run --detach prints the run id, got {id:?}");
    id
}

/// SIGTERM, then SIGKILL after `grace`; always reaps the child.
pub fn terminate(child: &mut Child, grace: Duration) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A private system-type dbus-daemon.
pub struct Bus {
    pub dir: TempDir,
    pub address: String,
    child: Child,
}

impl Bus {
    pub fn start() -> Bus {
        let dir = TempDir::new("bus");
        let socket = dir.path().join("system_bus_socket");
        let policy_dir = repo_root().join("dbus/data");
        let extra = dir.path().join("policy.d");
        std::fs::create_dir_all(&extra).unwrap();
        let conf = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>{policy}</includedir>
  <includedir>{extra}</includedir>
</busconfig>
"#,
            socket = socket.display(),
            policy = policy_dir.display(),
            extra = extra.display(),
        );
        let conf_path = dir.path().join("bus.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf_path.display()))
            .args(["--nofork", "--nopidfile"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon is installed (apt-get install dbus)");
        wait_for("dbus-daemon's socket", Duration::from_secs(5), || {
            socket.exists()
        });
        Bus {
            address: format!("unix:path={}", socket.display()),
            dir,
            child,
        }
    }

    /// The agent's Manager on this bus, over a new connection (the proxy
    /// keeps the connection).
    pub async fn manager(&self) -> gadgetd_dbus::ManagerProxy<'static> {
        let conn = zbus::connection::Builder::address(self.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        gadgetd_dbus::ManagerProxy::new(&conn).await.unwrap()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// A running gadgetd on a private bus and a private p2p socket.
pub struct Agent {
    pub state: TempDir,
    pub socket: PathBuf,
    pub bus_address: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Agent {
    pub fn start(bus: &Bus) -> Agent {
        Agent::start_with(bus, &[])
    }

    pub fn start_with(bus: &Bus, extra_args: &[&str]) -> Agent {
        require_root();
        let state = TempDir::new("state");
        let socket = state.path().join("gadgetd.sock");
        let log = state.path().join("gadgetd.log");
        let child = Command::new(bin("gadgetd"))
            .arg("--bus-address")
            .arg(&bus.address)
            .arg("--listen")
            .arg(&socket)
            .arg("--state-dir")
            .arg(state.path())
            .args(extra_args)
            .env("GADGETD_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut agent = Agent {
            state,
            socket,
            bus_address: bus.address.clone(),
            log,
            child: Some(child),
        };
        let log = agent.log.clone();
        wait_for("gadgetd to serve", Duration::from_secs(10), || {
            if let Some(Ok(Some(status))) = agent.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "gadgetd exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("serving on the peer-to-peer socket"))
        });
        agent
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits until exactly `n` runs are running and returns them (`list -o json`).
    pub fn wait_running(&self, n: usize) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let out = self.ctl(&["list", "-o", "json"]);
            assert!(out.status.success(), "list failed: {}", stderr(&out));
            let runs: Vec<serde_json::Value> = json_lines(&out)
                .into_iter()
                .filter(|r| r["state"] == "running")
                .collect();
            if runs.len() == n {
                return runs;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "expected {n} running runs, have {runs:?}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited in time.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// gadgetctl against this agent's bus.
    pub fn ctl(&self, args: &[&str]) -> Output {
        ctl(&self.bus_address, args)
    }

    /// gadgetctl, spawned with piped output (for streams).
    pub fn ctl_spawn(&self, args: &[&str]) -> Child {
        Command::new(bin("gadgetctl"))
            .arg("--address")
            .arg(&self.bus_address)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(10));
        }
    }
}

/// Runs gadgetctl with `--address`.
pub fn ctl(address: &str, args: &[&str]) -> Output {
    Command::new(bin("gadgetctl"))
        .arg("--address")
        .arg(address)
        .args(args)
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// JSON event lines of a gadgetctl `-o json` output.
/// `o`'s stdout, after asserting the command succeeded (`what` names it in the failure).
pub fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// `o`'s stderr, after asserting the command failed (`what` names it otherwise).
pub fn fails(o: &Output, what: &str) -> String {
    assert!(
        !o.status.success(),
        "{what} should have failed:\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    stderr(o)
}

/// Returns from the test (saying why) when the registry tools are missing.
#[macro_export]
macro_rules! require_registry {
    () => {
        if let Err(why) = $crate::registry::available() {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

pub fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// The inode of namespace `kind` (`mnt`, `net`, ...) of process `pid`.
pub fn ns_of(pid: u32, kind: &str) -> u64 {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    let s = link.to_string_lossy();
    s[s.find('[').unwrap() + 1..s.len() - 1].parse().unwrap()
}

/// The inode of a namespace of this process.
pub fn own_ns(kind: &str) -> u64 {
    ns_of(std::process::id(), kind)
}

/// This thread's comm, as the kernel reports it in events.
pub fn own_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

/// (id, name) of BPF programs loaded in the kernel (bpftool), for leak checks.
/// Compare ids, not names: other test processes may load the same gadgets.
pub fn loaded_programs() -> Vec<(u64, String)> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .expect("bpftool is installed");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Array(vec![]));
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p["id"].as_u64()?, p["name"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn loaded_program_names() -> Vec<String> {
    loaded_programs().into_iter().map(|(_, n)| n).collect()
}

/// Waits until `child`'s stdout has produced a line satisfying `pred` (or times out).
pub fn wait_child_line(
    reader: &mut impl std::io::BufRead,
    timeout: Duration,
    mut pred: impl FnMut(&str) -> bool,
) -> Option<String> {
    let start = Instant::now();
    let mut line = String::new();
    while start.elapsed() < timeout {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) if pred(line.trim_end()) => return Some(line.trim_end().to_string()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Runs `object` through `RunObject` directly (no gadgetctl), calls `before_reading`
/// once the run is live, then returns every line of the raw event stream.
pub fn raw_stream(
    bus: &Bus,
    object: &std::path::Path,
    param: Option<(&str, &str)>,
    timeout_ms: u64,
    before_reading: impl FnOnce(),
) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::AsyncBufReadExt;
        let mgr = bus.manager().await;
        let file = std::fs::File::open(object).unwrap();
        let params: std::collections::HashMap<&str, &str> = param.into_iter().collect();
        let mut opts = std::collections::HashMap::new();
        opts.insert("timeout-ms", zbus::zvariant::Value::U64(timeout_ms));
        let (_path, fd) = mgr
            .run_object(
                zbus::zvariant::Fd::from(std::os::fd::AsFd::as_fd(&file)),
                "",
                params,
                opts,
            )
            .await
            .unwrap();
        before_reading();
        let std_stream = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(fd));
        std_stream.set_nonblocking(true).unwrap();
        let mut lines =
            tokio::io::BufReader::new(tokio::net::UnixStream::from_std(std_stream).unwrap())
                .lines();
        let mut all = Vec::new();
        while let Some(l) = lines.next_line().await.unwrap() {
            all.push(l);
        }
        all
    })
}
