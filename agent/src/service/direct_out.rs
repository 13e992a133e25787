//! A client's own output as the destination of its event lines (the
//! `output-fd` option of `Run`, `RunObject` and `AttachWithOptions`).
//!
//! `gadgetctl run -o json | wc -l` used to copy every event twice on its
//! way: the agent into the stream socket, gadgetctl out of it and into its
//! stdout. With `output-fd` the client passes its stdout and the agent
//! writes the event lines there itself; the stream keeps the header, the
//! control lines and the end line, which comes after the last event
//! written (docs/dbus.md).
//!
//! The agent only ever writes event lines into the fd: it never reads from
//! it and never seeks. It must be open for writing and be a pipe, a FIFO or
//! a regular file (checked with `fstat` first; anything else is refused).
//! A pipe is reopened through `/proc/self/fd` as a description of the
//! agent's own with `O_NONBLOCK`, so the run task writes without blocking
//! while the caller's description (shared with its shell and whatever else
//! holds it) stays as it was. When the reopen is refused (the unit's
//! capability set has no `CAP_DAC_OVERRIDE`, and a user's pipe is mode
//! 0600), the caller's description is written with `pwritev2(RWF_NOWAIT)`,
//! which does not block and changes nothing either; Linux takes that flag
//! on anonymous pipes only, so a named FIFO the agent may not reopen is
//! refused (the client uses the stream). A regular file is written through the
//! caller's description (its offset, its `O_APPEND`), and only by the
//! writer task, on the blocking pool: storage can be slow, the run task
//! must not wait for it.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};
use nix::sys::statfs::{FsType, fstatfs};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// `f_type` of pipefs, where anonymous pipes live (`PIPEFS_MAGIC`,
/// linux/magic.h).
const PIPEFS: FsType = FsType(0x5049_5045);

/// A checked, writable output of the types the agent writes into.
#[derive(Clone)]
pub enum Output {
    /// A pipe or FIFO.
    Pipe(Arc<Pipe>),
    /// A regular file: a duplicate of the caller's fd (the same
    /// description: its offset and `O_APPEND` hold).
    File(Arc<File>),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Pipe(_) => f.write_str("Output::Pipe"),
            Output::File(_) => f.write_str("Output::File"),
        }
    }
}

impl Output {
    /// Checks `fd` (a caller's) and opens it for the agent's writes.
    ///
    /// Errors, each naming the option and what to do: `fd` is not open
    /// for writing; it is neither a pipe/FIFO nor a regular file (the
    /// message names its type: a terminal, a socket, ...); a FIFO whose
    /// read end is closed; a named FIFO the agent may not reopen (see
    /// [`Pipe`]); the duplicate failed.
    pub fn open(fd: BorrowedFd<'_>) -> Result<Output, String> {
        let key = gadgetd_dbus::types::options::OUTPUT_FD;
        let st = fstat(fd).map_err(|e| format!("option {key}: fstat: {e}"))?;
        let flags = fcntl(fd, FcntlArg::F_GETFL)
            .map(OFlag::from_bits_truncate)
            .map_err(|e| format!("option {key}: fcntl: {e}"))?;
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let writable = flags.contains(OFlag::O_WRONLY) || flags.contains(OFlag::O_RDWR);
        if flags.contains(OFlag::O_PATH) || !writable {
            return Err(format!(
                "option {key}: the fd is not open for writing (pass a descriptor opened \
                 write-only or read-write, such as your stdout)"
            ));
        }
        match kind {
            SFlag::S_IFIFO => Ok(Output::Pipe(Arc::new(Pipe::open(fd, &st)?))),
            SFlag::S_IFREG => {
                let dup: OwnedFd = fd
                    .try_clone_to_owned()
                    .map_err(|e| format!("option {key}: cannot duplicate the fd: {e}"))?;
                Ok(Output::File(Arc::new(File::from(dup))))
            }
            other => Err(format!(
                "option {key}: the fd is {} (gadgetd writes event lines only into a pipe, a \
                 FIFO or a regular file; leave {key} out to get the events on the event stream)",
                type_name(other)
            )),
        }
    }

