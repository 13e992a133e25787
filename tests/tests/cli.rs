//! gadgetctl as people who live in a terminal use it (issue 18): flags in
//! any order, output shaping, escaped untrusted strings, run lifecycle,
//! errors that lead somewhere. A real agent on a private bus, real eBPF.

use std::process::Output;
use std::time::Duration;

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
            "--failed",
            "--timeout",
            "2s",
            "-o",
            "json",
            "--pid",
            &me,
        ],
        vec![
            "run",
            "--timeout=2s",
            s(&obj),
            "--pid",
            &me,
            "-ojson",
            "--failed",
        ],
        vec![
            "run",
            "-o",
            "json",
            s(&obj),
            "--pid",
            &me,
            "--failed=true",
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
        // Only our failed open: --failed and --pid reached the gadget.
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
        assert_eq!(ours[0]["error_raw"], libc::ENOENT);
        assert!(
            events.iter().all(|e| e["proc.pid"] == std::process::id()),
            "{events:?}"
        );
    }

    // A misspelled parameter names itself, the parameters, and the rule.
    let out = agent.ctl(&["run", s(&obj), "--faild", "--timeout", "1s"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("`--faild` is neither an option of `gadgetctl run` nor a parameter of gadget")
            && err.contains("its parameters: --pid, --tid, --uid, --gid, --comm, --failed")
            && err.contains("options and parameters may come in any order"),
        "{err}"
    );
}

/// Opens `path` from a thread whose comm is `comm` (at most 15 bytes).
fn open_as(comm: &str, path: &std::path::Path) {
    let comm = std::ffi::CString::new(comm).unwrap();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        assert_eq!(unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) }, 0);
        open(&path);
    })
    .join()
    .unwrap();
}

/// Item 5: file names and comms with escape sequences, control and bidi
/// characters are printed escaped in columns, JSON, logs and `list`.
/// (Options before the gadget: this test is about escaping, not item 1.)
#[test]
fn untrusted_strings_never_reach_the_terminal_raw() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("escape");
    let me = std::process::id().to_string();
    let obj = gadget("trace_open");
    // Clear screen, a C1 CSI, a bidi override, a newline, a bell.
    let evil = dir.path().join("a\x1b[2Jb\u{9b}1mc\u{202e}d\ne\x07");
    let escaped = format!(
        "{}/a\\e[2Jb\\u{{009b}}1mc\\u{{202e}}d\\ne\\x07",
        s(dir.path())
    );
    let comm = "x\x1b]0;pwn\x07";
    let escaped_comm = "x\\e]0;pwn\\x07";
    let raw = |out: &[u8]| {
        let text = String::from_utf8_lossy(out);
        text.bytes().any(|b| b == 0x1b || b == 0x07 || b == 0x7f)
            || text
                .chars()
                .any(|c| matches!(c, '\u{80}'..='\u{9f}' | '\u{202e}'))
    };

    let out = run_during(
        &agent,
        &["run", "--timeout", "2s", s(&obj), "--pid", &me],
        || open_as(comm, &evil),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !raw(&out.stdout),
        "raw control characters in {:?}",
        stdout(&out)
    );
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains(escaped_comm))
        .unwrap_or_else(|| panic!("no escaped comm in {:?}", stdout(&out)))
        .to_string();
    assert!(
        line.ends_with(&escaped),
        "{line:?} should end with {escaped:?}"
    );

    // JSON: the same value, C1 and bidi as \u escapes.
    let out = run_during(
        &agent,
        &[
            "run",
            "--timeout",
            "2s",
            "-o",
            "json",
            s(&obj),
            "--pid",
            &me,
        ],
        || open_as(comm, &evil),
    );
    assert!(
        !raw(&out.stdout),
        "raw control characters in {:?}",
        stdout(&out)
    );
    let events = json_lines(&out);
    let ev = events
        .iter()
        .find(|e| e["fname"] == s(&evil))
        .unwrap_or_else(|| panic!("no event for {evil:?} in {events:?}"));
    assert_eq!(ev["proc.comm"], comm);

    // A detached run's logs and `list`, with a run name that carries escapes too.
    let name = "run\x1b[2J\u{9b}";
    let out = agent.ctl(&["run", "-d", "--name", name, s(&obj), "--pid", &me]);
    if out.status.success() {
        let id = stdout(&out).trim().to_string();
        agent.wait_running(1);
        open_as(comm, &evil);
        let list = agent.ctl(&["list"]);
        assert!(
            !raw(&list.stdout),
            "raw control characters in {:?}",
            stdout(&list)
        );
        assert!(
            stdout(&list).contains("run\\e[2J\\u{009b}"),
            "{}",
            stdout(&list)
        );
        wait_for("the logged event", Duration::from_secs(10), || {
            let logs = agent.ctl(&["logs", &id]);
            assert!(
                !raw(&logs.stdout),
                "raw control characters in {:?}",
                stdout(&logs)
            );
            stdout(&logs)
                .lines()
                .any(|l| l.contains(escaped_comm) && l.contains(&escaped))
        });
        assert!(agent.ctl(&["stop", &id]).status.success());
    } else {
        // The agent may refuse such a name; it must say so escaped.
        assert!(
            !raw(&out.stderr),
            "raw control characters in {:?}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("run\\e[2J\\u{009b}"),
            "{}",
            stderr(&out)
        );
    }
}

