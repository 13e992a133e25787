//! Toppers: a `stats_*` map read every interval, sorted, cut to the top
//! rows and emitted as one JSON array. Sorting reads the sort fields straight
//! from the raw key/value bytes, so only the rows that are shown get decoded.

use std::cmp::Ordering;

use super::decode::Decoder;
use super::error::{GadgetError, Result};
use super::layout::{FieldKind, Layout};
use super::rawmap::RawHashMap;

/// Default `--max-rows`.
pub const DEFAULT_MAX_ROWS: usize = 20;

/// One `--sort` term: a field of the key or the value, ascending or not.
#[derive(Debug, Clone)]
struct SortKey {
    /// Offset in the concatenated key||value row.
    offset: usize,
    kind: FieldKind,
    descending: bool,
}

/// The parsed sort order.
#[derive(Debug, Clone)]
pub struct SortSpec(Vec<SortKey>);

/// The fields a topper row has, with their offsets in key||value.
fn row_fields<'a>(
    key: &'a Layout,
    value: &'a Layout,
) -> impl Iterator<Item = (&'a str, usize, &'a FieldKind)> {
    key.fields
        .iter()
        .map(|f| (f.name.as_str(), f.offset, &f.kind))
        .chain(
            value
                .fields
                .iter()
                .map(move |f| (f.name.as_str(), key.size + f.offset, &f.kind)),
        )
}

