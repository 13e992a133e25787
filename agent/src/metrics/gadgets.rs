//! Metrics from gadgets: the metric maps of every live run started with
//! `--metrics`, read on each scrape. A family is named
//! `<data source>_<field>` (counters get `_total`); every sample carries
//! `run` and `gadget`, then the key's fields as labels (decoded like event
//! fields: strings, enums, names). log2 histograms are exported with
//! cumulative `_bucket{le}` (slot i holds values up to 2^(i+1)-1),
//! `_count`, and `_sum` estimated from each slot's lower bound (the map
//! keeps counts per slot, not the values).

use std::collections::BTreeMap;
use std::sync::Arc;

use gadgetd_runtime::metrics::{MetricKind, MetricRow};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::service::Agent;

/// Collects the gadgets' metrics at scrape time.
pub struct GadgetCollector {
    agent: Arc<Agent>,
}

impl std::fmt::Debug for GadgetCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GadgetCollector")
    }
}

impl GadgetCollector {
    pub fn new(agent: Arc<Agent>) -> GadgetCollector {
        GadgetCollector { agent }
    }
}

type Labels = Vec<(String, String)>;

/// One sample's value.
enum Sample {
    Number(u64),
    /// Per-bucket (not cumulative) counts with upper bounds, then +Inf;
    /// the sum and the count.
    Histogram(Vec<(f64, u64)>, f64, u64),
}

/// One family, gathered over every run that has it.
struct Family {
    kind: MetricKind,
    /// `metrics.unit`, sanitized (the encoder appends `_<unit>` to the name).
    unit: Option<String>,
    help: String,
    samples: Vec<(Labels, Sample)>,
}

/// A metric or label name as Prometheus allows it: `[a-zA-Z_:][a-zA-Z0-9_:]*`
/// (every other character becomes `_`).
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `k8s_containerName` → `k8s_container_name` (Prometheus label style).
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// ebpf_exporter's histograms: rows whose key has a bucket index and whose
/// value is that bucket's count, grouped by their other labels. Buckets
/// 0..=max (the annotation's, else the largest seen) get their upper bound;
/// counts beyond the last bucket land in +Inf only.
fn bucketed(
    b: &gadgetd_runtime::metrics::BucketSpec,
    rows: &[MetricRow],
    labels_of: impl Fn(&MetricRow) -> Labels,
) -> Vec<(Labels, Sample)> {
    let mut groups: BTreeMap<Labels, BTreeMap<u64, u64>> = BTreeMap::new();
    for row in rows {
        let Some(index) = row
            .labels
            .iter()
            .find(|(k, _)| *k == b.field)
            .and_then(|(_, v)| v.parse::<u64>().ok())
        else {
            continue;
        };
        *groups
            .entry(labels_of(row))
            .or_default()
            .entry(index)
            .or_default() += row.values[0][0];
    }
    groups
        .into_iter()
        .map(|(labels, counts)| {
            let seen = counts.keys().next_back().copied().unwrap_or(0);
            let max = b.max.unwrap_or(seen).min(1023);
            let mut buckets = Vec::with_capacity(max as usize + 2);
            let (mut sum, mut count, mut beyond) = (0f64, 0u64, 0u64);
            for i in 0..=max {
                let n = counts.get(&i).copied().unwrap_or(0);
                buckets.push((b.upper_bound(i), n));
            }
            for (&i, &n) in &counts {
                sum += b.lower_bound(i) * n as f64;
                count += n;
                if i > max {
                    beyond += n;
                }
            }
            buckets.push((f64::INFINITY, beyond));
            (labels, Sample::Histogram(buckets, sum, count))
        })
        .collect()
}

/// The buckets of a log2 histogram: (upper bound, count) per slot, then +Inf;
/// the sum estimated from the slots' lower bounds; the count.
pub fn log2_buckets(slots: &[u64]) -> (Vec<(f64, u64)>, f64, u64) {
    let mut buckets = Vec::with_capacity(slots.len() + 1);
    let (mut sum, mut count) = (0f64, 0u64);
    for (i, &n) in slots.iter().enumerate() {
        let lower = if i == 0 { 0.0 } else { 2f64.powi(i as i32) };
        buckets.push((2f64.powi(i as i32 + 1) - 1.0, n));
        sum += lower * n as f64;
        count += n;
    }
    buckets.push((f64::INFINITY, 0));
    (buckets, sum, count)
}

