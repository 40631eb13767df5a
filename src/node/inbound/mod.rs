//! The receiving side: the listener ([`listen`]) and one receiving actor per (peer,
//! link kind), [`Inbound`].
//!
//! The actor is a thin shell around the sans-IO core, [`ReceiveSession`], and outlives
//! the connections its peer opens for the link: each new connection (a well-formed
//! Hello, from the listener) replaces the current one inside the actor, which drops the
//! old socket first and so knows the old connection's final position (its own) before
//! it answers the new Hello with the resume position. This is Ceph's "reuse the
//! existing connection" step done by serializing in one actor: no message can be taken
//! from the old connection after the resume position was computed. The shell owns the
//! current socket and exactly one timer; it hands what the core delivers to the
//! handlers (charged to the receive limits: the messages of one turn, usually those of
//! one frame, share a [`Permit`] that gives their bytes back in one message to the
//! actor when the last of them is dropped; a request with a `Responder` that answers
//! over this node's link back to the peer, see `respond`), completes requests from the
//! node's request table with their responses, writes the acknowledgements and pongs
//! the core asks for on the same socket, stops reading while the core waits for
//! receive limits (a [`Gate`]), gives back
//! the read buffer when the core says the connection went quiet after large frames
//! (a [`ReadTrim`]; an empty buffer of the read capacity goes back at the end of every
//! read batch anyway, [`LeanRead`]), and waits for reserve from the `ResourceLimits`
//! actor.
//!
//! Supervision: receiving actors are started by the registry (on the bulk thread for
//! large links) and live until the node closes; a failed connection does not stop
//! them, it only ends that connection (the peer's link reconnects).
//!
//! Invariants: a message of an unknown verb or that fails to decode is skipped and
//! counted and the connection stays up (a request among them gets a failure response
//! at once); a header CRC failure or a malformed stream closes the connection, and so
//! does a corrupt frame on a lossless link; results of an old connection (a write that
//! completes after it was replaced) are ignored.

mod listen;

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::BytesMut;
use tokio_util::codec::FramedRead;

pub(crate) use listen::listen;

use super::batches::{Batches, Read};
use super::dispatch::{Handlers, Permit, Processed, Snapshot};
use super::gate::Gate;
use super::lean_read::{LeanRead, ReadTrim};
use super::link::{lease_chunk, random_u64};
use super::refusal::RefusalReason;
use super::registry::{InboundConnection, InboundRefused, ReceiverStopped, Registry};
use super::requests::Requests;
use super::resource_limits::{AcquireWhenAvailable, Direction, Held, Release, ResourceLimits};
use super::respond::{Fallback, Responder, ResponseRoutes};
use super::timer::Timer;
use super::transport::{io_reason, write_all_flush, Stream, WriteHalf};
use super::wire;
use super::NodeConfig;
use crate::envelope::{Envelope, Flags};
use crate::frame::{Decoded, FrameCodec, FrameError, DEFAULT_READ_CAPACITY};
use crate::handshake::{AcceptParams, Acceptor, Hello};
use crate::limits::Charge;
use crate::message::{FailureReason, RemoteFailure};
pub use crate::session::InboundCounters;
use crate::session::{
    Arrival, DisconnectReason, ReceiveConfig, ReceiveSession, WarnLimiter, TRIM_AFTER,
};
use crate::{LinkKind, NodeId};

/// Node-wide things every receiving actor needs.
pub(crate) struct InboundEnv {
    pub node: NodeId,
    pub config: Arc<NodeConfig>,
    pub handlers: Handlers,
    pub registry: Addr<Registry>,
    pub requests: Requests,
    pub limits: Addr<ResourceLimits>,
    pub session_id: u64,
}

impl InboundEnv {
    /// The largest message (envelope) a connection accepts: the configured maximum
    /// payload and the largest envelope header, and no more than the receive limits
    /// could ever hold at once.
    fn max_message(&self) -> usize {
        let limits = self.config.receive_limits;
        let reserve = limits.endpoint_reserve.min(limits.global_reserve);
        self.config
            .max_message
            .saturating_add(crate::envelope::MAX_HEADER_LEN)
            .min(limits.link_capacity.saturating_add(reserve))
    }
}

