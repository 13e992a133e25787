//! Direct output: `gadgetctl run|attach -o json` (unshaped) with stdout a
//! pipe, FIFO or regular file passes stdout to the agent (`output-fd`),
//! which writes the event lines into it itself. gadgetctl then reads only
//! the header, control lines and the end line from the stream: no copy of
//! the events passes through it (docs/gadgetctl.md, "Direct output").
//!
//! Decided automatically from `fstat` of stdout; a terminal or a socket
//! keeps the stream path (where gadgetctl escapes what it prints), and so
//! does `GADGETCTL_NO_DIRECT=1`. An agent that does not know the option
//! (older than it) is asked again without it.

use std::os::fd::{AsFd, BorrowedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Set to anything but `0` or empty: never pass stdout to the agent.
pub const OPT_OUT_ENV: &str = "GADGETCTL_NO_DIRECT";

/// Whether the agent should write the events into `out` (stdout): it is a
/// pipe, FIFO or regular file, and direct output was not turned off.
pub fn wanted(out: BorrowedFd<'_>) -> bool {
    let opted_out = std::env::var_os(OPT_OUT_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    !opted_out
        && nix::sys::stat::fstat(out).is_ok_and(|st| {
            let kind = st.st_mode & libc::S_IFMT;
            kind == libc::S_IFIFO || kind == libc::S_IFREG
        })
}

/// Whether the reader of the pipe `out` has gone away (`| head -1`): the
/// agent then stops writing and closes the stream without an end line.
pub fn reader_gone(out: impl AsFd) -> bool {
    let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLOUT)];
    poll(&mut fds, PollTimeout::ZERO).is_ok()
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLERR))
}

/// Whether `e` is an agent refusing `output-fd` (an unknown option to an
/// agent older than direct output, or an output it cannot write into), or
/// not knowing `AttachWithOptions`: the stream path serves then.
pub fn refused(e: &zbus::Error) -> bool {
    let zbus::Error::MethodError(name, message, _) = e else {
        return false;
    };
    let key = gadgetd_dbus::types::options::OUTPUT_FD;
    name.as_str() == "org.freedesktop.DBus.Error.UnknownMethod"
        || (name.as_str() == "org.freedesktop.DBus.Error.InvalidArgs"
            && message.as_deref().is_some_and(|m| m.contains(key)))
}

/// Makes a call with `output-fd` (`call(true)`) when `*direct`, and again
/// without it (`call(false)`) when the agent [`refused`] it, which then
/// clears `*direct`: afterwards it says whether stdout was passed.
pub async fn call<T, F>(direct: &mut bool, mut call: impl FnMut(bool) -> F) -> zbus::Result<T>
where
    F: std::future::Future<Output = zbus::Result<T>>,
{
    if *direct {
        match call(true).await {
            Err(e) if refused(&e) => *direct = false,
            r => return r,
        }
    }
    call(false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_and_files_are_wanted_and_a_closed_reader_is_seen() {
        let (r, w) = nix::unistd::pipe().unwrap();
        assert!(wanted(w.as_fd()));
        assert!(!reader_gone(&w));
        drop(r);
        assert!(reader_gone(&w));
        let file = tempfile_in_tmp();
        assert!(wanted(file.as_fd()));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!wanted(a.as_fd()), "a socket");
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(!wanted(null.as_fd()), "a character device");
    }

    fn tempfile_in_tmp() -> std::fs::File {
        let path = std::env::temp_dir().join(format!("gadgetctl-direct-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }
}