/// Issue 19: `-o json` prints runs of the agent's lines whole; among
/// thousands of plain events, a line with DEL, a C1 control, a bidi override
/// or a zero-width space comes out escaped exactly as `escape::json` escapes
/// it alone, printable non-ASCII stays as it is, and `--fields` (the parsing
/// path) escapes the same way.
#[test]
fn json_runs_escape_exactly_the_lines_that_need_it() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("jsonrun");
    let me = std::process::id().to_string();
    let obj = gadget("trace_open");
    let names = [
        ("del\x7fx", "del\\u007fx"),
        ("c1\u{9b}x", "c1\\u009bx"),
        ("bidi\u{202e}x", "bidi\\u202ex"),
        ("zw\u{200b}x", "zw\\u200bx"),
        ("\u{fc}\u{65e5}\u{672c}", "\u{fc}\u{65e5}\u{672c}"),
    ];
    const PLAIN: usize = 3000;
    const EVERY: usize = 600;
    let args = [
        "run",
        "--timeout",
        "3s",
        "-o",
        "json",
        s(&obj),
        "--pid",
        &me,
    ];
    let out = run_during(&agent, &args, || {
        for i in 0..PLAIN {
            open(&dir.path().join(format!("plain-{i}")));
            if i % EVERY == 0 {
                for (name, _) in names {
                    open(&dir.path().join(name));
                }
            }
        }
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let bad = |c: char| matches!(c, '\u{7f}'..='\u{9f}' | '\u{202e}' | '\u{200b}');
    assert!(!text.chars().any(bad), "raw characters in {text:?}");
    let ours: Vec<&str> = text.lines().filter(|l| l.contains(s(dir.path()))).collect();
    let plain = ours.iter().filter(|l| l.contains("/plain-")).count();
    assert_eq!(plain, PLAIN, "plain events");
    for (name, escaped) in names {
        let field = format!("\"fname\":\"{}/{escaped}\"", s(dir.path()));
        let lines: Vec<&&str> = ours.iter().filter(|l| l.contains(&field)).collect();
        assert_eq!(lines.len(), PLAIN / EVERY, "{field} in {ours:?}");
        for l in lines {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["fname"], s(&dir.path().join(name)));
        }
    }
    assert_eq!(ours.len(), PLAIN + names.len() * PLAIN / EVERY);

    // --fields parses each event and writes it again: the same escapes.
    let args = [
        "run",
        "--timeout",
        "2s",
        "-o",
        "json",
        "--fields",
        "fname",
        s(&obj),
        "--pid",
        &me,
    ];
    let out = run_during(&agent, &args, || {
        for (name, _) in names {
            open(&dir.path().join(name));
        }
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let ours: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| l.contains(s(dir.path())))
        .map(str::to_string)
        .collect();
    let want: Vec<String> = names
        .iter()
        .map(|(_, e)| format!("{{\"fname\":\"{}/{e}\"}}", s(dir.path())))
        .collect();
    assert_eq!(ours, want);
}

fn runs(agent: &Agent, all: bool) -> Vec<Value> {
    let args: &[&str] = if all {
        &["list", "-a", "-o", "json"]
    } else {
        &["list", "-o", "json"]
    };
    let out = agent.ctl(args);
    assert!(out.status.success(), "list: {}", stderr(&out));
    json_lines(&out)
}

fn state_of(agent: &Agent, name: &str) -> Option<String> {
    runs(agent, true)
        .into_iter()
        .find(|r| r["name"] == name)
        .map(|r| r["state"].as_str().unwrap().to_string())
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", stderr(out));
    stdout(out)
}

/// Item 7: `stop` returns once the programs are gone; stopping a stopped
/// run succeeds; `rm -f` stops and removes; `list -a` shows ended runs.
#[test]
fn stop_waits_rm_force_removes_list_all_shows_ended_runs() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let obj = gadget("trace_open");
    // Our pid: the runs see (nearly) no events, so the unread pipes never fill.
    let me = std::process::id().to_string();
    let before: Vec<u64> = loaded_programs().into_iter().map(|(id, _)| id).collect();

    // An attached run: when `stop` returns, its programs are unloaded.
    let mut client = agent.ctl_spawn(&["run", s(&obj), "--name", "attached", "--pid", &me]);
    agent.wait_running(1);
    let ours: Vec<u64> = loaded_programs()
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !before.contains(id))
        .collect();
    assert!(!ours.is_empty(), "the run loaded no programs");
    ok(&agent.ctl(&["stop", "attached"]), "stop");
    // Ended: stopped, or already gone from the list as attached runs go.
    assert_ne!(state_of(&agent, "attached").as_deref(), Some("running"));
    assert!(client.wait().unwrap().success());
    // The kernel frees released programs a moment later (deferred work).
    let stopped = std::time::Instant::now();
    wait_for(
        "the run's programs to be freed",
        Duration::from_secs(5),
        || {
            let loaded = loaded_programs();
            !loaded.iter().any(|(id, _)| ours.contains(id))
        },
    );
    eprintln!("programs freed {:?} after stop returned", stopped.elapsed());

    // Detached runs: stop twice, list hides it, list -a shows it, rm.
    let id = ok(
        &agent.ctl(&["run", s(&obj), "-d", "--name", "det"]),
        "run -d",
    )
    .trim()
    .to_string();
    agent.wait_running(1);
    assert_eq!(ok(&agent.ctl(&["stop", "det"]), "stop"), format!("{id}\n"));
    assert_eq!(state_of(&agent, "det").as_deref(), Some("stopped"));
    let again = agent.ctl(&["stop", "det"]);
    assert_eq!(ok(&again, "stop of a stopped run"), format!("{id}\n"));
    assert!(runs(&agent, false).iter().all(|r| r["name"] != "det"));
    let all = runs(&agent, true);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["id"], id.as_str());
    let table = ok(&agent.ctl(&["list", "-a"]), "list -a");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&id) && l.contains("stopped")),
        "{table}"
    );
    assert_eq!(
        ok(&agent.ctl(&["list"]), "list").lines().count(),
        1,
        "only titles"
    );
    ok(&agent.ctl(&["rm", "det"]), "rm");
    assert!(runs(&agent, true).is_empty());

    // rm of a live run names -f; rm -f stops and removes, attached or detached.
    let id = ok(
        &agent.ctl(&["run", s(&obj), "-d", "--name", "live"]),
        "run -d",
    )
    .trim()
    .to_string();
    agent.wait_running(1);
    let out = agent.ctl(&["rm", "live"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("run {id} is still running: stop it first (`gadgetctl stop {id}`), or use `gadgetctl rm -f {id}`")),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        ok(&agent.ctl(&["rm", "-f", "live"]), "rm -f"),
        format!("{id}\n")
    );
    let mut client = agent.ctl_spawn(&["run", s(&obj), "--name", "att2", "--pid", &me]);
    agent.wait_running(1);
    ok(&agent.ctl(&["rm", "--force", "att2"]), "rm -f attached");
    assert!(client.wait().unwrap().success());
    assert!(runs(&agent, true).is_empty(), "{:?}", runs(&agent, true));

    // Unknown runs name the way to find them.
    let out = agent.ctl(&["stop", "nosuchrun"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no run with id or name `nosuchrun` (see `gadgetctl list -a`)"),
        "{}",
        stderr(&out)
    );
}