/// A new connection for the link, its Hello read.
pub(crate) struct Attach {
    pub stream: Stream,
    pub acceptor: Acceptor,
    pub hello: Hello,
}

impl Message for Attach {
    type Result = ();
}

/// Stops a receiving actor (the node is closing).
pub(crate) struct StopInbound;

impl Message for StopInbound {
    type Result = ();
}

/// One receiving link at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboundSnapshot {
    /// The peer that connected.
    pub peer: NodeId,
    /// Which of its links.
    pub kind: LinkKind,
    /// Counters since the first connection of the link.
    pub counters: InboundCounters,
    /// Bytes charged to the receive limits: messages handed to handlers and not yet
    /// processed, and the partial message being received (charged frame by frame).
    pub pending_bytes: usize,
    /// Bytes of receive reserve held (charged or leased spare).
    pub reserve_bytes: usize,
    /// Whether the link has stopped reading for lack of receive limits.
    pub throttled: bool,
    /// Whether a connection is open.
    pub connected: bool,
    /// The last sequence number taken from the peer's link.
    pub position: u64,
}

/// Asks a receiving actor for its [`InboundSnapshot`].
pub(crate) struct GetInboundSnapshot;

impl Message for GetInboundSnapshot {
    type Result = InboundSnapshot;
}

/// The receiving actor of one (peer, link kind); see the module documentation.
pub(crate) struct Inbound {
    env: Arc<InboundEnv>,
    peer: NodeId,
    kind: LinkKind,
    core: ReceiveSession<NodeId>,
    /// The handlers, as of this actor's last turn.
    handlers: Snapshot,
    /// The messages of the turn being handed over (kept for its allocation within a
    /// read batch, given back at its end).
    batch: Vec<Envelope>,
    /// Where the answers to the peer's requests go.
    routes: ResponseRoutes,
    /// The current connection's write half, while no write is out.
    writer: Option<WriteHalf>,
    /// The current connection's read stream.
    read: Option<SpawnHandle>,
    /// Bumped for every connection: what an older one reports is ignored.
    generation: u64,
    gate: Gate,
    /// Asks the read stream to give back its read buffer (the core says when).
    read_trim: ReadTrim,
    timer: Timer,
    /// Connections refused and established are logged at most once a second each
    /// (a flood of Hellos costs a few lines, not one per connection).
    refusal_log: WarnLimiter,
    connect_log: WarnLimiter,
    /// Whether the registry was last told this link has a connection (admission).
    reported_open: bool,
}

