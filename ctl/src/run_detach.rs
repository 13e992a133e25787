//! `gadgetctl run --detach`: start a run that outlives the client and logs
//! its events to the journal; and `logs`, `rm` for such runs.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use gadgetd_dbus::types::options;
use zbus::zvariant::Value;

/// Flags of `run` for detached runs.
#[derive(clap::Args, Debug, Default)]
pub struct DetachArgs {
    /// Run in the background: print the run id and return. Events go to the
    /// journal (`gadgetctl logs ID`); the run survives gadgetd restarts
    /// until `gadgetctl stop ID`.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Export the gadget's metrics (metric-typed map iterators) on the
    /// agent's Prometheus endpoint, labelled with this run (docs/metrics.md).
    #[arg(long)]
    pub metrics: bool,
}

impl DetachArgs {
    pub fn apply(&self, opts: &mut HashMap<&str, Value<'_>>) {
        if self.detach {
            opts.insert(options::DETACH, Value::Bool(true));
        }
        if self.metrics {
            opts.insert(options::METRICS, Value::Bool(true));
        }
    }
}

/// `gadgetctl logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Run id (or a unique prefix), or run name.
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::runs))]
    pub id: String,
    /// Keep printing new events until the run ends (Ctrl-C to quit).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only events since this time: an RFC 3339 time (2026-11-24T10:00:00Z)
    /// or an age (10m, 2h, 1day).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
}

impl LogsArgs {
    pub fn options(&self) -> Result<HashMap<&'static str, Value<'static>>> {
        let mut opts = HashMap::new();
        if self.follow {
            opts.insert(options::FOLLOW, Value::Bool(true));
        }
        if let Some(s) = &self.since {
            opts.insert(
                options::SINCE_US,
                Value::U64(since_us(s, SystemTime::now())?),
            );
        }
        Ok(opts)
    }
}

/// `--since`: an absolute time or an age, as microseconds since the epoch.
fn since_us(s: &str, now: SystemTime) -> Result<u64> {
    let at = match humantime::parse_rfc3339_weak(s) {
        Ok(t) => t,
        Err(_) => {
            let age: Duration = humantime::parse_duration(s).map_err(|_| {
                anyhow!("--since `{s}`: expected a time like 2026-11-24T10:00:00Z or an age like 10m, 2h")
            })?;
            now.checked_sub(age).unwrap_or(UNIX_EPOCH)
        }
    };
    Ok(at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(since_us("10m", now).unwrap(), (1_000_000 - 600) * 1_000_000);
        assert_eq!(since_us("1970-01-01T00:00:10Z", now).unwrap(), 10_000_000);
        assert!(
            since_us("yesterday-ish", now)
                .unwrap_err()
                .to_string()
                .contains("--since")
        );
    }
}
