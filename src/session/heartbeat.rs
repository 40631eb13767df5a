//! Keepalives on an idle connection: [`Heartbeat`] (its type docs state the invariants).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many unanswered pings a [`Heartbeat`] remembers.
pub const REMEMBERED_PINGS: usize = 4;

/// When to ping and when to give up on a silent connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct HeartbeatConfig {
    /// Send a ping after this long without writing anything (the keeper of an idle
    /// peer: after the [idle interval](Self::idle_interval)).
    pub interval: Duration,
    /// Reset the connection after this long without reading anything. Should be
    /// several intervals, so that a few lost pongs are tolerated. The keeper of an
    /// idle peer allows as much more silence as its idle interval exceeds the
    /// interval.
    pub timeout: Duration,
    /// Reset the connection after one write has been blocked this long (the peer
    /// takes nothing). The read timeout does not apply while a write is in flight.
    pub unwritable_timeout: Duration,
    /// The keepalive interval of an idle peer: the one link that keeps a peer alive
    /// (its *keeper*), while it holds nothing unconfirmed, pings after this long
    /// without traffic instead of [`interval`](Self::interval), and allows as much
    /// more silence before it times out (docs/design.md, "Writing and heartbeats").
    /// `None` (the default): five intervals ([`relaxed_interval`](Self::relaxed_interval)).
    /// Never shorter than `interval`.
    pub idle_interval: Option<Duration>,
}

impl Default for HeartbeatConfig {
    /// A ping after 1 s of idleness; give up after 5 s of silence, or after a write
    /// blocked for 30 s; an idle peer's keeper pings every 5 s (five intervals) and
    /// gives up after 9 s of silence.
    fn default() -> Self {
        HeartbeatConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            unwritable_timeout: Duration::from_secs(30),
            idle_interval: None,
        }
    }
}

impl HeartbeatConfig {
    /// A ping after `interval` of idleness; give up after `timeout` of silence, or
    /// after a write blocked for `unwritable_timeout` (usable in a `const`). An idle
    /// peer's keeper pings every five intervals.
    ///
    /// ```
    /// use std::time::Duration;
    /// use internode::session::HeartbeatConfig;
    /// let fast = HeartbeatConfig::default()
    ///     .interval(Duration::from_millis(100))
    ///     .timeout(Duration::from_secs(1));
    /// assert_eq!(fast.unwritable_timeout, Duration::from_secs(30));
    /// ```
    pub const fn new(interval: Duration, timeout: Duration, unwritable_timeout: Duration) -> Self {
        HeartbeatConfig {
            interval,
            timeout,
            unwritable_timeout,
            idle_interval: None,
        }
    }

    /// This config with pings after `interval` of idleness.
    pub const fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// This config with a read timeout of `timeout`.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// This config with an unwritable timeout of `timeout`.
    pub const fn unwritable_timeout(mut self, timeout: Duration) -> Self {
        self.unwritable_timeout = timeout;
        self
    }

    /// This config with an idle peer's keeper pinging after `interval` without
    /// traffic (see [`HeartbeatConfig::idle_interval`]).
    pub const fn idle_interval(mut self, interval: Duration) -> Self {
        self.idle_interval = Some(interval);
        self
    }

    /// How long an idle peer's keeper waits without traffic before it pings: the
    /// [idle interval](Self::idle_interval), five intervals unless set, and never
    /// less than the interval.
    pub fn relaxed_interval(&self) -> Duration {
        let idle = self
            .idle_interval
            .unwrap_or_else(|| self.interval.saturating_mul(5));
        idle.max(self.interval)
    }
}

/// What the shell must do now, from [`Heartbeat::handle_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatAction {
    /// Nothing until [`Heartbeat::poll_timeout`].
    Idle,
    /// Write a ping carrying `timestamp_us`. It is already recorded as sent.
    SendPing {
        /// Microseconds since the heartbeat's origin; the pong must echo it.
        timestamp_us: u64,
    },
    /// Nothing was read for the timeout: close the connection.
    TimedOut {
        /// How long the connection has been silent.
        silent_for: Duration,
    },
    /// A write has been blocked for the unwritable timeout: close the connection.
    Unwritable {
        /// How long the write has been in flight.
        blocked_for: Duration,
    },
}

