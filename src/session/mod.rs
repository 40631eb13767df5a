//! Per-link logic as plain state machines: the layer between the sans-IO codecs
//! ([`frame`](crate::frame), [`envelope`](crate::envelope),
//! [`handshake`](crate::handshake)) and the actors.
//!
//! Nothing here knows about actix, tokio or sockets, and nothing reads a clock. Two
//! cores hold everything a link decides, in the vocabulary of quinn-proto's
//! `Connection`:
//!
//! - [`LinkSession`], one per outbound link: the queue, what is being written and
//!   what waits for an acknowledgement, the lifecycle, the heartbeat, the byte
//!   account and expiry, sequence numbers and replay (docs/design.md);
//! - [`ReceiveSession`], one per receiving link (peer, link kind), across its
//!   connections: the sequence filter (order, duplicates), the acknowledgements, the
//!   receive-limit account and its backlog, the read timeout.
//!
//! A shell (an actor) drives a core like this:
//!
//! - it reports what happened with a `handle_*` call (a message to send, a connect
//!   that finished or failed, bytes read, a write done, the timer), passing the
//!   current time (`now: Instant`, and `now_ms` since the UNIX epoch where message
//!   deadlines matter);
//! - after every call it carries out what the `poll_*` methods return, until they
//!   return nothing: actions (connect, close), bytes to write
//!   (`poll_transmit`; at most one write is out), outcomes, arrivals, events,
//!   reserve to give back or to ask for;
//! - timers are data: it arms one timer at `poll_timeout` (re-read after every call)
//!   and calls `handle_timeout` at or after it (an early or stale wake-up is
//!   harmless). No core asks for a periodic tick, and no timer fires on a link with
//!   nothing to do.
//!
//! Idle links (docs/design.md, "Writing and heartbeats"): per peer one link, the
//! *keeper* ([`LinkSession::handle_keeper`]; a node picks the urgent link when it is
//! connected, else the small, else the large), pings whenever it is connected; the
//! others watch their connection only while something on it is unconfirmed (queued,
//! being written, unacknowledged, a ping out, a lossy write not yet followed by an
//! answered ping, a new connection not yet answered), so an idle connected link that is
//! not the keeper arms no timer. The receiving core applies its read timeout only until a
//! connection's first input and while a partial message is held, never to an idle
//! connection. With [`LinkConfig::idle_timeout`], an idle link closes its connection
//! ([`DisconnectReason::Idle`]) and goes dormant, keeping its session, so its next
//! message resumes it without `PeerRestarted`. A dormant link has no timer at all.
//!
//! The smaller machines the cores are built from, in the same vocabulary:
//!
//! - [`Backoff`]: the reconnect delays (exponential, equal jitter, capped; seeded, so
//!   deterministic in tests).
//! - [`Lifecycle`]: one link's connect / retry / dormant / drain / close decisions,
//!   with [`DisconnectReason`]s and [`LinkEvent`]s.
//! - [`Heartbeat`]: keepalive pings on an idle connection, round-trip times, and the
//!   read and unwritable timeouts; paused while its connection has nothing to watch.
//! - [`OutboundQueue`]: admission against the link's byte account, expiry, order.
//! - [`PendingRequests`]: requests waiting for responses, with their deadlines (driven
//!   by the request tracker actor).
//! - [`control`]: the keepalive and acknowledgement messages on the wire.
//! - [`TrimDeadline`]: when a receiving connection gives back the read buffer large
//!   frames grew (once, a while after the last; never on an idle connection).
//!
//! Invariants common to all of them: no method panics on any input or any sequence of
//! calls (an input that does not fit the state is ignored and documented as such);
//! time arithmetic is checked, and an instant too far away to represent means
//! "never"; the same inputs (and seed) give the same outputs. The two cores are tested
//! against each other on a simulated clock, through cuts, lost acknowledgements,
//! flipped bits and restarts (`pair_tests/`), and the receiving core under arbitrary
//! byte streams (`fuzzing::receive`, with the `fuzzing` feature).

mod backoff;
pub mod control;
mod heartbeat;
mod lifecycle;
mod link;
mod queue;
mod reason;
mod receive;
mod requests;
mod trim;
mod warn;

pub use backoff::{Backoff, BackoffConfig};
pub use heartbeat::{Heartbeat, HeartbeatAction, HeartbeatConfig, REMEMBERED_PINGS};
pub use lifecycle::{Lifecycle, LifecycleAction, LinkEvent, LinkState};
pub use link::{
    Admission, Completion, CreditAnswer, LinkAction, LinkConfig, LinkCounters, LinkPolicy,
    LinkSession, Outbound, HOUSEKEEPING,
};
pub use queue::{Entry, OutboundQueue, Refused};
pub use reason::{DisconnectReason, ProtocolViolation, TlsFailure};
pub use receive::{
    Arrival, InboundCounters, ReceiveConfig, ReceiveSession, StaleAttempt, TRIM_AFTER,
};
pub use requests::PendingRequests;
pub use trim::TrimDeadline;
pub use warn::WarnLimiter;
#[cfg(test)]
mod pair_tests;

/// Gives back `queue`'s allocation if it is empty (an idle link holds none; the next
/// entry allocates it again).
pub(crate) fn shrink_if_empty<T>(queue: &mut std::collections::VecDeque<T>) {
    if queue.is_empty() {
        *queue = std::collections::VecDeque::new();
    }
}
