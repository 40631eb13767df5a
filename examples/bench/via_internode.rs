//! The internode implementations: the full stack as an application uses it.
//!
//! A message is one of the [`messages`](crate::messages) types: by default
//! ([`Encoding::Serde`]: `internode`, `internode-lossy`, `internode-tls`) a
//! `#[derive(Serialize, Deserialize)]` type declared with `internode::message!` /
//! `internode::request!`, as users write them; with [`Encoding::Hand`]
//! (`internode-hand`) the same body with a hand-written `Message` impl (no serde, the
//! baselines' exact payload); `internode-batch` sends the serde messages of the
//! one-way workload through `Peer::send_many`. It goes `Peer::send` (or `Peer::request`) -> the credit
//! line -> the link actor -> envelope and CRC frames -> TCP -> the inbound
//! connection actor -> decode -> the handler actor, with the node's default
//! configuration (CRC framing, default limits) except for the link policy and TLS:
//! `internode`, `internode-hand` and `internode-batch` keep the default (every link kind lossless, plain
//! TCP), `internode-lossy` makes every link kind lossy on both nodes, `internode-tls`
//! gives both nodes a [`TlsConfig`](internode::node::TlsConfig) (rustls, TLS 1.3,
//! mutual; certificates of [`crate::tls`]) and keeps lossless links and CRC framing.
//! Every server node handles both message sets (they have their own verbs).
//!
//! - One-way: the sender keeps a window of sends outstanding (futures of
//!   `Peer::send`, awaited in order, about 4 MiB of messages, at most 8192), so the
//!   link always has a queue to batch, and every send must end `Acknowledged`
//!   (lossless) or `Written` (lossy). `internode-batch` sends the same serde
//!   messages through the batch path instead: `Peer::send_many` of about 64 KiB of
//!   messages at a time (1024 of 64 B, 64 of 1 KiB, one of 64 KiB or more), a window
//!   of about 4 MiB of batches outstanding, every message's outcome checked.
//! - Requests: `Peer::request`, one at a time or `n` in flight (`FuturesUnordered`);
//!   the server's handler answers with the request's body.
//! - Urgent: `UrgentPing` requests go over the urgent link while the one-way sender
//!   fills the large link with 1 MiB messages.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use internode::message::Request;
use internode::node::{
    HandlerError, LinkPolicy, Node, NodeBuilder, Outcomes, Peer, Received, Requested, Sent,
};
use internode::{LinkKind, NodeId};

use crate::impls::Served;
use crate::messages::hand_msgs::Hand;
use crate::messages::serde_msgs::Serde;
use crate::messages::{Body, Carrier, MessageSet};
use crate::payload::{self, Sink};
use crate::BenchError;

/// The sending node's id.
const CLIENT_ID: NodeId = NodeId(1);
/// The id of a server process's first node (the idle-memory server has many).
const FIRST_SERVER_ID: u64 = 1001;
/// Bytes of one-way messages a sender keeps outstanding.
const WINDOW_BYTES: usize = 4 << 20;
/// Bytes of messages per batch of the batch path (`internode-batch`).
const BATCH_BYTES: usize = 64 << 10;

fn server_id(instance: usize) -> NodeId {
    NodeId(FIRST_SERVER_ID + instance as u64)
}

/// The ids of the nodes of a run whose receiving processes start up to `servers`
/// server nodes: the sending node's and theirs (those `internode-tls` needs
/// certificates for).
pub fn node_ids(servers: usize) -> impl Iterator<Item = NodeId> {
    std::iter::once(CLIENT_ID).chain((0..servers).map(server_id))
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The server's handler of every message type of both sets: one-way messages go to
/// the sink, requests are answered with their body.
struct Handler {
    sink: Rc<Sink>,
}

impl Actor for Handler {
    type Context = Context<Self>;
}

impl<M: Carrier> actix::Handler<Received<M>> for Handler {
    type Result = ();

    fn handle(&mut self, m: Received<M>, _: &mut Context<Self>) {
        let body = m.message.body();
        self.sink.record(Some(body.seq), body.len());
    }
}

impl<R> actix::Handler<Requested<R>> for Handler
where
    R: Carrier + Request,
    R::Response: Carrier,
{
    type Result = Result<R::Response, HandlerError>;

    fn handle(&mut self, m: Requested<R>, _: &mut Context<Self>) -> Self::Result {
        Ok(R::Response::wrap(m.message.into_body()))
    }
}

/// Registers `handler` for every message type of the set `S` on `node`.
fn register<S: MessageSet>(node: &Node, handler: &Addr<Handler>) -> Result<(), BenchError> {
    node.handle::<S::Blob>(handler.clone().recipient())
        .map_err(failed)?;
    node.handle::<S::UrgentBlob>(handler.clone().recipient())
        .map_err(failed)?;
    node.handle_requests::<S::Ping>(handler.clone().recipient())
        .map_err(failed)?;
    node.handle_requests::<S::UrgentPing>(handler.clone().recipient())
        .map_err(failed)
}

fn failed(what: impl std::fmt::Display) -> BenchError {
    BenchError::Failed(format!("internode: {what}"))
}

/// How both nodes of an internode implementation are configured.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// The policy of every link kind.
    pub policy: LinkPolicy,
    /// TLS on every connection, with this run's certificates.
    pub tls: bool,
    /// How the client's messages are encoded (the server handles both).
    pub encoding: Encoding,
    /// The client sends one-way messages in batches (`Peer::send_many`).
    pub batched: bool,
}

