//! What an unprivileged local user can do to gadgetd, with real users
//! (useradd) against a real agent: connection floods, clients that stop
//! reading, FIFOs passed as objects, log stream and export floods, other
//! users' runs (docs/security.md). Every test checks that the agent keeps
//! serving everyone else throughout.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use gadgetd_tests::system::{Service, Users};
use gadgetd_tests::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// `program args` as `user` in the background, stdin and stdout piped.
fn spawn_as(user: &str, program: &std::path::Path, args: &[&str]) -> Child {
    let gid = nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap()
        .gid
        .as_raw()
        .to_string();
    Command::new("setpriv")
        .args(["--reuid", user, "--regid", &gid, "--init-groups", "--"])
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The next `key=value...` line the helper prints.
fn next_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line.trim().to_string()
}

/// The agent's resident memory (kB) and open fds.
fn rss_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

/// Root lists runs over the p2p socket: the agent still serves.
fn serves(svc: &Service) {
    let out = ctl(s(&svc.socket), &["list"]);
    assert!(
        out.status.success(),
        "the agent stopped serving: {}",
        stderr(&out)
    );
}

fn start(users: &Users, bus: &Bus) -> Service {
    let mut svc = Service::new(bus, &["--group", &users.group]);
    svc.start();
    svc
}

#[test]
fn an_outsiders_connections_are_capped_and_idle_ones_time_out() {
    let users = Users::create();
    let bus = Bus::start();
    let svc = start(&users, &bus);
    let (rss0, fds0) = rss_and_fds(svc.pid());
    let mut flood = spawn_as(
        &users.outsider,
        &bin("p2p-abuse"),
        &["idle", s(&svc.socket), "100"],
    );
    let mut out = BufReader::new(flood.stdout.take().unwrap());
    // 32 are kept (the per-user cap), the other 68 closed at once.
    assert_eq!(
        next_line(&mut out),
        "after_1s connected=100 failed=0 closed=68"
    );
    let (rss1, fds1) = rss_and_fds(svc.pid());
    serves(&svc);
    // Another user is not affected by the outsider's cap.
    let member = Users::run_as(
        &users.member,
        &bin("gadgetctl"),
        &["--address", s(&svc.socket), "list"],
    );
    assert!(member.status.success(), "{}", stderr(&member));
    // None of them finished the handshake: all are closed after 10 s.
    assert_eq!(next_line(&mut out), "after_12s closed=100");
    drop(flood.stdin.take());
    flood.wait().unwrap();
    let uid = Users::uid(&users.outsider);
    let log = svc.log();
    assert!(
        log.contains(&format!(
            "uid {uid} already holds 32 connections (32 at most per user)"
        )),
        "{log}"
    );
    assert!(log.contains("no D-Bus handshake within 10 s"), "{log}");
    serves(&svc);
    eprintln!(
        "measured: 100 idle connections by uid {uid}: 32 kept, 68 refused; agent RSS {rss0} -> {rss1} kB, fds {fds0} -> {fds1}"
    );
}

