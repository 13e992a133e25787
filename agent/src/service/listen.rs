//! The peer-to-peer socket: created with `--listen PATH`, or inherited from
//! systemd socket activation (`LISTEN_FDS`, fd 3).

use std::os::fd::FromRawFd;
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

    pub async fn accept_loop(self, agent: Arc<Agent>) -> anyhow::Result<()> {
        loop {
            let (stream, _) = self.inner.accept().await?;
            let agent = agent.clone();
            tokio::spawn(async move {
                if let Err(e) = super::serve_peer(stream, agent).await {
                    tracing::warn!(error = %e, "peer-to-peer client failed");
                }
            });
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

/// The inherited socket if systemd passed one, else a new one at `path`.
pub fn listener(path: Option<&Path>) -> anyhow::Result<Option<Listener>> {
    if let Some(l) = inherited()? {
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

fn inherited() -> anyhow::Result<Option<Listener>> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !ours || count < 1 {
        return Ok(None);
    }
    // SAFETY: systemd passes the listening socket as fd 3 and nothing else owns it.
    let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) };
    std_listener.set_nonblocking(true)?;
    // Do not pass the fds on to children.
    // SAFETY: removing variables before any thread reads the environment concurrently.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    Ok(Some(Listener {
        inner: UnixListener::from_std(std_listener)?,
        path: None,
    }))
}
