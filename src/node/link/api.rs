//! The messages a link actor answers, and what it reports about itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::envelope::Flags;
use crate::session::LinkState;
use crate::{LinkKind, NodeId};

use super::super::outcome::{SendError, Sent};

/// A message for a link's outbound queue: an envelope's fields without its id (the
/// link numbers what it sends). Answered with the message's outcome.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The verb of the message type.
    pub verb: u32,
    /// Request / response flags.
    pub flags: Flags,
    /// The encoded message.
    pub payload: Bytes,
    /// Envelope parameters.
    pub params: Vec<(u32, Bytes)>,
    /// When the message expires (ms since the UNIX epoch), if ever.
    pub expires_at_ms: Option<u64>,
}

impl Outbound {
    /// The bytes the message is charged against the limits: its payload and
    /// parameters (what the link holds in memory for it).
    pub fn size(&self) -> usize {
        let params: usize = self.params.iter().map(|(_, v)| v.len() + 8).sum();
        self.payload.len().saturating_add(params)
    }
}

impl actix::Message for Outbound {
    type Result = Result<Sent, SendError>;
}

/// Closes a link: with `drain`, what is queued is delivered first; without, it fails
/// with [`SendError::Closed`]. Resolves once the link is closed.
#[derive(Debug, Clone, Copy)]
pub struct CloseLink {
    /// Deliver what is queued before closing.
    pub drain: bool,
}

impl actix::Message for CloseLink {
    type Result = ();
}

/// Asks a link for its [`LinkSnapshot`].
#[derive(Debug, Clone, Copy)]
pub struct GetLinkSnapshot;

impl actix::Message for GetLinkSnapshot {
    type Result = LinkSnapshot;
}

/// Counters of one link since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Messages taken into the queue.
    pub accepted: u64,
    /// Bytes (as charged, see [`Outbound::size`]) of the messages taken.
    pub accepted_bytes: u64,
    /// Messages written to a connection.
    pub written: u64,
    /// Bytes of the messages written.
    pub written_bytes: u64,
    /// Messages that failed, by [`SendError::kind`] (`expired`, `overloaded_link`,
    /// `overloaded_endpoint`, `overloaded_global`, `oversized`, `closed`,
    /// `connection_lost`, ...), whether refused at once or after they were taken.
    pub failed: BTreeMap<&'static str, u64>,
    /// Bytes of the messages that failed, by [`SendError::kind`].
    pub failed_bytes: BTreeMap<&'static str, u64>,
    /// Connection attempts.
    pub connection_attempts: u64,
    /// Connections established.
    pub connections: u64,
}

impl LinkCounters {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &LinkCounters) {
        self.accepted += other.accepted;
        self.accepted_bytes += other.accepted_bytes;
        self.written += other.written;
        self.written_bytes += other.written_bytes;
        for (kind, n) in &other.failed {
            *self.failed.entry(kind).or_default() += n;
        }
        for (kind, n) in &other.failed_bytes {
            *self.failed_bytes.entry(kind).or_default() += n;
        }
        self.connection_attempts += other.connection_attempts;
        self.connections += other.connections;
    }
}

/// A link's state and counters at one moment.
#[derive(Debug, Clone)]
pub struct LinkSnapshot {
    /// The peer.
    pub peer: NodeId,
    /// Which of the peer's links.
    pub kind: LinkKind,
    /// Lifecycle state.
    pub state: LinkState,
    /// The last keepalive round-trip time.
    pub rtt: Option<Duration>,
    /// Messages waiting to be written.
    pub queued: usize,
    /// Bytes held for the messages taken and not yet written (queued or being
    /// written), as charged against the limits: pending bytes.
    pub pending_bytes: usize,
    /// Messages being written (handed to the socket, write not complete).
    pub in_flight: usize,
    /// Bytes handed to the socket in the write still in flight.
    pub unflushed_bytes: usize,
    /// Bytes of the endpoint and global reserve the link holds (charged to messages
    /// or leased spare).
    pub reserve_bytes: usize,
    /// Connections open now (0 or 1).
    pub active_connections: usize,
    /// Counters.
    pub counters: LinkCounters,
}

/// Changes the address the link connects to; queued messages go to the new address,
/// what is being written to the old one finishes there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetPeerAddress(pub SocketAddr);

impl actix::Message for SetPeerAddress {
    type Result = ();
}
