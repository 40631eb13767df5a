//! Nodes: the actor runtime on top of the sans-IO layers.
//!
//! A [`Node`] listens for peers, owns one [`Link`] actor per (peer, [`LinkKind`]) —
//! created on first use, under a supervisor that restarts its connection with
//! exponential backoff — and hands what arrives to the handler the application
//! registered per message type: an actix [`Recipient`] ([`Node::handle`],
//! [`Node::handle_requests`]) or a closure ([`Node::handle_fn`] and the other `_fn`
//! forms).
//!
//! ```no_run
//! # #[cfg(feature = "serde")] mod example {
//! use actix::prelude::*;
//! use internode::node::{Node, Received};
//! use internode::NodeId;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Hello(String);
//! internode::message!(Hello, verb = 1);
//!
//! struct Printer;
//! impl Actor for Printer {
//!     type Context = Context<Self>;
//! }
//! impl Handler<Received<Hello>> for Printer {
//!     type Result = ();
//!     fn handle(&mut self, m: Received<Hello>, _: &mut Context<Self>) {
//!         println!("{} says {}", m.from, m.message.0);
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() {
//!     let a = Node::builder(NodeId(1), "127.0.0.1:0".parse().unwrap()).start().await.unwrap();
//!     let b = Node::builder(NodeId(2), "127.0.0.1:0".parse().unwrap()).start().await.unwrap();
//!     b.handle::<Hello>(Printer.start().recipient()).unwrap();
//!     a.add_peer(NodeId(2), b.local_addr()).await;
//!     a.send(NodeId(2), Hello("hi".into())).await.unwrap();
//! }
//! # }
//! # fn main() {} // `message!` needs the `serde` feature
//! ```

mod address;
mod answer;
mod batches;
mod builder;
mod config;
mod connect;
mod credit;
mod dispatch;
mod failures;
mod gate;
mod handlers;
mod inbound;
mod keepers;
mod lean_read;
mod link;
mod metrics;
mod peer;
mod peer_sink;
pub mod prelude;
mod refusal;
mod registry;
mod requests;
mod resource_limits;
mod respond;
mod supervise;
mod timer;
mod tls;
mod transport;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

pub use crate::outcome::{Outcomes, OverloadLevel, RequestError, SendError, SendErrorKind, Sent};
pub use address::{PeerAddr, PeerAddrError};
pub use builder::{NodeBuilder, StartError, MIN_SECRET_LEN};
pub use config::{AdmissionLimits, ClusterSecret, NodeConfig};
pub use credit::Queued;
use dispatch::DispatchError;
pub use dispatch::{HandlerError, Received, Requested};
pub use failures::FailedMessage;
pub use inbound::{InboundCounters, InboundSnapshot};
pub use link::{
    CloseLink, Deliver, GetLinkSnapshot, Link, LinkCounters, LinkSnapshot, Outbound, OutboundReply,
};
#[cfg(feature = "prometheus-client")]
pub use metrics::prometheus;
pub use metrics::{Metrics, RttHistogram, RTT_BUCKETS, RTT_MAX};
pub use peer::Peer;
pub use peer_sink::PeerSink;
pub use refusal::RefusalReason;
pub use registry::LinkNotice;
pub use resource_limits::{LimitsSnapshot, ReservesSnapshot};
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer};
pub use tls::{TlsConfig, TlsError};

use crate::message::{Message, Request};
pub use crate::session::LinkPolicy;
use crate::{LinkKind, NodeId};
use credit::CreditSizes;
use dispatch::Handlers;
use inbound::InboundEnv;
use peer::PeerLines;
use registry::{
    AllLinks, CloseAll, ClosePeer, CountInbound, GetLink, GetRefused, Registry, SetInboundEnv,
    SetPeer, Subscribe, TotalInbound,
};
use requests::Requests;
use resource_limits::{GetLimits, ResourceLimits};

struct Inner {
    id: NodeId,
    local_addr: SocketAddr,
    config: Arc<NodeConfig>,
    registry: Addr<Registry>,
    requests: Requests,
    limits: Addr<ResourceLimits>,
    handlers: Handlers,
    /// This node's credit lines to each peer it sent to, shared by every handle.
    lines: std::sync::Mutex<HashMap<NodeId, PeerLines>>,
    /// The id of the node's next request (a counter, not a reserve: handed out
    /// without a round trip to an actor).
    request_ids: AtomicU64,
    /// The accept loop, until `close` takes it to end it.
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    bulk: Arbiter,
}

