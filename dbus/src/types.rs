//! Structs that cross the bus.

use serde::{Deserialize, Serialize};
use zbus::zvariant::{OwnedObjectPath, Type};

/// One row of `ListRuns`: everything `gadgetctl list` shows without a
/// round trip per run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct RunSummary {
    pub id: String,
    pub name: String,
    pub image: String,
    pub digest: String,
    /// `starting`, `running`, `stopped` or `failed`.
    pub state: String,
    pub detached: bool,
    /// Microseconds since the Unix epoch.
    pub started_at: u64,
    /// Uid of the caller who started the run.
    pub owner: u32,
    pub events_seen: u64,
    pub events_lost: u64,
    /// Why the run ended (empty while it runs).
    pub exit_reason: String,
    pub path: OwnedObjectPath,
}

/// Run states, as strings on the bus.
pub mod state {
    pub const STARTING: &str = "starting";
    pub const RUNNING: &str = "running";
    pub const STOPPED: &str = "stopped";
    pub const FAILED: &str = "failed";
}

/// Keys of the `options` dictionary of `Run`/`RunObject`/`RunDetached`.
pub mod options {
    /// `t`: stop the run after this many milliseconds.
    pub const TIMEOUT_MS: &str = "timeout-ms";
    /// `s`: a human name for the run (unique among live runs).
    pub const NAME: &str = "name";
    /// `b`: run detached: the call returns at once, events go to the
    /// journal, the run survives the client and agent restarts.
    pub const DETACH: &str = "detach";
    /// `b`: export the gadget's metrics on the agent's Prometheus endpoint.
    pub const METRICS: &str = "metrics";
    /// `b` (`Logs`): keep streaming new entries until the run ends.
    pub const FOLLOW: &str = "follow";
    /// `t` (`Logs`): only entries from this time on (microseconds since the epoch).
    pub const SINCE_US: &str = "since-us";
    /// `t`: toppers print every this many milliseconds (default 1000);
    /// profilers also print this often (default: only when stopped).
    pub const INTERVAL_MS: &str = "interval-ms";
    /// `a{st}`: the named data sources (toppers, profilers) print every
    /// this many milliseconds (wins over `interval-ms` for them).
    pub const INTERVAL_MS_PER_SOURCE: &str = "interval-ms-per-source";
    /// `s`: sort order of toppers and snapshots, `FIELD[,-FIELD]`.
    pub const SORT: &str = "sort";
    /// `u`: at most this many rows per table.
    pub const MAX_ROWS: &str = "max-rows";
    /// `a{su}`: at most this many rows per table of the named data sources
    /// (wins over `max-rows` for them).
    pub const MAX_ROWS_PER_SOURCE: &str = "max-rows-per-source";
    /// `b`: network snapshotters iterate every network namespace of the host.
    pub const ALL_NETNS: &str = "all-netns";
    /// `at`: network snapshotters and socket filters look at exactly these
    /// network namespaces (inodes, e.g. the selected containers').
    pub const NETNS_IDS: &str = "netns-ids";
    /// `s`: tc programs attach on this host interface (default: the
    /// selected containers' host-side veths).
    pub const IFACE: &str = "iface";
    /// `s`: cgroup programs attach on this cgroup2 directory, relative to
    /// the cgroup2 root or absolute under it (default: the selected
    /// containers' cgroups, else the root).
    pub const CGROUP: &str = "cgroup";
    /// `u`: the tracers' BPF ring buffers are this many bytes (a power of
    /// two, 4096 to 1 GiB) instead of the size the gadget declares. Perf
    /// event arrays keep their per-CPU size.
    pub const RING_BUFFER_BYTES: &str = "ring-buffer-bytes";
    /// `h` (`Run`, `RunObject`, `AttachWithOptions`): the agent writes this
    /// client's event lines straight into this fd (the caller's stdout: a
    /// pipe, FIFO or regular file, open for writing) instead of the
    /// returned stream, which keeps the header, control lines and the end
    /// line; every event counted as delivered is written before the end
    /// line is sent. The agent never reads or seeks it; other types are
    /// refused. Not with `detach`. docs/dbus.md, "Direct output".
    pub const OUTPUT_FD: &str = "output-fd";
}

/// Container selection keys of the `options` dictionary (docs/containers.md).
/// Without any of them a gadget sees every process.
pub mod container_options {
    /// `as`: container names, exact or globs (`web-*`).
    pub const CONTAINER_NAME: &str = "containername";
    /// `as`: container ids or unique prefixes.
    pub const CONTAINER_ID: &str = "container-id";
    /// `as`: runtimes: `docker`, `podman`, `containerd`, `cri-o`.
    pub const RUNTIME: &str = "runtime";
    /// `b`: also processes of the host (PID 1's mount namespace).
    pub const HOST: &str = "host";
    /// `s`: Kubernetes namespace (from CRI labels).
    pub const K8S_NAMESPACE: &str = "k8s-namespace";
    /// `s`: Kubernetes pod name (from CRI labels).
    pub const K8S_PODNAME: &str = "k8s-podname";
}
