//! The `ResourceLimits` actor: the node's endpoint and global byte reserves, one
//! [`Reserves`] for sending and one for receiving (docs/limits.md).
//!
//! Links talk to it only by messages: [`Acquire`] (answered at once, granted or short),
//! [`AcquireWhenAvailable`] (parked until the reserves can grant it: a receiving link
//! stops reading meanwhile, a sending link's producers wait for credit) and
//! [`Release`]. The accounting itself is the pure
//! [`Reserves`] type; this actor only adds the waiting list.
//!
//! Invariants:
//! - Whatever the order of messages, the bytes granted never exceed a limit (that is
//!   [`Reserves`]' invariant; every grant comes from it).
//! - Grants leave this actor wrapped in a [`Held`], which releases them when dropped
//!   (a message to this actor): a grant whose requester has gone, or that an actor
//!   drops on its way out, is released rather than leaked.
//! - Parked requests are served in arrival order, per direction, after every release
//!   that frees reserve of that direction; one whose endpoint is short is passed over,
//!   but one short of global reserve stops the round, so a large request is not
//!   starved by later small ones.

use std::collections::VecDeque;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::limits::{Grant, Limits, ReserveNeeded, Reserves, Shortage};
use crate::NodeId;

/// Which way the bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Direction {
    /// Messages queued to be written to peers.
    Send,
    /// Messages read from peers, not yet processed by their handlers.
    Receive,
}

/// Asks for reserve bytes now: the most of `need.up_to` that both reserves have, if
/// that is at least `need.at_least`; otherwise which reserve is short.
pub(crate) struct Acquire {
    pub direction: Direction,
    pub endpoint: NodeId,
    pub need: ReserveNeeded,
}

impl Message for Acquire {
    type Result = Result<Held, Shortage>;
}

/// Asks for reserve, waiting for it if need be.
pub(crate) struct AcquireWhenAvailable {
    pub direction: Direction,
    pub endpoint: NodeId,
    pub need: ReserveNeeded,
}

impl Message for AcquireWhenAvailable {
    type Result = Result<Held, Closed>;
}

/// The actor stopped before the request could be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// A grant on its way between actors: released to the `ResourceLimits` actor when
/// dropped, unless taken out with [`into_grant`](Self::into_grant) by an owner that
/// will release it itself.
pub(crate) struct Held {
    grant: Option<Grant<NodeId>>,
    direction: Direction,
    limits: Addr<ResourceLimits>,
}

impl Held {
    pub fn new(grant: Grant<NodeId>, direction: Direction, limits: Addr<ResourceLimits>) -> Self {
        Held {
            grant: Some(grant),
            direction,
            limits,
        }
    }

    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.grant.as_ref().map_or(0, Grant::bytes)
    }

    /// The grant, now the caller's to release.
    pub fn into_grant(mut self) -> Grant<NodeId> {
        self.grant
            .take()
            .expect("a Held holds its grant until taken or dropped")
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(grant) = self.grant.take().filter(|g| !g.is_empty()) {
            self.limits.do_send(Release {
                direction: self.direction,
                grant,
            });
        }
    }
}

/// Gives reserve bytes back.
pub(crate) struct Release {
    pub direction: Direction,
    pub grant: Grant<NodeId>,
}

impl Message for Release {
    type Result = ();
}

/// Asks for a [`LimitsSnapshot`].
pub(crate) struct GetLimits;

impl Message for GetLimits {
    type Result = LimitsSnapshot;
}

/// The reserves of one direction at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReservesSnapshot {
    /// The limits.
    pub limits: Limits,
    /// Bytes of the global reserve in use.
    pub global_in_use: usize,
    /// The most bytes of the global reserve ever in use at once.
    pub global_peak: usize,
    /// The most bytes of any one endpoint's reserve ever in use at once.
    pub endpoint_peak: usize,
    /// Bytes of reserve in use per endpoint (only endpoints with some in use).
    pub endpoints: Vec<(NodeId, usize)>,
    /// Requests waiting for reserve (receiving links that stopped reading, sending
    /// links whose producers wait for credit).
    pub waiting: usize,
}

/// Both directions' reserves at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitsSnapshot {
    /// Reserves for messages being sent.
    pub send: ReservesSnapshot,
    /// Reserves for messages received and not yet processed.
    pub receive: ReservesSnapshot,
}

/// Indexes of [`ResourceLimits::waiting`].
const SEND: usize = 0;
const RECEIVE: usize = 1;

struct Waiter {
    endpoint: NodeId,
    need: ReserveNeeded,
    reply: oneshot::Sender<Held>,
}

