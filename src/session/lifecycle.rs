//! The lifecycle of one link: [`Lifecycle`] (its type docs state the invariants).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::{Backoff, DisconnectReason};

/// What a link is doing, as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// No connection and nothing to send: no socket is open.
    Dormant,
    /// A connection attempt (connect and handshake) is under way.
    Connecting {
        /// Attempts since the last successful connection, this one included (from 1).
        attempt: u32,
    },
    /// A connection is established.
    Connected {
        /// When the connection was established.
        since: Instant,
    },
    /// The last attempt failed or the connection was lost; the next one starts at
    /// `until`.
    WaitingToRetry {
        /// The number the next attempt will have.
        attempt: u32,
        /// When the next attempt starts.
        until: Instant,
    },
    /// Closing after the queued messages are delivered (connecting or retrying as
    /// needed to deliver them).
    Draining,
    /// Closed for good.
    Closed,
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkState::Dormant => f.write_str("dormant"),
            LinkState::Connecting { attempt } => write!(f, "connecting (attempt {attempt})"),
            LinkState::Connected { .. } => f.write_str("connected"),
            LinkState::WaitingToRetry { attempt, .. } => {
                write!(f, "waiting to retry (attempt {attempt})")
            }
            LinkState::Draining => f.write_str("draining"),
            LinkState::Closed => f.write_str("closed"),
        }
    }
}

/// What happened to a link, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// A connection attempt started.
    Connecting {
        /// Attempts since the last successful connection, this one included.
        attempt: u32,
    },
    /// A connection was established (handshake included).
    Connected,
    /// A connection attempt failed or an established connection ended.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// The next connection attempt will start after `delay`.
    RetryScheduled {
        /// The number the next attempt will have.
        attempt: u32,
        /// How long until it starts.
        delay: Duration,
    },
    /// The link stopped trying to connect: nothing waits to be sent.
    Dormant,
    /// The link is closed for good.
    Closed,
    /// The peer process restarted (the handshake brought a new session id): the
    /// messages it had not acknowledged failed with `PeerRestarted`. Emitted by
    /// lossless sessions, not by [`Lifecycle`].
    PeerRestarted {
        /// The peer's session id before.
        previous_session_id: u64,
        /// The peer's new session id.
        session_id: u64,
    },
}

impl fmt::Display for LinkEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkEvent::Connecting { attempt } => write!(f, "connecting (attempt {attempt})"),
            LinkEvent::Connected => f.write_str("connected"),
            LinkEvent::Disconnected { reason } => write!(f, "disconnected: {reason}"),
            LinkEvent::RetryScheduled { attempt, delay } => {
                write!(
                    f,
                    "retry scheduled: attempt {attempt} in {} ms",
                    delay.as_millis()
                )
            }
            LinkEvent::Dormant => f.write_str("dormant"),
            LinkEvent::Closed => f.write_str("closed"),
            LinkEvent::PeerRestarted {
                previous_session_id,
                session_id,
            } => write!(
                f,
                "peer restarted (session {previous_session_id:#x} -> {session_id:#x})"
            ),
        }
    }
}

/// What the shell must do, returned by [`Lifecycle`]'s `handle_*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    /// Start a connection attempt (connect, then handshake) and report its outcome
    /// with [`Lifecycle::handle_connected`] or [`Lifecycle::handle_disconnected`].
    Connect,
    /// Call [`Lifecycle::handle_retry_timer`] at `at` (also given by
    /// [`Lifecycle::poll_timeout`]).
    ScheduleRetry {
        /// When.
        at: Instant,
        /// How long from now.
        delay: Duration,
    },
    /// Close the connection, or abandon the attempt under way.
    CloseConnection,
    /// Fail every queued message with `Closed` (a close without drain).
    FailQueued,
    /// The link is closed: stop the actor.
    Stop,
}

/// The connection, as far as the lifecycle knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    None,
    Connecting { attempt: u32 },
    Connected { since: Instant },
    Retry { attempt: u32, until: Instant },
}

/// Whether the link is closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Draining,
    Closed,
}

