//! The runtime library in-process ("Running Gadgets Directly"), on the real kernel.

use std::time::{Duration, Instant};

use gadgetd::runtime::{Gadget, GadgetError, Record, RunOptions};
use gadgetd_tests::*;

/// The gadget at `object` and run options that keep it to this process's
/// events (`targ_pid`).
fn for_this_process(object: std::path::PathBuf) -> (Gadget, RunOptions) {
    let gadget = Gadget::from_object(std::fs::read(object).unwrap(), None).unwrap();
    let mut opts = RunOptions::default();
    opts.params
        .insert("targ_pid".into(), std::process::id().to_string());
    (gadget, opts)
}

#[test]
fn perf_event_array_tracers_load_and_deliver() {
    require_root();
    rt().block_on(async {
        let (gadget, opts) = for_this_process(test_object("perf_open"));
        let mut run = gadget.start(&opts).unwrap();
        let dir = TempDir::new("perf");
        let path = dir.path().join("perf-probe");
        std::fs::write(&path, b"").unwrap();
        let want = path.to_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rec = tokio::time::timeout_at(deadline.into(), run.next_record())
                .await
                .expect("no perf event")
                .unwrap();
            if let Some(Record::Event(ev)) = rec
                && ev["fname"] == want
            {
                assert_eq!(ev["pid"], std::process::id());
                assert_eq!(ev["dfd"], libc::AT_FDCWD);
                assert_eq!(ev["comm"], own_comm());
                break;
            }
        }
    });
}

