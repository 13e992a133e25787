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

/// The `MESSAGE` of the newest entry of run `id` written by this agent's
/// uid, once journald has processed everything sent to it before this call
/// (`journalctl --sync` returns only then). `None` when the run has none.
pub async fn last_message(namespace: Option<&str>, id: &str) -> std::io::Result<Option<Vec<u8>>> {
    let ns = namespace.map(|ns| format!("--namespace={ns}"));
    let mut sync = Command::new("journalctl");
    sync.arg("--sync").args(&ns).stdin(Stdio::null());
    let out = sync.output().await?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "journalctl --sync failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut cmd = Command::new("journalctl");
    cmd.args([
        "--output=json",
        "--output-fields=MESSAGE",
        "--no-pager",
        "--quiet",
        "--lines=1",
    ])
    .args(&ns)
    .arg(format!("GADGET_RUN_ID={id}"))
    .arg(format!("_UID={}", nix::unistd::geteuid().as_raw()))
    .stdin(Stdio::null());
    let out = cmd.output().await?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "journalctl failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let Some(line) = out.stdout.split(|b| *b == b'\n').find(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let entry: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| std::io::Error::other(format!("journalctl printed bad JSON: {e}")))?;
    Ok(message_bytes(&entry["MESSAGE"]))
}

/// journalctl's JSON gives a field as a string, or as an array of byte
/// values when it is not valid UTF-8.
fn message_bytes(v: &serde_json::Value) -> Option<Vec<u8>> {
    match v {
        serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect(),
        _ => None,
    }
}

/// Whether journalctl is installed (checked once, for the error message).
pub fn available() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("journalctl").exists()))
        .unwrap_or(false)
}
