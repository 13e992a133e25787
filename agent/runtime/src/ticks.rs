//! Periodic checks on a process-wide grid.
//!
//! Every live run has periodic work that does nothing while it is idle (a
//! ring's safety drain, the agent's counter publishing). Each run's timer
//! started when the run did, so 50 idle runs woke the agent at 50 different
//! moments of every period. [`aligned_interval`] puts the ticks of every
//! timer of one period on the same instants (multiples of the period since
//! the first call in the process): tokio fires timers that fall in the same
//! millisecond in one turn of its driver, so the agent wakes once per tick
//! for all runs, however many there are.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The instant the grid counts from (the first call in the process).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The first instant of the grid of `period` strictly after `now`.
fn next_on_grid(epoch: Instant, now: Instant, period: Duration) -> Instant {
    let period_ns = period.as_nanos().max(1);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let steps = since / period_ns + 1;
    // Saturates far beyond any uptime (u64 nanoseconds: 584 years).
    epoch + Duration::from_nanos(u64::try_from(steps * period_ns).unwrap_or(u64::MAX))
}

/// An interval of `period` whose ticks fall on the process-wide grid of
/// that period: its first tick is the grid's next instant (within one
/// `period` from now, not at once), and a late tick is followed by the next
/// one on the grid (missed ticks are skipped), so it stays aligned with
/// every other interval of the same period. Needs a tokio runtime with
/// timers, like any interval.
pub fn aligned_interval(period: Duration) -> Interval {
    let first = next_on_grid(epoch(), Instant::now(), period);
    let mut tick = tokio::time::interval_at(first, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tick
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_grid_instant_is_strictly_after_now() {
        let epoch = Instant::now();
        let p = Duration::from_millis(250);
        let ms = Duration::from_millis;
        assert_eq!(next_on_grid(epoch, epoch, p), epoch + ms(250));
        assert_eq!(next_on_grid(epoch, epoch + ms(1), p), epoch + ms(250));
        assert_eq!(next_on_grid(epoch, epoch + ms(249), p), epoch + ms(250));
        assert_eq!(next_on_grid(epoch, epoch + ms(250), p), epoch + ms(500));
        assert_eq!(
            next_on_grid(epoch, epoch + ms(1_000_001), p),
            epoch + ms(1_000_250)
        );
        // A `now` before the epoch (another runtime's clock) starts at it.
        assert_eq!(next_on_grid(epoch + ms(10), epoch, p), epoch + ms(260));
    }

    /// Intervals made at different moments tick together, also after a
    /// late tick. Real time, but what is compared are the scheduled
    /// instants `tick` returns, which do not depend on when the test ran
    /// (unless the machine stalls for most of a period between two steps).
    #[test]
    fn intervals_made_apart_tick_at_the_same_instants() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let period = Duration::from_millis(500);
            let mut a = aligned_interval(period);
            tokio::time::sleep(Duration::from_millis(7)).await;
            let mut b = aligned_interval(period);
            tokio::time::sleep(Duration::from_millis(11)).await;
            let mut c = aligned_interval(period);
            let first = a.tick().await;
            assert_eq!(b.tick().await, first);
            assert_eq!(c.tick().await, first);
            let second = a.tick().await;
            assert_eq!(second - first, period);
            assert_eq!(b.tick().await, second);
            // c is late by 3.5 periods: its late tick, then the grid again.
            tokio::time::sleep(period * 7 / 2).await;
            assert_eq!(c.tick().await, second);
            let next = c.tick().await;
            assert_eq!((next - first).as_millis() % 500, 0, "{:?}", next - first);
            assert!(next > second + period * 3, "{:?}", next - second);
        });
    }
}
