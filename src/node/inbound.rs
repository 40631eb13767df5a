//! The listener and the inbound connection actor.
//!
//! Every accepted socket first runs the acceptor's handshake, with a timeout; a
//! socket that sends garbage, a wrong magic or version, reaches the node itself, or
//! stays silent is refused, counted, and closed. Only then does an [`Inbound`] actor
//! own the connection: it reads frames, turns them back into messages, answers
//! keepalives on the same socket, hands responses to the request tracker and
//! everything else to the handlers.
//!
//! Invariants: a message of an unknown verb or that fails to decode is skipped and
//! counted and the connection stays up (a request among them gets a failure response
//! at once); a header CRC failure or a malformed stream closes the connection; a
//! connection that reads nothing within the heartbeat timeout is closed (the time it
//! spends throttled does not count; meanwhile it sends its peer an unsolicited pong
//! every heartbeat interval, since the peer's pings wait unread).
//!
//! Receive limits (DESIGN.md section 6): each message handed to a handler is charged
//! its bytes, to the connection's capacity and then to reserve leased from the
//! `ResourceLimits` actor, and carries them (a [`Permit`]) until the handler drops
//! it. When a message finds no room, it and everything after it wait in order, the
//! connection stops reading its socket (a [`Gate`]) and asks for reserve, waiting
//! until the reserve can grant it or its own handlers give bytes back. Expired
//! messages are skipped before their payload is decoded and are never charged.
//! Messages larger than the limits could ever hold (or than the maximum message
//! size) reset the connection before anything is allocated for them.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

use std::collections::VecDeque;

use super::dispatch::{Handlers, Permit, Processed, Reply};
use super::gate::Gate;
use super::link::lease_chunk;
use super::link::{random_u64, Outbound};
use super::registry::{InboundConnection, InboundRefused, Registry, Route, SetPeer};
use super::requests::{Complete, RequestTracker};
use super::resource_limits::{AcquireWhenAvailable, Direction, Held, Release, ResourceLimits};
use super::wire::{self, PARAM_REQUEST_ID, VERB_PING, VERB_PONG};
use super::NodeConfig;
use crate::envelope::{Envelope, Flags, MessageAssembler};
use crate::frame::{Decoded, FrameCodec, FrameEncoder, FrameError};
use crate::handshake::{AcceptorConfig, HandshakeError};
use crate::limits::{Account, Charge, Grant, ReserveNeeded};
use crate::message::{FailureReason, RemoteFailure};
use crate::session::{Heartbeat, HeartbeatAction, WarnLimiter};
use crate::{LinkKind, NodeId};

/// Node-wide things every inbound connection needs.
pub(crate) struct InboundEnv {
    pub node: NodeId,
    pub config: Arc<NodeConfig>,
    pub handlers: Handlers,
    pub registry: Addr<Registry>,
    pub tracker: Addr<RequestTracker>,
    pub limits: Addr<ResourceLimits>,
    pub session_id: u64,
    /// The node's bulk thread, where connections of large links run.
    pub bulk: ArbiterHandle,
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

/// Accepts connections until the task is aborted.
pub(crate) async fn listen(listener: TcpListener, env: Arc<InboundEnv>) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let env = env.clone();
                actix::spawn(async move {
                    if let Err(e) = handshake(stream, env.clone()).await {
                        log::info!("{}: connection from {from} refused: {e}", env.node);
                        env.registry.do_send(InboundRefused(refusal_kind(&e)));
                    }
                });
            }
            Err(e) => {
                log::warn!("{}: accept failed: {e}", env.node);
                // Out of descriptors and the like: don't spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

fn refusal_kind(e: &HandshakeError) -> &'static str {
    match e {
        HandshakeError::WrongMagic { .. } => "wrong_magic",
        HandshakeError::IncompatibleVersion { .. } => "incompatible_version",
        HandshakeError::SelfConnect => "self_connect",
        HandshakeError::Timeout => "timeout",
        HandshakeError::Closed | HandshakeError::Truncated { .. } => "closed",
        _ => "malformed",
    }
}

