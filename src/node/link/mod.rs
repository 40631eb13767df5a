//! The link actor: one per (peer, link kind); its mailbox is the link's outbound queue.
//!
//! Invariants:
//! - The only way into the queue is the mailbox ([`Outbound`]); every message taken
//!   ends in exactly one outcome sent back to its sender: written, or failed with a
//!   [`SendError`]. A message failed with `Closed` was never written; one that was
//!   being written when its connection failed or was closed fails with
//!   `ConnectionLost` (it may have reached the peer).
//! - Messages are taken from the mailbox promptly into the link's own queue, also
//!   while it has no connection, and are written in the order they were taken.
//! - At most one write is in flight: what waits meanwhile is drained into one buffer
//!   of frames and written with one `write_all` (the batching of the TiKV and
//!   Cassandra delivery loops); the bytes of that write are tracked as unflushed.
//! - The [`Lifecycle`] machine decides when to connect, retry, go dormant and close;
//!   this actor only carries out its actions. A retry restarts the actor through
//!   actix's `Supervisor`: its value, address and mailbox survive, and everything
//!   spawned for the failed connection is dropped.
//! - A connection is used only after its handshake completed with the expected peer.
//! - Limits (DESIGN.md section 6): a message's bytes ([`Outbound::size`]) are charged
//!   to the link's capacity, then to reserve leased from the `ResourceLimits` actor,
//!   from the moment the link takes it until it is written or fails
//!   ([`OutboundQueue`]). While a reserve request is out the link processes nothing
//!   else (`ctx.wait`), so messages keep their order. A message that finds no room is
//!   failed with `Overloaded` at once; a link failing to connect asks for no reserve.
//! - Expired messages are never written: they fail with `Expired` on arrival, when
//!   the link is full, on every tick (100 ms) and when their turn to be written comes.
//! - Overload and expiry warnings are logged at most once a second per link.

mod api;
mod reply;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;

pub(crate) use api::SetPeerAddress;
pub use api::{CloseLink, GetLinkSnapshot, LinkCounters, LinkSnapshot, Outbound};
pub use reply::OutboundReply;
use reply::Slot;

use super::connect::dial;
use super::outcome::{OverloadLevel, SendError, Sent};
use super::registry::LinkReport;
use super::requests::PeerLinkClosed;
use super::requests::RequestTracker;
use super::resource_limits::{Acquire, Direction, Release, ResourceLimits};
use super::wire::{self, VERB_PING, VERB_PONG};
use super::NodeConfig;
use crate::envelope::{Envelope, Flags, MessageAssembler};
use crate::frame::{Decoded, FrameCodec, FrameEncoder, FrameError};
use crate::handshake::{Established, Hello};
use crate::limits::{Grant, Shortage};
use crate::session::{
    Backoff, DisconnectReason, Entry, Heartbeat, HeartbeatAction, Lifecycle, LifecycleAction,
    LinkEvent, LinkState, OutboundQueue, ProtocolViolation, Refused, WarnLimiter,
};
use crate::{vint, LinkKind, NodeId};

/// Most bytes of frames put into one write.
const BATCH_BYTES: usize = 1 << 20;
/// Messages a link's mailbox holds before `send` parks further ones: effectively
/// unbounded (actix's own limit is `usize::MAX >> 1`, less its senders), because the
/// link takes messages out at once and bounds its queue in bytes itself.
const MAILBOX_CAPACITY: usize = 1 << 40;
/// How often a link looks at its heartbeat and drops expired messages.
const TICK: Duration = Duration::from_millis(100);
/// At most one overload or expiry warning per link per this interval.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// The reserve a link leases beyond what a message needs: enough for many small
/// messages per round trip to the `ResourceLimits` actor, small enough not to starve
/// the peer's other links (a thirty-second of the endpoint reserve, at most 1 MiB).
pub(crate) fn lease_chunk(endpoint_reserve: usize) -> usize {
    (endpoint_reserve / 32).min(1 << 20)
}

/// Node-wide things every link needs.
pub(crate) struct LinkEnv {
    pub node: NodeId,
    pub listen: SocketAddr,
    pub config: Arc<NodeConfig>,
    pub reports: Recipient<LinkReport>,
    pub tracker: Addr<RequestTracker>,
    pub limits: Addr<ResourceLimits>,
}

