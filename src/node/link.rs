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

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;

use super::connect::dial;
use super::outcome::{SendError, Sent};
use super::registry::LinkReport;
use super::requests::PeerLinkClosed;
use super::requests::RequestTracker;
use super::wire::{self, VERB_PING, VERB_PONG};
use super::NodeConfig;
use crate::envelope::{Envelope, Flags, MessageAssembler};
use crate::frame::{Decoded, FrameCodec, FrameEncoder, FrameError};
use crate::handshake::{Established, Hello};
use crate::session::{
    Backoff, DisconnectReason, Heartbeat, HeartbeatAction, Lifecycle, LifecycleAction, LinkState,
    ProtocolViolation,
};
use crate::{vint, LinkKind, NodeId};

/// Most bytes of frames put into one write.
const BATCH_BYTES: usize = 1 << 20;
/// Messages a link's mailbox holds before `send` parks further ones: effectively
/// unbounded (actix's own limit is `usize::MAX >> 1`, less its senders), because the
/// link takes messages out at once and bounds its queue in bytes itself.
const MAILBOX_CAPACITY: usize = 1 << 40;
/// How often a link looks at its heartbeat.
const TICK: Duration = Duration::from_millis(100);

/// A message for a link's outbound queue: an envelope's fields without its id (the
/// link numbers what it sends). Answered with the message's outcome.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The verb of the message type.
    pub verb: u32,
    /// Request / response flags.
    pub flags: Flags,
    /// The encoded message.
    pub payload: Bytes,
    /// Envelope parameters.
    pub params: Vec<(u32, Bytes)>,
    /// When the message expires (ms since the UNIX epoch), if ever.
    pub expires_at_ms: Option<u64>,
}

impl actix::Message for Outbound {
    type Result = Result<Sent, SendError>;
}

/// Closes a link: with `drain`, what is queued is delivered first; without, it fails
/// with [`SendError::Closed`]. Resolves once the link is closed.
#[derive(Debug, Clone, Copy)]
pub struct CloseLink {
    /// Deliver what is queued before closing.
    pub drain: bool,
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

/// Counters of one link since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Messages taken into the queue.
    pub accepted: u64,
    /// Messages written to a connection.
    pub written: u64,
    /// Payload bytes of the messages written.
    pub written_bytes: u64,
    /// Messages that failed, by [`SendError::kind`].
    pub failed: BTreeMap<&'static str, u64>,
    /// Connection attempts.
    pub connection_attempts: u64,
    /// Connections established.
    pub connections: u64,
}

/// A link's state and counters at one moment.
#[derive(Debug, Clone)]
pub struct LinkSnapshot {
    /// The peer.
    pub peer: NodeId,
    /// Which of the peer's links.
    pub kind: LinkKind,
    /// Lifecycle state.
    pub state: LinkState,
    /// The last keepalive round-trip time.
    pub rtt: Option<Duration>,
    /// Messages waiting to be written.
    pub queued: usize,
    /// Bytes handed to the socket in the write still in flight.
    pub unflushed_bytes: usize,
    /// Counters.
    pub counters: LinkCounters,
}

/// Node-wide things every link needs.
pub(crate) struct LinkEnv {
    pub node: NodeId,
    pub listen: SocketAddr,
    pub config: Arc<NodeConfig>,
    pub reports: Recipient<LinkReport>,
    pub tracker: Addr<RequestTracker>,
}

struct Queued {
    message: Outbound,
    reply: Option<oneshot::Sender<Result<Sent, SendError>>>,
}

struct Conn {
    writer: Option<OwnedWriteHalf>,
    encoder: FrameEncoder,
    in_flight: Vec<Queued>,
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
    queue: VecDeque<Queued>,
    next_seq: u64,
    lifecycle: Lifecycle,
    conn: Option<Conn>,
    /// Bumped for every connection; results of an older one are ignored.
    generation: u64,
    connecting: Option<SpawnHandle>,
    counters: LinkCounters,
    close_waiters: Vec<oneshot::Sender<()>>,
    scratch: BytesMut,
}

