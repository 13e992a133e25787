//! Benchmarks of the gadget kinds on the real kernel (root needed):
//! * a topper's read cost per interval with 10,000 entries in its stats map
//!   (batched lookup, and key by key as kernels without batch ops do);
//! * snapshot_process on this host: iterating every task and decoding rows,
//!   and a whole run (load, verify, attach, iterate, decode).
//!
//! `make bench-kinds` (or `cargo bench -p gadgetd-runtime --features bench-internals --bench kinds`, with
//! GADGETD_GADGETS pointing at `make gadgets` output).

use std::time::{Duration, Instant};

use gadgetd_runtime::decode::Decoder;
use gadgetd_runtime::kinds;
use gadgetd_runtime::layout;
use gadgetd_runtime::load::{self, LoadRequest};
use gadgetd_runtime::object::GadgetObject;
use gadgetd_runtime::rawmap::RawHashMap;
use gadgetd_runtime::snapshot;
use gadgetd_runtime::topper::{SortSpec, TopperReader};
use gadgetd_runtime::{Gadget, RunOptions};

const ENTRIES: usize = 10_000;
const ROUNDS: usize = 50;

fn gadget_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("GADGETD_GADGETS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/gadgets")
        });
    dir.join(format!("{name}.o"))
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "median {:.2} ms, p90 {:.2} ms, min {:.2} ms (n={})",
        ms(v[v.len() / 2]),
        ms(v[v.len() * 9 / 10]),
        ms(v[0]),
        v.len()
    )
}

fn main() {
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("kinds bench: skipped, it loads eBPF and must run as root");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    topper();
    snapshot_process();
}

fn topper() {
    let obj = GadgetObject::parse(
        std::fs::read(gadget_path("top_file")).expect("run `make gadgets` first"),
    )
    .unwrap();
    let t = kinds::toppers(&obj).unwrap().remove(0);
    let key = layout::build_or_scalar(&obj.btf, t.key_type, "key").unwrap();
    let value = layout::build_or_scalar(&obj.btf, t.value_type, "value").unwrap();
    // Loaded, never attached: the map holds only what we put in.
    let mut ebpf = load::load(&LoadRequest {
        obj: &obj,
        tracer_maps: vec![],
        globals: vec![],
        max_entries: vec![(t.map.clone(), 16384)],
    })
    .unwrap();
    let map = ebpf.take_map(&t.map).unwrap();
    let mut raw = RawHashMap::new(map, key.size, value.size).unwrap();
    let fill = |raw: &mut RawHashMap| {
        let mut k = vec![0u8; key.size];
        let mut v = vec![0u8; value.size];
        for i in 0..ENTRIES as u64 {
            k[..4].copy_from_slice(&(i as u32).to_ne_bytes()); // pid
            k[24..32].copy_from_slice(&i.to_ne_bytes()); // inode
            v[..8].copy_from_slice(&(i * 7919 % 10_007).to_ne_bytes()); // reads
            raw.insert(&k, &v).unwrap();
        }
    };
    fill(&mut raw);
    let mut reader = TopperReader::new(
        raw,
        false,
        &key,
        &value,
        SortSpec::parse("", &key, &value).unwrap(),
        20,
    );
    let mut out = Vec::with_capacity(1 << 16);
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        out.clear();
        let start = Instant::now();
        let table = reader.read_table(&mut out).unwrap();
        times.push(start.elapsed());
        assert_eq!((table.entries, table.shown), (ENTRIES as u64, 20));
    }
    println!(
        "topper, {ENTRIES} entries, read+sort+top 20 as JSON (batched, kept): {}",
        stats(times)
    );

    // Key by key, for comparison (kernels before 5.6).
    let map = obj_map_again(&obj, &t.map);
    let mut raw = RawHashMap::new(map, key.size, value.size).unwrap();
    fill(&mut raw);
    let mut times = Vec::new();
    for _ in 0..10 {
        let mut n = 0;
        let start = Instant::now();
        raw.read_one_by_one(false, &mut |_, _| n += 1).unwrap();
        times.push(start.elapsed());
        assert_eq!(n, ENTRIES);
    }
    println!(
        "topper, {ENTRIES} entries, read only, key by key (no batch ops): {}",
        stats(times)
    );

    // Read-and-delete, as toppers do by default (the refill is not timed).
    let map = obj_map_again(&obj, &t.map);
    let raw = RawHashMap::new(map, key.size, value.size).unwrap();
    let mut reader = TopperReader::new(
        raw,
        true,
        &key,
        &value,
        SortSpec::parse("-reads,comm", &key, &value).unwrap(),
        20,
    );
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        fill(reader.map_mut());
        out.clear();
        let start = Instant::now();
        let table = reader.read_table(&mut out).unwrap();
        times.push(start.elapsed());
        assert_eq!(table.entries, ENTRIES as u64);
    }
    println!(
        "topper, {ENTRIES} entries, read+delete+sort+top 20 as JSON (batched, cleared): {}",
        stats(times)
    );
}

fn obj_map_again(obj: &GadgetObject, name: &str) -> aya::maps::Map {
    let mut ebpf = load::load(&LoadRequest {
        obj,
        tracer_maps: vec![],
        globals: vec![],
        max_entries: vec![(name.to_string(), 16384)],
    })
    .unwrap();
    ebpf.take_map(name).unwrap()
}

fn snapshot_process() {
    let bytes = std::fs::read(gadget_path("snapshot_process")).unwrap();
    let obj = GadgetObject::parse(bytes.clone()).unwrap();
    let snap = kinds::snapshotter(&obj).unwrap().unwrap();
    let row = layout::build(&obj.btf, snap.row_type).unwrap();
    let mut ebpf = load::load(&LoadRequest {
        obj: &obj,
        tracer_maps: vec![],
        globals: vec![],
        max_entries: vec![],
    })
    .unwrap();
    snapshot::load_programs(&mut ebpf, &snap).unwrap();
    let decoder = Decoder::new(&row);
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let collected = snapshot::collect(&mut ebpf, &snap, row.size, &[]).unwrap();
        let order: Vec<usize> = (0..collected.len()).collect();
        let mut out = Vec::new();
        collected.write_json(&decoder, &order, &mut out);
        times.push(start.elapsed());
        rows = collected.len();
    }
    println!(
        "snapshot_process, {rows} processes: iterate + decode to JSON: {}",
        stats(times)
    );
    let gadget = Gadget::from_object(bytes, None).unwrap();
    let mut times = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let running = gadget.start(&RunOptions::default()).unwrap();
        times.push(start.elapsed());
        drop(running);
    }
    println!(
        "snapshot_process, whole run (load, verify, iterate, decode): {}",
        stats(times)
    );
}
