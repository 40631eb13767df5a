//! The node's in-flight requests: the request tracker actor, which keeps them with
//! their deadlines, and [`RemoteRequest`], a request on its way as its caller awaits
//! it.
//!
//! A request is registered and queued when the call is made, with no round trip: its
//! id comes from the node's id source (a counter, not a reserve), the tracker learns
//! it with a `do_send` ([`Register`]) and the request goes on its line at once, in
//! the order of the calls on the line, like a one-way message. The caller's future
//! then awaits both the send's outcome and the answer, so no task is spawned per
//! request; a failed send ends the request at once with that error (and tells the
//! tracker to forget it).
//!
//! Invariants: every registered request completes exactly once, with its response, a
//! remote failure, a timeout at its deadline, `Closed` when its peer's link is closed,
//! or the failure of its send; ids are unique among the node's requests (its id
//! source hands each out once). The tracker learns a request before the request can
//! be written, so before its answer can arrive: the `Register` is in the tracker's
//! mailbox before the request is in its link's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::credit::CreditLine;
use super::link::Outbound;
use super::timer::Timer;
use super::wire;
use crate::message::RemoteFailure;
use crate::outcome::{RequestError, SendError};
use crate::session::PendingRequests;
use crate::NodeId;

pub(crate) type ResponseSender = oneshot::Sender<Result<Bytes, RequestError>>;

/// Registers request `id`, to fail at `deadline` unless answered first.
pub(crate) struct Register {
    pub id: u64,
    pub peer: NodeId,
    pub deadline: Instant,
    pub reply: ResponseSender,
}

impl Message for Register {
    type Result = ();
}

/// A response (or failure response) arrived for request `id`.
pub(crate) struct Complete {
    pub id: u64,
    pub result: Result<Bytes, RemoteFailure>,
}

impl Message for Complete {
    type Result = ();
}

/// The request was not sent (its caller knows why); forget it.
pub(crate) struct Cancel {
    pub id: u64,
}

impl Message for Cancel {
    type Result = ();
}

/// A link to `peer` was closed: its pending requests fail now.
pub(crate) struct PeerLinkClosed {
    pub peer: NodeId,
}

impl Message for PeerLinkClosed {
    type Result = ();
}

/// See the module documentation.
pub(crate) struct RequestTracker {
    pending: PendingRequests<ResponseSender>,
    timer: Timer,
}

impl RequestTracker {
    pub(crate) fn new() -> Self {
        RequestTracker {
            pending: PendingRequests::new(),
            timer: Timer::default(),
        }
    }

    /// Keeps one timer, armed no later than the earliest deadline: requests made with
    /// the same timeout have later deadlines than those before them, so the timer
    /// armed for the first stays, and one firing with nothing due re-arms for the
    /// earliest (no timer operation per request).
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let next = self.pending.poll_timeout();
        self.timer.arm_by(
            ctx,
            next,
            |tracker| &mut tracker.timer,
            |tracker, ctx| {
                for (_, reply) in tracker.pending.handle_timeout(Instant::now()) {
                    let _ = reply.send(Err(RequestError::Timeout));
                }
                tracker.arm(ctx);
            },
        );
    }
}

impl Actor for RequestTracker {
    type Context = Context<Self>;
}

impl Handler<Register> for RequestTracker {
    type Result = ();

    fn handle(&mut self, r: Register, ctx: &mut Context<Self>) {
        if let Some((_, replaced)) = self.pending.insert(r.id, r.peer, r.deadline, r.reply) {
            // Never: the node's id source hands each id out once.
            log::error!("request id {} given twice", r.id);
            let _ = replaced.send(Err(RequestError::Closed));
        }
        self.arm(ctx);
    }
}

impl Handler<Complete> for RequestTracker {
    type Result = ();

    fn handle(&mut self, c: Complete, ctx: &mut Context<Self>) {
        if let Some((_, reply)) = self.pending.complete(c.id) {
            let _ = reply.send(c.result.map_err(RequestError::Remote));
        }
        self.arm(ctx);
    }
}

