//! The size of a tracer's BPF ring buffer, when a run overrides the one the
//! gadget declares (`GADGET_TRACER_MAP(events, bytes)`).
//!
//! The kernel takes a `BPF_MAP_TYPE_RINGBUF` of a power-of-two number of
//! pages and maps its data pages twice into the reader, so every byte of the
//! ring counts twice in the agent's RSS from the moment the run starts.
//! A smaller ring costs less memory and holds a shorter burst; the gadget's
//! own size is the default (docs/benchmarks.md has the measured trade-off).

/// The smallest ring: one page.
pub const MIN_BYTES: u32 = 4096;
/// The largest ring a run may ask for: 1 GiB (2 GiB of the agent's RSS).
pub const MAX_BYTES: u32 = 1 << 30;

/// Checks a ring size in bytes: a power of two from [`MIN_BYTES`] (one
/// page) to [`MAX_BYTES`]. The error says what was wrong and what to use.
pub fn check(bytes: u32) -> Result<(), String> {
    let page = page_size();
    if bytes < MIN_BYTES.max(page) || bytes > MAX_BYTES || !bytes.is_power_of_two() {
        let near = nearest_valid(bytes, page);
        return Err(format!(
            "a ring buffer size must be a power of two from {} to {} bytes (a whole number of {page}-byte pages); {bytes} is not: use e.g. {near}",
            MIN_BYTES.max(page),
            MAX_BYTES,
        ));
    }
    Ok(())
}

/// The valid size closest to `bytes` from above (or the largest).
fn nearest_valid(bytes: u32, page: u32) -> u32 {
    bytes
        .checked_next_power_of_two()
        .unwrap_or(MAX_BYTES)
        .clamp(MIN_BYTES.max(page), MAX_BYTES)
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(page).unwrap_or(MIN_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two_from_a_page_to_a_gib_are_taken() {
        for bytes in [4096, 65536, 256 * 1024, 1 << 20, 16 << 20, 1 << 30] {
            assert_eq!(check(bytes), Ok(()), "{bytes}");
        }
    }

    #[test]
    fn other_sizes_are_refused_with_a_size_to_use() {
        for (bytes, near) in [
            (0, 4096),
            (1, 4096),
            (2048, 4096),
            (100_000, 131_072),
            (1_000_000, 1_048_576),
            (3 << 20, 4 << 20),
            (2 << 30, 1 << 30),
            (u32::MAX, 1 << 30),
        ] {
            let e = check(bytes).unwrap_err();
            assert!(
                e.contains(&format!("{bytes} is not")) && e.ends_with(&format!("use e.g. {near}")),
                "{bytes}: {e}"
            );
        }
    }
}
