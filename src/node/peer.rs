//! [`Peer`]: a typed handle on one peer's links, with a byte credit on each
//! ([`CreditLine`]); the node keeps one per peer, shared by every handle on it.
//!
//! Invariants: a message is encoded once, when the call is made; it goes to its link's
//! mailbox under credit only (so what waits there is bounded in bytes, see
//! [`credit`](super::credit)), in the order of the calls on the handle; a message to
//! the node itself is handed to its local handler and never touches a link.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use bytes::BytesMut;

use super::credit::{deadline_instant, CreditLine, QueueFuture, Queued};
use super::link::{Link, Outbound};
use super::peer_sink::PeerSink;
use super::Node;
use crate::envelope::Flags;
use crate::message::{Message, Request};
use crate::outcome::{RequestError, SendError, Sent};
use crate::{LinkKind, NodeId};

/// One of a peer's links and this node's credit on it (clones share the credit).
#[derive(Debug, Clone)]
pub(crate) struct PeerLink {
    pub addr: Addr<Link>,
    pub credit: CreditLine,
}

/// Urgent, small, large (indexed by [`LinkKind::code`]).
pub(crate) type PeerLinks = Arc<[PeerLink; 3]>;

/// A typed handle on one peer's links; see [`Node::peer`].
///
/// Each of the peer's links grants this node a byte credit; a message within it goes
/// to the link's mailbox at once, beyond it [`send`](Self::send) and
/// [`enqueue`](Self::enqueue) wait (in order) until the link has room, and
/// [`try_send`](Self::try_send) fails [`SendError::Overloaded`] at once. So whatever a
/// producer does, what waits in a link's mailbox stays within the link's capacity and
/// the reserve it leased (docs/limits.md).
#[derive(Clone, Debug)]
pub struct Peer {
    pub(super) id: NodeId,
    pub(super) node: Node,
    /// `None` for the node itself.
    pub(super) links: Option<PeerLinks>,
}

/// A message ready for its link, or its outcome already.
pub(super) enum Prepared {
    Ready(Result<Sent, SendError>),
    Link {
        credit: CreditLine,
        outbound: Outbound,
        expires_at: Option<Instant>,
    },
}

impl Peer {
    /// The peer's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The peer's link of `kind` (`None` when the peer is this node itself).
    pub fn link(&self, kind: LinkKind) -> Option<&Addr<Link>> {
        self.links
            .as_ref()
            .map(|l| &l[usize::from(kind.code())].addr)
    }

