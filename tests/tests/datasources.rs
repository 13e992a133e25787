//! Gadgets with several data sources (issue 13 item 1): one run streams a
//! tracer, a map iterator and a histogram of tests/bpf/multi_source.bpf.c at
//! once; every event and row says its source; the stream header,
//! `DescribeObject` and the end line describe each source. The test makes
//! the activity itself (getpriority(2) with `who` values it chooses).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use gadgetd::runtime::Gadget;
use gadgetd::testing::{Capture, GadgetTest};
use gadgetd_dbus::stream::{self, Control, Line};
use gadgetd_tests::*;
use serde_json::{Value, json};

/// `who` values the gadget counts start here (WHO_BASE in the gadget).
const WHO_BASE: u32 = 0x4000_0000;
/// (who, calls): what [`make_calls`] does.
const CALLS: [(u32, u64); 2] = [(WHO_BASE + 1, 3), (WHO_BASE + 2, 5)];

/// getpriority(PRIO_PROCESS, who) as [`CALLS`] says, from this process.
fn make_calls() {
    for (who, n) in CALLS {
        for _ in 0..n {
            // No such process: ESRCH, but the tracepoint saw the call.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, who) };
        }
    }
}

/// Runs `test` while this process makes [`CALLS`], `after` the start.
fn trace_calls(test: &GadgetTest, after: Duration) -> Capture {
    test.trace(|| {
        std::thread::sleep(after);
        make_calls();
    })
    .unwrap()
}

fn multi_source() -> Gadget {
    Gadget::from_object(std::fs::read(test_object("multi_source")).unwrap(), None).unwrap()
}

#[test]
fn every_data_source_is_found_in_the_objects_order_with_its_own_fields() {
    let g = multi_source();
    let infos = g.datasource_infos();
    let shape: Vec<(&str, &str)> = infos
        .iter()
        .map(|d| (d.name.as_str(), d.kind.as_str()))
        .collect();
    assert_eq!(
        shape,
        [
            ("calls", "tracer"),
            ("totals", "topper"),
            ("whos", "profiler")
        ]
    );
    let names =
        |i: usize| -> Vec<&str> { infos[i].fields.iter().map(|f| f.name.as_str()).collect() };
    assert_eq!(names(0), ["pid", "who", "which"]);
    assert_eq!(names(1), ["who", "calls"]);
    assert_eq!(names(2), ["histogram", "unit", "scale", "total", "buckets"]);
    // The first source is what clients that predate data sources see.
    assert_eq!(g.fields(), infos[0].fields);
    assert_eq!(g.kind().name(), "tracer");
    assert_eq!(g.name(), "calls");
}

#[test]
fn gadget_yaml_orders_the_sources_and_annotates_each_ones_own_fields() {
    let yaml = r#"
datasources:
  whos:
  totals:
    fields:
      calls:
        annotations:
          description: getpriority calls of this who
          columns.width: 9
  calls:
    fields:
      who:
        annotations:
          description: the who argument
"#;
    let g = Gadget::from_object(
        std::fs::read(test_object("multi_source")).unwrap(),
        Some(yaml),
    )
    .unwrap();
    let infos = g.datasource_infos();
    let order: Vec<&str> = infos.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(order, ["whos", "totals", "calls"]);
    let field = |source: usize, name: &str| {
        infos[source]
            .fields
            .iter()
            .find(|f| f.name == name)
            .unwrap()
            .clone()
    };
    let calls = field(1, "calls");
    assert_eq!(
        (calls.description.as_str(), calls.width),
        ("getpriority calls of this who", 9)
    );
    // Each source's annotations stay its own: `who` of totals has none.
    assert_eq!(field(2, "who").description, "the who argument");
    assert_eq!(field(1, "who").description, "");
    // A field the source lacks is a warning in IG, but never reaches another source.
    assert_eq!(g.kind().name(), "profiler");
}

