//! internode's own parameters inside envelopes (its own messages, keepalives and
//! acknowledgements, are in [`session::control`](crate::session::control)).
//!
//! - A request carries [`PARAM_REQUEST_ID`] (a vint); its response carries the same
//!   parameter and the RESPONSE flag (and FAILURE, with a
//!   [`RemoteFailure`](crate::message::RemoteFailure) payload, when it failed).
//!
//! The envelope id is the sending link's sequence number (1, 2, ... per link session),
//! so that lossless sessions can acknowledge and replay by id.

use std::time::{Duration, Instant};

use crate::envelope::Envelope;
use crate::vint;

/// Parameter key of a request's correlation id.
pub(crate) const PARAM_REQUEST_ID: u32 = 0;

pub(crate) use crate::session::control::vint_bytes;

/// The request id of a request or response envelope, if it carries a valid one.
pub(crate) fn request_id(envelope: &Envelope) -> Option<u64> {
    envelope
        .params
        .iter()
        .find(|(k, _)| *k == PARAM_REQUEST_ID)
        .and_then(|(_, v)| match vint::decode(v) {
            Ok((id, n)) if n == v.len() => Some(id),
            _ => None,
        })
}

/// Milliseconds since the UNIX epoch, for envelope creation times.
pub(crate) fn epoch_ms() -> u64 {
    since_epoch().as_millis() as u64
}

/// Both clocks an actor passes its core (the monotonic instant, and milliseconds since
/// the UNIX epoch for creation times and deadlines) for one clock read: the wall
/// clock is read again only when its last reading is a second old, and in between
/// follows the monotonic clock. So a wall-clock step shows up within a second, and a
/// deadline is off by at most what the clocks drift apart in a second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clocks {
    anchor: Instant,
    /// The wall clock at `anchor`, since the UNIX epoch (to the nanosecond, so that
    /// the milliseconds derived from it are those a fresh reading would give).
    anchor_epoch: Duration,
}

impl Clocks {
    /// How long a wall-clock reading is followed.
    const REREAD: Duration = Duration::from_secs(1);

    pub fn new() -> Self {
        Clocks {
            anchor: Instant::now(),
            anchor_epoch: since_epoch(),
        }
    }

    /// The instant now and the milliseconds since the UNIX epoch.
    pub fn now(&mut self) -> (Instant, u64) {
        let now = Instant::now();
        let since = now.saturating_duration_since(self.anchor);
        if since >= Self::REREAD {
            *self = Clocks {
                anchor: now,
                anchor_epoch: since_epoch(),
            };
            return (now, self.anchor_epoch.as_millis() as u64);
        }
        (now, (self.anchor_epoch + since).as_millis() as u64)
    }
}

fn since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_follows_the_monotonic_one_and_is_read_again_each_second() {
        let mut clocks = Clocks::new();
        let (t0, ms0) = clocks.now();
        assert!(ms0.abs_diff(epoch_ms()) < 1_000);
        // A second ago: read again.
        clocks.anchor -= Duration::from_millis(1_500);
        clocks.anchor_epoch -= Duration::from_secs(60); // as if the wall clock had stepped a minute ahead
        let (t1, ms1) = clocks.now();
        assert!(t1 >= t0);
        assert!(ms1.abs_diff(epoch_ms()) < 1_000, "read again: {ms1}");
        // Within the second: the anchor plus the monotonic time since.
        clocks.anchor -= Duration::from_millis(300);
        let (_, ms2) = clocks.now();
        assert!(ms2 >= ms1 + 300 && ms2 < ms1 + 1_000, "{ms1} {ms2}");
    }

    /// A deadline of "now" read from the wall clock has passed by the link's clocks
    /// (no millisecond lost to rounding twice).
    #[test]
    fn never_behind_a_fresh_reading() {
        let mut clocks = Clocks::new();
        for _ in 0..10_000 {
            let fresh = epoch_ms();
            let (_, ms) = clocks.now();
            assert!(ms >= fresh, "{ms} < {fresh}");
        }
    }
}
