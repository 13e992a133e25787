//! `gadgetctl run` flags of toppers, profilers and snapshotters.

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
    /// histogram every INTERVAL, not only at the end.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "INTERVAL")]
    pub interval: Option<Duration>,
    /// Toppers, snapshotters: at most N rows per table (toppers default to 20).
    #[arg(long, value_name = "N")]
    pub max_rows: Option<u32>,
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
        if let Some(i) = self.interval {
            opts.insert(
                options::INTERVAL_MS,
                Value::U64((i.as_millis() as u64).max(1)),
            );
        }
        if let Some(n) = self.max_rows {
            opts.insert(options::MAX_ROWS, Value::U32(n));
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
    }
}