    /// One non-blocking write from the run task: the bytes taken (0 when
    /// the pipe is full; always 0 for a regular file, which only the writer
    /// task writes). An error other than a full pipe means the output is
    /// gone (`EPIPE`: its reader closed it).
    fn try_write_now(&self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Pipe(pipe) => match pipe.write(data) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
                r => r,
            },
            Output::File(_) => Ok(0),
        }
    }

    /// Writes all of `data`, waiting for room in a full pipe (`room` keeps
    /// the registration for writing while the queue holds data) or for the
    /// blocking pool's write of a file.
    async fn write_all(
        &self,
        data: Bytes,
        room: &mut Option<AsyncFd<File>>,
    ) -> std::io::Result<()> {
        match self {
            Output::Pipe(pipe) => {
                let mut rest = &data[..];
                while !rest.is_empty() {
                    match pipe.write(rest) {
                        Ok(n) => rest = &rest[n..],
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            let writable = match room {
                                Some(w) => w,
                                None => room.insert(register_writable(pipe.file.try_clone()?)?),
                            };
                            // Cleared before the retry: an edge after it is not lost.
                            writable.writable().await?.clear_ready();
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Output::File(file) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || (&*file).write_all(&data))
                    .await
                    .map_err(std::io::Error::other)?
            }
        }
    }
}

/// A pipe or FIFO the agent writes without blocking.
pub struct Pipe {
    file: File,
    /// `file` is the caller's description (blocking): written with
    /// `RWF_NOWAIT`. Otherwise it is the agent's own, `O_NONBLOCK`.
    shared: bool,
}