/// The lifecycle of one link (docs/design.md, "Links"): connect while messages wait,
/// retry forever with backoff while they do, go dormant when none do, close with or
/// without draining.
///
/// ```text
///             messages waiting              connected
///  Dormant ────────────────────> Connecting ──────────> Connected
///     ^ ^                         │     ^                 │   │
///     │ │ failed, nothing waiting │     │ retry timer     │   │ disconnected
///     │ └─────────────────────────┤     │                 │   │ (retries unless closing)
///     │                           └─> WaitingToRetry <────┼───┘
///     │            failed, messages waiting               │
///     └───────────────────────────────────────────────────┘
///                idle (handle_idle): closed on purpose
///
///  close(drain) with messages waiting ─> Draining ─ drained ─> Closed
///  close(no drain), or nothing waiting ────────────────────> Closed (FailQueued)
/// ```
///
/// Invariants:
/// - The machine only decides; the shell acts. Each `handle_*` call returns the
///   [`LifecycleAction`]s to carry out in order, and queues [`LinkEvent`]s for the
///   application, which the shell takes with [`poll_event`](Lifecycle::poll_event)
///   after every call. Events come in the order the transitions happened.
/// - At most one connection exists or is being made: [`LifecycleAction::Connect`] is
///   only returned when there is none.
/// - The only timer is the retry timer: [`poll_timeout`](Lifecycle::poll_timeout)
///   says when [`handle_retry_timer`](Lifecycle::handle_retry_timer) is due, and
///   changes only through a `handle_*` call (re-read it after each one).
/// - A link retries forever while messages wait (queued, or written and not yet
///   acknowledged: the shell says which), and goes dormant when none do. The
///   backoff advances with every failure and is reset only by a successful
///   connection, not by going dormant: a message arriving at a dormant link connects
///   at once, but if that fails too the delays keep growing from where they were.
///   An idle connection closed on purpose ([`handle_idle`](Lifecycle::handle_idle))
///   is no failure: the link goes dormant and the backoff stays as it is.
/// - `Closed` is final: every later input is ignored, except a late successful
///   connect, which is answered with [`LifecycleAction::CloseConnection`].
/// - Reports that do not fit the state (a failure when no connection exists, a
///   retry timer that fires early or after the retry was cancelled) are ignored, so a
///   shell that loses a race with its own timer cannot corrupt the state.
///
/// ```
/// use std::time::{Duration, Instant};
/// use internode::session::{
///     Backoff, BackoffConfig, DisconnectReason, Lifecycle, LifecycleAction, LinkEvent,
///     LinkState,
/// };
///
/// let t0 = Instant::now();
/// let mut link = Lifecycle::new(Backoff::new(BackoffConfig::default(), 1));
/// assert_eq!(link.handle_messages_waiting(), [LifecycleAction::Connect]);
/// let refused = DisconnectReason::ConnectFailed(std::io::ErrorKind::ConnectionRefused);
/// let actions = link.handle_disconnected(refused, true, t0);
/// let [LifecycleAction::ScheduleRetry { at, .. }] = actions[..] else { panic!() };
/// assert_eq!(link.poll_timeout(), Some(at));
/// assert_eq!(link.handle_retry_timer(at), [LifecycleAction::Connect]);
/// assert!(link.handle_connected(at).is_empty());
/// assert_eq!(link.state(), &LinkState::Connected { since: at });
/// assert_eq!(link.poll_event(), Some(LinkEvent::Connecting { attempt: 1 }));
/// ```
#[derive(Debug, Clone)]
pub struct Lifecycle {
    backoff: Backoff,
    conn: Conn,
    mode: Mode,
    /// Connection attempts made since the last successful connection.
    attempts: u32,
    /// Derived from `conn` and `mode` after every transition.
    state: LinkState,
    events: VecDeque<LinkEvent>,
}

impl Lifecycle {
    /// A dormant link whose retries follow `backoff`.
    pub fn new(backoff: Backoff) -> Self {
        Lifecycle {
            backoff,
            conn: Conn::None,
            mode: Mode::Open,
            attempts: 0,
            state: LinkState::Dormant,
            events: VecDeque::new(),
        }
    }