fn fails_with(out: &Output, expected: &str) {
    assert!(!out.status.success(), "should fail: {}", stdout(out));
    assert!(
        stderr(out).contains(expected),
        "expected {expected:?} in: {}",
        stderr(out)
    );
}

/// Item 8: errors that say what is wrong and what was meant.
#[test]
fn errors_lead_somewhere() {
    let bus = Bus::start();
    let agent = Agent::start_with(&bus, &["--bundled-images", "/nonexistent/gadgets.tar"]);
    // A wrong --bundled-images path is logged.
    assert!(
        agent
            .log_text()
            .contains("--bundled-images: no bundled images imported")
            && agent.log_text().contains("/nonexistent/gadgets.tar"),
        "{}",
        agent.log_text()
    );

    // A misspelled bare name, against the local images, before any registry.
    let include = repo_root().join("include");
    for name in ["trace_open", "top_file"] {
        let dir = repo_root().join("gadgets").join(name);
        let out = agent.ctl(&["build", "--include", s(&include), "-t", name, s(&dir)]);
        ok(&out, "build");
    }
    for (typo, meant) in [
        ("trace_opne", "trace_open"),
        ("top_fil", "top_file"),
        ("trace_oepn", "trace_open"),
    ] {
        fails_with(
            &agent.ctl(&["run", typo, "--timeout", "1s"]),
            &format!("no gadget `{typo}`; did you mean `{meant}`?"),
        );
    }

    // A missing object file is "no such file", with the closest object.
    let missing = gadget("trace_open").with_file_name("trace_opne.o");
    fails_with(
        &agent.ctl(&["run", s(&missing)]),
        &format!(
            "no such file: {}; did you mean {}?",
            s(&missing),
            s(&gadget("trace_open"))
        ),
    );
    fails_with(
        &agent.ctl(&["run", "./nothing-here.o"]),
        "no such file: ./nothing-here.o",
    );
    fails_with(
        &agent.ctl(&["run", "/nothing/here"]),
        "no such file: /nothing/here",
    );

    // Connection errors say each cause once.
    for address in ["/nonexistent/gadgetd.sock", "unix:path=/nonexistent/bus"] {
        let out = ctl(address, &["list"]);
        let err = stderr(&out);
        assert!(!out.status.success());
        assert!(err.contains("cannot reach gadgetd on"), "{err}");
        assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    }
}

