//! The messages a link actor answers, and what it reports about itself.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::super::address::PeerAddr;
use crate::session::{CreditAnswer, LinkPolicy, LinkState};
use crate::{LinkKind, NodeId};

use crate::outcome::{SendError, Sent};

pub use crate::session::Outbound;

impl actix::Message for Outbound {
    type Result = Result<Sent, SendError>;
}

/// A typed message for a link's address: `link.send(Deliver::new(message))` resolves
/// to the message's outcome, as [`Peer::send`](crate::node::Peer::send) does. The link
/// encodes it, gives it its deadline (as `Peer::send` does: the one set here, else the
/// type's [`EXPIRES_AFTER`](crate::message::Message::EXPIRES_AFTER), else the node's
/// [`expire_after`](crate::node::NodeBuilder::expire_after)) and takes it into its
/// queue, or refuses it ([`SendError::Overloaded`]) if the link has no room: the
/// producer's credit ([`Peer`](crate::node::Peer)) does not apply, so a sender that
/// keeps many of these unanswered is itself what bounds the mailbox.
///
/// An application can hand its actors a `Recipient<Deliver<M>>` of a link
/// (`link.recipient()`), so that they send to the peer without knowing internode:
///
/// ```no_run
/// # #[cfg(feature = "serde")] // `message!` needs it
/// # async fn demo(node: internode::node::Node) -> Result<(), internode::node::SendError> {
/// use actix::Recipient;
/// use internode::node::{Deliver, Sent};
/// use internode::{LinkKind, NodeId};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Snapshot(Vec<u8>);
/// # internode::message!(Snapshot, verb = 12);
///
/// // A 30 KiB snapshot goes over the large link, whatever its size would choose.
/// let large = node.link(NodeId(2), LinkKind::Large).await?;
/// let to_peer: Recipient<Deliver<Snapshot>> = large.recipient();
/// match to_peer.send(Deliver::new(Snapshot(vec![0; 30 * 1024]))).await {
///     Ok(Ok(Sent::Acknowledged)) => println!("the peer has it"),
///     Ok(Ok(other)) => println!("sent: {other:?}"),
///     Ok(Err(e)) => eprintln!("not delivered: {e}"),
///     Err(_) => eprintln!("the link is gone"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Deliver<M> {
    /// The message.
    pub message: M,
    /// Its own deadline, from when it was made, if any (see above).
    pub expire_after: Option<Duration>,
    /// When it was made (ms since the UNIX epoch): its deadline counts from then.
    pub(crate) made_at_ms: u64,
}

impl<M> Deliver<M> {
    /// `message`, with the deadline its type or the node gives it, counted from now.
    pub fn new(message: M) -> Self {
        Deliver {
            message,
            expire_after: None,
            made_at_ms: crate::node::wire::epoch_ms(),
        }
    }

    /// This message with its own deadline, `after` from when it was made.
    pub fn expire_after(mut self, after: Duration) -> Self {
        self.expire_after = Some(after);
        self
    }
}

impl<M: crate::message::Message> actix::Message for Deliver<M> {
    type Result = Result<Sent, SendError>;
}

/// The response to a peer's request (flags and request id set by the crate), sent
/// with `do_send` by the receiving side: taken like an [`Outbound`], its outcome only
/// counted.
pub(crate) struct Response(pub Outbound);

impl actix::Message for Response {
    type Result = ();
}

/// Messages sent under a producer's credit (`node::credit`): their bytes come out of
/// the credit the link granted, so they are never refused for room. Sent with
/// `do_send`: the outcomes go to `reply` (a message is never withdrawn once in the
/// mailbox).
pub(crate) enum Credited {
    /// One message.
    One {
        message: Outbound,
        reply: tokio::sync::oneshot::Sender<Result<Sent, SendError>>,
    },
    /// A batch: taken in order, in one go (the clock read once), its outcomes sent
    /// together once the last is known.
    Many {
        messages: Vec<Outbound>,
        reply: tokio::sync::oneshot::Sender<Vec<Result<Sent, SendError>>>,
    },
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
    /// Whether this link carries its peer's keepalive: it pings while connected, idle
    /// or not (the others only while something is unconfirmed).
    pub keeper: bool,
    /// Counters.
    pub counters: LinkCounters,
}

/// Changes the address the link connects to: the connection to the old one is
/// dropped, and queued and unacknowledged messages go to the new one.
#[derive(Debug, Clone)]
pub(crate) struct SetPeerAddress(pub PeerAddr);

impl actix::Message for SetPeerAddress {
    type Result = ();
}

/// The peer connected to this node: a link waiting to retry connects at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerSeen;

impl actix::Message for PeerSeen {
    type Result = ();
}
