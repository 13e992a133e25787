//! One CPU's perf ring for a `BPF_MAP_TYPE_PERF_EVENT_ARRAY`, opened with
//! `PERF_FORMAT_LOST` so the kernel's count of samples that did not fit can
//! be read at any time ([`PerfRing::lost_total`]).
//!
//! aya 0.14's perf buffers do not ask for that count, and the kernel writes
//! its LOST record only at the next sample that fits on the same CPU: a
//! burst that overflows a CPU's buffer, with no later event there, was never
//! reported. Here losses are read from the event itself, periodically and
//! when the run ends, and LOST records are skipped (they count the same
//! samples).
//!
//! [`PerfRing::open_overwritable`] opens the flight-recorder kind (the
//! traceloop operator's): the kernel writes backward into a read-only
//! mapping, overwriting the oldest records, and the ring is read once,
//! paused, with [`PerfRing::read_backward`].

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
/// `_IOW('$', 9, __u32)`.
const PERF_EVENT_IOC_PAUSE_OUTPUT: libc::c_ulong = 0x4004_2409;
const PERF_RECORD_SAMPLE: u32 = 9;
/// Offsets of `data_head` and `data_tail` in `struct perf_event_mmap_page`.
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;

/// A mapped perf ring on one CPU. Dropping it unmaps and closes it.
pub struct PerfRing {
    fd: OwnedFd,
    base: *mut u8,
    map_len: usize,
    page: usize,
    /// Bytes of the data area (a power of two).
    size: usize,
    /// Written backward into a read-only mapping ([`PerfRing::open_overwritable`]).
    overwritable: bool,
}

// SAFETY: the mapping is owned by this value and only touched through &mut
// self (drain) or read-only atomics of the kernel-shared header.
unsafe impl Send for PerfRing {}

impl PerfRing {
    /// Opens a `PERF_COUNT_SW_BPF_OUTPUT` event on `cpu` with `pages` data
    /// pages (a power of two) and maps it.
    pub fn open(cpu: u32, pages: usize) -> io::Result<PerfRing> {
        PerfRing::open_mode(cpu, pages, false)
    }

    /// Like [`PerfRing::open`], but overwritable: written backward, mapped
    /// read-only, no wake-ups; read it with [`PerfRing::read_backward`].
    pub fn open_overwritable(cpu: u32, pages: usize) -> io::Result<PerfRing> {
        PerfRing::open_mode(cpu, pages, true)
    }

