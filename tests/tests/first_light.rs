//! End to end: gadgetd on a private dbus-daemon, gadgetctl as the client,
//! real eBPF in the running kernel.

use std::io::BufReader;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use gadgetd_tests::bus_run::{BusRun, read_lines};
use gadgetd_tests::*;
use serde_json::Value;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Waits until `list -o json` shows `n` running runs; returns them.
#[test]
fn trace_open_reports_our_own_open_with_exact_fields() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let me = std::process::id();
    let gadget = gadget("trace_open");
    let mut client = agent.ctl_spawn(&[
        "run",
        s(&gadget),
        "-o",
        "json",
        "--timeout",
        "20s",
        "-p",
        &format!("targ_pid={me}"),
    ]);
    agent.wait_running(1);

    let dir = TempDir::new("open");
    let path = dir.path().join("gadgetd-trace-open-probe");
    std::fs::write(&path, b"x").unwrap();
    let before = std::time::SystemTime::now();
    let file = std::fs::File::open(&path).unwrap();
    let fd = file.as_raw_fd();

    let mut reader = BufReader::new(client.stdout.take().unwrap());
    let line = wait_child_line(&mut reader, Duration::from_secs(15), |l| {
        l.contains(path.to_str().unwrap())
            && l.contains(&format!("\"fd\":{fd},"))
            && l.contains("\"flags\":\"O_RDONLY|O_CLOEXEC\"")
    })
    .expect("no event for our openat");
    let ev: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["proc.pid"], me);
    assert_eq!(ev["proc.creds.uid"], 0);
    assert_eq!(ev["proc.creds.gid"], 0);
    assert_eq!(ev["fd"], fd);
    assert_eq!(ev["error_raw"], 0);
    assert_eq!(ev["error"], "");
    assert_eq!(ev["fname"], path.to_str().unwrap());
    assert_eq!(ev["proc.comm"], own_comm());
    // JSON keeps the numbers and adds their names.
    assert_eq!(ev["flags_raw"], libc::O_RDONLY | libc::O_CLOEXEC);
    assert_eq!(ev["flags"], "O_RDONLY|O_CLOEXEC");
    assert_eq!(ev["mode_raw"], 0);
    assert_eq!(ev["mode"], "----------");
    assert_eq!(ev["proc.mntns_id"], own_ns("mnt"));
    // Wall time, not boot time: within a few seconds of when we opened.
    let ts = ev["timestamp"].as_str().unwrap();
    let wall: std::time::SystemTime = humantime_parse(ts);
    let skew = wall.duration_since(before).unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(5),
        "timestamp {ts} is {skew:?} away from the open"
    );

    // A failing open reports ENOENT, by number and by name.
    let missing = dir.path().join("does-not-exist");
    assert!(std::fs::File::open(&missing).is_err());
    let line = wait_child_line(&mut reader, Duration::from_secs(15), |l| {
        l.contains(missing.to_str().unwrap())
    })
    .expect("no event for the failed openat");
    let ev: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["error_raw"], libc::ENOENT);
    assert_eq!(ev["error"], "ENOENT");
    assert_eq!(ev["fd"], 0);

    // Ctrl-C stops the run cleanly: exit 0, and the run is gone.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(client.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = client.wait().unwrap();
    assert!(status.success(), "gadgetctl exited with {status}");
    agent.wait_running(0);
    drop(file);
}