#[test]
fn running_out_of_fds_is_survived_not_fatal() {
    require_root();
    let dir = TempDir::new("nofile");
    let socket = dir.path().join("gadgetd.sock");
    let log_path = dir.path().join("gadgetd.log");
    // A hard limit of 64 fds: the agent cannot raise it.
    let mut agent = Command::new("prlimit")
        .args(["--nofile=64:64", "--"])
        .arg(bin("gadgetd"))
        .args([
            "--no-bus",
            "--listen",
            s(&socket),
            "--state-dir",
            s(dir.path()),
        ])
        .env("GADGETD_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for("gadgetd to be ready", Duration::from_secs(20), || {
        log().contains(" ready")
    });
    // Root has no per-user cap: 200 idle connections exhaust the fds.
    let mut flood = Command::new(bin("p2p-abuse"))
        .args(["idle", s(&socket), "200"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(flood.stdout.take().unwrap());
    let first = next_line(&mut out);
    assert!(first.starts_with("after_1s connected=200"), "{first}");
    assert!(
        agent.try_wait().unwrap().is_none(),
        "gadgetd exited when accept failed: {}",
        log()
    );
    assert!(
        log().contains("cannot accept a peer-to-peer client; retrying"),
        "{}",
        log()
    );
    // The handshake timeout frees them (those accepted late close later);
    // then the agent serves again, without a restart.
    let later = next_line(&mut out);
    assert!(later.starts_with("after_12s closed="), "{later}");
    drop(flood.stdin.take());
    flood.wait().unwrap();
    wait_for("the agent to serve again", Duration::from_secs(15), || {
        ctl(s(&socket), &["list"]).status.success()
    });
    assert!(agent.try_wait().unwrap().is_none(), "{}", log());
    terminate(&mut agent, Duration::from_secs(5));
}

#[test]
fn a_client_that_stops_reading_is_cut_off_and_runs_still_start() {
    let users = Users::create();
    let bus = Bus::start();
    let svc = start(&users, &bus);
    let mut stuck = spawn_as(
        &users.outsider,
        &bin("p2p-abuse"),
        &["no-read", s(&svc.socket), "100000"],
    );
    let mut out = BufReader::new(stuck.stdout.take().unwrap());
    let sent = next_line(&mut out);
    let n: u64 = sent.strip_prefix("sent=").unwrap().parse().unwrap();
    assert!(n < 100000, "the agent took every call: {sent}");
    // Root starts runs: each is announced on every connection, the stuck
    // one included; it is cut off and the runs start.
    for round in 0..3 {
        let started = Instant::now();
        let out = svc.ctl(&[
            "run",
            s(&gadget("trace_open")),
            "--detach",
            "--name",
            &format!("busy-{round}"),
        ]);
        assert!(out.status.success(), "run {round}: {}", stderr(&out));
        let ms = started.elapsed().as_millis();
        assert!(ms < 15000, "run {round} took {ms} ms");
        eprintln!("measured: detached run {round} started in {ms} ms with a stuck client");
    }
    drop(stuck.stdin.take());
    assert_eq!(next_line(&mut out), "disconnected=true");
    stuck.wait().unwrap();
    let log = svc.log();
    assert!(
        log.contains("peer-to-peer client stopped reading its messages; disconnected"),
        "{log}"
    );
    serves(&svc);
}

#[test]
fn only_regular_files_are_read_as_objects() {
    let users = Users::create();
    let bus = Bus::start();
    let mut svc = start(&users, &bus);
    let dir = TempDir::new("fifo");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let fifo = dir.path().join("object.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let big = dir.path().join("big.o");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();
    let obj = dir.path().join("trace_open.o");
    std::fs::copy(gadget("trace_open"), &obj).unwrap();
    for f in [&fifo, &big, &obj] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    }
    let describe_with = |path: &str, definition_bytes: usize| {
        let out = Users::run_as(
            &users.outsider,
            &bin("p2p-abuse"),
            &[
                "describe",
                s(&svc.socket),
                path,
                &definition_bytes.to_string(),
            ],
        );
        let text = stdout(&out);
        let ms: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("ms="))
            .unwrap_or_else(|| panic!("{text} {}", stderr(&out)))
            .parse()
            .unwrap();
        assert!(ms < 2000, "{path}: {ms} ms");
        text.lines()
            .find(|l| !l.starts_with("ms="))
            .unwrap()
            .to_string()
    };
    let describe = |path: &str| describe_with(path, 0);
    // Each kind of fd that could be held open forever, many times over.
    for _ in 0..20 {
        assert_eq!(
            describe(s(&fifo)),
            "error=org.freedesktop.DBus.Error.InvalidArgs: the object must be passed as an fd of a regular file, not a FIFO (pipe); save it to a file first"
        );
    }
    assert_eq!(
        describe("/dev/zero"),
        "error=org.freedesktop.DBus.Error.InvalidArgs: the object must be passed as an fd of a regular file, not a character device; save it to a file first"
    );
    assert_eq!(
        describe(s(&big)),
        "error=org.freedesktop.DBus.Error.InvalidArgs: the object is larger than 67108864 bytes, the limit"
    );
    // A definition is bounded too (it goes into every stream header).
    assert_eq!(
        describe_with(s(&obj), 300 << 10),
        format!(
            "error=org.freedesktop.DBus.Error.InvalidArgs: the definition is {} bytes, larger than 262144 bytes, the limit",
            (300 << 10) + "name: big\ndescription: \n".len()
        )
    );
    // A real object still works, for the same user.
    assert!(describe(s(&obj)).starts_with("ok="));
    assert!(describe_with(s(&obj), 1000).starts_with("ok="));
    serves(&svc);
    // No thread is pinned: SIGTERM still stops the agent at once.
    let started = Instant::now();
    assert!(svc.stop().success());
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// Starts a detached trace_open run as `user` over the p2p socket.
fn detach_as(svc: &Service, user: &str, name: &str) -> String {
    let out = Users::run_as(
        user,
        &bin("gadgetctl"),
        &[
            "--address",
            s(&svc.socket),
            "run",
            s(&gadget("trace_open")),
            "--detach",
            "--name",
            name,
            "-p",
            "targ_pid=4242",
        ],
    );
    assert!(out.status.success(), "{user}'s run: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn log_streams_are_limited_per_user() {
    let users = Users::create();
    let bus = Bus::start();
    let svc = start(&users, &bus);
    let id = detach_as(&svc, &users.member, "member-logs");
    let follow = || {
        spawn_as(
            &users.member,
            &bin("gadgetctl"),
            &["--address", s(&svc.socket), "logs", "-f", &id],
        )
    };
    let (rss0, fds0) = rss_and_fds(svc.pid());
    let mut streams: Vec<Child> = (0..9).map(|_| follow()).collect();
    // The ninth is refused only once the other eight hold their slots: wait
    // for a refusal (not a fixed time a loaded machine may not keep).
    wait_for(
        "a log stream to be refused",
        Duration::from_secs(30),
        || streams.iter_mut().any(|c| c.try_wait().unwrap().is_some()),
    );
    let (rss1, fds1) = rss_and_fds(svc.pid());
    eprintln!(
        "measured: 9 `logs -f` by one member: 8 served, 1 refused; agent RSS {rss0} -> {rss1} kB, fds {fds0} -> {fds1}"
    );
    let mut refused = Vec::new();
    for (i, c) in streams.iter_mut().enumerate() {
        if let Some(status) = c.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert!(!status.success());
            refused.push((i, err));
        }
    }
    assert_eq!(refused.len(), 1, "{refused:?}");
    let uid = Users::uid(&users.member);
    assert!(
        refused[0].1.contains(&format!(
            "uid {uid} already holds 8 log streams (8 at most per user)"
        )),
        "{}",
        refused[0].1
    );
    // Closing one frees its slot.
    let (gone, _) = refused.pop().unwrap();
    streams.remove(gone).wait().unwrap();
    let mut one = streams.pop().unwrap();
    one.kill().unwrap();
    one.wait().unwrap();
    // The slot is free once the agent has seen that stream close: a follow
    // refused before then is tried again (not a fixed time to wait).
    let start = Instant::now();
    loop {
        let mut again = follow();
        std::thread::sleep(Duration::from_secs(2));
        if again.try_wait().unwrap().is_none() {
            streams.push(again);
            break;
        }
        let mut err = String::new();
        std::io::Read::read_to_string(again.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(err.contains("already holds 8 log streams"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the closed stream's slot was not freed: {err}"
        );
    }
    for c in &mut streams {
        assert!(
            c.try_wait().unwrap().is_none(),
            "a stream within the limit ended"
        );
    }
    // Root (no per-user cap) and others are not affected.
    let out = svc.ctl(&["logs", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    for mut c in streams {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    serves(&svc);
}

#[test]
fn other_users_runs_are_read_with_run_gadget_and_controlled_by_their_owner() {
    let users = Users::create();
    let bus = Bus::start();
    let svc = start(&users, &bus);
    let sock = s(&svc.socket);
    let ctl_bin = bin("gadgetctl");
    let member_run = detach_as(&svc, &users.member, "member-run");
    let out = svc.ctl(&[
        "run",
        s(&gadget("trace_open")),
        "--detach",
        "--name",
        "root-run",
        "-p",
        "targ_pid=4343",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let root_run = stdout(&out).trim().to_string();

    // The outsider sees that the runs exist, nothing more.
    let out = Users::run_as(&users.outsider, &ctl_bin, &["--address", sock, "list"]);
    assert!(stdout(&out).contains("member-run"), "{}", stderr(&out));
    for (cmd, action) in [
        (&["logs"][..], "org.gadgetd.run-gadget"),
        (&["attach"], "org.gadgetd.run-gadget"),
        (&["stop"], "org.gadgetd.run-gadget"),
        (&["rm", "-f"], "org.gadgetd.run-gadget"),
    ] {
        for run in [&member_run, &root_run] {
            let mut args = vec!["--address", sock];
            args.extend_from_slice(cmd);
            args.push(run);
            let out = Users::run_as(&users.outsider, &ctl_bin, &args);
            let err = stderr(&out);
            assert!(
                !out.status.success() && err.contains("AccessDenied") && err.contains(action),
                "outsider's {cmd:?} {run}: {err}"
            );
        }
    }
    let params = |user: &str, run: &str| {
        stdout(&Users::run_as(
            user,
            &bin("p2p-abuse"),
            &["params", sock, run],
        ))
        .trim()
        .to_string()
    };
    assert_eq!(params(&users.outsider, &member_run), "params=[]");
    assert_eq!(params(&users.outsider, &root_run), "params=[]");
    // A member reads anyone's run (it could trace as much itself) ...
    assert_eq!(
        params(&users.member, &member_run),
        r#"params=[("targ_pid", "4242")]"#
    );
    assert_eq!(
        params(&users.member, &root_run),
        r#"params=[("targ_pid", "4343")]"#
    );
    let out = Users::run_as(
        &users.member,
        &ctl_bin,
        &["--address", sock, "logs", &root_run],
    );
    assert!(
        out.status.success(),
        "member's logs of root's run: {}",
        stderr(&out)
    );
    // ... but stops and removes only its own.
    let uid = Users::uid(&users.member);
    let out = Users::run_as(
        &users.member,
        &ctl_bin,
        &["--address", sock, "stop", &root_run],
    );
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "gadgetctl: uid {uid} may not stop or remove run {root_run} of uid 0: that needs org.gadgetd.manage-runs (or being its owner or root) [org.freedesktop.DBus.Error.AccessDenied]"
        )
    );
    let out = svc.ctl(&["list", "-o", "json"]);
    let root_state = json_lines(&out)
        .into_iter()
        .find(|r| r["id"] == root_run.as_str())
        .unwrap()["state"]
        .clone();
    assert_eq!(root_state, "running");
    let out = Users::run_as(
        &users.member,
        &ctl_bin,
        &["--address", sock, "stop", &member_run],
    );
    assert!(out.status.success(), "member's own stop: {}", stderr(&out));
    // Root controls everyone's.
    let out = svc.ctl(&["stop", &root_run]);
    assert!(out.status.success(), "{}", stderr(&out));
    serves(&svc);
}

fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Every body a hostile registry sends is bounded before it is buffered:
/// its token endpoint's answer (endless, or claiming 2 GiB), its refusal
/// of a login (an endless error body), its manifests (endless, claiming
/// 2 GiB) and its manifest errors. Each fails that pull or login with an
/// error naming the registry and the limit; the agent's peak memory stays
/// flat, it stops reading early, and it keeps serving.
#[test]
fn a_hostile_registrys_endless_bodies_are_cut_off_as_they_arrive() {
    use gadgetd_tests::hostile_registry::{Answer, HostileRegistry};
    const GIB2: u64 = 2 << 30;
    let users = Users::create();
    let bus = Bus::start();
    let svc = start(&users, &bus);
    let reg = HostileRegistry::start();
    let addr = reg.addr();
    let token_limit = "at most 65536 are accepted";
    let manifest_limit = "at most 4194304 are accepted";
    let realm = format!("its token endpoint http://{addr}/token");
    let cases: Vec<(&str, Answer, Answer, &[&str], String)> = vec![
        (
            "endless token",
            Answer::endless(200, r#"{"token":""#),
            Answer::token(),
            &["pull"],
            format!("{realm} sent a response of more than 65536 bytes; {token_limit}"),
        ),
        (
            "2 GiB token",
            Answer::claimed(200, GIB2, r#"{"token":""#),
            Answer::token(),
            &["pull"],
            format!("{realm} sent a response of {GIB2} bytes; {token_limit}"),
        ),
        (
            "token refused with an endless body",
            Answer::endless(401, r#"{"errors":[{"message":""#),
            Answer::token(),
            &["login", "-u", "someone", "-p", "secret"],
            "login as `someone` failed: wrong username or password".into(),
        ),
        (
            "token failing with an endless body",
            Answer::endless(500, r#"{"errors":[{"message":""#),
            Answer::token(),
            &["pull"],
            format!("{realm} failed: HTTP 500 Internal Server Error"),
        ),
        (
            "endless manifest",
            Answer::token(),
            Answer::endless(200, r#"{"manifests":["#),
            &["pull"],
            format!("the manifest is more than 4194304 bytes; {manifest_limit}"),
        ),
        (
            "2 GiB manifest",
            Answer::token(),
            Answer::claimed(200, GIB2, r#"{"manifests":["#),
            &["pull"],
            format!("the manifest is {GIB2} bytes; {manifest_limit}"),
        ),
        (
            "missing manifest with an endless error body",
            Answer::token(),
            Answer::endless(404, r#"{"errors":[{"message":""#),
            &["pull"],
            "HTTP 404 Not Found (no such image or tag)".into(),
        ),
    ];
    let before = peak_rss_kb(svc.pid());
    for (what, token, manifest, verb, expected) in cases {
        reg.set_token(token);
        reg.set_manifest(manifest);
        reg.take_sent();
        let target = match verb[0] {
            "login" => addr.clone(),
            _ => format!("{addr}/big/image:v1"),
        };
        let mut args = vec!["--address", s(&svc.socket)];
        args.extend_from_slice(verb);
        args.push(&target);
        let started = Instant::now();
        let out = Users::run_as(&users.member, &bin("gadgetctl"), &args);
        let err = stderr(&out);
        assert!(
            !out.status.success()
                && err.contains(&format!("registry {addr}: "))
                && err.contains(&expected),
            "{what}: expected `{expected}` in: {err}"
        );
        let sent = reg.take_sent();
        eprintln!(
            "measured: {what}: refused in {} ms, {sent} bytes sent before the agent stopped reading",
            started.elapsed().as_millis()
        );
        // The limit, plus what loopback socket buffers hold.
        assert!(sent < 48 << 20, "{what}: the agent read {sent} bytes");
        serves(&svc);
    }
    let after = peak_rss_kb(svc.pid());
    eprintln!("measured: agent peak RSS {before} -> {after} kB");
    assert!(
        after < before + 64 * 1024,
        "peak RSS {before} -> {after} kB"
    );
    // Each pull and login asked the token endpoint once.
    let token_requests = reg
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /token?"))
        .count();
    assert_eq!(token_requests, 7, "{:?}", reg.requests());
}

/// Unmounts on drop.
fn run_state(svc: &Service, id: &str) -> String {
    let out = svc.ctl(&["list", "-a", "-o", "json"]);
    json_lines(&out)
        .into_iter()
        .find(|r| r["id"] == id)
        .map(|r| r["state"].as_str().unwrap().to_string())
        .unwrap_or_else(|| format!("missing: {}", stderr(&out)))
}

#[test]
fn on_a_full_disk_stops_are_never_half_done_and_image_rm_frees_space() {
    let users = Users::create();
    let bus = Bus::start();
    let mut svc = Service::new(&bus, &["--group", &users.group]);
    let state = svc.state.path().to_path_buf();
    let _mount = gadgetd_tests::system::Tmpfs::mount(&state, "8m");
    svc.start();
    let include = repo_root().join("include");
    let gadgets = repo_root().join("gadgets");
    for (i, name) in ["trace_open", "trace_exec"].iter().enumerate() {
        let out = svc.ctl(&[
            "build",
            "--include",
            s(&include),
            "-t",
            &format!("local/full{i}:v1"),
            s(&gadgets.join(name)),
        ]);
        assert!(out.status.success(), "build: {}", stderr(&out));
    }
    let out = svc.ctl(&[
        "run",
        s(&gadget("trace_open")),
        "--detach",
        "--name",
        "kept",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    // Fill the file system to the last block.
    let filler = state.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![1u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..512]).is_ok() {}
    }
    // A stop is either recorded and done, or refused with the run still
    // running; a restart shows the same state either way.
    let out = svc.ctl(&["stop", &id]);
    let before = if out.status.success() {
        wait_for("the run to stop", Duration::from_secs(10), || {
            run_state(&svc, &id) == "stopped"
        });
        "stopped"
    } else {
        let err = stderr(&out);
        assert!(
            err.contains(&format!("cannot record the stop of run {id}"))
                && err.contains("so it keeps running")
                && err.contains("gadgetctl image rm"),
            "{err}"
        );
        assert_eq!(run_state(&svc, &id), "running");
        "running"
    };
    eprintln!("measured: stop on a full disk: {before}");
    // image rm frees space although index.json cannot grow a new copy.
    let out = svc.ctl(&["image", "rm", "local/full0:v1"]);
    assert!(
        out.status.success(),
        "image rm on a full disk: {}",
        stderr(&out)
    );
    let out = svc.ctl(&["image", "list"]);
    assert!(!stdout(&out).contains("local/full0"), "{}", stdout(&out));
    assert!(stdout(&out).contains("local/full1"), "{}", stdout(&out));
    // With that room the stop goes through if it had been refused.
    if before == "running" {
        let out = svc.ctl(&["stop", &id]);
        assert!(
            out.status.success(),
            "stop after image rm: {}",
            stderr(&out)
        );
        wait_for("the run to stop", Duration::from_secs(10), || {
            run_state(&svc, &id) == "stopped"
        });
    }
    std::fs::remove_file(&filler).unwrap();
    assert!(svc.stop().success());
    svc.start();
    assert_eq!(run_state(&svc, &id), "stopped", "{}", svc.log());
    assert!(svc.stop().success());
}

#[test]
fn exports_are_limited_per_user_and_streamed_not_buffered() {
    let users = Users::create();
    let bus = Bus::start();
    let svc = start(&users, &bus);
    let out = svc.ctl(&[
        "build",
        "--include",
        s(&repo_root().join("include")),
        "-t",
        "local/exported:v1",
        s(&repo_root().join("gadgets/trace_exec")),
    ]);
    assert!(out.status.success(), "build: {}", stderr(&out));
    let (rss0, fds0) = rss_and_fds(svc.pid());
    let mut hold = spawn_as(
        &users.outsider,
        &bin("p2p-abuse"),
        &["export", s(&svc.socket), "local/exported:v1", "5"],
    );
    let mut out = BufReader::new(hold.stdout.take().unwrap());
    let uid = Users::uid(&users.outsider);
    let refusal = format!(
        "org.freedesktop.DBus.Error.LimitsExceeded: uid {uid} already holds 2 image exports (2 at most per user); close some and retry"
    );
    for i in 2..5 {
        assert_eq!(next_line(&mut out), format!("export{i}_error={refusal}"));
    }
    assert_eq!(next_line(&mut out), "exports_held=2");
    let (rss1, fds1) = rss_and_fds(svc.pid());
    // Another user exports the whole archive meanwhile.
    let dir = TempDir::new("export");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let file = dir.path().join("exp.tar");
    let member = Users::run_as(
        &users.member,
        &bin("gadgetctl"),
        &[
            "--address",
            s(&svc.socket),
            "image",
            "export",
            "local/exported:v1",
            s(&file),
        ],
    );
    assert!(member.status.success(), "{}", stderr(&member));
    let bytes = std::fs::read(&file).unwrap();
    gadgetd::images::archive::check_complete(bytes.as_slice()).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only exp.tar in the directory"
    );
    // Letting go frees the slots.
    drop(hold.stdin.take());
    hold.wait().unwrap();
    let again = Users::run_as(
        &users.outsider,
        &bin("p2p-abuse"),
        &["export", s(&svc.socket), "local/exported:v1", "2"],
    );
    assert!(
        stdout(&again).contains("exports_held=2"),
        "{}",
        stdout(&again)
    );
    eprintln!(
        "measured: 5 unread exports by uid {uid}: 2 held, 3 refused; agent RSS {rss0} -> {rss1} kB, fds {fds0} -> {fds1}; archive {} bytes",
        bytes.len()
    );
    assert!(rss1 < rss0 + 16 * 1024, "RSS {rss0} -> {rss1} kB");
    serves(&svc);
}
