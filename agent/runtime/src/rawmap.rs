//! Reading hash maps whose key and value types are only known from BTF at
//! run time (toppers' `stats_*`, profilers' `hist_*`). aya's typed maps need
//! compile-time types, so this talks to the bpf(2) syscall with byte buffers,
//! using the batch commands: a 10,000-entry map is one or two syscalls.

use std::os::fd::AsRawFd;

use aya::maps::{Map, MapData};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
#[cfg_attr(not(feature = "bench-internals"), allow(dead_code))]
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;

/// Entries fetched per batch syscall.
const BATCH: u32 = 4096;

/// A hash map as raw key/value bytes.
pub struct RawHashMap {
    /// Kept open as is: programs loaded later refer to this very descriptor.
    data: MapData,
    pub key_size: usize,
    pub value_size: usize,
    /// Key and value buffers of the last read, reused between reads.
    keys: Vec<u8>,
    values: Vec<u8>,
}

#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<()> {
    // SAFETY: attr is a #[repr(C)] prefix of union bpf_attr for `cmd`, and every
    // pointer in it refers to a live buffer of the size the kernel will use.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl RawHashMap {
    /// Takes a hash (or LRU hash) map out of a loaded object.
    pub fn new(map: Map, key_size: usize, value_size: usize) -> Result<RawHashMap, String> {
        let data: MapData = match map {
            Map::HashMap(d) | Map::LruHashMap(d) => d,
            _ => return Err("expected a BPF_MAP_TYPE_HASH or BPF_MAP_TYPE_LRU_HASH map".into()),
        };
        // The kernel writes its own key/value sizes into our buffers: they
        // must be the sizes the BTF types say, or a read would overrun them.
        let info = data
            .info()
            .map_err(|e| format!("reading the map's info: {e}"))?;
        let (ks, vs) = (info.key_size() as usize, info.value_size() as usize);
        if (ks, vs) != (key_size, value_size) {
            return Err(format!(
                "the map's key/value sizes are {ks}/{vs} bytes but its BTF types are {key_size}/{value_size}: declare them with `__type(key, ...)` and `__type(value, ...)` only"
            ));
        }
        Ok(RawHashMap {
            data,
            key_size,
            value_size,
            keys: Vec::new(),
            values: Vec::new(),
        })
    }

    fn fd(&self) -> i32 {
        use std::os::fd::AsFd;
        self.data.fd().as_fd().as_raw_fd()
    }

    /// Reads every entry (and deletes them when `clear`); calls `row(key, value)`.
    pub fn read(
        &mut self,
        clear: bool,
        mut row: impl FnMut(&[u8], &[u8]),
    ) -> std::io::Result<usize> {
        match self.read_batched(clear, &mut row) {
            Ok(n) => Ok(n),
            // Kernels before 5.6 lack batch ops: fall back to key by key.
            Err(e)
                if e.raw_os_error() == Some(libc::EINVAL)
                    || e.raw_os_error() == Some(524 /* ENOTSUPP */) =>
            {
                self.read_one_by_one(clear, &mut row)
            }
            Err(e) => Err(e),
        }
    }

    fn read_batched(
        &mut self,
        clear: bool,
        row: &mut impl FnMut(&[u8], &[u8]),
    ) -> std::io::Result<usize> {
        let (ks, vs) = (self.key_size, self.value_size);
        self.keys.resize(ks * BATCH as usize, 0);
        self.values.resize(vs * BATCH as usize, 0);
        // The batch cursor is an opaque token the size of a key (at least 4 bytes).
        let mut cursor = vec![0u8; ks.max(8)];
        let mut next = vec![0u8; ks.max(8)];
        let mut total = 0;
        let mut first = true;
        let cmd = if clear {
            BPF_MAP_LOOKUP_AND_DELETE_BATCH
        } else {
            BPF_MAP_LOOKUP_BATCH
        };
        loop {
            let mut attr = BatchAttr {
                in_batch: if first { 0 } else { cursor.as_ptr() as u64 },
                out_batch: next.as_mut_ptr() as u64,
                keys: self.keys.as_mut_ptr() as u64,
                values: self.values.as_mut_ptr() as u64,
                count: BATCH,
                map_fd: self.fd() as u32,
                ..BatchAttr::default()
            };
            let r = sys_bpf(cmd, &mut attr);
            let done = match r {
                Ok(()) => false,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
                Err(e) => return Err(e),
            };
            for i in 0..attr.count as usize {
                row(
                    &self.keys[i * ks..(i + 1) * ks],
                    &self.values[i * vs..(i + 1) * vs],
                );
            }
            total += attr.count as usize;
            if done {
                return Ok(total);
            }
            std::mem::swap(&mut cursor, &mut next);
            first = false;
        }
    }

    /// Inserts or replaces one entry (for tests and benchmarks that fill maps).
    #[cfg_attr(not(feature = "bench-internals"), allow(dead_code))]
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        assert_eq!(
            (key.len(), value.len()),
            (self.key_size, self.value_size),
            "key/value sizes of this map"
        );
        let mut attr = ElemAttr {
            map_fd: self.fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            ..ElemAttr::default()
        };
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
    }

    /// Key by key (two syscalls per entry): what kernels without batch
    /// operations get; public so benchmarks can compare.
    pub fn read_one_by_one(
        &mut self,
        clear: bool,
        row: &mut impl FnMut(&[u8], &[u8]),
    ) -> std::io::Result<usize> {
        let (ks, vs) = (self.key_size, self.value_size);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut key = vec![0u8; ks];
        let mut next = vec![0u8; ks];
        let mut first = true;
        loop {
            let mut attr = ElemAttr {
                map_fd: self.fd() as u32,
                key: if first { 0 } else { key.as_ptr() as u64 },
                value: next.as_mut_ptr() as u64,
                ..ElemAttr::default()
            };
            match sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                Err(e) => return Err(e),
            }
            keys.push(next.clone());
            std::mem::swap(&mut key, &mut next);
            first = false;
        }
        let mut value = vec![0u8; vs];
        let mut n = 0;
        for k in &keys {
            let mut attr = ElemAttr {
                map_fd: self.fd() as u32,
                key: k.as_ptr() as u64,
                value: value.as_mut_ptr() as u64,
                ..ElemAttr::default()
            };
            if sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr).is_err() {
                continue; // deleted meanwhile
            }
            row(k, &value);
            n += 1;
            if clear {
                let mut attr = ElemAttr {
                    map_fd: self.fd() as u32,
                    key: k.as_ptr() as u64,
                    ..ElemAttr::default()
                };
                let _ = sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr);
            }
        }
        Ok(n)
    }
}
