//! The agent's list of running containers, fed by the watchers.
//!
//! Records are kept per source (one watcher = one socket), because the same
//! container can be seen twice: dockerd's containers also live in
//! containerd's `moby` namespace. Readers get one record per id, from the
//! most specific runtime (the one that knows the container's name).
//!
//! The event path reads only the [`Index`], rebuilt whole on each change
//! and published with [`ArcSwap`]: an enrichment takes no lock and
//! allocates nothing, and never waits behind a watcher's update. Each
//! thread keeps the index it last read with its generation number, so an
//! event costs one atomic load while nothing changes (an `ArcSwap::load`
//! per event was ~135 instructions, 4% of the agent's CPU under a flood).

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use tokio::sync::broadcast;

use super::Container;
use super::enrich::{EndpointValues, Fragments};
use gadgetd_runtime::enrich::NsKind;

/// A container started or stopped (as seen by one source).
#[derive(Debug, Clone)]
pub enum Change {
    Added(Arc<Container>),
    Removed(Arc<Container>),
    /// A container its runtime created and is about to start: no process
    /// yet (`pid`, `mntns`, `netns` and `cgroup` are empty), not listed.
    Created(Arc<Container>),
    /// A container that stopped or was deleted without ever being listed
    /// (it died during setup, or exited before its start was handled): its id.
    Vanished(String),
}

/// (source, id) → record.
type Records = BTreeMap<(String, String), Arc<Container>>;

/// What enrichment reads, derived from the records. Looked up per event:
/// Fx-hashed (the keys are namespace inodes and addresses the kernel hands
/// out, and the maps hold what the runtimes report, so collision flooding
/// is not a concern).
#[derive(Default)]
struct Index {
    /// mount namespace → pre-rendered enrichment fields.
    by_mntns: FxHashMap<u64, Arc<[u8]>>,
    /// network namespace → pre-rendered enrichment fields.
    by_netns: FxHashMap<u64, Arc<[u8]>>,
    /// container address → pre-rendered endpoint values.
    by_ip: FxHashMap<IpAddr, Arc<EndpointValues>>,
    /// The host's own addresses (loopback is always the host's).
    host_ips: FxHashSet<IpAddr>,
}

pub struct Registry {
    /// Written by the watchers; each change publishes a new `index`
    /// while the lock is held, so indexes follow the records' order.
    records: RwLock<Records>,
    index: ArcSwap<Index>,
    /// Bumped after each new `index` is stored ([`Registry::with_index`]).
    generation: AtomicU64,
    /// Process-unique, so a thread's cached index serves only its registry.
    id: u64,
    changes: broadcast::Sender<Change>,
    fragments: Fragments,
    /// Whether each runtime watcher is connected (for metrics).
    pub watcher_states: super::watchers::Watchers,
}

/// Which record wins when two sources report the same id: the runtime the
/// user talks to (it knows names) over containerd underneath it.
fn priority(runtime: &str) -> u8 {
    match runtime {
        "containerd" => 0,
        _ => 1,
    }
}

/// Source of [`Registry::id`].
static NEXT_REGISTRY_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The index this thread last enriched from: (registry id, generation
    /// it was read at, index). Holds one index per thread alive at most.
    static LAST_INDEX: RefCell<Option<(u64, u64, Arc<Index>)>> = const { RefCell::new(None) };
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            records: RwLock::default(),
            index: ArcSwap::default(),
            generation: AtomicU64::new(0),
            id: NEXT_REGISTRY_ID.fetch_add(1, Ordering::Relaxed),
            changes: broadcast::channel(4096).0,
            fragments: Fragments::default(),
            watcher_states: Default::default(),
        }
    }
}

