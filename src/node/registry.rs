//! The registry: the supervisor actor that owns a node's links.
//!
//! It creates each link on first use, supervised (`supervise::start`: a link that
//! stops, which it does when its connection fails, is restarted at once with the same
//! value, address and mailbox, and its core's backoff says when it reconnects), and
//! the receiving actor of each (peer, link kind) the first time the peer connects for
//! it; it knows the peers' addresses, wakes the links to a peer that connects, forwards
//! link events to subscribers, and closes every link and receiving actor when the node
//! closes. It answers the producers' credit lines with their link ([`ResolveLink`])
//! and tells them when that link closes, before it can create the next one for them
//! (`node::credit`). Large links run on the node's bulk thread (an actix `Arbiter`), so
//! that bulk traffic does not delay the urgent and small links on the node's thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::address::PeerAddr;
use super::credit::{LinkNews, NewsReply, ResolveLink};
use super::failures::{FailureFeed, SetFailureFeed, SubscribeFailures};
use super::inbound::{GetInboundSnapshot, Inbound, InboundCounters, InboundEnv, StopInbound};
use super::keepers::{Keepers, SetKeeper};
use super::link::{
    CloseLink, Link, LinkCounters, LinkEnv, Outbound, PeerSeen, Response, SetPeerAddress,
};
use super::metrics::Archive;
use super::refusal::RefusalReason;
use super::requests::Requests;
use super::resource_limits::ResourceLimits;
use super::NodeConfig;
use crate::outcome::SendError;
use crate::session::LinkEvent;
use crate::{LinkKind, NodeId};

/// A link event, as subscribers receive it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LinkNotice {
    /// The peer of the link.
    pub peer: NodeId,
    /// Which of the peer's links.
    pub kind: LinkKind,
    /// What happened.
    pub event: LinkEvent,
}

impl Message for LinkNotice {
    type Result = ();
}

/// From a link: something happened.
pub(crate) struct LinkReport {
    pub peer: NodeId,
    pub kind: LinkKind,
    pub event: LinkEvent,
    /// With [`LinkEvent::Closed`]: the link's final counters.
    pub counters: Option<LinkCounters>,
}

impl Message for LinkReport {
    type Result = ();
}

/// From a link: something it measured, for the metrics.
pub(crate) struct LinkMeasured {
    pub peer: NodeId,
    pub kind: LinkKind,
    pub measure: Measure,
}

pub(crate) enum Measure {
    /// A keepalive round-trip time.
    Rtt(Duration),
    /// What a link counted after it reported [`LinkEvent::Closed`] (messages from
    /// handles that had not yet heard it closed), since it last reported.
    CountedAfterClose(LinkCounters),
}

impl Message for LinkMeasured {
    type Result = ();
}

pub(crate) struct GetLink {
    pub peer: NodeId,
    pub kind: LinkKind,
}

impl Message for GetLink {
    type Result = Result<Addr<Link>, SendError>;
}

/// Sets (or changes) a peer's address. With `only_if_unknown`, an address already
/// known is kept (addresses learned from handshakes do not override configuration).
pub(crate) struct SetPeer {
    pub peer: NodeId,
    pub addr: PeerAddr,
    pub only_if_unknown: bool,
}

impl Message for SetPeer {
    type Result = ();
}

/// Sends a message over the peer's urgent link if `urgent`, else its small or large
/// link by size; its outcome is not awaited (responses).
pub(crate) struct Route {
    pub peer: NodeId,
    pub urgent: bool,
    pub message: Outbound,
}

impl Message for Route {
    type Result = ();
}

pub(crate) struct Subscribe(pub Recipient<LinkNotice>);

impl Message for Subscribe {
    type Result = ();
}

pub(crate) struct AllLinks;

impl Message for AllLinks {
    type Result = Vec<Addr<Link>>;
}

/// A connection refused before its handshake completed, by reason.
pub(crate) struct InboundRefused(pub RefusalReason);

impl Message for InboundRefused {
    type Result = ();
}

pub(crate) struct GetRefused;

impl Message for GetRefused {
    type Result = BTreeMap<RefusalReason, u64>;
}

pub(crate) struct CloseAll {
    pub drain: bool,
    pub timeout: Option<std::time::Duration>,
    /// The node's last handle is gone: the registry stops once everything is
    /// closed, dropping the addresses that keep the links alive.
    pub then_stop: bool,
}

