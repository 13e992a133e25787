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
    let id = detach_trace_open(
        |a| agent.ctl(a),
        std::process::id(),
        &["--name", name, "-p", "targ_failed=true"],
    );
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
    prometheus::assert_has(
        &body,
        &[
            "# TYPE gadgetd_runs gauge",
            "# TYPE gadgetd_run_events_total counter",
            "# TYPE gadgetd_run_events_lost_total counter",
            "# TYPE gadgetd_run_clients gauge",
            "# TYPE gadgetd_program_runs_total counter",
            "# TYPE gadgetd_program_run_time_seconds_total counter",
            "# TYPE gadgetd_image_store_bytes gauge",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_cpu_seconds_total counter",
            "gadgetd_runs{state=\"running\"} 1\n",
        ],
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
fn busybox_named(dir: &TempDir, comm: impl AsRef<std::ffi::OsStr>) -> std::path::PathBuf {
    let path = dir.path().join(comm.as_ref());
    std::fs::copy("/bin/busybox", &path).expect("busybox-static is installed");
    path
}

/// Runs busybox applet `applet` under the unique command name `comm`
/// (comm is the file's name; busybox picks the applet from argv[0]).
fn busybox_cmd(
    dir: &TempDir,
    comm: impl AsRef<std::ffi::OsStr>,
    applet: &str,
) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(busybox_named(dir, comm));
    cmd.arg0(applet).stderr(std::process::Stdio::null());
    cmd
}

