//! An overwritable perf ring on one CPU: the kernel writes records
//! backward (`write_backward`) into a read-only mapping, so the newest
//! records always fit and the oldest are overwritten, a flight recorder.
//! It is read once, after pausing it ([`BackwardRing::pause`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{Ordering, fence};

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_FORMAT_LOST: u64 = 1 << 4;
/// `perf_event_attr.write_backward`, bit 27 of the flag bits.
const WRITE_BACKWARD: u64 = 1 << 27;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_RECORD_SAMPLE: u32 = 9;
/// `_IOW('$', 9, __u32)`.
const PERF_EVENT_IOC_PAUSE_OUTPUT: libc::c_ulong = 0x4004_2409;
/// Offset of `data_head` in `struct perf_event_mmap_page`.
const DATA_HEAD: usize = 1024;

/// A mapped backward perf ring on one CPU. Dropping it unmaps and closes it.
pub struct BackwardRing {
    fd: OwnedFd,
    base: *mut u8,
    map_len: usize,
    page: usize,
    /// Bytes of the data area (a power of two).
    size: usize,
}

// SAFETY: the mapping is owned by this value and only read.
unsafe impl Send for BackwardRing {}
// SAFETY: as above: nothing writes through the mapping.
unsafe impl Sync for BackwardRing {}

impl BackwardRing {
    /// Opens a `PERF_COUNT_SW_BPF_OUTPUT` event writing backward on `cpu`
    /// with `pages` data pages (a power of two), mapped read-only.
    pub fn open(cpu: u32, pages: usize) -> io::Result<BackwardRing> {
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&PERF_TYPE_SOFTWARE.to_ne_bytes());
        attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
        attr[8..16].copy_from_slice(&PERF_COUNT_SW_BPF_OUTPUT.to_ne_bytes());
        attr[16..24].copy_from_slice(&1u64.to_ne_bytes()); // sample_period
        attr[24..32].copy_from_slice(&PERF_SAMPLE_RAW.to_ne_bytes());
        attr[32..40].copy_from_slice(&PERF_FORMAT_LOST.to_ne_bytes());
        attr[40..48].copy_from_slice(&WRITE_BACKWARD.to_ne_bytes());
        // No wakeups: nobody waits on a flight recorder.
        // SAFETY: perf_event_open(2) with a fully initialised attr buffer.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr.as_ptr(),
                -1 as libc::pid_t,
                cpu as libc::c_int,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let map_len = (pages + 1) * page;
        // SAFETY: a read-only mapping is what makes the ring overwritable
        // (perf_event_open(2), "overwrite mode").
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(BackwardRing {
            fd,
            base: base.cast(),
            map_len,
            page,
            size: pages * page,
        })
    }

    /// Stops the kernel writing into the ring (records are dropped, counted lost).
    pub fn pause(&self) -> io::Result<()> {
        // SAFETY: ioctl on our perf fd with an integer argument.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), PERF_EVENT_IOC_PAUSE_OUTPUT as _, 1) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Samples the kernel could not store since the event was opened.
    pub fn lost_total(&self) -> io::Result<u64> {
        let mut values = [0u64; 2]; // value, lost
        // SAFETY: read(2) into a buffer of the size read_format implies.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                values.as_mut_ptr().cast(),
                std::mem::size_of_val(&values),
            )
        };
        if n != std::mem::size_of_val(&values) as isize {
            return Err(io::Error::last_os_error());
        }
        Ok(values[1])
    }

    /// Calls `f` with the raw data of every complete sample in the ring,
    /// newest first. Call after [`BackwardRing::pause`].
    pub fn read_all(&self, mut f: impl FnMut(&[u8])) {
        // SAFETY: the header page is mapped for our lifetime.
        let head = unsafe { std::ptr::read_volatile(self.base.add(DATA_HEAD).cast::<u64>()) };
        fence(Ordering::Acquire);
        // SAFETY: the data area follows the header page.
        let data = unsafe { std::slice::from_raw_parts(self.base.add(self.page), self.size) };
        // Written backward from 0: [head, 0) holds records, at most one ring.
        let avail = 0u64.wrapping_sub(head).min(self.size as u64) as usize;
        walk(data, head as usize % self.size, avail, &mut f);
    }
}

/// The samples in the `avail` bytes of circular `data` from `start`; a
/// record running past them (partly overwritten) ends the walk.
fn walk(data: &[u8], start: usize, avail: usize, f: &mut impl FnMut(&[u8])) {
    let mut scratch = Vec::new();
    let mut done = 0usize;
    while done + 8 <= avail {
        let at = (start + done) % data.len();
        let header = wrapped(data, at, 8, &mut scratch).to_vec();
        let kind = u32::from_ne_bytes(header[0..4].try_into().unwrap());
        let len = u16::from_ne_bytes(header[6..8].try_into().unwrap()) as usize;
        if len < 8 || done + len > avail {
            break;
        }
        if kind == PERF_RECORD_SAMPLE && len >= 12 {
            let record = wrapped(data, at, len, &mut scratch);
            let raw = u32::from_ne_bytes(record[8..12].try_into().unwrap()) as usize;
            f(&record[12..(12 + raw).min(len)]);
        }
        done += len;
    }
}

fn wrapped<'a>(data: &'a [u8], at: usize, len: usize, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if at + len <= data.len() {
        return &data[at..at + len];
    }
    scratch.clear();
    scratch.extend_from_slice(&data[at..]);
    scratch.extend_from_slice(&data[..len - (data.len() - at)]);
    scratch
}

impl Drop for BackwardRing {
    fn drop(&mut self) {
        // SAFETY: unmapping what open() mapped; nothing borrows it past drop.
        unsafe { libc::munmap(self.base.cast(), self.map_len) };
    }
}

impl AsRawFd for BackwardRing {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for BackwardRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8]) -> Vec<u8> {
        let len = 12 + payload.len();
        let mut r = PERF_RECORD_SAMPLE.to_ne_bytes().to_vec();
        r.extend(0u16.to_ne_bytes());
        r.extend((len as u16).to_ne_bytes());
        r.extend((payload.len() as u32).to_ne_bytes());
        r.extend(payload);
        r
    }

    #[test]
    fn walks_wrapped_records_and_stops_at_a_partial_one() {
        // Three 16-byte records laid out from offset 40 of a 64-byte ring:
        // the second wraps around the end; a fourth is cut short.
        let mut data = vec![0u8; 64];
        let recs: Vec<Vec<u8>> = [b"aaaa", b"bbbb", b"cccc"]
            .iter()
            .map(|p| sample(*p))
            .collect();
        let stream: Vec<u8> = recs.concat();
        for (i, b) in stream.iter().enumerate() {
            data[(40 + i) % 64] = *b;
        }
        let mut seen = Vec::new();
        walk(&data, 40, 48, &mut |d| seen.push(d.to_vec()));
        assert_eq!(seen, [b"aaaa".to_vec(), b"bbbb".to_vec(), b"cccc".to_vec()]);
        let mut seen = Vec::new();
        walk(&data, 40, 40, &mut |d| seen.push(d.to_vec()));
        assert_eq!(seen, [b"aaaa".to_vec(), b"bbbb".to_vec()]);
    }
}