async fn handshake(mut stream: TcpStream, env: Arc<InboundEnv>) -> Result<(), HandshakeError> {
    let _ = stream.set_nodelay(true);
    let config = AcceptorConfig::new(env.node);
    let (hello, established) = super::connect::accept(
        &mut stream,
        config,
        env.session_id,
        env.config.handshake_timeout,
    )
    .await?;
    env.registry.do_send(SetPeer {
        peer: hello.node_id,
        addr: hello.listen_addr,
        only_if_unknown: true,
    });
    let (read, writer) = stream.into_split();
    let mut framed = FramedRead::new(read, FrameCodec::new(established.framing));
    framed
        .read_buffer_mut()
        .extend_from_slice(&established.leftover);
    let now = Instant::now();
    let registry = env.registry.clone();
    let id = random_u64();
    let limits = env.config.receive_limits;
    let bulk = env.bulk.clone();
    let kind = hello.link_kind;
    let make = move |ctx: &mut Context<Inbound>| {
        let gate = Gate::default();
        ctx.add_stream(gate.guard(framed));
        Inbound {
            heartbeat: Heartbeat::read_timeout_only(env.config.heartbeat.timeout, now),
            assembler: MessageAssembler::new(env.max_message()),
            account: Account::new(limits.link_capacity, lease_chunk(limits.endpoint_reserve)),
            gate,
            backlog: VecDeque::new(),
            acquiring: false,
            throttled_since: None,
            messages: Vec::new(),
            expiry_warning: WarnLimiter::new(std::time::Duration::from_secs(1)),
            encoder: FrameEncoder::new(established.framing),
            peer: hello.node_id,
            kind: hello.link_kind,
            env,
            writer: Some(writer),
            counters: InboundCounters::default(),
            id,
        }
    };
    // Large messages are read, checked and assembled on the bulk thread, so that they
    // do not delay the node's other connections and actors.
    let addr = if kind == LinkKind::Large {
        Inbound::start_in_arbiter(&bulk, make)
    } else {
        Inbound::create(make)
    };
    registry.do_send(InboundConnection {
        id,
        addr: Some(addr),
        counters: InboundCounters::default(),
    });
    Ok(())
}

/// Stops an inbound connection (the node is closing).
pub(crate) struct StopInbound;

impl Message for StopInbound {
    type Result = ();
}

impl Handler<StopInbound> for Inbound {
    type Result = ();

    fn handle(&mut self, _: StopInbound, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Counters of one inbound connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundCounters {
    /// Messages received (keepalives aside).
    pub received: u64,
    /// Bytes of the messages received.
    pub received_bytes: u64,
    /// Messages handed to a handler (or, for responses, to the request tracker).
    pub dispatched: u64,
    /// Messages whose handler has finished with them (responses: once handed over).
    pub processed: u64,
    /// Messages skipped because their deadline had passed.
    pub expired: u64,
    /// Messages skipped for an unknown verb.
    pub unknown_verb: u64,
    /// Messages skipped because they did not decode.
    pub decode_failed: u64,
    /// Frames skipped for a payload CRC mismatch.
    pub corrupt_frames: u64,
    /// Times the connection stopped reading for lack of receive limits.
    pub throttled: u64,
    /// Time spent not reading for lack of receive limits, in microseconds.
    pub throttled_us: u64,
}

impl InboundCounters {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &InboundCounters) {
        self.received += other.received;
        self.received_bytes += other.received_bytes;
        self.dispatched += other.dispatched;
        self.processed += other.processed;
        self.expired += other.expired;
        self.unknown_verb += other.unknown_verb;
        self.decode_failed += other.decode_failed;
        self.corrupt_frames += other.corrupt_frames;
        self.throttled += other.throttled;
        self.throttled_us += other.throttled_us;
    }

    /// Messages skipped for an error (unknown verb, failed decode).
    pub fn errors(&self) -> u64 {
        self.unknown_verb + self.decode_failed
    }
}

/// One inbound connection at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSnapshot {
    /// The peer that connected.
    pub peer: NodeId,
    /// Which of its links.
    pub kind: LinkKind,
    /// Counters since the connection was established.
    pub counters: InboundCounters,
    /// Bytes of messages handed to handlers and not yet processed (charged to the
    /// receive limits).
    pub pending_bytes: usize,
    /// Bytes of receive reserve held (charged or leased spare).
    pub reserve_bytes: usize,
    /// Whether the connection has stopped reading for lack of receive limits.
    pub throttled: bool,
}

/// Asks an inbound connection for its [`InboundSnapshot`].
pub(crate) struct GetInboundSnapshot;

impl Message for GetInboundSnapshot {
    type Result = InboundSnapshot;
}