/// RFC 3339 with nanoseconds, UTC (what the decoder writes).
fn humantime_parse(ts: &str) -> std::time::SystemTime {
    let out = Command::new("date")
        .args(["-u", "-d", ts, "+%s.%N"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let secs: f64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("date cannot parse {ts}"));
    std::time::UNIX_EPOCH + Duration::from_secs_f64(secs)
}

#[test]
fn trace_exec_reports_arguments_parent_and_result() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let gadget = gadget("trace_exec");
    let mut client = agent.ctl_spawn(&["run", s(&gadget), "-o", "json", "--timeout", "20s"]);
    agent.wait_running(1);

    let marker = format!("gadgetd-exec-{}", std::process::id());
    let child = Command::new("/bin/echo")
        .args([marker.as_str(), "two words"])
        .output()
        .unwrap();
    assert!(child.status.success());
    let mut reader = BufReader::new(client.stdout.take().unwrap());
    let line = wait_child_line(&mut reader, Duration::from_secs(15), |l| {
        l.contains(&marker) && l.contains("\"proc.comm\":\"echo\"")
    })
    .expect("no event for our exec");
    let ev: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        ev["args"],
        serde_json::json!(["/bin/echo", marker, "two words"])
    );
    assert_eq!(ev["args_count"], 3);
    assert_eq!(ev["proc.parent.pid"], std::process::id());
    assert_eq!(ev["proc.parent.comm"], own_comm());
    assert_eq!(ev["error_raw"], 0);
    assert_eq!(ev["error"], "");
    assert_eq!(ev["proc.creds.uid"], 0);
    assert_eq!(ev["proc.mntns_id"], own_ns("mnt"));

    let missing = format!("/nonexistent/{marker}");
    assert!(Command::new(&missing).spawn().is_err());
    let line = wait_child_line(&mut reader, Duration::from_secs(15), |l| {
        l.contains(&missing)
    })
    .expect("no event for the failed exec");
    let ev: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["error_raw"], libc::ENOENT);
    assert_eq!(ev["error"], "ENOENT");
    assert_eq!(ev["args"][0], missing.as_str());

    let _ = client.kill();
    let _ = client.wait();
}

