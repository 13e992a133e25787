//! Text forms of Inspektor Gadget's semantic numbers (`gadget/types.h`):
//! open(2) flags (`O_WRONLY|O_CREAT`), file modes (`-rw-r--r--`), byte
//! counts (`1.5 MB`), durations (`1.5ms`) and bit-set enums (`A|B`). Each
//! writer appends to the event buffer without allocating (the event path).

use std::io::Write as _;

/// Access modes of open(2): the low two bits.
const ACCESS_MODES: [&str; 4] = ["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"];

/// The other open(2) flags (asm-generic values, used by x86_64 and arm64), in bit order.
const OPEN_FLAGS: [(u32, &str); 19] = [
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o4000000, "__O_SYNC"),
    (0o10000000, "O_PATH"),
    (0o20000000, "__O_TMPFILE"),
    (0o40000000, "FMODE_EXEC"),
    (0o100000000, "FMODE_NONOTIFY"),
];

/// `|NAME` of each flag bit of [`OPEN_FLAGS`] by bit number, zero-padded to 16
/// bytes, and its length (0: the bit has no name). Copied whole, as one
/// fixed-size move, then cut to the length.
const FLAG_TEXT: [([u8; 16], usize); 32] = {
    let mut table = [([0u8; 16], 0usize); 32];
    let mut i = 0;
    while i < OPEN_FLAGS.len() {
        let (bit, name) = OPEN_FLAGS[i];
        let name = name.as_bytes();
        let slot = &mut table[bit.trailing_zeros() as usize];
        slot.0[0] = b'|';
        let mut j = 0;
        while j < name.len() {
            slot.0[1 + j] = name[j];
            j += 1;
        }
        slot.1 = 1 + name.len();
        i += 1;
    }
    table
};

/// Appends open(2) flags as `O_RDONLY|O_CREAT|...`, any unnamed bits in hex.
pub fn write_file_flags(flags: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(ACCESS_MODES[(flags & 3) as usize].as_bytes());
    let mut rest = flags & !3;
    let mut unnamed = 0;
    // Only the bits that are set, lowest first.
    while rest != 0 {
        let bit = rest.trailing_zeros();
        rest &= rest - 1;
        let (text, len) = &FLAG_TEXT[bit as usize];
        if *len == 0 {
            unnamed |= 1 << bit;
            continue;
        }
        let at = out.len();
        out.extend_from_slice(text);
        out.truncate(at + len);
    }
    if unnamed != 0 {
        let _ = write!(out, "|{unnamed:#x}");
    }
}

/// Appends a file mode as `ls -l` prints it: type, then permissions with
/// setuid, setgid and sticky bits (`-rwsr-xr-x`, `drwxrwxrwt`). Bare
/// permissions (open(2)'s mode argument) print as a plain file, as
/// Inspektor Gadget prints them (`0o644`: `-rw-r--r--`).
pub fn write_file_mode(mode: u32, out: &mut Vec<u8>) {
    // Written in place: built on the stack and copied, the narrow stores
    // stalled the wide loads of the copy (store forwarding fails).
    let at = out.len();
    out.extend_from_slice(b"----------");
    let text = &mut out[at..at + 10];
    text[0] = match mode & 0o170000 {
        0o140000 => b's',
        0o120000 => b'l',
        0o060000 => b'b',
        0o040000 => b'd',
        0o020000 => b'c',
        0o010000 => b'p',
        _ => b'-',
    };
    // Each class's three letters, indexed by its rwx bits and its special
    // bit (setuid, setgid: s/S; sticky: t/T) as bit 3.
    const fn class(special: u8) -> [[u8; 3]; 16] {
        let mut t = [[b'-'; 3]; 16];
        let mut i = 0;
        while i < 16 {
            if i & 4 != 0 {
                t[i][0] = b'r';
            }
            if i & 2 != 0 {
                t[i][1] = b'w';
            }
            t[i][2] = match (i & 1 != 0, i & 8 != 0) {
                (true, true) => special,
                (false, true) => special - 32, // upper case: special bit, no exec
                (true, false) => b'x',
                (false, false) => b'-',
            };
            i += 1;
        }
        t
    }
    const USER_GROUP: [[u8; 3]; 16] = class(b's');
    const OTHER: [[u8; 3]; 16] = class(b't');
    let at = |shift: u32, special: u32| ((mode >> shift) & 7 | (mode >> special & 1) << 3) as usize;
    text[1..4].copy_from_slice(&USER_GROUP[at(6, 11)]);
    text[4..7].copy_from_slice(&USER_GROUP[at(3, 10)]);
    text[7..10].copy_from_slice(&OTHER[at(0, 9)]);
}