/// How the client's messages are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Serde types declared with `internode::message!` / `internode::request!`.
    Serde,
    /// A hand-written `Message` impl.
    Hand,
}

/// Node `id`, set up as `setup` says.
fn builder(id: NodeId, setup: Setup) -> Result<NodeBuilder, BenchError> {
    let builder = LinkKind::ALL
        .into_iter()
        .fold(Node::builder(id, localhost(0)), |b, kind| {
            b.link_policy(kind, setup.policy)
        });
    Ok(if setup.tls {
        builder.tls(crate::tls::config(id)?)
    } else {
        builder
    })
}

/// The outcome every send of a link under `policy` must end with.
fn outcome(policy: LinkPolicy) -> Sent {
    match policy {
        LinkPolicy::Lossless => Sent::Acknowledged,
        LinkPolicy::Lossy => Sent::Written,
    }
}

/// Starts server node number `instance` on a free port of 127.0.0.1, set up as
/// `setup` says.
pub async fn serve(sink: Rc<Sink>, instance: usize, setup: Setup) -> Result<Served, BenchError> {
    let node = builder(server_id(instance), setup)?
        .start()
        .await
        .map_err(failed)?;
    let handler = Handler { sink }.start();
    register::<Serde>(&node, &handler)?;
    register::<Hand>(&node, &handler)?;
    Ok(Served {
        port: node.local_addr().port(),
        _alive: Box::new(node),
    })
}

/// The number of one-way sends of `size` bytes kept outstanding.
fn window(size: usize) -> usize {
    (WINDOW_BYTES / size).clamp(2, 8192)
}

/// `Err` unless a send ended `expected`.
fn sent(
    outcome: Result<Sent, internode::node::SendError>,
    expected: Sent,
) -> Result<(), BenchError> {
    match outcome {
        Ok(s) if s == expected => Ok(()),
        other => Err(failed(format!(
            "a send ended {other:?}, expected Ok({expected:?})"
        ))),
    }
}

/// The sending node and its handle on the server node.
pub struct Client {
    node: Node,
    peer: Peer,
    /// What every send must end with.
    expected: Sent,
    encoding: Encoding,
    batched: bool,
}

impl Client {
    /// Starts the sending node, set up as `setup` says; the links to the server
    /// open on first use.
    pub async fn start(port: u16, setup: Setup) -> Result<Client, BenchError> {
        let node = builder(CLIENT_ID, setup)?.start().await.map_err(failed)?;
        node.add_peer(server_id(0), localhost(port)).await;
        let peer = node.peer(server_id(0));
        // The links found and the first credit in, before anything is measured.
        peer.ready().await.map_err(failed)?;
        Ok(Client {
            node,
            peer,
            expected: outcome(setup.policy),
            encoding: setup.encoding,
            batched: setup.batched,
        })
    }

