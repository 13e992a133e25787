//! Run options of the gadget kinds (toppers, profilers, snapshotters),
//! parsed from the `a{sv}` options of `Run`/`RunObject`.

use std::time::Duration;

use gadgetd_dbus::types::options;
use zbus::fdo;
use zbus::zvariant::OwnedValue;

use gadgetd_runtime::RunOptions;

/// The option keys [`KindOptions::accept`] takes.
pub const KEYS: &[&str] = &[
    options::INTERVAL_MS,
    options::INTERVAL_MS_PER_SOURCE,
    options::SORT,
    options::MAX_ROWS,
    options::MAX_ROWS_PER_SOURCE,
    options::ALL_NETNS,
    options::NETNS_IDS,
    options::IFACE,
    options::CGROUP,
    options::RING_BUFFER_BYTES,
];

/// Options for [`RunOptions`] beyond parameters.
#[derive(Debug, Clone, Default)]
pub struct KindOptions {
    pub interval: Option<Duration>,
    pub interval_per_source: std::collections::BTreeMap<String, Duration>,
    pub sort: Option<String>,
    pub max_rows: Option<usize>,
    pub max_rows_per_source: std::collections::BTreeMap<String, usize>,
    pub all_netns: bool,
    pub netns_ids: Option<Vec<u64>>,
    /// tc programs' interface, checked for shape.
    pub iface: Option<String>,
    /// Cgroup programs' cgroup2 directory, resolved inside the hierarchy.
    pub cgroup: Option<std::path::PathBuf>,
    /// Tracers' ring buffer size in bytes, checked (a power of two in range).
    pub ring_buffer_bytes: Option<u32>,
}

impl KindOptions {
    /// Takes `key` if it is one of ours; `Ok(false)` leaves it to the caller.
    pub fn accept(&mut self, key: &str, value: &OwnedValue) -> fdo::Result<bool> {
        let bad = |ty: &str| fdo::Error::InvalidArgs(format!("option {key} must be {ty}"));
        match key {
            options::INTERVAL_MS => {
                let ms = u64::try_from(value).map_err(|_| bad("a u64 (t)"))?;
                if ms == 0 {
                    return Err(fdo::Error::InvalidArgs(format!(
                        "option {key} must be at least 1 ms"
                    )));
                }
                self.interval = Some(Duration::from_millis(ms));
            }
            options::INTERVAL_MS_PER_SOURCE => {
                let map: std::collections::HashMap<String, u64> = value
                    .try_clone()
                    .ok()
                    .and_then(|v| std::collections::HashMap::try_from(v).ok())
                    .ok_or_else(|| bad("a dict of data source to milliseconds (a{st})"))?;
                if let Some((source, _)) = map.iter().find(|(_, ms)| **ms == 0) {
                    return Err(fdo::Error::InvalidArgs(format!(
                        "option {key}: the interval of `{source}` must be at least 1 ms"
                    )));
                }
                self.interval_per_source = map
                    .into_iter()
                    .map(|(k, ms)| (k, Duration::from_millis(ms)))
                    .collect();
            }
            options::SORT => {
                self.sort = Some(string(value).ok_or_else(|| bad("a string (s)"))?);
            }
            options::MAX_ROWS => {
                let n = u32::try_from(value).map_err(|_| bad("a u32 (u)"))?;
                self.max_rows = Some(n as usize);
            }
            options::MAX_ROWS_PER_SOURCE => {
                let map: std::collections::HashMap<String, u32> = value
                    .try_clone()
                    .ok()
                    .and_then(|v| std::collections::HashMap::try_from(v).ok())
                    .ok_or_else(|| bad("a dict of data source to u32 (a{su})"))?;
                self.max_rows_per_source = map.into_iter().map(|(k, n)| (k, n as usize)).collect();
            }
            options::ALL_NETNS => {
                self.all_netns = bool::try_from(value).map_err(|_| bad("a boolean (b)"))?
            }
            options::NETNS_IDS => {
                let ids: Vec<u64> = value
                    .try_clone()
                    .ok()
                    .and_then(|v| Vec::<u64>::try_from(v).ok())
                    .ok_or_else(|| bad("an array of u64 (at)"))?;
                self.netns_ids = Some(ids);
            }
            options::IFACE => {
                let name = string(value).ok_or_else(|| bad("a string (s)"))?;
                gadgetd_runtime::attach_target::check_iface(&name)
                    .map_err(|e| fdo::Error::InvalidArgs(format!("option {key}: {e}")))?;
                self.iface = Some(name);
            }
            options::CGROUP => {
                let spec = string(value).ok_or_else(|| bad("a string (s)"))?;
                let dir = gadgetd_runtime::attach_target::cgroup_dir(&spec)
                    .map_err(|e| fdo::Error::InvalidArgs(format!("option {key}: {e}")))?;
                self.cgroup = Some(dir);
            }
            options::RING_BUFFER_BYTES => {
                let bytes = u32::try_from(value).map_err(|_| bad("a u32 (u)"))?;
                gadgetd_runtime::ring_size::check(bytes)
                    .map_err(|e| fdo::Error::InvalidArgs(format!("option {key}: {e}")))?;
                self.ring_buffer_bytes = Some(bytes);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn apply(&self, opts: &mut RunOptions) {
        opts.interval = self.interval;
        opts.interval_per_source = self.interval_per_source.clone();
        opts.sort = self.sort.clone();
        opts.max_rows = self.max_rows;
        opts.max_rows_per_source = self.max_rows_per_source.clone();
        opts.all_netns = self.all_netns;
        opts.netns_ids = self.netns_ids.clone();
        opts.iface = self.iface.clone();
        opts.cgroups = self.cgroup.iter().cloned().collect();
        opts.ring_buffer_bytes = self.ring_buffer_bytes;
    }
}

fn string(value: &OwnedValue) -> Option<String> {
    value
        .try_clone()
        .ok()
        .and_then(|v| String::try_from(v).ok())
}
