//! The agent process's resident memory, CPU time, open descriptors and
//! start time, under the names every Prometheus client library uses
//! (`process_*`), read from `/proc/self`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads `/proc/self` on each scrape.
#[derive(Debug)]
pub struct ProcessCollector;

/// What `/proc/self/stat` says, in base units.
#[derive(Debug, Default, PartialEq)]
pub struct ProcStat {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Virtual memory size, bytes.
    pub vsize_bytes: u64,
    /// Start time, seconds since the epoch.
    pub start_time_seconds: f64,
}

/// Parses `/proc/PID/stat` (fields after the parenthesized command name).
pub fn parse_stat(
    stat: &str,
    ticks_per_sec: f64,
    page_size: u64,
    boot_time: f64,
) -> Option<ProcStat> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22,
    // vsize 23, rss 24.
    let num = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some(ProcStat {
        cpu_seconds: (num(14)? + num(15)?) as f64 / ticks_per_sec,
        start_time_seconds: boot_time + num(22)? as f64 / ticks_per_sec,
        vsize_bytes: num(23)?,
        rss_bytes: num(24)? * page_size,
    })
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The agent's own numbers now, or `None` when /proc cannot be read.
pub fn own() -> Option<ProcStat> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // SAFETY: sysconf has no preconditions.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    parse_stat(&stat, ticks.max(1) as f64, page.max(1) as u64, boot_time()?)
}

fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stat) = own() else { return Ok(()) };
        let cpu = ConstCounter::new(stat.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stat.rss_bytes as i64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stat.vsize_bytes as i64,
            ),
        ] {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let start = ConstGauge::new(stat.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            None,
            start.metric_type(),
        )?)?;
        if let Some(n) = open_fds() {
            let g = ConstGauge::new(n);
            g.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let line = "4242 (gad) (d x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 8 0 1000 123456789 2048 18446744073709551615";
        let s = parse_stat(line, 100.0, 4096, 1_700_000_000.0).unwrap();
        assert_eq!(
            s,
            ProcStat {
                cpu_seconds: 4.0,
                rss_bytes: 2048 * 4096,
                vsize_bytes: 123456789,
                start_time_seconds: 1_700_000_010.0,
            }
        );
        assert_eq!(parse_stat("12 (x) S 1", 100.0, 4096, 0.0), None);
    }
}
