//! [`Peer`]: a typed handle on one peer's links, with a byte credit on each
//! ([`CreditLine`]); the node keeps one line per (peer, link kind), shared by every
//! handle on the peer and by the node's own sends.
//!
//! Invariants: taking a handle never waits (each line finds its link on its first
//! send, and again after the link closed); a message is encoded once, when the call is
//! made; it goes to its link's mailbox under credit only (so what waits there is
//! bounded in bytes, see [`credit`](super::credit)), in the order of the calls on the
//! node's handles; a message to the node itself is handed to its local handler and
//! never touches a link. The futures returned borrow neither the handle nor the
//! message, and do not keep the node open.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Addr, Recipient};
use bytes::BytesMut;

use super::credit::{
    deadline_instant, BatchQueued, CreditLine, CreditSizes, Outgoing, QueueFuture, Queued,
    ResolveLink,
};
use super::dispatch::Requested;
use super::link::{Link, Outbound};
use super::peer_sink::PeerSink;
use super::requests::RemoteRequest;
use super::{wire, Node, NodeConfig};
use crate::envelope::Flags;
use crate::message::{Message, Request, RESERVED_VERBS_START};
use crate::outcome::{Outcomes, RequestError, SendError, Sent};
use crate::{LinkKind, NodeId};

/// This node's credit lines to one peer: urgent, small, large (indexed by
/// [`LinkKind::code`]).
pub(crate) type PeerLines = Arc<[CreditLine; 3]>;

/// The credit lines to `peer`, without their links yet.
pub(crate) fn peer_lines(
    peer: NodeId,
    registry: &Recipient<ResolveLink>,
    sizes: CreditSizes,
) -> PeerLines {
    Arc::new(LinkKind::ALL.map(|kind| CreditLine::new(peer, kind, registry.clone(), sizes)))
}

/// A typed handle on one peer's links; see [`Node::peer`].
///
/// Each of the peer's links grants this node a byte credit; a message within it goes
/// to the link's mailbox at once, beyond it [`send`](Self::send) and
/// [`enqueue`](Self::enqueue) wait (in order) until the link has room, and
/// [`try_send`](Self::try_send) fails [`SendError::Overloaded`] at once. So whatever a
/// producer does, what waits in a link's mailbox stays within the link's capacity and
/// the reserve it leased (docs/limits.md).
///
/// **Lifetime.** A handle is valid as long as the node: its links are found on first
/// use (the first message on each link waits for that, as it waits for credit: see
/// [`ready`](Self::ready)), and found again when they close, so a handle taken before
/// [`Node::close_peer`] sends over the peer's new links afterwards. What was queued
/// on a link when it closed fails as `close_peer` says. A peer without a known
/// address is not an error when the handle is taken: its messages fail
/// [`SendError::UnknownPeer`] until [`Node::add_peer`] gives one. Once the node is
/// closed, sends fail [`SendError::Closed`]. A handle keeps its node open (it holds a
/// [`Node`]); the futures it returns do not.
///
/// **Sending from inside an actor's handler.** Every future returned here (and by
/// [`Node::send`], [`Node::request`], ...) is `'static`: it borrows neither the handle
/// nor the message, so a handler can spawn it into its actor's context:
///
/// ```no_run
/// # #[cfg(feature = "serde")] // `message!` needs it
/// # mod example {
/// use actix::prelude::*;
/// use internode::node::{Peer, RequestError};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Ping(u64);
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Pong(u64);
/// # internode::message!(Ping, verb = 10);
/// # internode::message!(Pong, verb = 11);
/// # impl internode::message::Request for Ping { type Response = Pong; }
///
/// struct Pinger {
///     peer: Peer,
///     last: Option<u64>,
/// }
/// impl Actor for Pinger {
///     type Context = Context<Self>;
/// }
///
/// #[derive(Message)]
/// #[rtype(result = "()")]
/// struct Tick(u64);
///
/// impl Handler<Tick> for Pinger {
///     type Result = ();
///     fn handle(&mut self, Tick(n): Tick, ctx: &mut Context<Self>) {
///         ctx.spawn(self.peer.request(Ping(n)).into_actor(self).map(
///             move |answer: Result<Pong, RequestError>, act, _| match answer {
///                 Ok(Pong(m)) => act.last = Some(m),
///                 Err(e) => eprintln!("ping {n}: {e}"),
///             },
///         ));
///     }
/// }
/// # }
/// # fn main() {}
/// ```
#[derive(Clone, Debug)]
pub struct Peer {
    pub(super) id: NodeId,
    pub(super) node: Node,
    /// `None` for the node itself.
    pub(super) lines: Option<PeerLines>,
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