impl Registry {
    /// Every runtime watcher and whether it is connected now.
    pub fn watchers(&self) -> Vec<super::watchers::WatcherState> {
        self.watcher_states.list()
    }

    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// Changes from now on. Subscribe before reading [`Registry::list`] so
    /// nothing falls between the two.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Adds or replaces a container seen by `source`.
    pub fn upsert(&self, source: &str, c: Container) {
        let c = Arc::new(c);
        let mut records = self.records.write().unwrap();
        let key = (source.to_string(), c.id.clone());
        let old = records.insert(key, c.clone());
        if old.as_deref() == Some(&*c) {
            return;
        }
        self.reindex(&records);
        drop(records);
        if let Some(old) = old {
            let _ = self.changes.send(Change::Removed(old));
        }
        tracing::debug!(source, id = %c.id, name = %c.name, pid = c.pid, mntns = c.mntns, "container added");
        let _ = self.changes.send(Change::Added(c));
    }

    /// Announces a container about to start (not recorded: it is not running).
    /// Containers that already exited are forgotten first: the new one's
    /// namespaces may reuse their inode numbers, and a runtime can report an
    /// exit after the next container's first exec (podman's event stream lags
    /// its CLI), which would give the new container's first events the old
    /// one's name.
    pub fn created(&self, c: Container) {
        self.forget_exited();
        tracing::debug!(id = %c.id, name = %c.name, runtime = %c.runtime, "container created");
        let _ = self.changes.send(Change::Created(Arc::new(c)));
    }

    /// Forgets a container of `source` (it stopped).
    pub fn remove(&self, source: &str, id: &str) {
        let mut records = self.records.write().unwrap();
        let Some(old) = records.remove(&(source.to_string(), id.to_string())) else {
            drop(records);
            let _ = self.changes.send(Change::Vanished(id.to_string()));
            return;
        };
        self.reindex(&records);
        drop(records);
        tracing::debug!(source, id, name = %old.name, "container removed");
        let _ = self.changes.send(Change::Removed(old));
    }

    /// Makes `source`'s records exactly `now` (after a (re)connect).
    pub fn replace_source(&self, source: &str, now: Vec<Container>) {
        let keep: std::collections::HashSet<String> = now.iter().map(|c| c.id.clone()).collect();
        let gone: Vec<String> = {
            let records = self.records.read().unwrap();
            records
                .keys()
                .filter(|(s, id)| s == source && !keep.contains(id))
                .map(|(_, id)| id.clone())
                .collect()
        };
        for id in gone {
            self.remove(source, &id);
        }
        for c in now {
            self.upsert(source, c);
        }
    }

    /// One record per container id, the most specific runtime's.
    pub fn list(&self) -> Vec<Arc<Container>> {
        dedup(self.records.read().unwrap().values())
    }

    /// Pre-rendered `,"runtime.containerName":...` fields for a mount namespace.
    pub fn mntns_fields(&self, mntns: u64) -> Option<Arc<[u8]>> {
        self.index.load().by_mntns.get(&mntns).cloned()
    }

    pub fn netns_fields(&self, netns: u64) -> Option<Arc<[u8]>> {
        self.index.load().by_netns.get(&netns).cloned()
    }

    /// Appends the endpoint fields of address `ip` under `keys`: the
    /// container (or pod) that holds it, else `host` for the host's own
    /// addresses, else `raw`. On the event hot path: no lock, no allocation.
    pub fn write_endpoint(
        &self,
        ip: IpAddr,
        keys: &gadgetd_runtime::enrich::EndpointKeys,
        out: &mut Vec<u8>,
    ) {
        self.with_index(|index| {
            if let Some(v) = index.by_ip.get(&ip) {
                keys.write(&v.0, out);
            } else if ip.is_loopback() || index.host_ips.contains(&ip) {
                keys.write(&self.fragments.host().0, out);
            } else {
                keys.write_raw(out);
            }
        })
    }

    /// Runs `f` on the current index: this thread's cached one when no
    /// index was published since it was read (one atomic load), else a
    /// fresh one, cached. An index published while `f` runs is seen by the
    /// next call, as with any load.
    fn with_index<R>(&self, f: impl FnOnce(&Index) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        LAST_INDEX.with_borrow_mut(|last| match last {
            Some((id, read_at, index)) if *id == self.id && *read_at == generation => f(index),
            _ => {
                // Read after the generation: at least as new as it.
                let index = self.index.load_full();
                let r = f(&index);
                *last = Some((self.id, generation, index));
                r
            }
        })
    }

