//! Prometheus metrics against a real Prometheus: it scrapes gadgetd's
//! /metrics, `promtool check metrics` passes on the exposition, and PromQL
//! returns exactly the counts this test caused.

use std::time::Duration;

use gadgetd_tests::prometheus::{self, Prometheus};
use gadgetd_tests::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// An agent serving metrics on a free loopback port.
fn agent_with_metrics(bus: &Bus) -> (Agent, std::net::SocketAddr) {
    let addr = prometheus::free_addr();
    let agent = Agent::start_with(bus, &["--metrics-listen", &addr.to_string()]);
    wait_for("the metrics endpoint", Duration::from_secs(10), || {
        prometheus::get(addr, "/metrics", None).is_ok()
    });
    (agent, addr)
}

/// Fails `n` openat calls of a path that does not exist, from this process.
fn failed_opens(n: usize, tag: &str) {
    let path = format!("/nonexistent-gadgetd-metrics-{tag}");
    for _ in 0..n {
        assert!(std::fs::File::open(&path).is_err());
    }
}

/// Starts trace_open detached, seeing only this process's failed opens.
fn detached_trace_open(agent: &Agent, name: &str) -> String {
    let gadget = gadget("trace_open");
    let pid = format!("targ_pid={}", std::process::id());
    let out = agent.ctl(&[
        "run",
        s(&gadget),
        "--detach",
        "--name",
        name,
        "-p",
        &pid,
        "-p",
        "targ_failed=true",
    ]);
    let id = ok(&out, "run --detach").trim().to_string();
    assert_eq!(id.len(), 16, "run --detach prints the run id, got {id:?}");
    agent.wait_running(1);
    id
}

#[test]
fn prometheus_scrapes_the_agents_own_metrics() {
    require_root();
    let bus = Bus::start();
    let (agent, addr) = agent_with_metrics(&bus);
    let id = detached_trace_open(&agent, "metrics-own");
    let tag = random_hex(6);
    failed_opens(7, &tag);

    // The text format: what promtool reads, with every family it lints.
    let text = prometheus::get(addr, "/metrics", None).unwrap();
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = text.text();
    let (passed, report) = prometheus::promtool_check(&body);
    assert!(
        passed,
        "promtool check metrics failed:\n{report}\n---\n{body}"
    );
    for family in [
        "# TYPE gadgetd_runs gauge",
        "# TYPE gadgetd_run_events_total counter",
        "# TYPE gadgetd_run_events_lost_total counter",
        "# TYPE gadgetd_run_clients gauge",
        "# TYPE gadgetd_program_runs_total counter",
        "# TYPE gadgetd_program_run_time_seconds_total counter",
        "# TYPE gadgetd_image_store_bytes gauge",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_cpu_seconds_total counter",
    ] {
        assert!(body.contains(family), "no `{family}` in:\n{body}");
    }
    assert!(
        body.contains("gadgetd_runs{state=\"running\"} 1\n"),
        "{body}"
    );

    // OpenMetrics when asked (Prometheus asks for it first).
    let om = prometheus::get(
        addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0"),
    )
    .unwrap();
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.text().ends_with("# EOF\n"), "{}", om.text());

    // Other paths and methods say what is served.
    let nf = prometheus::get(addr, "/", None).unwrap();
    assert_eq!(nf.status, 404);
    assert_eq!(nf.text(), "gadgetd serves only /metrics here\n");

    // A real Prometheus scrapes it; PromQL sees exactly the 7 failed opens.
    let prom = Prometheus::start(addr);
    let q = format!(
        "gadgetd_run_events_total{{run=\"{id}\",name=\"metrics-own\",gadget=\"trace_open\"}}"
    );
    prom.wait_value(&q, 7.0, Duration::from_secs(20));
    failed_opens(5, &tag);
    prom.wait_value(&q, 12.0, Duration::from_secs(20));
    prom.wait_value(
        &format!("gadgetd_run_events_lost_total{{run=\"{id}\",cause=\"kernel\"}}"),
        0.0,
        Duration::from_secs(5),
    );
    prom.wait_value("up{job=\"gadgetd\"}", 1.0, Duration::from_secs(5));
    // The program ran at least for those 12 opens (it sees every openat on
    // the host and filters in the kernel).
    let runs = prom.query(&format!("sum(gadgetd_program_runs_total{{run=\"{id}\"}})"));
    assert!(
        runs.len() == 1 && runs[0].1 >= 12.0,
        "program runs: {runs:?}"
    );
    ok(&agent.ctl(&["stop", &id]), "stop");
}

/// A copy of busybox-static named `comm`: a static binary opens nothing at start.
fn busybox_named(dir: &TempDir, comm: &str) -> std::path::PathBuf {
    let path = dir.path().join(comm);
    std::fs::copy("/bin/busybox", &path).expect("busybox-static is installed");
    path
}

#[test]
fn prometheus_counts_a_gadgets_counter_per_label() {
    require_root();
    let bus = Bus::start();
    let (agent, addr) = agent_with_metrics(&bus);
    let gadget = gadget("metrics_syscalls");
    let out = agent.ctl(&["run", s(&gadget), "--detach", "--metrics", "--name", "sc"]);
    let id = ok(&out, "run --detach --metrics").trim().to_string();
    agent.wait_running(1);

    let dir = TempDir::new("metrics-bb");
    let comm = format!("m{}", random_hex(6));
    let bb = busybox_named(&dir, &comm);
    use std::os::unix::process::CommandExt;
    // comm is the file's name; busybox picks its applet from argv[0].
    let status = std::process::Command::new(&bb)
        .arg0("sh")
        .args(["-c", "i=0; while [ $i -lt 9 ]; do true < /nonexistent-gadgetd-metrics; i=$((i+1)); done; true"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let text = prometheus::get(addr, "/metrics", None).unwrap().text();
    let (passed, report) = prometheus::promtool_check(&text);
    assert!(
        passed && report.is_empty(),
        "promtool check metrics:\n{report}"
    );
    assert!(
        text.contains("# TYPE syscalls_calls_total counter\n"),
        "{text}"
    );

    let prom = Prometheus::start(addr);
    prom.wait_value(
        &format!("syscalls_calls_total{{run=\"{id}\",gadget=\"metrics_syscalls\",comm=\"{comm}\",syscall_name=\"openat\"}}"),
        9.0,
        Duration::from_secs(20),
    );
    ok(&agent.ctl(&["stop", &id]), "stop");
}