impl Inner {
    fn take_listener(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// A request id no other request of this node has.
    fn next_request_id(&self) -> u64 {
        self.request_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The credit lines to `peer` (made on first use, without their links).
    fn lines(&self, peer: NodeId) -> PeerLines {
        let mut lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lines
            .entry(peer)
            .or_insert_with(|| {
                let sizes = CreditSizes::for_limits(self.config.send_limits);
                peer::peer_lines(peer, &self.registry.clone().recipient(), sizes)
            })
            .clone()
    }
}

impl Drop for Inner {
    /// The last handle is gone: the node closes without drain. The links, the
    /// receiving actors and the registry stop (the registry last, so that nothing
    /// keeps the node's actors alive), and the listener ends, freeing the port.
    fn drop(&mut self) {
        if let Some(listener) = self.take_listener() {
            listener.abort();
        }
        self.registry.do_send(CloseAll {
            drain: false,
            timeout: None,
            then_stop: true,
        });
        self.bulk.stop();
    }
}

/// A running node: the handle an application sends, requests, registers handlers and
/// observes links with. Cheap to clone. [`close`](Node::close) closes it (returning
/// once its port is free); dropping the last clone closes it without drain.
///
/// **Sending from inside an actor's handler.** The futures of [`send`](Node::send),
/// [`request`](Node::request) and the like are `'static` (they borrow neither the node
/// nor the message, and do not keep the node open), so a handler spawns them into its
/// own context and handles the outcome there:
///
/// ```no_run
/// # #[cfg(feature = "serde")] // `message!` needs it
/// # mod example {
/// use actix::prelude::*;
/// use internode::node::Node;
/// use internode::NodeId;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Note(String);
/// # internode::message!(Note, verb = 12);
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Get(u64);
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Value(String);
/// # internode::message!(Get, verb = 13);
/// # internode::message!(Value, verb = 14);
/// # impl internode::message::Request for Get { type Response = Value; }
///
/// struct Cache {
///     node: Node,
///     owner: NodeId,
///     fetched: Vec<String>,
/// }
/// impl Actor for Cache {
///     type Context = Context<Self>;
/// }
///
/// #[derive(Message)]
/// #[rtype(result = "()")]
/// struct Miss(u64);
///
/// impl Handler<Miss> for Cache {
///     type Result = ();
///     fn handle(&mut self, Miss(key): Miss, ctx: &mut Context<Self>) {
///         let note = self.node.send(self.owner, Note(format!("miss {key}")));
///         ctx.spawn(note.into_actor(self).map(|outcome, _, _| {
///             if let Err(e) = outcome {
///                 eprintln!("note not sent: {e}");
///             }
///         }));
///         let fetch = self.node.request(self.owner, Get(key));
///         ctx.spawn(fetch.into_actor(self).map(|answer, act, _| match answer {
///             Ok(Value(v)) => act.fetched.push(v),
///             Err(e) => eprintln!("fetch failed: {e}"),
///         }));
///     }
/// }
/// # }
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.inner.id)
            .field("local_addr", &self.inner.local_addr)
            .finish()
    }
}

impl Node {
    /// A builder with the defaults for a node of this id listening on `listen`
    /// (port 0 picks a free port; see [`local_addr`](Self::local_addr)).
    pub fn builder(id: NodeId, listen: SocketAddr) -> NodeBuilder {
        NodeBuilder::new(NodeConfig::new(id, listen))
    }