/// How often an `Inbound` logs a refused, and an established, connection at most.
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Inbound {
    pub(crate) fn new(env: Arc<InboundEnv>, peer: NodeId, kind: LinkKind) -> Self {
        let limits = env.config.receive_limits;
        let heartbeat = env.config.heartbeat;
        let config = ReceiveConfig {
            capacity: limits.link_capacity,
            lease_chunk: lease_chunk(limits.endpoint_reserve),
            max_message: env.max_message(),
            read_timeout: heartbeat.timeout,
            keepalive_interval: heartbeat.interval.max(std::time::Duration::from_millis(10)),
            // An eighth of the link's capacity: the sender, whose capacity is usually
            // the same, never waits for an acknowledgement in a long read batch.
            ack_bytes: (limits.link_capacity / 8).clamp(16 << 10, 1 << 20),
            read_capacity: DEFAULT_READ_CAPACITY,
            trim_after: TRIM_AFTER,
        };
        Inbound {
            core: ReceiveSession::new(config),
            handlers: env.handlers.snapshot(),
            batch: Vec::new(),
            routes: ResponseRoutes::new(peer, kind, Fallback::of(&env.registry)),
            env,
            peer,
            kind,
            writer: None,
            read: None,
            generation: 0,
            gate: Gate::default(),
            read_trim: ReadTrim::default(),
            timer: Timer::default(),
            refusal_log: WarnLimiter::new(LOG_EVERY),
            connect_log: WarnLimiter::new(LOG_EVERY),
            reported_open: false,
        }
    }

    /// Tells the registry when the link's connection opened or closed (it bounds the
    /// established inbound connections).
    fn report_connection(&mut self) {
        if self.core.is_connected() != self.reported_open {
            self.report_connection_now();
        }
    }

    /// Tells the registry whether the link has a connection, changed or not: after
    /// every Hello, for which the registry held a place.
    fn report_connection_now(&mut self) {
        let open = self.core.is_connected();
        self.reported_open = open;
        self.env.registry.do_send(InboundConnection {
            peer: self.peer,
            kind: self.kind,
            open,
        });
    }

    /// A connection refused after its Hello was read: counted by `reason` (see
    /// [`Node::refused_connections`](crate::node::Node::refused_connections)), logged
    /// at most once a second.
    fn refuse(&mut self, reason: RefusalReason, why: &dyn std::fmt::Display) {
        self.env.registry.do_send(InboundRefused(reason));
        if let Some(held_back) = self.refusal_log.check(Instant::now()) {
            log::info!(
                "{}: {} connection from {} refused: {why} ({held_back} more refused on \
                 this link since the last such line)",
                self.env.node,
                self.kind,
                self.peer
            );
        }
    }

    /// Carries out everything the core asks for after an input.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        self.report_connection();
        // Registrations made before this turn apply to what it hands over.
        self.env.handlers.refresh(&mut self.handlers);
        self.hand_over(ctx);
        if self.core.poll_trim() {
            self.read_trim.request();
        }
        if self.core.is_reading() {
            self.gate.open();
        } else {
            self.gate.close();
        }
        if let Some(need) = self.core.poll_acquire() {
            let acquire = AcquireWhenAvailable {
                direction: Direction::Receive,
                endpoint: self.peer,
                need,
            };
            ctx.spawn(self.env.limits.send(acquire).into_actor(self).map(
                |granted, inbound, ctx| match granted {
                    Ok(Ok(held)) => {
                        let leased = inbound.core.handle_lease(held.into_grant(), Instant::now());
                        if let Err(reason) = leased {
                            inbound.drop_connection(ctx, &reason);
                        }
                        inbound.drive(ctx);
                    }
                    // The node is going away.
                    _ => ctx.stop(),
                },
            ));
        }
        while let Some(grant) = self.core.poll_release() {
            self.env.limits.do_send(Release {
                direction: Direction::Receive,
                grant,
            });
        }
        self.transmit(ctx);
        self.arm_timer(ctx);
    }

    fn transmit(&mut self, ctx: &mut Context<Self>) {
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        let Some(bytes) = self.core.poll_transmit(wire::epoch_ms()) else {
            self.writer = Some(writer);
            return;
        };
        let generation = self.generation;
        ctx.spawn(
            async move {
                let result = write_all_flush(&mut writer, &bytes).await;
                (writer, result)
            }
            .into_actor(self)
            .map(move |(writer, result), inbound, ctx| {
                if generation != inbound.generation {
                    return; // the connection was replaced meanwhile
                }
                match result {
                    Ok(()) => {
                        inbound.writer = Some(writer);
                        inbound.core.handle_written();
                    }
                    Err(e) => {
                        inbound.core.handle_disconnected(Instant::now());
                        inbound.drop_connection(ctx, &io_reason(e));
                    }
                }
                inbound.drive(ctx);
            }),
        );
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let next = self.core.poll_timeout();
        self.timer.arm(
            ctx,
            next,
            |inbound| &mut inbound.timer,
            |inbound, ctx| {
                if let Err(reason) = inbound.core.handle_timeout(Instant::now()) {
                    inbound.drop_connection(ctx, &reason);
                }
                inbound.drive(ctx);
            },
        );
    }

    /// Forgets the current connection: its socket closes, its results are ignored.
    fn drop_io(&mut self, ctx: &mut Context<Self>) {
        if let Some(read) = self.read.take() {
            ctx.cancel_future(read);
        }
        self.writer = None;
        self.generation += 1;
    }

    /// The connection failed (the core has already forgotten it).
    fn drop_connection(&mut self, ctx: &mut Context<Self>, reason: &DisconnectReason) {
        log::warn!(
            "{}: inbound {} connection from {} closed: {reason}",
            self.env.node,
            self.kind,
            self.peer
        );
        self.drop_io(ctx);
    }

    /// Hands what the core delivered in this turn to the handlers, all of it under
    /// one shared [`Permit`] (its charges merged), and completes requests with the
    /// responses.
    fn hand_over(&mut self, ctx: &mut Context<Self>) {
        let mut batch = std::mem::take(&mut self.batch);
        let mut charge = Charge::none();
        while let Some(arrival) = self.core.poll_arrival() {
            match arrival {
                Arrival::Deliver {
                    envelope,
                    charge: more,
                } => {
                    if let Err(more) = charge.merge(more) {
                        // Never: one account, one endpoint. Were it to happen, the
                        // messages so far would go under a permit of their own.
                        let so_far = std::mem::replace(&mut charge, more);
                        self.dispatch_batch(&mut batch, so_far, ctx);
                    }
                    batch.push(envelope);
                }
                Arrival::Response { envelope } => self.response(envelope),
            }
        }
        self.dispatch_batch(&mut batch, charge, ctx);
        self.batch = batch;
    }

    /// Hands the messages of `batch` to their handlers under one permit for `charge`,
    /// their bytes together; it comes back (one [`Processed`]) when the last of them
    /// is dropped, or at once if none was handed over.
    fn dispatch_batch(
        &mut self,
        batch: &mut Vec<Envelope>,
        charge: Charge<NodeId>,
        ctx: &mut Context<Self>,
    ) {
        if batch.is_empty() {
            return;
        }
        let reserve = charge
            .reserve
            .map(|g| Held::new(g, Direction::Receive, self.env.limits.clone()));
        let messages = batch.len() as u64;
        let permit = Permit::new(charge.link, reserve, messages, ctx.address());
        for envelope in batch.drain(..) {
            self.dispatch(envelope, &permit);
        }
    }

    /// Hands a charged message to its handler (or answers a malformed request).
    fn dispatch(&mut self, envelope: Envelope, permit: &Permit) {
        let reply = if envelope.flags.contains(Flags::REQUEST) {
            let Some(id) = wire::request_id(&envelope) else {
                // Its bytes go back with the batch.
                self.core.counters_mut().decode_failed += 1;
                return;
            };
            let urgent = self.kind == LinkKind::Urgent;
            let routes = self.routes.current();
            Some(Responder::new(routes, id, envelope.verb, urgent))
        } else {
            None
        };
        match self.handlers.deliver(
            self.peer,
            envelope.verb,
            envelope.payload,
            reply,
            Some(permit.clone()),
        ) {
            Ok(()) => self.core.counters_mut().dispatched += 1,
            Err((error, reply)) => {
                log::warn!(
                    "{}: message from {} skipped: {error}",
                    self.env.node,
                    self.peer
                );
                match error {
                    super::DispatchError::Decode { .. } => {
                        self.core.counters_mut().decode_failed += 1
                    }
                    _ => self.core.counters_mut().unknown_verb += 1,
                }
                if let Some(reply) = reply {
                    reply.send(Err(error.failure()));
                }
            }
        }
    }

    fn response(&mut self, envelope: Envelope) {
        let Some(id) = wire::request_id(&envelope) else {
            self.core.counters_mut().decode_failed += 1;
            return;
        };
        let result = if envelope.flags.contains(Flags::FAILURE) {
            Err(
                RemoteFailure::decode(envelope.payload).unwrap_or_else(|e| RemoteFailure {
                    reason: FailureReason::Unknown(0),
                    detail: format!("undecodable failure response: {e}"),
                }),
            )
        } else {
            Ok(envelope.payload)
        };
        self.env.requests.complete(id, result);
    }
}