fn titles(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Item 2: --fields, --filter, -o yaml on tracers and snapshots; --sort and
/// --max-rows refused on a tracer; bad fields and rules named.
#[test]
fn fields_filters_and_yaml_shape_every_kind() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let dir = TempDir::new("shape");
    let me = std::process::id().to_string();
    let obj = gadget("trace_open");
    let a = dir.path().join("probe-a");
    let b = dir.path().join("probe-b");
    std::fs::write(&a, b"x").unwrap();
    let activity = || {
        open(&a);
        open(&b); // missing: ENOENT
    };
    let trace = |extra: &[&str]| {
        let mut args = vec!["run", s(&obj), "--pid", &me, "--timeout", "2s"];
        args.extend_from_slice(extra);
        let out = run_during(&agent, &args, activity);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        out
    };

    // Exactly these columns, in this order; then relative changes.
    let out = trace(&["--fields", "fname,error"]);
    assert_eq!(titles(&out), ["FNAME", "ERROR"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.split_whitespace().eq([s(&b), "ENOENT"])),
        "{}",
        stdout(&out)
    );
    let out = trace(&["--fields", "+flags,-proc.creds.uid,-proc.comm"]);
    let t = titles(&out);
    assert!(
        t.contains(&"FLAGS".to_string()) && t.contains(&"PROC.PID".to_string()),
        "{t:?}"
    );
    assert!(
        !t.contains(&"PROC.CREDS.UID".to_string()) && !t.contains(&"PROC.COMM".to_string()),
        "{t:?}"
    );

    // Filters: regex and numbers; only matching events, in every format.
    let out = trace(&[
        "--filter",
        "fname~probe-,error_raw>0",
        "--fields",
        "fname,error_raw,error",
        "-o",
        "json",
    ]);
    let events = json_lines(&out);
    assert_eq!(
        events,
        [serde_json::json!({"fname": s(&b), "error_raw": libc::ENOENT, "error": "ENOENT"})]
    );
    let out = trace(&[
        "--filter",
        "fname~probe-",
        "--filter",
        "error_raw==0",
        "-o",
        "yaml",
        "--fields",
        "fname,fd",
    ]);
    let text = stdout(&out);
    let docs: Vec<Value> = text
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{d:?}: {e}")))
        .collect();
    assert_eq!(docs.len(), 1, "{text}");
    assert_eq!(docs[0]["fname"], s(&a));
    assert!(docs[0]["fd"].as_i64().unwrap() > 2);
    let out = trace(&["--filter", "fname==", "-o", "json"]);
    assert!(
        json_lines(&out).is_empty(),
        "no event has an empty fname: {}",
        stdout(&out)
    );

    // A snapshot: filter and fields apply to its rows.
    let snap = gadget("snapshot_process");
    let rule = format!("pid=={me}");
    let out = agent.ctl(&[
        "run",
        s(&snap),
        "--filter",
        &rule,
        "--fields",
        "pid,comm",
        "-o",
        "json",
    ]);
    let tables = json_lines(&out);
    assert_eq!(tables.len(), 1, "{}", stderr(&out));
    let rows = tables[0].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["comm", "pid"]
    );
    assert_eq!(rows[0]["pid"].to_string(), me);
    let out = agent.ctl(&["run", s(&snap), "--filter", &rule, "--fields", "comm,pid"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].split_whitespace().eq(["COMM", "PID"]), "{text}");

    // --sort/--max-rows on a tracer: a clear error, not silence. The kind is
    // known from the stream's header, so the run starts; it ends as soon as
    // gadgetctl closes its stream, well before its timeout.
    for flag in [["--sort", "proc.pid"], ["--max-rows", "3"]] {
        let args = [
            "run",
            s(&obj),
            "--pid",
            &me,
            "--timeout",
            "60s",
            flag[0],
            flag[1],
        ];
        let out = agent.ctl(&args);
        agent.wait_running(0);
        fails_with(
            &out,
            &format!(
                "{} applies to toppers and snapshotters (tables); this gadget is a tracer",
                flag[0]
            ),
        );
    }

    // Bad fields and rules name themselves and the valid choices.
    let out = agent.ctl(&["run", s(&obj), "--fields", "fnmae,fd", "--timeout", "1s"]);
    fails_with(
        &out,
        "--fields: no field `fnmae` in this gadget; did you mean `fname`? its fields: ",
    );
    assert!(stderr(&out).contains("fname"), "{}", stderr(&out));
    let out = agent.ctl(&["run", s(&obj), "--filter", "fd>abc", "--timeout", "1s"]);
    fails_with(
        &out,
        "--filter `fd>abc`: fd is a number (u32); compare it with a number",
    );
    let out = agent.ctl(&["run", s(&obj), "--filter", "fd", "--timeout", "1s"]);
    fails_with(&out, "--filter `fd`: no operator; expected FIELD==VALUE");
}

