//! A run's ring buffer size (issue 19, memory): `gadgetctl run --ring-size`
//! sets the size of the tracers' BPF ring buffers the kernel creates
//! (`max_entries` of the map, read back from the agent's map fds); without
//! it the gadget's own size stands; sizes the kernel would refuse are
//! refused with the size to use. A real agent on a private bus, real eBPF.

use std::process::Output;

use gadgetd_tests::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// `max_entries` of every BPF ring buffer map (`map_type` 27) the process
/// holds an fd of, sorted (from `/proc/PID/fdinfo`).
fn ring_sizes(pid: u32) -> Vec<u64> {
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue; // closed meanwhile
        };
        if link.to_string_lossy() != "anon_inode:bpf-map" {
            continue;
        }
        let info = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
        let Ok(text) = std::fs::read_to_string(info) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().parse::<u64>().unwrap())
        };
        if field("map_type:") == Some(27) {
            sizes.push(field("max_entries:").unwrap());
        }
    }
    sizes.sort();
    sizes
}

/// Starts `args` (a run ending by itself), returns the ring sizes the agent
/// holds while it is live, then its output after `activity`.
fn sizes_during(agent: &Agent, args: &[&str], activity: impl FnOnce()) -> (Vec<u64>, Output) {
    let client = agent.ctl_spawn(args);
    agent.wait_running(1);
    let sizes = ring_sizes(agent.pid());
    activity();
    let out = client.wait_with_output().unwrap();
    agent.wait_running(0);
    (sizes, out)
}

#[test]
fn ring_size_sets_the_tracers_ring_and_the_gadgets_own_stands_without_it() {
    require_root();
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("ring-size");
    let me = std::process::id().to_string();
    // Gadgets that declare different sizes (GADGET_TRACER_MAP).
    for (name, declared) in [
        ("trace_open", 1u64 << 20),
        ("trace_exec", 1 << 20),
        ("trace_oomkill", 256 << 10),
    ] {
        let obj = gadget(name);
        let base = ["run", s(&obj), "--timeout", "2s", "-o", "json"];
        let (sizes, out) = sizes_during(&agent, &base, || {});
        ok(&out, &format!("{name} without --ring-size"));
        assert_eq!(sizes, [declared], "{name}: the gadget's own ring size");
        for (flag, bytes) in [("16K", 16u64 << 10), ("256K", 256 << 10), ("2M", 2 << 20)] {
            let args = [&base[..], &["--ring-size", flag]].concat();
            let (sizes, out) = sizes_during(&agent, &args, || {});
            ok(&out, &format!("{name} --ring-size {flag}"));
            assert_eq!(sizes, [bytes], "{name} --ring-size {flag}");
        }
    }

    // Events still arrive through a small ring, each one once.
    let probe = dir.path().join("ring-probe");
    let obj = gadget("trace_open");
    let args = [
        "run",
        s(&obj),
        "--pid",
        &me,
        "--ring-size",
        "16K",
        "--timeout",
        "3s",
        "-o",
        "json",
    ];
    let (_, out) = sizes_during(&agent, &args, || {
        for _ in 0..5 {
            let _ = std::fs::File::open(&probe);
        }
    });
    let seen = json_lines(&out)
        .iter()
        .filter(|e| e["fname"] == s(&probe))
        .count();
    assert_eq!(seen, 5, "{}", stderr(&out));
}

#[test]
fn ring_sizes_the_kernel_would_refuse_are_refused_with_one_to_use() {
    require_root();
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let obj = gadget("trace_open");
    // Checked by the agent: a power of two, one page to 1 GiB.
    for (flag, what) in [
        ("100000", "100000 is not: use e.g. 131072"),
        ("3M", "3145728 is not: use e.g. 4194304"),
        ("2K", "2048 is not: use e.g. 4096"),
        ("0", "0 is not: use e.g. 4096"),
        ("2G", "2147483648 is not: use e.g. 1073741824"),
    ] {
        let out = agent.ctl(&["run", s(&obj), "--ring-size", flag, "--timeout", "1s"]);
        let err = fails(&out, &format!("--ring-size {flag}"));
        assert!(
            err.contains("ring-buffer-bytes: a ring buffer size must be a power of two")
                && err.contains(what),
            "--ring-size {flag}: {err}"
        );
    }
    // Checked by gadgetctl: the shape of the number.
    for flag in ["1.5M", "1MB", "4G", "lots"] {
        let out = agent.ctl(&["run", s(&obj), "--ring-size", flag, "--timeout", "1s"]);
        let err = fails(&out, &format!("--ring-size {flag}"));
        assert!(
            err.contains(&format!(
                "`{flag}`: expected a size in bytes, or with K, M or G"
            )),
            "--ring-size {flag}: {err}"
        );
    }
    // Nothing was left running or loaded by the refusals.
    agent.wait_running(0);
    assert_eq!(ring_sizes(agent.pid()), Vec::<u64>::new());
}