/// Sums a capture's `totals` rows per who, checking every row's source.
fn totals(tables: &[Vec<serde_json::Map<String, Value>>]) -> BTreeMap<u64, u64> {
    let mut sum = BTreeMap::new();
    for row in tables.iter().flatten() {
        assert_eq!(row["datasource"], "totals", "{row:?}");
        assert_eq!(row.len(), 3, "{row:?}");
        *sum.entry(row["who"].as_u64().unwrap()).or_default() += row["calls"].as_u64().unwrap();
    }
    sum
}

fn expected_totals() -> BTreeMap<u64, u64> {
    CALLS.iter().map(|&(w, n)| (w as u64, n)).collect()
}

#[test]
fn one_run_streams_every_source_with_its_own_values() {
    require_root();
    let mut test = GadgetTest::from_files(test_object("multi_source"), None)
        .unwrap()
        .param("targ_pid", std::process::id());
    test.options.interval = Some(Duration::from_millis(200));
    test.settle = Duration::from_millis(700);
    let capture = trace_calls(&test, Duration::from_millis(100));
    assert_eq!(capture.lost, 0);

    let me = std::process::id() as u64;
    let calls: Vec<&serde_json::Map<String, Value>> = capture
        .events
        .iter()
        .filter(|e| e["datasource"] == "calls")
        .collect();
    let mut whos: Vec<u64> = calls.iter().map(|e| e["who"].as_u64().unwrap()).collect();
    whos.sort();
    let mut want: Vec<u64> = CALLS
        .iter()
        .flat_map(|&(w, n)| std::iter::repeat_n(w as u64, n as usize))
        .collect();
    want.sort();
    assert_eq!(whos, want, "{:?}", capture.events);
    for e in &calls {
        assert_eq!(
            Value::Object((*e).clone()),
            json!({"datasource": "calls", "pid": me, "who": e["who"], "which": 0})
        );
    }

    assert_eq!(totals(&capture.tables), expected_totals());

    // Histograms every interval and at the end, each cleared when read.
    let hists: Vec<_> = capture
        .events
        .iter()
        .filter(|e| e["datasource"] == "whos")
        .collect();
    assert!(!hists.is_empty(), "{:?}", capture.events);
    let mut slots: BTreeMap<u64, u64> = BTreeMap::new();
    for h in &hists {
        assert_eq!(
            (&h["histogram"], &h["unit"]),
            (&json!("whos"), &json!("calls"))
        );
        for b in h["buckets"].as_array().unwrap() {
            *slots.entry(b["start"].as_u64().unwrap()).or_default() += b["count"].as_u64().unwrap();
        }
    }
    let total: u64 = hists.iter().map(|h| h["total"].as_u64().unwrap()).sum();
    assert_eq!(total, 8);
    assert_eq!(
        (slots.get(&1), slots.get(&2)),
        (Some(&3), Some(&5)),
        "{slots:?}"
    );
    // Nothing else: every event is one of the two event sources.
    assert_eq!(calls.len() + hists.len(), capture.events.len());
}

#[test]
fn a_snapshot_beside_a_tracer_comes_once_and_the_run_goes_on() {
    require_root();
    let mut test = GadgetTest::from_files(test_object("iter_and_tracer"), None)
        .unwrap()
        .param("targ_pid", std::process::id());
    let names: Vec<(String, String)> = test
        .gadget
        .datasource_infos()
        .into_iter()
        .map(|d| (d.name, d.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("calls".to_string(), "tracer".to_string()),
            ("tasks".to_string(), "snapshotter".to_string())
        ]
    );
    test.settle = Duration::from_millis(500);
    // Well after the snapshot was handed out.
    let capture = trace_calls(&test, Duration::from_millis(300));
    let me = std::process::id();
    // The process's comm: its main thread's (this test runs in another thread).
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(
        capture.tables,
        [vec![
            json!({"datasource": "tasks", "pid": me, "comm": comm.trim_end()})
                .as_object()
                .unwrap()
                .clone()
        ]]
    );
    let whos: Vec<Value> = capture.events.iter().map(|e| e["who"].clone()).collect();
    let want: Vec<Value> = CALLS
        .iter()
        .flat_map(|&(w, n)| std::iter::repeat_n(json!(w), n as usize))
        .collect();
    assert_eq!(whos, want);
    assert!(
        capture
            .events
            .iter()
            .all(|e| e["datasource"] == "calls" && e["pid"] == me)
    );
}