struct Queued {
    message: Outbound,
    reply: Option<Slot>,
}

type Queue = OutboundQueue<NodeId, Queued>;
type Taken = Entry<NodeId, Queued>;

struct Conn {
    writer: Option<OwnedWriteHalf>,
    encoder: FrameEncoder,
    in_flight: Vec<Taken>,
    unflushed: usize,
    heartbeat: Heartbeat,
    assembler: MessageAssembler,
    read: SpawnHandle,
}

/// The actor of one link; see the module documentation.
pub struct Link {
    env: Arc<LinkEnv>,
    peer: NodeId,
    kind: LinkKind,
    peer_addr: SocketAddr,
    session_id: u64,
    origin: Instant,
    queue: Queue,
    next_seq: u64,
    lifecycle: Lifecycle,
    conn: Option<Conn>,
    /// Bumped for every connection; results of an older one are ignored.
    generation: u64,
    connecting: Option<SpawnHandle>,
    counters: LinkCounters,
    overload_warning: WarnLimiter,
    expiry_warning: WarnLimiter,
    close_waiters: Vec<oneshot::Sender<()>>,
    scratch: BytesMut,
}

impl Link {
    pub(crate) fn new(env: Arc<LinkEnv>, peer: NodeId, kind: LinkKind, addr: SocketAddr) -> Self {
        let seed = random_u64();
        let limits = env.config.send_limits;
        Link {
            queue: OutboundQueue::new(limits.link_capacity, lease_chunk(limits.endpoint_reserve)),
            lifecycle: Lifecycle::new(Backoff::new(env.config.backoff, seed)),
            env,
            peer,
            kind,
            peer_addr: addr,
            session_id: random_u64() | 1,
            origin: Instant::now(),
            next_seq: 1,
            conn: None,
            generation: 0,
            connecting: None,
            counters: LinkCounters::default(),
            overload_warning: WarnLimiter::new(WARN_EVERY),
            expiry_warning: WarnLimiter::new(WARN_EVERY),
            close_waiters: Vec::new(),
            scratch: BytesMut::new(),
        }
    }

    fn waiting(&self) -> bool {
        !self.queue.is_empty() || self.conn.as_ref().is_some_and(|c| !c.in_flight.is_empty())
    }