impl Pipe {
    /// The caller's pipe or FIFO `fd` (`st` its `fstat`), reopened as the
    /// agent's own `O_NONBLOCK` description; where the reopen is refused
    /// (the pipe is another user's and the agent has no
    /// `CAP_DAC_OVERRIDE`), a duplicate of the caller's description,
    /// written with `RWF_NOWAIT`. Linux takes `RWF_NOWAIT` on an anonymous
    /// pipe (pipefs) but not on a named FIFO (`EOPNOTSUPP` on 6.18), so a
    /// FIFO the agent may not reopen is refused: the client then uses the
    /// stream. Errors name the option and what to do.
    fn open(fd: BorrowedFd<'_>, st: &FileStat) -> Result<Pipe, String> {
        let key = gadgetd_dbus::types::options::OUTPUT_FD;
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let reopened = nix::fcntl::open(
            path.as_str(),
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        let refused = match reopened {
            Ok(own) => {
                return Ok(Pipe {
                    file: File::from(own),
                    shared: false,
                });
            }
            // A FIFO's (an anonymous pipe without readers opens, and its
            // first write fails).
            Err(Errno::ENXIO) => {
                return Err(format!(
                    "option {key}: the FIFO has no reader (its read end is closed)"
                ));
            }
            Err(e) => e,
        };
        let anonymous = fstatfs(fd).is_ok_and(|s| s.filesystem_type() == PIPEFS);
        let mode = st.st_mode & 0o7777;
        tracing::debug!(
            error = %refused,
            owner_uid = st.st_uid,
            mode = format_args!("{mode:o}"),
            fallback = format_args!(
                "{}",
                if anonymous {
                    "RWF_NOWAIT on the caller's description"
                } else {
                    "none, refused (a named FIFO takes no RWF_NOWAIT)"
                }
            ),
            "pipe not reopened"
        );
        if !anonymous {
            return Err(format!(
                "option {key}: gadgetd may not open the FIFO for writing ({refused}; mode \
                 {mode:o}, owner uid {}) and cannot write your description of a named FIFO \
                 without blocking; leave {key} out to get the events on the event stream",
                st.st_uid
            ));
        }
        let dup = fd
            .try_clone_to_owned()
            .map_err(|e| format!("option {key}: cannot duplicate the fd: {e}"))?;
        Ok(Pipe {
            file: File::from(dup),
            shared: true,
        })
    }

    /// One write that never blocks: the bytes taken; `WouldBlock` when
    /// the pipe is full.
    fn write(&self, data: &[u8]) -> std::io::Result<usize> {
        if !self.shared {
            return (&self.file).write(data);
        }
        let iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: one iovec over `data`, which outlives the call; offset
        // -1 is the file's own position (a pipe has none).
        let n = unsafe { libc::pwritev2(self.file.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// A duplicate of a pipe's fd registered with the reactor for writing.
fn register_writable(pipe: File) -> std::io::Result<AsyncFd<File>> {
    // SAFETY: the AsyncFd owns the duplicate and never closes or replaces
    // its fd while registered.
    unsafe { AsyncFd::register_with_interest(pipe, Interest::WRITABLE) }
        .map_err(|e| e.into_parts().1)
}

/// What `fstat` says `kind` is, in words.
fn type_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFCHR => "a character device (a terminal?)",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFLNK => "a symbolic link",
        _ => "of an unknown type",
    }
}

/// The event lane of a client that gave an output: its queue, bounded in
/// bytes by the caller, and the writer task that empties it.
pub struct DirectLane {
    output: Output,
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes sent to the writer and not yet written out.
    queued: Arc<AtomicUsize>,
    task: JoinHandle<Flushed>,
    /// A write from the run task failed: the output is gone.
    failed: bool,
    /// Why the output took no more, when it was not its reader going away
    /// (`EPIPE`): a full disk, an I/O error. Set once, by whichever of the
    /// run task and the writer met it first.
    failure: Arc<OnceLock<String>>,
}

impl DirectLane {
    /// Starts the writer task of `output`.
    pub fn start(output: Output) -> DirectLane {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let failure = Arc::new(OnceLock::new());
        let task = tokio::spawn(write_loop(
            output.clone(),
            rx,
            queued.clone(),
            failure.clone(),
        ));
        DirectLane {
            output,
            tx,
            queued,
            task,
            failed: false,
            failure,
        }
    }

    /// Bytes waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Writes as much of `data` as the output takes now, if nothing waits
    /// in the queue (so the order holds): the bytes the caller need not
    /// queue. A failed write (the reader went away) marks the lane failed
    /// and counts the whole of `data` as taken: it goes nowhere.
    pub fn write_now(&mut self, data: &[u8]) -> usize {
        if self.failed {
            return data.len();
        }
        if data.is_empty() || self.queued() != 0 {
            return 0;
        }
        match self.output.try_write_now(data) {
            Ok(n) => n,
            Err(e) => {
                output_failed(&e, &self.failure);
                self.failed = true;
                data.len()
            }
        }
    }

    /// Queues `data` for the writer task.
    pub fn enqueue(&self, data: Bytes) {
        // Counted before sending, so the writer's decrement never goes first.
        let len = data.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(data).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// The output is gone (a write failed, or the writer ended on an error).
    pub fn is_gone(&self) -> bool {
        self.failed || self.tx.is_closed()
    }

    /// Why the output took no more events, when a write failed for another
    /// reason than its reader going away (`EPIPE`): the error's text
    /// (`No space left on device (os error 28)`), for the client's end line.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Waits up to `limit` for the writer to write everything queued, then
    /// closes the agent's fd of the output.
    pub async fn finish(self, limit: Duration) -> Flushed {
        let DirectLane {
            output,
            tx,
            mut task,
            failed,
            ..
        } = self;
        drop(tx);
        drop(output);
        if failed {
            task.abort();
            return Flushed::Gone;
        }
        match tokio::time::timeout(limit, &mut task).await {
            Ok(Ok(Flushed::All)) => Flushed::All,
            Ok(_) => Flushed::Gone,
            Err(_) => {
                task.abort();
                Flushed::TimedOut
            }
        }
    }
}

/// How a client's output took the last of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Every event queued for it was written.
    All,
    /// A write failed: its reader went away (or the file could not be written).
    Gone,
    /// It did not take them within the limit (its reader stopped reading).
    TimedOut,
}

/// Logs why a client's output took no more: its reader went away
/// (`EPIPE`, as with `| head -1`: debug), or a write failed otherwise (a
/// full disk, an I/O error: a warning, and kept in `failure` for the
/// client's end line).
fn output_failed(e: &std::io::Error, failure: &OnceLock<String>) {
    if e.raw_os_error() == Some(libc::EPIPE) {
        tracing::debug!(error = %e, "a client's output went away");
    } else {
        tracing::warn!(error = %e, "a client's output could not be written: its events stop");
        let _ = failure.set(e.to_string());
    }
}

/// Empties the queue into the output; ends when the queue's sender is
/// dropped (after writing what it holds) or on a write error.
async fn write_loop(
    output: Output,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
    failure: Arc<OnceLock<String>>,
) -> Flushed {
    let mut room = None;
    while let Some(data) = rx.recv().await {
        let len = data.len();
        let written = output.write_all(data, &mut room).await;
        // Release: the run task's direct write that sees the queue empty
        // comes after these bytes.
        if queued.fetch_sub(len, Ordering::Release) == len {
            room = None;
        }
        if let Err(e) = written {
            output_failed(&e, &failure);
            return Flushed::Gone;
        }
    }
    Flushed::All
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    /// `n` bytes of the alphabet over and over.
    fn letters(n: u32) -> Vec<u8> {
        (0..n).map(|i| b'a' + (i % 26) as u8).collect()
    }

    /// Everything the pipe's read end `r` gives until EOF, read on a thread.
    fn read_to_end_in_thread(r: OwnedFd) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            File::from(r).read_to_end(&mut got).unwrap();
            got
        })
    }