    /// Starts a node with this configuration inside the running actix `System`.
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        builder::check(&config)?;
        let listener = builder::bind(config.listen, config.listen_backlog).map_err(|error| {
            StartError::Bind {
                addr: config.listen,
                error,
            }
        })?;
        let local_addr = listener.local_addr().map_err(|error| StartError::Bind {
            addr: config.listen,
            error,
        })?;
        let config = Arc::new(config);
        let requests = Requests::start();
        let limits = ResourceLimits::new(config.send_limits, config.receive_limits).start();
        // The thread of the large links and connections (bulk traffic).
        let bulk = Arbiter::new();
        // What the Hello announces: an unspecified IP only says the port.
        let advertised = config.advertise.unwrap_or(local_addr);
        let registry = Registry::new(
            advertised,
            config.clone(),
            requests.clone(),
            limits.clone(),
            bulk.handle(),
        )
        .start();
        let handlers = Handlers::default();
        let env = Arc::new(InboundEnv {
            node: config.id,
            config: config.clone(),
            handlers: handlers.clone(),
            registry: registry.clone(),
            requests: requests.clone(),
            limits: limits.clone(),
            session_id: inbound::new_session_id(),
        });
        registry.do_send(SetInboundEnv(env.clone()));
        let listener = actix::spawn(inbound::listen(listener, env));
        log::info!("{} listening on {local_addr}", config.id);
        Ok(Node {
            inner: Arc::new(Inner {
                id: config.id,
                local_addr,
                config,
                registry,
                requests,
                limits,
                handlers,
                lines: std::sync::Mutex::default(),
                request_ids: AtomicU64::new(1),
                listener: std::sync::Mutex::new(Some(listener)),
                bulk,
            }),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The address this node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// Sets (or changes) a peer's address: a socket address, or a host name and
    /// port resolved at every connect attempt, so that a peer that comes back on
    /// another IP is found at the next retry ([`PeerAddr`]; `"node-2.db:23001"`
    /// parses into one). Messages queued for the peer go to the new address; those
    /// being written to the old one finish there.
    pub async fn add_peer(&self, id: NodeId, addr: impl Into<PeerAddr>) {
        let _ = self
            .inner
            .registry
            .send(SetPeer {
                peer: id,
                addr: addr.into(),
                only_if_unknown: false,
            })
            .await;
    }

    /// The link of `kind` to `peer`, created on first use: an actor whose mailbox is
    /// the link's outbound queue. It takes typed messages ([`Deliver`], resolving to
    /// the message's outcome; its `Recipient<Deliver<M>>` can be handed to other
    /// actors) and raw ones ([`Outbound`]: a verb and a payload, internode's own
    /// verbs refused). Messages sent to it directly bypass the producers' credit
    /// ([`Peer`]): the link takes them or refuses them (`Overloaded`) when it handles
    /// them, and, as for any actix message, one whose response future was dropped
    /// before the link handled it is skipped. [`Peer::send_on`] chooses a link
    /// within the credit.
    pub async fn link(&self, peer: NodeId, kind: LinkKind) -> Result<Addr<Link>, SendError> {
        self.inner
            .registry
            .send(GetLink { peer, kind })
            .await
            .map_err(|_| SendError::Closed)?
    }

    /// A handle on `peer`, at once: messages sent through it (and through every other
    /// handle on the peer, and [`send`](Self::send) / [`request`](Self::request) to
    /// it) are queued in the order of the calls, within the links' credit, before the
    /// returned futures are awaited; see [`Peer`]. The peer's links are found (and
    /// created) on first use, not here: a peer without a known address gives a handle
    /// whose messages fail [`SendError::UnknownPeer`] until [`add_peer`](Self::add_peer)
    /// gives one; [`Peer::ready`] waits for the links. The handle stays valid across
    /// [`close_peer`](Self::close_peer) (it finds the new links) and fails
    /// [`SendError::Closed`] once the node is closed.
    pub fn peer(&self, peer: NodeId) -> Peer {
        Peer {
            id: peer,
            node: self.clone(),
            lines: (peer != self.inner.id).then(|| self.inner.lines(peer)),
        }
    }

    /// Sends a message to `peer` and resolves with its outcome: written to the
    /// connection, delivered locally (to this node itself), or the reason it failed.
    /// The message is encoded, and queued within credit, when the call is made; the
    /// future borrows neither the node nor the message, so it can be spawned (see
    /// [`Peer`] for an actor's handler that does).
    pub fn send<M: Message>(
        &self,
        peer: NodeId,
        message: M,
    ) -> impl Future<Output = Result<Sent, SendError>> + 'static {
        self.peer(peer).send(message)
    }

    /// [`send`](Self::send) with a deadline: if the message is not written within
    /// `expire_after`, it fails with [`SendError::Expired`] (and is never written).
    pub fn send_expiring<M: Message>(
        &self,
        peer: NodeId,
        message: M,
        expire_after: Duration,
    ) -> impl Future<Output = Result<Sent, SendError>> + 'static {
        self.peer(peer).send_expiring(message, expire_after)
    }