/// gadgetctl with `COLUMNS` set, its stdout piped.
fn ctl_with_columns(agent: &Agent, columns: &str, args: &[&str]) -> std::process::Child {
    std::process::Command::new(bin("gadgetctl"))
        .arg("--address")
        .arg(&agent.bus_address)
        .args(args)
        .env("COLUMNS", columns)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Terminal cells of a line (the ellipsis and these ASCII names take one each).
fn cells(line: &str) -> usize {
    line.chars().count()
}

/// Item 3: lines fit COLUMNS (no wrapping), cut where the definition says,
/// container columns hidden on a host without containers, tables too.
#[test]
fn columns_fit_the_terminal_width() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let me = std::process::id().to_string();
    let obj = gadget("trace_open");
    let dir = TempDir::new("width");
    let long = dir.path().join("x".repeat(200));
    assert!(
        agent.ctl(&["containers", "-o", "json"]).stdout.is_empty(),
        "this host has containers"
    );

    for width in ["80", "60", "200"] {
        let client = ctl_with_columns(
            &agent,
            width,
            &["run", s(&obj), "--pid", &me, "--timeout", "2s"],
        );
        agent.wait_running(1);
        open(&long);
        let out = client.wait_with_output().unwrap();
        agent.wait_running(0);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let limit: usize = width.parse().unwrap();
        assert!(
            text.lines().all(|l| cells(l) <= limit),
            "wider than {width}:\n{text}"
        );
        let t = titles(&out);
        assert!(
            t.iter()
                .all(|t| !t.starts_with("RUNTIME.") && !t.starts_with("K8S.")),
            "{t:?}"
        );
        let line = text
            .lines()
            .find(|l| l.contains(" ENOENT ") && l.contains("/tmp/gad"))
            .unwrap_or_else(|| panic!("no event for the long name:\n{text}"));
        // The file name is the last column: cut at the edge with an ellipsis.
        assert_eq!(cells(line), limit.min(cells(line)), "{line}");
        assert!(line.ends_with('…'), "{line:?}");
    }

    // Named in --fields, a container column shows even here.
    let client = ctl_with_columns(
        &agent,
        "120",
        &[
            "run",
            s(&obj),
            "--pid",
            &me,
            "--timeout",
            "1s",
            "--fields",
            "proc.pid,runtime.containerName,fname",
        ],
    );
    agent.wait_running(1);
    open(&long);
    let out = client.wait_with_output().unwrap();
    agent.wait_running(0);
    assert_eq!(titles(&out), ["PROC.PID", "RUNTIME.CONTAINERNAME", "FNAME"]);

    // A snapshot table at 40 columns: every line fits, the widest columns shrank.
    let snap = gadget("snapshot_process");
    let out = ctl_with_columns(&agent, "40", &["run", s(&snap), "--max-rows", "5"])
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.lines().all(|l| cells(l) <= 40), "{text}");
    assert_eq!(titles(&out), ["COMM", "PID", "CREDS.UID", "PARENT.PID"]);
}

