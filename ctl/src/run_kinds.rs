//! `gadgetctl run` flags of toppers, profilers and snapshotters, and the
//! tracers' ring buffer size.

use std::collections::HashMap;
use std::time::Duration;

use gadgetd_dbus::types::options;
use zbus::zvariant::Value;

#[derive(clap::Args, Debug, Default)]
pub struct KindArgs {
    /// Toppers, snapshotters: sort by these fields, `FIELD[,-FIELD]` (`-`: descending).
    #[arg(long, value_name = "FIELDS", allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Toppers: print every INTERVAL (default 1s). Profilers: also print a
    /// histogram every INTERVAL, not only at the end. `SOURCE:INTERVAL` for
    /// one data source (`2s,totals:500ms`: totals every 500 ms).
    #[arg(long, value_parser = parse_interval, value_name = "INTERVAL")]
    pub interval: Option<Intervals>,
    /// Toppers, snapshotters: at most N rows per table (toppers default to
    /// 20); `SOURCE:N` for one data source (`10,totals:5`: 5 for totals).
    #[arg(long, value_name = "N", value_parser = parse_max_rows)]
    pub max_rows: Option<MaxRows>,
    /// Network snapshotters (iter/tcp, iter/udp) and socket filters: every
    /// network namespace of the host, not only gadgetd's.
    #[arg(long)]
    pub all_netns: bool,
    /// Network snapshotters and socket filters: this network namespace
    /// (inode, as in `ls -L -i /proc/PID/ns/net`); repeatable.
    #[arg(long = "netns", value_name = "INODE")]
    pub netns: Vec<u64>,
    /// tc programs: attach on this host interface (default: the host side
    /// of each selected container's veth).
    #[arg(long, value_name = "NAME")]
    pub iface: Option<String>,
    /// Cgroup programs (cgroup_skb/*, cgroup/*): attach on this cgroup2
    /// directory, relative to the cgroup2 root (as /proc/PID/cgroup shows it)
    /// or absolute under it (default: the selected containers' cgroups, else the root).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Tracers: a BPF ring buffer of SIZE bytes (a power of two: 256K, 1M,
    /// 16M) instead of the gadget's own. Smaller costs the agent less
    /// memory (twice SIZE) and holds a shorter burst; raise it when a run
    /// reports events lost in the kernel.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub ring_size: Option<u32>,
}

impl KindArgs {
    /// The first flag given that only toppers and snapshotters take.
    pub fn table_flag(&self) -> Option<&'static str> {
        if self.sort.is_some() {
            Some("--sort")
        } else if self.max_rows.is_some() {
            Some("--max-rows")
        } else {
            None
        }
    }

    /// Adds the flags given to the Run options.
    pub fn add_options(&self, opts: &mut HashMap<&str, Value<'_>>) {
        if let Some(s) = &self.sort {
            opts.insert(options::SORT, Value::from(s.clone()));
        }
        if let Some(i) = &self.interval {
            let ms = |d: &Duration| (d.as_millis() as u64).max(1);
            if let Some(all) = &i.all {
                opts.insert(options::INTERVAL_MS, Value::U64(ms(all)));
            }
            if !i.per_source.is_empty() {
                let per: HashMap<String, u64> = i
                    .per_source
                    .iter()
                    .map(|(s, d)| (s.clone(), ms(d)))
                    .collect();
                opts.insert(options::INTERVAL_MS_PER_SOURCE, Value::from(per));
            }
        }
        if let Some(m) = &self.max_rows {
            if let Some(n) = m.all {
                opts.insert(options::MAX_ROWS, Value::U32(n));
            }
            if !m.per_source.is_empty() {
                opts.insert(
                    options::MAX_ROWS_PER_SOURCE,
                    Value::from(m.per_source.clone()),
                );
            }
        }
        if self.all_netns {
            opts.insert(options::ALL_NETNS, Value::Bool(true));
        }
        if !self.netns.is_empty() {
            opts.insert(options::NETNS_IDS, Value::from(self.netns.clone()));
        }
        if let Some(iface) = &self.iface {
            opts.insert(options::IFACE, Value::from(iface.clone()));
        }
        if let Some(cgroup) = &self.cgroup {
            opts.insert(options::CGROUP, Value::from(cgroup.clone()));
        }
        if let Some(bytes) = self.ring_size {
            opts.insert(options::RING_BUFFER_BYTES, Value::U32(bytes));
        }
    }
}

/// `--interval`: a period for every periodic source and/or per data source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intervals {
    pub all: Option<Duration>,
    pub per_source: HashMap<String, Duration>,
}

