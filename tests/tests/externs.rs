//! Extern symbols and calls of gadget objects (issue 13): `.kconfig` externs
//! get the running kernel's values as libbpf gives them; BPF-to-BPF calls
//! into shared subprograms run from several programs of one section;
//! undefined symbols the loader cannot resolve are named with the program
//! that uses them.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use gadgetd::runtime::{Record, RunOptions};
use gadgetd_tests::*;
use serde_json::{Value, json};

/// The kernel's config as `zcat /proc/config.gz` prints it, `CONFIG_X` → raw value.
fn kernel_config() -> HashMap<String, String> {
    let out = Command::new("sh")
        .args([
            "-c",
            "zcat /proc/config.gz 2>/dev/null || cat /boot/config-$(uname -r)",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "no kernel config on this host");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// KERNEL_VERSION(a, b, c) of `uname -r`.
fn kernel_version() -> u64 {
    let out = Command::new("uname").arg("-r").output().unwrap();
    let release = String::from_utf8(out.stdout).unwrap();
    let nums: Vec<u64> = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|s| s.parse().unwrap())
        .collect();
    (nums[0] << 16) + (nums[1] << 8) + nums[2].min(255)
}

const KCONFIG_WHO: libc::id_t = 0x4b434647;

#[test]
fn kconfig_externs_read_the_running_kernels_values() {
    require_root();
    let config = kernel_config();
    let version = kernel_version();
    rt().block_on(async {
        let gadget = load("kconfig_externs");
        let mut opts = RunOptions::default();
        let pid = std::process::id();
        opts.params.insert("targ_pid".into(), pid.to_string());
        let mut run = gadget.start(&opts).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let event = loop {
            // SAFETY: getpriority(2) with a `who` no process has: it only fails.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, KCONFIG_WHO) };
            let rec = tokio::time::timeout(Duration::from_millis(200), run.next_record()).await;
            if let Ok(rec) = rec
                && let Some(Record::Event(ev)) = rec.unwrap()
            {
                break Value::Object(ev);
            }
            assert!(Instant::now() < deadline, "no event from kconfig_externs");
        };
        let yes = |name: &str| u64::from(config.get(name).map(String::as_str) == Some("y"));
        let localversion = config["CONFIG_LOCALVERSION"].trim_matches('"').to_string();
        let localversion: String = localversion.chars().take(15).collect();
        assert_eq!(
            event,
            json!({
                "pid": pid,
                "kernel_version": version,
                "has_bpf_cookie": u64::from(version >= 0x050f00),
                "bpf_syscall": yes("CONFIG_BPF_SYSCALL"),
                "bpf_letter": u64::from(config["CONFIG_BPF"].as_bytes()[0]),
                "missing_bool": 0,
                "bpf_jit": yes("CONFIG_BPF_JIT"),
                "hz": config["CONFIG_HZ"].parse::<u64>().unwrap(),
                "missing_number": 0,
                "nr_cpus": config["CONFIG_NR_CPUS"].parse::<u64>().unwrap(),
                "localversion": localversion,
            })
        );
    });
}

#[test]
fn a_strong_kconfig_extern_the_kernel_lacks_is_named() {
    require_root();
    let gadget = load("bad_kconfig");
    let err = gadget
        .start(&RunOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        "loading the object into the kernel failed: extern `CONFIG_GADGETD_NO_SUCH_OPTION` (__kconfig): this kernel does not define it: declare it `__weak` to read 0 when it is missing"
    );
}

const SUBPROGS_WHO: libc::id_t = 0x53554200;

#[test]
fn programs_of_one_section_share_noinline_subprograms() {
    require_root();
    rt().block_on(async {
        let gadget = load("subprogs");
        let mut opts = RunOptions::default();
        let pid = std::process::id();
        opts.params.insert("targ_pid".into(), pid.to_string());
        let mut run = gadget.start(&opts).unwrap();
        let ns = [0u32, 1, 5, 200];
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        // The first calls may come before the programs see them: repeat
        // until every n has its two events, then compare what came.
        while !ns.iter().all(|&n| {
            [1, 2]
                .iter()
                .all(|&p| events.iter().any(|e: &Value| e["n"] == n && e["prog"] == p))
        }) {
            for n in ns {
                // SAFETY: getpriority(2) with a `who` no process has: it only fails.
                unsafe { libc::getpriority(libc::PRIO_PROCESS, SUBPROGS_WHO + n) };
            }
            while let Ok(rec) =
                tokio::time::timeout(Duration::from_millis(100), run.next_record()).await
            {
                if let Some(Record::Event(ev)) = rec.unwrap() {
                    events.push(Value::Object(ev));
                }
            }
            assert!(Instant::now() < deadline, "events so far: {events:?}");
        }
        for e in &events {
            let n = e["n"].as_u64().unwrap();
            let value = match e["prog"].as_u64().unwrap() {
                1 => n * 3 + 7,
                2 => (n * 3 + 7) ^ 0x5a,
                other => panic!("prog {other}"),
            };
            assert_eq!(
                *e,
                json!({"pid": pid, "prog": e["prog"], "n": n, "value": value, "global": n * 2})
            );
        }
    });
}

#[test]
fn a_call_to_a_function_the_object_lacks_is_named() {
    require_root();
    let gadget = load("bad_libcall");
    let err = gadget
        .start(&RunOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with(
            "program `libcall_getpriority` (section `tracepoint/syscalls/sys_enter_getpriority`): it calls `memcmp`, which the object does not define: clang emitted a C library call"
        ),
        "{err}"
    );
}

/// The build id of an ELF file, as `readelf -n` prints it.
fn build_id(path: &str) -> String {
    let out = Command::new("readelf").args(["-n", path]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
        .unwrap_or_else(|| panic!("{path} has no build id"))
}

#[test]
fn a_uprobe_symbol_only_a_missing_debug_file_has_is_skipped_and_the_rest_runs() {
    use gadgetd::runtime::load::ProgramStatus;
    require_root();
    // The library the probes name, as the dynamic linker finds it.
    let out = Command::new("sh")
        .args([
            "-c",
            "ldconfig -p | awk '/libc.so.6 .*(x86-64|AArch64)/ {print $NF; exit}'",
        ])
        .output()
        .unwrap();
    let libc_path = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let id = build_id(&libc_path);
    let debug_file = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
    if std::path::Path::new(&debug_file).exists() {
        eprintln!(
            "skipped: libc's debug file {debug_file} is installed here, so its static functions resolve"
        );
        return;
    }
    let sections = Command::new("readelf")
        .args(["-SW", &libc_path])
        .output()
        .unwrap();
    let sections = String::from_utf8(sections.stdout).unwrap();
    assert!(
        sections.contains(".gnu_debuglink"),
        "{libc_path} names no debug file"
    );
    assert!(
        !sections.contains(" .symtab "),
        "{libc_path} is not stripped"
    );

    rt().block_on(async {
        let gadget = load("uprobe_debuglink");
        let mut opts = RunOptions::default();
        let pid = std::process::id();
        opts.params.insert("targ_pid".into(), pid.to_string());
        let mut run = gadget.start(&opts).unwrap();
        let status: Vec<(String, ProgramStatus)> = run
            .programs()
            .iter()
            .map(|p| (p.program.clone(), p.status.clone()))
            .collect();
        assert_eq!(status[0], ("debuglink_getsid".to_string(), ProgramStatus::Attached));
        let ProgramStatus::Skipped(why) = &status[1].1 else {
            panic!("{status:?}")
        };
        let head = format!(
            "symbol `__libc_start_call_main` is not in {libc_path} (neither its .dynsym nor its .symtab; no debug file has it ({debug_file}, "
        );
        assert!(why.starts_with(&head), "{why}\nwanted: {head}");
        assert!(why.ends_with("): install the library's debug symbols to probe it"), "{why}");
        // SAFETY: getsid(0) only reads the caller's session.
        let sid = unsafe { libc::getsid(0) };
        assert!(sid > 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        let event = loop {
            let rec = tokio::time::timeout_at(deadline.into(), run.next_record()).await.unwrap();
            if let Some(Record::Event(ev)) = rec.unwrap() {
                break Value::Object(ev);
            }
        };
        assert_eq!(event, json!({"pid": pid, "probe": 1}));
    });
}

const HIST_WHO_BASE: libc::id_t = 0x48000000;

/// Counts by bucket (start, end).
type Buckets = BTreeMap<(u64, u64), u64>;

/// The histogram object a `gadget_histogram_slot__*` array of values
/// `values` prints as: slot n counts [2^n, 2^(n+1)), slot 0 also 0.
fn slot_histogram(values: &[u64]) -> Value {
    let slot = |v: u64| v.max(1).ilog2() as usize;
    let mut counts = vec![0u64; values.iter().map(|&v| slot(v) + 1).max().unwrap_or(0)];
    for &v in values {
        counts[slot(v)] += 1;
    }
    let buckets: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(n, &count)| {
            let (start, end) = if n == 0 {
                (0, 1)
            } else {
                (1u64 << n, (1u64 << (n + 1)) - 1)
            };
            json!({"start": start, "end": end, "count": count})
        })
        .collect();
    json!({"scale": "log2", "total": values.len(), "buckets": buckets})
}

#[test]
fn histogram_slot_arrays_of_a_map_iterator_decode_as_histograms() {
    require_root();
    let mut test =
        gadgetd::runtime::testing::GadgetTest::from_files(test_object("ig_hist_slots"), None)
            .unwrap()
            .param("targ_pid", std::process::id());
    test.options.interval = Some(Duration::from_millis(200));
    test.settle = Duration::from_millis(700);
    let values: [u64; 9] = [0, 1, 1, 3, 6, 1000, 70000, 7, (1 << 23) + 1];
    let capture = test
        .trace(move || {
            for v in values {
                // SAFETY: getpriority(2) with a `who` no process has: it only fails.
                unsafe { libc::getpriority(libc::PRIO_PROCESS, HIST_WHO_BASE + v as libc::id_t) };
            }
        })
        .unwrap();
    // Each read clears the map, so a row may come in parts: every part is a
    // whole histogram, and the parts add up to the calls made.
    let mut sums: BTreeMap<(u64, &str), Buckets> = BTreeMap::new();
    let rows: Vec<&serde_json::Map<String, Value>> = capture.tables.iter().flatten().collect();
    assert!(!rows.is_empty());
    for row in &rows {
        let keys: Vec<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(keys, ["big", "kind", "small"], "{row:?}");
        let kind = row["kind"].as_u64().unwrap();
        for field in ["small", "big"] {
            let h = &row[field];
            assert_eq!(h["scale"], "log2");
            let buckets = h["buckets"].as_array().unwrap();
            let counted: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
            assert_eq!(h["total"].as_u64().unwrap(), counted, "{h}");
            assert_ne!(buckets.last().unwrap()["count"], 0, "{h}");
            let sum = sums.entry((kind, field)).or_default();
            for b in buckets {
                let range = (b["start"].as_u64().unwrap(), b["end"].as_u64().unwrap());
                *sum.entry(range).or_default() += b["count"].as_u64().unwrap();
            }
        }
    }
    let as_map = |h: Value| -> Buckets {
        h["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let n = |k: &str| b[k].as_u64().unwrap();
                ((n("start"), n("end")), n("count"))
            })
            .collect()
    };
    let even: Vec<u64> = values.iter().copied().filter(|v| v % 2 == 0).collect();
    let odd: Vec<u64> = values.iter().copied().filter(|v| v % 2 == 1).collect();
    let mut want = BTreeMap::new();
    for field in ["small", "big"] {
        want.insert((1, field), as_map(slot_histogram(&even)));
        want.insert((2, field), as_map(slot_histogram(&odd)));
    }
    assert_eq!(sums, want);
}

const KSYM_WHO: libc::id_t = 0x4b53594d;

#[test]
fn a_typed_ksym_extern_is_the_kernels_variable() {
    require_root();
    rt().block_on(async {
        let gadget = load("ksym_percpu");
        let mut opts = RunOptions::default();
        let pid = std::process::id();
        opts.params.insert("targ_pid".into(), pid.to_string());
        // The kernel takes the variable's BTF id from the program and its
        // address from kallsyms, which lists variables only with
        // CONFIG_KALLSYMS_ALL.
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
        let listed = kallsyms.lines().any(|l| l.split_whitespace().nth(2) == Some("runqueues"));
        if !listed {
            let err = gadget.start(&opts).err().unwrap().to_string();
            assert!(
                err.starts_with("program `ksym_getpriority` (section `tracepoint/syscalls/sys_enter_getpriority`): the BPF_PROG_LOAD syscall returned No such file or directory (os error 2). Verifier output: ldimm64 failed to find the address for kernel symbol 'runqueues'."),
                "{err}"
            );
            eprintln!(
                "partly skipped: this kernel has no CONFIG_KALLSYMS_ALL, so it accepted the variable's BTF id but has no address for it; the values are checked where it has"
            );
            return;
        }
        let mut run = gadget.start(&opts).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        while events.len() < 20 {
            // SAFETY: getpriority(2) with a `who` no process has: it only fails.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, KSYM_WHO) };
            if let Ok(rec) =
                tokio::time::timeout(Duration::from_millis(50), run.next_record()).await
                && let Some(Record::Event(ev)) = rec.unwrap()
            {
                events.push(ev);
            }
            assert!(Instant::now() < deadline, "events so far: {events:?}");
        }
        for e in &events {
            // The run queue of the CPU the program ran on.
            assert_eq!(
                Value::Object(e.clone()),
                json!({"pid": pid, "rq_cpu": e["cpu"], "cpu": e["cpu"]})
            );
        }
    });
}