/// Nine failed openat calls from a process named `comm`.
fn nine_opens(dir: &TempDir, comm: impl AsRef<std::ffi::OsStr>) {
    let script =
        "i=0; while [ $i -lt 9 ]; do true < /nonexistent-gadgetd-metrics; i=$((i+1)); done; true";
    let status = busybox_cmd(dir, comm, "sh")
        .args(["-c", script])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `run OBJECT --detach --metrics --name NAME` through `ctl`; returns the run id.
fn detach_with_metrics(
    ctl: impl Fn(&[&str]) -> std::process::Output,
    object: &std::path::Path,
    name: &str,
) -> String {
    let out = ctl(&["run", s(object), "--detach", "--metrics", "--name", name]);
    let id = ok(&out, "run --detach --metrics").trim().to_string();
    assert_eq!(id.len(), 16, "run --detach prints the run id, got {id:?}");
    id
}

/// Starts `gadget` detached with --metrics; returns the run id.
fn run_with_metrics(agent: &Agent, gadget_name: &str) -> String {
    let id = detach_with_metrics(|a| agent.ctl(a), &gadget(gadget_name), gadget_name);
    agent.wait_running(1);
    id
}

#[test]
fn prometheus_counts_a_gadgets_counter_per_label() {
    require_root();
    let bus = Bus::start();
    let (agent, addr) = agent_with_metrics(&bus);
    let id = run_with_metrics(&agent, "metrics_syscalls");
    let dir = TempDir::new("metrics-bb");
    let comm = format!("m{}", random_hex(6));
    nine_opens(&dir, &comm);

    let text = prometheus::scrape_clean(addr);
    prometheus::assert_has(&text, &["# TYPE syscalls_calls_total counter\n"]);

    let prom = Prometheus::start(addr);
    prom.wait_value(
        &format!("syscalls_calls_total{{run=\"{id}\",gadget=\"metrics_syscalls\",comm=\"{comm}\",syscall_name=\"openat\"}}"),
        9.0,
        Duration::from_secs(20),
    );
    ok(&agent.ctl(&["stop", &id]), "stop");
}

#[test]
fn prometheus_reads_a_gadgets_gauge() {
    require_root();
    let bus = Bus::start();
    let (agent, addr) = agent_with_metrics(&bus);
    let id = run_with_metrics(&agent, "metrics_inflight");
    let dir = TempDir::new("metrics-bb");
    let comm = format!("g{}", random_hex(6));
    let mut sleeper = busybox_cmd(&dir, &comm, "sleep").arg("60").spawn().unwrap();

    let prom = Prometheus::start(addr);
    let q = format!("sum(syscalls_inflight_calls{{run=\"{id}\",comm=\"{comm}\"}})");
    // One call in progress: the sleep.
    prom.wait_value(&q, 1.0, Duration::from_secs(20));
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    // Killed, the sleep returned (interrupted); exit_group is never counted.
    prom.wait_value(&q, 0.0, Duration::from_secs(20));
    let text = prometheus::get(addr, "/metrics", None).unwrap().text();
    prometheus::assert_has(&text, &["# TYPE syscalls_inflight_calls gauge\n"]);
    let (passed, report) = prometheus::promtool_check(&text);
    assert!(
        passed && report.is_empty(),
        "promtool check metrics:\n{report}"
    );
    ok(&agent.ctl(&["stop", &id]), "stop");
}

#[test]
fn prometheus_reads_a_gadgets_histogram() {
    require_root();
    let bus = Bus::start();
    let (agent, addr) = agent_with_metrics(&bus);
    let id = run_with_metrics(&agent, "metrics_openat_latency");
    let dir = TempDir::new("metrics-bb");
    let comm = format!("h{}", random_hex(6));
    nine_opens(&dir, &comm);

    let text = prometheus::scrape_clean(addr);
    prometheus::assert_has(&text, &["# TYPE openat_latency histogram\n"]);
    // Cumulative buckets: never decreasing, +Inf equals _count.
    let mine: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("openat_latency_bucket") && l.contains(&format!("comm=\"{comm}\""))
        })
        .collect();
    let counts: Vec<u64> = mine
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 28, "27 slots and +Inf: {mine:?}");
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "not cumulative: {counts:?}"
    );
    assert_eq!(counts.last(), Some(&9));
    assert!(mine.last().unwrap().contains("le=\"+Inf\""), "{mine:?}");

    let prom = Prometheus::start(addr);
    let sel = format!("{{run=\"{id}\",gadget=\"metrics_openat_latency\",comm=\"{comm}\"}}");
    prom.wait_value(
        &format!("openat_latency_count{sel}"),
        9.0,
        Duration::from_secs(20),
    );
    prom.wait_value(
        &format!("openat_latency_bucket{{run=\"{id}\",comm=\"{comm}\",le=\"+Inf\"}}"),
        9.0,
        Duration::from_secs(5),
    );
    ok(&agent.ctl(&["stop", &id]), "stop");
}

#[test]
fn a_histogram_type_on_a_single_number_is_a_load_error() {
    require_root();
    let bus = Bus::start();
    let (agent, _addr) = agent_with_metrics(&bus);
    let obj = test_object("bad_metrics");
    let out = agent.ctl(&["run", s(&obj), "--detach", "--metrics"]);
    let err = fails(&out, "run of a metric map with a one-number histogram");
    assert!(
        err.contains("bad_hist: latency")
            && err.contains("a histogram needs an array of buckets")
            && err.contains("`latency` is a 4-byte integer"),
        "{err}"
    );
}