impl GadgetCollector {
    fn gather(&self) -> BTreeMap<String, Family> {
        let runs: Vec<_> = self.agent.runs.lock().unwrap().values().cloned().collect();
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.export_metrics) {
            // Cloned under the lock: a run stopping meanwhile keeps its maps
            // open until this scrape is done with them.
            let Some(m) = r.stats.metrics.lock().unwrap().clone() else {
                continue;
            };
            for map in m.maps() {
                let rows: Vec<MetricRow> = match map.snapshot() {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::debug!(run = %r.id, map = %map.spec.map, error = %e, "reading a metric map failed");
                        continue;
                    }
                };
                let labels_of = |row: &MetricRow, skip: Option<&str>| -> Labels {
                    let mut labels: Labels = vec![
                        ("run".into(), r.id.clone()),
                        ("gadget".into(), r.gadget.clone()),
                    ];
                    for (k, v) in row.labels.iter().filter(|(k, _)| Some(k.as_str()) != skip) {
                        let mut k = snake_case(&sanitize(k));
                        if k == "run" || k == "gadget" || k == "le" {
                            k.insert_str(0, "key_");
                        }
                        labels.push((k, v.clone()));
                    }
                    labels
                };
                if let Some(b) = &map.spec.bucket {
                    let family = families
                        .entry(sanitize(&map.spec.source))
                        .or_insert_with(|| Family {
                            kind: MetricKind::Histogram { slots: 0 },
                            unit: map.spec.fields[0].unit.as_deref().map(sanitize),
                            help: format!(
                                "gadget data source {} ({}), bucketed by {}",
                                map.spec.source, map.spec.map, b.field
                            ),
                            samples: Vec::new(),
                        });
                    for (labels, sample) in bucketed(b, &rows, |row| labels_of(row, Some(&b.field)))
                    {
                        family.samples.push((labels, sample));
                    }
                    continue;
                }
                for (i, field) in map.spec.fields.iter().enumerate() {
                    // A plain-integer value (empty field name) is named after the source.
                    let name = match field.name.as_str() {
                        "" => sanitize(&map.spec.source),
                        f => sanitize(&format!("{}_{f}", map.spec.source)),
                    };
                    let family = families.entry(name).or_insert_with(|| Family {
                        kind: field.kind.clone(),
                        unit: field.unit.as_deref().map(sanitize),
                        help: format!(
                            "{} of gadget data source {} ({})",
                            field.name, map.spec.source, map.spec.map
                        ),
                        samples: Vec::new(),
                    });
                    if std::mem::discriminant(&family.kind) != std::mem::discriminant(&field.kind) {
                        continue; // another gadget's field of another type under the same name
                    }
                    for row in &rows {
                        let values = &row.values[i];
                        let sample = match field.kind {
                            MetricKind::Histogram { .. } => {
                                let (buckets, sum, count) = log2_buckets(values);
                                Sample::Histogram(buckets, sum, count)
                            }
                            _ => Sample::Number(values[0]),
                        };
                        family.samples.push((labels_of(row, None), sample));
                    }
                }
            }
        }
        families
    }
}

impl Collector for GadgetCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, family) in self.gather() {
            let metric_type = match family.kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Gauge => MetricType::Gauge,
                MetricKind::Histogram { .. } => MetricType::Histogram,
            };
            let unit = family
                .unit
                .clone()
                .map(prometheus_client::registry::Unit::Other);
            let mut fam = enc.encode_descriptor(&name, &family.help, unit.as_ref(), metric_type)?;
            for (labels, value) in &family.samples {
                let mut sample = fam.encode_family(labels)?;
                match (&family.kind, value) {
                    (MetricKind::Counter, Sample::Number(n)) => {
                        ConstCounter::new(*n).encode(sample)?
                    }
                    (MetricKind::Gauge, Sample::Number(n)) => {
                        ConstGauge::new(*n as i64).encode(sample)?
                    }
                    (_, Sample::Number(_)) => {}
                    (_, Sample::Histogram(buckets, sum, count)) => {
                        sample.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                            *sum, *count, buckets, None,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_valid_metric_names() {
        assert_eq!(sanitize("syscalls_count"), "syscalls_count");
        assert_eq!(sanitize("proc.comm"), "proc_comm");
        assert_eq!(sanitize("9lives-x"), "_9lives_x");
        assert_eq!(sanitize(""), "_");
        assert_eq!(snake_case("k8s_containerName"), "k8s_container_name");
        assert_eq!(snake_case("runtime_containerId"), "runtime_container_id");
    }

    #[test]
    fn log2_slots_become_buckets() {
        let (b, sum, count) = log2_buckets(&[1, 2, 0, 3]);
        assert_eq!(
            b,
            vec![(1.0, 1), (3.0, 2), (7.0, 0), (15.0, 3), (f64::INFINITY, 0)]
        );
        assert_eq!(count, 6);
        assert_eq!(sum, 0.0 + 2.0 * 2.0 + 8.0 * 3.0);
    }

    fn row(pid: &str, bucket: u64, count: u64) -> MetricRow {
        MetricRow {
            labels: vec![
                ("pid".into(), pid.into()),
                ("slot".into(), bucket.to_string()),
            ],
            values: vec![vec![count]],
        }
    }

    #[test]
    fn bucketed_rows_become_one_histogram_per_label_set() {
        use gadgetd_runtime::metrics::BucketSpec;
        let labels = |r: &MetricRow| vec![("pid".to_string(), r.labels[0].1.clone())];
        let linear = BucketSpec {
            field: "slot".into(),
            exp2: false,
            multiplier: 10.0,
            max: Some(2),
        };
        // pid 1: 3 values in [0,10), 1 in [20,30), 2 beyond the last bucket.
        let rows = [
            row("1", 0, 3),
            row("1", 2, 1),
            row("1", 5, 2),
            row("2", 1, 4),
        ];
        let out = bucketed(&linear, &rows, labels);
        assert_eq!(out.len(), 2);
        let Sample::Histogram(b, sum, count) = &out[0].1 else {
            panic!()
        };
        assert_eq!(out[0].0, vec![("pid".to_string(), "1".to_string())]);
        assert_eq!(
            b,
            &vec![(10.0, 3), (20.0, 0), (30.0, 1), (f64::INFINITY, 2)]
        );
        assert_eq!((*sum, *count), (20.0 + 2.0 * 50.0, 6));
        let exp2 = BucketSpec {
            field: "slot".into(),
            exp2: true,
            multiplier: 1.0,
            max: None,
        };
        let Sample::Histogram(b, sum, count) = &bucketed(&exp2, &rows[3..], labels)[0].1 else {
            panic!()
        };
        assert_eq!(b, &vec![(1.0, 0), (2.0, 4), (f64::INFINITY, 0)]);
        assert_eq!((*sum, *count), (4.0, 4));
    }
}