#[test]
fn a_full_ring_buffer_counts_and_reports_lost_events() {
    require_root();
    rt().block_on(async {
        let (gadget, mut opts) = for_this_process(gadget("trace_open"));
        opts.ring_buffer_bytes = Some(4096); // room for about 12 events
        let mut run = gadget.start(&opts).unwrap();
        let dir = TempDir::new("lost");
        let path = dir.path().join("flood");
        std::fs::write(&path, b"").unwrap();
        const OPENS: u64 = 2000;
        for _ in 0..OPENS {
            drop(std::fs::File::open(&path).unwrap());
        }
        let (mut events, mut lost) = (0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && events + lost < OPENS {
            let mut buf = Vec::new();
            if let Ok(batch) =
                tokio::time::timeout(Duration::from_millis(300), run.next_batch(&mut buf)).await
            {
                let flood = String::from_utf8_lossy(&buf)
                    .matches("\"fname\":\"")
                    .count() as u64;
                assert_eq!(flood, batch.events);
                events += batch.events;
                lost += batch.lost;
            }
        }
        lost += run.final_losses();
        assert!(
            lost > 0,
            "a 4 KiB ring cannot hold {OPENS} events, yet nothing was reported lost"
        );
        assert!(events > 0);
        // Every open is either delivered or counted (a few extra opens by the runtime are tolerated).
        assert!(
            (OPENS..OPENS + 10).contains(&(events + lost)),
            "events {events} + lost {lost} != {OPENS}"
        );
    });
}

#[test]
fn malformed_inputs_fail_before_touching_the_kernel() {
    let not_elf = Gadget::from_object(b"hello".to_vec(), None).err().unwrap();
    assert!(matches!(not_elf, GadgetError::NotElf(_)), "{not_elf}");
    let no_btf = Gadget::from_object(std::fs::read(test_object("no_btf")).unwrap(), None)
        .err()
        .unwrap();
    assert!(matches!(no_btf, GadgetError::NoBtf), "{no_btf}");
    // A truncated ELF: half of a real object.
    let mut bytes = std::fs::read(gadget("trace_open")).unwrap();
    bytes.truncate(bytes.len() / 2);
    let err = Gadget::from_object(bytes, None).err().unwrap().to_string();
    assert!(!err.is_empty());
    let bad_yaml = Gadget::from_object(
        std::fs::read(gadget("trace_open")).unwrap(),
        Some("columns: ["),
    )
    .err()
    .unwrap();
    assert!(
        bad_yaml.to_string().starts_with("definition file:"),
        "{bad_yaml}"
    );
    // Definition entries naming nothing are typos, reported with what exists.
    let object = || std::fs::read(gadget("trace_open")).unwrap();
    let typo = Gadget::from_object(object(), Some("columns:\n  - name: fnmae\n    width: 9\n"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        typo.starts_with(
            "definition file: column `fnmae` names no field of the event (fields: timestamp_raw, timestamp, proc.comm, proc.pid,"
        ),
        "{typo}"
    );
    let typo = Gadget::from_object(object(), Some("params:\n  - key: targ_pdi\n"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        typo.contains("param `targ_pdi` names no `const volatile` parameter"),
        "{typo}"
    );
    assert!(typo.contains("targ_pid"), "{typo}");
}

#[test]
fn layout_and_params_come_from_btf_and_rodata() {
    let g = Gadget::from_object(std::fs::read(gadget("trace_exec")).unwrap(), None).unwrap();
    let fields: Vec<(String, String)> = g.fields().into_iter().map(|f| (f.name, f.kind)).collect();
    assert_eq!(fields[0], ("timestamp_raw".into(), "u64".into()));
    assert_eq!(fields[1], ("timestamp".into(), "timestamp".into()));
    assert!(fields.contains(&("args".into(), "list".into())));
    assert!(fields.contains(&("proc.comm".into(), "string".into())));
    assert!(fields.contains(&("error".into(), "string".into())));
    let params: Vec<(&str, &str)> = g
        .params()
        .iter()
        .map(|p| (p.name.as_str(), p.default.as_str()))
        .collect();
    // The common filters of gadget/filter.h by their well-known names; without
    // gadget.yaml, the gadget's own parameter keeps its variable's name.
    assert_eq!(
        params,
        [
            ("pid", "0"),
            ("tid", "0"),
            ("uid", "4294967295"),
            ("gid", "4294967295"),
            ("comm", ""),
            ("targ_failed", "false")
        ]
    );
}

#[test]
fn the_runs_end_delivers_everything_still_buffered() {
    // Far more than one batch (256 KiB of JSON) waits in the ring when the
    // run stops: the final drain hands out all of it, not just its first
    // batch (which dropped the rest, uncounted).
    require_root();
    rt().block_on(async {
        let object = gadget("trace_open");
        let definition = std::fs::read_to_string(object.with_extension("yaml")).unwrap();
        let gadget =
            Gadget::from_object(std::fs::read(&object).unwrap(), Some(&definition)).unwrap();
        let mut opts = RunOptions::default();
        opts.params
            .insert("pid".into(), std::process::id().to_string());
        opts.ring_buffer_bytes = Some(16 << 20);
        let dir = TempDir::new("final-drain");
        let path = dir.path().join("buffered");
        std::fs::write(&path, b"").unwrap();
        let mut run = gadget.start(&opts).unwrap();
        let want = path.to_str().unwrap();
        // ~450 bytes of JSON each: 5,000 make ~2 MiB, ~1.6 MiB of ring.
        const OPENS: usize = 5000;
        for _ in 0..OPENS {
            drop(std::fs::File::open(&path).unwrap());
        }
        let records = run.finish().unwrap();
        let lost = run.final_losses();
        let delivered = records
            .iter()
            .filter(|r| matches!(r, Record::Event(e) if e["fname"] == want))
            .count();
        assert_eq!((delivered, lost), (OPENS, 0));
    });
}

#[test]
fn a_burst_is_delivered_whole_soon_after_it_ends_and_a_lone_event_at_once() {
    // A drain that reads several records leaves the ring's last one in it
    // (so the kernel does not wake the reader for the next record) and
    // delivers it at the end of its 5 ms pause. Fails when that record is
    // lost, or waits for the reader's 250 ms safety tick, or when a lone
    // record after an idle spell is held back instead of delivered at once.
    require_root();
    rt().block_on(async {
        let (gadget, opts) = for_this_process(gadget("trace_open"));
        let dir = TempDir::new("burst");
        let burst = dir.path().join("burst");
        let lone = dir.path().join("lone");
        std::fs::write(&burst, b"").unwrap();
        std::fs::write(&lone, b"").unwrap();
        let mut run = gadget.start(&opts).unwrap();
        let (burst_name, lone_name) = (burst.to_str().unwrap(), lone.to_str().unwrap());
        // Counts events naming `want` until `n` came or `within` passed;
        // returns the count and the time it took.
        async fn count(
            run: &mut gadgetd::runtime::Running,
            want: &str,
            n: usize,
            within: Duration,
        ) -> (usize, Duration) {
            let start = Instant::now();
            let mut seen = 0;
            let mut buf = Vec::new();
            while seen < n && start.elapsed() < within {
                buf.clear();
                let left = within.saturating_sub(start.elapsed());
                if tokio::time::timeout(left, run.next_batch(&mut buf))
                    .await
                    .is_ok()
                {
                    seen += String::from_utf8_lossy(&buf)
                        .matches(&format!("\"fname\":\"{want}\""))
                        .count();
                }
            }
            (seen, start.elapsed())
        }
        for round in 0..3 {
            // Bursts of several sizes: the last record is held back from
            // each drain that read others before it.
            for opens in [2usize, 50, 700] {
                for _ in 0..opens {
                    drop(std::fs::File::open(&burst).unwrap());
                }
                let (seen, took) = count(&mut run, burst_name, opens, Duration::from_secs(2)).await;
                assert_eq!(seen, opens, "round {round}: burst of {opens}");
                assert!(
                    took < Duration::from_millis(150),
                    "round {round}: the burst of {opens} took {took:?} to arrive whole"
                );
                // Idle past the pause, then a single event: not held back.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let (drained, _) = count(&mut run, burst_name, 1, Duration::from_millis(1)).await;
                assert_eq!(drained, 0, "round {round}: a burst event came twice");
                drop(std::fs::File::open(&lone).unwrap());
                let (seen, took) = count(&mut run, lone_name, 1, Duration::from_secs(2)).await;
                assert_eq!(seen, 1, "round {round}: the lone event after {opens}");
                assert!(
                    took < Duration::from_millis(150),
                    "round {round}: the lone event after a burst of {opens} took {took:?}"
                );
            }
        }
        assert_eq!(run.final_losses(), 0);
    });
}
