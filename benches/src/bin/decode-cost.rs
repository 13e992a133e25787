//! The decode workload the callgrind check counts instructions of
//! (`scripts/decode_cost.py`, `make decode-check`).
//!
//! Usage: `decode-cost OBJECT RECORDS PASSES`
//!
//! Builds the decoder for OBJECT's first tracer exactly as the runtime does
//! (event layout from the object's BTF, the container registry as enricher),
//! reads RECORDS (ring records recorded by `floor-reader`: each a 4-byte
//! little-endian length and the bytes), decodes every record once to warm lazily built tables (user and group names), then
//! PASSES more times into a batch buffer that is reused as the agent's is.
//! Prints `records PASSES-BYTES`; the instruction count of a run with PASSES=1
//! subtracted from one with PASSES=11, divided by ten times the records, is the
//! cost of one decoded event, without setup. With `DECODE_COST_DUMP=FILE`
//! set, the warm-up pass's lines are written to FILE.

use std::process::ExitCode;
use std::sync::Arc;

use gadgetd_containers::testing;
use gadgetd_runtime::classify;
use gadgetd_runtime::decode::Decoder;
use gadgetd_runtime::enrich::Enricher;
use gadgetd_runtime::layout;
use gadgetd_runtime::object::GadgetObject;

/// Flush the batch buffer at this size, as the agent's reader does.
const BATCH_BYTES: usize = 256 * 1024;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("decode-cost: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, object, records, passes] = args.as_slice() else {
        return Err("usage: decode-cost OBJECT RECORDS PASSES".into());
    };
    let passes: u32 = passes
        .parse()
        .map_err(|_| format!("PASSES must be a count, not {passes:?}"))?;
    let bytes = std::fs::read(object).map_err(|e| format!("reading {object}: {e}"))?;
    let obj = GadgetObject::parse(bytes).map_err(|e| format!("{object}: {e}"))?;
    let tracer = classify::tracers(&obj)
        .map_err(|e| format!("{object}: {e}"))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{object} has no tracer"))?;
    let layout =
        layout::build(&obj.btf, tracer.event_type).map_err(|e| format!("{object}: {e}"))?;
    // As in the agent: the container registry enriches every event. The
    // recorded events are the host's, none of the 50 containers', so they
    // take the lookup that misses.
    let decoder =
        Decoder::new(&layout).with_enricher(Some(testing::registry(50) as Arc<dyn Enricher>));
    let raw = std::fs::read(records).map_err(|e| format!("reading {records}: {e}"))?;
    let events = split_records(&raw).map_err(|e| format!("{records}: {e}"))?;
    let mut out = Vec::with_capacity(BATCH_BYTES + 4096);
    for e in &events {
        decoder.write_json(e, &mut out).map_err(|s| {
            format!(
                "{records}: a record of {} bytes, the event has {}",
                s.got, s.want
            )
        })?;
    }
    // DECODE_COST_DUMP=FILE: the lines of the warm-up pass, to compare
    // decoders' output byte for byte.
    if let Some(path) = std::env::var_os("DECODE_COST_DUMP") {
        std::fs::write(&path, &out).map_err(|e| format!("writing {path:?}: {e}"))?;
    }
    out.clear();
    let mut total = 0usize;
    for _ in 0..passes {
        for e in &events {
            let _ = decoder.write_json(std::hint::black_box(e), &mut out);
            if out.len() >= BATCH_BYTES {
                total += std::hint::black_box(&out).len();
                out.clear();
            }
        }
    }
    total += out.len();
    println!("{} {total}", events.len());
    Ok(())
}

/// Splits `[u32 LE length][bytes]...` into records.
fn split_records(mut raw: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let Some((len, rest)) = raw.split_first_chunk::<4>() else {
            return Err(format!("truncated length after {} records", out.len()));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(format!(
                "record {} says {len} bytes, {} left",
                out.len(),
                rest.len()
            ));
        }
        out.push(&rest[..len]);
        raw = &rest[len..];
    }
    if out.is_empty() {
        return Err("no records".into());
    }
    Ok(out)
}
