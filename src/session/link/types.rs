//! The data a [`LinkSession`](super::LinkSession) takes and gives: the message, the
//! policy, the configuration, the counters, and what the shell must do.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use crate::envelope::Flags;
use crate::limits::ReserveNeeded;
use crate::outcome::{SendError, SendErrorKind};
#[cfg(doc)]
use crate::session::LinkSession;
use crate::session::{BackoffConfig, HeartbeatConfig};

/// What a link promises about its messages when a connection fails (docs/design.md,
/// "Lossless sessions").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LinkPolicy {
    /// Every message gets a sequence number; the peer acknowledges what it took; what
    /// was written and not acknowledged when a connection fails is written again on
    /// the next one, and the peer drops what it already has. While both processes
    /// live, every accepted message is delivered exactly once, in order; its outcome
    /// is [`Sent::Acknowledged`](crate::outcome::Sent::Acknowledged). If the peer restarted, the messages it had not
    /// acknowledged fail with [`SendError::PeerRestarted`].
    #[default]
    Lossless,
    /// A message's outcome is [`Sent::Written`](crate::outcome::Sent::Written) once handed to the kernel; if the
    /// connection then fails it may be lost. Messages being written when a connection
    /// fails end [`SendError::ConnectionLost`].
    Lossy,
}

/// A message for a link: an envelope's fields without its id (the link numbers what
/// it sends).
///
/// An application builds one from a verb and a payload ([`Outbound::new`]) and may set
/// its deadline; the request/response flags and the envelope parameters are the
/// crate's own (a request's id, a response's), so a raw message cannot pose as a
/// response or forge a request id. Verbs at or above
/// [`RESERVED_VERBS_START`](crate::message::RESERVED_VERBS_START) are internode's
/// control messages: a node's link refuses them from the application
/// ([`SendError::ReservedVerb`]).
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The verb of the message type.
    pub verb: u32,
    /// The encoded message.
    pub payload: Bytes,
    /// When the message expires (ms since the UNIX epoch), if ever.
    pub expires_at_ms: Option<u64>,
    /// Request / response flags (set by the crate only).
    pub(crate) flags: Flags,
    /// Envelope parameters (set by the crate only).
    pub(crate) params: Vec<(u32, Bytes)>,
}

impl Outbound {
    /// A one-way message of `verb` carrying `payload`, without parameters, that never
    /// expires.
    ///
    /// ```
    /// use internode::session::Outbound;
    /// let message = Outbound::new(7, bytes::Bytes::from_static(b"hi")).expires_at_ms(Some(1_000));
    /// assert_eq!((message.verb, message.size(), message.expires_at_ms), (7, 2, Some(1_000)));
    /// assert!(message.flags().is_empty() && message.params().is_empty());
    /// ```
    pub fn new(verb: u32, payload: Bytes) -> Self {
        Outbound {
            verb,
            flags: Flags::EMPTY,
            payload,
            params: Vec::new(),
            expires_at_ms: None,
        }
    }

    /// A message with protocol flags and envelope parameters (requests and
    /// responses).
    pub(crate) fn with_protocol(mut self, flags: Flags, params: Vec<(u32, Bytes)>) -> Self {
        self.flags = flags;
        self.params = params;
        self
    }

    /// This message expiring at `expires_at_ms` (ms since the UNIX epoch), or never.
    pub fn expires_at_ms(mut self, expires_at_ms: Option<u64>) -> Self {
        self.expires_at_ms = expires_at_ms;
        self
    }

    /// Its request / response flags (empty for a one-way message).
    pub fn flags(&self) -> Flags {
        self.flags
    }

    /// Its envelope parameters (a request's or response's id).
    pub fn params(&self) -> &[(u32, Bytes)] {
        &self.params
    }

    /// The bytes the message is charged against the limits: its payload and
    /// parameters (what the link holds in memory for it).
    pub fn size(&self) -> usize {
        let params: usize = self.params.iter().map(|(_, v)| v.len() + 8).sum();
        self.payload.len().saturating_add(params)
    }
}

/// A message's outcome as the link core hands it to the shell
/// ([`LinkSession::poll_outcome`]): where it goes, what the message was, and the
/// outcome.
#[derive(Debug)]
pub struct Completion<T> {
    /// The shell's token of the message.
    pub token: T,
    /// The message's verb.
    pub verb: u32,
    /// Its size as charged ([`Outbound::size`]).
    pub bytes: usize,
    /// Its outcome.
    pub result: Result<crate::outcome::Sent, SendError>,
}