/// Closes the links to one peer; answered once the registry has forgotten them (the
/// credit lines on them told), so that a later message to the peer opens new links.
pub(crate) struct ClosePeer {
    pub peer: NodeId,
    pub drain: bool,
    pub timeout: Option<std::time::Duration>,
}

impl Message for ClosePeer {
    type Result = ();
}

/// The receiving actors are created with this (sent once, when the node starts).
pub(crate) struct SetInboundEnv(pub Arc<InboundEnv>);

impl Message for SetInboundEnv {
    type Result = ();
}

/// A peer opened a connection for its link of `kind`: its receiving actor (created on
/// first use), or why the connection is refused (`Closed` once the node is closing,
/// `TooManyConnections` at the admission limit, unless it replaces the peer's own
/// connection for that link). The node's links to the peer are woken (a peer that
/// connects is up).
pub(crate) struct Receiver {
    pub peer: NodeId,
    pub kind: LinkKind,
}

impl Message for Receiver {
    /// The actor, or why the connection is refused (counted by the caller).
    type Result = Result<Addr<Inbound>, RefusalReason>;
}

/// A receiving actor's connection opened or closed (sent on every change): the
/// registry bounds the established inbound connections with it.
pub(crate) struct InboundConnection {
    pub peer: NodeId,
    pub kind: LinkKind,
    pub open: bool,
}

impl Message for InboundConnection {
    type Result = ();
}

/// A receiving actor stopped, with its final counters.
pub(crate) struct ReceiverStopped {
    pub peer: NodeId,
    pub kind: LinkKind,
    pub counters: InboundCounters,
}

impl Message for ReceiverStopped {
    type Result = ();
}

/// The counters of every inbound connection, open or closed, added up.
pub(crate) struct TotalInbound;

impl Message for TotalInbound {
    type Result = InboundCounters;
}

/// How many inbound connections are open.
pub(crate) struct CountInbound;

impl Message for CountInbound {
    type Result = usize;
}

impl Message for CloseAll {
    type Result = ();
}

/// See the module documentation.
pub(crate) struct Registry {
    node: NodeId,
    listen: SocketAddr,
    config: Arc<NodeConfig>,
    requests: Requests,
    limits: Addr<ResourceLimits>,
    env: Option<Arc<LinkEnv>>,
    links: HashMap<(NodeId, LinkKind), Addr<Link>>,
    /// The credit lines given each link, told when it closes.
    lines: HashMap<(NodeId, LinkKind), Vec<NewsReply>>,
    /// Closes waiting for the registry to forget a link.
    unlinked: HashMap<(NodeId, LinkKind), Vec<oneshot::Sender<()>>>,
    peers: HashMap<NodeId, PeerAddr>,
    subscribers: Vec<Recipient<LinkNotice>>,
    /// Which link of each peer carries its keepalive (`node::keepers`).
    keepers: Keepers,
    /// Who hears of failed messages (handed to every link).
    failures: FailureFeed,
    refused: BTreeMap<RefusalReason, u64>,
    inbound_env: Option<Arc<InboundEnv>>,
    /// The receiving actor of each (peer, link kind) that ever connected.
    inbound: HashMap<(NodeId, LinkKind), Addr<Inbound>>,
    /// The (peer, link kind)s with an established inbound connection, or one being
    /// handed to its actor (admission: at most `AdmissionLimits::inbound_connections`).
    connected: HashSet<(NodeId, LinkKind)>,
    /// The counters of the links and receiving actors that have closed, and the
    /// peers' round-trip times (`metrics::archive`).
    archive: Archive,
    closed: bool,
    /// The node's thread for large links: their bulk encoding, CRCs and writes do
    /// not hold up the urgent and small links, the inbound connections and the
    /// application's actors on the node's thread.
    bulk: ArbiterHandle,
}