/// Appends a byte count in SI units as Inspektor Gadget prints it (go-humanize's
/// `Bytes`): `0 B`, `999 B`, `1.5 kB`, `83 MB`; one decimal below 10.
pub fn write_bytes(n: u64, out: &mut Vec<u8>) {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        let _ = write!(out, "{n} B");
        return;
    }
    let mut unit = 0;
    let mut scale = 1u64;
    while unit < UNITS.len() - 1 && n / scale >= 1000 {
        scale *= 1000;
        unit += 1;
    }
    let value = ((n as f64 / scale as f64) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        let _ = write!(out, "{value:.1} {}", UNITS[unit]);
    } else {
        let _ = write!(out, "{value:.0} {}", UNITS[unit]);
    }
}

/// Appends nanoseconds the way Go's `time.Duration` prints them (`0s`,
/// `850ns`, `1.5µs`, `12.25ms`, `1m30s`, `2h0m5s`).
pub fn write_duration(ns: u64, out: &mut Vec<u8>) {
    // Trailing zeros of the fraction are dropped: 1.500ms prints 1.5ms.
    fn frac(out: &mut Vec<u8>, whole: u64, part: u64, digits: u32, unit: &str) {
        let _ = write!(out, "{whole}");
        if part != 0 {
            let mut part = part;
            let mut digits = digits;
            while part.is_multiple_of(10) {
                part /= 10;
                digits -= 1;
            }
            let _ = write!(out, ".{part:0width$}", width = digits as usize);
        }
        out.extend_from_slice(unit.as_bytes());
    }
    match ns {
        0 => out.extend_from_slice(b"0s"),
        1..1_000 => {
            let _ = write!(out, "{ns}ns");
        }
        1_000..1_000_000 => frac(out, ns / 1_000, ns % 1_000, 3, "µs"),
        1_000_000..1_000_000_000 => frac(out, ns / 1_000_000, ns % 1_000_000, 6, "ms"),
        _ => {
            let secs = ns / 1_000_000_000;
            let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
            if h > 0 {
                let _ = write!(out, "{h}h{m}m");
            } else if m > 0 {
                let _ = write!(out, "{m}m");
            }
            frac(out, s, ns % 1_000_000_000, 9, "s");
        }
    }
}

