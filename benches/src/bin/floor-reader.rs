//! The floor of the trace_open benchmark: the same gadget object, loaded and
//! attached by the runtime's loader, drained by a reader that only counts
//! records (no decode, no JSON, no client).
//!
//! Usage: `floor-reader OBJECT TARG_PID EVENTS [RECORD_FILE]`
//!
//! Loads OBJECT with the `targ_pid` parameter set to TARG_PID, attaches every
//! program, prints `ready` on stdout, then drains the tracer ring buffer as the
//! agent's reader does (woken by the ring; after a drain that found records,
//! a pause of 5 ms before the next; a 250 ms safety tick) until records plus
//! kernel losses reach EVENTS or stdin closes. Last line:
//! `records LOST CPU_SECONDS` (lost: the gadget's per-CPU `<map>_lost_samples`
//! sum; CPU: this process, user + system). With RECORD_FILE, the records
//! seen are also written there, each as a 4-byte little-endian length and the
//! bytes (the decode check's fixture, `benches/fixtures/`).

use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitCode;

use aya::maps::{PerCpuArray, RingBuf};
use gadgetd_runtime::load::{self, LoadRequest};
use gadgetd_runtime::object::GadgetObject;
use gadgetd_runtime::ring_fill::RingFill;

/// `BPF_MAP_TYPE_RINGBUF`: the tracer's ring is the object's first one
/// (`print_events` in the decode fixture, `events` in gadgets/trace_open).
const RINGBUF: u32 = 27;
/// The agent reader's `SAFETY_TICK` and `BUSY_PAUSE` (agent/runtime/src/reader.rs).
const SAFETY_TICK_MS: i32 = 250;
const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);
use std::time::Instant;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor-reader: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (object, pid, events, record) = match args.as_slice() {
        [_, o, p, e] => (o, p, e, None),
        [_, o, p, e, r] => (o, p, e, Some(r)),
        _ => return Err("usage: floor-reader OBJECT TARG_PID EVENTS [RECORD_FILE]".into()),
    };
    let mut recording = match record {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("creating {path}: {e}"))?,
        )),
        None => None,
    };
    let pid: i32 = pid
        .parse()
        .map_err(|_| format!("TARG_PID must be a process id, not {pid:?}"))?;
    let events: u64 = events
        .parse()
        .map_err(|_| format!("EVENTS must be a count, not {events:?}"))?;
    let bytes = std::fs::read(object).map_err(|e| format!("reading {object}: {e}"))?;
    let obj = GadgetObject::parse(bytes).map_err(|e| format!("{object}: {e}"))?;
    let ring_name = obj
        .maps
        .iter()
        .find(|m| m.map_type == RINGBUF)
        .map(|m| m.name.clone())
        .ok_or_else(|| format!("{object} has no ring buffer map"))?;
    let ring_name = ring_name.as_str();
    let req = LoadRequest {
        obj: &obj,
        tracer_maps: vec![ring_name],
        globals: vec![("targ_pid".into(), pid.to_ne_bytes().to_vec())],
        max_entries: Vec::new(),
    };
    // As the agent does: the parsed kernel BTF is dropped once loaded.
    let release = load::KernelBtfRelease;
    let mut ebpf = load::load(&req).map_err(|e| format!("loading {object}: {e}"))?;
    drop(release);
    let _attached = load::attach_all(&mut ebpf, &obj).map_err(|e| format!("attaching: {e}"))?;
    let map = ebpf
        .take_map(ring_name)
        .ok_or_else(|| format!("{object} has no map {ring_name}"))?;
    let urgent = match &map {
        aya::maps::Map::RingBuf(data) => data.info().map_or(0, |i| i.max_entries()) / 4,
        _ => 0,
    };
    let mut ring = RingBuf::try_from(map).map_err(|e| format!("{ring_name}: {e}"))?;
    let fill = RingFill::new(ring.as_fd()).map_err(|e| format!("mapping {ring_name}: {e}"))?;
    let lost_map: Option<PerCpuArray<_, u64>> = ebpf
        .take_map(&format!("{ring_name}_lost_samples"))
        .and_then(|m| PerCpuArray::try_from(m).ok());
    let lost = || -> u64 {
        lost_map
            .as_ref()
            .and_then(|m| m.get(&0, 0).ok())
            .map_or(0, |v| v.iter().sum())
    };
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;

    // Edge-triggered, as tokio registers the agent's rings: one event per
    // kernel wake-up, not one per poll while records wait.
    // SAFETY: plain syscalls on fds this process owns; results checked.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(format!(
            "epoll_create1: {}",
            std::io::Error::last_os_error()
        ));
    }
    for (fd, flags) in [(ring.as_raw_fd(), libc::EPOLLET), (0, 0)] {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | flags) as u32,
            u64: fd as u64,
        };
        // SAFETY: `ev` is a valid epoll_event for the call.
        if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(format!("epoll_ctl: {}", std::io::Error::last_os_error()));
        }
    }
    let urgent = u64::from(urgent);
    let mut records = 0u64;
    let mut lost_now = 0;
    // The end of the pause after a drain that found records.
    let mut paused_until: Option<Instant> = None;
    let mut events_buf = [libc::epoll_event { events: 0, u64: 0 }; 2];
    while records + lost_now < events {
        let timeout = match paused_until {
            Some(end) => end
                .saturating_duration_since(Instant::now())
                .as_micros()
                .div_ceil(1000) as i32,
            None => SAFETY_TICK_MS,
        };
        // SAFETY: `events_buf` has room for the 2 events asked for.
        let n = unsafe { libc::epoll_wait(epoll, events_buf.as_mut_ptr(), 2, timeout) };
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("epoll_wait: {}", std::io::Error::last_os_error()));
        }
        let woken = &events_buf[..n.max(0) as usize];
        // stdin closed (or a line): drain, then stop.
        let stop = woken.iter().any(|e| e.u64 == 0);
        if let Some(end) = paused_until {
            // Paused: drain before its end only when the ring fills up.
            if !stop && Instant::now() < end && fill.waiting() < urgent {
                continue;
            }
            paused_until = None;
        }
        let before = records;
        while let Some(record) = ring.next() {
            std::hint::black_box(&*record);
            records += 1;
            if let Some(w) = &mut recording {
                w.write_all(&(record.len() as u32).to_le_bytes())
                    .and_then(|()| w.write_all(&record))
                    .map_err(|e| format!("writing the record file: {e}"))?;
            }
        }
        lost_now = lost();
        if stop {
            break;
        }
        if records > before {
            paused_until = Some(Instant::now() + BUSY_PAUSE);
        }
    }
    // SAFETY: closes the epoll fd made above, once.
    unsafe { libc::close(epoll) };
    if let Some(mut w) = recording {
        w.flush()
            .map_err(|e| format!("writing the record file: {e}"))?;
    }
    println!("{records} {} {:.3}", lost(), cpu_seconds());
    Ok(())
}

/// User + system CPU time of this process, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}
