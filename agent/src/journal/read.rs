//! Reading a run's entries back from journald with journalctl (so clients
//! need no journal group: the agent reads as root and passes lines on).

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A journalctl printing the `MESSAGE` of each entry of one run.
pub struct JournalRead {
    pub child: Child,
    pub lines: Lines<BufReader<ChildStdout>>,
}

/// Starts journalctl for run `id`'s entries written by this agent's uid
/// (others can send entries with any fields, but not with our `_UID`).
pub fn open(
    namespace: Option<&str>,
    id: &str,
    since_us: Option<u64>,
    follow: bool,
) -> std::io::Result<JournalRead> {
    let mut cmd = Command::new("journalctl");
    cmd.args(["--output=cat", "--no-pager", "--quiet"]);
    if let Some(ns) = namespace {
        cmd.arg(format!("--namespace={ns}"));
    }
    if let Some(us) = since_us {
        cmd.arg(format!("--since=@{}", us / 1_000_000));
    }
    if follow {
        cmd.arg("--follow").arg("--lines=all");
    }
    cmd.arg(format!("GADGET_RUN_ID={id}"))
        .arg(format!("_UID={}", nix::unistd::geteuid().as_raw()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    Ok(JournalRead {
        child,
        lines: BufReader::new(stdout).lines(),
    })
}

/// Whether journalctl is installed (checked once, for the error message).
pub fn available() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("journalctl").exists()))
        .unwrap_or(false)
}