    /// What the link is doing.
    pub fn state(&self) -> &LinkState {
        &self.state
    }

    /// Whether a connection is established (also while draining).
    pub fn is_connected(&self) -> bool {
        matches!(self.conn, Conn::Connected { .. })
    }

    /// Whether the link is closed for good.
    pub fn is_closed(&self) -> bool {
        self.mode == Mode::Closed
    }

    /// The next event for the application, oldest first.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// When [`handle_retry_timer`](Self::handle_retry_timer) is due, if a retry is
    /// scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.conn {
            Conn::Retry { until, .. } => Some(until),
            _ => None,
        }
    }

    /// Messages are waiting to be sent: a dormant link starts connecting (also a
    /// draining one that has no connection). Otherwise nothing changes: a link that
    /// is connecting, connected or waiting to retry is already on its way.
    pub fn handle_messages_waiting(&mut self) -> Vec<LifecycleAction> {
        if self.mode == Mode::Closed || self.conn != Conn::None {
            return Vec::new();
        }
        vec![self.start_connecting()]
    }

    /// The connection attempt succeeded (connect and handshake) at `now`: the link
    /// is connected and the backoff starts over. A connection reported while dormant
    /// or waiting to retry (an attempt the shell did not cancel, finishing late) is
    /// taken as well: the retry is cancelled. On a closed link the new connection is
    /// closed at once; a second report while connected is ignored.
    pub fn handle_connected(&mut self, now: Instant) -> Vec<LifecycleAction> {
        match (self.mode, self.conn) {
            (Mode::Closed, _) => vec![LifecycleAction::CloseConnection],
            (_, Conn::Connected { .. }) => Vec::new(),
            _ => {
                self.conn = Conn::Connected { since: now };
                self.attempts = 0;
                self.backoff.reset();
                self.emit(LinkEvent::Connected);
                Vec::new()
            }
        }
    }

    /// The connection (or the attempt under way) ended at `now`. The link waits to
    /// retry if messages wait; otherwise it goes dormant, or, while draining, closes.
    /// Ignored when there is no connection or attempt.
    pub fn handle_disconnected(
        &mut self,
        reason: DisconnectReason,
        messages_waiting: bool,
        now: Instant,
    ) -> Vec<LifecycleAction> {
        self.handle_failure(reason, messages_waiting, now)
    }

    /// The connection carried nothing for `idle_for` and nothing waits: the shell's
    /// owner closes it on purpose (idle links are pruned). The link goes dormant,
    /// reporting `Disconnected` ([`DisconnectReason::Idle`]) and `Dormant`; unlike a
    /// failure this does not advance the backoff. Ignored unless connected and open
    /// (a draining link closes once drained instead).
    pub fn handle_idle(&mut self, idle_for: Duration) -> Vec<LifecycleAction> {
        if self.mode != Mode::Open || !matches!(self.conn, Conn::Connected { .. }) {
            return Vec::new();
        }
        self.conn = Conn::None;
        self.emit(LinkEvent::Disconnected {
            reason: DisconnectReason::idle(idle_for),
        });
        self.emit(LinkEvent::Dormant);
        vec![LifecycleAction::CloseConnection]
    }

    /// The retry timer fired at `now`: if a retry is scheduled and due, the next
    /// attempt starts. An early or stale timer is ignored.
    pub fn handle_retry_timer(&mut self, now: Instant) -> Vec<LifecycleAction> {
        match self.conn {
            Conn::Retry { until, .. } if now >= until && self.mode != Mode::Closed => {
                vec![self.start_connecting()]
            }
            _ => Vec::new(),
        }
    }

    /// Something says the peer is reachable now (it connected to this node, or its
    /// address changed): a link waiting to retry starts its next attempt at once. The
    /// backoff is not reset (only a successful connection does that). Ignored
    /// otherwise.
    pub fn handle_wake(&mut self) -> Vec<LifecycleAction> {
        match self.conn {
            Conn::Retry { .. } if self.mode != Mode::Closed => vec![self.start_connecting()],
            _ => Vec::new(),
        }
    }

    /// The application closes the link. With `drain` and messages waiting, the link
    /// drains (connecting and retrying as needed) until
    /// [`handle_drained`](Self::handle_drained). Otherwise it closes at once; without
    /// `drain` the queued messages fail. A close without drain also cuts a drain
    /// short. Ignored once closed.
    pub fn handle_close(&mut self, drain: bool, messages_waiting: bool) -> Vec<LifecycleAction> {
        match self.mode {
            Mode::Closed => Vec::new(),
            Mode::Draining if drain && messages_waiting => Vec::new(),
            Mode::Open if drain && messages_waiting => {
                self.mode = Mode::Draining;
                self.update_state();
                if self.conn == Conn::None {
                    vec![self.start_connecting()]
                } else {
                    Vec::new()
                }
            }
            _ => self.close_now(!drain),
        }
    }

    /// Everything queued was delivered: a draining link closes. Ignored otherwise.
    pub fn handle_drained(&mut self) -> Vec<LifecycleAction> {
        if self.mode == Mode::Draining {
            self.close_now(false)
        } else {
            Vec::new()
        }
    }

    fn handle_failure(
        &mut self,
        reason: DisconnectReason,
        messages_waiting: bool,
        now: Instant,
    ) -> Vec<LifecycleAction> {
        if matches!(self.conn, Conn::None | Conn::Retry { .. }) {
            return Vec::new();
        }
        self.conn = Conn::None;
        self.emit(LinkEvent::Disconnected { reason });
        // Every failure advances the backoff, also one after which the link goes
        // dormant: a link woken again soon after keeps backing off.
        let delay = self.backoff.next_delay();
        if messages_waiting {
            // A retry too far away to represent never comes: treated as no retry.
            if let Some(until) = now.checked_add(delay) {
                let attempt = self.attempts.saturating_add(1);
                self.conn = Conn::Retry { attempt, until };
                self.emit(LinkEvent::RetryScheduled { attempt, delay });
                return vec![LifecycleAction::ScheduleRetry { at: until, delay }];
            }
        }
        if self.mode == Mode::Draining {
            return self.close_now(messages_waiting);
        }
        self.emit(LinkEvent::Dormant);
        Vec::new()
    }

    fn start_connecting(&mut self) -> LifecycleAction {
        self.attempts = self.attempts.saturating_add(1);
        let attempt = self.attempts;
        self.conn = Conn::Connecting { attempt };
        self.emit(LinkEvent::Connecting { attempt });
        LifecycleAction::Connect
    }

    fn close_now(&mut self, fail_queued: bool) -> Vec<LifecycleAction> {
        let mut actions = Vec::with_capacity(3);
        if matches!(self.conn, Conn::Connecting { .. } | Conn::Connected { .. }) {
            actions.push(LifecycleAction::CloseConnection);
        }
        if fail_queued {
            actions.push(LifecycleAction::FailQueued);
        }
        actions.push(LifecycleAction::Stop);
        self.conn = Conn::None;
        self.mode = Mode::Closed;
        self.emit(LinkEvent::Closed);
        actions
    }

    /// Queues `event` and brings [`state`](Self::state) up to date: every transition
    /// emits an event, so this is the one place the state is derived.
    fn emit(&mut self, event: LinkEvent) {
        self.events.push_back(event);
        self.update_state();
    }

    fn update_state(&mut self) {
        self.state = match (self.mode, self.conn) {
            (Mode::Closed, _) => LinkState::Closed,
            (Mode::Draining, _) => LinkState::Draining,
            (Mode::Open, Conn::None) => LinkState::Dormant,
            (Mode::Open, Conn::Connecting { attempt }) => LinkState::Connecting { attempt },
            (Mode::Open, Conn::Connected { since }) => LinkState::Connected { since },
            (Mode::Open, Conn::Retry { attempt, until }) => {
                LinkState::WaitingToRetry { attempt, until }
            }
        };
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
