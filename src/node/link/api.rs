//! The messages a link actor answers, and what it reports about itself.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::session::{CreditAnswer, LinkPolicy, LinkState};
use crate::{LinkKind, NodeId};

use crate::outcome::{SendError, Sent};

pub use crate::session::Outbound;

impl actix::Message for Outbound {
    type Result = Result<Sent, SendError>;
}

/// A message sent under a producer's credit (`node::credit`): its bytes come out of
/// the credit the link granted, so it is never refused for room. Sent with `do_send`:
/// its outcome goes to `reply` (a message is never withdrawn once in the mailbox).
pub(crate) struct Credited {
    pub message: Outbound,
    pub reply: tokio::sync::oneshot::Sender<Result<Sent, SendError>>,
}

impl actix::Message for Credited {
    type Result = ();
}

/// A producer's ask for between `at_least` and `up_to` bytes of credit; the answers
/// (a final one, perhaps a `Waiting` before it) go to `reply`.
pub(crate) struct AskCredit {
    pub at_least: usize,
    pub up_to: usize,
    pub reply: UnboundedSender<CreditAnswer>,
}

impl actix::Message for AskCredit {
    type Result = ();
}

/// A producer gives back credit it will not use.
pub(crate) struct ReturnCredit(pub usize);

impl actix::Message for ReturnCredit {
    type Result = ();
}

/// Closes a link: with `drain`, what is queued is delivered first (acknowledged, on a
/// lossless link), for at most the node's drain timeout; without, or once that has
/// passed, what remains fails ([`SendError::Closed`] if it was never written,
/// [`SendError::ConnectionLost`] if it was written and not acknowledged). Resolves once
/// the link is closed.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CloseLink {
    /// Deliver what is queued before closing.
    pub drain: bool,
    /// How long a drain may take at most (`None`: the node's drain timeout).
    pub timeout: Option<Duration>,
}

impl CloseLink {
    /// A close with or without `drain`, a drain taking at most the node's drain
    /// timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use internode::node::CloseLink;
    /// let close = CloseLink::new(true).timeout(Duration::from_secs(1));
    /// assert_eq!((close.drain, close.timeout), (true, Some(Duration::from_secs(1))));
    /// ```
    pub const fn new(drain: bool) -> Self {
        CloseLink {
            drain,
            timeout: None,
        }
    }

    /// This close with a drain taking at most `timeout`.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
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

pub use crate::session::LinkCounters;

/// A link's state and counters at one moment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LinkSnapshot {
    /// The peer.
    pub peer: NodeId,
    /// Which of the peer's links.
    pub kind: LinkKind,
    /// Lifecycle state.
    pub state: LinkState,
    /// Lossless or lossy.
    pub policy: LinkPolicy,
    /// The last keepalive round-trip time.
    pub rtt: Option<Duration>,
    /// Messages waiting to be written.
    pub queued: usize,
    /// Bytes held for the messages taken that have no outcome yet (queued, being
    /// written, or written and not yet acknowledged), as charged against the limits.
    pub pending_bytes: usize,
    /// Messages written and not yet acknowledged (lossless), or being written (lossy).
    pub in_flight: usize,
    /// Bytes handed to the socket in the write still in flight.
    pub unflushed_bytes: usize,
    /// Bytes of the endpoint and global reserve the link holds (charged to messages,
    /// to credit, or leased spare).
    pub reserve_bytes: usize,
    /// Bytes of credit granted to producers and not yet used by a message: what may
    /// wait in the link's mailbox under credit (charged like `pending_bytes`).
    pub credit_bytes: usize,
    /// Producers waiting for credit.
    pub credit_waiting: usize,
    /// Connections open now (0 or 1).
    pub active_connections: usize,
    /// Counters.
    pub counters: LinkCounters,
}

/// Changes the address the link connects to: the connection to the old one is
/// dropped, and queued and unacknowledged messages go to the new one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetPeerAddress(pub SocketAddr);

impl actix::Message for SetPeerAddress {
    type Result = ();
}

/// The peer connected to this node: a link waiting to retry connects at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerSeen;

impl actix::Message for PeerSeen {
    type Result = ();
}