    fn apply(&mut self, actions: Vec<LifecycleAction>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                LifecycleAction::Connect => self.start_connect(ctx),
                LifecycleAction::ScheduleRetry { delay, .. } => {
                    // The mailbox keeps running meanwhile; then the supervisor
                    // restarts the actor, which connects again in `started`.
                    ctx.run_later(delay, |link, ctx| {
                        if matches!(link.lifecycle.state(), LinkState::WaitingToRetry { .. }) {
                            ctx.stop();
                        }
                    });
                }
                LifecycleAction::CloseConnection => self.drop_conn(ctx),
                LifecycleAction::FailQueued => {
                    for e in self.queue.drain() {
                        fail(&mut self.counters, e.item, SendError::Closed);
                    }
                    self.release_surplus();
                }
                LifecycleAction::Stop => self.closed(ctx),
            }
        }
        self.report_events();
    }

    fn report_events(&mut self) {
        while let Some(event) = self.lifecycle.poll_event() {
            log::info!(
                "link {} {} to {}: {:?}",
                self.env.node,
                self.kind,
                self.peer,
                event
            );
            let counters = (event == LinkEvent::Closed).then(|| self.counters.clone());
            self.env.reports.do_send(LinkReport {
                peer: self.peer,
                kind: self.kind,
                event,
                counters,
            });
        }
    }

    fn start_connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting.is_some() || self.conn.is_some() {
            return;
        }
        self.counters.connection_attempts += 1;
        let config = &self.env.config;
        let mut hello = Hello::new(self.env.node, self.env.listen, self.kind, config.framing);
        hello.session_id = self.session_id;
        let fut = dial(
            self.peer_addr,
            hello,
            config.connect_timeout,
            config.handshake_timeout,
        );
        let handle = ctx.spawn(fut.into_actor(self).map(|result, link, ctx| {
            link.connecting = None;
            match result {
                Ok((stream, established)) => link.connected(stream, established, ctx),
                Err(reason) => {
                    let actions =
                        link.lifecycle
                            .handle_disconnected(reason, link.waiting(), Instant::now());
                    link.apply(actions, ctx);
                }
            }
        }));
        self.connecting = Some(handle);
    }

    fn connected(
        &mut self,
        stream: tokio::net::TcpStream,
        established: Established,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        if established.peer_node_id != self.peer {
            let reason = DisconnectReason::WrongPeer {
                expected: self.peer.0,
                found: established.peer_node_id.0,
            };
            let actions = self
                .lifecycle
                .handle_disconnected(reason, self.waiting(), now);
            self.apply(actions, ctx);
            return;
        }
        self.generation += 1;
        let (read, writer) = stream.into_split();
        let mut framed = FramedRead::new(read, FrameCodec::new(established.framing));
        framed
            .read_buffer_mut()
            .extend_from_slice(&established.leftover);
        let read = ctx.add_stream(framed);
        self.conn = Some(Conn {
            writer: Some(writer),
            encoder: FrameEncoder::new(established.framing),
            in_flight: Vec::new(),
            unflushed: 0,
            heartbeat: Heartbeat::new(self.env.config.heartbeat, self.origin, now),
            assembler: MessageAssembler::new(64 * 1024),
            read,
        });
        self.counters.connections += 1;
        let actions = self.lifecycle.handle_connected(now);
        self.apply(actions, ctx);
        self.pump(ctx);
    }

    /// Drops the connection. What was being written fails with `ConnectionLost`, also
    /// when the link is closing: it may have reached the peer, and `Closed` promises
    /// that it did not. Keepalives still queued belonged to that connection: they are
    /// dropped, so that they neither keep an idle link retrying nor reach the next one.
    fn drop_conn(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.connecting.take() {
            ctx.cancel_future(handle);
        }
        if let Some(mut conn) = self.conn.take() {
            ctx.cancel_future(conn.read);
            for e in conn.in_flight.drain(..) {
                let e = self.queue.settle(e);
                fail(&mut self.counters, e.item, SendError::ConnectionLost);
            }
            self.queue.remove_where(|q| q.message.verb == VERB_PING);
            self.release_surplus();
        }
    }

    fn disconnect(&mut self, reason: DisconnectReason, ctx: &mut Context<Self>) {
        if self.conn.is_none() {
            return;
        }
        log::warn!(
            "link {} {} to {} lost: {reason}",
            self.env.node,
            self.kind,
            self.peer
        );
        self.drop_conn(ctx);
        let actions = self
            .lifecycle
            .handle_disconnected(reason, self.waiting(), Instant::now());
        self.apply(actions, ctx);
    }

    fn closed(&mut self, ctx: &mut Context<Self>) {
        self.drop_conn(ctx);
        for e in self.queue.drain() {
            fail(&mut self.counters, e.item, SendError::Closed);
        }
        if let Some(grant) = self.queue.take_spare() {
            self.release(grant);
        }
        for waiter in self.close_waiters.drain(..) {
            let _ = waiter.send(());
        }
        self.env.tracker.do_send(PeerLinkClosed { peer: self.peer });
        // Drop the timer and whatever the connection spawned. The supervisor restarts
        // the actor while handles on it remain (it answers `Closed`, with nothing
        // scheduled); once the last one is dropped, the actor is freed.
        ctx.stop();
    }

    /// Starts a write of everything waiting, if connected and no write is in flight.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if self.queue.is_empty() || conn.writer.is_none() {
            return;
        }
        let now_ms = wire::epoch_ms();
        let mut expired = Vec::new();
        while let Some(mut e) = self.queue.pop(now_ms, &mut expired) {
            let q = &mut e.item;
            let envelope = Envelope {
                id: self.next_seq,
                verb: q.message.verb,
                flags: q.message.flags,
                created_at_ms: now_ms,
                expires_at_ms: q.message.expires_at_ms,
                params: std::mem::take(&mut q.message.params),
                payload: q.message.payload.clone(),
            };
            // The header goes through a small scratch buffer; the payload is copied
            // once, from where it lies straight into the frames.
            self.scratch.clear();
            if let Err(error) = envelope.encode_header(&mut self.scratch) {
                let e = self.queue.settle(e);
                fail(&mut self.counters, e.item, SendError::Envelope(error));
                continue;
            }
            self.next_seq += 1;
            conn.encoder.push_parts(&[&self.scratch, &envelope.payload]);
            conn.in_flight.push(e);
            if conn.encoder.buffered_len() >= BATCH_BYTES {
                break;
            }
        }
        self.expired(expired.into_iter().map(|e| e.item));
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.in_flight.is_empty() {
            return;
        }
        let bytes = conn.encoder.take();
        conn.unflushed = bytes.len();
        let Some(mut writer) = conn.writer.take() else {
            return;
        };
        conn.heartbeat.on_write_started(Instant::now());
        let generation = self.generation;
        let write = async move {
            let result = writer.write_all(&bytes).await;
            (writer, bytes, result)
        };
        ctx.spawn(
            write
                .into_actor(self)
                .map(move |(writer, bytes, result), link, ctx| {
                    link.write_done(generation, writer, bytes, result, ctx)
                }),
        );
    }

    /// Fails messages that expired (their bytes already given back), with a
    /// rate-limited warning; nothing if there are none.
    fn expired(&mut self, expired: impl IntoIterator<Item = Queued>) {
        let mut count = 0;
        for q in expired {
            fail(&mut self.counters, q, SendError::Expired);
            count += 1;
        }
        if count == 0 {
            return;
        }
        if let Some(held_back) = self.expiry_warning.check(Instant::now()) {
            log::warn!(
                "link {} {} to {}: {count} messages expired before they were written \
                 ({held_back} similar warnings held back)",
                self.env.node,
                self.kind,
                self.peer
            );
        }
        self.release_surplus();
    }

    /// Gives reserve the link no longer needs back to the `ResourceLimits` actor.
    fn release_surplus(&mut self) {
        if let Some(grant) = self.queue.surplus() {
            self.release(grant);
        }
    }

    fn release(&self, grant: Grant<NodeId>) {
        self.env.limits.do_send(Release {
            direction: Direction::Send,
            grant,
        });
    }

    fn write_done(
        &mut self,
        generation: u64,
        writer: OwnedWriteHalf,
        written: BytesMut,
        result: std::io::Result<()>,
        ctx: &mut Context<Self>,
    ) {
        if generation != self.generation {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if let Err(e) = result {
            self.disconnect(DisconnectReason::Io(e.kind()), ctx);
            return;
        }
        conn.writer = Some(writer);
        conn.unflushed = 0;
        if self.queue.is_empty() {
            // Idle: keep no batch-sized buffer alive (memory per idle peer).
            drop(written);
            conn.encoder.release_buffer();
        } else {
            // Busy: the next batch is written into the same buffer, no allocation.
            conn.encoder.recycle(written);
        }
        conn.heartbeat.on_write(Instant::now());
        for e in conn.in_flight.drain(..) {
            let q = self.queue.settle(e).item;
            if q.message.verb < crate::message::RESERVED_VERBS_START {
                self.counters.written += 1;
                self.counters.written_bytes += q.message.size() as u64;
            }
            if let Some(reply) = q.reply {
                reply.complete(Ok(Sent::Written));
            }
        }
        self.release_surplus();
        if self.queue.is_empty() {
            if matches!(self.lifecycle.state(), LinkState::Draining) {
                let actions = self.lifecycle.handle_drained();
                self.apply(actions, ctx);
            }
            return;
        }
        // Yield before the next batch: the other links, connections and actors on this
        // thread run between two batches, so a link that always has a batch ready (a
        // large link under a flood) cannot hold the thread for a whole scheduling
        // budget of writes (tokio allows 128 per poll: 128 MiB of 1 MiB batches) and
        // delay the urgent link's messages by tens of milliseconds.
        let generation = self.generation;
        ctx.spawn(
            tokio::task::yield_now()
                .into_actor(self)
                .map(move |(), link, ctx| {
                    if link.generation == generation {
                        link.pump(ctx);
                    }
                }),
        );
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let mut expired = Vec::new();
        self.queue.expire(wire::epoch_ms(), &mut expired);
        self.expired(expired.into_iter().map(|e| e.item));
        if let Some(grant) = self.queue.idle_spare() {
            self.release(grant);
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match conn.heartbeat.poll(Instant::now()) {
            HeartbeatAction::Idle => {}
            HeartbeatAction::SendPing { timestamp_us } => {
                let ping = Queued {
                    message: Outbound {
                        verb: VERB_PING,
                        flags: Flags::EMPTY,
                        payload: wire::vint_bytes(timestamp_us),
                        params: Vec::new(),
                        expires_at_ms: None,
                    },
                    reply: None,
                };
                let size = ping.message.size();
                // A link so full that a ping does not fit is busy writing: the ping
                // is not needed to keep the connection alive.
                if self.queue.push_front(ping, size).is_ok() {
                    self.pump(ctx);
                }
            }
            HeartbeatAction::TimedOut { silent_for } => {
                self.disconnect(DisconnectReason::read_timeout(silent_for), ctx)
            }
            HeartbeatAction::Unwritable { blocked_for } => {
                self.disconnect(DisconnectReason::write_timeout(blocked_for), ctx)
            }
        }
    }

    fn on_message(&mut self, mut bytes: Bytes) {
        let Ok(envelope) = Envelope::decode(&mut bytes) else {
            return;
        };
        if envelope.verb != VERB_PONG {
            return;
        }
        if let (Ok((timestamp, _)), Some(conn)) = (vint::decode(&envelope.payload), &mut self.conn)
        {
            conn.heartbeat.on_pong(timestamp, Instant::now());
        }
    }
}

fn fail(counters: &mut LinkCounters, q: Queued, error: SendError) {
    if q.message.verb < crate::message::RESERVED_VERBS_START {
        count_failure(counters, &error, q.message.size());
    }
    if let Some(reply) = q.reply {
        reply.complete(Err(error));
    }
}

fn count_failure(counters: &mut LinkCounters, error: &SendError, bytes: usize) {
    *counters.failed.entry(error.kind()).or_default() += 1;
    *counters.failed_bytes.entry(error.kind()).or_default() += bytes as u64;
}

/// A random number from the standard library's per-process hasher keys.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

impl Actor for Link {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // `send` never parks a message outside the mailbox, so messages are queued in
        // the order they were sent; the link bounds its queue itself.
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if matches!(self.lifecycle.state(), LinkState::Closed) {
            return;
        }
        ctx.run_interval(TICK, |link, ctx| link.tick(ctx));
        if matches!(self.lifecycle.state(), LinkState::WaitingToRetry { .. }) {
            let actions = self.lifecycle.handle_retry_timer(Instant::now());
            self.apply(actions, ctx);
        }
    }
}

