//! The live handle of a run's `gadget_mntns_filter_map`, so the selection
//! can change while the programs run (containers start and stop).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};

use aya::Ebpf;
use aya::maps::{HashMap, MapData};

use super::error::{GadgetError, Result};

pub const MAP_NAME: &str = "gadget_mntns_filter_map";

/// Told of each id added (`true`) or removed (`false`) through
/// [`MntnsFilterMap::insert`] and [`MntnsFilterMap::remove`] (traceloop's
/// per-namespace buffers follow the selection this way).
pub type Observer = Arc<dyn Fn(u64, bool) + Send + Sync>;

pub struct MntnsFilterMap {
    map: Mutex<HashMap<MapData, u64, u32>>,
    observer: OnceLock<Observer>,
    /// The same map, for programs that write it too (`catchup.rs`).
    fd: OwnedFd,
}

impl MntnsFilterMap {
    /// Takes the map out of a loaded object and fills it with `ids`.
    pub fn take(ebpf: &mut Ebpf, ids: &[u64]) -> Result<MntnsFilterMap> {
        let err = |reason: String| GadgetError::Param {
            name: "mntns filter".into(),
            reason,
        };
        let map = ebpf
            .take_map(MAP_NAME)
            .ok_or_else(|| err(format!("{MAP_NAME} is missing")))?;
        let fd = match &map {
            aya::maps::Map::HashMap(data) => data
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| err(format!("{MAP_NAME}: duplicating its fd: {e}")))?,
            _ => return Err(err(format!("{MAP_NAME} is not a hash map"))),
        };
        let hash = HashMap::<MapData, u64, u32>::try_from(map)
            .map_err(|e| err(format!("{MAP_NAME}: {e}")))?;
        let filter = MntnsFilterMap {
            map: Mutex::new(hash),
            observer: OnceLock::new(),
            fd,
        };
        for id in ids {
            filter.insert(*id)?;
        }
        Ok(filter)
    }

    /// Lets events of mount namespace `id` through.
    pub fn insert(&self, id: u64) -> Result<()> {
        self.map
            .lock()
            .unwrap()
            .insert(id, 1, 0)
            .map_err(|e| GadgetError::Load(format!("{MAP_NAME}: adding {id}: {e}")))?;
        if let Some(o) = self.observer.get() {
            o(id, true);
        }
        Ok(())
    }

    /// Sets the one observer of later changes (a second is ignored).
    pub fn observe(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    /// Stops events of mount namespace `id` (absent ids are fine).
    pub fn remove(&self, id: u64) {
        let _ = self.map.lock().unwrap().remove(&id);
        if let Some(o) = self.observer.get() {
            o(id, false);
        }
    }

    /// The map's fd (programs that add to the filter from the kernel reuse it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The ids in the map now.
    pub fn ids(&self) -> Vec<u64> {
        self.map
            .lock()
            .unwrap()
            .keys()
            .filter_map(|k| k.ok())
            .collect()
    }
}
