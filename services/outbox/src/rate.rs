//! A sink's send rate, held across the whole process: the receiver (an SMS provider, say)
//! allows so many requests per second, and every loop of the sink's worker shares one limit.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// At most `per_second` sends in any one second, as the receiver counts them.
pub struct RateLimit<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

/// The share of the receiver's limit we aim for. Sends are spaced by our clock, but the receiver
/// counts them by its own: a send delayed on its way (scheduling, a slow connection) arrives
/// closer to the next one, and with sends exactly 1/rate apart one of the receiver's seconds
/// then catches one too many (measured: 101 at a limit of 100). Aiming 3 % below leaves 30 ms
/// in every second for such delays.
const AIMED_PERCENT: u64 = 97;

/// Evenly spaced sends, no burst: governor's own `per_second` allows a burst of the whole
/// second's quota and then refills, which lets almost twice the rate into one second, and it
/// rounds the spacing down, which lets one more in. The spacing here is rounded up.
fn quota(per_second: NonZeroU32) -> Quota {
    let spacing_nanos =
        (1_000_000_000_u64 * 100).div_ceil(u64::from(per_second.get()) * AIMED_PERCENT);
    Quota::with_period(Duration::from_nanos(spacing_nanos.max(1)))
        .expect("a positive spacing")
        .allow_burst(NonZeroU32::MIN)
}

impl RateLimit {
    /// A limit of `per_second` sends on the machine's monotonic clock.
    pub fn per_second(per_second: NonZeroU32) -> Self {
        Self::with_clock(per_second, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimit<C> {
    /// A limit of `per_second` sends on `clock`.
    pub fn with_clock(per_second: NonZeroU32, clock: C) -> Self {
        Self {
            limiter: RateLimiter::direct_with_clock(quota(per_second), clock.clone()),
            clock,
        }
    }

    /// Takes a send if one is free now; otherwise says how long until the next one is.
    pub fn try_take(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Waits until a send is free, and takes it.
    pub async fn take(&self) {
        while let Err(wait) = self.try_take() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    /// Sends taken by someone trying every 10 µs for `seconds`, as times in µs.
    fn sends(per_second: u32, seconds: u64) -> Vec<u64> {
        let clock = FakeRelativeClock::default();
        let limit = RateLimit::with_clock(NonZeroU32::new(per_second).unwrap(), clock.clone());
        let mut taken = Vec::new();
        for tick in 0..seconds * 100_000 {
            while limit.try_take().is_ok() {
                taken.push(tick * 10);
            }
            clock.advance(Duration::from_micros(10));
        }
        taken
    }

    #[test]
    fn no_second_sees_more_than_the_limit_and_the_limit_is_used() {
        for per_second in [1, 3, 7, 100, 333] {
            let taken = sends(per_second, 5);
            for (index, start) in taken.iter().enumerate() {
                let in_window = taken[index..]
                    .iter()
                    .take_while(|&&at| at < start + 1_000_000)
                    .count();
                assert!(
                    in_window <= per_second as usize,
                    "{per_second}/s: {in_window} in the second from {start} µs"
                );
            }
            // The headroom costs what it says and no more: five seconds carry five seconds'
            // worth of the aimed rate, less what the 10 µs between tries costs (a send is taken
            // up to one try late) and one send for rounding.
            let aimed = 5 * u64::from(per_second) * AIMED_PERCENT / 100;
            let taken_count = taken.len() as u64;
            assert!(
                taken_count * 100 >= aimed * 99 && taken_count <= aimed + 1,
                "{per_second}/s: {} in 5 s",
                taken.len()
            );
        }
    }

    #[test]
    fn a_refused_send_says_how_long_to_wait() {
        let clock = FakeRelativeClock::default();
        let limit = RateLimit::with_clock(NonZeroU32::new(4).unwrap(), clock.clone());
        // 4 a second aimed at 97 %: one every 257.73… ms, rounded up to the nanosecond.
        let spacing = Duration::from_nanos(257_731_959);
        assert_eq!(limit.try_take(), Ok(()));
        assert_eq!(limit.try_take(), Err(spacing));
        clock.advance(Duration::from_millis(100));
        assert_eq!(limit.try_take(), Err(spacing - Duration::from_millis(100)));
        clock.advance(spacing - Duration::from_millis(100));
        assert_eq!(limit.try_take(), Ok(()));
    }
}
