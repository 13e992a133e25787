//! Real container runtimes on private sockets and directories, for the
//! container tests: dockerd, podman's API service and containerd, each
//! loaded with a tiny busybox-static image built by
//! `tests/containers/busybox-oci.py`. Everything is stopped and removed on
//! drop (containers first, then the daemon by PID).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, repo_root, terminate, wait_for};

/// The image reference every runtime knows after loading.
pub const IMAGE: &str = "localhost/bb:latest";
/// A file only the test image has.
pub const MARKER: &str = "/etc/gadgetd-marker";

/// Why a runtime cannot run here (missing binary), for skip messages.
pub fn missing(binaries: &[&str]) -> Option<String> {
    let missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|b| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "not installed: {} (run .ci/install-deps)",
            missing.join(", ")
        )
    })
}

/// What each runtime's harness runs (python3 builds the test image).
pub const DOCKER: &[&str] = &["dockerd", "docker", "skopeo", "python3"];
pub const PODMAN: &[&str] = &["podman", "python3"];
pub const CONTAINERD: &[&str] = &["containerd", "ctr", "runc", "python3"];

/// `start()` as root when every one of `binaries` is installed; `None`
/// after saying that the test is skipped and why.
fn started<T>(binaries: &[&str], start: impl FnOnce() -> T) -> Option<T> {
    crate::require_root();
    if let Some(why) = missing(binaries) {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    Some(start())
}

/// [`Dockerd::start`], or `None` (the test skipped) without dockerd.
pub fn dockerd() -> Option<Dockerd> {
    started(DOCKER, Dockerd::start)
}

/// [`Podman::start`], or `None` (the test skipped) without podman.
pub fn podman() -> Option<Podman> {
    started(PODMAN, Podman::start)
}

/// [`Containerd::start`], or `None` (the test skipped) without containerd.
pub fn containerd() -> Option<Containerd> {
    started(CONTAINERD, Containerd::start)
}

/// [`Containerd::start_with_cri`], or `None` (the test skipped) without containerd.
pub fn containerd_with_cri() -> Option<Containerd> {
    started(CONTAINERD, Containerd::start_with_cri)
}

fn check(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Unmounts whatever a runtime left mounted below `dir` (deepest first).
fn unmount_below(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Builds the test image: an OCI layout `DIR/bb` and archive `DIR/bb.tar`.
pub fn build_image(dir: &Path) -> PathBuf {
    let layout = dir.join("bb");
    let script = repo_root().join("tests/containers/busybox-oci.py");
    check(
        Command::new("python3")
            .arg(&script)
            .arg(&layout)
            .output()
            .unwrap(),
        "building the busybox OCI image",
    );
    layout
}

/// A shell loop that opens the marker file every 200 ms.
pub const OPEN_LOOP: &str = "while true; do cat /etc/gadgetd-marker >/dev/null; sleep 0.2; done";

/// dockerd on a private socket with its own data and exec roots.
pub struct Dockerd {
    pub dir: TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        let dir = TempDir::new("dockerd");
        let d = dir.path();
        let socket = d.join("docker.sock");
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("dockerd.log")).unwrap())
            .spawn()
            .expect("dockerd is installed (apt-get install docker.io)");
        let me = Dockerd { dir, socket, child };
        wait_for("dockerd to answer", Duration::from_secs(30), || {
            me.cli(&["version"]).status.success()
        });
        let image = build_image(me.dir.path());
        let archive = me.dir.path().join("bb-docker.tar");
        // `docker load` does not take OCI archives: convert first.
        check(
            Command::new("skopeo")
                .arg("copy")
                .arg(format!("oci:{}:latest", image.display()))
                .arg(format!("docker-archive:{}:{IMAGE}", archive.display()))
                .output()
                .unwrap(),
            "skopeo copy to a docker archive",
        );
        check(
            me.cli(&["load", "-i", archive.to_str().unwrap()]),
            "docker load",
        );
        me
    }

    /// The containerd dockerd runs for itself (namespace `moby`).
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.path().join("exec/containerd/containerd.sock")
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .output()
            .unwrap()
    }

    /// Starts a detached container running `sh -c script`; returns its id.
    pub fn run(&self, name: &str, script: &str) -> String {
        check(
            self.cli(&[
                "run",
                "-d",
                "--network=none",
                "--name",
                name,
                IMAGE,
                "/bin/sh",
                "-c",
                script,
            ]),
            "docker run",
        )
    }

    pub fn pid(&self, name: &str) -> u32 {
        check(
            self.cli(&["inspect", "-f", "{{.State.Pid}}", name]),
            "docker inspect",
        )
        .parse()
        .unwrap()
    }

    pub fn remove(&self, name: &str) {
        let _ = self.cli(&["rm", "-f", name]);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = String::from_utf8(self.cli(&["ps", "-aq"]).stdout).unwrap_or_default();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.cli(&args);
        }
        terminate(&mut self.child, Duration::from_secs(15));
        unmount_below(self.dir.path());
    }
}

