//! gadgetd as a system service: polkit with real users, detached runs in a
//! real journald, state in SQLite surviving kill -9, sd_notify, idle exit,
//! and the shipped unit files.

use std::io::BufReader;
use std::process::Command;
use std::time::{Duration, Instant};

use gadgetd_tests::system::{Journald, Polkit, Service, Users};
use gadgetd_tests::*;
use serde_json::Value;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Opens a new file named `tag` in `dir` (an event for trace_open).
fn probe(dir: &TempDir, tag: &str) -> String {
    let path = dir.path().join(tag);
    std::fs::write(&path, b"x").unwrap();
    drop(std::fs::File::open(&path).unwrap());
    path.to_str().unwrap().to_string()
}

/// Event lines of `gadgetctl logs` (control lines are not printed in json mode).
fn logs(svc: &Service, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = svc.ctl(&all);
    assert!(out.status.success(), "logs failed: {}", stderr(&out));
    json_lines(&out)
}

#[test]
fn polkit_lets_the_gadget_group_run_gadgets_and_denies_everyone_else() {
    let users = Users::create();
    let bus = Bus::start();
    let _polkit = Polkit::start(&bus, &users.group);
    let mut svc = Service::new(&bus, &["--group", &users.group]);
    svc.start();
    let ctl = bin("gadgetctl");
    let obj = gadget("trace_open");
    let bus_addr = format!("--address={}", bus.address);
    let member_uid = Users::uid(&users.member);

    // The member runs a gadget (attached, short) and it ends normally.
    let out = Users::run_as(
        &users.member,
        &ctl,
        &[&bus_addr, "run", s(&obj), "--timeout", "1s", "-o", "json"],
    );
    assert!(
        out.status.success(),
        "member's run failed: {}",
        stderr(&out)
    );

    // The member starts a detached run; anyone may list it; only the group may stop it.
    let out = Users::run_as(
        &users.member,
        &ctl,
        &[
            &bus_addr,
            "run",
            s(&obj),
            "--detach",
            "--name",
            "member-run",
        ],
    );
    assert!(
        out.status.success(),
        "member's detached run failed: {}",
        stderr(&out)
    );
    let id = stdout(&out).trim().to_string();
    let out = Users::run_as(&users.outsider, &ctl, &[&bus_addr, "list", "-o", "json"]);
    assert!(out.status.success(), "outsider may read: {}", stderr(&out));
    let runs = json_lines(&out);
    let run = runs
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("the run is listed");
    assert_eq!(run["owner"], member_uid);
    assert_eq!(run["state"], "running");
    assert_eq!(run["name"], "member-run");

    let out = Users::run_as(&users.outsider, &ctl, &[&bus_addr, "stop", &id]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("org.freedesktop.DBus.Error.AccessDenied")
            && err.contains("org.gadgetd.run-gadget"),
        "outsider's stop: {err}"
    );
    assert_eq!(svc.run(&id).unwrap()["state"], "running");
    let out = Users::run_as(&users.member, &ctl, &[&bus_addr, "stop", &id]);
    assert!(
        out.status.success(),
        "member's stop failed: {}",
        stderr(&out)
    );
    poll("the run to stop", Duration::from_secs(10), || {
        (svc.run(&id)?["state"] == "stopped").then_some(())
    });

    // The outsider's run is refused and nothing starts.
    let before = svc.runs().len();
    let out = Users::run_as(
        &users.outsider,
        &ctl,
        &[&bus_addr, "run", s(&obj), "--timeout", "1s"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("org.freedesktop.DBus.Error.AccessDenied")
            && err.contains("org.gadgetd.run-gadget"),
        "outsider's run: {err}"
    );
    assert_eq!(svc.runs().len(), before);
    let outsider_uid = Users::uid(&users.outsider);
    assert!(
        !svc.log().contains(&format!("uid={outsider_uid} ")),
        "a run started for the outsider: {}",
        svc.log()
    );

    // Over the peer-to-peer socket the group decides.
    let sock = format!("--address={}", svc.socket.display());
    let out = Users::run_as(
        &users.outsider,
        &ctl,
        &[&sock, "run", s(&obj), "--timeout", "1s"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("AccessDenied")
            && err.contains("org.gadgetd.run-gadget")
            && err.contains(&users.group),
        "outsider over p2p: {err}"
    );
    let out = Users::run_as(
        &users.member,
        &ctl,
        &[&sock, "run", s(&obj), "--timeout", "1s", "-o", "json"],
    );
    assert!(out.status.success(), "member over p2p: {}", stderr(&out));
    // Reading is open to anyone on the socket too.
    let out = Users::run_as(&users.outsider, &ctl, &[&sock, "list"]);
    assert!(
        out.status.success(),
        "outsider's list over p2p: {}",
        stderr(&out)
    );

    // Image management is the other action the rule grants.
    let rm = [
        bus_addr.as_str(),
        "image",
        "rm",
        "gadgetd-test-no-such-image",
    ];
    let out = Users::run_as(&users.outsider, &ctl, &rm);
    let err = stderr(&out);
    assert!(
        !out.status.success()
            && err.contains("AccessDenied")
            && err.contains("org.gadgetd.manage-images"),
        "outsider's image rm: {err}"
    );
    let out = Users::run_as(&users.member, &ctl, &rm);
    let err = stderr(&out);
    assert!(
        !out.status.success()
            && !err.contains("AccessDenied")
            && err.contains("gadgetd-test-no-such-image"),
        "member's image rm gets past authorization to the store's answer: {err}"
    );
}

/// Caller identity on the p2p socket comes from the kernel (SO_PEERCRED),
/// never from headers: an outsider that forges `SENDER` and answers the
/// agent's questions as a fake bus daemon and fake polkit (uid 0,
/// authorized) is denied every privileged method, and nothing changes.
#[test]
fn a_forged_sender_on_the_socket_is_denied_every_privileged_method() {
    let users = Users::create();
    let bus = Bus::start();
    let _polkit = Polkit::start(&bus, &users.group);
    let mut svc = Service::new(&bus, &["--group", &users.group]);
    svc.start();
    let id = detach_trace_open(|a| svc.ctl(a), std::process::id(), &["--name", "roots-run"]);
    let forged = std::path::Path::new(env!("CARGO_BIN_EXE_forged-sender"));

    let out = Users::run_as(&users.outsider, forged, &[s(&svc.socket), &id]);
    assert!(
        out.status.success(),
        "forged-sender failed: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    let replies: Vec<&str> = text.lines().collect();
    assert_eq!(replies.len(), 13, "one reply per method: {text}");
    for line in &replies {
        let mut cols = line.split('\t');
        let method = cols.next().unwrap();
        assert_eq!(
            cols.next(),
            Some("org.freedesktop.DBus.Error.AccessDenied"),
            "{method} with a forged SENDER was not denied: {line}"
        );
        let why = cols.next().unwrap_or("");
        let outsider_uid = Users::uid(&users.outsider);
        assert!(
            why.contains(&format!("uid {outsider_uid} ")),
            "{method}: the denial names the kernel's uid {outsider_uid}: {why}"
        );
    }
    // Root's run is untouched, no image was tagged, no run started for "root".
    let run = svc.run(&id).expect("root's run is still listed");
    assert_eq!(run["state"], "running");
    assert_eq!(svc.runs().len(), 1, "no run was started: {:?}", svc.runs());
    let images = svc.ctl(&["image", "list"]);
    assert!(
        !stdout(&images).contains("forged/evil"),
        "a forged Tag went through: {}",
        stdout(&images)
    );
    // The member, with the same forged headers, is judged by its own uid (allowed
    // by the group), so the denials above are about identity, not about the client.
    let out = Users::run_as(&users.member, forged, &[s(&svc.socket), &id]);
    let text = stdout(&out);
    let tag = text
        .lines()
        .find(|l| l.starts_with("org.gadgetd.Agent1.Images.Tag\t"))
        .unwrap_or_default();
    assert!(
        !tag.contains("AccessDenied"),
        "the member's Tag is past authorization: {text}"
    );
}

#[test]
fn detached_run_logs_to_journald_and_survives_kill_9() {
    let journal = Journald::start();
    let bus = Bus::start();
    let mut svc = journal.service(&bus, &[]);
    assert!(
        svc.log().contains("detached runs log to journald"),
        "{}",
        svc.log()
    );
    let dir = TempDir::new("detach");
    let id = detach_trace_open(|a| svc.ctl(a), std::process::id(), &["--name", "survivor"]);
    assert_eq!(svc.run(&id).unwrap()["detached"], true);

    // The event is in the journal with the design's fields.
    let first = probe(&dir, "before-crash");
    let entry = poll("the event in journald", Duration::from_secs(15), || {
        journal
            .entries(&id)
            .into_iter()
            .find(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains(&first)))
    });
    let event: Value = serde_json::from_str(entry["MESSAGE"].as_str().unwrap()).unwrap();
    assert_eq!(event["fname"], first.as_str());
    assert_eq!(event["proc.pid"], std::process::id());
    assert_eq!(entry["GADGET_RUN_ID"], id.as_str());
    assert_eq!(entry["GADGET_RUN_NAME"], "survivor");
    assert_eq!(
        entry["GADGET_IMAGE"],
        format!("file:{}", s(&gadget("trace_open")))
    );
    assert_eq!(entry["GADGET_IMAGE_DIGEST"], "");
    assert_eq!(entry["SYSLOG_IDENTIFIER"], "gadgetd");
    assert_eq!(entry["_UID"], "0");

    // gadgetctl logs reads it back through the agent.
    let events = logs(&svc, &[&id]);
    assert!(
        events.iter().any(|e| e["fname"] == first.as_str()),
        "logs: {events:?}"
    );
    assert!(logs(&svc, &["survivor", "--since", "2099-01-01T00:00:00Z"]).is_empty());

    // attach streams it live; leaving (Ctrl-C) does not stop a detached run.
    let mut attached = svc.ctl_spawn_json(&["attach", &id]);
    let mut reader = lines_of(attached.stdout.take().unwrap());
    // Attaching takes a moment: keep opening files until one shows up.
    let prober = Prober::start(&dir, "attached-live");
    let line = wait_line(&mut reader, Duration::from_secs(15), |l| {
        l.contains("attached-live")
    });
    drop(prober);
    assert!(line.is_some(), "attach streams live events");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(attached.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(wait_child(&mut attached, Duration::from_secs(10)).success());
    assert_eq!(svc.run(&id).unwrap()["state"], "running");

    // Crash: the run comes back with the same id and keeps producing events.
    let old_pid = svc.pid();
    svc.kill9();
    svc.start();
    assert_ne!(svc.pid(), old_pid);
    assert!(svc.log().contains("detached run restored"), "{}", svc.log());
    let run = svc.run(&id).expect("the run is listed after the restart");
    assert_eq!(run["state"], "running");
    assert_eq!(run["name"], "survivor");
    assert_eq!(run["detached"], true);
    let second = probe(&dir, "after-crash");
    poll(
        "the restored run's event in journald",
        Duration::from_secs(15),
        || {
            journal
                .entries(&id)
                .into_iter()
                .any(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains(&second)))
                .then_some(())
        },
    );
    let events = logs(&svc, &[&id]);
    assert!(events.iter().any(|e| e["fname"] == first.as_str()));
    assert!(events.iter().any(|e| e["fname"] == second.as_str()));
    assert!(svc.run(&id).unwrap()["events_seen"].as_u64().unwrap() >= 2);

    // logs -f follows new events and ends when the run stops.
    let mut follower = svc.ctl_spawn_json(&["logs", &id, "-f"]);
    let mut reader = lines_of(follower.stdout.take().unwrap());
    let third = probe(&dir, "while-following");
    wait_line(&mut reader, Duration::from_secs(15), |l| l.contains(&third))
        .expect("logs -f shows new events");
    let out = svc.ctl(&["stop", &id]);
    assert!(out.status.success(), "stop: {}", stderr(&out));
    let status = wait_child(&mut follower, Duration::from_secs(15));
    assert!(status.success(), "logs -f ends with the run");

    // A SIGTERM'd agent keeps ended runs listed; a stopped run is not restored.
    let status = svc.stop();
    assert!(status.success());
    svc.start();
    let run = svc.run(&id).expect("an ended detached run stays listed");
    assert_eq!(run["state"], "stopped");
    assert_eq!(run["exit_reason"], "stopped");
    // rm forgets it, also across restarts; its journal entries stay.
    let out = svc.ctl(&["rm", &id]);
    assert!(out.status.success(), "rm: {}", stderr(&out));
    assert!(svc.run(&id).is_none());
    svc.stop();
    svc.start();
    assert!(svc.run(&id).is_none());
    assert!(!journal.entries(&id).is_empty());
}

#[test]
fn shutdown_keeps_detached_runs_for_the_next_start_and_detaches_programs() {
    let journal = Journald::start();
    let bus = Bus::start();
    let mut svc = journal.service(&bus, &[]);
    let id = detach_trace_open(|a| svc.ctl(a), std::process::id(), &[]);
    let ours = poll("the run's programs", Duration::from_secs(5), || {
        let ids = agent_programs(svc.pid());
        (!ids.is_empty()).then_some(ids)
    });
    assert!(svc.stop().success());
    let loaded: Vec<u64> = loaded_programs().into_iter().map(|(i, _)| i).collect();
    assert!(
        ours.iter().all(|p| !loaded.contains(p)),
        "programs {ours:?} stayed loaded after gadgetd stopped"
    );
    svc.start();
    let run = svc.run(&id).expect("restored");
    assert_eq!(run["state"], "running");
    let out = svc.ctl(&["rm", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stop it first"), "{}", stderr(&out));
    assert!(svc.ctl(&["stop", &id]).status.success());
}

#[test]
fn without_journald_the_agent_says_so_and_keeps_a_bounded_log() {
    let bus = Bus::start();
    let mut svc = Service::new(
        &bus,
        &[
            "--journal-namespace",
            "gadgetd-none-such",
            "--memory-log-lines",
            "3",
        ],
    );
    svc.start();
    assert!(
        svc.log().contains("journald is not running"),
        "{}",
        svc.log()
    );
    let dir = TempDir::new("memlog");
    let id = detach_trace_open(|a| svc.ctl(a), std::process::id(), &[]);
    let mut last = String::new();
    for i in 0..10 {
        last = probe(&dir, &format!("probe-{i}"));
    }
    poll(
        "the last probe in the memory log",
        Duration::from_secs(15),
        || {
            let events = logs(&svc, &[&id]);
            assert!(
                events.len() <= 3,
                "the memory log keeps at most 3 lines: {events:?}"
            );
            events
                .iter()
                .any(|e| e["fname"] == last.as_str())
                .then_some(())
        },
    );
    assert!(svc.ctl(&["stop", &id]).status.success());
}

#[test]
fn the_log_rate_limit_is_reported_not_silent() {
    let journal = Journald::start();
    let bus = Bus::start();
    let svc = journal.service(&bus, &["--log-rate", "10", "--log-burst", "5"]);
    let dir = TempDir::new("rate");
    let id = detach_trace_open(|a| svc.ctl(a), std::process::id(), &[]);
    for i in 0..200 {
        probe(&dir, &format!("flood-{i}"));
    }
    let report = poll(
        "a rate-limit report in the journal",
        Duration::from_secs(15),
        || {
            journal
                .entries(&id)
                .into_iter()
                .find(|e| e["GADGET_CONTROL"] == "rate-limit")
        },
    );
    let lost: Value = serde_json::from_str(report["MESSAGE"].as_str().unwrap()).unwrap();
    assert_eq!(lost["gadgetd"], "lost");
    assert_eq!(lost["cause"], "log");
    assert!(lost["count"].as_u64().unwrap() > 0);
    assert_eq!(report["PRIORITY"], "4");
    let run = poll(
        "EventsLost to count the drops",
        Duration::from_secs(10),
        || {
            let r = svc.run(&id)?;
            (r["events_lost"].as_u64()? > 0).then_some(r)
        },
    );
    assert!(run["events_seen"].as_u64().unwrap() >= 200);
    assert!(svc.log().contains("exceeds the log rate limit"));
    assert!(svc.ctl(&["stop", &id]).status.success());
}

#[test]
fn notifies_ready_status_and_watchdog_then_exits_when_idle() {
    let bus = Bus::start();
    let dir = TempDir::new("notify");
    let sock_path = dir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut svc = Service::new(&bus, &["--idle-exit", "2"])
        .env("NOTIFY_SOCKET", s(&sock_path))
        .env("WATCHDOG_USEC", "400000");
    let started = Instant::now();
    svc.start();
    // Keep reading (as systemd would): a full socket would block the sender.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf)
                && tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                return;
            }
        }
    });
    let mut seen = String::new();
    while started.elapsed() < Duration::from_secs(5)
        && !(seen.contains("READY=1") && seen.contains("WATCHDOG=1"))
    {
        if let Ok(m) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&m);
            seen.push('\n');
        }
    }
    assert!(seen.contains("READY=1"), "{seen}");
    assert!(
        seen.contains("STATUS=0 runs (0 detached), logging to"),
        "{seen}"
    );
    assert!(seen.contains("WATCHDOG=1"), "{seen}");
    // A client call resets the idle clock; then nothing: it exits cleanly.
    assert!(svc.ctl(&["list"]).status.success());
    let status = svc
        .wait_exit(Duration::from_secs(10))
        .expect("gadgetd exits when idle");
    assert!(status.success());
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        svc.log().contains("idle: no runs, no clients"),
        "{}",
        svc.log()
    );
}