impl Registry {
    pub(crate) fn new(
        listen: SocketAddr,
        config: Arc<NodeConfig>,
        requests: Requests,
        limits: Addr<ResourceLimits>,
        bulk: ArbiterHandle,
    ) -> Self {
        Registry {
            limits,
            node: config.id,
            listen,
            peers: config.peers.iter().cloned().collect(),
            config,
            requests,
            env: None,
            links: HashMap::new(),
            lines: HashMap::new(),
            unlinked: HashMap::new(),
            subscribers: Vec::new(),
            keepers: Keepers::default(),
            failures: FailureFeed::default(),
            refused: BTreeMap::new(),
            inbound_env: None,
            inbound: HashMap::new(),
            connected: HashSet::new(),
            archive: Archive::default(),
            closed: false,
            bulk,
        }
    }

    /// Asks every receiving actor for its snapshot.
    fn inbound_snapshots(&self) -> Vec<actix::dev::Request<Inbound, GetInboundSnapshot>> {
        self.inbound
            .values()
            .map(|a| a.send(GetInboundSnapshot))
            .collect()
    }

    /// Forgets the closed link of `kind` to `peer`: the credit lines on it are told
    /// (their next message asks for a new link), and so are the closes waiting.
    fn unlink(&mut self, peer: NodeId, kind: LinkKind) {
        self.links.remove(&(peer, kind));
        for line in self.lines.remove(&(peer, kind)).unwrap_or_default() {
            line.send(LinkNews::Unlinked);
        }
        for waiting in self.unlinked.remove(&(peer, kind)).unwrap_or_default() {
            let _ = waiting.send(());
        }
    }

    fn link(&mut self, peer: NodeId, kind: LinkKind) -> Result<Addr<Link>, SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        if let Some(link) = self.links.get(&(peer, kind)) {
            return Ok(link.clone());
        }
        let addr = self
            .peers
            .get(&peer)
            .cloned()
            .ok_or(SendError::UnknownPeer(peer))?;
        let env = self.env.clone().ok_or(SendError::Closed)?;
        let failures = self.failures.clone();
        let make = move |_: &mut Context<Link>| Link::new(env, peer, kind, addr, failures);
        let bulk = (kind == LinkKind::Large).then_some(&self.bulk);
        let link = super::supervise::start(bulk, make);
        self.links.insert((peer, kind), link.clone());
        Ok(link)
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.env = Some(Arc::new(LinkEnv {
            node: self.node,
            listen: self.listen,
            config: self.config.clone(),
            reports: ctx.address().recipient(),
            measured: ctx.address().recipient(),
            requests: self.requests.clone(),
            limits: self.limits.clone(),
        }));
    }
}

impl Handler<ResolveLink> for Registry {
    type Result = ();

    fn handle(&mut self, m: ResolveLink, _: &mut Context<Self>) {
        let news = match self.link(m.peer, m.kind) {
            Ok(link) => {
                let lines = self.lines.entry((m.peer, m.kind)).or_default();
                lines.retain(|line| !line.is_closed());
                lines.push(m.reply.clone());
                LinkNews::Linked(link)
            }
            Err(error) => LinkNews::Failed(error),
        };
        m.reply.send(news);
    }
}

impl Handler<GetLink> for Registry {
    type Result = Result<Addr<Link>, SendError>;

    fn handle(&mut self, m: GetLink, _: &mut Context<Self>) -> Self::Result {
        self.link(m.peer, m.kind)
    }
}

impl Handler<SetPeer> for Registry {
    type Result = ();

    fn handle(&mut self, m: SetPeer, _: &mut Context<Self>) {
        if m.only_if_unknown && self.peers.contains_key(&m.peer) {
            return;
        }
        if self.peers.get(&m.peer) == Some(&m.addr) {
            return;
        }
        self.peers.insert(m.peer, m.addr.clone());
        for kind in LinkKind::ALL {
            if let Some(link) = self.links.get(&(m.peer, kind)) {
                link.do_send(SetPeerAddress(m.addr.clone()));
            }
        }
    }
}

impl Handler<Route> for Registry {
    type Result = ();

    fn handle(&mut self, m: Route, _: &mut Context<Self>) {
        let kind = if m.urgent {
            LinkKind::Urgent
        } else if m.message.payload.len() > LinkKind::LARGE_THRESHOLD {
            LinkKind::Large
        } else {
            LinkKind::Small
        };
        match self.link(m.peer, kind) {
            Ok(link) => link.do_send(Response(m.message)),
            Err(e) => log::warn!("{}: cannot route to {}: {e}", self.node, m.peer),
        }
    }
}

impl Handler<Subscribe> for Registry {
    type Result = ();

