//! `GET /metrics` over HTTP/1.1 (hyper) on a TCP socket: `--metrics-listen
//! ADDR`, or the one `gadgetd-metrics.socket` passes. The body is rendered
//! whole before the response starts (with its Content-Length), so a scraper
//! never reads half an exposition.
//!
//! While the endpoint serves, the kernel counts program run time
//! (BPF_ENABLE_STATS) for `gadgetd_program_*`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::Format;
use crate::service::Agent;

/// Scrapers served at once; more wait for a slot (their TCP connection is
/// accepted by the kernel meanwhile).
const MAX_CONNECTIONS: usize = 16;
/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The metrics endpoint's listening socket.
pub struct MetricsListener {
    inner: TcpListener,
}

impl MetricsListener {
    /// `ADDR:PORT` it listens on.
    pub fn describe(&self) -> String {
        match self.inner.local_addr() {
            Ok(a) => a.to_string(),
            Err(_) => "(unknown address)".into(),
        }
    }
}

/// The inherited metrics socket if systemd passed one, else a new one on
/// `addr`, else none (metrics are off).
pub fn listener(
    addr: Option<SocketAddr>,
    inherited: Option<OwnedFd>,
) -> anyhow::Result<Option<MetricsListener>> {
    let std_listener = match (inherited, addr) {
        (Some(fd), _) => {
            let l = std::net::TcpListener::from(fd);
            // A Unix or datagram socket would fail here with a clear cause.
            l.local_addr().map_err(|e| {
                anyhow::anyhow!(
                    "the socket systemd passed as `metrics` is not a TCP socket ({e}): \
                     gadgetd-metrics.socket needs ListenStream=ADDRESS:PORT"
                )
            })?;
            l
        }
        (None, Some(addr)) => std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: cannot listen there: {e}"))?,
        (None, None) => return Ok(None),
    };
    std_listener.set_nonblocking(true)?;
    Ok(Some(MetricsListener {
        inner: TcpListener::from_std(std_listener)?,
    }))
}

/// Serves scrapers forever. A failed accept is retried after a pause.
pub async fn serve(listener: MetricsListener, agent: Arc<Agent>) {
    let _stats = match gadgetd_runtime::metrics::enable_run_time_stats() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "program run counts and run time stay 0 (cannot enable BPF statistics)");
            None
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.inner.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!(error = %e, "metrics: accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let agent = agent.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, agent.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics client connection ended with an error");
            }
            drop(permit);
        });
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(
    req: Request<Incoming>,
    agent: Arc<Agent>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/metrics" {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            "gadgetd serves only /metrics here\n",
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET /metrics\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    // Reading maps and /proc are syscalls: off the async workers.
    let body = match tokio::task::spawn_blocking(move || super::render(&agent, format)).await {
        Ok(body) => body,
        Err(_) => {
            return Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the metrics failed; see the agent's log\n",
            ));
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(format.content_type()),
    );
    Ok(r)
}