    /// Sends a request to `peer` and resolves with its typed response, a failure the
    /// peer reported, or a timeout after the node's request timeout. Like
    /// [`send`](Self::send), the future is `'static`.
    pub fn request<R: Request>(
        &self,
        peer: NodeId,
        request: R,
    ) -> impl Future<Output = Result<R::Response, RequestError>> + 'static {
        self.peer(peer).request(request)
    }

    /// [`request`](Self::request) with its own timeout.
    pub fn request_with_timeout<R: Request>(
        &self,
        peer: NodeId,
        request: R,
        timeout: Duration,
    ) -> impl Future<Output = Result<R::Response, RequestError>> + 'static {
        self.peer(peer).request_with_timeout(request, timeout)
    }

    /// The deadline (ms since the UNIX epoch) of a message of type `M` sent now: the
    /// send's own, else the type's, else the node's default, if any.
    fn deadline<M: Message>(&self, expire_after: Option<Duration>) -> Option<u64> {
        peer::deadline_ms::<M>(&self.inner.config, expire_after, wire::epoch_ms)
    }

    /// Everything the node measures: every open link's and receiving actor's state,
    /// the counters per peer and link kind since the node started (they never
    /// decrease, across link restarts and [`close_peer`](Self::close_peer)), each
    /// peer's round-trip times, refused connections and the reserves in use
    /// ([`Metrics::to_prometheus`] renders it).
    pub async fn metrics(&self) -> Metrics {
        metrics::collect(self.inner.id, &self.inner.registry, &self.inner.limits).await
    }

    /// The endpoint and global reserves of both directions: bytes in use, peaks.
    pub async fn limits(&self) -> LimitsSnapshot {
        self.inner.limits.send(GetLimits).await.unwrap_or_default()
    }

    /// Subscribes `recipient` to the events of every link of this node.
    pub async fn subscribe(&self, recipient: Recipient<LinkNotice>) {
        let _ = self.inner.registry.send(Subscribe(recipient)).await;
    }

    /// Subscribes `recipient` to the messages that fail after a link took them
    /// (expired, overloaded, connection lost, peer restarted, closed...): a
    /// [`FailedMessage`] each, with the peer, link, verb, size and error, when the
    /// sender's outcome is decided. For senders that do not await each outcome
    /// ([`Peer::sink`], a dropped [`Queued`]). Failures the call itself returns (the
    /// message never reached a link) are not reported; neither are internode's own
    /// control messages. A subscriber that stops is dropped from the feed; returns
    /// once every link reports to `recipient`.
    ///
    /// ```no_run
    /// use actix::prelude::*;
    /// use internode::node::{FailedMessage, Node};
    ///
    /// /// Counts what the application sent and never got through.
    /// #[derive(Default)]
    /// struct Lost(u64);
    /// impl Actor for Lost {
    ///     type Context = Context<Self>;
    /// }
    /// impl Handler<FailedMessage> for Lost {
    ///     type Result = ();
    ///     fn handle(&mut self, failed: FailedMessage, _: &mut Context<Self>) {
    ///         self.0 += 1;
    ///         log::warn!(
    ///             "verb {} to {} ({} bytes) failed: {}",
    ///             failed.verb, failed.peer, failed.bytes, failed.error
    ///         );
    ///     }
    /// }
    ///
    /// # async fn demo(node: Node) {
    /// node.subscribe_failures(Lost::default().start().recipient()).await;
    /// # }
    /// ```
    pub async fn subscribe_failures(&self, recipient: Recipient<FailedMessage>) {
        let _ = self
            .inner
            .registry
            .send(failures::SubscribeFailures(recipient))
            .await;
    }

    /// The state and counters of every link of this node.
    pub async fn links(&self) -> Vec<LinkSnapshot> {
        let links = self.inner.registry.send(AllLinks).await.unwrap_or_default();
        let mut out = Vec::with_capacity(links.len());
        for link in links {
            if let Ok(snapshot) = link.send(GetLinkSnapshot).await {
                out.push(snapshot);
            }
        }
        out.sort_by_key(|s| (s.peer, s.kind));
        out
    }

    /// Connections refused before their handshake completed, by [`RefusalReason`]
    /// (`WrongMagic`, `IncompatibleVersion`, `SelfConnect`, `Timeout`, `Closed`,
    /// `Malformed`; admission: `TooManyHandshakes`, `TooManyFromIp`,
    /// `TooManyConnections`; with a cluster secret, `AuthMissing`, `ClusterMismatch`,
    /// `AuthFailed` and `AuthIncomplete`; with TLS, `Tls(`[`TlsFailure`](crate::session::TlsFailure)`)`;
    /// after the Hello, `StaleAttempt`, `ReplacedSession` (a sender session of the
    /// peer's node id that a newer one replaced: if it goes on, two processes claim
    /// one id) and `AcceptFailed`). [`RefusalReason::as_str`] names them
    /// (`wrong_magic`, `tls_not_tls`, ...). Every refusal is counted; each reason is
    /// logged at most once a second.
    pub async fn refused_connections(&self) -> BTreeMap<RefusalReason, u64> {
        self.inner
            .registry
            .send(GetRefused)
            .await
            .unwrap_or_default()
    }

    /// Closes the links to `peer`: with `drain`, what is queued is delivered first
    /// (acknowledged, on lossless links) for at most the node's
    /// [drain timeout](NodeBuilder::drain_timeout); without, or after that, what
    /// remains fails ([`SendError::Closed`] if never written,
    /// [`SendError::ConnectionLost`] if written and not acknowledged). A later message
    /// to the peer opens new links, also through a [`Peer`] taken before: returns once
    /// the handles on the peer know the links closed.
    pub async fn close_peer(&self, peer: NodeId, drain: bool) {
        let close = ClosePeer {
            peer,
            drain,
            timeout: None,
        };
        let _ = self.inner.registry.send(close).await;
    }

    /// [`close_peer`](Self::close_peer) with drain, for at most `timeout`.
    pub async fn close_peer_within(&self, peer: NodeId, timeout: Duration) {
        let close = ClosePeer {
            peer,
            drain: true,
            timeout: Some(timeout),
        };
        let _ = self.inner.registry.send(close).await;
    }

    /// The counters of every connection from peers since the node started (received,
    /// dispatched, skipped for an unknown verb or a failed decode, corrupt frames).
    pub async fn inbound_counters(&self) -> InboundCounters {
        self.inner
            .registry
            .send(TotalInbound)
            .await
            .unwrap_or_default()
    }

    /// How many connections from peers are open.
    pub async fn inbound_connections(&self) -> usize {
        self.inner.registry.send(CountInbound).await.unwrap_or(0)
    }

    /// Closes the node: it stops accepting connections, closes every link (with
    /// `drain`, what is queued is delivered first, acknowledged on lossless links, for
    /// at most the node's [drain timeout](NodeBuilder::drain_timeout); without, or
    /// after that, what remains fails with [`SendError::Closed`], or
    /// [`SendError::ConnectionLost`] if it was written and not acknowledged), and then
    /// closes the connections from peers. Later sends fail with `Closed`.
    pub async fn close(&self, drain: bool) {
        self.close_with(drain, None).await;
    }

    /// [`close`](Self::close) with drain, for at most `timeout` (instead of the node's
    /// [drain timeout](NodeBuilder::drain_timeout)): what is not delivered by then
    /// fails.
    pub async fn close_within(&self, timeout: Duration) {
        self.close_with(true, Some(timeout)).await;
    }

    async fn close_with(&self, drain: bool, timeout: Option<Duration>) {
        // The accept loop ends first, and its socket is closed before this goes on:
        // the port is free when `close` returns.
        if let Some(listener) = self.inner.take_listener() {
            listener.abort();
            let _ = listener.await;
        }
        let close = CloseAll {
            drain,
            timeout,
            then_stop: false,
        };
        let _ = self.inner.registry.send(close).await;
    }
}