impl Handler<GetInboundSnapshot> for Inbound {
    type Result = MessageResult<GetInboundSnapshot>;

    fn handle(&mut self, _: GetInboundSnapshot, _: &mut Context<Self>) -> Self::Result {
        let mut counters = self.counters.clone();
        if let Some(since) = self.throttled_since {
            counters.throttled_us += micros(since.elapsed());
        }
        MessageResult(InboundSnapshot {
            peer: self.peer,
            kind: self.kind,
            counters,
            pending_bytes: self.account.used(),
            reserve_bytes: self.account.reserve_charged() + self.account.spare(),
            throttled: self.throttled_since.is_some(),
        })
    }
}

impl Handler<Processed> for Inbound {
    type Result = ();

    fn handle(&mut self, m: Processed, ctx: &mut Context<Self>) {
        self.counters.processed += 1;
        let reserve = m.reserve.map(Held::into_grant);
        self.account.discharge(Charge {
            link: m.link,
            reserve,
        });
        if !self.backlog.is_empty() {
            self.drain_backlog(ctx);
        } else if let Some(grant) = self.account.surplus() {
            self.release(grant);
        }
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The actor of one accepted connection; see the module documentation.
pub(crate) struct Inbound {
    env: Arc<InboundEnv>,
    peer: NodeId,
    kind: LinkKind,
    writer: Option<OwnedWriteHalf>,
    encoder: FrameEncoder,
    heartbeat: Heartbeat,
    assembler: MessageAssembler,
    counters: InboundCounters,
    /// Key in the registry's table of inbound connections.
    id: u64,
    /// The receive limits held by the messages handed to handlers.
    account: Account<NodeId>,
    /// Closed while messages wait for receive limits.
    gate: Gate,
    /// Messages waiting for receive limits, in order, with their sizes.
    backlog: VecDeque<(Envelope, usize)>,
    /// A reserve request is out.
    acquiring: bool,
    throttled_since: Option<Instant>,
    expiry_warning: WarnLimiter,
    /// Reused for the messages of each frame.
    messages: Vec<Bytes>,
}

impl Inbound {
    fn on_message(&mut self, mut bytes: Bytes, ctx: &mut Context<Self>) {
        let size = bytes.len();
        let envelope = match Envelope::decode(&mut bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                self.counters.received += 1;
                self.counters.received_bytes += size as u64;
                log::warn!(
                    "{}: undecodable envelope from {}: {e}",
                    self.env.node,
                    self.peer
                );
                self.counters.decode_failed += 1;
                return;
            }
        };
        match envelope.verb {
            VERB_PING => return self.pong(envelope.payload, ctx),
            VERB_PONG => return,
            _ => {}
        }
        // Keepalives aside, every message counts as received.
        self.counters.received += 1;
        self.counters.received_bytes += size as u64;
        if envelope.flags.contains(Flags::RESPONSE) {
            self.response(envelope);
            return;
        }
        if self.backlog.is_empty() {
            self.admit(envelope, size, ctx);
        } else {
            self.backlog.push_back((envelope, size));
        }
    }

    /// Hands a message to its handler if the receive limits have room for it;
    /// otherwise parks it at the head of the backlog and stops reading. Returns
    /// whether it went through.
    fn admit(&mut self, envelope: Envelope, size: usize, ctx: &mut Context<Self>) -> bool {
        // The clock is read only for messages that have a deadline.
        if envelope.expires_at_ms.is_some() && envelope.is_expired(wire::epoch_ms()) {
            self.skip_expired();
            return true;
        }
        match self.account.try_charge(size) {
            Ok(charge) => {
                self.dispatch(envelope, charge, ctx);
                true
            }
            Err(need) => {
                self.backlog.push_front((envelope, size));
                self.throttle(need, ctx);
                false
            }
        }
    }

    fn skip_expired(&mut self) {
        self.counters.expired += 1;
        if let Some(held_back) = self.expiry_warning.check(Instant::now()) {
            log::warn!(
                "{}: a message from {} expired before it was processed ({held_back} \
                 similar warnings held back)",
                self.env.node,
                self.peer
            );
        }
    }

    /// Stops reading and asks for the reserve the head of the backlog needs.
    fn throttle(&mut self, need: ReserveNeeded, ctx: &mut Context<Self>) {
        if self.throttled_since.is_none() {
            self.throttled_since = Some(Instant::now());
            self.counters.throttled += 1;
            self.gate.close();
            log::debug!(
                "{}: {} connection from {} throttled with {} bytes pending",
                self.env.node,
                self.kind,
                self.peer,
                self.account.used()
            );
        }
        if self.acquiring {
            return;
        }
        self.acquiring = true;
        let acquire = AcquireWhenAvailable {
            endpoint: self.peer,
            need,
        };
        ctx.spawn(
            self.env
                .limits
                .send(acquire)
                .into_actor(self)
                .map(|granted, inbound, ctx| {
                    inbound.acquiring = false;
                    match granted {
                        Ok(Ok(held)) => {
                            if let Err(grant) = inbound.account.add_lease(held.into_grant()) {
                                inbound.release(grant);
                            }
                            inbound.drain_backlog(ctx);
                        }
                        // The node is going away.
                        _ => ctx.stop(),
                    }
                }),
        );
    }

    /// Hands the waiting messages to their handlers while the limits have room; once
    /// all are through, reads again.
    fn drain_backlog(&mut self, ctx: &mut Context<Self>) {
        while let Some((envelope, size)) = self.backlog.pop_front() {
            if !self.admit(envelope, size, ctx) {
                return;
            }
        }
        if let Some(since) = self.throttled_since.take() {
            let now = Instant::now();
            self.counters.throttled_us += micros(now.saturating_duration_since(since));
            // The silence was ours: the read timeout starts again.
            self.heartbeat.on_read(now);
            self.gate.open();
        }
        if let Some(grant) = self.account.surplus() {
            self.release(grant);
        }
    }

    fn release(&self, grant: Grant<NodeId>) {
        self.env.limits.do_send(Release {
            direction: Direction::Receive,
            grant,
        });
    }

    /// Hands a charged message to its handler (or answers a malformed request).
    fn dispatch(&mut self, envelope: Envelope, charge: Charge<NodeId>, ctx: &mut Context<Self>) {
        let reply = if envelope.flags.contains(Flags::REQUEST) {
            let Some(id) = wire::request_id(&envelope) else {
                self.counters.decode_failed += 1;
                self.account.discharge(charge);
                return;
            };
            Some(responder(
                self.env.registry.clone(),
                self.peer,
                id,
                envelope.verb,
                self.kind == LinkKind::Urgent,
            ))
        } else {
            None
        };
        let permit = Permit {
            link: charge.link,
            reserve: charge
                .reserve
                .map(|g| Held::new(g, Direction::Receive, self.env.limits.clone())),
            inbound: ctx.address(),
        };
        match self.env.handlers.deliver(
            self.peer,
            envelope.verb,
            envelope.payload,
            reply,
            Some(permit),
        ) {
            Ok(()) => self.counters.dispatched += 1,
            Err((error, reply)) => {
                log::warn!(
                    "{}: message from {} skipped: {error}",
                    self.env.node,
                    self.peer
                );
                match error {
                    super::DispatchError::Decode { .. } => self.counters.decode_failed += 1,
                    _ => self.counters.unknown_verb += 1,
                }
                if let Some(reply) = reply {
                    reply(Err(error.failure()));
                }
            }
        }
    }

    fn response(&mut self, envelope: Envelope) {
        let Some(id) = wire::request_id(&envelope) else {
            self.counters.decode_failed += 1;
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
        self.counters.dispatched += 1;
        self.counters.processed += 1;
        self.env.tracker.do_send(Complete { id, result });
    }

    /// Answers a keepalive on this connection, with the same timestamp.
    fn pong(&mut self, timestamp: Bytes, ctx: &mut Context<Self>) {
        let Some(mut writer) = self.writer.take() else {
            return; // a pong is already being written; the peer pings again
        };
        let envelope = Envelope {
            id: 0,
            verb: VERB_PONG,
            flags: Flags::EMPTY,
            created_at_ms: wire::epoch_ms(),
            expires_at_ms: None,
            params: Vec::new(),
            payload: timestamp,
        };
        let mut buf = BytesMut::new();
        if envelope.encode(&mut buf).is_err() {
            self.writer = Some(writer);
            return;
        }
        self.encoder.push(&buf);
        let bytes = self.encoder.take();
        ctx.spawn(
            async move {
                let result = writer.write_all(&bytes).await;
                (writer, result)
            }
            .into_actor(self)
            .map(|(writer, result), inbound, ctx| match result {
                Ok(()) => inbound.writer = Some(writer),
                Err(_) => ctx.stop(),
            }),
        );
    }
}

/// Builds the reply of a request from `peer`: the response (or failure) goes back
/// over this node's own link to the peer, with the request's id; the answer to a
/// request that came over the urgent link goes back over the urgent link.
fn responder(
    registry: Addr<Registry>,
    peer: NodeId,
    id: u64,
    request_verb: u32,
    urgent: bool,
) -> Reply {
    Box::new(move |result| {
        let (verb, flags, payload) = match result {
            Ok((verb, payload)) => (verb, Flags::RESPONSE, payload),
            Err(failure) => {
                let mut buf = BytesMut::new();
                failure.encode(&mut buf);
                (request_verb, Flags::RESPONSE | Flags::FAILURE, buf.freeze())
            }
        };
        registry.do_send(Route {
            peer,
            urgent,
            message: Outbound {
                verb,
                flags,
                payload,
                params: vec![(PARAM_REQUEST_ID, wire::vint_bytes(id))],
                expires_at_ms: None,
            },
        });
    })
}

impl Actor for Inbound {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!(
            "{}: inbound {} connection from {} established",
            self.env.node,
            self.kind,
            self.peer
        );
        let every = self
            .env
            .config
            .heartbeat
            .interval
            .max(std::time::Duration::from_millis(10));
        ctx.run_interval(every, |inbound, ctx| {
            if inbound.throttled_since.is_some() {
                // Not reading on purpose, so the sender's pings wait unread behind
                // its data: tell it that this end is alive (an unsolicited pong it
                // cannot match still counts as something read), or its read timeout
                // would reset a slow but healthy connection.
                inbound.pong(wire::vint_bytes(u64::MAX), ctx);
                return;
            }
            if let Some(grant) = inbound.account.idle_spare() {
                inbound.release(grant);
            }
            if let HeartbeatAction::TimedOut { silent_for } = inbound.heartbeat.poll(Instant::now())
            {
                log::warn!(
                    "{}: inbound connection from {} silent for {silent_for:?}: closing",
                    inbound.env.node,
                    inbound.peer
                );
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Messages still with their handlers keep their own bytes until processed.
        if let Some(grant) = self.account.take_spare() {
            self.release(grant);
        }
        if let Some(since) = self.throttled_since.take() {
            self.counters.throttled_us += micros(since.elapsed());
        }
        self.env.registry.do_send(InboundConnection {
            id: self.id,
            addr: None,
            counters: self.counters.clone(),
        });
        log::info!(
            "{}: inbound {} connection from {} closed ({:?})",
            self.env.node,
            self.kind,
            self.peer,
            self.counters
        );
    }
}

impl StreamHandler<Result<Decoded, FrameError>> for Inbound {
    fn handle(&mut self, item: Result<Decoded, FrameError>, ctx: &mut Context<Self>) {
        self.heartbeat.on_read(Instant::now());
        match item {
            Ok(Decoded::Frame(frame)) => {
                // One vector for the messages of every frame: no allocation per frame.
                let mut messages = std::mem::take(&mut self.messages);
                let result = self.assembler.push(frame, &mut messages);
                for m in messages.drain(..) {
                    self.on_message(m, ctx);
                }
                self.messages = messages;
                if let Err(e) = result {
                    log::warn!(
                        "{}: stream from {} malformed: {e}",
                        self.env.node,
                        self.peer
                    );
                    ctx.stop();
                }
            }
            Ok(Decoded::Corrupt {
                payload_len,
                uncompressed_len,
                self_contained,
                ..
            }) => {
                self.counters.corrupt_frames += 1;
                let lost = if uncompressed_len > 0 {
                    uncompressed_len
                } else {
                    payload_len
                };
                if let Err(e) = self.assembler.corrupt_frame(lost, self_contained) {
                    log::warn!(
                        "{}: stream from {} unrecoverable: {e}",
                        self.env.node,
                        self.peer
                    );
                    ctx.stop();
                }
            }
            Err(e) => {
                log::warn!("{}: stream from {} failed: {e}", self.env.node, self.peer);
                ctx.stop();
            }
        }
    }
}

/// A fresh random session id for a node.
pub(crate) fn new_session_id() -> u64 {
    random_u64() | 1
}
