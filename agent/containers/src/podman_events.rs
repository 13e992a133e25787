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
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tail = Tail::at_end(file).map_err(|e| format!("{}: {e}", path.display()))?;
    following.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(pid, path = %path.display(), "following podman's events file");
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
        let skipped = tail.skipped;
        let read = tail.read(|line| {
            let Some(ev) = FileEvent::parse(line) else {
                return;
            };
            if ev.kind == "container" && ev.status == "create" && !ev.id.is_empty() {
                registry.created(ev.created().created("podman"));
            }
        });
        if tail.skipped > skipped {
            tracing::warn!(
                path = %path.display(),
                skipped = tail.skipped - skipped,
                total = tail.skipped,
                limit = MAX_LINE,
                "podman's events file: lines longer than the limit (bytes) were skipped"
            );
        }
        if let Err(e) = read {
            break format!("reading {}: {e}", path.display());
        }
    };
    following.store(false, std::sync::atomic::Ordering::Relaxed);
    Err(end)
}

/// Bytes read from the events file per step.
const READ_STEP: usize = 64 * 1024;

/// The longest line kept, in bytes: a podman event, labels included, is a
/// few KiB; a longer line is skipped (and counted) rather than buffered.
const MAX_LINE: usize = 256 * 1024;

/// The complete lines appended to a file, read in steps of [`READ_STEP`]
/// bytes, holding at most [`MAX_LINE`] bytes of an unfinished line.
struct Tail {
    file: std::fs::File,
    /// Bytes of the file read so far (a shorter file was truncated).
    offset: u64,
    /// The start of a line whose newline has not been read yet.
    partial: Vec<u8>,
    /// Inside an over-long line: its bytes are dropped up to its newline.
    skipping: bool,
    /// Over-long lines skipped so far.
    skipped: u64,
    step: Box<[u8]>,
}

impl Tail {
    /// Follows `file` from its current end.
    fn at_end(mut file: std::fs::File) -> std::io::Result<Tail> {
        let offset = file.seek(SeekFrom::End(0))?;
        Ok(Tail {
            file,
            offset,
            partial: Vec::new(),
            skipping: false,
            skipped: 0,
            step: vec![0; READ_STEP].into_boxed_slice(),
        })
    }

    /// Calls `line` with each line (newline excluded) completed since the
    /// last call, up to the file's end. A file shorter than what was read
    /// was truncated (rotated in place): it is read again from its start.
    fn read(&mut self, mut line: impl FnMut(&[u8])) -> std::io::Result<()> {
        if self.file.metadata()?.len() < self.offset {
            self.file.seek(SeekFrom::Start(0))?;
            self.offset = 0;
            self.partial.clear();
            self.skipping = false;
        }
        loop {
            let n = match self.file.read(&mut self.step) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.offset += n as u64;
            let step = std::mem::take(&mut self.step);
            self.split(&step[..n], &mut line);
            self.step = step;
        }
    }

    /// Splits the bytes `data` read next into lines.
    fn split(&mut self, mut data: &[u8], line: &mut impl FnMut(&[u8])) {
        while let Some(i) = data.iter().position(|b| *b == b'\n') {
            let (head, rest) = (&data[..i], &data[i + 1..]);
            data = rest;
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if self.partial.len() + head.len() > MAX_LINE {
                self.partial.clear();
                self.skipped += 1;
            } else if self.partial.is_empty() {
                line(head);
            } else {
                self.partial.extend_from_slice(head);
                line(&self.partial);
                self.partial.clear();
            }
        }
        if self.skipping || data.is_empty() {
            return;
        }
        if self.partial.len() + data.len() > MAX_LINE {
            self.partial = Vec::new();
            self.skipping = true;
            self.skipped += 1;
        } else {
            self.partial.extend_from_slice(data);
        }
    }
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

    /// A file in a fresh directory, appended to as podman appends.
    struct Events {
        dir: PathBuf,
        path: PathBuf,
    }

    impl Events {
        fn new(name: &str) -> Events {
            let dir =
                std::env::temp_dir().join(format!("gadgetd-podman-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            // Not `events.log`: find() in the test beside would pick it.
            let path = dir.join("followed.log");
            std::fs::write(&path, b"{\"before\":\"following\"}\n").unwrap();
            Events { dir, path }
        }

        fn append(&self, data: &[u8]) {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .unwrap();
            f.write_all(data).unwrap();
        }

        fn tail(&self) -> Tail {
            Tail::at_end(std::fs::File::open(&self.path).unwrap()).unwrap()
        }
    }

    impl Drop for Events {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn lines(tail: &mut Tail) -> Vec<String> {
        let mut got = Vec::new();
        tail.read(|l| got.push(String::from_utf8_lossy(l).into_owned()))
            .unwrap();
        got
    }

    #[test]
    fn tail_reads_appended_lines_whole_and_starts_over_after_truncation() {
        let events = Events::new("tail");
        let mut tail = events.tail();
        assert!(
            lines(&mut tail).is_empty(),
            "what was there before is skipped"
        );
        events.append(b"one\ntw");
        assert_eq!(lines(&mut tail), ["one"]);
        events.append(b"o\n\nthree\n");
        assert_eq!(lines(&mut tail), ["two", "", "three"]);
        // Many lines in one append: read over several steps, none lost.
        let many: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        assert!(many.len() > 2 * READ_STEP);
        events.append(many.as_bytes());
        let got = lines(&mut tail);
        assert_eq!(got.len(), 20_000);
        assert_eq!(
            (got[0].as_str(), got[19_999].as_str()),
            ("line 0", "line 19999")
        );
        // Truncated and written again (rotated in place), with a partial line pending.
        events.append(b"cut sho");
        assert!(lines(&mut tail).is_empty());
        std::fs::write(&events.path, b"new\n").unwrap();
        assert_eq!(lines(&mut tail), ["new"]);
        events.append(b"next\n");
        assert_eq!(lines(&mut tail), ["next"]);
        assert_eq!(tail.skipped, 0);
    }

    #[test]
    fn an_over_long_line_is_skipped_and_counted_and_nothing_else_is_lost() {
        let events = Events::new("long");
        let mut tail = events.tail();
        let long = vec![b'x'; MAX_LINE + 1];
        // A line over the limit arriving in one append, between two lines.
        events.append(&[b"a\n".as_slice(), &long, b"\nb\n"].concat());
        assert_eq!(lines(&mut tail), ["a", "b"]);
        assert_eq!(tail.skipped, 1);
        // One arriving in pieces over several reads: nothing of it is
        // buffered past the limit, and the line after it is whole.
        events.append(b"c\n");
        events.append(&long[..READ_STEP]);
        assert_eq!(lines(&mut tail), ["c"]);
        events.append(&long[READ_STEP..]);
        assert_eq!(lines(&mut tail), Vec::<String>::new());
        assert!(tail.skipping && tail.partial.is_empty());
        events.append(b"\nd\n");
        assert_eq!(lines(&mut tail), ["d"]);
        assert_eq!(tail.skipped, 2);
        // A line at the limit exactly is kept.
        let at_limit = vec![b'y'; MAX_LINE];
        events.append(&[&at_limit[..], b"\n"].concat());
        assert_eq!(lines(&mut tail), [String::from_utf8(at_limit).unwrap()]);
        assert_eq!(tail.skipped, 2);
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
