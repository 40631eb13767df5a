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
//! connection that reads nothing within the heartbeat timeout is closed.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

use super::dispatch::{Handlers, Reply};
use super::link::{random_u64, Outbound};
use super::registry::{InboundConnection, InboundRefused, Registry, Route, SetPeer};
use super::requests::{Complete, RequestTracker};
use super::wire::{self, PARAM_REQUEST_ID, VERB_PING, VERB_PONG};
use super::NodeConfig;
use crate::envelope::{Envelope, Flags, MessageAssembler};
use crate::frame::{Decoded, FrameCodec, FrameEncoder, FrameError};
use crate::handshake::{AcceptorConfig, HandshakeError};
use crate::message::{FailureReason, RemoteFailure};
use crate::session::{Heartbeat, HeartbeatAction};
use crate::{LinkKind, NodeId};

/// Node-wide things every inbound connection needs.
pub(crate) struct InboundEnv {
    pub node: NodeId,
    pub config: Arc<NodeConfig>,
    pub handlers: Handlers,
    pub registry: Addr<Registry>,
    pub tracker: Addr<RequestTracker>,
    pub session_id: u64,
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
    let addr = Inbound::create(move |ctx| {
        ctx.add_stream(framed);
        Inbound {
            heartbeat: Heartbeat::read_timeout_only(env.config.heartbeat.timeout, now),
            assembler: MessageAssembler::new(env.config.max_message),
            encoder: FrameEncoder::new(established.framing),
            peer: hello.node_id,
            kind: hello.link_kind,
            env,
            writer: Some(writer),
            counters: InboundCounters::default(),
            id,
        }
    });
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
    /// Messages received.
    pub received: u64,
    /// Messages handed to a handler (or, for responses, to the request tracker).
    pub dispatched: u64,
    /// Messages skipped for an unknown verb.
    pub unknown_verb: u64,
    /// Messages skipped because they did not decode.
    pub decode_failed: u64,
    /// Frames skipped for a payload CRC mismatch.
    pub corrupt_frames: u64,
}

impl InboundCounters {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &InboundCounters) {
        self.received += other.received;
        self.dispatched += other.dispatched;
        self.unknown_verb += other.unknown_verb;
        self.decode_failed += other.decode_failed;
        self.corrupt_frames += other.corrupt_frames;
    }
}

/// Asks an inbound connection for its counters.
pub(crate) struct GetInboundCounters;

impl Message for GetInboundCounters {
    type Result = InboundCounters;
}

impl Handler<GetInboundCounters> for Inbound {
    type Result = MessageResult<GetInboundCounters>;

    fn handle(&mut self, _: GetInboundCounters, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.counters.clone())
    }
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
}

impl Inbound {
    fn on_message(&mut self, mut bytes: Bytes, ctx: &mut Context<Self>) {
        self.counters.received += 1;
        let envelope = match Envelope::decode(&mut bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
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
        if envelope.flags.contains(Flags::RESPONSE) {
            self.response(envelope);
            return;
        }
        let reply = if envelope.flags.contains(Flags::REQUEST) {
            let Some(id) = wire::request_id(&envelope) else {
                self.counters.decode_failed += 1;
                return;
            };
            Some(responder(
                self.env.registry.clone(),
                self.peer,
                id,
                envelope.verb,
            ))
        } else {
            None
        };
        match self
            .env
            .handlers
            .deliver(self.peer, envelope.verb, envelope.payload, reply)
        {
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
/// over this node's own link to the peer, with the request's id.
fn responder(registry: Addr<Registry>, peer: NodeId, id: u64, request_verb: u32) -> Reply {
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
                let mut messages = Vec::new();
                let result = self.assembler.push(frame, &mut messages);
                for m in messages {
                    self.on_message(m, ctx);
                }
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