#[test]
fn label_values_with_quotes_newlines_and_invalid_utf8_are_escaped() {
    use std::os::unix::ffi::OsStrExt;
    require_root();
    let bus = Bus::start();
    let (agent, addr) = agent_with_metrics(&bus);
    let id = run_with_metrics(&agent, "metrics_syscalls");
    let dir = TempDir::new("metrics-bb");
    let tag = random_hex(3);
    // comm: e"\<newline><0xff>TAG (the file's name, at most 15 bytes).
    let mut name = b"e\"\\\n\xff".to_vec();
    name.extend_from_slice(tag.as_bytes());
    nine_opens(&dir, std::ffi::OsStr::from_bytes(&name));

    let text = prometheus::scrape_clean(addr);
    let mine: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("syscalls_calls_total") && l.contains(&tag) && l.contains("\"openat\"")
        })
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    // The quote, backslash and newline escaped; the invalid byte as in events.
    assert!(mine[0].contains(r#"comm="e\"\\\\\n"#), "{}", mine[0]);
    assert!(mine[0].ends_with(" 9"), "{}", mine[0]);

    let prom = Prometheus::start(addr);
    prom.wait_value(
        &format!(
            "syscalls_calls_total{{run=\"{id}\",comm=~\"(?s)e.*{tag}\",syscall_name=\"openat\"}}"
        ),
        9.0,
        Duration::from_secs(20),
    );
}

#[test]
fn a_scrape_during_run_stop_is_whole() {
    require_root();
    let bus = Bus::start();
    let (agent, addr) = agent_with_metrics(&bus);
    let gadget = gadget("metrics_syscalls");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(detach_with_metrics(
            |a| agent.ctl(a),
            &gadget,
            &format!("stop{i}"),
        ));
    }
    agent.wait_running(3);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut scrapes = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || scrapes < 5 {
                let r = prometheus::get(addr, "/metrics", Some("application/openmetrics-text"))
                    .unwrap();
                assert_eq!(r.status, 200);
                let len: usize = r.header("content-length").unwrap().parse().unwrap();
                assert_eq!(len, r.body.len(), "short body");
                let text = r.text();
                assert!(
                    text.ends_with("# EOF\n"),
                    "half an exposition: {}",
                    &text[text.len().saturating_sub(300)..]
                );
                for l in text.lines().filter(|l| !l.starts_with('#')) {
                    let value = l.rsplit(' ').next().unwrap();
                    assert!(value.parse::<f64>().is_ok(), "broken sample line: {l}");
                }
                scrapes += 1;
            }
            scrapes
        })
    };
    for id in &ids {
        ok(&agent.ctl(&["stop", id]), "stop");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let scrapes = scraper.join().expect("every scrape was whole");
    assert!(scrapes >= 5, "{scrapes} scrapes");
    // Stopped runs export no gadget metrics any more (their maps are released).
    let text = prometheus::get(addr, "/metrics", None).unwrap().text();
    assert!(
        !text.contains("syscalls_calls_total{"),
        "stopped runs still export"
    );
    assert!(
        text.contains("gadgetd_runs{state=\"stopped\"} 3\n"),
        "{text}"
    );
}

/// `metrics_annotated.o` next to a gadget.yaml of `yaml`, in `dir`.
fn annotated_gadget(dir: &TempDir, yaml: &str) -> std::path::PathBuf {
    let obj = dir.path().join("metrics_annotated.o");
    std::fs::copy(test_object("metrics_annotated"), &obj).unwrap();
    std::fs::write(dir.path().join("metrics_annotated.yaml"), yaml).unwrap();
    obj
}

const ANNOTATED_YAML: &str = "name: metrics_annotated
datasources:
  annot:
    annotations:
      metrics.collect: true
    fields:
      calls:
        annotations:
          metrics.type: counter
      size:
        annotations:
          metrics.type: gauge
          metrics.unit: bytes
  getpids:
    annotations:
      metrics.collect: true
  getpid_ordinals:
    fields:
      bucket:
        annotations:
          metrics.type: bucket
          metrics.buckets: exp2
          metrics.bucket_max: 5
";