    /// Reads the host's addresses again (they change as networks come and
    /// go, a runtime's bridge for one); done on every container change too.
    // The write lock orders this index after any other change's.
    #[allow(clippy::readonly_write_lock)]
    pub fn refresh_host_addresses(&self) {
        let records = self.records.write().unwrap();
        let now: FxHashSet<IpAddr> = super::procinfo::host_addresses().into_iter().collect();
        if self.index.load().host_ips != now {
            self.reindex_with(&records, now);
        }
    }

    /// Appends the enrichment fields of a namespace (empty values when no
    /// container owns it). On the event hot path: no lock, no allocation.
    pub fn write_fields(&self, ns: NsKind, id: u64, out: &mut Vec<u8>) {
        self.with_index(|index| {
            let by_ns = match ns {
                NsKind::Mnt => &index.by_mntns,
                NsKind::Net => &index.by_netns,
            };
            match by_ns.get(&id) {
                Some(f) => out.extend_from_slice(f),
                None => out.extend_from_slice(self.fragments.empty()),
            }
        })
    }

    /// Drops every record whose process is gone or left the container's
    /// mount namespace (records without a pid are kept).
    fn forget_exited(&self) {
        let exited: Vec<(String, String)> = {
            let records = self.records.read().unwrap();
            records
                .iter()
                .filter(|(_, c)| {
                    c.pid != 0 && super::procinfo::ns_inode(c.pid, "mnt") != Some(c.mntns)
                })
                .map(|(key, _)| key.clone())
                .collect()
        };
        for (source, id) in exited {
            tracing::debug!(source, id, "container exited before its runtime said so");
            self.remove(&source, &id);
        }
    }

    /// Drops `source`'s records whose process is gone or changed namespace
    /// (used while the source's runtime is unreachable).
    pub fn prune_dead(&self, source: &str) {
        let dead: Vec<String> = {
            let records = self.records.read().unwrap();
            records
                .iter()
                .filter(|((s, _), c)| {
                    s == source && super::procinfo::ns_inode(c.pid, "mnt") != Some(c.mntns)
                })
                .map(|((_, id), _)| id.clone())
                .collect()
        };
        for id in dead {
            self.remove(source, &id);
        }
    }

    /// Publishes the index of `records` (the caller holds their write lock).
    fn reindex(&self, records: &Records) {
        // Containers come with networks (a runtime's bridge): read the
        // host's addresses again.
        let host_ips = super::procinfo::host_addresses().into_iter().collect();
        self.reindex_with(records, host_ips);
    }

    fn reindex_with(&self, records: &Records, host_ips: FxHashSet<IpAddr>) {
        let list = dedup(records.values());
        let mut index = Index {
            host_ips,
            ..Index::default()
        };
        for c in &list {
            let values = Arc::new(self.fragments.endpoint(c));
            for ip in &c.ips {
                // An address the host holds too is the host's.
                if !index.host_ips.contains(ip) {
                    index.by_ip.entry(*ip).or_insert_with(|| values.clone());
                }
            }
            let frag: Arc<[u8]> = self.fragments.render(c).into();
            index
                .by_mntns
                .entry(c.mntns)
                .or_insert_with(|| frag.clone());
            // Pods share one network namespace; the first container names it.
            index.by_netns.entry(c.netns).or_insert(frag);
        }
        self.index.store(Arc::new(index));
        self.generation.fetch_add(1, Ordering::Release);
    }
}