    fn handle(&mut self, Subscribe(r): Subscribe, _: &mut Context<Self>) {
        self.subscribers.push(r);
    }
}

impl Handler<SubscribeFailures> for Registry {
    type Result = ();

    fn handle(&mut self, SubscribeFailures(r): SubscribeFailures, _: &mut Context<Self>) {
        self.failures = self.failures.with(r);
        // Each link takes the new list before any message sent after this returns.
        for link in self.links.values() {
            link.do_send(SetFailureFeed(self.failures.clone()));
        }
    }
}

impl Handler<LinkReport> for Registry {
    type Result = ();

    fn handle(&mut self, r: LinkReport, _: &mut Context<Self>) {
        if r.event == LinkEvent::Closed {
            // A closed link answers `Closed` to whoever still holds its address; the
            // next message to the peer gets a fresh link.
            self.unlink(r.peer, r.kind);
        }
        if let Some(counters) = &r.counters {
            self.archive.retire_link(r.peer, r.kind, counters);
        }
        for (kind, keeper) in self.keepers.handle_event(r.peer, r.kind, &r.event) {
            if let Some(link) = self.links.get(&(r.peer, kind)) {
                link.do_send(SetKeeper(keeper));
            }
        }
        let notice = LinkNotice {
            peer: r.peer,
            kind: r.kind,
            event: r.event,
        };
        self.subscribers.retain(|s| s.connected());
        for s in &self.subscribers {
            s.do_send(notice.clone());
        }
    }
}

impl Handler<AllLinks> for Registry {
    type Result = Vec<Addr<Link>>;

    fn handle(&mut self, _: AllLinks, _: &mut Context<Self>) -> Self::Result {
        self.links.values().cloned().collect()
    }
}

impl Handler<InboundRefused> for Registry {
    type Result = ();

    fn handle(&mut self, InboundRefused(reason): InboundRefused, _: &mut Context<Self>) {
        *self.refused.entry(reason).or_default() += 1;
    }
}

impl Handler<GetRefused> for Registry {
    type Result = MessageResult<GetRefused>;

    fn handle(&mut self, _: GetRefused, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.refused.clone())
    }
}

impl Handler<CloseAll> for Registry {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, m: CloseAll, _: &mut Context<Self>) -> Self::Result {
        self.closed = true;
        let closes: Vec<_> = self
            .links
            .values()
            .map(|l| {
                l.send(CloseLink {
                    drain: m.drain,
                    timeout: m.timeout,
                })
            })
            .collect();
        let inbound: Vec<_> = self.inbound.values().cloned().collect();
        let then_stop = m.then_stop;
        let close = async move {
            for close in closes {
                let _ = close.await;
            }
            // Then the connections from peers: what they wrote and was not read yet
            // is lost to them (their links report it when the connection drops).
            for connection in inbound {
                let _ = connection.send(StopInbound).await;
            }
        };
        Box::pin(close.into_actor(self).map(move |(), _, ctx| {
            if then_stop {
                ctx.stop();
            }
        }))
    }
}

impl Handler<ClosePeer> for Registry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, m: ClosePeer, _: &mut Context<Self>) -> Self::Result {
        let mut closes = Vec::new();
        let mut forgotten = Vec::new();
        for kind in LinkKind::ALL {
            let Some(link) = self.links.get(&(m.peer, kind)) else {
                continue;
            };
            closes.push(link.send(CloseLink {
                drain: m.drain,
                timeout: m.timeout,
            }));
            // Every link reports that it closed (`LinkReport`): the registry forgets
            // it then.
            let (tx, rx) = oneshot::channel();
            self.unlinked.entry((m.peer, kind)).or_default().push(tx);
            forgotten.push(rx);
        }
        Box::pin(async move {
            for close in closes {
                let _ = close.await;
            }
            for link in forgotten {
                let _ = link.await;
            }
        })
    }
}

impl Handler<SetInboundEnv> for Registry {
    type Result = ();

    fn handle(&mut self, SetInboundEnv(env): SetInboundEnv, _: &mut Context<Self>) {
        self.inbound_env = Some(env);
    }
}

impl Handler<Receiver> for Registry {
    type Result = Result<Addr<Inbound>, RefusalReason>;