impl Link {
    pub(crate) fn new(env: Arc<LinkEnv>, peer: NodeId, kind: LinkKind, addr: SocketAddr) -> Self {
        let seed = random_u64();
        Link {
            lifecycle: Lifecycle::new(Backoff::new(env.config.backoff, seed)),
            env,
            peer,
            kind,
            peer_addr: addr,
            session_id: random_u64() | 1,
            origin: Instant::now(),
            queue: VecDeque::new(),
            next_seq: 1,
            conn: None,
            generation: 0,
            connecting: None,
            counters: LinkCounters::default(),
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
                    for q in self.queue.drain(..) {
                        fail(&mut self.counters, q, SendError::Closed);
                    }
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
            self.env.reports.do_send(LinkReport {
                peer: self.peer,
                kind: self.kind,
                event,
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
            for q in conn.in_flight.drain(..) {
                fail(&mut self.counters, q, SendError::ConnectionLost);
            }
            self.queue.retain(|q| q.message.verb != VERB_PING);
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
        for q in self.queue.drain(..) {
            fail(&mut self.counters, q, SendError::Closed);
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
        while let Some(mut q) = self.queue.pop_front() {
            let envelope = Envelope {
                id: self.next_seq,
                verb: q.message.verb,
                flags: q.message.flags,
                created_at_ms: wire::epoch_ms(),
                expires_at_ms: q.message.expires_at_ms,
                params: std::mem::take(&mut q.message.params),
                payload: q.message.payload.clone(),
            };
            self.scratch.clear();
            if let Err(e) = envelope.encode(&mut self.scratch) {
                fail(&mut self.counters, q, SendError::Envelope(e));
                continue;
            }
            self.next_seq += 1;
            conn.encoder.push(&self.scratch);
            conn.in_flight.push(q);
            if conn.encoder.buffered_len() >= BATCH_BYTES {
                break;
            }
        }
        if conn.in_flight.is_empty() {
            return;
        }
        let bytes = conn.encoder.take().freeze();
        conn.unflushed = bytes.len();
        let Some(mut writer) = conn.writer.take() else {
            return;
        };
        let generation = self.generation;
        let write = async move {
            let result = writer.write_all(&bytes).await;
            (writer, result)
        };
        ctx.spawn(
            write
                .into_actor(self)
                .map(move |(writer, result), link, ctx| {
                    link.write_done(generation, writer, result, ctx)
                }),
        );
    }

    fn write_done(
        &mut self,
        generation: u64,
        writer: OwnedWriteHalf,
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
        conn.heartbeat.on_write(Instant::now());
        for q in conn.in_flight.drain(..) {
            if q.message.verb < crate::message::RESERVED_VERBS_START {
                self.counters.written += 1;
                self.counters.written_bytes += q.message.payload.len() as u64;
            }
            if let Some(reply) = q.reply {
                let _ = reply.send(Ok(Sent::Written));
            }
        }
        if self.queue.is_empty() && matches!(self.lifecycle.state(), LinkState::Draining) {
            let actions = self.lifecycle.handle_drained();
            self.apply(actions, ctx);
            return;
        }
        self.pump(ctx);
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match conn.heartbeat.poll(Instant::now()) {
            HeartbeatAction::Idle => {}
            HeartbeatAction::SendPing { timestamp_us } => {
                self.queue.push_front(Queued {
                    message: Outbound {
                        verb: VERB_PING,
                        flags: Flags::EMPTY,
                        payload: wire::vint_bytes(timestamp_us),
                        params: Vec::new(),
                        expires_at_ms: None,
                    },
                    reply: None,
                });
                self.pump(ctx);
            }
            HeartbeatAction::TimedOut { silent_for } => self.disconnect(
                DisconnectReason::ReadTimeout {
                    silent_for_ms: silent_for.as_millis() as u64,
                },
                ctx,
            ),
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
        *counters.failed.entry(error.kind()).or_default() += 1;
    }
    if let Some(reply) = q.reply {
        let _ = reply.send(Err(error));
    }
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
            for q in conn.in_flight.drain(..) {
                fail(&mut self.counters, q, SendError::ConnectionLost);
            }
        }
    }
}

impl Handler<Outbound> for Link {
    type Result = ResponseFuture<Result<Sent, SendError>>;

    fn handle(&mut self, message: Outbound, ctx: &mut Context<Self>) -> Self::Result {
        if matches!(
            self.lifecycle.state(),
            LinkState::Draining | LinkState::Closed
        ) {
            *self
                .counters
                .failed
                .entry(SendError::Closed.kind())
                .or_default() += 1;
            return Box::pin(async { Err(SendError::Closed) });
        }
        let (tx, rx) = oneshot::channel();
        self.counters.accepted += 1;
        self.queue.push_back(Queued {
            message,
            reply: Some(tx),
        });
        if self.conn.is_some() {
            self.pump(ctx);
        } else {
            let actions = self.lifecycle.handle_messages_waiting();
            self.apply(actions, ctx);
        }
        Box::pin(async move { rx.await.unwrap_or(Err(SendError::Closed)) })
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
            unflushed_bytes: self.conn.as_ref().map_or(0, |c| c.unflushed),
            counters: self.counters.clone(),
        })
    }
}

/// Changes the address the link connects to; queued messages go to the new address,
/// what is being written to the old one finishes there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetPeerAddress(pub SocketAddr);

impl actix::Message for SetPeerAddress {
    type Result = ();
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
