//! The peer-to-peer socket: created with `--listen PATH`, or inherited from
//! systemd socket activation (`LISTEN_FDS`, see [`super::activation`]).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;

use super::manager::Agent;

pub struct Listener {
    inner: UnixListener,
    /// Set when we created the socket file (and so remove it at exit).
    path: Option<PathBuf>,
}

impl Listener {
    pub fn describe(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "inherited from systemd".into(),
        }
    }

    /// Accepts clients forever. A failed `accept` (no fds left, say) is
    /// logged and retried after a pause, never fatal: detached runs keep
    /// running. Clients beyond the connection limits are closed at once.
    pub async fn accept_loop(self, agent: Arc<Agent>) -> anyhow::Result<()> {
        let mut warned = RateLimitedWarning::default();
        loop {
            let stream = match self.inner.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warned.warn(|| tracing::warn!(error = %e, "cannot accept a peer-to-peer client; retrying"));
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            let uid = match stream.peer_cred() {
                Ok(c) => c.uid(),
                Err(e) => {
                    tracing::debug!(error = %e, "peer-to-peer client without credentials; closed");
                    continue;
                }
            };
            let permit = match agent.limits.connections.acquire(uid) {
                Ok(p) => p,
                Err(why) => {
                    warned.warn(|| tracing::warn!(uid, "peer-to-peer client refused: {why}"));
                    continue;
                }
            };
            let agent = agent.clone();
            tokio::spawn(async move {
                if let Err(e) = super::serve_peer(stream, agent).await {
                    tracing::debug!(uid, error = %e, "peer-to-peer client failed");
                }
                drop(permit);
            });
        }
    }
}

/// Pause after a failed `accept` before trying again.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// At most one warning per ten seconds (a flood must not flood the log).
#[derive(Default)]
struct RateLimitedWarning {
    last: Option<std::time::Instant>,
}

impl RateLimitedWarning {
    fn warn(&mut self, log: impl FnOnce()) {
        if self
            .last
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10))
        {
            self.last = Some(std::time::Instant::now());
            log();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The inherited socket if systemd passed one (`inherited`, from
/// [`super::activation::take`]), else a new one at `path`.
pub fn listener(
    path: Option<&Path>,
    inherited_fd: Option<OwnedFd>,
) -> anyhow::Result<Option<Listener>> {
    if let Some(l) = inherited(inherited_fd)? {
        return Ok(Some(l));
    }
    let Some(path) = path else { return Ok(None) };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot replace the old socket {}: {e}", path.display()),
    }
    let inner = UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
    // Access is decided per call (peer uid), so everyone may connect.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(Some(Listener {
        inner,
        path: Some(path.to_path_buf()),
    }))
}

fn inherited(fd: Option<OwnedFd>) -> anyhow::Result<Option<Listener>> {
    let Some(fd) = fd else { return Ok(None) };
    let std_listener = std::os::unix::net::UnixListener::from(fd);
    std_listener.set_nonblocking(true)?;
    Ok(Some(Listener {
        inner: UnixListener::from_std(std_listener)?,
        path: None,
    }))
}