    /// The peer's link of `kind` that this node's messages go to now: `None` when the
    /// peer is this node itself, or before that link was found (on the first message
    /// over it, or [`ready`](Self::ready)), or after it closed until the next message.
    pub fn link(&self, kind: LinkKind) -> Option<Addr<Link>> {
        self.lines
            .as_ref()
            .and_then(|lines| lines[usize::from(kind.code())].link())
    }

    /// Finds the peer's three links (creating them, without opening a connection)
    /// and waits for the first credit on each, so that messages sent afterwards go
    /// to their links' mailboxes at once, within credit, and
    /// [`try_send`](Self::try_send) does not fail for want of a first answer. Not
    /// needed before sending: the first message on each link waits for the same.
    /// Fails [`SendError::UnknownPeer`] if no address is known for the peer and
    /// [`SendError::Closed`] if the node is closed; resolves at once for the node
    /// itself.
    pub fn ready(&self) -> impl Future<Output = Result<(), SendError>> + 'static {
        let waits: Vec<_> = self
            .lines
            .iter()
            .flat_map(|lines| lines.iter().map(CreditLine::ready))
            .collect();
        async move {
            for wait in waits {
                wait.await?;
            }
            Ok(())
        }
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
        self.send_with(message, None, None)
    }

    /// [`send`](Self::send) with a deadline; see [`Node::send_expiring`].
    pub fn send_expiring<M: Message>(
        &self,
        message: M,
        expire_after: Duration,
    ) -> impl Future<Output = Result<Sent, SendError>> + 'static {
        self.send_with(message, Some(expire_after), None)
    }

    /// [`send`](Self::send) over the link of `kind`, whatever the message's type and
    /// size would choose (urgent messages on the urgent link, payloads over
    /// [`LinkKind::LARGE_THRESHOLD`] on the large one, the rest on the small one):
    /// for example a snapshot just under the threshold that should not hold up the
    /// small link's traffic, or a message that must stay in order with others on
    /// one link. Messages keep their order per link only.
    ///
    /// ```no_run
    /// # #[cfg(feature = "serde")] // `message!` needs it
    /// # async fn demo(node: internode::node::Node) {
    /// use internode::node::{SendError, Sent};
    /// use internode::{LinkKind, NodeId};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Snapshot(Vec<u8>);
    /// # internode::message!(Snapshot, verb = 12);
    ///
    /// let peer = node.peer(NodeId(2));
    /// let snapshot = Snapshot(vec![0; 30 * 1024]); // under the 64 KiB threshold
    /// match peer.send_on(LinkKind::Large, snapshot).await {
    ///     // A lossless link: the peer's node has it, whatever happens next.
    ///     Ok(Sent::Acknowledged) => {}
    ///     // A lossy link: handed to the kernel.
    ///     Ok(Sent::Written) => {}
    ///     Ok(other) => println!("{other:?}"),
    ///     // The peer's limits are full; try later or drop it.
    ///     Err(SendError::Overloaded(level)) => eprintln!("no room in the {level}"),
    ///     // Written, then the peer restarted before acknowledging it: maybe lost.
    ///     Err(SendError::PeerRestarted) => eprintln!("resend the snapshot"),
    ///     Err(e) => eprintln!("snapshot not sent ({}): {e}", e.kind()),
    /// }
    /// # }
    /// ```
    pub fn send_on<M: Message>(
        &self,
        kind: LinkKind,
        message: M,
    ) -> impl Future<Output = Result<Sent, SendError>> + 'static {
        self.send_with(message, None, Some(kind))
    }

    /// Sends a batch of messages of one type as one: one encode pass, one clock read,
    /// one credit take and one message in the link's mailbox for the whole batch, and
    /// one completion, resolving with each message's outcome by its index in the
    /// batch ([`Outcomes`]). The messages are queued back to back, in order, on one
    /// link: the urgent one for an urgent type, else the large one if any payload is
    /// over [`LinkKind::LARGE_THRESHOLD`], else the small one. Every message still
    /// ends in exactly one outcome: one that does not encode fails alone
    /// ([`SendError::Serialization`]); a batch that cannot be queued (no link, its
    /// deadline passed while it waited for credit, or more bytes than the link
    /// could ever take: [`SendError::Oversized`]) fails as a whole, each message with
    /// that error. Like [`send`](Self::send), the batch is in line when the call is
    /// made and waits for credit beyond it.
    ///
    /// ```no_run
    /// # #[cfg(feature = "serde")] // `message!` needs it
    /// # async fn demo(peer: internode::node::Peer) {
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Tick(u64);
    /// # internode::message!(Tick, verb = 9);
    /// let outcomes = peer.send_many((0..1_000).map(Tick)).await;
    /// assert_eq!(outcomes.len(), 1_000);
    /// for (index, error) in outcomes.failures() {
    ///     eprintln!("tick {index} not delivered: {error}");
    /// }
    /// # }
    /// ```
    pub fn send_many<M: Message>(
        &self,
        messages: impl IntoIterator<Item = M>,
    ) -> impl Future<Output = Outcomes> + 'static {
        let waiting = self.line_up_many(messages);
        async move {
            let (places, waiting) = match waiting {
                Err(outcomes) => return Outcomes::from(outcomes),
                Ok(waiting) => waiting,
            };
            let sent = match waiting {
                None => Vec::new(),
                Some((queue, count)) => match queue.await {
                    Err(e) => vec![Err(e); count],
                    Ok(BatchQueued(rx)) => rx
                        .await
                        .unwrap_or_else(|_| vec![Err(SendError::Closed); count]),
                },
            };
            // The places the encode left empty take the batch's outcomes, in order.
            let mut sent = sent.into_iter();
            let outcomes: Vec<_> = places
                .into_iter()
                .map(|place| place.unwrap_or_else(|| sent.next().unwrap_or(Err(SendError::Closed))))
                .collect();
            Outcomes::from(outcomes)
        }
    }

    /// Encodes `messages` (their deadline read once) and puts the batch in line:
    /// with a place per message (filled with its error if it did not encode) and the
    /// batch waiting, with its length; or every outcome at once (to this node
    /// itself).
    #[allow(clippy::type_complexity)]
    fn line_up_many<M: Message>(
        &self,
        messages: impl IntoIterator<Item = M>,
    ) -> Result<
        (
            Vec<Option<Result<Sent, SendError>>>,
            Option<(QueueFuture<BatchQueued>, usize)>,
        ),
        Vec<Result<Sent, SendError>>,
    > {
        let Some(lines) = &self.lines else {
            let handlers = &self.node.inner.handlers;
            return Err(messages
                .into_iter()
                .map(|m| match handlers.deliver_local(self.id, m) {
                    true => Ok(Sent::DeliveredLocally),
                    false => Err(SendError::NoLocalHandler(M::VERB)),
                })
                .collect());
        };
        let expires = self.node.deadline::<M>(None);
        let messages = messages.into_iter();
        let mut places = Vec::with_capacity(messages.size_hint().0);
        // The payloads one after the other in one buffer (one allocation for the
        // batch, which its messages share until the last of them is acknowledged).
        let mut encoded = BytesMut::new();
        let mut lengths = Vec::with_capacity(messages.size_hint().0);
        for message in messages {
            let start = encoded.len();
            let result = if M::VERB >= RESERVED_VERBS_START {
                Err(SendError::ReservedVerb(M::VERB))
            } else {
                message
                    .encode(&mut encoded)
                    .map_err(SendError::Serialization)
            };
            // An `encode` that took bytes away broke its contract: it fails, and so do
            // the messages before it whose bytes it took.
            let result = result.and_then(|()| {
                encoded.len().checked_sub(start).ok_or_else(|| {
                    SendError::Serialization(crate::message::EncodeError::custom(
                        "encode removed bytes it did not write",
                    ))
                })
            });
            match result {
                Ok(len) => {
                    lengths.push(len);
                    places.push(None);
                }
                Err(e) => {
                    if encoded.len() < start {
                        // The bytes of the messages before it are gone with it.
                        for place in places.iter_mut().filter(|p| p.is_none()) {
                            *place = Some(Err(e.clone()));
                        }
                        lengths.clear();
                        encoded.clear();
                    }
                    encoded.truncate(start);
                    places.push(Some(Err(e)));
                }
            }
        }
        if lengths.is_empty() {
            return Ok((places, None));
        }
        let mut encoded = encoded.freeze();
        let largest = lengths.iter().copied().max().unwrap_or(0);
        let batch: Vec<_> = lengths
            .into_iter()
            .map(|len| Outbound::new(M::VERB, encoded.split_to(len)).expires_at_ms(expires))
            .collect();
        let count = batch.len();
        let line = &lines[usize::from(link_kind::<M>(largest).code())];
        let queue = line.queue(Outgoing::many(batch), deadline_instant(expires));
        Ok((places, Some((queue, count))))
    }

    /// Queues `message` now if its link's credit allows, and returns its outcome to
    /// await ([`Queued`]); otherwise fails at once, without waiting:
    /// [`SendError::Overloaded`] (at the level the link last found short, or
    /// [`OverloadLevel::Link`](crate::outcome::OverloadLevel::Link) while it has not
    /// answered yet, or while the link is being found: [`ready`](Self::ready) waits
    /// for that), or why there is no link ([`SendError::UnknownPeer`],
    /// [`SendError::Closed`]). More credit (or the link) is asked for meanwhile, so a
    /// later call may succeed. A message to the node itself is delivered at once.
    pub fn try_send<M: Message>(&self, message: M) -> Result<Queued, SendError> {
        match self.prepare(message, None, None) {
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
    /// # #[cfg(feature = "serde")] // `message!` needs it
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
        let waiting = self.line_up(message, None, None);
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
        kind: Option<LinkKind>,
    ) -> impl Future<Output = Result<Sent, SendError>> + 'static {
        let waiting = self.line_up(message, expire_after, kind);
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
    /// # #[cfg(feature = "serde")] // `message!` needs it
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
        kind: Option<LinkKind>,
    ) -> Result<QueueFuture<Queued>, Result<Sent, SendError>> {
        match self.prepare(message, expire_after, kind) {
            Prepared::Ready(result) => Err(result),
            Prepared::Link {
                credit,
                outbound,
                expires_at,
            } => Ok(credit.queue(Outgoing::One(outbound), expires_at)),
        }
    }

    /// Encodes `message` and picks its link (`kind`, else by its type and size), or
    /// delivers it locally.
    pub(super) fn prepare<M: Message>(
        &self,
        message: M,
        expire_after: Option<Duration>,
        kind: Option<LinkKind>,
    ) -> Prepared {
        let Some(lines) = &self.lines else {
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
                let kind = kind.unwrap_or_else(|| link_kind::<M>(outbound.payload.len()));
                Prepared::Link {
                    credit: lines[usize::from(kind.code())].clone(),
                    outbound,
                    expires_at: deadline_instant(expires),
                }
            }
        }
    }

    /// Sends a request to the peer; see [`Node::request`]. The request is encoded, and
    /// queued on its link like a [`send`](Self::send) (at once within credit, in the
    /// order of the calls), when the call is made; the future borrows neither the
    /// handle nor the request.
    pub fn request<R: Request>(
        &self,
        request: R,
    ) -> impl Future<Output = Result<R::Response, RequestError>> + 'static {
        let timeout = self.node.inner.config.request_timeout;
        self.request_with_timeout(request, timeout)
    }

    /// [`request`](Self::request) with its own timeout.
    pub fn request_with_timeout<R: Request>(
        &self,
        request: R,
        timeout: Duration,
    ) -> impl Future<Output = Result<R::Response, RequestError>> + 'static {
        let call = self.start_request(request, timeout);
        async move {
            match call? {
                RequestCall::Local(answer) => answer.await,
                RequestCall::Remote(remote) => {
                    let payload = remote.await?;
                    R::Response::decode(payload).map_err(RequestError::Decode)
                }
            }
        }
    }

    /// What a request needs once the call returns: its local handler's answer, or the
    /// encoded request and what sends it.
    fn start_request<R: Request>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<RequestCall<R>, RequestError> {
        let Some(lines) = &self.lines else {
            let recipient = self
                .node
                .inner
                .handlers
                .local_request_handler::<R>()
                .ok_or(SendError::NoLocalHandler(R::VERB))?;
            let answer = recipient.send(Requested::new(self.id, request));
            // Boxed: the local path is rare, and a remote request should not carry
            // its size.
            return Ok(RequestCall::Local(Box::pin(async move {
                match tokio::time::timeout(timeout, answer).await {
                    Err(_) => Err(RequestError::Timeout),
                    Ok(Err(_)) => Err(RequestError::Closed),
                    Ok(Ok(Ok(response))) => Ok(response),
                    Ok(Ok(Err(e))) => Err(RequestError::Remote(crate::message::RemoteFailure {
                        reason: crate::message::FailureReason::HandlerFailed,
                        detail: e.0,
                    })),
                }
            })));
        };
        // A request is worth nothing after its timeout: it is never written later,
        // and the peer skips it if it arrives later.
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let by_timeout = wire::epoch_ms().saturating_add(timeout_ms);
        let expires = Some(
            self.node
                .deadline::<R>(None)
                .map_or(by_timeout, |d| d.min(by_timeout)),
        );
        let outbound = outbound(&request, Flags::REQUEST, Vec::new(), expires)?;
        let kind = link_kind::<R>(outbound.payload.len());
        // Registered and queued now, in the order of the calls on the line.
        Ok(RequestCall::Remote(RemoteRequest::start(
            self.node.inner.next_request_id(),
            self.id,
            outbound,
            &lines[usize::from(kind.code())],
            deadline_instant(expires),
            timeout,
            self.node.inner.requests.clone(),
        )))
    }
}