/// The keepalive state of one connection: pings when idle, round-trip times, and the
/// read timeout, which the owner can pause while the connection has nothing to watch.
///
/// The dialing side of a connection runs a [`Heartbeat::new`]: when it has written
/// nothing, or read nothing, for [`HeartbeatConfig::interval`] it sends a ping carrying
/// a timestamp (the microseconds since an `origin` instant of the shell's choosing);
/// the peer echoes the timestamp in a pong, and the difference gives the round-trip
/// time. Pinging when nothing was read matters to a link that only writes: it reads
/// nothing but pongs, so without pings while it is busy its read timeout would reset a
/// healthy connection. The accepting
/// side runs a [`Heartbeat::read_timeout_only`]: it never pings, it answers pings (the
/// shell does that), and it gives up on a connection that stays silent.
///
/// ```text
///   last write or read + interval: SendPing ... pong arrives: rtt = now - ping's send time
///   last read                                                + timeout: TimedOut
/// ```
///
/// Invariants:
/// - [`handle_timeout`](Heartbeat::handle_timeout) reports [`TimedOut`](HeartbeatAction::TimedOut) once
///   nothing was read for `timeout`, and keeps reporting it: a timed-out connection
///   does not come back by itself (the shell closes it).
/// - At most one ping is due per `interval`: a ping is sent when no ping was sent for
///   `interval` and either nothing was written or nothing was read for `interval`.
///   While a ping goes unanswered it is re-sent every `interval` (the last
///   [`REMEMBERED_PINGS`] are remembered, so a slow pong still gives a round-trip time).
/// - A pong counts only when its timestamp is one of the remembered pings: a forged,
///   stale, duplicated or future timestamp changes nothing.
/// - No clock is read and no arithmetic panics: an instant too far in the future to
///   represent is "never" ([`poll_timeout`](Heartbeat::poll_timeout) returns `None`).
///
/// - While a write is in flight ([`handle_write_started`](Heartbeat::handle_write_started)
///   until [`handle_written`](Heartbeat::handle_written)) the read timeout does not apply: a
///   peer that is slow to read also answers pings late (they wait behind the write).
///   Instead, a write in flight for [`HeartbeatConfig::unwritable_timeout`] is
///   reported as [`Unwritable`](HeartbeatAction::Unwritable) (docs/design.md,
///   "Links", heartbeats). A write that was blocked for at least an interval and then
///   completed proves that the peer took data, and restarts the read timeout like a
///   read.
/// - While [paused](Heartbeat::pause) (and no write is in flight) it neither pings nor
///   times out, and [`poll_timeout`](Heartbeat::poll_timeout) is `None`: a connection
///   with nothing to watch costs no timer. [`resume`](Heartbeat::resume) at `now`
///   counts the silence of the pause as none: the next ping is an interval after
///   `now`, the read timeout a timeout after it. The owner decides when to pause
///   (`LinkSession`: docs/design.md, "Writing and heartbeats").
/// - While [relaxed](Heartbeat::relax) (the keeper of an idle peer) the interval is
///   [`HeartbeatConfig::relaxed_interval`] and the read timeout is longer by as much
///   as that exceeds the interval, so the silence allowed after a ping stays the
///   same. [`tighten`](Heartbeat::tighten) at `now` returns to the interval and
///   allows a whole timeout from `now` before timing out (a connection that was quiet
///   for most of its relaxed timeout does not time out as soon as it is watched
///   closely again), without counting the silence as none: relaxed again, it times
///   out as it would have, so relaxing and tightening without reading never keeps a
///   silent connection alive.
///
/// ```
/// use std::time::{Duration, Instant};
/// use internode::session::{Heartbeat, HeartbeatAction, HeartbeatConfig};
///
/// let t0 = Instant::now();
/// let mut hb = Heartbeat::new(HeartbeatConfig::default(), t0, t0);
/// assert_eq!(hb.handle_timeout(t0), HeartbeatAction::Idle);
/// assert_eq!(hb.poll_timeout(), Some(t0 + Duration::from_secs(1)));
///
/// let t1 = t0 + Duration::from_secs(1);
/// let HeartbeatAction::SendPing { timestamp_us } = hb.handle_timeout(t1) else { panic!() };
/// assert_eq!(timestamp_us, 1_000_000);
/// let rtt = hb.handle_pong(timestamp_us, t1 + Duration::from_millis(3));
/// assert_eq!(rtt, Some(Duration::from_millis(3)));
/// ```
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// `None`: never ping (the accepting side).
    interval: Option<Duration>,
    timeout: Duration,
    unwritable_timeout: Duration,
    /// When the write in flight started, if one is.
    writing_since: Option<Instant>,
    origin: Instant,
    last_read: Instant,
    last_write: Instant,
    /// Unanswered pings, oldest first: (timestamp, when it was sent).
    pings: VecDeque<(u64, Instant)>,
    rtt: Option<Duration>,
    /// When the latest ping that was answered was sent.
    answered: Option<Instant>,
    /// Neither pinging nor timing out (see [`Heartbeat::pause`]).
    paused: bool,
    /// How much longer the interval and the read timeout are while relaxed.
    idle_extra: Duration,
    /// Pinging at the idle interval (see [`Heartbeat::relax`]).
    relaxed: bool,
    /// Since it was last tightened: no read timeout before then.
    grace_until: Option<Instant>,
}

