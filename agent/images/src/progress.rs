//! Progress of pulls and pushes, written as JSON lines to the fd the caller
//! passed. A caller that stops reading never stalls the transfer: write
//! errors just turn the sink off.

use std::io::Write;

use gadgetd_dbus::images::Progress;

pub struct ProgressSink {
    out: Option<std::fs::File>,
}

impl ProgressSink {
    pub fn new(fd: Option<std::os::fd::OwnedFd>) -> ProgressSink {
        let out = fd.map(std::fs::File::from);
        if let Some(f) = &out {
            // Never block the agent on a slow reader.
            let _ = nix::fcntl::fcntl(
                f,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        ProgressSink { out }
    }

    pub fn none() -> ProgressSink {
        ProgressSink { out: None }
    }

    pub fn send(&mut self, digest: &str, kind: &str, state: &str, done: u64, total: u64) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let line = Progress {
            digest: digest.to_string(),
            kind: kind.to_string(),
            state: state.to_string(),
            done,
            total,
        };
        let mut bytes = serde_json::to_vec(&line).expect("serializes");
        bytes.push(b'\n');
        match out.write_all(&bytes) {
            Ok(()) => {}
            // A full pipe drops this line; the next one says more anyway.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.out = None,
        }
    }
}
