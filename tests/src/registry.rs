//! A real Debian `docker-registry` (distribution 2.8) on a private loopback
//! port and storage directory, optionally with htpasswd (bcrypt) auth.
//! Killed by PID on drop.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

pub struct Registry {
    pub dir: TempDir,
    pub port: u16,
    child: Option<Child>,
}

/// User and password of registries started with auth.
pub const USER: &str = "gadget";
pub const PASSWORD: &str = "s3cret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the registry and skopeo are installed (tests skip, saying why, if not).
pub fn available() -> Result<(), String> {
    for tool in ["docker-registry", "skopeo", "htpasswd"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!(
                "{tool} is not installed (apt-get install docker-registry skopeo apache2-utils, or make deps)"
            ));
        }
    }
    Ok(())
}

impl Registry {
    pub fn start(auth: bool) -> Registry {
        let dir = TempDir::new("registry");
        let port = free_port();
        let mut auth_conf = String::new();
        if auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd runs");
            assert!(out.status.success());
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, out.stdout).unwrap();
            auth_conf = format!(
                "auth:\n  htpasswd:\n    realm: gadgetd-test\n    path: {}\n",
                path.display()
            );
        }
        let conf = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_conf}",
            dir.path().join("data").display()
        );
        let conf_path = dir.path().join("config.yml");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry runs");
        let mut reg = Registry {
            dir,
            port,
            child: Some(child),
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = reg.child.as_mut().map(|c| c.try_wait()) {
                panic!("docker-registry exited with {status}: {}", reg.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "docker-registry did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        reg
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The file the registry serves a blob from.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }

    /// SIGKILL: the registry goes away mid-whatever.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `skopeo` with `args`, plain HTTP to this registry, credentials when given.
    pub fn skopeo(&self, args: &[&str]) -> std::process::Output {
        Command::new("skopeo")
            .args(args)
            .output()
            .expect("skopeo runs")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}