/// `DURATION`, `SOURCE:DURATION`, or several of them comma-separated.
fn parse_interval(text: &str) -> Result<Intervals, String> {
    let mut i = Intervals::default();
    for item in text.split(',').map(str::trim) {
        let (source, d) = match item.split_once(':') {
            Some((s, d)) => (Some(s), d),
            None => (None, item),
        };
        let d = humantime::parse_duration(d.trim()).map_err(|e| {
            format!(
                "`{}`: expected a duration (500ms, 2s) or SOURCE:DURATION (e.g. 2s,totals:500ms): {e}",
                crate::escape::terminal(item)
            )
        })?;
        if d.is_zero() {
            return Err(format!(
                "`{}`: the interval must be longer than 0",
                crate::escape::terminal(item)
            ));
        }
        match source {
            Some(s) if !s.is_empty() => {
                i.per_source.insert(s.to_string(), d);
            }
            Some(_) => {
                return Err(format!(
                    "`{}`: no data source before `:`",
                    crate::escape::terminal(item)
                ));
            }
            None => i.all = Some(d),
        }
    }
    Ok(i)
}

/// `--ring-size`: bytes, or a number with a binary unit (`512K`, `1M`,
/// `1MiB`, `1G`). The agent checks that it is a power of two in range.
fn parse_size(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KIB" => 10,
        "M" | "MIB" => 20,
        "G" | "GIB" => 30,
        _ => return Err(size_err(text)),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| size_err(text))
}

fn size_err(text: &str) -> String {
    format!(
        "`{}`: expected a size in bytes, or with K, M or G (e.g. 256K, 1M), below 4G",
        crate::escape::terminal(text)
    )
}

/// `--max-rows`: a limit for every table source and/or per data source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaxRows {
    pub all: Option<u32>,
    pub per_source: HashMap<String, u32>,
}

/// `N`, `SOURCE:N`, or several of them comma-separated.
fn parse_max_rows(text: &str) -> Result<MaxRows, String> {
    let mut m = MaxRows::default();
    for item in text.split(',').map(str::trim) {
        let (source, n) = match item.split_once(':') {
            Some((s, n)) => (Some(s), n),
            None => (None, item),
        };
        let n: u32 = n.parse().map_err(|_| {
            format!(
                "`{}`: expected a row count N or SOURCE:N (e.g. 10,totals:5)",
                crate::escape::terminal(item)
            )
        })?;
        match source {
            Some(s) if !s.is_empty() => {
                m.per_source.insert(s.to_string(), n);
            }
            Some(_) => {
                return Err(format!(
                    "`{}`: no data source before `:`",
                    crate::escape::terminal(item)
                ));
            }
            None => m.all = Some(n),
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_takes_bytes_and_binary_units() {
        for (text, bytes) in [
            ("4096", 4096),
            ("256K", 256 * 1024),
            ("256k", 256 * 1024),
            ("1M", 1 << 20),
            ("1MiB", 1 << 20),
            ("16M", 16 << 20),
            ("1G", 1 << 30),
            ("3G", 3 << 30),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for text in [
            "",
            "M",
            "1.5M",
            "1MB",
            "-1",
            "4G",
            "99999999999",
            "1 M",
            "1M\x1b[2J",
        ] {
            let e = parse_size(text).unwrap_err();
            assert!(e.contains("expected a size in bytes"), "{text}: {e}");
            assert!(!e.contains('\x1b'), "{e}");
        }
    }

    #[test]
    fn interval_takes_a_duration_and_durations_per_source() {
        assert_eq!(
            parse_interval("2s").unwrap(),
            Intervals {
                all: Some(Duration::from_secs(2)),
                ..Intervals::default()
            }
        );
        let i = parse_interval("2s,totals:500ms, whos:1m").unwrap();
        assert_eq!(i.all, Some(Duration::from_secs(2)));
        assert_eq!(
            i.per_source,
            HashMap::from([
                ("totals".to_string(), Duration::from_millis(500)),
                ("whos".to_string(), Duration::from_secs(60)),
            ])
        );
        assert!(
            parse_interval("totals:0s")
                .unwrap_err()
                .contains("longer than 0")
        );
        assert!(
            parse_interval(":1s")
                .unwrap_err()
                .contains("no data source")
        );
        assert!(
            parse_interval("totals:soon")
                .unwrap_err()
                .starts_with("`totals:soon`: expected a duration")
        );
    }

    #[test]
    fn max_rows_takes_a_count_and_counts_per_source() {
        assert_eq!(
            parse_max_rows("10").unwrap(),
            MaxRows {
                all: Some(10),
                ..MaxRows::default()
            }
        );
        let m = parse_max_rows("7,totals:5").unwrap();
        assert_eq!((m.all, m.per_source.get("totals")), (Some(7), Some(&5)));
        assert_eq!(
            parse_max_rows("totals:x").unwrap_err(),
            "`totals:x`: expected a row count N or SOURCE:N (e.g. 10,totals:5)"
        );
        assert!(parse_max_rows(":3").is_err());
    }
}
