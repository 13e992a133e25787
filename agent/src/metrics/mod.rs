//! Prometheus metrics: the agent's own (runs, events, clients, programs,
//! images, container watchers, the process) rendered on each scrape by
//! `prometheus-client`, in the Prometheus text format (0.0.4) or in
//! OpenMetrics when the scraper asks for it, and served over HTTP
//! ([`http`]) on `--metrics-listen ADDR` or the systemd socket
//! `gadgetd-metrics.socket` (docs/metrics.md).
//!
//! A scrape renders the whole exposition into memory before the first
//! byte is sent: a run that stops meanwhile is either in it whole or not
//! at all, never half.

mod gadgets;
pub(crate) mod http;
mod own;
mod process;

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::service::Agent;

/// The exposition formats a scraper can ask for (`Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: what `promtool check metrics` reads.
    Text,
    /// `application/openmetrics-text; version=1.0.0`: what Prometheus asks for first.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text`, else the text format.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The whole exposition of `agent`'s metrics, rendered now.
pub fn render(agent: &Arc<Agent>, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(own::AgentCollector::new(agent.clone())));
    registry.register_collector(Box::new(process::ProcessCollector));
    registry.register_collector(Box::new(gadgets::GadgetCollector::new(agent.clone())));
    let mut out = String::with_capacity(64 * 1024);
    let encoded = match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    // Writing into a String cannot fail; a collector's error is a bug.
    if let Err(e) = encoded {
        tracing::error!(error = %e, "encoding the metrics failed");
    }
    drop(registry);
    // A big scrape's decoded rows and labels are freed by now: give their
    // pages back instead of keeping them resident until the next scrape.
    if out.len() > TRIM_ABOVE {
        gadgetd_runtime::load::trim_heap();
    }
    out
}

/// Expositions larger than this trim the heap after rendering (~3,500 series).
const TRIM_ABOVE: usize = 1 << 20;