/// podman with private storage and config, and its Docker-compatible API
/// service on a private socket.
pub struct Podman {
    pub dir: TempDir,
    pub socket: PathBuf,
    service: Option<Child>,
}

impl Podman {
    pub fn start() -> Podman {
        let dir = TempDir::new("podman");
        let d = dir.path();
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits=[\"nofile=1024:1024\",\"nproc=4096:4096\"]\nnetns=\"none\"\n\
                 [engine]\ncgroup_manager=\"cgroupfs\"\nevents_logger=\"file\"\nevents_logfile_path=\"{}\"\n",
                d.join("events.log").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver=\"overlay\"\ngraphroot=\"{}\"\nrunroot=\"{}\"\n",
                d.join("graph").display(),
                d.join("run").display()
            ),
        )
        .unwrap();
        let socket = d.join("podman.sock");
        let mut me = Podman {
            dir,
            socket,
            service: None,
        };
        let image = build_image(me.dir.path());
        let archive = format!("{}.tar", image.display());
        check(me.cli(&["load", "-i", &archive]), "podman load");
        // The archive's ref.name is just `latest`.
        check(
            me.cli(&["tag", "localhost/latest:latest", IMAGE]),
            "podman tag",
        );
        me.start_service();
        me
    }

    /// (Re)starts `podman system service` on the socket.
    pub fn start_service(&mut self) {
        assert!(self.service.is_none(), "the service is already running");
        let _ = std::fs::remove_file(&self.socket);
        let child = self
            .command()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", self.socket.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("service.log")).unwrap())
            .spawn()
            .expect("podman is installed (apt-get install podman)");
        self.service = Some(child);
        let sock = self.socket.clone();
        wait_for("podman's API socket", Duration::from_secs(15), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
    }

    /// Kills the API service (containers go on running).
    pub fn kill_service(&mut self) {
        if let Some(mut c) = self.service.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.dir.path().join("storage.conf"),
            );
        c
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    pub fn run(&self, name: &str, script: &str) -> String {
        check(
            self.cli(&["run", "-d", "--name", name, IMAGE, "/bin/sh", "-c", script]),
            "podman run",
        )
    }

    pub fn pid(&self, name: &str) -> u32 {
        check(
            self.cli(&["inspect", "-f", "{{.State.Pid}}", name]),
            "podman inspect",
        )
        .parse()
        .unwrap()
    }

    pub fn remove(&self, name: &str) {
        let _ = self.cli(&["rm", "-f", "-t", "0", name]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cli(&["rm", "-af", "-t", "0"]);
        if let Some(mut c) = self.service.take() {
            terminate(&mut c, Duration::from_secs(5));
        }
        let _ = self.cli(&["system", "reset", "-f"]);
        unmount_below(self.dir.path());
    }
}

/// A standalone containerd with its root, state and sockets in a temp dir.
pub struct Containerd {
    pub dir: TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl Containerd {
    pub fn start() -> Containerd {
        Containerd::start_with(false)
    }

    /// With the CRI plugin set up for host-network pods, its sandbox image
    /// being the test image (imported into `k8s.io`).
    pub fn start_with_cri() -> Containerd {
        Containerd::start_with(true)
    }

    fn start_with(cri: bool) -> Containerd {
        let dir = TempDir::new("containerd");
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let cfg = d.join("config.toml");
        // Top-level keys first, then tables.
        let mut conf = format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\n",
            d.join("root").display(),
            d.join("state").display()
        );
        if !cri {
            conf += "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n";
        }
        conf += &format!(
            "[grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"{debug}\"\n[metrics]\n  address = \"\"\n",
            sock = socket.display(),
            debug = d.join("debug.sock").display(),
        );
        if cri {
            conf += &format!(
                "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{IMAGE}\"\n  restrict_oom_score_adj = true\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  conf_dir = \"{}\"\n",
                d.join("cni").display()
            );
        }
        std::fs::write(&cfg, conf).unwrap();
        let child = spawn_containerd(d);
        let me = Containerd { dir, socket, child };
        wait_for("containerd to answer", Duration::from_secs(20), || {
            me.ctr("default", &["version"]).status.success()
        });
        let image = build_image(me.dir.path());
        let archive = format!("{}.tar", image.display());
        check(
            me.ctr(
                "default",
                &["images", "import", "--base-name", "localhost/bb", &archive],
            ),
            "ctr images import",
        );
        if cri {
            check(
                me.ctr(
                    "k8s.io",
                    &["images", "import", "--base-name", "localhost/bb", &archive],
                ),
                "ctr images import (k8s.io)",
            );
        }
        me
    }

    pub fn ctr(&self, namespace: &str, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", namespace])
            .args(args)
            .output()
            .unwrap()
    }

    /// Starts a detached task `name` running `sh -c script`.
    pub fn run(&self, name: &str, script: &str) {
        check(
            self.ctr(
                "default",
                &["run", "-d", IMAGE, name, "/bin/sh", "-c", script],
            ),
            "ctr run",
        );
    }

    pub fn pid(&self, name: &str) -> u32 {
        let out = check(self.ctr("default", &["task", "ls"]), "ctr task ls");
        out.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&name)).then(|| f[1].parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no task {name} in:\n{out}"))
    }

    /// Kills and deletes task and container `name`.
    pub fn remove(&self, name: &str) {
        let _ = self.ctr("default", &["task", "kill", "-s", "SIGKILL", name]);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if self
                .ctr("default", &["task", "delete", name])
                .status
                .success()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.ctr("default", &["container", "delete", name]);
    }
}