/// Counters of one link since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkCounters {
    /// Messages taken into the queue.
    pub accepted: u64,
    /// Bytes (as charged, see [`Outbound::size`]) of the messages taken.
    pub accepted_bytes: u64,
    /// Messages written to a connection (the first time).
    pub written: u64,
    /// Bytes of the messages written.
    pub written_bytes: u64,
    /// Messages the peer acknowledged (lossless links).
    pub acknowledged: u64,
    /// Messages written again after a reconnect (lossless links).
    pub replayed: u64,
    /// Messages that failed, by [`SendError::kind`] (`Expired`, `OverloadedLink`,
    /// `OverloadedEndpoint`, `OverloadedGlobal`, `Oversized`, `Closed`,
    /// `ConnectionLost`, `PeerRestarted`, ...), whether refused at once or after
    /// they were taken.
    pub failed: BTreeMap<SendErrorKind, u64>,
    /// Bytes of the messages that failed, by [`SendError::kind`].
    pub failed_bytes: BTreeMap<SendErrorKind, u64>,
    /// Connection attempts.
    pub connection_attempts: u64,
    /// Connections established.
    pub connections: u64,
    /// Times the peer was found to have restarted (a new session id).
    pub peer_restarts: u64,
}

impl LinkCounters {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &LinkCounters) {
        self.accepted += other.accepted;
        self.accepted_bytes += other.accepted_bytes;
        self.written += other.written;
        self.written_bytes += other.written_bytes;
        self.acknowledged += other.acknowledged;
        self.replayed += other.replayed;
        for (&kind, n) in &other.failed {
            *self.failed.entry(kind).or_default() += n;
        }
        for (&kind, n) in &other.failed_bytes {
            *self.failed_bytes.entry(kind).or_default() += n;
        }
        self.connection_attempts += other.connection_attempts;
        self.connections += other.connections;
        self.peer_restarts += other.peer_restarts;
    }

    /// Counts a failure of a message of `bytes`.
    pub fn count_failure(&mut self, error: &SendError, bytes: usize) {
        *self.failed.entry(error.kind()).or_default() += 1;
        *self.failed_bytes.entry(error.kind()).or_default() += bytes as u64;
    }
}

/// Everything a [`LinkSession`] is configured with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LinkConfig {
    /// Lossless or lossy.
    pub policy: LinkPolicy,
    /// The link's own byte capacity (queued, being written and unacknowledged).
    pub capacity: usize,
    /// Reserve leased beyond a message's need, to save round trips.
    pub lease_chunk: usize,
    /// The largest payload accepted.
    pub max_message: usize,
    /// Keepalives and timeouts of a connection.
    pub heartbeat: HeartbeatConfig,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Seed of the backoff's jitter.
    pub seed: u64,
    /// Most bytes of frames put into one transmit.
    pub batch_bytes: usize,
    /// The largest message the link reads from its connection (acks and pongs are
    /// tiny; anything larger is a protocol violation).
    pub max_control: usize,
    /// Close a connection that carried no message (written or acknowledged) for this
    /// long and holds nothing unconfirmed: the link goes dormant, keeping its session
    /// (see [`LinkSession`]'s idle rule). `None`: never.
    pub idle_timeout: Option<Duration>,
}

impl LinkConfig {
    /// A lossless link with these byte limits, the default heartbeat and backoff, and
    /// no idle timeout.
    pub fn new(capacity: usize, lease_chunk: usize, max_message: usize) -> Self {
        LinkConfig {
            policy: LinkPolicy::Lossless,
            capacity,
            lease_chunk,
            max_message,
            heartbeat: HeartbeatConfig::default(),
            backoff: BackoffConfig::default(),
            seed: 1,
            batch_bytes: 1 << 20,
            max_control: 64 * 1024,
            idle_timeout: None,
        }
    }
}

/// What [`LinkSession::handle_send`] did with a message.
#[derive(Debug)]
pub enum Admission<T> {
    /// Queued (its outcome comes later).
    Queued,
    /// Refused at once: its outcome is ready in [`LinkSession::poll_outcome`].
    Refused,
    /// It needs reserve beyond what the link holds: acquire `need`, then give the
    /// grant to [`LinkSession::handle_lease`] and the message back to
    /// [`LinkSession::handle_send`]; or, if the reserve is short, hand it to
    /// [`LinkSession::handle_shortage`]. Nothing else should be sent meanwhile, or
    /// the order of messages changes.
    NeedReserve {
        /// The message.
        message: Outbound,
        /// The shell's token of the message.
        token: T,
        /// The reserve to acquire.
        need: ReserveNeeded,
    },
}

/// What the shell must do with its connection, from [`LinkSession::poll_action`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    /// Open a connection (connect, then handshake with
    /// [`LinkSession::session_id`]), and report [`LinkSession::handle_connected`] or
    /// [`LinkSession::handle_disconnected`].
    Connect,
    /// Close the connection (or abandon the attempt under way); nothing more is
    /// reported about it.
    CloseConnection,
    /// The link is closed for good: every message has its outcome.
    Stop,
}