    /// Sends `message` and resolves with its outcome. Within credit the message is
    /// queued on its link now, before this returns; beyond it, it waits for credit in
    /// the order of the calls (failing [`SendError::Expired`] if its deadline passes
    /// meanwhile; without a deadline it waits as long as the link has no room, e.g.
    /// while the peer is unreachable and the link full) and is queued once a future of
    /// the link's line is polled and its turn comes. Dropping the future does not
    /// withdraw a message already queued; it withdraws one still waiting for credit.
    pub fn send<M: Message>(
        &self,
        message: M,
    ) -> impl Future<Output = Result<Sent, SendError>> + 'static {
        self.send_with(message, None)
    }

    /// [`send`](Self::send) with a deadline; see [`Node::send_expiring`].
    pub fn send_expiring<M: Message>(
        &self,
        message: M,
        expire_after: Duration,
    ) -> impl Future<Output = Result<Sent, SendError>> + 'static {
        self.send_with(message, Some(expire_after))
    }

    /// Queues `message` now if its link's credit allows, and returns its outcome to
    /// await ([`Queued`]); otherwise fails at once, without waiting:
    /// [`SendError::Overloaded`] (at the level the link last found short, or
    /// [`OverloadLevel::Link`](crate::outcome::OverloadLevel::Link) while it has not
    /// answered yet). More credit is asked for meanwhile, so a later call may succeed.
    /// A message to the node itself is delivered at once.
    pub fn try_send<M: Message>(&self, message: M) -> Result<Queued, SendError> {
        match self.prepare(message, None) {
            Prepared::Ready(result) => result.map(|sent| Queued::ready(Ok(sent))),
            Prepared::Link {
                credit, outbound, ..
            } => credit.try_queue(outbound),
        }
    }

    /// Resolves once `message` is in its link's mailbox (at once within credit, else
    /// once the link has room, in the order of the calls), with its outcome to await
    /// ([`Queued`]). A producer that awaits this before making its next message holds
    /// at most one message of its own beyond what the limits allow:
    ///
    /// ```no_run
    /// # async fn demo(peer: internode::node::Peer) {
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Tick(u64);
    /// # internode::message!(Tick, verb = 9);
    /// for n in 0..1_000_000 {
    ///     match peer.enqueue(Tick(n)).await {
    ///         // The outcome comes later; count it, or spawn a task that awaits it.
    ///         Ok(queued) => drop(queued),
    ///         Err(e) => eprintln!("tick {n} not sent: {e}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn enqueue<M: Message>(
        &self,
        message: M,
    ) -> impl Future<Output = Result<Queued, SendError>> + 'static {
        // In line now, in the order of the calls, whenever the future is polled.
        let waiting = self.line_up(message, None);
        async move {
            match waiting {
                Err(result) => result.map(|sent| Queued::ready(Ok(sent))),
                Ok(waiting) => waiting.await,
            }
        }
    }

    fn send_with<M: Message>(
        &self,
        message: M,
        expire_after: Option<Duration>,
    ) -> impl Future<Output = Result<Sent, SendError>> + 'static {
        let waiting = self.line_up(message, expire_after);
        async move {
            match waiting {
                Err(result) => result,
                Ok(waiting) => waiting.await?.await,
            }
        }
    }

    /// This handle as a `futures::Sink` of messages of type `M` (each queued once its
    /// link has room, in order; at most one waits at a time), so that a stream can be
    /// forwarded to the peer:
    ///
    /// ```no_run
    /// # async fn demo(peer: internode::node::Peer) -> Result<(), internode::node::SendError> {
    /// use futures_util::{stream, StreamExt};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Tick(u64);
    /// # internode::message!(Tick, verb = 9);
    /// stream::iter((0..1_000_000).map(|n| Ok(Tick(n))))
    ///     .forward(peer.sink::<Tick>())
    ///     .await
    /// # }
    /// ```
    ///
    /// The outcomes of the messages are not awaited (the link's metrics count them);
    /// [`enqueue`](Self::enqueue) gives each one.
    pub fn sink<M: Message>(&self) -> PeerSink<M> {
        PeerSink::new(self.clone())
    }

    /// Puts `message` in line on its link's credit now (or delivers it locally: its
    /// outcome, as the error).
    fn line_up<M: Message>(
        &self,
        message: M,
        expire_after: Option<Duration>,
    ) -> Result<QueueFuture, Result<Sent, SendError>> {
        match self.prepare(message, expire_after) {
            Prepared::Ready(result) => Err(result),
            Prepared::Link {
                credit,
                outbound,
                expires_at,
            } => Ok(credit.queue(outbound, expires_at)),
        }
    }

    /// Encodes `message` and picks its link (or delivers it locally).
    pub(super) fn prepare<M: Message>(
        &self,
        message: M,
        expire_after: Option<Duration>,
    ) -> Prepared {
        let Some(links) = &self.links else {
            return Prepared::Ready(
                if self.node.inner.handlers.deliver_local(self.id, message) {
                    Ok(Sent::DeliveredLocally)
                } else {
                    Err(SendError::NoLocalHandler(M::VERB))
                },
            );
        };
        let expires = self.node.deadline::<M>(expire_after);
        match outbound(&message, Flags::EMPTY, Vec::new(), expires) {
            Err(e) => Prepared::Ready(Err(e)),
            Ok(outbound) => {
                let kind = link_kind::<M>(outbound.payload.len());
                Prepared::Link {
                    credit: links[usize::from(kind.code())].credit.clone(),
                    outbound,
                    expires_at: deadline_instant(expires),
                }
            }
        }
    }

    /// Sends a request to the peer; see [`Node::request`].
    pub async fn request<R: Request>(&self, request: R) -> Result<R::Response, RequestError> {
        let timeout = self.node.inner.config.request_timeout;
        self.request_with_timeout(request, timeout).await
    }

    /// [`request`](Self::request) with its own timeout.
    pub async fn request_with_timeout<R: Request>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<R::Response, RequestError> {
        self.node
            .request_via(self.id, request, timeout, self.links.as_ref())
            .await
    }
}

/// Which link a message of type `M` with a payload of `len` bytes goes over.
pub(super) fn link_kind<M: Message>(len: usize) -> LinkKind {
    if M::URGENT {
        LinkKind::Urgent
    } else if len > LinkKind::LARGE_THRESHOLD {
        LinkKind::Large
    } else {
        LinkKind::Small
    }
}

pub(super) fn outbound<M: Message>(
    message: &M,
    flags: Flags,
    params: Vec<(u32, bytes::Bytes)>,
    expires_at_ms: Option<u64>,
) -> Result<Outbound, SendError> {
    let mut payload = BytesMut::new();
    message
        .encode(&mut payload)
        .map_err(SendError::Serialization)?;
    Ok(Outbound {
        verb: M::VERB,
        flags,
        payload: payload.freeze(),
        params,
        expires_at_ms,
    })
}
