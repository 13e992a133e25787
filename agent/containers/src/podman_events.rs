//! podman's own events file, followed with inotify, so a container is
//! announced ([`Registry::created`]) when the podman CLI creates it.
//!
//! podman's API service learns of containers created by the podman CLI
//! (another process) only by polling the events file (`events_logger =
//! "file"`), every 250 ms or so: its `/events` stream delivers `create`,
//! `init` and `start` together, after the container has already run its
//! first commands. The file itself gets the `create` line 100–170 ms before
//! the container's first exec (measured here with `podman run`), early enough
//! for the kernel-side catch-up to await the container's cgroup.
//!
//! The file is found without configuration: while a client follows
//! `/events`, the service holds it open, so it is one of the service's file
//! descriptors (the service's pid comes from the API socket's peer
//! credentials). Opened through `/proc/<pid>/root`, it is the service's file
//! whatever its mount namespace.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::Deserialize;
use tokio::io::unix::AsyncFd;

use super::{Discovered, K8s, Registry};

/// One line of podman's events file (podman 4: `libpod/events.Event`).
#[derive(Deserialize)]
struct FileEvent {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Type", default)]
    kind: String,
    /// The container's labels.
    #[serde(rename = "Attributes", default)]
    attributes: Option<HashMap<String, String>>,
}

impl FileEvent {
    fn parse(line: &[u8]) -> Option<FileEvent> {
        let ev: FileEvent = serde_json::from_slice(line).ok()?;
        (!ev.status.is_empty() && !ev.kind.is_empty()).then_some(ev)
    }

    fn created(self) -> Discovered {
        let labels = self.attributes.unwrap_or_default();
        Discovered {
            k8s: K8s::from_labels(|k| labels.get(k).map(String::as_str)),
            ips: Vec::new(),
            id: self.id,
            name: self.name,
            image: self.image,
            pid: 0,
            namespace: String::new(),
        }
    }
}

/// The last complete line of `file` (at most its last 64 KiB).
fn last_line(path: &Path) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    tail.split(|b| *b == b'\n')
        .rev()
        .find(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
}

/// Among process `pid`'s open files, podman's events file: a regular file
/// named `events.log` (podman's default name), or one whose last line is a
/// podman event. `None` when the process holds no such file (it follows the
/// journal, or it is not the service: a socket-activated service's listener
/// belongs to systemd).
pub fn find(pid: u32) -> Option<PathBuf> {
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut found = None;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let Ok(n) = fd.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if n < 3 {
            continue;
        }
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        if !target.is_absolute() {
            continue; // socket:[…], pipe:[…], anon_inode:…
        }
        let path = root.join(target.strip_prefix("/").unwrap_or(&target));
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if target.file_name().is_some_and(|n| n == "events.log") {
            return Some(path);
        }
        if found.is_none() && last_line(&path).is_some_and(|l| FileEvent::parse(&l).is_some()) {
            found = Some(path);
        }
    }
    found
}

/// An inotify instance for [`AsyncFd`].
struct Watch(Inotify);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// How long the service may take to open the file after `/events` answered.
const FIND_TRIES: u32 = 40;
const FIND_EVERY: Duration = Duration::from_millis(25);

/// Follows the events file of the podman service `pid` and announces each
/// created container, until the file is moved, deleted or unreadable (the
/// `/events` stream goes on meanwhile). Returns why it stopped; `Ok` when
/// the service holds no events file (journald logger).
pub async fn follow(
    pid: u32,
    registry: &Registry,
    following: &std::sync::atomic::AtomicBool,
) -> Result<(), String> {
    let mut path = None;
    for _ in 0..FIND_TRIES {
        path = find(pid);
        if path.is_some() {
            break;
        }
        tokio::time::sleep(FIND_EVERY).await;
    }
    let Some(path) = path else {
        tracing::debug!(
            pid,
            "podman's service holds no events file: relying on its /events stream"
        );
        return Ok(());
    };
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| format!("inotify: {e}"))?;
    inotify
        .add_watch(
            &path,
            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_DELETE_SELF,
        )
        .map_err(|e| format!("watching {}: {e}", path.display()))?;
    // SAFETY: `Watch` owns the inotify fd, which is neither replaced nor
    // closed while the `AsyncFd` holds it.
    let watch = unsafe { AsyncFd::register(Watch(inotify)) }
        .map_err(|e| format!("inotify: {}", e.into_parts().1))?;
    let mut file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut offset = file
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    following.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(pid, path = %path.display(), "following podman's events file");
    let mut buf: Vec<u8> = Vec::new();
    let end = loop {
        let mut ready = match watch.readable().await {
            Ok(r) => r,
            Err(e) => break format!("inotify: {e}"),
        };
        let events = match ready.get_inner().0.read_events() {
            Ok(ev) => ev,
            Err(nix::errno::Errno::EAGAIN) => {
                ready.clear_ready();
                continue;
            }
            Err(e) => break format!("inotify: {e}"),
        };
        if events.iter().any(|e| {
            e.mask.intersects(
                AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_IGNORED,
            )
        }) {
            break format!("{} was moved or deleted", path.display());
        }
        // Truncated (rotated in place): start over.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < offset {
            offset = 0;
            buf.clear();
            let _ = file.seek(SeekFrom::Start(0));
        }
        let before = buf.len();
        if let Err(e) = file.read_to_end(&mut buf) {
            break format!("reading {}: {e}", path.display());
        }
        offset += (buf.len() - before) as u64;
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in buf[..complete].split(|b| *b == b'\n') {
            let Some(ev) = FileEvent::parse(line) else {
                continue;
            };
            if ev.kind == "container" && ev.status == "create" && !ev.id.is_empty() {
                registry.created(ev.created().created("podman"));
            }
        }
        buf.drain(..complete);
    };
    following.store(false, std::sync::atomic::Ordering::Relaxed);
    Err(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_podman_event_lines() {
        let line = br#"{"ID":"d219b88b","Image":"localhost/bb:latest","Name":"t2","Status":"create","Time":"2026-11-30T07:43:02.801691359Z","Type":"container","Attributes":{"io.kubernetes.pod.name":"p"}}"#;
        let ev = FileEvent::parse(line).unwrap();
        assert_eq!(
            (ev.id.as_str(), ev.status.as_str(), ev.kind.as_str()),
            ("d219b88b", "create", "container")
        );
        let d = ev.created();
        assert_eq!(
            (d.name.as_str(), d.image.as_str(), d.k8s.pod_name.as_str()),
            ("t2", "localhost/bb:latest", "p")
        );
        // Not events: other JSON, partial lines, garbage.
        assert!(FileEvent::parse(br#"{"level":"info"}"#).is_none());
        assert!(FileEvent::parse(br#"{"ID":"x","Status":"cre"#).is_none());
        assert!(FileEvent::parse(b"\x1b[31mred").is_none());
    }

    #[test]
    fn finds_an_events_file_among_a_process_files() {
        let dir =
            std::env::temp_dir().join(format!("gadgetd-podman-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let other = dir.join("other.log");
        std::fs::write(&other, b"plain text\n").unwrap();
        let custom = dir.join("custom-name.json");
        std::fs::write(
            &custom,
            b"{\"ID\":\"a\",\"Status\":\"start\",\"Type\":\"container\"}\n",
        )
        .unwrap();
        let _o = std::fs::File::open(&other).unwrap();
        let me = std::process::id();
        assert_eq!(find(me), None, "a plain file is not an events file");
        let _c = std::fs::File::open(&custom).unwrap();
        let found = find(me).expect("the events file held open");
        assert!(
            found.ends_with(custom.strip_prefix("/").unwrap()),
            "{found:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
