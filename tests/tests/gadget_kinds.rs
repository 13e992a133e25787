//! The gadget kinds and parameter flags end to end: gadgetd on a private
//! bus, gadgetctl as the client, real eBPF.

use std::time::{Duration, Instant};

use gadgetd_tests::*;
use serde_json::Value;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn assert_ok(o: &std::process::Output) {
    assert!(
        o.status.success(),
        "gadgetctl failed: {}\n{}",
        stderr(o),
        stdout(o)
    );
}

#[test]
fn a_snapshot_prints_one_json_array_and_ends() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let out = agent.ctl(&["run", s(&gadget("snapshot_process")), "-o", "json"]);
    assert_ok(&out);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "one array, got {lines:?}");
    let rows = lines[0].as_array().expect("a JSON array");
    let me = rows
        .iter()
        .find(|r| r["pid"] == std::process::id())
        .expect("our own process is missing");
    assert_eq!(me["comm"], own_comm_of_process());
    assert_eq!(me["creds.uid_name"], "root");
    assert_eq!(me["parent.pid"], std::os::unix::process::parent_id());

    // --sort and --max-rows apply to snapshots too.
    let out = agent.ctl(&[
        "run",
        s(&gadget("snapshot_process")),
        "-o",
        "json",
        "--sort",
        "-pid",
        "--max-rows",
        "5",
    ]);
    assert_ok(&out);
    let rows = json_lines(&out)[0].as_array().unwrap().clone();
    let pids: Vec<u64> = rows.iter().map(|r| r["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 5);
    assert!(
        pids.windows(2).all(|w| w[0] > w[1]),
        "not descending: {pids:?}"
    );

    // Columns: titles (no container column: this host has no containers), then one line per row.
    let out = agent.ctl(&[
        "run",
        s(&gadget("snapshot_process")),
        "--sort",
        "pid",
        "--max-rows",
        "2",
    ]);
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0]
            .split_whitespace()
            .eq(["COMM", "PID", "CREDS.UID", "PARENT.PID"]),
        "{text}"
    );
}