impl Inbound {
    /// The counters, with the time throttled so far counted (snapshots and the final
    /// counters agree: the metrics never go backwards when the actor stops).
    fn counters(&self) -> InboundCounters {
        let mut counters = self.core.counters().clone();
        if let Some(since) = self.core.throttled_since() {
            let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
            counters.throttled_us = counters.throttled_us.saturating_add(us);
        }
        counters
    }
}

impl Actor for Inbound {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Messages still with their handlers keep their own bytes until processed.
        if let Some(grant) = self.core.take_spare() {
            self.env.limits.do_send(Release {
                direction: Direction::Receive,
                grant,
            });
        }
        self.env.registry.do_send(ReceiverStopped {
            peer: self.peer,
            kind: self.kind,
            counters: self.counters(),
        });
    }
}

impl Handler<Attach> for Inbound {
    type Result = ();

    fn handle(&mut self, attach: Attach, ctx: &mut Context<Self>) {
        let Attach {
            stream,
            mut acceptor,
            hello,
        } = attach;
        let now = Instant::now();
        let resume = match self.core.handle_hello(
            hello.session_id,
            hello.attempt,
            hello.resume,
            hello.lossless,
            hello.framing,
            now,
        ) {
            Ok(resume) => resume,
            Err(stale) => {
                // Dropping the socket closes it; the initiator tries again.
                self.refuse(RefusalReason::from(&stale), &stale);
                self.report_connection_now();
                return;
            }
        };
        // The old connection (if any) is gone from the core: drop its socket.
        self.drop_io(ctx);
        let params = AcceptParams {
            session_id: self.env.session_id,
            resume,
            ..AcceptParams::default()
        };
        let established = match acceptor.accept(params) {
            Ok(established) => established,
            Err(e) => {
                self.core.handle_disconnected(now);
                self.refuse(RefusalReason::AcceptFailed, &e);
                self.report_connection_now();
                return;
            }
        };
        if let Some(reply) = acceptor.poll_transmit() {
            self.core.handle_handshake_reply(BytesMut::from(&reply[..]));
        }
        if let Some(held_back) = self.connect_log.check(now) {
            log::info!(
                "{}: inbound {} connection from {} established (resume at {resume}; \
                 {held_back} more since the last such line)",
                self.env.node,
                self.kind,
                self.peer
            );
        }
        let (read, writer) = stream.split();
        let mut framed = FramedRead::new(read, FrameCodec::new(established.framing));
        framed
            .read_buffer_mut()
            .extend_from_slice(&established.leftover);
        let framed = LeanRead::new(framed, &self.read_trim);
        let stream = Batches::new(self.gate.guard(framed), self.generation);
        self.read = Some(ctx.add_stream(stream));
        self.writer = Some(writer);
        self.drive(ctx);
    }
}