#[test]
fn gadget_yaml_annotations_and_plain_integer_values_are_metrics() {
    require_root();
    let bus = Bus::start();
    let (agent, addr) = agent_with_metrics(&bus);
    let dir = TempDir::new("metrics-annot");
    let obj = annotated_gadget(&dir, ANNOTATED_YAML);
    // Everything that asks for this process's pid (temporary directories
    // do) happens before the run starts: the run sees only the 11 below.
    let me = std::process::id();
    let prom = Prometheus::start(addr);
    let id = detach_with_metrics(|a| agent.ctl(a), &obj, "annot");
    agent.wait_running(1);
    for _ in 0..11 {
        // SAFETY: getpid has no preconditions (and glibc does not cache it).
        unsafe { libc::getpid() };
    }
    let text = prometheus::scrape_clean(addr);
    prometheus::assert_has(
        &text,
        &[
            "# TYPE annot_calls_total counter\n",
            "# TYPE annot_size_bytes gauge\n",
            "# TYPE getpids_total counter\n",
            "# TYPE getpid_ordinals histogram\n",
        ],
    );
    // Not a metric: `last` is a string nobody annotated.
    assert!(!text.contains("annot_last"), "{text}");
    assert!(
        text.contains(&format!(
            "getpids_total{{run=\"{id}\",gadget=\"metrics_annotated\",pid=\"{me}\"}} 11\n"
        )),
        "{text}"
    );

    let sel = format!("{{run=\"{id}\",gadget=\"metrics_annotated\",pid=\"{me}\"}}");
    prom.wait_value(
        &format!("annot_calls_total{sel}"),
        11.0,
        Duration::from_secs(20),
    );
    prom.wait_value(
        &format!("annot_size_bytes{sel}"),
        11.0 * 4096.0,
        Duration::from_secs(5),
    );
    prom.wait_value(&format!("getpids_total{sel}"), 11.0, Duration::from_secs(5));
    // The n-th call is in bucket ceil(log2(n)), whose bound is 2^i: the
    // cumulative bucket le=2^i holds exactly min(2^i, 11) calls. (Scraped
    // as OpenMetrics, `le` is stored in its float form.)
    for (le, n) in [
        ("1.0", 1.0),
        ("2.0", 2.0),
        ("4.0", 4.0),
        ("8.0", 8.0),
        ("16.0", 11.0),
        ("32.0", 11.0),
        ("+Inf", 11.0),
    ] {
        let q = format!("getpid_ordinals_bucket{{run=\"{id}\",pid=\"{me}\",le=\"{le}\"}}");
        prom.wait_value(&q, n, Duration::from_secs(5));
    }
    prom.wait_value(
        &format!("getpid_ordinals_count{sel}"),
        11.0,
        Duration::from_secs(5),
    );
    ok(&agent.ctl(&["stop", &id]), "stop");
}

#[test]
fn a_metrics_annotation_on_a_field_that_is_not_a_number_is_a_load_error() {
    require_root();
    let bus = Bus::start();
    let (agent, _addr) = agent_with_metrics(&bus);
    let cases = [
        (
            "fields:\n      last:\n        annotations:\n          metrics.type: counter\n",
            "metrics.type counter needs a number, but `last` is an array of 16",
        ),
        (
            "fields:\n      comm:\n        annotations:\n          metrics.type: gauge\n",
            "datasources.annot.fields.comm: metrics.type gauge on a key field",
        ),
        (
            "fields:\n      calls:\n        annotations:\n          metrics.type: histogram\n",
            "a histogram needs an array of buckets",
        ),
        (
            "fields:\n      calls:\n        annotations:\n          metrics.type: summary\n",
            "datasources.annot.fields.calls: metrics.type `summary` is not counter, gauge, histogram, key or bucket",
        ),
        (
            "annotations:\n      metrics.collect: maybe\n",
            "datasources.annot.annotations.metrics.collect: `maybe` is not true or false",
        ),
        (
            "fields:\n      nosuch:\n        annotations:\n          metrics.type: counter\n",
            "datasources.annot.fields.nosuch: names no member of the map's key or value",
        ),
    ];
    for (i, (fragment, expected)) in cases.iter().enumerate() {
        let dir = TempDir::new(&format!("metrics-bad{i}"));
        let yaml = format!("name: metrics_annotated\ndatasources:\n  annot:\n    {fragment}");
        let obj = annotated_gadget(&dir, &yaml);
        let out = agent.ctl(&["run", s(&obj), "--detach", "--metrics"]);
        let err = fails(&out, &format!("run with {yaml}"));
        assert!(
            err.contains(expected),
            "case {i}: expected `{expected}` in: {err}"
        );
    }
}