    fn handle(&mut self, m: Receiver, _: &mut Context<Self>) -> Self::Result {
        if self.closed {
            return Err(RefusalReason::Closed);
        }
        let key = (m.peer, m.kind);
        if !self.connected.contains(&key)
            && self.connected.len() >= self.config.admission.inbound_connections
        {
            return Err(RefusalReason::TooManyConnections);
        }
        for kind in LinkKind::ALL {
            if let Some(link) = self.links.get(&(m.peer, kind)) {
                link.do_send(PeerSeen);
            }
        }
        // Held for it until its actor says otherwise.
        self.connected.insert(key);
        if let Some(addr) = self.inbound.get(&key) {
            return Ok(addr.clone());
        }
        let Some(env) = self.inbound_env.clone() else {
            self.connected.remove(&key);
            return Err(RefusalReason::Closed);
        };
        let (peer, kind) = (m.peer, m.kind);
        let make = move |_: &mut Context<Inbound>| Inbound::new(env, peer, kind);
        // Large messages are read, checked and assembled on the bulk thread, so that
        // they do not delay the node's other connections and actors.
        let addr = if kind == LinkKind::Large {
            Inbound::start_in_arbiter(&self.bulk, make)
        } else {
            Inbound::create(make)
        };
        self.inbound.insert((peer, kind), addr.clone());
        Ok(addr)
    }
}

impl Handler<InboundConnection> for Registry {
    type Result = ();

    fn handle(&mut self, m: InboundConnection, _: &mut Context<Self>) {
        if m.open {
            self.connected.insert((m.peer, m.kind));
        } else {
            self.connected.remove(&(m.peer, m.kind));
        }
    }
}

impl Handler<ReceiverStopped> for Registry {
    type Result = ();

    fn handle(&mut self, m: ReceiverStopped, _: &mut Context<Self>) {
        self.inbound.remove(&(m.peer, m.kind));
        self.connected.remove(&(m.peer, m.kind));
        self.archive.retire_inbound(m.peer, m.kind, &m.counters);
    }
}

impl Handler<TotalInbound> for Registry {
    type Result = ResponseFuture<InboundCounters>;

    fn handle(&mut self, _: TotalInbound, _: &mut Context<Self>) -> Self::Result {
        let mut total = InboundCounters::default();
        for counters in self.archive.inbound.values() {
            total.add(counters);
        }
        let live = self.inbound_snapshots();
        Box::pin(async move {
            for snapshot in live {
                if let Ok(s) = snapshot.await {
                    total.add(&s.counters);
                }
            }
            total
        })
    }
}

impl Handler<LinkMeasured> for Registry {
    type Result = ();

    fn handle(&mut self, m: LinkMeasured, _: &mut Context<Self>) {
        match m.measure {
            Measure::Rtt(rtt) => self.archive.record_rtt(m.peer, rtt),
            Measure::CountedAfterClose(counters) => {
                self.archive.retire_link(m.peer, m.kind, &counters)
            }
        }
    }
}

/// What a metrics snapshot needs from the registry, read in one step: the open links
/// and receiving actors (to ask for their snapshots), the archive of the closed ones
/// and the round-trip times, and the refused connections.
pub(crate) struct MetricsParts;

pub(crate) struct Parts {
    pub links: Vec<((NodeId, LinkKind), Addr<Link>)>,
    pub inbound: Vec<((NodeId, LinkKind), Addr<Inbound>)>,
    pub archive: Archive,
    pub refused: BTreeMap<RefusalReason, u64>,
}

impl Message for MetricsParts {
    type Result = Parts;
}

impl Handler<MetricsParts> for Registry {
    type Result = MessageResult<MetricsParts>;

    fn handle(&mut self, _: MetricsParts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Parts {
            links: self.links.iter().map(|(k, a)| (*k, a.clone())).collect(),
            inbound: self.inbound.iter().map(|(k, a)| (*k, a.clone())).collect(),
            archive: self.archive.clone(),
            refused: self.refused.clone(),
        })
    }
}

impl Handler<CountInbound> for Registry {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: CountInbound, _: &mut Context<Self>) -> Self::Result {
        let live = self.inbound_snapshots();
        Box::pin(async move {
            let mut connected = 0;
            for snapshot in live {
                if matches!(snapshot.await, Ok(s) if s.connected) {
                    connected += 1;
                }
            }
            connected
        })
    }
}
