//! What a [`LinkSession`] does while it has nothing to send: when its connection is
//! watched by the heartbeat, and when an idle connection is closed (pruned).
//!
//! An idle link must cost nothing: no timer firing with nothing to do, no keepalive
//! that another connection to the same peer already gives. The rule
//! (docs/design.md, "Writing and heartbeats"):
//!
//! - **The keeper pings.** Per peer, one link carries the peer's keepalive: its
//!   *keeper* ([`handle_keeper`](LinkSession::handle_keeper); a node makes the urgent
//!   link the keeper when it is connected, else the small one, else the large one).
//!   The keeper's heartbeat runs whenever it is connected, busy or not: a ping after
//!   an interval without traffic, the read timeout. While the keeper itself holds no
//!   message (nothing queued, being written, unacknowledged or, lossy, unconfirmed;
//!   its own pings do not count) and its connection has been answered once, its
//!   heartbeat is *relaxed*: it pings after [`HeartbeatConfig::idle_interval`]
//!   (default five intervals: 5 s) without traffic, and allows
//!   that much more silence before the read timeout. An idle peer needs no
//!   second-by-second watch: what the links hold is watched at the interval by the
//!   links that hold it, and a message given to the keeper tightens its heartbeat
//!   at once.
//! - **The others watch only what is unconfirmed.** Any other link runs its heartbeat
//!   only while its connection holds something not yet confirmed by the peer:
//!   messages queued, being written or unacknowledged (lossless), a ping waiting for
//!   its pong, a lossy write until a pong answers a ping written after it, and a new
//!   connection until the peer answers anything (so that the receiving side hears
//!   from every new connection within its read timeout, even one whose messages all
//!   expired before they could be written). Otherwise the heartbeat is paused: no
//!   ping, no read timeout, no timer ([`poll_timeout`](LinkSession::poll_timeout) is
//!   `None` on an idle, connected, non-keeper link with no lease to give back).
//!   Resumed, it counts from that moment, so a link that was silent for an hour does
//!   not time out at once: its next ping is an interval later.
//! - **Idle links are pruned.** With [`LinkConfig::idle_timeout`] set, a connected
//!   link whose connection carried no message (written or acknowledged; keepalives do
//!   not count) for that long, and which holds nothing unconfirmed, closes its
//!   connection on purpose: `Disconnected` with [`DisconnectReason::Idle`], then
//!   `Dormant`. The keeper is pruned too, so a peer with no traffic at all ends up
//!   with no connection, no timer and no keepalive. The session stays (its id, its
//!   sequence numbers): the next message reconnects and resumes it, and the peer,
//!   which sees the same session id, counts no restart.
//!
//! So what is unconfirmed is always watched (a dead peer is found within the read
//! timeout whatever link it is on), an idle peer is watched by one connection at the
//! interval until it is pruned, and a pruned peer costs nothing.
//!
//! [`DisconnectReason::Idle`]: crate::session::DisconnectReason::Idle
//! [`HeartbeatConfig::idle_interval`]: crate::session::HeartbeatConfig::idle_interval
//! [`LinkConfig::idle_timeout`]: super::LinkConfig::idle_timeout

use std::time::Instant;

use super::LinkSession;
use crate::session::{LinkPolicy, LinkState};

impl<K: Clone + Eq, T> LinkSession<K, T> {
    /// Whether this link carries its peer's keepalive (at `now`): a keeper pings
    /// whenever it is connected, another link only while something on its connection
    /// is unconfirmed (see the module documentation). Links are not keepers until
    /// told.
    pub fn handle_keeper(&mut self, keeper: bool, now: Instant) {
        self.keeper = keeper;
        self.housekeep(now);
    }

    /// Whether this link carries its peer's keepalive.
    pub fn is_keeper(&self) -> bool {
        self.keeper
    }

    /// Whether the connection holds something to write or to be confirmed: messages
    /// queued, being written or unacknowledged, a ping to write or to be answered, or
    /// writes (or the connection itself) not yet confirmed by the peer.
    pub(super) fn unconfirmed(&self) -> bool {
        let Some(conn) = self.conn.as_ref() else {
            return false;
        };
        self.holds_messages()
            || conn.writing
            || conn.ping.is_some()
            || conn.heartbeat.ping_outstanding()
    }

    /// Whether the connection holds messages (queued, being written,
    /// unacknowledged, or lossy writes not yet confirmed) or is new and not yet
    /// answered: [`Self::unconfirmed`] but for the keepalive's own pings.
    fn holds_messages(&self) -> bool {
        let Some(conn) = self.conn.as_ref() else {
            return false;
        };
        !self.queue.is_empty()
            || !self.unacked.is_empty()
            || !conn.in_flight.is_empty()
            || conn.unconfirmed_since.is_some()
    }

    /// Messages were written on the connection at `now`: they count as traffic, and a
    /// lossy link's writes are unconfirmed until a ping written after them is
    /// answered.
    pub(super) fn note_written(&mut self, now: Instant) {
        let lossy = self.config.policy == LinkPolicy::Lossy;
        if let Some(conn) = self.conn.as_mut() {
            conn.last_traffic = now;
            if lossy {
                conn.unconfirmed_since = Some(now);
            }
        }
    }

    /// An acknowledgement arrived at `now`: traffic, and proof that the peer read
    /// what it acknowledges (a lossless link's connection is confirmed by it).
    pub(super) fn note_acknowledged(&mut self, now: Instant) {
        if let Some(conn) = self.conn.as_mut() {
            conn.last_traffic = now;
            conn.unconfirmed_since = None;
        }
    }

    /// Runs or pauses the heartbeat by the rule, after every input: a pong to a ping
    /// written after the last unconfirmed write confirms it.
    pub(super) fn update_keepalive(&mut self, now: Instant) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let answered = conn.heartbeat.answered_ping();
        if let (Some(since), Some(answered)) = (conn.unconfirmed_since, answered) {
            // Strictly after: a ping decided at the same instant as a write may be
            // ahead of it in the same transmit.
            if answered > since {
                conn.unconfirmed_since = None;
            }
        }
        let relaxed = self.keeper && !self.holds_messages();
        let watched = self.keeper || self.unconfirmed();
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if watched {
            conn.heartbeat.resume(now);
        } else {
            conn.heartbeat.pause();
        }
        if relaxed {
            conn.heartbeat.relax();
        } else {
            conn.heartbeat.tighten(now);
        }
    }

    /// When the idle connection is to be pruned: the idle timeout after its last
    /// traffic, if it is connected, open and holds nothing unconfirmed. `None`: not
    /// (yet) prunable, or no idle timeout.
    pub(super) fn prune_at(&self) -> Option<Instant> {
        let idle_timeout = self.config.idle_timeout?;
        let conn = self.conn.as_ref()?;
        let open = matches!(self.lifecycle.state(), LinkState::Connected { .. });
        if !open || self.unconfirmed() {
            return None;
        }
        conn.last_traffic.checked_add(idle_timeout)
    }

    /// Prunes the idle connection if it is due at `now`.
    pub(super) fn prune_if_due(&mut self, now: Instant) {
        if self.prune_at().is_none_or(|at| now < at) {
            return;
        }
        let idle_for = self.conn.as_ref().map_or_else(Default::default, |c| {
            now.saturating_duration_since(c.last_traffic)
        });
        let actions = self.lifecycle.handle_idle(idle_for);
        self.apply(actions);
    }
}