/// The comm of the test process's main thread.
fn own_comm_of_process() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn a_topper_prints_one_sorted_array_per_interval() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let me = std::process::id().to_string();
    let client = agent.ctl_spawn(&[
        "run",
        s(&gadget("top_file")),
        "-o",
        "json",
        "--interval",
        "200ms",
        "--timeout",
        "1500ms",
        "--sort",
        "-wbytes,file",
        "--max-rows",
        "2",
        "--pid",
        &me,
    ]);
    agent.wait_running(1);
    // Activity: three files written with different amounts, repeatedly.
    let dir = TempDir::new("top");
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1200) {
        for (name, n) in [("a.bin", 3000), ("b.bin", 2000), ("c.bin", 1000)] {
            std::fs::write(dir.path().join(name), vec![1u8; n]).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = client.wait_with_output().unwrap();
    assert_ok(&out);
    let tables: Vec<Value> = json_lines(&out);
    assert!(
        (4..=9).contains(&tables.len()),
        "expected about 7 tables at 200ms over 1.5s, got {}",
        tables.len()
    );
    let mut full = 0;
    for t in &tables {
        let rows = t.as_array().expect("each interval is one JSON array");
        assert!(rows.len() <= 2, "--max-rows 2: {rows:?}");
        if rows.len() == 2 && rows[0]["file"] == "a.bin" {
            assert_eq!(rows[1]["file"], "b.bin");
            assert!(rows[0]["wbytes"].as_u64() > rows[1]["wbytes"].as_u64());
            assert_eq!(rows[0]["wbytes"].as_u64().unwrap() % 3000, 0);
            full += 1;
        }
    }
    assert!(
        full >= 2,
        "the largest writers did not lead the tables: {tables:?}"
    );
}

#[test]
fn bad_kind_options_are_rejected_with_the_reason() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let out = agent.ctl(&[
        "run",
        s(&gadget("top_file")),
        "--sort",
        "nope",
        "--timeout",
        "1s",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("parameter `sort`: `nope` is not a field of this gadget (fields: proc.comm, proc.pid, proc.tid, proc.mntns_id, proc.creds.uid, proc.creds.gid, proc.parent.comm, proc.parent.pid, proc.parent.tid, dev, inode, type, file, reads, writes, rbytes, wbytes)"),
        "{}",
        stderr(&out)
    );
    let out = agent.ctl(&["run", s(&test_object("bad_iter")), "--timeout", "1s"]);
    assert!(
        stderr(&out).contains("program `bad_iter` (section `iter/no_such_target`): this kernel has no `no_such_target` iterator"),
        "{}",
        stderr(&out)
    );
    let out = agent.ctl(&["run", s(&test_object("bad_hist")), "--timeout", "1s"]);
    assert!(
        stderr(&out).contains("map `hist_odd`: a histogram's key must be a `gadget_hist_log2` or `gadget_hist_linear` slot number"),
        "{}",
        stderr(&out)
    );
    // The agent is still fine.
    assert_ok(&agent.ctl(&["list"]));
}

#[test]
fn parameters_are_typed_flags_with_help() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let open = gadget("trace_open");
    let out = agent.ctl(&["run", s(&open), "--pid", "abc"]);
    assert!(
        stderr(&out).contains("parameter `pid`: `abc` is not an integer"),
        "{}",
        stderr(&out)
    );
    let out = agent.ctl(&["run", s(&open), "--nope", "1"]);
    assert!(
        stderr(&out).contains("`--nope` is neither an option of `gadgetctl run` nor a parameter of gadget trace_open; its parameters: --pid, --tid, --uid, --gid, --comm, --failed"),
        "{}",
        stderr(&out)
    );
    let out = agent.ctl(&["run", s(&open), "--pid", "99999999999"]);
    assert!(
        stderr(&out).contains("parameter `pid`: `99999999999` is out of range 0..=4294967295"),
        "{}",
        stderr(&out)
    );

    // The common filters by their IG names, and --help.
    let out = agent.ctl(&["run", s(&gadget("top_file")), "--help"]);
    assert_ok(&out);
    let help = stdout(&out);
    assert!(
        help.contains("Gadget top_file (topper): Top files by reads and writes, per process"),
        "{help}"
    );
    assert!(help.contains("  --pid <uint32>\n          Show only events generated by processes with this pid\n          [default: 0]"), "{help}");
    assert!(
        help.contains("  --comm <string (up to 15 bytes)>\n"),
        "{help}"
    );
    assert!(help.contains("  --regular_only <bool>"), "{help}");
    assert!(help.contains("--sort <FIELDS>"), "{help}");

    // A bool flag without a value, and a typed value that reaches the kernel.
    let me = std::process::id().to_string();
    let client = agent.ctl_spawn(&[
        "run",
        s(&open),
        "-o",
        "json",
        "--timeout",
        "3s",
        "--pid",
        &me,
        "--failed",
    ]);
    agent.wait_running(1);
    let dir = TempDir::new("flags");
    let _ = std::fs::File::open(dir.path().join("exists-not"));
    std::fs::write(dir.path().join("exists"), b"").unwrap();
    let _ = std::fs::File::open(dir.path().join("exists")).unwrap();
    let out = client.wait_with_output().unwrap();
    assert_ok(&out);
    let events = json_lines(&out);
    let ours: Vec<&Value> = events
        .iter()
        .filter(|e| e["fname"].as_str().is_some_and(|f| f.contains("exists")))
        .collect();
    assert_eq!(ours.len(), 1, "only the failed open: {events:?}");
    assert_eq!(ours[0]["error_raw"], libc::ENOENT);
    assert_eq!(ours[0]["error"], "ENOENT");
}

/// A profiler (seed `hist_*` map) prints its histogram once, at stop: 3
/// getpid calls counted with value 5 are the 4-7 bucket, full bar.
#[test]
fn a_profiler_prints_its_histogram_at_stop() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let me = std::process::id().to_string();
    let client = agent.ctl_spawn(&[
        "run",
        s(&test_object("hist_log2")),
        "--timeout",
        "1500ms",
        "--targ_pid",
        &me,
        "--targ_value",
        "5",
    ]);
    agent.wait_running(1);
    for _ in 0..3 {
        // SAFETY: getpid has no preconditions.
        unsafe { libc::syscall(libc::SYS_getpid) };
    }
    let out = client.wait_with_output().unwrap();
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["values:"],
            vec!["usecs", ":", "count", "distribution"],
            vec!["0", "->", "1", ":", "0", "|", "|"],
            vec!["2", "->", "3", ":", "0", "|", "|"],
            vec![
                "4",
                "->",
                "7",
                ":",
                "3",
                "|****************************************|"
            ],
        ],
        "{text}"
    );
}

