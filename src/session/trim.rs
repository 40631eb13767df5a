//! [`TrimDeadline`]: when a connection that grew buffers for large frames gives them
//! back.
//!
//! A receiving connection's read buffer grows to the largest frame it read and is
//! kept while large frames keep coming (allocating it again for every frame would cost
//! page faults and half the throughput of a stream of large messages). Once large
//! frames stop for [`after`](TrimDeadline::new), the connection gives it back: the
//! deadline fires once, and the shell trims.
//!
//! Invariants: the deadline is armed only by activity
//! ([`handle_activity`](TrimDeadline::handle_activity)); it fires (returns `true`
//! from [`handle_timeout`](TrimDeadline::handle_timeout)) only once no activity came
//! for `after`, and then disarms, so an idle connection has no deadline at all; while
//! activity goes on, a timeout re-arms it for `after` past the last activity: at most
//! one timeout per `after`, however many frames arrive. Early or stale timeouts are
//! harmless. No clock is read.

use std::time::{Duration, Instant};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct TrimDeadline {
    after: Duration,
    /// The last activity since the deadline was last armed from idle.
    last: Option<Instant>,
    /// When to call [`handle_timeout`](Self::handle_timeout).
    at: Option<Instant>,
}

impl TrimDeadline {
    /// Fires once no activity came for `after`.
    pub fn new(after: Duration) -> Self {
        TrimDeadline {
            after,
            last: None,
            at: None,
        }
    }

    /// Something that grew the buffers happened at `now`.
    pub fn handle_activity(&mut self, now: Instant) {
        self.last = Some(now);
        if self.at.is_none() {
            // Checked: an instant too far away to represent means "never".
            self.at = now.checked_add(self.after);
        }
    }

    /// The timer fired at `now`: `true` when it is time to trim (nothing since
    /// `after`); the deadline is then disarmed until the next activity.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.at {
            Some(at) if now >= at => {}
            _ => return false,
        }
        let due = self.last.and_then(|last| last.checked_add(self.after));
        match due {
            Some(due) if due > now => {
                self.at = Some(due);
                false
            }
            _ => {
                self.at = None;
                self.last = None;
                true
            }
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(1);

    #[test]
    fn idle_from_the_start_never_fires() {
        let mut trim = TrimDeadline::new(AFTER);
        let t0 = Instant::now();
        assert_eq!(trim.poll_timeout(), None);
        assert!(!trim.handle_timeout(t0 + AFTER * 10));
    }

    #[test]
    fn fires_once_after_the_last_activity_and_then_has_no_deadline() {
        let mut trim = TrimDeadline::new(AFTER);
        let t0 = Instant::now();
        trim.handle_activity(t0);
        assert_eq!(trim.poll_timeout(), Some(t0 + AFTER));
        assert!(!trim.handle_timeout(t0 + AFTER / 2), "early: harmless");
        assert!(trim.handle_timeout(t0 + AFTER));
        assert_eq!(trim.poll_timeout(), None, "no timer on an idle connection");
        assert!(!trim.handle_timeout(t0 + AFTER * 5), "stale: harmless");
        // Activity arms it again.
        trim.handle_activity(t0 + AFTER * 6);
        assert_eq!(trim.poll_timeout(), Some(t0 + AFTER * 7));
    }

    #[test]
    fn a_stream_of_activity_costs_at_most_one_timeout_per_interval() {
        let mut trim = TrimDeadline::new(AFTER);
        let t0 = Instant::now();
        let mut timeouts = 0;
        let mut fired = 0;
        // Activity every 10 ms for 10 s; the shell calls handle_timeout whenever its
        // one timer (at poll_timeout) is due.
        for i in 0..1000u32 {
            let now = t0 + Duration::from_millis(10) * i;
            if trim.poll_timeout().is_some_and(|at| now >= at) {
                timeouts += 1;
                fired += u32::from(trim.handle_timeout(now));
            }
            trim.handle_activity(now);
        }
        assert_eq!(fired, 0, "never while active");
        assert!(timeouts <= 10, "{timeouts} timeouts in 10 s");
        // Then silence: the timer runs out once, AFTER past the last activity.
        let last = t0 + Duration::from_millis(10) * 999;
        let mut fired_at = Vec::new();
        while let Some(at) = trim.poll_timeout() {
            if trim.handle_timeout(at) {
                fired_at.push(at);
            }
        }
        assert_eq!(fired_at, vec![last + AFTER]);
        assert_eq!(trim.poll_timeout(), None);
    }
}