    fn blocking(fd: impl AsFd) -> bool {
        let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL).unwrap());
        !flags.contains(OFlag::O_NONBLOCK)
    }

    #[tokio::test]
    async fn a_pipe_is_written_through_a_description_of_its_own() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let output = Output::open(w.as_fd()).unwrap();
        assert!(matches!(output, Output::Pipe(_)));
        let mut lane = DirectLane::start(output);
        assert_eq!(lane.write_now(b"{\"a\":1}\n"), 8);
        // The caller's description stays blocking.
        assert!(blocking(&w));
        drop(w);
        assert_eq!(lane.finish(Duration::from_secs(5)).await, Flushed::All);
        let mut got = String::new();
        File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(
            got, "{\"a\":1}\n",
            "every writer closed: EOF after the line"
        );
    }

    #[tokio::test]
    async fn a_full_pipe_takes_the_rest_from_the_queue_in_order() {
        let (r, w) = nix::unistd::pipe().unwrap();
        fcntl(&w, FcntlArg::F_SETPIPE_SZ(4096)).unwrap();
        let mut lane = DirectLane::start(Output::open(w.as_fd()).unwrap());
        drop(w);
        let data = letters(20_000);
        let taken = lane.write_now(&data);
        assert_eq!(taken, 4096, "a pipe of one page takes one page");
        lane.enqueue(Bytes::copy_from_slice(&data[taken..]));
        // Queued: the next direct write waits behind it.
        assert_eq!(lane.write_now(b"later"), 0);
        let reader = read_to_end_in_thread(r);
        assert_eq!(lane.finish(Duration::from_secs(5)).await, Flushed::All);
        assert_eq!(reader.join().unwrap(), data);
    }

    #[tokio::test]
    async fn a_pipe_not_reopened_is_written_without_blocking_through_the_callers_description() {
        let (r, w) = nix::unistd::pipe().unwrap();
        fcntl(&w, FcntlArg::F_SETPIPE_SZ(4096)).unwrap();
        let pipe = Pipe {
            file: File::from(w.try_clone().unwrap()),
            shared: true,
        };
        let mut lane = DirectLane::start(Output::Pipe(Arc::new(pipe)));
        let data = letters(10_000);
        let taken = lane.write_now(&data);
        assert_eq!(taken, 4096, "a full pipe does not block the run task");
        assert!(blocking(&w), "the caller's description is left blocking");
        lane.enqueue(Bytes::copy_from_slice(&data[taken..]));
        drop(w);
        let reader = read_to_end_in_thread(r);
        assert_eq!(lane.finish(Duration::from_secs(5)).await, Flushed::All);
        assert_eq!(reader.join().unwrap(), data);
    }

    #[tokio::test]
    async fn a_closed_reader_fails_the_lane() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut lane = DirectLane::start(Output::open(w.as_fd()).unwrap());
        drop(r);
        assert_eq!(lane.write_now(b"x\n"), 2);
        assert!(lane.is_gone());
        assert_eq!(lane.finish(Duration::from_secs(5)).await, Flushed::Gone);
    }

    #[tokio::test]
    async fn a_regular_file_keeps_its_append_mode_and_prior_text() {
        let dir = std::env::temp_dir().join(format!("direct-out-{}", std::process::id()));
        std::fs::write(&dir, b"before\n").unwrap();
        let file = std::fs::OpenOptions::new().append(true).open(&dir).unwrap();
        let mut lane = DirectLane::start(Output::open(file.as_fd()).unwrap());
        assert_eq!(
            lane.write_now(b"{\"a\":1}\n"),
            0,
            "files only from the writer"
        );
        lane.enqueue(Bytes::from_static(b"{\"a\":1}\n"));
        assert_eq!(lane.finish(Duration::from_secs(5)).await, Flushed::All);
        assert_eq!(std::fs::read(&dir).unwrap(), b"before\n{\"a\":1}\n");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn other_types_and_read_only_fds_are_refused_naming_what_they_are() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert_eq!(
            Output::open(r.as_fd()).unwrap_err(),
            "option output-fd: the fd is not open for writing (pass a descriptor opened \
             write-only or read-write, such as your stdout)"
        );
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(
            Output::open(a.as_fd()).unwrap_err(),
            "option output-fd: the fd is a socket (gadgetd writes event lines only into a \
             pipe, a FIFO or a regular file; leave output-fd out to get the events on the \
             event stream)"
        );
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        assert!(
            Output::open(null.as_fd())
                .unwrap_err()
                .contains("the fd is a character device (a terminal?)")
        );
        let dir = std::fs::File::open("/").unwrap();
        assert!(
            Output::open(dir.as_fd())
                .unwrap_err()
                .contains("not open for writing")
        );
        let path = nix::fcntl::open("/", OFlag::O_PATH, Mode::empty()).unwrap();
        assert!(
            Output::open(path.as_fd())
                .unwrap_err()
                .contains("not open for writing")
        );
    }
}