fn dedup<'a>(records: impl Iterator<Item = &'a Arc<Container>>) -> Vec<Arc<Container>> {
    let mut by_id: BTreeMap<&str, &Arc<Container>> = BTreeMap::new();
    for c in records {
        let slot = by_id.entry(c.id.as_str()).or_insert(c);
        if priority(&c.runtime) > priority(&slot.runtime) {
            *slot = c;
        }
    }
    let mut out: Vec<_> = by_id.into_values().cloned().collect();
    // Stable order for listings: by runtime, then name.
    out.sort_by(|a, b| (&a.runtime, &a.name, &a.id).cmp(&(&b.runtime, &b.name, &b.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::K8s;

    fn c(id: &str, name: &str, runtime: &str, mntns: u64) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            runtime: runtime.into(),
            image: "img".into(),
            pid: 1,
            mntns,
            netns: mntns + 1,
            cgroup: String::new(),
            namespace: String::new(),
            k8s: K8s::default(),
            ips: Vec::new(),
        }
    }

    /// A container created while the record of one that exited is still
    /// there (its runtime reports the exit late) must not inherit that
    /// record's names through a reused namespace inode: exited records go.
    #[test]
    fn a_created_container_forgets_those_that_exited() {
        let own = crate::procinfo::ns_inode(std::process::id(), "mnt").unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let r = Registry::default();
        let mut alive = c("live", "alive", "docker", own);
        alive.pid = std::process::id();
        let mut exited = c("gone", "exited", "podman", own + 100);
        exited.pid = dead_pid;
        r.upsert("docker", alive);
        r.upsert("podman", exited);
        assert!(r.mntns_fields(own + 100).is_some());
        r.created(c("new", "new", "podman", 0));
        assert!(
            r.mntns_fields(own + 100).is_none(),
            "the exited container is forgotten"
        );
        assert!(r.mntns_fields(own).is_some(), "the live one stays");
        assert_eq!(r.list().len(), 1);
    }

    fn enriched(r: &Registry, mntns: u64) -> String {
        let mut out = Vec::new();
        r.write_fields(NsKind::Mnt, mntns, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// The index each thread caches between events: every change is seen
    /// by the next event on the same thread, from this thread or another,
    /// and two registries used in turn on one thread never see each
    /// other's containers.
    #[test]
    fn each_change_is_seen_by_the_next_event_on_every_thread() {
        let a = Arc::new(Registry::default());
        let b = Registry::default();
        let empty = enriched(&a, 7);
        assert!(!empty.contains("web"), "{empty}");
        a.upsert("docker", c("abc", "web", "docker", 7));
        assert!(enriched(&a, 7).contains("\"web\""), "{}", enriched(&a, 7));
        // Another registry on this thread: its own index, then back.
        assert_eq!(enriched(&b, 7), empty);
        b.upsert("docker", c("def", "db", "docker", 7));
        assert!(enriched(&b, 7).contains("\"db\""));
        assert!(enriched(&a, 7).contains("\"web\""));
        // A change made on another thread, seen here at once.
        let a2 = a.clone();
        std::thread::spawn(move || a2.remove("docker", "abc"))
            .join()
            .unwrap();
        assert_eq!(enriched(&a, 7), empty);
        assert!(enriched(&b, 7).contains("\"db\""));
        // And a change made here is seen by a thread that cached before it.
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (seen_tx, seen_rx) = std::sync::mpsc::channel::<String>();
        let a3 = a.clone();
        let t = std::thread::spawn(move || {
            seen_tx.send(enriched(&a3, 7)).unwrap();
            go_rx.recv().unwrap();
            seen_tx.send(enriched(&a3, 7)).unwrap();
        });
        assert_eq!(seen_rx.recv().unwrap(), empty);
        a.upsert("docker", c("ghi", "cache", "docker", 7));
        go_tx.send(()).unwrap();
        let after = seen_rx.recv().unwrap();
        t.join().unwrap();
        assert!(after.contains("\"cache\""), "{after}");
    }

    fn endpoint_json(r: &Registry, ip: &str) -> serde_json::Value {
        let keys = gadgetd_runtime::enrich::EndpointKeys::new("dst");
        let mut out = b"{\"dst\":\"x\"".to_vec();
        r.write_endpoint(ip.parse().unwrap(), &keys, &mut out);
        out.push(b'}');
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn endpoints_are_containers_pods_the_host_or_raw() {
        let r = Registry::default();
        let mut web = c("abc", "web", "docker", 7);
        web.ips = vec![
            "10.213.7.2".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        ];
        let mut pod = c("def", "app", "cri-o", 9);
        pod.ips = vec!["10.244.0.5".parse().unwrap()];
        pod.k8s = K8s {
            namespace: "demo".into(),
            pod_name: "mypod".into(),
            container_name: "app".into(),
        };
        r.upsert("docker:/a", web);
        r.upsert("cri:/b", pod);
        let v = endpoint_json(&r, "10.213.7.2");
        assert_eq!(
            v,
            serde_json::json!({"dst":"x","dst.kind":"container","dst.k8s.namespace":"","dst.k8s.name":"",
                "dst.runtime.containerName":"web","dst.runtime.containerId":"abc","dst.runtime.name":"docker"})
        );
        assert_eq!(
            endpoint_json(&r, "2001:db8::2")["dst.runtime.containerName"],
            "web"
        );
        let v = endpoint_json(&r, "10.244.0.5");
        assert_eq!(
            (
                &v["dst.kind"],
                &v["dst.k8s.namespace"],
                &v["dst.k8s.name"],
                &v["dst.runtime.name"]
            ),
            (
                &"pod".into(),
                &"demo".into(),
                &"mypod".into(),
                &"cri-o".into()
            )
        );
        for host in ["127.0.0.1", "127.0.0.53", "::1"] {
            let v = endpoint_json(&r, host);
            assert_eq!(v["dst.kind"], "host", "{host}");
            assert_eq!(v["dst.runtime.containerName"], "", "{host}");
        }
        let v = endpoint_json(&r, "192.0.2.1");
        assert_eq!(v["dst.kind"], "raw");
        assert_eq!(v["dst.runtime.containerId"], "");
        // A container that stopped: its address is nobody's now, not stale.
        r.remove("docker:/a", "abc");
        assert_eq!(endpoint_json(&r, "10.213.7.2")["dst.kind"], "raw");
    }

    #[test]
    fn same_id_from_two_sources_lists_once_and_prefers_the_named_record() {
        let r = Registry::default();
        let mut rx = r.subscribe();
        r.upsert("containerd:/a", c("abc", "abc", "containerd", 7));
        r.upsert("docker:/b", c("abc", "web", "docker", 7));
        let l = r.list();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "web");
        let frag = r.mntns_fields(7).unwrap();
        assert!(
            std::str::from_utf8(&frag)
                .unwrap()
                .contains("\"runtime.containerName\":\"web\"")
        );
        r.replace_source("docker:/b", vec![]);
        assert_eq!(r.list()[0].name, "abc");
        let mut seen = Vec::new();
        while let Ok(ch) = rx.try_recv() {
            seen.push(match ch {
                Change::Added(c) => format!("+{}", c.name),
                Change::Removed(c) => format!("-{}", c.name),
                Change::Created(c) => format!("*{}", c.name),
                Change::Vanished(id) => format!("?{id}"),
            });
        }
        assert_eq!(seen, ["+abc", "+web", "-web"]);
        r.remove("containerd:/a", "abc");
        assert!(r.list().is_empty());
        assert!(r.mntns_fields(7).is_none());
    }

    /// Enrichment never waits for the records' lock: with a writer holding
    /// it, every kind of lookup (mount and network namespace, endpoint)
    /// still answers, from the last published index.
    #[test]
    fn enrichment_reads_while_a_writer_holds_the_records() {
        let r = Registry::default();
        let mut web = c("abc", "web", "docker", 7);
        web.ips = vec!["10.213.7.2".parse().unwrap()];
        r.upsert("docker:/a", web);
        let writer = r.records.write().unwrap();
        let mut out = Vec::new();
        r.write_fields(NsKind::Mnt, 7, &mut out);
        r.write_fields(NsKind::Net, 8, &mut out);
        let fields = String::from_utf8(out).unwrap();
        assert_eq!(
            fields.matches("\"runtime.containerName\":\"web\"").count(),
            2,
            "{fields}"
        );
        assert_eq!(
            endpoint_json(&r, "10.213.7.2")["dst.runtime.containerName"],
            "web"
        );
        assert_eq!(endpoint_json(&r, "127.0.0.1")["dst.kind"], "host");
        drop(writer);
    }
}
