//! The agent's own metrics (`gadgetd_*`), read from its live state on each
//! scrape: runs by state; per run its events, losses by cause and attached
//! streams; per program of a run its run count and run time; the image
//! store; the container runtimes it watches; its peer-to-peer clients.
//!
//! Every per-run series carries `run` (the id), `name` (the run's name)
//! and `gadget` (the gadget's name).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gadgetd_dbus::types::state;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::service::Agent;
use crate::service::run::RunHandle;

/// Collects from the agent at scrape time.
pub struct AgentCollector {
    agent: Arc<Agent>,
}

impl std::fmt::Debug for AgentCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentCollector")
    }
}

impl AgentCollector {
    pub fn new(agent: Arc<Agent>) -> AgentCollector {
        AgentCollector { agent }
    }
}

/// The label set every per-run series has.
fn run_labels(r: &RunHandle) -> [(&'static str, &str); 3] {
    [("run", &r.id), ("name", &r.name), ("gadget", &r.gadget)]
}

/// One family: a descriptor, then one sample per label set.
fn family<L, M>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet,
    M: EncodeMetric,
{
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

const STATES: [&str; 4] = [
    state::STARTING,
    state::RUNNING,
    state::STOPPED,
    state::FAILED,
];

impl Collector for AgentCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // One consistent list of runs for the whole scrape.
        let runs: Vec<Arc<RunHandle>> = self.agent.runs.lock().unwrap().values().cloned().collect();
        let states: Vec<String> = runs.iter().map(|r| r.state()).collect();
        family(
            &mut enc,
            "gadgetd_runs",
            "Runs the agent knows, by state (ended detached runs stay until removed).",
            MetricType::Gauge,
            STATES.iter().map(|s| {
                let n = states.iter().filter(|x| x.as_str() == *s).count() as i64;
                ([("state", *s)], ConstGauge::new(n))
            }),
        )?;
        family(
            &mut enc,
            "gadgetd_run_events",
            "Events (or rows, histograms) a run produced.",
            MetricType::Counter,
            runs.iter().map(|r| {
                let seen = r.events_seen.load(Ordering::Relaxed);
                (run_labels(r), ConstCounter::new(seen))
            }),
        )?;
        let mut lost = Vec::with_capacity(runs.len() * 3);
        for r in &runs {
            let [a, b, c] = run_labels(r);
            let malformed = r.stats.lost_malformed.load(Ordering::Relaxed);
            // events_lost is what D-Bus reports (kernel + malformed, restored
            // after a restart); the kernel's share is what is not malformed.
            let kernel = r
                .events_lost
                .load(Ordering::Relaxed)
                .saturating_sub(malformed);
            let slow = r.stats.lost_slow_reader.load(Ordering::Relaxed);
            for (cause, n) in [
                ("kernel", kernel),
                ("malformed", malformed),
                ("slow-reader", slow),
            ] {
                lost.push(([a, b, c, ("cause", cause)], ConstCounter::new(n)));
            }
        }
        family(
            &mut enc,
            "gadgetd_run_events_lost",
            "Events a run lost, by cause: kernel (its buffer overflowed), malformed \
             (records shorter than the event type), slow-reader (summed over clients \
             that read too slowly).",
            MetricType::Counter,
            lost,
        )?;
        family(
            &mut enc,
            "gadgetd_run_clients",
            "Event streams attached to a live run now.",
            MetricType::Gauge,
            runs.iter().map(|r| {
                let n = r.stats.clients.load(Ordering::Relaxed) as i64;
                (run_labels(r), ConstGauge::new(n))
            }),
        )?;
        self.encode_programs(&mut enc, &runs)?;
        family(
            &mut enc,
            "gadgetd_peer_clients",
            "Clients connected on the peer-to-peer socket now.",
            MetricType::Gauge,
            [(
                [("transport", "p2p")],
                ConstGauge::new(self.agent.conns.count() as i64),
            )],
        )?;
        self.encode_images(&mut enc)?;
        self.encode_containers(&mut enc)?;
        Ok(())
    }
}

impl AgentCollector {
    /// Per program of each live run: runs and run time (counted while the
    /// metrics endpoint holds BPF_ENABLE_STATS).
    fn encode_programs(
        &self,
        enc: &mut DescriptorEncoder,
        runs: &[Arc<RunHandle>],
    ) -> Result<(), std::fmt::Error> {
        let mut stats = Vec::new();
        for r in runs {
            let Some(m) = r.stats.metrics.lock().unwrap().clone() else {
                continue;
            };
            for p in m.programs() {
                stats.push((r.clone(), p));
            }
        }
        let labels = |r: &RunHandle, p: &str| {
            let [a, b, c] = run_labels(r);
            [a, b, c, ("program", p)].map(|(k, v)| (k, v.to_string()))
        };
        family(
            enc,
            "gadgetd_program_runs",
            "Times a program of a live run ran (bpf_prog_info.run_cnt).",
            MetricType::Counter,
            stats
                .iter()
                .map(|(r, p)| (labels(r, &p.name), ConstCounter::new(p.run_count))),
        )?;
        family(
            enc,
            "gadgetd_program_run_time_seconds",
            "Time a program of a live run spent running (bpf_prog_info.run_time_ns).",
            MetricType::Counter,
            stats.iter().map(|(r, p)| {
                let s = p.run_time_ns as f64 / 1e9;
                (labels(r, &p.name), ConstCounter::new(s))
            }),
        )?;
        family(
            enc,
            "gadgetd_program_recursion_misses",
            "Runs of a program skipped because it was already running on that CPU.",
            MetricType::Counter,
            stats
                .iter()
                .map(|(r, p)| (labels(r, &p.name), ConstCounter::new(p.recursion_misses))),
        )?;
        Ok(())
    }

    fn encode_images(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(images) = self.agent.images.get() else {
            return Ok(());
        };
        family(
            enc,
            "gadgetd_image_store_bytes",
            "Bytes the local image store's blobs take on disk.",
            MetricType::Gauge,
            [(
                [("store", "local")],
                ConstGauge::new(images.store.disk_usage() as i64),
            )],
        )?;
        if let Ok(entries) = images.store.entries() {
            family(
                enc,
                "gadgetd_images",
                "Images (tags and untagged digests) in the local store.",
                MetricType::Gauge,
                [([("store", "local")], ConstGauge::new(entries.len() as i64))],
            )?;
        }
        Ok(())
    }

    fn encode_containers(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut by_runtime: std::collections::BTreeMap<String, i64> = Default::default();
        for w in self.agent.containers.watchers() {
            by_runtime.entry(w.runtime.clone()).or_default();
        }
        for c in self.agent.containers.list() {
            *by_runtime.entry(c.runtime.clone()).or_default() += 1;
        }
        family(
            enc,
            "gadgetd_containers",
            "Containers the agent sees, by runtime.",
            MetricType::Gauge,
            by_runtime
                .iter()
                .map(|(rt, n)| ([("runtime", rt.as_str())], ConstGauge::new(*n))),
        )?;
        let watchers = self.agent.containers.watchers();
        family(
            enc,
            "gadgetd_container_watcher_connected",
            "1 while the watcher of a container runtime socket is connected and synced, else 0.",
            MetricType::Gauge,
            watchers.iter().map(|w| {
                let labels = [
                    ("runtime", w.runtime.as_str()),
                    ("socket", w.socket.as_str()),
                ];
                (labels, ConstGauge::new(i64::from(w.connected)))
            }),
        )?;
        Ok(())
    }
}