    fn open_mode(cpu: u32, pages: usize, overwritable: bool) -> io::Result<PerfRing> {
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&PERF_TYPE_SOFTWARE.to_ne_bytes());
        attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
        attr[8..16].copy_from_slice(&PERF_COUNT_SW_BPF_OUTPUT.to_ne_bytes());
        attr[16..24].copy_from_slice(&1u64.to_ne_bytes()); // sample_period
        attr[24..32].copy_from_slice(&PERF_SAMPLE_RAW.to_ne_bytes());
        attr[32..40].copy_from_slice(&PERF_FORMAT_LOST.to_ne_bytes());
        if overwritable {
            attr[40..48].copy_from_slice(&WRITE_BACKWARD.to_ne_bytes());
        } else {
            attr[48..52].copy_from_slice(&1u32.to_ne_bytes()); // wakeup_events
        }
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
        // A read-only mapping is what makes the ring overwritable
        // (perf_event_open(2), "overwrite mode").
        let prot = match overwritable {
            true => libc::PROT_READ,
            false => libc::PROT_READ | libc::PROT_WRITE,
        };
        // SAFETY: mapping the perf fd as perf_event_open(2) documents.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(PerfRing {
            fd,
            base: base.cast(),
            map_len,
            page,
            size: pages * page,
            overwritable,
        })
    }

    /// Stops the kernel writing into the ring (later samples count as lost).
    pub fn pause(&self) -> io::Result<()> {
        // SAFETY: ioctl on our perf fd with an integer argument.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), PERF_EVENT_IOC_PAUSE_OUTPUT as _, 1) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// An overwritable ring's samples, newest first (call after
    /// [`PerfRing::pause`]); nothing for the other kind.
    pub fn read_backward(&self, scratch: &mut Vec<u8>, mut f: impl FnMut(&[u8])) {
        if !self.overwritable {
            return;
        }
        // SAFETY: the header page is mapped for our lifetime.
        let head = unsafe { std::ptr::read_volatile(self.base.add(DATA_HEAD).cast::<u64>()) };
        fence(Ordering::Acquire);
        // SAFETY: the data area follows the header page.
        let data = unsafe { std::slice::from_raw_parts(self.base.add(self.page), self.size) };
        // Written backward from 0: [head, 0) holds records, at most one ring.
        let avail = 0u64.wrapping_sub(head).min(self.size as u64) as usize;
        walk(data, head as usize % self.size, avail, scratch, &mut f);
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

    /// Calls `f` with the raw data of every sample in the ring and frees
    /// their space. `scratch` holds a sample that wraps around the end.
    pub fn drain(&mut self, scratch: &mut Vec<u8>, mut f: impl FnMut(&[u8])) {
        if self.overwritable {
            return; // read-only: data_tail cannot be written
        }
        // SAFETY: the header page is mapped for our lifetime; data_head is
        // written by the kernel, read with acquire ordering.
        let head = unsafe { std::ptr::read_volatile(self.base.add(DATA_HEAD).cast::<u64>()) };
        fence(Ordering::Acquire);
        // SAFETY: as above; data_tail is ours to read and write.
        let mut tail = unsafe { std::ptr::read_volatile(self.base.add(DATA_TAIL).cast::<u64>()) };
        // SAFETY: the data area follows the header page.
        let data = unsafe { std::slice::from_raw_parts(self.base.add(self.page), self.size) };
        while tail < head {
            let at = (tail as usize) % self.size;
            let mut header = [0u8; 8];
            header.copy_from_slice(read_wrapped(data, at, 8, scratch));
            let kind = u32::from_ne_bytes(header[0..4].try_into().unwrap());
            let len = u16::from_ne_bytes(header[6..8].try_into().unwrap()) as usize;
            if len < 8 {
                break; // corrupt: never loop forever
            }
            if kind == PERF_RECORD_SAMPLE && len >= 12 {
                let record = read_wrapped(data, at, len, scratch);
                let raw = u32::from_ne_bytes(record[8..12].try_into().unwrap()) as usize;
                f(&record[12..(12 + raw).min(len)]);
            }
            tail += len as u64;
        }
        fence(Ordering::Release);
        // SAFETY: tells the kernel the space up to `tail` is free.
        unsafe { std::ptr::write_volatile(self.base.add(DATA_TAIL).cast::<u64>(), tail) };
    }
}

/// The samples in the `avail` bytes of circular `data` from `start`; a
/// record running past them (partly overwritten) ends the walk.
fn walk(data: &[u8], start: usize, avail: usize, scratch: &mut Vec<u8>, f: &mut impl FnMut(&[u8])) {
    let mut done = 0usize;
    while done + 8 <= avail {
        let at = (start + done) % data.len();
        let mut header = [0u8; 8];
        header.copy_from_slice(read_wrapped(data, at, 8, scratch));
        let kind = u32::from_ne_bytes(header[0..4].try_into().unwrap());
        let len = u16::from_ne_bytes(header[6..8].try_into().unwrap()) as usize;
        if len < 8 || done + len > avail {
            break;
        }
        if kind == PERF_RECORD_SAMPLE && len >= 12 {
            let record = read_wrapped(data, at, len, scratch);
            let raw = u32::from_ne_bytes(record[8..12].try_into().unwrap()) as usize;
            f(&record[12..(12 + raw).min(len)]);
        }
        done += len;
    }
}

/// `len` bytes at `at` of the circular `data`, contiguous (copied into
/// `scratch` when they wrap).
fn read_wrapped<'a>(data: &'a [u8], at: usize, len: usize, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if at + len <= data.len() {
        return &data[at..at + len];
    }
    scratch.clear();
    scratch.extend_from_slice(&data[at..]);
    scratch.extend_from_slice(&data[..len - (data.len() - at)]);
    scratch
}

impl Drop for PerfRing {
    fn drop(&mut self) {
        // SAFETY: unmapping what open() mapped; nothing borrows it past drop.
        unsafe { libc::munmap(self.base.cast(), self.map_len) };
    }
}

impl AsRawFd for PerfRing {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PerfRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Puts the ring's fd in slot `cpu` of the perf event array `map_fd`.
pub fn install(map_fd: BorrowedFd<'_>, cpu: u32, ring: &PerfRing) -> io::Result<()> {
    let key = cpu;
    let value = ring.as_raw_fd() as u32;
    // union bpf_attr for BPF_MAP_UPDATE_ELEM: map_fd, pad, key, value, flags.
    let mut attr = [0u64; 4];
    attr[0] = map_fd.as_raw_fd() as u32 as u64;
    attr[1] = &key as *const u32 as u64;
    attr[2] = &value as *const u32 as u64;
    // SAFETY: bpf(2) with an attr that points at live locals.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            2 as libc::c_long, // BPF_MAP_UPDATE_ELEM
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    fn backward_walk_takes_wrapped_records_and_stops_at_a_partial_one() {
        // Three 16-byte records from offset 40 of a 64-byte ring: the
        // second wraps around the end.
        let mut data = vec![0u8; 64];
        let stream: Vec<u8> = [b"aaaa", b"bbbb", b"cccc"]
            .iter()
            .flat_map(|p| sample(*p))
            .collect();
        for (i, b) in stream.iter().enumerate() {
            data[(40 + i) % 64] = *b;
        }
        let mut scratch = Vec::new();
        let mut seen = Vec::new();
        walk(&data, 40, 48, &mut scratch, &mut |d| seen.push(d.to_vec()));
        assert_eq!(seen, [b"aaaa".to_vec(), b"bbbb".to_vec(), b"cccc".to_vec()]);
        // The third only partly in the window: the walk stops before it.
        let mut seen = Vec::new();
        walk(&data, 40, 40, &mut scratch, &mut |d| seen.push(d.to_vec()));
        assert_eq!(seen, [b"aaaa".to_vec(), b"bbbb".to_vec()]);
    }
}