/// RunObject on a private bus: the raw stream, as any client reads it.
#[test]
fn the_stream_and_describe_object_name_every_source_and_count_each() {
    require_root();
    let bus = Bus::start();
    let _agent = Agent::start(&bus);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (description, fd) = rt.block_on(async {
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        let file = std::fs::File::open(test_object("multi_source")).unwrap();
        let gadgets = gadgetd_dbus::gadgets::GadgetsProxy::new(&conn)
            .await
            .unwrap();
        let description = gadgets
            .describe_object(
                std::os::fd::AsFd::as_fd(&file).into(),
                "",
                Default::default(),
            )
            .await
            .unwrap();
        let mgr = gadgetd_dbus::proxy::ManagerProxy::new(&conn).await.unwrap();
        let me = std::process::id().to_string();
        let params = [("targ_pid", me.as_str())].into_iter().collect();
        let options = [
            ("timeout-ms", zbus::zvariant::Value::U64(2500)),
            ("interval-ms", zbus::zvariant::Value::U64(300)),
        ]
        .into_iter()
        .collect();
        let (_, fd) = mgr
            .run_object(std::os::fd::AsFd::as_fd(&file).into(), "", params, options)
            .await
            .unwrap();
        (description, fd)
    });
    let description: Value = serde_json::from_str(&description).unwrap();
    let described: Vec<(&str, &str)> = description["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        described,
        [
            ("calls", "tracer"),
            ("totals", "topper"),
            ("whos", "profiler")
        ]
    );
    assert_eq!(description["kind"], "tracer");

    let worker = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(500));
        make_calls();
    });
    let reader = BufReader::new(std::fs::File::from(std::os::fd::OwnedFd::from(fd)));
    let mut lines = reader.split(b'\n').map(|l| l.unwrap());
    let Line::Control(Control::Header(header)) = stream::classify(&lines.next().unwrap()).unwrap()
    else {
        panic!("the first line is not the header")
    };
    let names: Vec<&str> = header.datasources.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["calls", "totals", "whos"]);
    assert_eq!(header.fields, header.datasources[0].fields);
    assert_eq!(header.datasources[1].fields[1].name, "calls");

    let (mut events, mut tables, mut end) = (Vec::new(), Vec::new(), None);
    for line in lines {
        match stream::classify(&line).unwrap() {
            Line::Event(e) => {
                let v: Value = serde_json::from_slice(e).unwrap();
                match v {
                    Value::Array(rows) => tables.push(
                        rows.into_iter()
                            .map(|r| r.as_object().unwrap().clone())
                            .collect::<Vec<_>>(),
                    ),
                    Value::Object(o) => events.push(o),
                    other => panic!("{other}"),
                }
            }
            Line::Control(Control::End(e)) => end = Some(e),
            Line::Control(other) => panic!("unexpected {other:?}"),
        }
    }
    worker.join().unwrap();
    let end = end.expect("an end line");
    assert_eq!(end.reason, "timeout");
    assert_eq!(totals(&tables), expected_totals());
    let calls = events.iter().filter(|e| e["datasource"] == "calls").count();
    let hists = events.iter().filter(|e| e["datasource"] == "whos").count();
    assert_eq!(calls, 8);
    assert_eq!(calls + hists, events.len(), "{events:?}");
    let rows: usize = tables.iter().map(Vec::len).sum();
    let counts: Vec<(&str, u64, u64)> = end
        .datasources
        .iter()
        .map(|c| (c.name.as_str(), c.events_seen, c.events_lost))
        .collect();
    assert_eq!(
        counts,
        [
            ("calls", 8, 0),
            ("totals", rows as u64, 0),
            ("whos", hists as u64, 0)
        ]
    );
    assert_eq!(end.events_seen, 8 + rows as u64 + hists as u64);
    assert_eq!(end.events_lost, 0);
}