impl actix::Supervised for Link {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Everything spawned for the old connection is gone with the old context.
        self.connecting = None;
        if let Some(mut conn) = self.conn.take() {
            for e in conn.in_flight.drain(..) {
                let e = self.queue.settle(e);
                fail(&mut self.counters, e.item, SendError::ConnectionLost);
            }
        }
    }
}

impl Link {
    /// Whether the link is failing to connect: it then takes no reserve.
    fn failing_to_connect(&self) -> bool {
        match self.lifecycle.state() {
            LinkState::WaitingToRetry { .. } => true,
            LinkState::Connecting { attempt } => *attempt > 1,
            _ => false,
        }
    }

    /// Takes a message into the queue, or fails it at once; when it needs reserve,
    /// asks for it and decides once the answer is in.
    fn admit(&mut self, q: Queued, ctx: &mut Context<Self>) {
        let size = q.message.size();
        let max = self.env.config.max_message;
        if q.message.payload.len() > max {
            let error = SendError::Oversized {
                size: q.message.payload.len(),
                max,
            };
            fail(&mut self.counters, q, error);
            return;
        }
        let mut expired = Vec::new();
        let expires = q.message.expires_at_ms;
        let result = self
            .queue
            .try_push(q, size, expires, wire::epoch_ms(), &mut expired);
        self.expired(expired.into_iter().map(|e| e.item));
        match result {
            Ok(()) => {
                self.counters.accepted += 1;
                self.counters.accepted_bytes += size as u64;
                if self.conn.is_some() {
                    self.pump(ctx);
                } else {
                    let actions = self.lifecycle.handle_messages_waiting();
                    self.apply(actions, ctx);
                }
            }
            Err(Refused::Expired(q)) => self.expired([q]),
            Err(Refused::NeedReserve(q, need)) => {
                if self.failing_to_connect() {
                    self.overloaded(q, OverloadLevel::Link);
                    return;
                }
                let acquire = Acquire {
                    direction: Direction::Send,
                    endpoint: self.peer,
                    need,
                };
                // Nothing else is processed until the answer: later messages stay
                // behind this one.
                ctx.wait(self.env.limits.send(acquire).into_actor(self).map(
                    move |granted, link, ctx| match granted {
                        Ok(Ok(held)) => {
                            if let Err(grant) = link.queue.add_lease(held.into_grant()) {
                                link.release(grant);
                            }
                            // Enough now: nothing else ran meanwhile.
                            link.admit(q, ctx);
                        }
                        Ok(Err(Shortage::Endpoint { .. })) => {
                            link.overloaded(q, OverloadLevel::Endpoint)
                        }
                        Ok(Err(_)) => link.overloaded(q, OverloadLevel::Global),
                        Err(_) => fail(&mut link.counters, q, SendError::Closed),
                    },
                ));
            }
        }
    }