fn spawn_containerd(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .unwrap();
    Command::new("containerd")
        .arg("-c")
        .arg(dir.join("config.toml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("containerd is installed (apt-get install containerd)")
}

impl Containerd {
    /// Kills the daemon (its tasks go on running in their shims).
    pub fn kill_daemon(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the daemon again on the same root, state and socket.
    pub fn restart_daemon(&mut self) {
        self.child = spawn_containerd(self.dir.path());
        wait_for(
            "containerd to answer again",
            Duration::from_secs(20),
            || self.ctr("default", &["version"]).status.success(),
        );
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Shims outlive containerd: end every task first.
        let tasks = String::from_utf8(self.ctr("default", &["task", "ls", "-q"]).stdout)
            .unwrap_or_default();
        for t in tasks.split_whitespace() {
            self.remove(t);
        }
        terminate(&mut self.child, Duration::from_secs(10));
        unmount_below(self.dir.path());
    }
}

/// A podman of the test's own and an agent watching it
/// (`--container-runtime podman=SOCKET`); dropped whole, the agent goes
/// first and podman last (keep the value, not only some of its fields).
pub struct PodmanAgent {
    pub agent: crate::Agent,
    pub bus: crate::Bus,
    pub podman: Podman,
}

/// Starts a [`PodmanAgent`] (as root); `None` when podman is missing, after
/// saying that the test is skipped and why.
pub fn podman_agent() -> Option<PodmanAgent> {
    let podman = podman()?;
    let bus = crate::Bus::start();
    let flag = format!("podman={}", podman.socket.display());
    let agent = crate::Agent::start_with(&bus, &["--container-runtime", &flag]);
    Some(PodmanAgent { agent, bus, podman })
}
