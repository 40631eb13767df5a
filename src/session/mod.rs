//! Per-link bookkeeping as plain state machines: the layer between the sans-IO
//! codecs ([`frame`](crate::frame), [`envelope`](crate::envelope),
//! [`handshake`](crate::handshake)) and the actors.
//!
//! Nothing here knows about actix, tokio or sockets, and nothing reads a clock. An
//! actor owns one machine per concern and drives it in the quinn vocabulary:
//!
//! - it reports what happened with a `handle_*` or `on_*` call (a message queued, a
//!   connect finished or failed, bytes read or written, a timer fired), passing the
//!   current time as `now: Instant` wherever time matters;
//! - it carries out what the call returns (an action list or a single action), in
//!   order, and takes the application's [`LinkEvent`]s with
//!   [`Lifecycle::poll_event`];
//! - timers are data: each machine says when it next needs waking
//!   ([`Lifecycle::poll_timeout`], [`Heartbeat::next_deadline`],
//!   [`PendingRequests::next_deadline`]); the actor arms one timer for the earliest of
//!   them, re-reads them after every call, and calls back at or after that instant
//!   (an early or stale wake-up is harmless: the machines ignore it).
//!
//! The machines:
//!
//! - [`Backoff`]: the reconnect delays (exponential, equal jitter, capped; seeded, so
//!   deterministic in tests).
//! - [`Lifecycle`]: one link's connect / retry / dormant / drain / close decisions
//!   (DESIGN.md section 5), with [`DisconnectReason`]s and [`LinkEvent`]s.
//! - [`Heartbeat`]: keepalive pings on an idle connection, round-trip times, and the
//!   read timeout.
//! - [`PendingRequests`]: requests waiting for responses, with their deadlines.
//!
//! Invariants common to all of them: no method panics on any input or any sequence of
//! calls (an input that does not fit the state is ignored and documented as such);
//! time arithmetic is checked, and an instant too far away to represent means
//! "never"; the same inputs (and seed) give the same outputs.

mod backoff;
pub mod control;
mod heartbeat;
mod lifecycle;
mod link;
mod queue;
mod reason;
mod receive;
mod requests;
mod warn;

pub use backoff::{Backoff, BackoffConfig};
pub use heartbeat::{Heartbeat, HeartbeatAction, HeartbeatConfig, REMEMBERED_PINGS};
pub use lifecycle::{Lifecycle, LifecycleAction, LinkEvent, LinkState};
pub use link::{
    Admission, LinkAction, LinkConfig, LinkCounters, LinkPolicy, LinkSession, Outbound,
    HOUSEKEEPING,
};
pub use receive::{Arrival, InboundCounters, ReceiveConfig, ReceiveSession, StaleAttempt};
pub use queue::{Entry, OutboundQueue, Refused};
pub use reason::{DisconnectReason, ProtocolViolation};
pub use requests::PendingRequests;
pub use warn::WarnLimiter;
#[cfg(test)]
mod pair_tests;