/// What the shell gets when it completes `words` (fish's protocol: one
/// `value<TAB>help` per line), against this agent.
fn complete(agent: &Agent, words: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(bin("gadgetctl"))
        .arg("--")
        .arg("gadgetctl")
        .args(words)
        .env("COMPLETE", "fish")
        .env("GADGETD_ADDRESS", &agent.bus_address)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// Item 11: completions ask the agent for run ids and names, local images,
/// and the gadget's parameters.
#[test]
fn completions_know_runs_images_and_parameters() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let obj = gadget("trace_open");
    let id = ok(
        &agent.ctl(&["run", "-d", "--name", "completeme", s(&obj)]),
        "run -d",
    )
    .trim()
    .to_string();
    agent.wait_running(1);
    for command in ["stop", "rm", "attach", "logs"] {
        let got = complete(&agent, &[command, ""]);
        assert!(
            got.contains(&id) && got.contains(&"completeme".to_string()),
            "{command}: {got:?}"
        );
    }
    let got = complete(&agent, &["run", s(&obj), "--"]);
    assert!(
        got.contains(&"--pid".to_string()) && got.contains(&"--failed".to_string()),
        "{got:?}"
    );

    let include = repo_root().join("include");
    let dir = repo_root().join("gadgets/top_file");
    ok(
        &agent.ctl(&["build", "--include", s(&include), "-t", "top_file", s(&dir)]),
        "build",
    );
    let got = complete(&agent, &["run", "top_f"]);
    assert!(got.contains(&"top_file".to_string()), "{got:?}");
    let got = complete(&agent, &["run", "top_file", "--"]);
    assert!(
        got.contains(&"--pid".to_string()) && got.contains(&"--regular_only".to_string()),
        "the image's parameters: {got:?}"
    );
    ok(&agent.ctl(&["stop", &id]), "stop");
}