impl Handler<StopInbound> for Inbound {
    type Result = ();

    fn handle(&mut self, _: StopInbound, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<GetInboundSnapshot> for Inbound {
    type Result = MessageResult<GetInboundSnapshot>;

    fn handle(&mut self, _: GetInboundSnapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(InboundSnapshot {
            peer: self.peer,
            kind: self.kind,
            counters: self.counters(),
            pending_bytes: self.core.pending_bytes(),
            reserve_bytes: self.core.reserve_bytes(),
            throttled: self.core.throttled_since().is_some(),
            connected: self.core.is_connected(),
            position: self.core.position(),
        })
    }
}

impl Handler<Processed> for Inbound {
    type Result = ();

    fn handle(&mut self, m: Processed, ctx: &mut Context<Self>) {
        let reserve = m.reserve.map(Held::into_grant);
        let charge = Charge {
            link: m.link,
            reserve,
        };
        let now = Instant::now();
        if let Err(reason) = self.core.handle_processed_many(charge, m.messages, now) {
            self.drop_connection(ctx, &reason);
        }
        self.drive(ctx);
    }
}

impl StreamHandler<(u64, Read<Result<Decoded, FrameError>>)> for Inbound {
    fn handle(
        &mut self,
        (generation, read): (u64, Read<Result<Decoded, FrameError>>),
        ctx: &mut Context<Self>,
    ) {
        if generation != self.generation {
            return; // the stream of a connection already replaced or dropped
        }
        match read {
            Read::Item(item) => {
                if let Err(reason) = self
                    .core
                    .handle_input(item, Instant::now(), wire::epoch_ms())
                {
                    self.drop_connection(ctx, &reason);
                }
            }
            // The socket has nothing more for now: acknowledge what the batch took.
            Read::Caught => {
                self.core.handle_caught_up();
                self.batch = Vec::new();
            }
            // The peer closed the connection.
            Read::End => {
                self.read = None;
                self.core.handle_disconnected(Instant::now());
                self.drop_io(ctx);
            }
        }
        self.drive(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // `Read::End` said it; actix's default would stop the actor, which outlives
        // its connections.
    }
}

/// A fresh random session id for a node.
pub(crate) fn new_session_id() -> u64 {
    random_u64() | 1
}