    fn overloaded(&mut self, q: Queued, level: OverloadLevel) {
        let size = q.message.size();
        fail(&mut self.counters, q, SendError::Overloaded(level));
        if let Some(held_back) = self.overload_warning.check(Instant::now()) {
            log::warn!(
                "link {} {} to {}: overloaded ({level:?} limit), a message of {size} bytes \
                 refused with {} bytes pending ({held_back} similar warnings held back)",
                self.env.node,
                self.kind,
                self.peer,
                self.queue.bytes()
            );
        }
    }
}

impl Handler<Outbound> for Link {
    type Result = OutboundReply;

    fn handle(&mut self, message: Outbound, ctx: &mut Context<Self>) -> Self::Result {
        if matches!(
            self.lifecycle.state(),
            LinkState::Draining | LinkState::Closed
        ) {
            count_failure(&mut self.counters, &SendError::Closed, message.size());
            return OutboundReply::ready(Err(SendError::Closed));
        }
        let (slot, reply) = Slot::new();
        let queued = Queued {
            message,
            reply: Some(slot),
        };
        self.admit(queued, ctx);
        reply
    }
}

impl Handler<CloseLink> for Link {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, close: CloseLink, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if matches!(self.lifecycle.state(), LinkState::Closed) {
            let _ = tx.send(());
        } else {
            self.close_waiters.push(tx);
            let actions = self.lifecycle.handle_close(close.drain, self.waiting());
            self.apply(actions, ctx);
            if close.drain && self.conn.is_some() {
                self.pump(ctx);
            }
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<GetLinkSnapshot> for Link {
    type Result = MessageResult<GetLinkSnapshot>;

    fn handle(&mut self, _: GetLinkSnapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(LinkSnapshot {
            peer: self.peer,
            kind: self.kind,
            state: *self.lifecycle.state(),
            rtt: self.conn.as_ref().and_then(|c| c.heartbeat.rtt()),
            queued: self.queue.len(),
            pending_bytes: self.queue.bytes(),
            in_flight: self.conn.as_ref().map_or(0, |c| c.in_flight.len()),
            unflushed_bytes: self.conn.as_ref().map_or(0, |c| c.unflushed),
            reserve_bytes: self.queue.account().reserve_charged() + self.queue.account().spare(),
            active_connections: usize::from(self.conn.is_some()),
            counters: self.counters.clone(),
        })
    }
}

impl Handler<SetPeerAddress> for Link {
    type Result = ();

    fn handle(&mut self, SetPeerAddress(addr): SetPeerAddress, _: &mut Context<Self>) {
        self.peer_addr = addr;
    }
}

// Only the current connection's stream is ever registered: `drop_conn` cancels it.
impl StreamHandler<Result<Decoded, FrameError>> for Link {
    fn handle(&mut self, item: Result<Decoded, FrameError>, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        conn.heartbeat.on_read(Instant::now());
        match item {
            Ok(Decoded::Frame(frame)) => {
                let mut messages = Vec::new();
                if conn.assembler.push(frame, &mut messages).is_err() {
                    self.disconnect(
                        DisconnectReason::Protocol(ProtocolViolation::MessageMalformed),
                        ctx,
                    );
                    return;
                }
                for m in messages {
                    self.on_message(m);
                }
            }
            Ok(Decoded::Corrupt { .. }) => {}
            Err(FrameError::Io(kind)) => self.disconnect(DisconnectReason::Io(kind), ctx),
            Err(_) => self.disconnect(
                DisconnectReason::Protocol(ProtocolViolation::FrameHeaderCorrupt),
                ctx,
            ),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.disconnect(DisconnectReason::PeerClosed, ctx);
    }
}