/// Appends the members of a bit-set enum (an enum type named `*_set`) that
/// `v` contains, `|`-separated: every member whose value's bits are all set
/// in `v`, as Inspektor Gadget does.
pub fn write_bitset(names: &[(i64, String)], v: i64, out: &mut Vec<u8>) {
    let mut first = true;
    for (bits, name) in names {
        if v & bits == *bits {
            if !first {
                out.push(b'|');
            }
            first = false;
            out.extend_from_slice(name.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn file_flags() {
        for (flags, want) in [
            (0, "O_RDONLY"),
            (0o1, "O_WRONLY"),
            (0o2 | 0o100 | 0o1000, "O_RDWR|O_CREAT|O_TRUNC"),
            (
                0o1 | 0o100 | 0o400 | 0o4000,
                "O_WRONLY|O_CREAT|O_NOCTTY|O_NONBLOCK",
            ),
            (0o2000000 | 0o200000, "O_RDONLY|O_DIRECTORY|O_CLOEXEC"),
            (0o10000000, "O_RDONLY|O_PATH"),
            (0x8000_0000, "O_RDONLY|0x80000000"),
            (0xc000_0040, "O_RDONLY|O_CREAT|0xc0000000"),
            (
                0o100000000 | 0o20000000,
                "O_RDONLY|__O_TMPFILE|FMODE_NONOTIFY",
            ),
        ] {
            assert_eq!(text(|o| write_file_flags(flags, o)), want, "{flags:#o}");
        }
        // Every bit alone and a spread of combinations, against the plain
        // walk over the table.
        let reference = |flags: u32| {
            let mut s = ACCESS_MODES[(flags & 3) as usize].to_string();
            let mut rest = flags & !3;
            for (bit, name) in OPEN_FLAGS {
                if rest & bit != 0 {
                    s += "|";
                    s += name;
                    rest &= !bit;
                }
            }
            if rest != 0 {
                s += &format!("|{rest:#x}");
            }
            s
        };
        let mut x = 0x9e37_79b9u32;
        let spread = (0..2000).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        });
        for flags in (0..32).map(|b| 1u32 << b).chain(spread).chain([u32::MAX]) {
            assert_eq!(
                text(|o| write_file_flags(flags, o)),
                reference(flags),
                "{flags:#x}"
            );
        }
    }

    #[test]
    fn file_modes() {
        for (mode, want) in [
            (0o100644, "-rw-r--r--"),
            (0o100755, "-rwxr-xr-x"),
            (0o104755, "-rwsr-xr-x"),
            (0o102644, "-rw-r-Sr--"),
            (0o041777, "drwxrwxrwt"),
            (0o040700, "drwx------"),
            (0o120777, "lrwxrwxrwx"),
            (0o020620, "crw--w----"),
            (0o060660, "brw-rw----"),
            (0o010600, "prw-------"),
            (0o140755, "srwxr-xr-x"),
            (0o644, "-rw-r--r--"),
            (0o1644, "-rw-r--r-T"),
            (0o7000, "---S--S--T"),
            (0o7777, "-rwsrwsrwt"),
            (0o2070, "----rws---"),
            (0o100421, "-r---w---x"),
            (0, "----------"),
        ] {
            assert_eq!(text(|o| write_file_mode(mode, o)), want, "{mode:#o}");
        }
    }

    #[test]
    fn bytes() {
        for (n, want) in [
            (0, "0 B"),
            (9, "9 B"),
            (999, "999 B"),
            (999_999, "1000 kB"),
            (1000, "1.0 kB"),
            (1500, "1.5 kB"),
            (82_854_982, "83 MB"),
            (9_949_000, "9.9 MB"),
            (10_000_000_000, "10 GB"),
            (u64::MAX, "18 EB"),
        ] {
            assert_eq!(text(|o| write_bytes(n, o)), want, "{n}");
        }
    }

    #[test]
    fn durations() {
        for (ns, want) in [
            (0, "0s"),
            (850, "850ns"),
            (1_500, "1.5µs"),
            (12_250_000, "12.25ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (7_205_000_000_000, "2h0m5s"),
            (3_600_000_000_001, "1h0m0.000000001s"),
        ] {
            assert_eq!(text(|o| write_duration(ns, o)), want, "{ns}");
        }
    }

    #[test]
    fn bitsets() {
        let names: Vec<(i64, String)> = [(1, "READ"), (2, "WRITE"), (4, "EXEC")]
            .iter()
            .map(|(v, n)| (*v, n.to_string()))
            .collect();
        assert_eq!(text(|o| write_bitset(&names, 5, o)), "READ|EXEC");
        assert_eq!(text(|o| write_bitset(&names, 2, o)), "WRITE");
        assert_eq!(text(|o| write_bitset(&names, 0, o)), "");
    }
}