impl Handler<Cancel> for RequestTracker {
    type Result = ();

    fn handle(&mut self, c: Cancel, ctx: &mut Context<Self>) {
        // Its caller already has the send's error.
        let _ = self.pending.complete(c.id);
        self.arm(ctx);
    }
}

impl Handler<PeerLinkClosed> for RequestTracker {
    type Result = ();

    fn handle(&mut self, c: PeerLinkClosed, ctx: &mut Context<Self>) {
        for (_, reply) in self.pending.fail_peer(c.peer) {
            let _ = reply.send(Err(RequestError::Closed));
        }
        self.arm(ctx);
    }
}

/// A request to a peer on its way: registered with the tracker and queued on its line
/// when made ([`start`](Self::start)); as a future, it resolves with the response's
/// payload or why there is none. Polling it awaits the send's outcome (which also
/// serves the line when the request waits there for credit) and the answer together;
/// while the peer is unreachable the request stays queued and still times out (the
/// tracker's timer); a failed send ends it at once with that error. A small future of
/// its own (no `async` state machine holding both halves), since every request moves
/// it.
pub(crate) struct RemoteRequest {
    id: u64,
    sending: Sending,
    answer: oneshot::Receiver<Result<Bytes, RequestError>>,
    tracker: Addr<RequestTracker>,
}

/// Where the request's send stands.
enum Sending {
    /// Waiting for its link and credit.
    Waiting(super::credit::QueueFuture<super::credit::Queued>),
    /// In the link's mailbox: its outcome to come.
    Queued(super::credit::Queued),
    /// Written (or acknowledged): only the answer is awaited.
    Sent,
}

impl RemoteRequest {
    /// Registers `outbound` (a request to `peer`) as request `id`, to time out after
    /// `timeout`, and queues it on `line` (it waits there for credit at most until
    /// `expires_at`).
    pub(crate) fn start(
        id: u64,
        peer: NodeId,
        mut outbound: Outbound,
        line: &CreditLine,
        expires_at: Option<Instant>,
        timeout: Duration,
        tracker: Addr<RequestTracker>,
    ) -> Self {
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        let (reply, answer) = oneshot::channel();
        tracker.do_send(Register {
            id,
            peer,
            deadline,
            reply,
        });
        outbound
            .params
            .push((wire::PARAM_REQUEST_ID, wire::vint_bytes(id)));
        RemoteRequest {
            id,
            sending: Sending::Waiting(
                line.queue(super::credit::Outgoing::One(outbound), expires_at),
            ),
            answer,
            tracker,
        }
    }

    /// The send failed: the request ends with that error, and the tracker forgets it.
    fn failed(&mut self, error: SendError) -> Poll<Result<Bytes, RequestError>> {
        self.sending = Sending::Sent;
        self.tracker.do_send(Cancel { id: self.id });
        Poll::Ready(Err(RequestError::Send(error)))
    }
}

impl Future for RemoteRequest {
    type Output = Result<Bytes, RequestError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(answer) = Pin::new(&mut this.answer).poll(cx) {
            return Poll::Ready(answer.unwrap_or(Err(RequestError::Closed)));
        }
        loop {
            match &mut this.sending {
                Sending::Waiting(waiting) => match Pin::new(waiting).poll(cx) {
                    Poll::Ready(Ok(queued)) => this.sending = Sending::Queued(queued),
                    Poll::Ready(Err(e)) => return this.failed(e),
                    Poll::Pending => return Poll::Pending,
                },
                Sending::Queued(queued) => match Pin::new(queued).poll(cx) {
                    Poll::Ready(Ok(_)) => this.sending = Sending::Sent,
                    Poll::Ready(Err(e)) => return this.failed(e),
                    Poll::Pending => return Poll::Pending,
                },
                Sending::Sent => return Poll::Pending,
            }
        }
    }
}