    /// Sends `size`-byte messages until `until`, a window outstanding; returns how
    /// many were sent (all of them, acknowledged or written).
    pub async fn oneway(
        &self,
        size: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<u64, BenchError> {
        let peer = self.peer.clone();
        match self.encoding {
            Encoding::Serde if self.batched => {
                send_batches::<Serde>(peer, self.expected, size, until, first_seq).await
            }
            Encoding::Hand if self.batched => {
                send_batches::<Hand>(peer, self.expected, size, until, first_seq).await
            }
            Encoding::Serde => {
                send_window::<Serde>(peer, self.expected, size, until, first_seq).await
            }
            Encoding::Hand => {
                send_window::<Hand>(peer, self.expected, size, until, first_seq).await
            }
        }
    }

    /// One request of `size` bytes at a time until `until`; the round-trip times.
    pub async fn rr(
        &self,
        size: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<Vec<Duration>, BenchError> {
        match self.encoding {
            Encoding::Serde => {
                ping_loop::<<Serde as MessageSet>::Ping>(&self.peer, size, until, first_seq).await
            }
            Encoding::Hand => {
                ping_loop::<<Hand as MessageSet>::Ping>(&self.peer, size, until, first_seq).await
            }
        }
    }

    /// `outstanding` requests of `size` bytes in flight until `until`; returns how
    /// many were answered.
    pub async fn rr_outstanding(
        &self,
        size: usize,
        outstanding: usize,
        until: Instant,
        first_seq: u64,
    ) -> Result<u64, BenchError> {
        match self.encoding {
            Encoding::Serde => {
                in_flight::<<Serde as MessageSet>::Ping>(
                    &self.peer,
                    size,
                    outstanding,
                    until,
                    first_seq,
                )
                .await
            }
            Encoding::Hand => {
                in_flight::<<Hand as MessageSet>::Ping>(
                    &self.peer,
                    size,
                    outstanding,
                    until,
                    first_seq,
                )
                .await
            }
        }
    }

    /// Urgent requests of `size` bytes, one at a time, while 1 MiB messages fill the
    /// large link, until `until`. Returns the urgent round-trip times and how many
    /// large messages were written (numbered from `flood_first_seq`).
    pub async fn urgent(
        &self,
        size: usize,
        flood_size: usize,
        until: Instant,
        flood_first_seq: u64,
        ping_first_seq: u64,
    ) -> Result<(Vec<Duration>, u64), BenchError> {
        match self.encoding {
            Encoding::Serde => {
                self.urgent_of::<Serde>(size, flood_size, until, flood_first_seq, ping_first_seq)
                    .await
            }
            Encoding::Hand => {
                self.urgent_of::<Hand>(size, flood_size, until, flood_first_seq, ping_first_seq)
                    .await
            }
        }
    }

    async fn urgent_of<S: MessageSet>(
        &self,
        size: usize,
        flood_size: usize,
        until: Instant,
        flood_first_seq: u64,
        ping_first_seq: u64,
    ) -> Result<(Vec<Duration>, u64), BenchError> {
        // The flood is a task of its own, as another part of an application would be.
        let flood = actix::spawn(send_window::<S>(
            self.peer.clone(),
            self.expected,
            flood_size,
            until,
            flood_first_seq,
        ));
        let rtts = ping_loop::<S::UrgentPing>(&self.peer, size, until, ping_first_seq).await;
        let flooded = flood
            .await
            .map_err(|e| failed(format!("the flood task failed: {e}")))?;
        Ok((rtts?, flooded?))
    }

    /// The sending node (to shut it down).
    pub fn node(&self) -> &Node {
        &self.node
    }
}

/// Requests of type `R` of `size` bytes to `peer`, one at a time until `until`; the
/// round-trip times.
async fn ping_loop<R>(
    peer: &Peer,
    size: usize,
    until: Instant,
    first_seq: u64,
) -> Result<Vec<Duration>, BenchError>
where
    R: Carrier + Request,
    R::Response: Carrier,
{
    let filler = payload::filler(size);
    let mut rtts = Vec::new();
    let mut seq = first_seq;
    while Instant::now() < until {
        let started = Instant::now();
        let request = R::wrap(Body {
            seq,
            filler: filler.clone(),
        });
        let response = peer.request(request).await.map_err(failed)?;
        rtts.push(started.elapsed());
        check_response(seq, size, response.body())?;
        seq += 1;
    }
    Ok(rtts)
}

/// `outstanding` requests of type `R` of `size` bytes in flight to `peer` until
/// `until`; returns how many were answered.
async fn in_flight<R>(
    peer: &Peer,
    size: usize,
    outstanding: usize,
    until: Instant,
    first_seq: u64,
) -> Result<u64, BenchError>
where
    R: Carrier + Request,
    R::Response: Carrier,
{
    let filler = payload::filler(size);
    let request = |seq: u64| {
        let ping = R::wrap(Body {
            seq,
            filler: filler.clone(),
        });
        let response = peer.request(ping);
        async move { (seq, response.await) }
    };
    let mut in_flight: FuturesUnordered<_> = (first_seq..first_seq + outstanding as u64)
        .map(request)
        .collect();
    let mut next_seq = first_seq + outstanding as u64;
    while let Some((seq, response)) = in_flight.next().await {
        check_response(seq, size, response.map_err(failed)?.body())?;
        if Instant::now() < until {
            in_flight.push(request(next_seq));
            next_seq += 1;
        }
    }
    Ok(next_seq - first_seq)
}

/// Sends `size`-byte messages of the set `S` to `peer` until `until`, keeping a
/// window of sends outstanding, each of which must end `expected`; returns how many
/// were sent. One `Peer::send` per message.
async fn send_window<S: MessageSet>(
    peer: Peer,
    expected: Sent,
    size: usize,
    until: Instant,
    first_seq: u64,
) -> Result<u64, BenchError> {
    let window = window(size);
    let filler = payload::filler(size);
    let every = payload::between_clock_reads(size);
    let mut outstanding = VecDeque::with_capacity(window);
    let mut seq = first_seq;
    loop {
        while outstanding.len() < window {
            outstanding.push_back(peer.send(S::Blob::wrap(Body {
                seq,
                filler: filler.clone(),
            })));
            seq += 1;
        }
        let oldest = outstanding.pop_front().expect("a full window");
        sent(oldest.await, expected)?;
        if (seq - first_seq) % every == 0 && Instant::now() >= until {
            break;
        }
    }
    for send in outstanding {
        sent(send.await, expected)?;
    }
    Ok(seq - first_seq)
}

/// The batch path: sends `size`-byte messages of the set `S` to `peer` until
/// `until` in batches of [`batch_len`] messages through `Peer::send_many` (one mailbox
/// message and one completion per batch), keeping a window of batches outstanding
/// (about 4 MiB of messages, at least 2 batches), every message of which must end
/// `expected`; returns how many messages were sent.
async fn send_batches<S: MessageSet>(
    peer: Peer,
    expected: Sent,
    size: usize,
    until: Instant,
    first_seq: u64,
) -> Result<u64, BenchError> {
    let per_batch = batch_len(size) as u64;
    let window = (WINDOW_BYTES / (per_batch as usize * size)).max(2);
    let filler = payload::filler(size);
    let mut outstanding = VecDeque::with_capacity(window);
    let mut seq = first_seq;
    loop {
        while outstanding.len() < window {
            let batch = (seq..seq + per_batch).map(|seq| {
                S::Blob::wrap(Body {
                    seq,
                    filler: filler.clone(),
                })
            });
            outstanding.push_back(peer.send_many(batch));
            seq += per_batch;
        }
        let oldest = outstanding.pop_front().expect("a full window");
        all_sent(oldest.await, expected)?;
        if Instant::now() >= until {
            break;
        }
    }
    for batch in outstanding {
        all_sent(batch.await, expected)?;
    }
    Ok(seq - first_seq)
}

/// Messages of `size` bytes per batch of the batch path: about 64 KiB, at most 1024.
pub fn batch_len(size: usize) -> usize {
    (BATCH_BYTES / size).clamp(1, 1024)
}

/// `Err` unless every message of a batch ended `expected`.
fn all_sent(outcomes: Outcomes, expected: Sent) -> Result<(), BenchError> {
    outcomes
        .into_iter()
        .try_for_each(|outcome| sent(outcome, expected))
}

fn check_response(seq: u64, size: usize, response: &Body) -> Result<(), BenchError> {
    if response.seq != seq || response.len() != size {
        return Err(BenchError::Lost(format!(
            "internode: the response to request {seq} ({size} B) carried {} ({} B)",
            response.seq,
            response.len()
        )));
    }
    Ok(())
}

/// The connecting side of the idle-memory workload: one node, and a [`Peer`] handle
/// on every server node it has sent to.
pub struct IdleClient {
    node: Node,
    peers: Vec<Peer>,
    expected: Sent,
}

impl IdleClient {
    pub async fn start(setup: Setup) -> Result<IdleClient, BenchError> {
        let node = builder(CLIENT_ID, setup)?.start().await.map_err(failed)?;
        Ok(IdleClient {
            node,
            peers: Vec::new(),
            expected: outcome(setup.policy),
        })
    }

    /// Adds server node number `instance` on `port` as a peer and sends it one
    /// (serde) message over each of its three links (sizes: urgent, small, large).
    pub async fn add(
        &mut self,
        instance: usize,
        port: u16,
        sizes: [usize; 3],
    ) -> Result<(), BenchError> {
        use crate::messages::serde_msgs::{Blob, UrgentBlob};

        self.node
            .add_peer(server_id(instance), localhost(port))
            .await;
        let peer = self.node.peer(server_id(instance));
        let body = |size| Body {
            seq: 0,
            filler: payload::filler(size),
        };
        let urgent = peer.send(UrgentBlob(body(sizes[0])));
        let small = peer.send(Blob(body(sizes[1])));
        let large = peer.send(Blob(body(sizes[2])));
        sent(urgent.await, self.expected)?;
        sent(small.await, self.expected)?;
        sent(large.await, self.expected)?;
        self.peers.push(peer);
        Ok(())
    }
}
