//! How full a BPF ring buffer is, read from its position pages without a
//! syscall.
//!
//! A ring buffer's first two pages hold the consumer and the producer
//! position (bytes ever consumed and produced, as `u64`s); the kernel lets
//! any process holding the map fd map them read-only. The reader uses the
//! difference to tell a wake-up meaning "the ring is filling up" (drain now)
//! from one meaning "the first record since the last drain" (drain at the
//! end of the batching pause), see `reader.rs`.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};

/// The consumer and producer pages of one ring, mapped read-only.
pub struct RingFill {
    base: std::ptr::NonNull<libc::c_void>,
    page: usize,
}

// SAFETY: the mapping is read-only memory shared with the kernel; it is
// only read through atomics and unmapped once, on drop.
unsafe impl Send for RingFill {}
unsafe impl Sync for RingFill {}

impl RingFill {
    /// Maps the position pages of the ring buffer map `fd`.
    ///
    /// Errors: the mmap error (e.g. `EPERM` for a map that is not a ring
    /// buffer).
    pub fn new(fd: BorrowedFd<'_>) -> std::io::Result<RingFill> {
        use std::os::fd::AsRawFd;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        // SAFETY: a new read-only shared mapping of two pages of a map fd
        // the caller keeps open; the result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RingFill {
            base: std::ptr::NonNull::new(base).expect("mmap returned NULL without failing"),
            page,
        })
    }

    fn position(&self, offset: usize) -> u64 {
        // SAFETY: `offset` is 0 or one page, inside the two mapped pages;
        // the kernel updates the position with release stores, so it is
        // read as an atomic.
        let p = unsafe { &*(self.base.as_ptr().cast::<u8>().add(offset) as *const AtomicU64) };
        p.load(Ordering::Acquire)
    }

    /// Bytes produced and not yet consumed (record headers included).
    pub fn waiting(&self) -> u64 {
        let consumer = self.position(0);
        let producer = self.position(self.page);
        producer.saturating_sub(consumer)
    }
}

impl Drop for RingFill {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once.
        unsafe { libc::munmap(self.base.as_ptr(), 2 * self.page) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn an_fd_that_cannot_be_mapped_is_an_error() {
        // /dev/null has no mmap: the error comes back, nothing panics.
        let null = std::fs::File::open("/dev/null").unwrap();
        let err = RingFill::new(null.as_fd()).err().expect("/dev/null mapped");
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
    }
}