impl Heartbeat {
    /// The heartbeat of a connection established at `now` that pings when idle.
    /// Ping timestamps are measured from `origin` (for instance the node's start).
    pub fn new(config: HeartbeatConfig, origin: Instant, now: Instant) -> Self {
        Heartbeat {
            interval: Some(config.interval),
            timeout: config.timeout,
            unwritable_timeout: config.unwritable_timeout,
            writing_since: None,
            origin,
            last_read: now,
            last_write: now,
            pings: VecDeque::with_capacity(REMEMBERED_PINGS),
            rtt: None,
            answered: None,
            paused: false,
            idle_extra: config.relaxed_interval().saturating_sub(config.interval),
            relaxed: false,
            grace_until: None,
        }
    }

    /// The heartbeat of a connection established at `now` that never pings but times
    /// out after `timeout` without reading: the accepting side, whose peer pings.
    /// [`handle_timeout`](Self::handle_timeout) never returns [`SendPing`](HeartbeatAction::SendPing).
    pub fn read_timeout_only(timeout: Duration, now: Instant) -> Self {
        Heartbeat {
            interval: None,
            timeout,
            unwritable_timeout: Duration::MAX,
            writing_since: None,
            origin: now,
            last_read: now,
            last_write: now,
            pings: VecDeque::new(),
            rtt: None,
            answered: None,
            paused: false,
            idle_extra: Duration::ZERO,
            relaxed: false,
            grace_until: None,
        }
    }

    /// Something was read from the connection at `now` (any bytes: frames, pings,
    /// pongs). Restarts the read timeout.
    pub fn handle_read(&mut self, now: Instant) {
        self.last_read = self.last_read.max(now);
    }

    /// A write started at `now` (and has not completed).
    pub fn handle_write_started(&mut self, now: Instant) {
        self.writing_since = Some(now);
    }

    /// Something was written to the connection at `now` (the write in flight, if
    /// any, completed). Postpones the next ping; a write that was blocked for an
    /// interval or more also restarts the read timeout.
    pub fn handle_written(&mut self, now: Instant) {
        self.last_write = self.last_write.max(now);
        if let Some(since) = self.writing_since.take() {
            let blocked = self.interval.unwrap_or(self.timeout);
            if reached(now, since, blocked) {
                self.handle_read(now);
            }
        }
    }

    /// What to do at `now`: time out, send a ping, or nothing. A returned ping is
    /// recorded as sent at `now` (the shell need not call [`handle_written`](Self::handle_written)
    /// for it, though doing so is harmless).
    pub fn handle_timeout(&mut self, now: Instant) -> HeartbeatAction {
        if let Some(since) = self.writing_since {
            if reached(now, since, self.unwritable_timeout) {
                return HeartbeatAction::Unwritable {
                    blocked_for: now.saturating_duration_since(since),
                };
            }
        } else if self.paused {
            return HeartbeatAction::Idle;
        } else if reached(now, self.last_read, self.read_timeout())
            && self.grace_until.is_none_or(|until| now >= until)
        {
            return HeartbeatAction::TimedOut {
                silent_for: now.saturating_duration_since(self.last_read),
            };
        }
        match self.ping_due() {
            Some(due) if now >= due && !self.paused => {}
            _ => return HeartbeatAction::Idle,
        }
        let micros = now.saturating_duration_since(self.origin).as_micros();
        let timestamp_us = u64::try_from(micros).unwrap_or(u64::MAX);
        if self.pings.len() == REMEMBERED_PINGS {
            self.pings.pop_front();
        }
        self.pings.push_back((timestamp_us, now));
        HeartbeatAction::SendPing { timestamp_us }
    }

