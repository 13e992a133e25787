//! A real Prometheus (Debian's `prometheus` package) for the metrics tests:
//! started on loopback with a temporary config that scrapes one target
//! every 2 s, queried through its HTTP API, stopped on drop. Also a
//! minimal HTTP/1.0 GET for scraping gadgetd directly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TempDir, require_root, terminate, wait_for};

/// A loopback address with a port nobody listens on now.
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// One HTTP response: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("the body is UTF-8")
    }
}

/// `GET path` over HTTP/1.0 (the server closes after the response).
pub fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(a) = accept {
        req.push_str(&format!("Accept: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// A Prometheus server scraping one target.
pub struct Prometheus {
    pub addr: SocketAddr,
    pub dir: TempDir,
    child: Option<Child>,
}

impl Prometheus {
    /// The `prometheus` binary, if installed (`.ci/install-deps test`).
    pub fn binary() -> Option<PathBuf> {
        ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    }

    /// Starts Prometheus scraping `http://target/metrics` every 2 s and
    /// waits until it is ready.
    pub fn start(target: SocketAddr) -> Prometheus {
        require_root();
        let bin =
            Prometheus::binary().expect("prometheus is not installed: run .ci/install-deps test");
        let dir = TempDir::new("prometheus");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n\
                 scrape_configs:\n  - job_name: gadgetd\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = free_addr();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let p = Prometheus {
            addr,
            dir,
            child: Some(child),
        };
        wait_for("prometheus to be ready", Duration::from_secs(30), || {
            get(addr, "/-/ready", None).is_ok_and(|r| r.status == 200)
        });
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant PromQL query: each result's labels and value.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let mut q = String::new();
        for b in promql.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                q.push(b as char);
            } else {
                q.push_str(&format!("%{b:02X}"));
            }
        }
        let r = get(self.addr, &format!("/api/v1/query?query={q}"), None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["status"], "success", "query {promql}: {v}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let value = s["value"][1].as_str().unwrap().parse().unwrap();
                (s["metric"].clone(), value)
            })
            .collect()
    }

    /// Waits until `promql` returns exactly one series with `value`.
    pub fn wait_value(&self, promql: &str, value: f64, timeout: Duration) {
        let start = Instant::now();
        loop {
            let got = self.query(promql);
            if got.len() == 1 && got[0].1 == value {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{promql}: expected one series = {value}, got {got:?}; targets: {}; log: {}",
                get(self.addr, "/api/v1/targets", None)
                    .map(|r| r.text())
                    .unwrap_or_default(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(10));
        }
    }
}

/// `promtool check metrics` on `exposition`: its stdout+stderr, and
/// whether it passed.
pub fn promtool_check(exposition: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed with prometheus");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A text-format scrape of `addr`'s `/metrics`, after asserting it
/// answered 200 and `promtool check metrics` passed without a remark.
pub fn scrape_clean(addr: SocketAddr) -> String {
    let r = get(addr, "/metrics", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let (passed, report) = promtool_check(&text);
    assert!(
        passed && report.is_empty(),
        "promtool check metrics:\n{report}\n---\n{text}"
    );
    text
}

/// Asserts that exposition `text` has each of `lines` (e.g. `# TYPE x counter\n`).
pub fn assert_has(text: &str, lines: &[&str]) {
    for l in lines {
        assert!(text.contains(l), "no `{l}` in:\n{text}");
    }
}
