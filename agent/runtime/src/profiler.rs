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
}
