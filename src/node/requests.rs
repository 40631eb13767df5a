//! The request tracker actor: the node's in-flight requests, their ids and timeouts.
//!
//! Invariants: every registered request completes exactly once, with its response,
//! a remote failure, a timeout at its deadline, or `Closed` when its peer's link is
//! closed; ids are unique among pending requests because this actor hands them out.

use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::timer::Timer;
use crate::message::RemoteFailure;
use crate::outcome::RequestError;
use crate::session::PendingRequests;
use crate::NodeId;

pub(crate) type ResponseSender = oneshot::Sender<Result<Bytes, RequestError>>;

/// Registers a request; answered with its id.
pub(crate) struct Register {
    pub peer: NodeId,
    pub timeout: Duration,
    pub reply: ResponseSender,
}

impl Message for Register {
    type Result = u64;
}

/// A response (or failure response) arrived for request `id`.
pub(crate) struct Complete {
    pub id: u64,
    pub result: Result<Bytes, RemoteFailure>,
}

impl Message for Complete {
    type Result = ();
}

/// The request was not sent; forget it.
pub(crate) struct Cancel {
    pub id: u64,
    pub error: RequestError,
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
    next_id: u64,
    timer: Timer,
}

impl RequestTracker {
    pub(crate) fn new() -> Self {
        RequestTracker {
            pending: PendingRequests::new(),
            next_id: 1,
            timer: Timer::default(),
        }
    }

    /// Keeps exactly one timer, armed for the earliest deadline.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let next = self.pending.poll_timeout();
        self.timer.arm(
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
    type Result = u64;

    fn handle(&mut self, r: Register, ctx: &mut Context<Self>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let deadline = Instant::now()
            .checked_add(r.timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        self.pending.insert(id, r.peer, deadline, r.reply);
        self.arm(ctx);
        id
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
        if let Some((_, reply)) = self.pending.complete(c.id) {
            let _ = reply.send(Err(c.error));
        }
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