/// The actor; see the module documentation.
pub(crate) struct ResourceLimits {
    send: Reserves<NodeId>,
    receive: Reserves<NodeId>,
    /// Parked requests, in arrival order: sending, receiving.
    waiting: [VecDeque<Waiter>; 2],
}

impl ResourceLimits {
    pub fn new(send: Limits, receive: Limits) -> Self {
        ResourceLimits {
            send: Reserves::new(send),
            receive: Reserves::new(receive),
            waiting: [VecDeque::new(), VecDeque::new()],
        }
    }

    fn reserves(&mut self, direction: Direction) -> &mut Reserves<NodeId> {
        match direction {
            Direction::Send => &mut self.send,
            Direction::Receive => &mut self.receive,
        }
    }

    /// Serves parked requests after reserve of `direction` was released.
    fn serve_waiting(&mut self, direction: Direction, me: &Addr<Self>) {
        let (reserves, waiting) = match direction {
            Direction::Send => (&mut self.send, &mut self.waiting[SEND]),
            Direction::Receive => (&mut self.receive, &mut self.waiting[RECEIVE]),
        };
        let mut i = 0;
        while i < waiting.len() {
            let waiter = &waiting[i];
            if waiter.reply.is_closed() {
                waiting.remove(i);
                continue;
            }
            match try_grant(reserves, waiter.endpoint, waiter.need) {
                Ok(grant) => {
                    let Some(waiter) = waiting.remove(i) else {
                        break;
                    };
                    // A requester that has gone drops the grant: released.
                    let _ = waiter.reply.send(Held::new(grant, direction, me.clone()));
                }
                Err(Shortage::Endpoint { .. }) => i += 1,
                Err(_) => break,
            }
        }
    }
}

/// The most of `need.up_to` the reserves have for `endpoint`, if at least
/// `need.at_least`.
fn try_grant(
    reserves: &mut Reserves<NodeId>,
    endpoint: NodeId,
    need: ReserveNeeded,
) -> Result<Grant<NodeId>, Shortage> {
    let available = reserves.available(&endpoint);
    let bytes = if available >= need.at_least {
        need.up_to.min(available)
    } else {
        need.at_least // refused, naming the short reserve
    };
    reserves.try_acquire(&endpoint, bytes)
}

fn snapshot(reserves: &Reserves<NodeId>, waiting: usize) -> ReservesSnapshot {
    ReservesSnapshot {
        limits: reserves.limits(),
        global_in_use: reserves.in_use_global(),
        global_peak: reserves.peak_global(),
        endpoint_peak: reserves.peak_endpoints(),
        endpoints: reserves.in_use_by_endpoint(),
        waiting,
    }
}

impl Actor for ResourceLimits {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Links release their bytes by `do_send`; nothing may be parked outside.
        ctx.set_mailbox_capacity(1 << 40);
    }
}

impl Handler<Acquire> for ResourceLimits {
    type Result = MessageResult<Acquire>;

    fn handle(&mut self, m: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        let granted = try_grant(self.reserves(m.direction), m.endpoint, m.need);
        MessageResult(granted.map(|g| Held::new(g, m.direction, ctx.address())))
    }
}

impl Handler<AcquireWhenAvailable> for ResourceLimits {
    type Result = ResponseFuture<Result<Held, Closed>>;

    fn handle(&mut self, m: AcquireWhenAvailable, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let waiting = match m.direction {
            Direction::Send => SEND,
            Direction::Receive => RECEIVE,
        };
        // Behind others already waiting, to keep their order.
        if self.waiting[waiting].is_empty() {
            if let Ok(grant) = try_grant(self.reserves(m.direction), m.endpoint, m.need) {
                let held = Held::new(grant, m.direction, ctx.address());
                return Box::pin(async move { Ok(held) });
            }
        }
        self.waiting[waiting].push_back(Waiter {
            endpoint: m.endpoint,
            need: m.need,
            reply: tx,
        });
        Box::pin(async move { rx.await.map_err(|_| Closed) })
    }
}

impl Handler<Release> for ResourceLimits {
    type Result = ();

    fn handle(&mut self, m: Release, ctx: &mut Context<Self>) {
        self.reserves(m.direction).release(m.grant);
        self.serve_waiting(m.direction, &ctx.address());
    }
}

impl Handler<GetLimits> for ResourceLimits {
    type Result = MessageResult<GetLimits>;

    fn handle(&mut self, _: GetLimits, _: &mut Context<Self>) -> Self::Result {
        MessageResult(LimitsSnapshot {
            send: snapshot(&self.send, self.waiting[SEND].len()),
            receive: snapshot(&self.receive, self.waiting[RECEIVE].len()),
        })
    }
}