#[test]
fn advise_seccomp_prints_a_profile_of_what_the_workload_called() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("seccomp");
    let probe = dir.path().join("gseccomp-probe");
    std::fs::copy("/bin/true", &probe).unwrap();
    let client = agent.ctl_spawn(&[
        "run",
        s(&gadget("advise_seccomp")),
        "-o",
        "seccomp",
        "--timeout",
        "2500ms",
        "--comm",
        "gseccomp-probe",
    ]);
    // Listed as running once its programs are attached (however long the
    // load took on a loaded machine): the probe's syscalls are all seen.
    agent.wait_running(1);
    assert!(
        std::process::Command::new(&probe)
            .status()
            .unwrap()
            .success()
    );
    let out = client.wait_with_output().unwrap();
    assert_ok(&out);
    let profile: Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(
        profile["architectures"],
        serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    assert_eq!(profile["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
    let names: Vec<&str> = profile["syscalls"][0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    // What any dynamically linked program does after exec, and ends with;
    // `read` (the dynamic loader reads libc) is syscall 0 on x86_64.
    for want in ["read", "brk", "mmap", "openat", "close", "exit_group"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        !names.contains(&"bind") && !names.contains(&"execve"),
        "{names:?}"
    );
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "sorted and unique: {names:?}"
    );

    // A gadget without syscall fields cannot make a profile.
    let out = agent.ctl(&["run", s(&gadget("snapshot_process")), "-o", "seccomp"]);
    assert!(
        stderr(&out).contains("-o seccomp needs a gadget with a syscall field"),
        "{}",
        stderr(&out)
    );
}

/// `-o seccomp` with several data sources: the syscalls of every source
/// with a syscall field, each by its own fields. The first source has none
/// (its `which` numbers are no syscalls); `get` names getpriority in `nr`,
/// `set` setpriority in `syscall`.
#[test]
fn seccomp_output_takes_every_source_with_syscalls() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let me = std::process::id().to_string();
    let param = format!("targ_pid={me}");
    let client = agent.ctl_spawn(&[
        "run",
        s(&test_object("seccomp_sources")),
        "-p",
        &param,
        "-o",
        "seccomp",
        "--timeout",
        "2500ms",
    ]);
    // Running means attached: the calls below are seen.
    agent.wait_running(1);
    // SAFETY: plain syscalls on this process, its priority set to what it is.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        assert_eq!(*libc::__errno_location(), 0);
        assert_eq!(libc::setpriority(libc::PRIO_PROCESS, 0, nice), 0);
    }
    let out = client.wait_with_output().unwrap();
    assert_ok(&out);
    let profile: Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert_eq!(
        profile["syscalls"],
        serde_json::json!([{"names": ["getpriority", "setpriority"], "action": "SCMP_ACT_ALLOW"}])
    );
}

#[test]
fn a_profiler_with_an_interval_prints_and_resets_its_histogram_each_time() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let me = std::process::id().to_string();
    let client = agent.ctl_spawn(&[
        "run",
        s(&test_object("hist_linear")),
        "-o",
        "json",
        "--interval",
        "300ms",
        "--timeout",
        "1600ms",
        "--targ_pid",
        &me,
        "--targ_value",
        "25",
    ]);
    agent.wait_running(1);
    const CALLS: u64 = 40;
    for _ in 0..CALLS {
        // SAFETY: getpid has no preconditions.
        unsafe { libc::syscall(libc::SYS_getpid) };
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = client.wait_with_output().unwrap();
    assert_ok(&out);
    let hists = json_lines(&out);
    // Every 300 ms over 1.6 s, plus the one at stop.
    assert!(
        (4..=7).contains(&hists.len()),
        "{} histograms: {hists:?}",
        hists.len()
    );
    let total: u64 = hists.iter().map(|h| h["total"].as_u64().unwrap()).sum();
    assert_eq!(
        total, CALLS,
        "each getpid counted once over all intervals (reset after each)"
    );
    for h in &hists {
        assert_eq!(h["histogram"], "things");
        assert_eq!(h["scale"], "linear");
        if h["total"] != 0 {
            assert_eq!(
                h["buckets"][2],
                serde_json::json!({"start": 20, "end": 29, "count": h["total"]})
            );
        }
    }
}

#[test]
fn network_snapshots_take_the_namespaces_asked_for() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let own = own_ns("net").to_string();
    let out = agent.ctl(&[
        "run",
        s(&gadget("snapshot_socket")),
        "-o",
        "json",
        "--netns",
        &own,
    ]);
    assert_ok(&out);
    let rows = json_lines(&out)[0].as_array().unwrap().clone();
    assert!(
        rows.iter().all(|r| r["netns_id"] == own_ns("net")),
        "{rows:?}"
    );
    let out = agent.ctl(&["run", s(&gadget("snapshot_socket")), "--netns", "1"]);
    assert!(
        stderr(&out)
            .contains("parameter `netns`: none of the network namespaces [1] exists (any more)"),
        "{}",
        stderr(&out)
    );
}
