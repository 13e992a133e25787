//! Extern symbols of gadget objects (issue 13): `.kconfig` externs get the
//! running kernel's values as libbpf gives them; undefined symbols the
//! loader cannot resolve are named with the program that uses them.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use gadgetd::runtime::{Gadget, Record, RunOptions};
use gadgetd_tests::*;
use serde_json::{Value, json};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn load(name: &str) -> Gadget {
    Gadget::from_object(std::fs::read(test_object(name)).unwrap(), None).unwrap()
}

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
