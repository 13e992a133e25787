//! The seed-shaped entry points of the runtime crate ("Running Gadgets
//! Directly"): `run_object` and `run_image` with `Opts`, a blocking `next()`,
//! `done()` and `close()`, on the real kernel.

use std::time::{Duration, Instant};

use gadgetd::images::format::{self, ArchBuild, BuildInfo};
use gadgetd::images::store::Store;
use gadgetd_runtime::{GadgetError, ImageOptions, Opts, Pull, Record, Run, run_image, run_object};
use gadgetd_tests::*;

/// trace_open's options: only this process, stop after `timeout`.
fn own_opens(timeout: Duration) -> Opts {
    let mut opts = Opts::default();
    opts.run
        .params
        .insert("targ_pid".into(), std::process::id().to_string());
    opts.timeout = Some(timeout);
    opts
}

/// Opens a fresh file, then iterates the run to its end: the event of that
/// open, and how long the iteration took.
fn open_and_drain(run: &mut Run, dir: &TempDir, tag: &str) -> (serde_json::Value, Duration) {
    let path = dir.path().join(format!("{tag}-{}", random_hex(4)));
    std::fs::write(&path, b"").unwrap();
    let want = path.to_str().unwrap().to_string();
    let started = Instant::now();
    let mut found = None;
    for record in &mut *run {
        if let Record::Event(ev) = record.unwrap()
            && ev["fname"] == want.as_str()
        {
            found = Some(serde_json::Value::Object(ev));
        }
    }
    let found = found.unwrap_or_else(|| panic!("no event for {want}"));
    (found, started.elapsed())
}

#[test]
fn run_object_yields_its_own_open_and_ends_at_the_timeout() {
    require_root();
    let object = std::fs::read(gadget("trace_open")).unwrap();
    let mut opts = own_opens(Duration::from_millis(1500));
    opts.definition = Some("name: opens_here\n".into());
    let mut run = run_object(object, &opts).unwrap();
    assert_eq!(run.gadget().name(), "opens_here");
    assert!(!run.done());
    let dir = TempDir::new("direct");
    let (ev, took) = open_and_drain(&mut run, &dir, "object");
    assert_eq!(ev["proc.pid"], std::process::id());
    assert_eq!(ev["proc.comm"], own_comm());
    assert_eq!(ev["fd"].as_i64().map(|fd| fd > 2), Some(true), "{ev}");
    assert!(
        took < Duration::from_secs(5),
        "the 1.5 s timeout ended the run after {took:?}"
    );
    assert!(run.done());
    assert!(run.next().is_none());
    assert!(run.close().unwrap().is_empty());
}

#[test]
fn run_object_snapshot_ends_by_itself_and_close_stops_a_tracer() {
    require_root();
    // A snapshotter ends after its one table: no timeout needed.
    let object = std::fs::read(gadget("snapshot_process")).unwrap();
    let run = run_object(object, &Opts::default()).unwrap();
    let records: Vec<Record> = run.map(Result::unwrap).collect();
    let tables: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Rows(rows) => Some(rows),
            _ => None,
        })
        .collect();
    assert_eq!(tables.len(), 1, "{records:?}");
    let me = tables[0]
        .iter()
        .find(|row| row["pid"] == std::process::id())
        .expect("this process is not in the snapshot");
    // The process's comm (its main thread's), not this test thread's.
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(me["comm"], comm.trim_end());

    // A tracer without timeout runs until closed; close() detaches it.
    let object = std::fs::read(gadget("trace_open")).unwrap();
    let before = loaded_programs();
    let mut opts = own_opens(Duration::ZERO);
    opts.timeout = None;
    let run = run_object(object, &opts).unwrap();
    let ours: Vec<u64> = loaded_programs()
        .into_iter()
        .filter(|p| !before.contains(p))
        .map(|(id, _)| id)
        .collect();
    assert!(!ours.is_empty(), "run_object loaded no program");
    assert!(!run.done());
    run.close().unwrap();
    let left: Vec<_> = loaded_programs()
        .into_iter()
        .filter(|(id, _)| ours.contains(id))
        .collect();
    assert_eq!(left, vec![], "programs left after close()");
}

/// A state directory whose store holds trace_open as `name`.
fn store_with_trace_open(dir: &TempDir, name: &str) {
    let image = format::assemble(
        &[ArchBuild {
            arch: format::host_arch().into(),
            program: std::fs::read(gadget("trace_open")).unwrap(),
        }],
        &BuildInfo {
            definition: std::fs::read(repo_root().join("gadgets/trace_open/gadget.yaml")).unwrap(),
            ..Default::default()
        },
    );
    let store = Store::open(&dir.path().join("images")).unwrap();
    let mut staging = store.staging().unwrap();
    for blob in image.blobs.values() {
        staging.put(blob).unwrap();
    }
    store
        .commit(&staging, &[(Some(name.into()), image.index)])
        .unwrap();
}

#[test]
fn run_image_runs_a_stored_image_and_names_the_image_it_cannot_find() {
    require_root();
    let state = TempDir::new("direct-image");
    let name = format!("localhost:1/direct/trace_open:{}", random_hex(3));
    store_with_trace_open(&state, &name);
    let mut opts = own_opens(Duration::from_millis(1500));
    opts.image = ImageOptions {
        state_dir: state.path().to_path_buf(),
        pull: Pull::Never,
        ..Default::default()
    };
    let mut run = run_image(&name, &opts).unwrap();
    assert_eq!(run.gadget().name(), "trace_open");
    let dir = TempDir::new("direct-image-opens");
    let (ev, _) = open_and_drain(&mut run, &dir, "image");
    assert_eq!(ev["proc.pid"], std::process::id());
    assert_eq!(ev["proc.comm"], own_comm());
    drop(run);

    // Missing, never pulled; missing, and its registry (port 1) refuses.
    for (pull, reason) in [
        (Pull::Never, "not found locally"),
        (Pull::Missing, "localhost:1"),
        (Pull::Always, "localhost:1"),
    ] {
        let missing = format!("localhost:1/direct/absent:{}", random_hex(3));
        opts.image.pull = pull;
        match run_image(&missing, &opts) {
            Err(GadgetError::Image {
                reference,
                reason: r,
            }) => {
                assert_eq!(reference, missing);
                assert!(r.contains(reason), "{pull:?}: {r}");
            }
            Err(e) => panic!("{pull:?}: not an image error: {e}"),
            Ok(_) => panic!("{pull:?}: {missing} ran"),
        }
    }
}
