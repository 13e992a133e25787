//! Profilers: `hist_*` maps (slot → count) turned into histograms, emitted
//! as one JSON object per map: `{"histogram":"latency","unit":"usecs",
//! "scale":"log2","total":N,"buckets":[{"start":0,"end":1,"count":0},...]}`.
//! Buckets run from slot 0 to the highest non-empty slot, like bcc's.

use std::io::Write as _;

use super::kinds::{Profiler, Scale};
use super::rawmap::RawHashMap;

pub struct HistReader {
    pub profiler: Profiler,
    map: RawHashMap,
    slots: Vec<u64>,
}

impl HistReader {
    pub fn new(profiler: Profiler, map: RawHashMap) -> HistReader {
        HistReader {
            profiler,
            map,
            slots: Vec::new(),
        }
    }

    /// Reads (and, with `clear`, resets) the map; appends one JSON line.
    /// Slots beyond 4096 are malformed keys: counted, not shown.
    pub fn write_json(&mut self, clear: bool, out: &mut Vec<u8>) -> std::io::Result<u64> {
        const MAX_SLOT: usize = 4096;
        self.slots.clear();
        let mut malformed = 0u64;
        let size = self.profiler.value_size;
        let slots = &mut self.slots;
        self.map.read(clear, |k, v| {
            let slot = u32::from_ne_bytes(k[..4].try_into().unwrap()) as usize;
            let count = if size == 4 {
                u32::from_ne_bytes(v[..4].try_into().unwrap()) as u64
            } else {
                u64::from_ne_bytes(v[..8].try_into().unwrap())
            };
            if slot >= MAX_SLOT {
                malformed += 1;
                return;
            }
            if slots.len() <= slot {
                slots.resize(slot + 1, 0);
            }
            slots[slot] += count;
        })?;
        let p = &self.profiler;
        let (scale, step) = match p.scale {
            Scale::Log2 => ("log2", 0),
            Scale::Linear { step } => ("linear", step),
        };
        let total: u64 = self.slots.iter().sum();
        out.extend_from_slice(b"{\"histogram\":");
        super::decode::write_json_str(out, p.name.as_bytes());
        out.extend_from_slice(b",\"unit\":");
        super::decode::write_json_str(out, p.unit.as_bytes());
        let _ = write!(
            out,
            ",\"scale\":\"{scale}\",\"total\":{total},\"buckets\":["
        );
        for (i, count) in self.slots.iter().enumerate() {
            let (start, end) = bucket_range(p.scale, i as u32, step);
            if i > 0 {
                out.push(b',');
            }
            let _ = write!(out, "{{\"start\":{start},\"end\":{end},\"count\":{count}}}");
        }
        out.extend_from_slice(b"]}\n");
        Ok(malformed)
    }
}

/// Writes a `gadget_histogram_slot__*[count]` array (`elem_size`-byte
/// native-endian slots in `d`) as a histogram object like a profiler's:
/// `{"scale":"log2","total":T,"buckets":[{"start":0,"end":1,"count":C},...]}`,
/// buckets up to the highest non-empty slot (none when all are empty).
/// Slot n is [2^n, 2^(n+1)) and slot 0 is [0, 1], as Inspektor Gadget's
/// histogram package prints these arrays (and as our `hist_*` log2 slots).
/// Allocation-free: it is on the event path of map iterators.
pub fn write_slot_histogram(d: &[u8], elem_size: u8, count: usize, out: &mut Vec<u8>) {
    let size = elem_size as usize;
    let slot = |i: usize| -> u64 {
        let b = &d[i * size..(i + 1) * size];
        if size == 4 {
            u32::from_ne_bytes(b.try_into().unwrap()) as u64
        } else {
            u64::from_ne_bytes(b.try_into().unwrap())
        }
    };
    let count = count.min(d.len() / size.max(1));
    let last = (0..count).rev().find(|&i| slot(i) != 0);
    let total: u64 = (0..count).map(slot).fold(0, u64::saturating_add);
    let _ = write!(out, "{{\"scale\":\"log2\",\"total\":{total},\"buckets\":[");
    for i in 0..last.map_or(0, |l| l + 1) {
        let (start, end) = bucket_range(Scale::Log2, i as u32, 0);
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(
            out,
            "{{\"start\":{start},\"end\":{end},\"count\":{}}}",
            slot(i)
        );
    }
    out.extend_from_slice(b"]}");
}

/// Inclusive value range of a slot.
pub fn bucket_range(scale: Scale, slot: u32, step: u64) -> (u64, u64) {
    match scale {
        Scale::Log2 if slot == 0 => (0, 1),
        Scale::Log2 if slot >= 63 => (1u64 << 63, u64::MAX),
        Scale::Log2 => (1u64 << slot, (1u64 << (slot + 1)) - 1),
        Scale::Linear { .. } => (slot as u64 * step, (slot as u64 + 1) * step - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cover_contiguous_ranges() {
        assert_eq!(bucket_range(Scale::Log2, 0, 0), (0, 1));
        assert_eq!(bucket_range(Scale::Log2, 1, 0), (2, 3));
        assert_eq!(bucket_range(Scale::Log2, 10, 0), (1024, 2047));
        assert_eq!(bucket_range(Scale::Linear { step: 10 }, 3, 10), (30, 39));
    }

    #[test]
    fn histogram_slot_arrays_print_as_log2_buckets() {
        let mut d = Vec::new();
        for v in [0u32, 2, 0, 5, 0, 0] {
            d.extend_from_slice(&v.to_ne_bytes());
        }
        let mut out = Vec::new();
        write_slot_histogram(&d, 4, 6, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"scale":"log2","total":7,"buckets":[{"start":0,"end":1,"count":0},{"start":2,"end":3,"count":2},{"start":4,"end":7,"count":0},{"start":8,"end":15,"count":5}]}"#
        );
        let mut out = Vec::new();
        write_slot_histogram(&[0u8; 16], 8, 2, &mut out);
        assert_eq!(out, br#"{"scale":"log2","total":0,"buckets":[]}"#);
    }
}