    /// A pong echoing `timestamp_us` arrived at `now`. Returns the round-trip time if
    /// the timestamp is one of the remembered unanswered pings, and records it;
    /// otherwise (garbage, a duplicate, a ping forgotten long ago, a timestamp in the
    /// future) returns `None` and changes nothing but the read time. The matched ping
    /// and any older ones are forgotten.
    pub fn handle_pong(&mut self, timestamp_us: u64, now: Instant) -> Option<Duration> {
        self.handle_read(now);
        let index = self.pings.iter().position(|&(ts, _)| ts == timestamp_us)?;
        let sent_at = self.pings[index].1;
        if sent_at > now {
            return None; // A pong from the future: the caller's clock went backwards.
        }
        self.pings.drain(..=index);
        let rtt = now.saturating_duration_since(sent_at);
        self.rtt = Some(rtt);
        self.answered = Some(self.answered.map_or(sent_at, |a| a.max(sent_at)));
        Some(rtt)
    }

    /// When the latest ping that got its pong was sent: the peer had read everything
    /// written before it.
    pub fn answered_ping(&self) -> Option<Instant> {
        self.answered
    }

    /// Stops pinging and timing out until [`resume`](Self::resume) (a write in
    /// flight still times out as unwritable). Pongs still count.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Pings and times out again from `now`, as if the connection had just carried
    /// something both ways. Nothing changes if not paused.
    pub fn resume(&mut self, now: Instant) {
        if std::mem::take(&mut self.paused) {
            self.last_read = self.last_read.max(now);
            self.last_write = self.last_write.max(now);
        }
    }

    /// Whether the heartbeat is [paused](Self::pause).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Pings at [`HeartbeatConfig::idle_interval`] and allows as much more silence,
    /// until [`tighten`](Self::tighten): the keepalive of an idle peer. No change
    /// on a heartbeat that never pings.
    pub fn relax(&mut self) {
        self.relaxed = self.interval.is_some();
        if self.relaxed {
            self.grace_until = None;
        }
    }

    /// Pings at the interval again from `now` (the next ping an interval after it)
    /// and allows a whole timeout from `now` before timing out; the silence so far
    /// still counts once relaxed again. Nothing changes if not relaxed.
    pub fn tighten(&mut self, now: Instant) {
        if std::mem::take(&mut self.relaxed) {
            self.last_write = self.last_write.max(now);
            self.grace_until = now.checked_add(self.timeout);
        }
    }

    /// Whether the heartbeat is [relaxed](Self::relax).
    pub fn is_relaxed(&self) -> bool {
        self.relaxed
    }

    /// The silence after which the connection times out.
    fn read_timeout(&self) -> Duration {
        match self.relaxed {
            true => self.timeout.saturating_add(self.idle_extra),
            false => self.timeout,
        }
    }

    /// The last measured round-trip time, if any pong arrived.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Whether a ping is waiting for its pong.
    pub fn ping_outstanding(&self) -> bool {
        !self.pings.is_empty()
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) may return something other
    /// than [`Idle`](HeartbeatAction::Idle): the sooner of the read timeout and the
    /// next ping. `None` when neither can be represented as an [`Instant`] (durations
    /// too large), or while paused with no write in flight: never. May lie in the
    /// past: then poll now.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timeout = match self.writing_since {
            Some(since) => since.checked_add(self.unwritable_timeout),
            None if self.paused => return None,
            None => self
                .last_read
                .checked_add(self.read_timeout())
                .map(|at| self.grace_until.map_or(at, |until| at.max(until))),
        };
        if self.paused {
            return timeout;
        }
        match (timeout, self.ping_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the next ping is due: `interval` (relaxed: the idle interval) after the
    /// last ping, or after the last write or the last read, whichever of those two
    /// is earlier, if that is later.
    /// `None`: never.
    fn ping_due(&self) -> Option<Instant> {
        let interval = match self.relaxed {
            true => self.interval?.saturating_add(self.idle_extra),
            false => self.interval?,
        };
        let last_ping = self.pings.back().map(|&(_, sent)| sent);
        let traffic = self.last_write.min(self.last_read);
        let last_activity = last_ping.map_or(traffic, |p| p.max(traffic));
        last_activity.checked_add(interval)
    }
}

/// Whether `now` is at or after `since + duration`; never, when that overflows.
fn reached(now: Instant, since: Instant, duration: Duration) -> bool {
    since.checked_add(duration).is_some_and(|at| now >= at)
}

#[cfg(test)]
#[path = "heartbeat_tests.rs"]
mod tests;
