//! Harness parts for gadgetd as a system service: a private journald
//! (namespace), a polkitd on the private bus with gadgetd's actions and
//! rule installed, throw-away users in and out of the gadget group, and a
//! gadgetd whose state directory outlives it (for restart tests).
//!
//! Everything created here is removed on drop: processes by PID, files,
//! users and the group.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{Bus, TempDir, bin, random_hex, repo_root, terminate, wait_for};

/// A journald of our own: `systemd-journald NAMESPACE`, read with
/// `journalctl --namespace=NAMESPACE`.
pub struct Journald {
    pub namespace: String,
    child: Child,
    /// A namespaced journald exits when idle for 30 s; an open stdout
    /// stream keeps it alive for the test.
    _keepalive: std::os::unix::net::UnixStream,
}

impl Journald {
    pub fn binary() -> Option<PathBuf> {
        [
            "/lib/systemd/systemd-journald",
            "/usr/lib/systemd/systemd-journald",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    }

    pub fn start() -> Journald {
        let namespace = format!("gadgetd4t{}", random_hex(4));
        let exe =
            Journald::binary().expect("systemd-journald is installed (apt-get install systemd)");
        let child = Command::new(exe)
            .arg(&namespace)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let dir = PathBuf::from(format!("/run/systemd/journal.{namespace}"));
        wait_for("journald's sockets", Duration::from_secs(5), || {
            dir.join("socket").exists() && dir.join("stdout").exists()
        });
        let mut keepalive = std::os::unix::net::UnixStream::connect(dir.join("stdout")).unwrap();
        use std::io::Write;
        keepalive
            .write_all(b"gadgetd-test-keepalive\n\n6\n0\n0\n0\n0\n")
            .unwrap();
        Journald {
            namespace,
            child,
            _keepalive: keepalive,
        }
    }

    /// Entries with `GADGET_RUN_ID=id`, as journalctl's JSON objects.
    pub fn entries(&self, run_id: &str) -> Vec<serde_json::Value> {
        let out = Command::new("journalctl")
            .arg(format!("--namespace={}", self.namespace))
            .args(["-o", "json", "--no-pager"])
            .arg(format!("GADGET_RUN_ID={run_id}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Journald {
    /// A started [`Service`] on `bus` whose detached runs log to this
    /// journal (`--journal-namespace`), with `extra` arguments.
    pub fn service(&self, bus: &Bus, extra: &[&str]) -> Service {
        let mut args = vec!["--journal-namespace", self.namespace.as_str()];
        args.extend_from_slice(extra);
        let mut svc = Service::new(bus, &args);
        svc.start();
        svc
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(format!("/run/systemd/journal.{}", self.namespace));
        if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
            for base in ["/var/log/journal", "/run/log/journal"] {
                let _ = std::fs::remove_dir_all(format!("{base}/{}.{}", id.trim(), self.namespace));
            }
        }
    }
}

/// Two users and a group standing in for `gadget`: `member` is in it,
/// `outsider` is not.
pub struct Users {
    pub group: String,
    pub member: String,
    pub outsider: String,
}

impl Users {
    pub fn create() -> Users {
        let tag = random_hex(4);
        let users = Users {
            group: format!("g4grp{tag}"),
            member: format!("g4in{tag}"),
            outsider: format!("g4out{tag}"),
        };
        run_ok(Command::new("groupadd").arg(&users.group));
        run_ok(Command::new("useradd").args([
            "-M",
            "-N",
            "-s",
            "/usr/sbin/nologin",
            "-G",
            &users.group,
            &users.member,
        ]));
        run_ok(Command::new("useradd").args([
            "-M",
            "-N",
            "-s",
            "/usr/sbin/nologin",
            &users.outsider,
        ]));
        users
    }

    pub fn uid(name: &str) -> u32 {
        nix::unistd::User::from_name(name)
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    }

    /// `program args` as user `name` (with its groups), output captured.
    pub fn run_as(name: &str, program: &Path, args: &[&str]) -> Output {
        Users::command_as(name)
            .arg(program)
            .args(args)
            .output()
            .unwrap()
    }

    /// `setpriv` to user `name` (with its groups): the program and its
    /// arguments are the caller's to add.
    pub fn command_as(name: &str) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid",
            name,
            "--regid",
            &Users::gid(name).to_string(),
            "--init-groups",
            "--",
        ]);
        cmd
    }

