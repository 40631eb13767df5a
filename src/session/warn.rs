//! Rate-limited warnings: [`WarnLimiter`] says when a repeated warning may be logged
//! again, and how many were held back meanwhile.

use std::time::{Duration, Instant};

/// Lets one kind of warning through at most once per interval, counting the ones it
/// holds back. The time is passed in.
///
/// ```
/// use std::time::{Duration, Instant};
/// use internode::session::WarnLimiter;
///
/// let t0 = Instant::now();
/// let mut warn = WarnLimiter::new(Duration::from_secs(1));
/// assert_eq!(warn.check(t0), Some(0));
/// assert_eq!(warn.check(t0 + Duration::from_millis(10)), None);
/// assert_eq!(warn.check(t0 + Duration::from_millis(20)), None);
/// assert_eq!(warn.check(t0 + Duration::from_secs(1)), Some(2), "two held back");
/// ```
#[derive(Debug, Clone)]
pub struct WarnLimiter {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl WarnLimiter {
    /// A limiter that lets one warning through per `interval`.
    pub fn new(interval: Duration) -> Self {
        WarnLimiter {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// A warning is due at `now`: `Some(held back since the last one)` if it may be
    /// logged, `None` if it is held back (and counted).
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            self.last = Some(now);
            Some(std::mem::take(&mut self.held_back))
        } else {
            self.held_back += 1;
            None
        }
    }
}