enum RequestCall<R: Request> {
    Local(Pin<Box<dyn Future<Output = Result<R::Response, RequestError>> + Send>>),
    Remote(RemoteRequest),
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

/// An application's message, encoded, as its link takes it: a one-way message, or
/// (with `flags` and `params`) a request or response. Internode's own verbs are
/// refused.
pub(super) fn outbound<M: Message>(
    message: &M,
    flags: Flags,
    params: Vec<(u32, bytes::Bytes)>,
    expires_at_ms: Option<u64>,
) -> Result<Outbound, SendError> {
    Ok(app_outbound(message, expires_at_ms)?.with_protocol(flags, params))
}

/// Payloads up to this size are copied out of the encode buffer.
const SMALL_PAYLOAD: usize = 4096;

/// An application's one-way message, encoded; internode's own verbs are refused.
pub(super) fn app_outbound<M: Message>(
    message: &M,
    expires_at_ms: Option<u64>,
) -> Result<Outbound, SendError> {
    if M::VERB >= RESERVED_VERBS_START {
        return Err(SendError::ReservedVerb(M::VERB));
    }
    let payload = encode_payload(message).map_err(SendError::Serialization)?;
    Ok(Outbound::new(M::VERB, payload).expires_at_ms(expires_at_ms))
}

thread_local! {
    /// Where this thread encodes messages: reused, so that a small message costs one
    /// allocation of exactly its size.
    static SCRATCH: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// `message`'s payload: a small one copied out of the thread's scratch buffer into a
/// buffer of its size (one allocation, and none when the link later clones it), a
/// large one handed over with the buffer it was encoded in (the scratch starts anew,
/// so it stays small and holds no message's memory).
fn encode_payload<M: Message>(message: &M) -> Result<bytes::Bytes, crate::message::EncodeError> {
    let encode = |buf: &mut BytesMut| -> Result<bytes::Bytes, _> {
        buf.clear();
        message.encode(buf)?;
        Ok(if buf.len() <= SMALL_PAYLOAD {
            bytes::Bytes::copy_from_slice(buf)
        } else {
            // The whole buffer goes with the message: the scratch pins nothing.
            std::mem::take(buf).freeze()
        })
    };
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => encode(&mut buf),
        // An `encode` that sends a message itself: a buffer of its own.
        Err(_) => encode(&mut BytesMut::new()),
    })
}

/// The deadline (ms since the UNIX epoch) of a message of type `M` made at
/// `made_at_ms()`: `expire_after` if given, else the type's, else the node's. The
/// clock is read only for a message that has one.
pub(super) fn deadline_ms<M: Message>(
    config: &NodeConfig,
    expire_after: Option<Duration>,
    made_at_ms: impl FnOnce() -> u64,
) -> Option<u64> {
    let after = expire_after.or(M::EXPIRES_AFTER).or(config.expire_after)?;
    let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
    Some(made_at_ms().saturating_add(after))
}