#[test]
fn unit_files_pass_systemd_analyze_verify() {
    let root = TempDir::new("unitroot");
    let units = repo_root().join("units");
    // Real paths for ExecStart inside a root, so verify checks everything.
    let usr_bin = root.path().join("usr/bin");
    std::fs::create_dir_all(&usr_bin).unwrap();
    if std::fs::hard_link(bin("gadgetd"), usr_bin.join("gadgetd")).is_err() {
        std::fs::copy(bin("gadgetd"), usr_bin.join("gadgetd")).unwrap();
    }
    // The standard targets and slices the units hang off.
    let sysdir = root.path().join("usr/lib/systemd/system");
    std::fs::create_dir_all(&sysdir).unwrap();
    for entry in std::fs::read_dir("/lib/systemd/system").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".target") || name.ends_with(".slice") {
            let _ = std::fs::copy(entry.path(), sysdir.join(&name));
        }
    }
    for u in [
        "gadgetd.service",
        "gadgetd.socket",
        "gadgetd-metrics.socket",
    ] {
        std::fs::copy(units.join(u), sysdir.join(u)).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        // Documentation=man:gadgetd(8) is installed by the packages, not on a build host.
        .arg("--man=no")
        .arg(sysdir.join("gadgetd.service"))
        .arg(sysdir.join("gadgetd.socket"))
        .arg(sysdir.join("gadgetd-metrics.socket"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {}",
        stderr(&out)
    );
    assert_eq!(stderr(&out), "", "systemd-analyze verify printed warnings");

    // The activation file names the unit and the bus name.
    let activation =
        std::fs::read_to_string(repo_root().join("dbus/data/org.gadgetd.Agent1.service")).unwrap();
    assert!(
        activation.contains("Name=org.gadgetd.Agent1\n")
            && activation.contains("SystemdService=gadgetd.service\n")
    );

    // The hardening score the docs quote.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(units.join("gadgetd.service"))
        .output()
        .unwrap();
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        score <= 3.0,
        "exposure {score} got worse than documented (docs/service.md): {line}"
    );
}