#[test]
fn a_restored_run_exports_its_metrics_again() {
    require_root();
    let bus = Bus::start();
    let addr = prometheus::free_addr();
    let addr_arg = addr.to_string();
    let mut svc = gadgetd_tests::system::Service::new(&bus, &["--metrics-listen", &addr_arg]);
    svc.start();
    let id = detach_with_metrics(|a| svc.ctl(a), &gadget("metrics_syscalls"), "kept");
    // A crash: the run comes back from the state database, with --metrics.
    svc.kill9();
    svc.start();
    assert!(svc.log().contains("detached run restored"), "{}", svc.log());
    let dir = TempDir::new("metrics-bb");
    let comm = format!("r{}", random_hex(6));
    nine_opens(&dir, &comm);
    let want =
        format!("syscalls_calls_total{{run=\"{id}\",gadget=\"metrics_syscalls\",comm=\"{comm}\",");
    let line = prometheus::get(addr, "/metrics", None)
        .unwrap()
        .text()
        .lines()
        .find(|l| l.starts_with(&want) && l.contains("syscall_name=\"openat\""))
        .map(str::to_string);
    assert!(
        line.as_deref().is_some_and(|l| l.ends_with(" 9")),
        "{line:?}"
    );
    ok(&svc.ctl(&["stop", &id]), "stop");
}

/// The ids of the BPF maps this process holds descriptors of, one entry
/// per descriptor (`/proc/self/fdinfo`'s `map_id`).
fn own_map_fds() -> Vec<u32> {
    let mut ids = Vec::new();
    for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let is_map = std::fs::read_link(fd.path())
            .is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf-map");
        let info = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ));
        if let (true, Ok(info)) = (is_map, info) {
            ids.extend(
                info.lines()
                    .find_map(|l| l.strip_prefix("map_id:"))
                    .and_then(|v| v.trim().parse::<u32>().ok()),
            );
        }
    }
    ids.sort_unstable();
    ids
}

/// A run's metric maps are found and opened only when first read: a run
/// whose metrics nobody exports (no `--metrics`) opens none. Gadgets with
/// a counter map, a histogram map, a gauge map, and none.
#[test]
fn a_runs_metric_maps_are_opened_only_when_read() {
    require_root();
    // The run's pollers are tokio timers.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    for (name, maps) in [
        ("metrics_syscalls", &["syscall_counts"][..]),
        ("metrics_openat_latency", &["openat_latency"][..]),
        ("metrics_inflight", &["inflight_calls"][..]),
        ("trace_open", &[][..]),
    ] {
        let object = gadget(name);
        let yaml = std::fs::read_to_string(object.with_extension("yaml")).unwrap();
        let g = gadgetd_runtime::Gadget::from_object(std::fs::read(&object).unwrap(), Some(&yaml))
            .unwrap();
        let running = g.start(&gadgetd_runtime::RunOptions::default()).unwrap();
        let metrics = running.metrics();
        let started = own_map_fds();
        assert!(!metrics.maps_opened(), "{name}: opened at start");
        let opened: Vec<&str> = metrics.maps().iter().map(|m| m.spec.map.as_str()).collect();
        assert_eq!(opened, maps, "{name}");
        assert!(metrics.maps_opened());
        // One more descriptor per metric map, of a map the run already had.
        let mut added = own_map_fds();
        for id in &started {
            let at = added.iter().position(|a| a == id).unwrap();
            added.remove(at);
        }
        assert_eq!(added.len(), maps.len(), "{name}: new map fds {added:?}");
        assert!(added.iter().all(|id| started.contains(id)), "{name}");
        // A second read opens nothing more.
        assert_eq!(metrics.maps().len(), maps.len());
        assert_eq!(own_map_fds().len(), started.len() + maps.len(), "{name}");
    }
}
