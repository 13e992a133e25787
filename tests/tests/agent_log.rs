//! gadgetd's own log as a systemd service's (issue 18 item 9): no colour
//! when stderr is not a terminal; into journald with priorities and
//! structured fields when stderr is the journal (JOURNAL_STREAM) or when
//! asked to.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use gadgetd_tests::system::Journald;
use gadgetd_tests::*;
use serde_json::Value;

#[test]
fn a_log_to_a_file_has_no_colour() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let log = agent.log_text();
    assert!(log.contains("serving on the peer-to-peer socket"), "{log}");
    assert!(!log.contains('\x1b'), "ANSI escapes in a log file: {log:?}");
}

/// The journal entries gadgetd wrote, as journalctl's JSON objects.
fn entries(journal: &Journald) -> Vec<Value> {
    let out = Command::new("journalctl")
        .arg(format!("--namespace={}", journal.namespace))
        .args(["-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=gadgetd"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["GADGET_RUN_ID"].is_null())
        .collect()
}

/// Starts gadgetd without a bus, its stderr into `stderr`, until its socket is up.
fn start(
    dir: &TempDir,
    args: &[&str],
    env: &[(&str, String)],
    stderr: &std::path::Path,
) -> std::process::Child {
    let socket = dir.path().join("gadgetd.sock");
    let child = Command::new(bin("gadgetd"))
        .args(["--no-bus", "--listen"])
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.path())
        .args(["--bundled-images", "/nonexistent/gadgets.tar"])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("GADGETD_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    wait_for("gadgetd's socket", Duration::from_secs(10), || {
        socket.exists()
    });
    child
}

#[test]
fn as_a_service_the_log_goes_to_journald_with_priorities_and_fields() {
    require_root();
    if Journald::binary().is_none() {
        eprintln!("skipped: systemd-journald is not installed");
        return;
    }
    let journal = Journald::start();
    let dir = TempDir::new("agentlog");
    let stderr = dir.path().join("stderr");
    std::fs::write(&stderr, b"").unwrap();
    // stderr is "the journal" when JOURNAL_STREAM names its device and inode,
    // as systemd sets it for a service; --log-target journald asks directly.
    let meta = std::fs::metadata(&stderr).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    for (args, env) in [
        (
            vec!["--journal-namespace", &journal.namespace],
            vec![("JOURNAL_STREAM", stream.clone())],
        ),
        (
            vec![
                "--journal-namespace",
                &journal.namespace,
                "--log-target",
                "journald",
            ],
            vec![],
        ),
    ] {
        let before = entries(&journal).len();
        let mut agent = start(&dir, &args, &env, &stderr);
        let mut got = Vec::new();
        wait_for(
            "gadgetd's entries in the journal",
            Duration::from_secs(10),
            || {
                got = entries(&journal).split_off(before);
                got.iter().any(|e| {
                    e["MESSAGE"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("serving on the peer-to-peer socket"))
                })
            },
        );
        terminate(&mut agent, Duration::from_secs(10));
        let serving = got
            .iter()
            .find(|e| {
                e["MESSAGE"]
                    .as_str()
                    .unwrap()
                    .starts_with("serving on the peer-to-peer socket")
            })
            .unwrap();
        assert_eq!(serving["PRIORITY"], "6", "{serving}");
        assert!(
            serving["SOCKET"].as_str().unwrap().contains("gadgetd.sock"),
            "{serving}"
        );
        let warning = got
            .iter()
            .find(|e| {
                e["MESSAGE"]
                    .as_str()
                    .unwrap()
                    .starts_with("--bundled-images: no bundled images imported")
            })
            .unwrap_or_else(|| panic!("no bundled-images warning in {got:?}"));
        assert_eq!(warning["PRIORITY"], "4", "{warning}");
        assert_eq!(warning["PATH"], "/nonexistent/gadgets.tar", "{warning}");
        assert!(
            warning["PROBLEM"]
                .as_str()
                .unwrap()
                .contains("No such file"),
            "{warning}"
        );
        assert_eq!(
            std::fs::read_to_string(&stderr).unwrap(),
            "",
            "nothing on stderr"
        );
    }
}
