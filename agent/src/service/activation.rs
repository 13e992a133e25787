//! The sockets systemd passes (`LISTEN_FDS`, from fd 3, named by
//! `LISTEN_FDNAMES`): the peer-to-peer socket (`gadgetd.socket`) and the
//! metrics socket (`gadgetd-metrics.socket`, `FileDescriptorName=metrics`).

use std::os::fd::{FromRawFd, OwnedFd};

/// The `FileDescriptorName=` of the metrics socket unit.
pub const METRICS_FD_NAME: &str = "metrics";

/// What systemd passed, by role.
#[derive(Debug, Default)]
pub struct Inherited {
    /// The peer-to-peer socket: any passed socket not named [`METRICS_FD_NAME`].
    pub p2p: Option<OwnedFd>,
    /// The metrics socket.
    pub metrics: Option<OwnedFd>,
}

/// Takes the passed sockets (once: the variables are removed so children
/// do not see them). Nothing when they are not meant for this process.
pub fn take() -> Inherited {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    // SAFETY: removing variables before any thread reads the environment concurrently.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let mut out = Inherited::default();
    if !ours || count < 1 {
        return out;
    }
    let mut names = names.split(':');
    for fd in 3..3 + count {
        // SAFETY: systemd passes fds 3..3+LISTEN_FDS to us and nothing else owns them.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let slot = match names.next() {
            Some(METRICS_FD_NAME) => &mut out.metrics,
            _ => &mut out.p2p,
        };
        if slot.is_some() {
            tracing::warn!(
                fd,
                "systemd passed two sockets for the same role; closing the second"
            );
            continue;
        }
        *slot = Some(owned);
    }
    out
}