/// BPF program ids held open by process `pid` (its fdinfo).
fn agent_programs(pid: u32) -> Vec<u64> {
    let mut ids = Vec::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for fd in fds.flatten() {
        if let Ok(info) = std::fs::read_to_string(fd.path())
            && info.contains("prog_type:")
            && let Some(id) = info.lines().find_map(|l| l.strip_prefix("prog_id:"))
        {
            ids.push(id.trim().parse().unwrap());
        }
    }
    ids
}

fn wait_child(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("child did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

trait SpawnJson {
    fn ctl_spawn_json(&self, args: &[&str]) -> std::process::Child;
}

impl SpawnJson for Service {
    fn ctl_spawn_json(&self, args: &[&str]) -> std::process::Child {
        Command::new(bin("gadgetctl"))
            .arg("--address")
            .arg(&self.bus_address)
            .args(args)
            .args(["-o", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }
}

/// Unmounts (lazily) on drop, so a failing test leaves no mount behind.
#[test]
fn a_full_disk_gives_errors_not_a_crash() {
    let bus = Bus::start();
    let mut svc = Service::new(&bus, &[]);
    let state = svc.state.path().to_path_buf();
    let _mount = gadgetd_tests::system::Tmpfs::mount(&state, "4m");
    svc.start();
    let filler = state.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..512]).is_ok() {}
    }
    let gadget = gadget("trace_open");
    let out = svc.ctl(&["run", s(&gadget), "--detach"]);
    assert!(
        !out.status.success(),
        "a detached run must not start without room to record it"
    );
    let err = stderr(&out);
    assert!(
        err.contains("database or disk is full") && err.contains("free disk space"),
        "{err}"
    );
    // The agent keeps serving, lists nothing new, and attached runs still work.
    assert!(svc.runs().is_empty());
    let out = svc.ctl(&["run", s(&gadget), "--timeout", "300ms", "-o", "json"]);
    assert!(
        out.status.success(),
        "attached run on a full disk: {}",
        stderr(&out)
    );
    // With room again, detached runs work.
    std::fs::remove_file(&filler).unwrap();
    let id = detach_trace_open(|a| svc.ctl(a), std::process::id(), &[]);
    assert_eq!(svc.run(&id).unwrap()["state"], "running");
    assert!(svc.ctl(&["stop", &id]).status.success());
    assert!(svc.stop().success());
}

/// Opens `dir/TAG-N` every 100 ms (for at most 20 s) until dropped, so a
/// reader that starts late still sees an event.
struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(dir: &TempDir, tag: &str) -> Prober {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, dir, tag) = (stop.clone(), dir.path().to_path_buf(), tag.to_string());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut n = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < Duration::from_secs(20)
            {
                let path = dir.join(format!("{tag}-{n}"));
                let _ = std::fs::write(&path, b"x");
                drop(std::fs::File::open(&path));
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Prober {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The lines of a child's stdout, read on a thread (so waits can time out).
fn lines_of(out: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The first line satisfying `pred` within `timeout`, if any.
fn wait_line(
    lines: &mut std::sync::mpsc::Receiver<String>,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(l) if pred(&l) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn a_detached_image_run_is_restored_with_its_digest() {
    let journal = Journald::start();
    let bus = Bus::start();
    let mut svc = journal.service(&bus, &[]);
    let include = repo_root().join("include");
    let dir = repo_root().join("gadgets/trace_open");
    let out = svc.ctl(&["build", "--include", s(&include), s(&dir)]);
    assert!(out.status.success(), "build: {}", stderr(&out));
    let pid = format!("targ_pid={}", std::process::id());
    let out = svc.ctl(&[
        "run",
        "trace_open",
        "--pull",
        "never",
        "--detach",
        "-p",
        &pid,
    ]);
    assert!(out.status.success(), "run IMAGE --detach: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let run = svc.run(&id).unwrap();
    let digest = run["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{run}");
    assert!(
        run["image"]
            .as_str()
            .unwrap()
            .ends_with("trace_open:latest"),
        "{run}"
    );

    svc.kill9();
    svc.start();
    let run = svc.run(&id).expect("restored");
    assert_eq!(run["state"], "running");
    assert_eq!(run["digest"], digest.as_str());
    let tmp = TempDir::new("imgprobe");
    let path = probe(&tmp, "image-run");
    let entry = poll(
        "the image run's event in journald",
        Duration::from_secs(15),
        || {
            journal
                .entries(&id)
                .into_iter()
                .find(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains(&path)))
        },
    );
    assert_eq!(entry["GADGET_IMAGE_DIGEST"], digest.as_str());
    assert!(svc.ctl(&["stop", &id]).status.success());
}

/// A restored detached run keeps its scope: a run selecting a container that
/// does not exist sees none of our opens after kill -9 and restore, while an
/// unscoped run beside it does.
#[test]
fn a_restored_run_keeps_its_container_selection() {
    let bus = Bus::start();
    let mut svc = Service::new(&bus, &["--container-runtime", "none"]);
    svc.start();
    let dir = TempDir::new("scope");
    let scoped = detach_trace_open(
        |a| svc.ctl(a),
        std::process::id(),
        &["--name", "scoped", "--containername", "no-such-container"],
    );
    let open = detach_trace_open(|a| svc.ctl(a), std::process::id(), &["--name", "unscoped"]);
    svc.kill9();
    svc.start();
    for id in [&scoped, &open] {
        assert_eq!(svc.run(id).expect("restored")["state"], "running");
    }
    let after = probe(&dir, "after-restore");
    poll("the unscoped run's event", Duration::from_secs(15), || {
        logs(&svc, &[&open])
            .iter()
            .any(|e| e["fname"] == after.as_str())
            .then_some(())
    });
    assert!(
        !logs(&svc, &[&scoped])
            .iter()
            .any(|e| e["fname"] == after.as_str()),
        "the restored run lost its container selection"
    );
}