/// Issue 18 item 4: trace_open and trace_exec print names for numbers by
/// default (errno, open flags, file mode); JSON keeps the numbers beside them.
#[test]
fn default_columns_name_errno_flags_and_mode_and_json_keeps_numbers() {
    use std::os::unix::fs::OpenOptionsExt;
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let me = std::process::id().to_string();
    let dir = TempDir::new("names");
    let created = dir.path().join("created");
    let missing = dir.path().join("missing");
    let activity = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&created)
            .unwrap();
        open(&missing);
    };
    let obj = gadget("trace_open");

    // Columns: the defaults show the error by name; flags and mode by name when
    // asked for (added columns come last).
    let out = run_during(
        &agent,
        &[
            "run",
            s(&obj),
            "--pid",
            &me,
            "--timeout",
            "2s",
            "--fields",
            "+flags,+mode",
        ],
        activity,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        titles(&out),
        [
            "PROC.COMM",
            "PROC.PID",
            "PROC.CREDS.UID",
            "ERROR",
            "FD",
            "FNAME",
            "FLAGS",
            "MODE"
        ]
    );
    let row = |path: &std::path::Path| -> Vec<String> {
        stdout(&out)
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == s(path)))
            .unwrap_or_else(|| panic!("no line for {path:?}: {}", stdout(&out)))
            .split_whitespace()
            .skip(3) // comm, pid, uid
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        row(&missing),
        [
            "ENOENT",
            "0",
            s(&missing),
            "O_RDONLY|O_CLOEXEC",
            "----------"
        ]
    );
    let fd = row(&created)[0].clone();
    assert!(fd.parse::<u32>().unwrap() > 2, "{fd}");
    assert_eq!(
        row(&created)[1..],
        [
            s(&created),
            "O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC",
            "-rw-r-----"
        ]
    );

    // JSON: both the number and the name.
    std::fs::remove_file(&created).unwrap();
    let out = run_during(
        &agent,
        &[
            "run",
            s(&obj),
            "--pid",
            &me,
            "--timeout",
            "2s",
            "-o",
            "json",
            "--fields",
            "error_raw,error,flags_raw,flags,mode_raw,mode,fname",
        ],
        activity,
    );
    let events = json_lines(&out);
    let of = |path: &std::path::Path| {
        events
            .iter()
            .find(|e| e["fname"] == s(path))
            .unwrap_or_else(|| panic!("no event for {path:?}: {events:?}"))
            .clone()
    };
    let cloexec = libc::O_CLOEXEC;
    assert_eq!(
        of(&missing),
        serde_json::json!({"error_raw": libc::ENOENT, "error": "ENOENT", "flags_raw": cloexec,
            "flags": "O_RDONLY|O_CLOEXEC", "mode_raw": 0, "mode": "----------", "fname": s(&missing)})
    );
    assert_eq!(
        of(&created),
        serde_json::json!({"error_raw": 0, "error": "",
            "flags_raw": libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | cloexec,
            "flags": "O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC", "mode_raw": 0o640, "mode": "-rw-r-----",
            "fname": s(&created)})
    );

    // trace_exec: a failed exec by name in its default columns (the exec runs
    // in the child Command forks, so no --pid of ours).
    let exec = gadget("trace_exec");
    let nowhere = dir.path().join("no-such-program");
    let out = run_during(
        &agent,
        &["run", s(&exec), "--failed", "--timeout", "2s"],
        || assert!(std::process::Command::new(&nowhere).spawn().is_err()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains(s(&nowhere)))
        .unwrap_or_else(|| panic!("no failed exec: {}", stdout(&out)))
        .to_string();
    assert!(
        line.split_whitespace().any(|w| w == "ENOENT"),
        "{line:?} in {}",
        stdout(&out)
    );
}