#[test]
fn attach_list_stop_and_properties_over_the_bus() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let me = std::process::id();
    let gadget = gadget("trace_open");
    let mut first = agent.ctl_spawn(&[
        "run",
        s(&gadget),
        "-o",
        "json",
        "--name",
        "probe",
        "-p",
        &format!("targ_pid={me}"),
    ]);
    let runs = agent.wait_running(1);
    let id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["name"], "probe");
    assert_eq!(runs[0]["owner"], 0);
    assert!(runs[0]["image"].as_str().unwrap().ends_with("trace_open.o"));

    // A second client attaches by name and sees the same events.
    let mut second = agent.ctl_spawn(&["attach", "probe", "-o", "json"]);
    let dir = TempDir::new("attach");
    let path = dir.path().join("attached");
    std::fs::write(&path, b"").unwrap();
    let want = path.to_str().unwrap().to_string();
    // The attacher joins when it joins (gadgetctl's start on a loaded
    // machine): the file is opened again every 20 ms until both clients
    // have seen it opened.
    let opening = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opener = {
        let (path, opening) = (path.clone(), opening.clone());
        std::thread::spawn(move || {
            while opening.load(std::sync::atomic::Ordering::Relaxed) {
                drop(std::fs::File::open(&path).unwrap());
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut r1 = BufReader::new(first.stdout.take().unwrap());
    let mut r2 = BufReader::new(second.stdout.take().unwrap());
    assert!(
        wait_child_line(&mut r1, Duration::from_secs(20), |l| l.contains(&want)).is_some(),
        "first client saw nothing"
    );
    assert!(
        wait_child_line(&mut r2, Duration::from_secs(20), |l| l.contains(&want)).is_some(),
        "attached client saw nothing"
    );
    opening.store(false, std::sync::atomic::Ordering::Relaxed);
    opener.join().unwrap();

    // PropertiesChanged: State goes to "stopped" when we stop the run.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = rt.block_on(async {
        use futures_util::StreamExt;
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        let run = gadgetd_dbus::RunProxy::builder(&conn)
            .path(gadgetd_dbus::names::run_path(&id))
            .unwrap()
            .build()
            .await
            .unwrap();
        assert_eq!(run.state().await.unwrap(), "running");
        let mut changes = run.receive_state_changed().await;
        let _ = changes.next().await; // the current value
        let stop = agent.ctl(&["stop", &id[..8]]);
        assert!(stop.status.success(), "stop failed: {}", stderr(&stop));
        let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("no PropertiesChanged");
        change.unwrap().get().await.unwrap()
    });
    assert_eq!(state, "stopped");
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    // An ended attached run is removed (once its task has finished).
    wait_for(
        "the ended attached run to be removed",
        Duration::from_secs(10),
        || json_lines(&agent.ctl(&["list", "-a", "-o", "json"])).is_empty(),
    );

    // Stopping it again names the problem.
    let again = agent.ctl(&["stop", &id]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("no run with id"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn timeout_ends_the_run_and_the_stream_says_why() {
    let bus = Bus::start();
    let _agent = Agent::start(&bus);
    let gadget = gadget("trace_open");
    let start = Instant::now();
    // Raw stream (not via gadgetctl's renderer): header first, end last.
    let lines = raw_stream(&bus, &gadget, None, 700, || ());
    assert!(start.elapsed() < Duration::from_secs(5));
    let header: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(header["gadgetd"], "header");
    let fields: Vec<(&str, &str)> = header["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        // Nested structs flatten to dotted names; X_raw keeps the number and X
        // is its name; uid/gid also print as names (`uid_name`, `gid_name`).
        [
            ("timestamp_raw", "u64"),
            ("timestamp", "timestamp"),
            ("proc.comm", "string"),
            ("proc.pid", "pid"),
            ("proc.tid", "u32"),
            ("proc.mntns_id", "mntns_id"),
            // Container enrichment follows the mount namespace (docs/containers.md).
            ("runtime.containerName", "string"),
            ("runtime.containerId", "string"),
            ("runtime.name", "string"),
            ("runtime.image", "string"),
            ("k8s.namespace", "string"),
            ("k8s.podName", "string"),
            ("k8s.containerName", "string"),
            ("proc.creds.uid", "uid"),
            ("proc.creds.uid_name", "string"),
            ("proc.creds.gid", "gid"),
            ("proc.creds.gid_name", "string"),
            ("proc.parent.comm", "string"),
            ("proc.parent.pid", "u32"),
            ("proc.parent.tid", "u32"),
            ("error_raw", "errno"),
            ("error", "string"),
            ("fd", "u32"),
            ("flags_raw", "file_flags"),
            ("flags", "string"),
            ("mode_raw", "file_mode"),
            ("mode", "string"),
            ("fname", "string"),
        ]
    );
    let end: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(end["gadgetd"], "end");
    assert_eq!(end["reason"], "timeout");
    let controls: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("{\"gadgetd\""))
        .collect();
    // Every event the run saw reached this client, or was counted as lost
    // to it: the host may flood opens while the test runs (other builds),
    // and a client that falls behind gets `slow-reader` lost lines instead.
    let slow_reader: u64 = controls
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|c| c["gadgetd"] == "lost" && c["cause"] == "slow-reader")
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        end["events_seen"].as_u64().unwrap(),
        (lines.len() - controls.len()) as u64 + slow_reader,
        "{controls:?}"
    );
}

#[test]
fn the_p2p_socket_serves_the_same_api() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let me = std::process::id();
    let gadget = gadget("trace_open");
    let sock = agent.socket.to_str().unwrap().to_string();
    let mut client = std::process::Command::new(bin("gadgetctl"))
        .args([
            "--address",
            &sock,
            "run",
            s(&gadget),
            "-o",
            "json",
            "--timeout",
            "15s",
            "-p",
            &format!("targ_pid={me}"),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while json_lines(&ctl(&sock, &["list", "-o", "json"])).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "run never appeared over the p2p socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = TempDir::new("p2p");
    let path = dir.path().join("p2p-probe");
    std::fs::write(&path, b"").unwrap();
    let mut reader = BufReader::new(client.stdout.take().unwrap());
    assert!(
        wait_child_line(&mut reader, Duration::from_secs(10), |l| l
            .contains(path.to_str().unwrap()))
        .is_some()
    );
    let _ = client.kill();
    let _ = client.wait();
}

#[test]
fn bad_gadgets_get_clear_errors_and_the_agent_keeps_serving() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let before = loaded_program_names();
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        ("/etc/hostname".into(), "not an eBPF ELF object"),
        (test_object("no_btf"), "has no .BTF section"),
        (
            test_object("bad_map"),
            "map `print_events`: tracer maps must be BPF_MAP_TYPE_RINGBUF or BPF_MAP_TYPE_PERF_EVENT_ARRAY",
        ),
        (
            test_object("missing_tp"),
            "tracepoint syscalls/sys_enter_gadgetd_nonexistent does not exist",
        ),
        (test_object("fentry_open"), "fentry"),
    ];
    for (path, want) in &cases {
        let out = agent.ctl(&["run", s(path), "--timeout", "1s"]);
        assert!(!out.status.success(), "{} should fail", path.display());
        assert!(
            stderr(&out).contains(want),
            "{}: want {want:?}, got {}",
            path.display(),
            stderr(&out)
        );
    }
    // kprobes: this kernel has no kprobe PMU; elsewhere the same object must run.
    let kprobe = agent.ctl(&["run", s(&test_object("kprobe_open")), "--timeout", "300ms"]);
    if std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        assert!(
            kprobe.status.success(),
            "kprobe gadget failed: {}",
            stderr(&kprobe)
        );
    } else {
        eprintln!(
            "kprobe attach skipped: this kernel has no kprobe PMU; checking the error instead"
        );
        assert!(
            stderr(&kprobe).contains("kprobes are not available on this kernel"),
            "{}",
            stderr(&kprobe)
        );
    }
    // Nothing stayed loaded from the failed runs, and the agent still works.
    let after = loaded_program_names();
    assert!(
        !after.iter().any(|n| n.starts_with("missing_tp")
            || n.starts_with("fentry_open")
            || n.starts_with("kprobe_open")),
        "a failed run left programs loaded: {after:?} (before: {before:?})"
    );
    let out = agent.ctl(&["run", s(&gadget("trace_open")), "--timeout", "300ms"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn unknown_params_and_bad_values_are_rejected() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let g = gadget("trace_open");
    let out = agent.ctl(&["run", s(&g), "-p", "nope=1"]);
    assert!(
        stderr(&out).contains(
            "parameter `nope`: unknown parameter (this gadget has: pid, tid, uid, gid, comm, failed)"
        ),
        "{}",
        stderr(&out)
    );
    let out = agent.ctl(&["run", s(&g), "-p", "targ_pid=abc"]);
    assert!(
        stderr(&out).contains("parameter `pid`: `abc` is not an integer"),
        "{}",
        stderr(&out)
    );
    let out = agent.ctl(&["run", s(&g), "-p", "targ_failed=maybe"]);
    assert!(
        stderr(&out).contains("is not a boolean"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn callers_other_than_root_are_denied_and_nothing_starts() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("perm");
    let obj = dir.path().join("trace_open.o");
    std::fs::copy(gadget("trace_open"), &obj).unwrap();
    for address in [
        agent.bus_address.clone(),
        agent.socket.to_str().unwrap().to_string(),
    ] {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin("gadgetctl"))
            .args(["--address", &address, "run", s(&obj), "--timeout", "1s"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("uid 65534 is not allowed to org.gadgetd.run-gadget"),
            "{address}: {err}"
        );
        assert!(
            err.contains("org.freedesktop.DBus.Error.AccessDenied"),
            "{err}"
        );
    }
    assert!(
        json_lines(&agent.ctl(&["list", "-o", "json"])).is_empty(),
        "a denied run must not start"
    );
}

#[test]
fn a_client_that_disconnects_ends_only_its_own_run() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let g = gadget("trace_open");
    let mut a = agent.ctl_spawn(&["run", s(&g), "-o", "json", "--name", "a"]);
    let mut b = agent.ctl_spawn(&["run", s(&g), "-o", "json", "--name", "b"]);
    agent.wait_running(2);
    a.kill().unwrap(); // SIGKILL: no Stop call, just a closed socket
    a.wait().unwrap();
    let start = Instant::now();
    loop {
        let runs = json_lines(&agent.ctl(&["list", "-o", "json"]));
        let names: Vec<&str> = runs.iter().map(|r| r["name"].as_str().unwrap()).collect();
        if names == ["b"] {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "run a should end, b go on: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.log_text().contains("client disconnected"));
    let _ = b.kill();
    let _ = b.wait();
}

#[test]
fn sigterm_detaches_every_program_and_ends_streams() {
    let bus = Bus::start();
    let mut agent = Agent::start(&bus);
    let g = gadget("trace_exec");
    let before: Vec<u64> = loaded_programs().into_iter().map(|(id, _)| id).collect();
    let client = agent.ctl_spawn(&["run", s(&g), "-o", "json"]);
    agent.wait_running(1);
    let ours: Vec<(u64, String)> = loaded_programs()
        .into_iter()
        .filter(|(id, n)| !before.contains(id) && (n == "ig_execve_e" || n == "ig_execve_x"))
        .collect();
    assert_eq!(ours.len(), 2, "both programs should be loaded: {ours:?}");
    let status = agent
        .stop()
        .expect("gadgetd did not exit within 10 s of SIGTERM");
    assert!(status.success(), "gadgetd exited with {status}");
    let out = client.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the stream should end cleanly: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now: Vec<u64> = loaded_programs().into_iter().map(|(id, _)| id).collect();
    assert!(
        !ours.iter().any(|(id, _)| now.contains(id)),
        "programs left loaded after SIGTERM: {ours:?}"
    );
}

/// A client that stops reading loses whole batches once its queue in the agent
/// is full, is told so with a `slow-reader` lost line, and every event the
/// run saw is either delivered or counted as lost.
///
/// Driven by conditions, not timing: the opens wait for the agent to have
/// read each thousand (so the kernel's ring never overflows, however slowly
/// a loaded machine runs the agent), and the run is stopped once it has
/// read them all (no run timeout that a slow machine could hit first).
#[test]
fn a_slow_reader_is_told_what_it_missed() {
    let bus = Bus::start();
    let _agent = Agent::start(&bus);
    let gadget = gadget("trace_open");
    let dir = TempDir::new("slow");
    let path = dir.path().join("f");
    std::fs::write(&path, b"").unwrap();
    // Not reading while we open: ~60k events of ~300 bytes overflow the
    // 4 MiB queue (and the socket's buffer before it).
    let opens = 60_000u64;
    let me = std::process::id().to_string();
    let mut run = BusRun::start(&bus, &gadget, &[("targ_pid", &me)]);
    for i in 1..=opens {
        drop(std::fs::File::open(&path).unwrap());
        // A thousand records are a third of trace_open's 1 MiB ring.
        if i % 1000 == 0 {
            run.wait_seen(i, Duration::from_secs(60));
        }
    }
    let lines = read_lines(run.take_stream());
    run.stop();
    let lines = lines.join().unwrap();
    let want = path.to_str().unwrap();
    let mut delivered = 0u64;
    let mut slow_reader_lost = 0u64;
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["gadgetd"].as_str() {
            Some("lost") => {
                assert_eq!(v["cause"], "slow-reader", "{line}");
                slow_reader_lost += v["count"].as_u64().unwrap();
            }
            Some(_) => {}
            None if v["fname"] == want => delivered += 1,
            None => {}
        }
    }
    let end: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(end["gadgetd"], "end");
    assert_eq!(end["reason"], "stopped");
    assert_eq!(end["events_lost"], 0, "the kernel buffer kept up");
    assert!(
        slow_reader_lost > 0,
        "a client that did not read for 60k events lost nothing?"
    );
    assert!(
        delivered > 0,
        "the queued events before the overflow arrive"
    );
    // Our own opens (and the few other files this process touched) are all accounted for.
    let seen = end["events_seen"].as_u64().unwrap();
    let events_delivered = lines
        .iter()
        .filter(|l| !l.starts_with("{\"gadgetd\""))
        .count() as u64;
    assert_eq!(events_delivered + slow_reader_lost, seen);
    assert!(seen >= opens, "seen {seen} < {opens} opens");
}

/// Three streams of one run (the caller's and two attachers) while the agent
/// writes batches straight into the sockets of clients that keep up: two
/// read all along, one reads nothing until half the opens are made. Each stream
/// gets every event the run saw or a `slow-reader` count of it, our opens
/// in the order they were made, none twice; the one that did not read is
/// told it lost events.
#[test]
fn attachers_get_every_event_in_order_or_its_loss_while_one_lags() {
    let bus = Bus::start();
    let _agent = Agent::start(&bus);
    let gadget = gadget("trace_open");
    let dir = TempDir::new("attachers");
    // Opens of missing files: no file to create, the index is in the name.
    let prefix = format!("{}/", dir.path().join("missing").to_str().unwrap());
    let opens = 60_000usize;
    let me = std::process::id().to_string();
    let rt = rt();
    let (mgr, id, fds) = rt.block_on(async {
        let mgr = bus.manager().await;
        let file = std::fs::File::open(&gadget).unwrap();
        let params = std::collections::HashMap::from([("targ_pid", me.as_str())]);
        let (path, own) = mgr
            .run_object(
                zbus::zvariant::Fd::from(std::os::fd::AsFd::as_fd(&file)),
                "",
                params,
                std::collections::HashMap::new(),
            )
            .await
            .unwrap();
        let id = path.as_str().rsplit('/').next().unwrap().to_string();
        let fast = mgr.attach(&id).await.unwrap();
        let slow = mgr.attach(&id).await.unwrap();
        (mgr, id, [own, fast, slow])
    });
    let [own, fast, slow] =
        fds.map(|fd| std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(fd)));
    let read_all = |s: std::os::unix::net::UnixStream| {
        std::thread::spawn(move || {
            use std::io::BufRead;
            BufReader::new(s)
                .lines()
                .map(Result::unwrap)
                .collect::<Vec<String>>()
        })
    };
    let [own, fast] = [read_all(own), read_all(fast)];
    // The lagging one starts reading halfway: from then on its writer
    // empties a full queue while new batches keep coming.
    let (start_lagging, go) = std::sync::mpsc::channel::<()>();
    let slow = std::thread::spawn(move || {
        let _ = go.recv();
        read_all(slow).join().unwrap()
    });
    for i in 0..opens {
        if i == opens / 2 {
            start_lagging.send(()).unwrap();
        }
        assert!(std::fs::File::open(format!("{prefix}{i}")).is_err());
        // ~100k opens/s at most, which a debug agent decodes (see above).
        if i % 1000 == 999 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(mgr.stop(&id)).unwrap();
    let streams = [
        ("caller", own.join().unwrap()),
        ("attacher", fast.join().unwrap()),
        ("lagging attacher", slow.join().unwrap()),
    ];
    for (who, lines) in &streams {
        let end: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(end["gadgetd"], "end", "{who}");
        // Kernel losses (a starved debug agent) are counted apart: `seen`
        // is what the agent read, each of which this stream got or was told of.
        let seen = end["events_seen"].as_u64().unwrap();
        let kernel_lost = end["events_lost"].as_u64().unwrap();
        assert!(
            seen + kernel_lost >= opens as u64,
            "{who}: seen {seen} + lost {kernel_lost} < {opens} opens"
        );
        let (mut events, mut lost, mut ours) = (0u64, 0u64, Vec::new());
        for line in lines {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{who}: not JSON ({e}): {line:.200}"));
            match v["gadgetd"].as_str() {
                Some("lost") if v["cause"] == "kernel" => {}
                Some("lost") => {
                    assert_eq!(v["cause"], "slow-reader", "{who}: {line}");
                    lost += v["count"].as_u64().unwrap();
                }
                Some(_) => {}
                None => {
                    events += 1;
                    if let Some(i) = v["fname"].as_str().and_then(|f| f.strip_prefix(&prefix)) {
                        ours.push(i.parse::<usize>().unwrap());
                    }
                }
            }
        }
        assert_eq!(events + lost, seen, "{who}: {events} events + {lost} lost");
        assert!(
            ours.windows(2).all(|w| w[0] < w[1]),
            "{who}: our opens out of order or twice"
        );
        if lost == 0 && kernel_lost == 0 {
            assert_eq!(ours, (0..opens).collect::<Vec<_>>(), "{who}");
        }
    }
    let lagging_lost = streams[2]
        .1
        .iter()
        .filter(|l| l.contains("slow-reader"))
        .count();
    assert!(
        lagging_lost > 0,
        "an attacher that did not read for {} events lost nothing?",
        opens / 2
    );
}
