//! gadgetctl as people who live in a terminal use it (issue 18): flags in
//! any order, output shaping, escaped untrusted strings, run lifecycle,
//! errors that lead somewhere. A real agent on a private bus, real eBPF.

use std::process::Output;

use gadgetd_tests::*;
use serde_json::Value;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `args` (which must end the run by itself, e.g. with `--timeout`)
/// while `activity` runs once the run is live; returns gadgetctl's output.
fn run_during(agent: &Agent, args: &[&str], activity: impl FnOnce()) -> Output {
    let client = agent.ctl_spawn(args);
    agent.wait_running(1);
    activity();
    let out = client.wait_with_output().unwrap();
    agent.wait_running(0);
    out
}

/// Opens `path` (which may not exist) from this process.
fn open(path: &std::path::Path) {
    let _ = std::fs::File::open(path);
}

/// Item 1: gadgetctl's options and the gadget's parameters in any order.
#[test]
fn run_takes_options_and_gadget_parameters_in_any_order() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("order");
    let present = dir.path().join("present");
    std::fs::write(&present, b"x").unwrap();
    let me = std::process::id().to_string();
    let obj = gadget("trace_open");
    let orders: [Vec<&str>; 3] = [
        vec![
            "run",
            s(&obj),
            "--targ_failed",
            "--timeout",
            "2s",
            "-o",
            "json",
            "--targ_pid",
            &me,
        ],
        vec![
            "run",
            "--timeout=2s",
            s(&obj),
            "--targ_pid",
            &me,
            "-ojson",
            "--targ_failed",
        ],
        vec![
            "run",
            "-o",
            "json",
            s(&obj),
            "--targ_pid",
            &me,
            "--targ_failed=true",
            "--timeout",
            "2s",
        ],
    ];
    for (i, args) in orders.iter().enumerate() {
        let missing = dir.path().join(format!("missing-{i}"));
        let out = run_during(&agent, args, || {
            open(&present);
            open(&missing);
        });
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let events = json_lines(&out);
        // Only our failed open: --targ_failed and --targ_pid reached the gadget.
        let ours: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["fname"]
                    .as_str()
                    .is_some_and(|f| f.starts_with(s(dir.path())))
            })
            .collect();
        assert_eq!(ours.len(), 1, "{args:?}: {events:?}");
        assert_eq!(ours[0]["fname"], s(&missing));
        assert_eq!(ours[0]["ret"], -libc::ENOENT);
        assert!(
            events.iter().all(|e| e["pid"].to_string() == me),
            "{events:?}"
        );
    }

    // A misspelled parameter names itself, the parameters, and the rule.
    let out = agent.ctl(&["run", s(&obj), "--targ_faild", "--timeout", "1s"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "`--targ_faild` is neither an option of `gadgetctl run` nor a parameter of gadget"
        ) && err.contains("its parameters: --targ_pid, --targ_failed")
            && err.contains("options and parameters may come in any order"),
        "{err}"
    );
}