/// `gadgetctl run OBJECT ARGS` while this process makes the calls.
fn ctl_run(agent: &Agent, args: &[&str]) -> std::process::Output {
    let obj = test_object("multi_source");
    let me = std::process::id().to_string();
    let mut all = vec![
        "run",
        obj.to_str().unwrap(),
        "--targ_pid",
        &me,
        "--timeout",
        "2500ms",
        "--interval",
        "300ms",
    ];
    all.extend_from_slice(args);
    let client = agent.ctl_spawn(&all);
    // Running means attached: the calls are seen, well before the timeout.
    agent.wait_running(1);
    make_calls();
    let out = client.wait_with_output().unwrap();
    agent.wait_running(0);
    out
}

/// The blocks of a columns output: (label, title line, rows split at blanks).
fn blocks(text: &str) -> Vec<(String, String, Vec<Vec<String>>)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines().filter(|l| !l.is_empty());
        let Some(label) = lines.next() else { continue };
        let titles = lines.next().unwrap_or_default().to_string();
        let rows = lines
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect();
        out.push((label.to_string(), titles, rows));
    }
    out
}

#[test]
fn gadgetctl_prints_a_labelled_table_per_source_and_json_names_each() {
    require_root();
    let bus = Bus::start();
    let agent = Agent::start(&bus);

    let out = ctl_run(&agent, &[]);
    let text = ok(&out, "run multi_source in columns");
    let blocks = blocks(&text);
    let mut calls = BTreeMap::new();
    let mut sums = BTreeMap::new();
    let mut hists = 0;
    for (label, titles, rows) in &blocks {
        let words: Vec<&str> = titles.split_whitespace().collect();
        match label.as_str() {
            "[calls]" => {
                assert_eq!(words, ["PID", "WHO", "WHICH"], "{text}");
                for r in rows {
                    assert_eq!(
                        (r[0].as_str(), r[2].as_str()),
                        (std::process::id().to_string().as_str(), "0"),
                        "{text}"
                    );
                    *calls.entry(r[1].parse::<u64>().unwrap()).or_insert(0u64) += 1;
                }
            }
            "[totals]" => {
                assert_eq!(words, ["WHO", "CALLS"], "{text}");
                for r in rows {
                    *sums.entry(r[0].parse::<u64>().unwrap()).or_insert(0u64) +=
                        r[1].parse::<u64>().unwrap();
                }
            }
            "[whos]" => hists += 1,
            other => panic!("unexpected block {other:?} in:\n{text}"),
        }
    }
    assert_eq!(calls, expected_totals(), "{text}");
    assert_eq!(sums, expected_totals(), "{text}");
    assert!(hists >= 1, "{text}");

    // JSON: every line names its source; --fields with a source prefix.
    let out = ctl_run(
        &agent,
        &["-o", "json", "--fields", "calls:who,totals:calls"],
    );
    ok(&out, "run multi_source -o json");
    let mut seen = BTreeMap::new();
    for v in json_lines(&out) {
        let items = match v {
            Value::Array(rows) => rows,
            other => vec![other],
        };
        for item in items {
            let source = item["datasource"].as_str().unwrap().to_string();
            let keys: Vec<&str> = item
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            match source.as_str() {
                "calls" => assert_eq!(keys, ["datasource", "who"]),
                "totals" => assert_eq!(keys, ["calls", "datasource"]),
                "whos" => assert!(keys.contains(&"buckets"), "{keys:?}"),
                other => panic!("unknown source {other}"),
            }
            *seen.entry(source).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.get("calls"), Some(&8), "{seen:?}");
    assert!(
        seen.contains_key("totals") && seen.contains_key("whos"),
        "{seen:?}"
    );

    // --sort and --max-rows for one source: the busiest who only. The calls
    // take microseconds, so one interval's table holds both whos.
    let out = ctl_run(
        &agent,
        &[
            "-o",
            "json",
            "--sort",
            "totals:-calls",
            "--max-rows",
            "totals:1",
        ],
    );
    ok(
        &out,
        "run multi_source --sort totals:-calls --max-rows totals:1",
    );
    let tables: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|v| v.is_array())
        .collect();
    assert_eq!(
        tables,
        [json!([{"datasource": "totals", "who": WHO_BASE + 2, "calls": 5}])]
    );

    // Bad names say which sources and fields there are, before any event.
    let obj = test_object("multi_source");
    for (args, want) in [
        (
            vec!["--fields", "other:x"],
            "--fields `other:x`: no data source `other` in this gadget; its data sources: calls, totals, whos",
        ),
        (
            vec!["--filter", "totals:pid==1"],
            "data source `totals`: --filter: no field `pid` in this gadget",
        ),
        (
            vec!["--sort", "calls:who"],
            "parameter `sort`: `calls:who` names no data source that prints tables (`totals`)",
        ),
        (
            vec!["--max-rows", "whos:3"],
            "parameter `max-rows`: `whos:N` names no data source that prints tables (`totals`)",
        ),
        (
            vec!["--max-rows", "totals:many"],
            "`totals:many`: expected a row count N or SOURCE:N",
        ),
        (
            vec!["--interval", "2s,calls:1s"],
            "parameter `interval`: `calls:DURATION` names no data source that prints every interval (map iterators, histograms: totals, whos)",
        ),
        (
            vec!["--interval", "totals:soon"],
            "`totals:soon`: expected a duration (500ms, 2s) or SOURCE:DURATION",
        ),
    ] {
        let mut all = vec!["run", obj.to_str().unwrap(), "--timeout", "1s"];
        all.extend_from_slice(&args);
        let err = fails(&agent.ctl(&all), "a bad data source name");
        assert!(err.contains(want), "{args:?}: {err}");
    }

    // --help lists every source with its fields.
    let help = ok(
        &agent.ctl(&["run", obj.to_str().unwrap(), "--help"]),
        "help",
    );
    for want in [
        "Fields of data source calls (tracer; --fields calls:FIELD):",
        "Fields of data source totals (topper; --fields totals:FIELD):",
        "Fields of data source whos (profiler; --fields whos:FIELD):",
    ] {
        assert!(help.contains(want), "{help}");
    }
}

