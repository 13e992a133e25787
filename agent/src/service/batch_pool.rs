//! Batch buffers recycled between the run's pump and its clients' writers.
//!
//! A full batch is handed to every client as one shared [`Bytes`] without a
//! copy. Allocating a fresh 512 KiB buffer for the next one cost a new
//! mapping and a page fault for every page the decoder touched (a fifth of
//! the agent's CPU under a flood, measured with `perf`); here the buffer
//! comes back when the last client has written it, and the next batch is
//! decoded into pages that are already there.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Buffers of one run: at most `keep` wait in the pool (more are freed).
pub struct BatchPool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    capacity: usize,
    keep: usize,
}

impl BatchPool {
    /// Buffers of `capacity` bytes; at most `keep` kept when not in use.
    pub fn new(capacity: usize, keep: usize) -> BatchPool {
        BatchPool {
            free: Arc::default(),
            capacity,
            keep,
        }
    }

    /// An empty buffer of the pool's capacity: a returned one when there is
    /// one, else a new one.
    pub fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .unwrap()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    /// `buf` as shared bytes; the buffer goes back to the pool when the last
    /// of them is dropped.
    pub fn share(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            free: self.free.clone(),
            keep: self.keep,
            capacity: self.capacity,
        })
    }
}

/// A batch on its way to the clients.
struct Pooled {
    buf: Vec<u8>,
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    keep: usize,
    capacity: usize,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        // Only buffers of the pool's size come back (not one grown by a
        // huge event, which is freed).
        if buf.capacity() != self.capacity {
            return;
        }
        buf.clear();
        let mut free = self.free.lock().unwrap();
        if free.len() < self.keep {
            free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_buffer_comes_back_when_its_last_reader_drops_it() {
        let pool = BatchPool::new(4096, 2);
        let mut buf = pool.take();
        let addr = buf.as_ptr();
        buf.extend_from_slice(b"{\"a\":1}\n");
        let shared = pool.share(buf);
        let client2 = shared.clone();
        assert_eq!(&shared[..], b"{\"a\":1}\n");
        drop(shared);
        // One client still holds it: not back yet, a new buffer comes.
        let other = pool.take();
        assert_ne!(other.as_ptr(), addr);
        drop(client2);
        let again = pool.take();
        assert_eq!(
            (again.as_ptr(), again.len()),
            (addr, 0),
            "the same buffer, empty"
        );
        assert_eq!(again.capacity(), 4096);
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound_and_never_a_grown_buffer() {
        let pool = BatchPool::new(64, 2);
        let shared: Vec<Bytes> = (0..5).map(|_| pool.share(pool.take())).collect();
        drop(shared);
        assert_eq!(pool.free.lock().unwrap().len(), 2);
        let a = pool.take();
        let b = pool.take();
        let c = pool.take(); // a new one: the pool is empty
        assert!(pool.free.lock().unwrap().is_empty());
        let mut grown = c;
        grown.extend_from_slice(&[0u8; 100]); // past the capacity: reallocated
        drop(pool.share(grown));
        assert!(
            pool.free.lock().unwrap().is_empty(),
            "a grown buffer is freed"
        );
        drop((a, b));
    }
}