impl SortSpec {
    /// `FIELD[,-FIELD]`: `-` sorts that field descending. Empty: the first
    /// numeric value field, descending (the busiest first).
    pub fn parse(spec: &str, key: &Layout, value: &Layout) -> Result<SortSpec> {
        let names: Vec<&str> = row_fields(key, value).map(|(n, _, _)| n).collect();
        if spec.trim().is_empty() {
            let default = value
                .fields
                .iter()
                .find(|f| matches!(f.kind, FieldKind::Int { .. } | FieldKind::Float { .. }))
                .map(|f| SortKey {
                    offset: key.size + f.offset,
                    kind: f.kind.clone(),
                    descending: true,
                });
            return Ok(SortSpec(default.into_iter().collect()));
        }
        let mut keys = Vec::new();
        for term in spec.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (descending, name) = match term.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, term.strip_prefix('+').unwrap_or(term)),
            };
            let (_, offset, kind) = row_fields(key, value)
                .find(|(n, _, _)| *n == name)
                .ok_or_else(|| GadgetError::Param {
                    name: "sort".into(),
                    reason: format!(
                        "`{name}` is not a field of this gadget (fields: {})",
                        names.join(", ")
                    ),
                })?;
            if !matches!(
                kind,
                FieldKind::Int { .. }
                    | FieldKind::Float { .. }
                    | FieldKind::Str { .. }
                    | FieldKind::Bool
                    | FieldKind::Enum { .. }
            ) {
                return Err(GadgetError::Param {
                    name: "sort".into(),
                    reason: format!(
                        "`{name}` cannot be sorted on (numbers, strings, enums and bools can)"
                    ),
                });
            }
            keys.push(SortKey {
                offset,
                kind: kind.clone(),
                descending,
            });
        }
        Ok(SortSpec(keys))
    }

    /// Orders two rows laid out as the layouts given to [`SortSpec::parse`].
    pub fn compare(&self, a: &[u8], b: &[u8]) -> Ordering {
        for k in &self.0 {
            let ord = compare_field(&k.kind, &a[k.offset..], &b[k.offset..]);
            let ord = if k.descending { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

fn int_at(d: &[u8], size: u8, signed: bool) -> i128 {
    let mut b = [0u8; 8];
    let n = (size as usize).min(8);
    b[..n].copy_from_slice(&d[..n]);
    let u = u64::from_ne_bytes(b);
    if !signed {
        return u as i128;
    }
    let shift = 64 - n as u32 * 8;
    (((u << shift) as i64) >> shift) as i128
}

fn compare_field(kind: &FieldKind, a: &[u8], b: &[u8]) -> Ordering {
    match kind {
        FieldKind::Int { size, signed, .. } | FieldKind::Enum { size, signed, .. } => {
            int_at(a, *size, *signed).cmp(&int_at(b, *size, *signed))
        }
        FieldKind::Bool => a[0].cmp(&b[0]),
        FieldKind::Float { size: 4 } => {
            let f = |d: &[u8]| f32::from_ne_bytes(d[..4].try_into().unwrap());
            f(a).total_cmp(&f(b))
        }
        FieldKind::Float { .. } => {
            let f = |d: &[u8]| f64::from_ne_bytes(d[..8].try_into().unwrap());
            f(a).total_cmp(&f(b))
        }
        FieldKind::Str { len } => {
            fn text(d: &[u8], len: usize) -> &[u8] {
                let d = &d[..len];
                &d[..d.iter().position(|&c| c == 0).unwrap_or(d.len())]
            }
            text(a, *len).cmp(text(b, *len))
        }
        _ => Ordering::Equal,
    }
}

/// A topper's map and everything needed to turn it into a table.
pub struct TopperReader {
    map: RawHashMap,
    clear: bool,
    key: Decoder,
    value: Decoder,
    sort: SortSpec,
    max_rows: usize,
    /// key||value rows of the last read.
    rows: Vec<u8>,
    order: Vec<usize>,
}

fn empty() -> Layout {
    Layout {
        type_name: String::new(),
        size: 0,
        fields: Vec::new(),
    }
}

/// Counts from one interval.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Entries in the map.
    pub entries: u64,
    /// Rows emitted (at most max_rows).
    pub shown: u64,
}

impl TopperReader {
    pub fn new(
        map: RawHashMap,
        clear: bool,
        key: &Layout,
        value: &Layout,
        sort: SortSpec,
        max_rows: usize,
    ) -> TopperReader {
        TopperReader {
            map,
            clear,
            key: Decoder::new(key),
            value: Decoder::new(value),
            sort,
            max_rows,
            rows: Vec::new(),
            order: Vec::new(),
        }
    }

    /// Resolves `gadget_kernel_stack` fields of keys and values.
    pub fn with_stacks(
        mut self,
        stacks: Option<std::sync::Arc<super::stacks::KernelStacks>>,
    ) -> TopperReader {
        self.key =
            std::mem::replace(&mut self.key, Decoder::new(&empty())).with_stacks(stacks.clone());
        self.value = std::mem::replace(&mut self.value, Decoder::new(&empty())).with_stacks(stacks);
        self
    }

    /// Container fields after a mount-namespace key field come from `enricher`.
    pub fn with_enricher(
        mut self,
        enricher: Option<std::sync::Arc<dyn super::enrich::Enricher>>,
    ) -> TopperReader {
        self.key = std::mem::replace(&mut self.key, Decoder::new(&empty()))
            .with_enricher(enricher.clone());
        self.value =
            std::mem::replace(&mut self.value, Decoder::new(&empty())).with_enricher(enricher);
        self
    }

    /// The map (benchmarks and tests fill it directly).
    #[cfg_attr(not(feature = "bench-internals"), allow(dead_code))]
    pub fn map_mut(&mut self) -> &mut RawHashMap {
        &mut self.map
    }

    /// Reads the map and appends one JSON array line (the top rows) to `out`.
    pub fn read_table(&mut self, out: &mut Vec<u8>) -> std::io::Result<Table> {
        let (ks, vs) = (self.map.key_size, self.map.value_size);
        let row_size = ks + vs;
        self.rows.clear();
        let rows = &mut self.rows;
        let entries = self.map.read(self.clear, |k, v| {
            rows.extend_from_slice(k);
            rows.extend_from_slice(v);
        })?;
        let n = self.rows.len() / row_size.max(1);
        self.order.clear();
        self.order.extend(0..n);
        let (rows, sort) = (&self.rows, &self.sort);
        let row = |i: usize| &rows[i * row_size..(i + 1) * row_size];
        let shown = n.min(self.max_rows);
        if shown < n {
            // Only the top rows need a full order.
            self.order
                .select_nth_unstable_by(shown, |&a, &b| sort.compare(row(a), row(b)));
            self.order.truncate(shown);
        }
        self.order.sort_by(|&a, &b| sort.compare(row(a), row(b)));
        out.push(b'[');
        for (i, &idx) in self.order.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let r = row(idx);
            let at = out.len();
            self.key.write_fields(&r[..ks], out);
            if out.len() == at {
                self.value.write_fields(&r[ks..], out);
            } else {
                self.value.write_more_fields(&r[ks..], out);
            }
            if out.len() == at {
                out.push(b'{');
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]\n");
        Ok(Table {
            entries: entries as u64,
            shown: shown as u64,
        })
    }
}