/// Runs multi_source for 1.2 s with `options`, making [`CALLS`] every 50 ms:
/// (tables of `totals`, histograms of `whos`) it printed.
fn periods_with(set: impl FnOnce(&mut gadgetd::runtime::RunOptions)) -> (usize, usize) {
    let mut test = GadgetTest::from_files(test_object("multi_source"), None)
        .unwrap()
        .param("targ_pid", std::process::id());
    set(&mut test.options);
    test.settle = Duration::from_millis(100);
    let capture = test
        .trace(|| {
            let end = std::time::Instant::now() + Duration::from_millis(1200);
            while std::time::Instant::now() < end {
                make_calls();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .unwrap();
    let tables = capture
        .tables
        .iter()
        .filter(|t| t.iter().any(|r| r["datasource"] == "totals"))
        .count();
    let hists = capture
        .events
        .iter()
        .filter(|e| e["datasource"] == "whos")
        .count();
    (tables, hists)
}

#[test]
fn an_interval_can_name_its_data_source() {
    require_root();
    let long = Duration::from_secs(60);
    let short = Duration::from_millis(150);
    // The map iterator every 150 ms; the histogram at the end only (60 s).
    let (tables, hists) = periods_with(|o| {
        o.interval = Some(long);
        o.interval_per_source.insert("totals".into(), short);
    });
    assert!(tables >= 4, "{tables} tables in 1.2 s at 150 ms");
    assert_eq!(hists, 1, "the histogram prints at the end only");
    // The other way round: no table in 1.2 s at 60 s, histograms every 150 ms.
    let (tables, hists) = periods_with(|o| {
        o.interval = Some(long);
        o.interval_per_source.insert("whos".into(), short);
    });
    assert_eq!(tables, 0);
    assert!(
        hists >= 5,
        "{hists} histograms in 1.2 s at 150 ms, and the last"
    );
    // A tracer prints no intervals: naming one is an error listing those that do.
    let err = GadgetTest::from_files(test_object("multi_source"), None)
        .unwrap()
        .gadget
        .start(&gadgetd::runtime::RunOptions {
            interval_per_source: [("calls".to_string(), short)].into(),
            ..Default::default()
        })
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "parameter `interval`: `calls:DURATION` names no data source that prints every interval (map iterators, histograms: totals, whos)"
    );
}
