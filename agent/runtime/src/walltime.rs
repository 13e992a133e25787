//! `gadget_timestamp` (CLOCK_BOOTTIME nanoseconds from `bpf_ktime_get_boot_ns`)
//! to wall-clock RFC 3339, without allocating.

use std::io::Write as _;

/// The offset between CLOCK_REALTIME and CLOCK_BOOTTIME, taken once per run
/// (a wall-clock step during a run shifts its timestamps; that is the same
/// trade-off bcc and Inspektor Gadget make).
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    offset_ns: i128,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl BootClock {
    pub fn now() -> BootClock {
        BootClock {
            offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME),
        }
    }

    /// Nanoseconds since the Unix epoch for a boot-time stamp.
    pub fn to_unix_ns(self, boot_ns: u64) -> i128 {
        boot_ns as i128 + self.offset_ns
    }

    /// Appends the stamp as e.g. `2026-11-24T10:00:00.123456789Z`
    /// ([`write_rfc3339_unix_ns`]). The date and time of day are worked out
    /// once per second per thread ([`LAST_SECOND`]), so an event within the
    /// same second as the thread's previous one costs a copy and nine digits.
    pub fn write_rfc3339(&self, boot_ns: u64, out: &mut Vec<u8>) {
        // i64 nanoseconds reach 2262; anything else takes the general path.
        let Ok(unix_ns) = i64::try_from(self.to_unix_ns(boot_ns)) else {
            return write_rfc3339_unix_ns(self.to_unix_ns(boot_ns), out);
        };
        let secs = unix_ns.div_euclid(1_000_000_000);
        let nanos = unix_ns.rem_euclid(1_000_000_000) as u32;
        // The cached text is copied from the thread-local itself: a copy
        // of the tuple on the stack read back at another offset would stall.
        let at = out.len();
        let cached = LAST_SECOND.with_borrow(|(cached_secs, text)| {
            let hit = *cached_secs == secs && text[0] != 0;
            if hit {
                out.extend_from_slice(text);
            }
            hit
        });
        if !cached {
            let mut full = Vec::with_capacity(32);
            write_rfc3339_unix_ns(i128::from(secs) * 1_000_000_000, &mut full);
            if full.len() != 30 {
                // A year outside 0000-9999: not cached.
                return write_rfc3339_unix_ns(i128::from(unix_ns), out);
            }
            let mut text = [0u8; 20];
            text.copy_from_slice(&full[..20]);
            LAST_SECOND.set((secs, text));
            out.extend_from_slice(&text);
        }
        // The digits go straight into `out`: written into a stack copy
        // first, the 2-byte stores stalled the wide loads that copied it
        // (store forwarding fails), ~8% of the agent's CPU under a flood.
        out.extend_from_slice(b"000000000Z");
        digits(&mut out[at + 20..at + 29], nanos);
    }
}

thread_local! {
    /// The last second this thread wrote a stamp for and its date and time
    /// of day (`2026-11-24T10:00:00.`); all zeros before the first.
    static LAST_SECOND: std::cell::RefCell<(i64, [u8; 20])> = const { std::cell::RefCell::new((0, [0; 20])) };
}

/// Appends `unix_ns` as RFC 3339 UTC with nanoseconds. Per event: digits
/// are written by hand (the `write!` machinery cost ~2,000 instructions).
pub fn write_rfc3339_unix_ns(unix_ns: i128, out: &mut Vec<u8>) {
    let secs = unix_ns.div_euclid(1_000_000_000) as i64;
    let nanos = unix_ns.rem_euclid(1_000_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    if !(0..=9999).contains(&y) {
        let _ = write!(
            out,
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        );
        return;
    }
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    digits(&mut b[0..4], y as u32);
    digits(&mut b[5..7], mo);
    digits(&mut b[8..10], d);
    digits(&mut b[11..13], sod / 3600);
    digits(&mut b[14..16], sod % 3600 / 60);
    digits(&mut b[17..19], sod % 60);
    digits(&mut b[20..29], nanos);
    out.extend_from_slice(&b);
}

/// Writes `v` in decimal right-aligned into `to`, zero-padded (the caller
/// sized `to` for the value).
fn digits(to: &mut [u8], mut v: u32) {
    // Two digits per division: the nanoseconds are on every event's path.
    let mut end = to.len();
    while end >= 2 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        to[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        end -= 2;
    }
    if end == 1 {
        to[0] = b'0' + (v % 10) as u8;
    }
}

/// Two decimal digits of every number below 100 (`DIGIT_PAIRS[2 * n..][..2]`).
pub(crate) const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ns: i128) -> String {
        let mut out = Vec::new();
        write_rfc3339_unix_ns(ns, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn known_instants() {
        assert_eq!(fmt(0), "1970-01-01T00:00:00.000000000Z");
        // date -u -d @1795000000.5
        assert_eq!(
            fmt(1_795_000_000_500_000_000),
            "2026-11-18T11:06:40.500000000Z"
        );
        assert_eq!(
            fmt(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn the_writer_with_the_last_second_prints_what_the_direct_one_prints() {
        let clock = BootClock {
            offset_ns: 1_795_000_000_000_000_000,
        };
        // Within one second, across seconds, days and years, and back in time.
        let stamps = [
            0u64,
            1,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            86_400_000_000_000,
            365 * 86_400_000_000_000 + 7,
            5,
            u64::MAX / 2,
        ];
        for boot_ns in stamps {
            let (mut direct, mut cached) = (Vec::new(), Vec::new());
            write_rfc3339_unix_ns(clock.to_unix_ns(boot_ns), &mut direct);
            clock.write_rfc3339(boot_ns, &mut cached);
            assert_eq!(
                String::from_utf8(cached).unwrap(),
                String::from_utf8(direct).unwrap(),
                "{boot_ns}"
            );
        }
        let mut out = Vec::new();
        clock.write_rfc3339(500_000_000, &mut out);
        assert_eq!(out, b"2026-11-18T11:06:40.500000000Z");
    }

    #[test]
    fn boot_clock_maps_now_to_now() {
        let clock = BootClock::now();
        let wall = clock.to_unix_ns(clock_ns(libc::CLOCK_BOOTTIME) as u64);
        assert!((wall - clock_ns(libc::CLOCK_REALTIME)).abs() < 1_000_000_000);
    }
}
