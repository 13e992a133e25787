//! Reading a file a caller passed as an fd (`RunObject`, `DescribeObject`):
//! only a regular file is accepted (a FIFO, socket or terminal could be
//! held open forever and pin an agent thread), no larger than the limit,
//! and read within a deadline.

use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::time::Duration;

use zbus::fdo;

/// Reads all of `fd` (a regular file of at most `max` bytes) within
/// `timeout`; `what` names it in errors ("the object").
///
/// Errors (`InvalidArgs`) name what is wrong: not a regular file (with its
/// type), larger than `max`, unreadable, or too slow.
pub async fn read_regular(
    fd: OwnedFd,
    max: u64,
    timeout: Duration,
    what: &'static str,
) -> fdo::Result<Vec<u8>> {
    let file = std::fs::File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| fdo::Error::InvalidArgs(format!("cannot stat {what}'s fd: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(fdo::Error::InvalidArgs(format!(
            "{what} must be passed as an fd of a regular file, not a {}; save it to a file first",
            kind(&meta.file_type())
        )));
    }
    if meta.len() > max {
        return Err(too_large(what, max));
    }
    let read = tokio::task::spawn_blocking(move || -> fdo::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // Read from the start whatever the sender's offset (pread keeps it).
        let mut reader = PositionedReader { file: &file, at: 0 };
        (&mut reader)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                fdo::Error::InvalidArgs(format!("cannot read {what} from the passed fd: {e}"))
            })?;
        if bytes.len() as u64 > max {
            return Err(too_large(what, max));
        }
        Ok(bytes)
    });
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r.map_err(|e| fdo::Error::Failed(format!("reading {what} failed: {e}")))?,
        Err(_) => Err(fdo::Error::InvalidArgs(format!(
            "{what} could not be read within {} s (is it on a hung file system?)",
            timeout.as_secs()
        ))),
    }
}

fn too_large(what: &str, max: u64) -> fdo::Error {
    fdo::Error::InvalidArgs(format!("{what} is larger than {max} bytes, the limit"))
}

fn kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_fifo() {
        "FIFO (pipe)"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// Reads a file with `pread` from an offset of its own.
struct PositionedReader<'a> {
    file: &'a std::fs::File,
    at: u64,
}

impl std::io::Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}
