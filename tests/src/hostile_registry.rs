//! A hostile registry the tests serve themselves: a tiny HTTP/1.1 server on
//! a loopback port that asks for a bearer token (`/v2/` answers 401 with a
//! `Bearer realm=` challenge pointing at its own `/token`) and answers the
//! token endpoint and manifests with whatever a test sets: a small JSON
//! body, a body that never ends, or a `Content-Length` of gigabytes. It
//! counts the bytes it managed to send, so a test can check that the
//! agent stopped reading.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A response body.
#[derive(Clone, Debug)]
pub enum Body {
    /// Exactly these bytes, with their length.
    Bytes(Vec<u8>),
    /// `prefix`, then `a` forever, without a length (ends when the peer closes).
    Endless { prefix: String },
    /// A `Content-Length` of `length`, then `prefix` and `a` until the peer closes.
    Claimed { length: u64, prefix: String },
}

/// A status and body for one kind of request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Body,
}

impl Answer {
    /// 200 with a JSON token (what a sane token endpoint says).
    pub fn token() -> Answer {
        Answer {
            status: 200,
            body: Body::Bytes(br#"{"token":"hostile-but-small"}"#.to_vec()),
        }
    }

    /// `status` with a body that never ends, starting with `prefix`.
    pub fn endless(status: u16, prefix: &str) -> Answer {
        Answer {
            status,
            body: Body::Endless {
                prefix: prefix.into(),
            },
        }
    }

    /// `status` claiming a `length`-byte body.
    pub fn claimed(status: u16, length: u64, prefix: &str) -> Answer {
        Answer {
            status,
            body: Body::Claimed {
                length,
                prefix: prefix.into(),
            },
        }
    }
}

#[derive(Default)]
struct Script {
    token: Option<Answer>,
    manifest: Option<Answer>,
}

/// The running server (its threads end with the test process; dropping it
/// stops accepting).
pub struct HostileRegistry {
    pub port: u16,
    script: Arc<Mutex<Script>>,
    sent: Arc<AtomicU64>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl HostileRegistry {
    /// Starts serving; the token endpoint and manifests answer 404 until set.
    pub fn start() -> HostileRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let reg = HostileRegistry {
            port,
            script: Arc::default(),
            sent: Arc::default(),
            requests: Arc::default(),
            stop: Arc::default(),
        };
        let (script, sent, requests, stop) = (
            reg.script.clone(),
            reg.sent.clone(),
            reg.requests.clone(),
            reg.stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (script, sent, requests) = (script.clone(), sent.clone(), requests.clone());
                std::thread::spawn(move || serve(conn, port, &script, &sent, &requests));
            }
        });
        reg
    }

    /// `host:port`, a loopback registry (plain HTTP to it is allowed).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What `GET /token` answers from now on.
    pub fn set_token(&self, a: Answer) {
        self.script.lock().unwrap().token = Some(a);
    }

    /// What `GET /v2/REPO/manifests/KEY` answers from now on.
    pub fn set_manifest(&self, a: Answer) {
        self.script.lock().unwrap().manifest = Some(a);
    }

    /// Body bytes sent so far (all requests), and resets the count.
    pub fn take_sent(&self) -> u64 {
        self.sent.swap(0, Ordering::Relaxed)
    }

    /// The request lines received so far (`GET /v2/ HTTP/1.1`, ...).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    conn: TcpStream,
    port: u16,
    script: &Mutex<Script>,
    sent: &AtomicU64,
    requests: &Mutex<Vec<String>>,
) {
    // A peer that stops reading without closing ends the answer too.
    let _ = conn.set_write_timeout(Some(Duration::from_secs(20)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        // Headers, up to the blank line (bodies are not expected).
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
        }
        let line = line.trim_end().to_string();
        requests.lock().unwrap().push(line.clone());
        let path = line.split(' ').nth(1).unwrap_or("");
        let answer = if path == "/v2/" {
            let challenge =
                format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"hostile\"");
            let head = format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\n\r\n"
            );
            if out.write_all(head.as_bytes()).is_err() {
                return;
            }
            continue;
        } else if path.starts_with("/token") {
            script.lock().unwrap().token.clone()
        } else if path.contains("/manifests/") {
            script.lock().unwrap().manifest.clone()
        } else {
            None
        };
        let answer = answer.unwrap_or(Answer {
            status: 404,
            body: Body::Bytes(
                br#"{"errors":[{"code":"NOT_FOUND","message":"nothing here"}]}"#.to_vec(),
            ),
        });
        if !respond(&mut out, &answer, sent) {
            return;
        }
    }
}

/// Writes `a`; false when the connection is done (an endless body always is).
fn respond(out: &mut TcpStream, a: &Answer, sent: &AtomicU64) -> bool {
    let status = format!(
        "HTTP/1.1 {} Hostile\r\nContent-Type: application/json\r\n",
        a.status
    );
    let (length, prefix) = match &a.body {
        Body::Bytes(b) => {
            let head = format!("{status}Content-Length: {}\r\n\r\n", b.len());
            let ok = out.write_all(head.as_bytes()).is_ok() && out.write_all(b).is_ok();
            sent.fetch_add(b.len() as u64, Ordering::Relaxed);
            return ok;
        }
        Body::Endless { prefix } => (None, prefix),
        Body::Claimed { length, prefix } => (Some(*length), prefix),
    };
    let head = match length {
        Some(n) => format!("{status}Content-Length: {n}\r\n\r\n"),
        None => format!("{status}Connection: close\r\n\r\n"),
    };
    if out.write_all(head.as_bytes()).is_err() || out.write_all(prefix.as_bytes()).is_err() {
        return false;
    }
    sent.fetch_add(prefix.len() as u64, Ordering::Relaxed);
    let chunk = vec![b'a'; 64 << 10];
    let mut left = length.map(|n| n.saturating_sub(prefix.len() as u64));
    loop {
        let n = left.map_or(chunk.len() as u64, |l| l.min(chunk.len() as u64)) as usize;
        if n == 0 || out.write_all(&chunk[..n]).is_err() {
            return false;
        }
        sent.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(l) = &mut left {
            *l -= n as u64;
        }
    }
}