    fn gid(name: &str) -> u32 {
        nix::unistd::User::from_name(name)
            .unwrap()
            .unwrap()
            .gid
            .as_raw()
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for u in [&self.member, &self.outsider] {
            let _ = Command::new("userdel").arg(u).output();
        }
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// polkitd on a private bus, with gadgetd's shipped action file and rule
/// (the rule's group replaced by the test group) installed under unique
/// names in polkit's compiled-in directories.
pub struct Polkit {
    child: Child,
    files: Vec<PathBuf>,
}

impl Polkit {
    pub fn start(bus: &Bus, group: &str) -> Polkit {
        let tag = random_hex(4);
        let action = PathBuf::from(format!(
            "/usr/share/polkit-1/actions/org.gadgetd.test-{tag}.policy"
        ));
        std::fs::copy(repo_root().join("polkit/org.gadgetd.policy"), &action).unwrap();
        let rules_dir = PathBuf::from("/etc/polkit-1/rules.d");
        std::fs::create_dir_all(&rules_dir).unwrap();
        let rule = rules_dir.join(format!("49-gadgetd-test-{tag}.rules"));
        let shipped = std::fs::read_to_string(repo_root().join("polkit/49-gadgetd.rules")).unwrap();
        assert!(
            shipped.contains("isInGroup(\"gadget\")"),
            "the shipped rule names group gadget"
        );
        std::fs::write(
            &rule,
            shipped.replace("isInGroup(\"gadget\")", &format!("isInGroup(\"{group}\")")),
        )
        .unwrap();
        std::fs::set_permissions(&rule, std::fs::Permissions::from_mode(0o644)).unwrap();
        let files = vec![action, rule];
        let child = Command::new("/usr/lib/polkit-1/polkitd")
            .arg("--no-debug")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("polkitd is installed (apt-get install polkitd)");
        let address = bus.address.clone();
        wait_for("polkitd on the bus", Duration::from_secs(10), || {
            Command::new("busctl")
                .arg(format!("--address={address}"))
                .args(["status", "org.freedesktop.PolicyKit1"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        Polkit { child, files }
    }
}

impl Drop for Polkit {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A gadgetd whose state directory is kept across restarts.
pub struct Service {
    pub state: TempDir,
    pub bus_address: String,
    pub socket: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// A command gadgetd is started through (`setpriv ...`), if any.
    wrapper: Vec<String>,
    child: Option<Child>,
    starts: u32,
}

impl Service {
    pub fn new(bus: &Bus, args: &[&str]) -> Service {
        crate::require_root();
        let state = TempDir::new("svc");
        let socket = state.path().join("gadgetd.sock");
        Service {
            state,
            bus_address: bus.address.clone(),
            socket,
            args: args.iter().map(|s| s.to_string()).collect(),
            envs: Vec::new(),
            wrapper: Vec::new(),
            child: None,
            starts: 0,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Service {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Starts gadgetd as the last argument of `argv` (e.g. `setpriv
    /// --bounding-set ... --`), which must exec it (the same pid).
    pub fn wrapped(mut self, argv: &[&str]) -> Service {
        self.wrapper = argv.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn log_path(&self, start: u32) -> PathBuf {
        self.state.path().join(format!("gadgetd.{start}.log"))
    }

    /// The log of the current (last) start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default()
    }

    /// Starts gadgetd and waits until it reports ready.
    pub fn start(&mut self) -> &mut Service {
        assert!(self.child.is_none(), "already running");
        self.starts += 1;
        let log = self.log_path(self.starts);
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin("gadgetd"));
                cmd
            }
            None => Command::new(bin("gadgetd")),
        };
        cmd.arg("--bus-address")
            .arg(&self.bus_address)
            .arg("--listen")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(self.state.path())
            .args(&self.args)
            .env("GADGETD_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        wait_for("gadgetd to be ready", Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "gadgetd exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains(" ready"))
        });
        self.child = Some(child);
        self
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no cleanup at all, as in a crash.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        terminate(&mut child, Duration::from_secs(5));
        child.wait().unwrap()
    }

    /// Waits for gadgetd to exit on its own (idle exit).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        crate::ctl(&self.bus_address, args)
    }

    /// Every run the agent lists, stopped ones too (`list -a -o json`).
    pub fn runs(&self) -> Vec<serde_json::Value> {
        let out = self.ctl(&["list", "-a", "-o", "json"]);
        assert!(out.status.success(), "list failed: {}", crate::stderr(&out));
        crate::json_lines(&out)
    }

    /// Run `id` as [`Service::runs`] lists it, if it does.
    pub fn run(&self, id: &str) -> Option<serde_json::Value> {
        self.runs().into_iter().find(|r| r["id"] == id)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
    }
}

/// A size-limited tmpfs mounted over `dir` (a full disk on demand), lazily
/// unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount(8) syntax, e.g. `4m`) over `dir`.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
