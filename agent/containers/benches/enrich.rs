//! What container enrichment costs on the event hot path: decoding a
//! trace_open-shaped event to JSON without an enricher, with the registry
//! as enricher for a namespace it knows (200 containers), and for one it
//! does not know. Run: `cargo bench -p gadgetd-containers --bench enrich`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use gadgetd_containers::testing;
use gadgetd_runtime::decode::Decoder;
use gadgetd_runtime::enrich::{Enricher, SharedEnricher};
use gadgetd_runtime::layout::{FieldKind, FieldLayout, Layout, Semantic};

fn field(name: &str, offset: usize, kind: FieldKind) -> FieldLayout {
    FieldLayout {
        name: name.into(),
        offset,
        kind,
    }
}

fn int(size: u8, semantic: Semantic) -> FieldKind {
    FieldKind::Int {
        size,
        signed: false,
        semantic,
    }
}

/// trace_open's event: timestamp, pid, uid, gid, mntns_id, ret, flags, mode, comm, fname.
fn layout() -> Layout {
    Layout {
        type_name: "event".into(),
        size: 320,
        fields: vec![
            field("timestamp", 0, FieldKind::Timestamp),
            field("pid", 8, int(4, Semantic::Pid)),
            field("uid", 12, int(4, Semantic::Uid)),
            field("gid", 16, int(4, Semantic::Gid)),
            field("mntns_id", 24, int(8, Semantic::MntnsId)),
            field("ret", 32, int(4, Semantic::None)),
            field("flags", 36, int(4, Semantic::None)),
            field("mode", 40, int(2, Semantic::None)),
            field("comm", 42, FieldKind::Str { len: 16 }),
            field("fname", 58, FieldKind::Str { len: 255 }),
        ],
    }
}

fn event(mntns: u64) -> Vec<u8> {
    let mut ev = vec![0u8; 320];
    ev[0..8].copy_from_slice(&123_456_789u64.to_ne_bytes());
    ev[8..12].copy_from_slice(&4242u32.to_ne_bytes());
    ev[24..32].copy_from_slice(&mntns.to_ne_bytes());
    ev[32..36].copy_from_slice(&3i32.to_ne_bytes());
    ev[42..45].copy_from_slice(b"cat");
    ev[58..79].copy_from_slice(b"/etc/gadgetd-marker\0\0");
    ev
}

fn run(label: &str, decoder: &Decoder, ev: &[u8]) {
    const N: u32 = 2_000_000;
    let mut out = Vec::with_capacity(512 * 1024);
    // Warm up.
    for _ in 0..10_000 {
        out.clear();
        decoder.write_json(ev, &mut out).unwrap();
    }
    let start = Instant::now();
    let mut bytes = 0usize;
    for i in 0..N {
        if i % 1000 == 0 {
            bytes += out.len();
            out.clear();
        }
        decoder.write_json(black_box(ev), &mut out).unwrap();
    }
    let el = start.elapsed();
    let per = el.as_nanos() as f64 / N as f64;
    println!(
        "{label:<34} {per:>7.1} ns/event  {:>6.2} M events/s  ({} bytes/event)",
        1e3 / per,
        (bytes + out.len()) / N as usize
    );
}

fn main() {
    let layout = layout();
    let reg = testing::registry(200);
    let known = event(testing::MNTNS_BASE + 17);
    let unknown = event(4_026_539_999);
    let plain = Decoder::new(&layout);
    let enriched = Decoder::new(&layout)
        .with_enricher(Some(SharedEnricher(reg.clone() as Arc<dyn Enricher>).0));
    // Baseline: the same event with mntns_id as a plain integer (no
    // container fields at all).
    let mut bare = layout.clone();
    bare.fields[4].kind = int(8, Semantic::None);
    run(
        "baseline (no container fields)",
        &Decoder::new(&bare),
        &known,
    );
    run("no enricher (empty fields)", &plain, &known);
    run("registry, container known", &enriched, &known);
    run("registry, namespace unknown", &enriched, &unknown);

    // Endpoints (a trace_dns-shaped pair): each is followed by whose
    // address it is, one hash lookup per endpoint.
    let at = gadgetd_runtime::endpoint::EndpointLayout {
        addr: 0,
        version: 16,
        port: Some(18),
    };
    let net = Layout {
        type_name: "event".into(),
        size: 40,
        fields: vec![
            field("src", 0, FieldKind::L4Endpoint(at)),
            field("dst", 20, FieldKind::L4Endpoint(at)),
        ],
    };
    let pair = |src: [u8; 4], dst: [u8; 4]| {
        let mut ev = vec![0u8; 40];
        ev[..4].copy_from_slice(&src);
        ev[16] = 4;
        ev[18..20].copy_from_slice(&40000u16.to_ne_bytes());
        ev[20..24].copy_from_slice(&dst);
        ev[36] = 4;
        ev[38..40].copy_from_slice(&53u16.to_ne_bytes());
        ev
    };
    let container_to_host = pair([10, 128, 0, 17], [127, 0, 0, 1]);
    let raw_to_raw = pair([192, 0, 2, 1], [192, 0, 2, 2]);
    let net_enriched = Decoder::new(&net).with_enricher(Some(reg as Arc<dyn Enricher>));
    run(
        "endpoints, no enricher",
        &Decoder::new(&net),
        &container_to_host,
    );
    run(
        "endpoints, container -> host",
        &net_enriched,
        &container_to_host,
    );
    run("endpoints, raw -> raw", &net_enriched, &raw_to_raw);
}
