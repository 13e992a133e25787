//! journald's native protocol: one datagram per entry, `KEY=value` lines
//! (sd_journal_send(3); systemd's "Native Journal Protocol"). Values that
//! contain a newline use the binary form: `KEY\n<u64 le length><bytes>\n`.
//!
//! A send waits (briefly) while journald's socket buffer is full, so bursts
//! are absorbed; when journald stays stuck the send fails and the caller
//! counts the entry as lost.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UnixDatagram;

/// How long one entry may wait for journald.
const SEND_WAIT: Duration = Duration::from_secs(1);

pub struct JournalWriter {
    socket: UnixDatagram,
    path: PathBuf,
}

/// The fields of one entry, besides `MESSAGE`.
pub type Fields<'a> = [(&'a str, &'a [u8])];

impl JournalWriter {
    /// Connects to journald's socket; must be called within a tokio runtime.
    pub fn connect(path: &Path) -> io::Result<JournalWriter> {
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        socket.connect(path)?;
        socket.set_nonblocking(true)?;
        Ok(JournalWriter {
            socket: UnixDatagram::from_std(socket)?,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one entry, reusing `buf` for the datagram.
    pub async fn send(
        &self,
        buf: &mut Vec<u8>,
        message: &[u8],
        fields: &Fields<'_>,
    ) -> io::Result<()> {
        buf.clear();
        append(buf, "MESSAGE", message);
        for (k, v) in fields {
            append(buf, k, v);
        }
        match tokio::time::timeout(SEND_WAIT, self.socket.send(buf)).await {
            Ok(sent) => sent.map(drop),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "journald took no entry for 1 s",
            )),
        }
    }
}

fn append(buf: &mut Vec<u8>, key: &str, value: &[u8]) {
    buf.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_key_value_lines_with_binary_form_for_newlines() {
        let dir = std::env::temp_dir().join(format!("gadgetd-journal-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let w = JournalWriter::connect(&path).unwrap();
        let mut buf = Vec::new();
        w.send(
            &mut buf,
            b"{\"pid\":1}",
            &[("GADGET_RUN_ID", b"ab12"), ("X", b"a\nb")],
        )
        .await
        .unwrap();
        let mut got = [0u8; 256];
        let n = server.recv(&mut got).unwrap();
        let mut want = b"MESSAGE={\"pid\":1}\nGADGET_RUN_ID=ab12\nX\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(&got[..n], &want[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
