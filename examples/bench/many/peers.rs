//! A peer process of the many-peers workload (`--many-peers FIRST COUNT HUB_PORT
//! KINDS`): COUNT nodes, numbers FIRST to FIRST + COUNT - 1, each with its own id
//! and its own listener on a free port of 127.0.0.1, each knowing the hub at
//! HUB_PORT, each opening its links of KINDS (`urgent,small,large`) to the hub.
//!
//! It prints `ready` once every node listens, then answers one command a line:
//!
//! | command | answer |
//! | --- | --- |
//! | `connect` | `connected` once every node's requests to the hub are answered, one over each of its links of KINDS (urgent 64 B, small 64 B, large 65 KiB), each answer over the hub's link of the same kind |
//! | `send M` | `sent JSON`: every node sends M messages of 64 B to the hub on its small link, outcomes awaited |
//! | `wait COUNT MILLIS` | `tally JSON` ([`Tally`], keyed by receiving node) |
//! | `down COUNT MILLIS` | `down N` once N >= COUNT disconnections were reported since the last `events`, or MILLIS passed |
//! | `resend` | `queued`: every node sends one message over each of its links of KINDS to the hub (number 0 of each lane), outcomes awaited in the background |
//! | `resent MILLIS` | `resent JSON`: those outcomes |
//! | `events` | `events JSON`: what the links reported since the last `events`: disconnect reasons counted, the wall-clock times (µs) of their connections, peer restarts |
//! | `cpu` | `cpu MICROS`: this process's CPU time so far |
//! | `links` | `links JSON`: the links to the hub by kind and state, and a few that hold messages |
//!
//! It exits when its standard input closes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::{FutureExt, LocalBoxFuture};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use internode::message::Request;
use internode::node::{LinkNotice, Node, Peer, Received, SendError, Sent};
use internode::session::LinkEvent;
use internode::{LinkKind, NodeId};
use serde_json::json;
use tokio::sync::Notify;

use super::hub::epoch_us;
use super::tally::Tally;
use super::{body, lane_size, outcomes, peer_id, send_traffic, HUB_ID, SETUP_TIMEOUT};
use crate::child;
use crate::messages::serde_msgs::{Blob, Ping, UrgentBlob, UrgentPing};
use crate::messages::Carrier;
use crate::BenchError;

/// A node's handler: the hub's one-way messages to the process's tally.
struct Handler {
    node: NodeId,
    tally: Rc<Tally>,
}

impl Actor for Handler {
    type Context = Context<Self>;
}

impl actix::Handler<Received<Blob>> for Handler {
    type Result = ();

    fn handle(&mut self, m: Received<Blob>, _: &mut Context<Self>) {
        self.tally.blob(self.node, m.message.body());
    }
}

impl actix::Handler<Received<UrgentBlob>> for Handler {
    type Result = ();

    fn handle(&mut self, m: Received<UrgentBlob>, _: &mut Context<Self>) {
        self.tally.urgent(self.node, m.message.body());
    }
}

/// What the links of the process's nodes reported since the last `events`.
#[derive(Default)]
struct Events {
    /// Disconnect reasons (as displayed), counted.
    reasons: BTreeMap<String, u64>,
    /// Disconnections (connections lost and attempts failed).
    disconnected: u64,
    /// When each connection was made, µs since the UNIX epoch.
    connected_us: Vec<u64>,
    peer_restarted: u64,
}

/// Every node's link events, into [`Events`]; each disconnection is notified.
struct EventLog(Rc<RefCell<Events>>, Rc<Notify>);

impl Actor for EventLog {
    type Context = Context<Self>;
}

impl actix::Handler<LinkNotice> for EventLog {
    type Result = ();

    fn handle(&mut self, notice: LinkNotice, _: &mut Context<Self>) {
        let mut events = self.0.borrow_mut();
        match notice.event {
            LinkEvent::Connected => events.connected_us.push(epoch_us()),
            LinkEvent::Disconnected { reason } => {
                *events.reasons.entry(reason.to_string()).or_default() += 1;
                events.disconnected += 1;
                self.1.notify_one();
            }
            LinkEvent::PeerRestarted { .. } => events.peer_restarted += 1,
            _ => {}
        }
    }
}

/// The `--many-peers FIRST COUNT HUB_PORT KINDS` role.
pub fn peers_role(
    first: usize,
    count: usize,
    hub_port: u16,
    kinds: Vec<LinkKind>,
) -> Result<(), BenchError> {
    child::child_setup();
    actix::System::new().block_on(async move {
        let hub = SocketAddr::from(([127, 0, 0, 1], hub_port));
        let tally = Rc::new(Tally::default());
        let events = Rc::new(RefCell::new(Events::default()));
        let disconnected = Rc::new(Notify::new());
        let log = EventLog(events.clone(), disconnected.clone()).start();
        let mut nodes = Vec::with_capacity(count);
        for i in first..first + count {
            let node = Node::builder(peer_id(i), SocketAddr::from(([127, 0, 0, 1], 0)))
                .peer(HUB_ID, hub)
                .start()
                .await
                .map_err(failed)?;
            let handler = Handler {
                node: node.id(),
                tally: tally.clone(),
            }
            .start();
            node.handle::<Blob>(handler.clone().recipient())
                .map_err(failed)?;
            node.handle::<UrgentBlob>(handler.recipient())
                .map_err(failed)?;
            node.subscribe(log.clone().recipient()).await;
            nodes.push(node);
        }
        let hubs: Vec<Peer> = nodes.iter().map(|n| n.peer(HUB_ID)).collect();
        println!("ready");
        let mut resent = None;
        let mut commands = child::commands();
        while let Some(line) = commands.recv().await {
            let bad = || BenchError::Failed(format!("peers: bad command {line:?}"));
            let words: Vec<&str> = line.split_whitespace().collect();
            let answer = match words.as_slice() {
                ["connect"] => {
                    connect(&hubs, &kinds).await?;
                    "connected".to_owned()
                }
                ["send", m] => {
                    let m = m.parse().map_err(|_| bad())?;
                    let sends = hubs.iter().map(|hub| send_traffic(hub, m)).collect();
                    format!("sent {}", outcomes(sends).await)
                }
                ["wait", count, millis] => {
                    let count = count.parse().map_err(|_| bad())?;
                    let timeout = Duration::from_millis(millis.parse().map_err(|_| bad())?);
                    format!("tally {}", tally.wait(count, timeout).await)
                }
                ["resend"] => {
                    let sends: FuturesUnordered<_> =
                        hubs.iter().map(|hub| resend(hub, &kinds)).collect();
                    resent = Some(actix::spawn(outcomes(sends)));
                    "queued".to_owned()
                }
                ["resent", millis] => {
                    let timeout = Duration::from_millis(millis.parse().map_err(|_| bad())?);
                    let task = resent.take().ok_or_else(bad)?;
                    match tokio::time::timeout(timeout, task).await {
                        Ok(Ok(outcomes)) => format!("resent {outcomes}"),
                        Ok(Err(e)) => return Err(failed(e)),
                        Err(_) => format!("resent {}", json!({ "timed_out": true })),
                    }
                }
                ["events"] => {
                    let events = std::mem::take(&mut *events.borrow_mut());
                    let answer = json!({
                        "reasons": events.reasons,
                        "connected_us": events.connected_us,
                        "peer_restarted": events.peer_restarted,
                    });
                    format!("events {answer}")
                }
                ["down", count, millis] => {
                    let count = count.parse().map_err(|_| bad())?;
                    let timeout = Duration::from_millis(millis.parse().map_err(|_| bad())?);
                    let _ = tokio::time::timeout(timeout, async {
                        while events.borrow().disconnected < count {
                            disconnected.notified().await;
                        }
                    })
                    .await;
                    format!("down {}", events.borrow().disconnected)
                }
                ["cpu"] => format!("cpu {}", child::cpu_time().as_micros()),
                ["links"] => format!("links {}", links(&nodes).await),
                _ => return Err(bad()),
            };
            println!("{answer}");
        }
        Ok(())
    })
}

fn failed(what: impl std::fmt::Display) -> BenchError {
    BenchError::Failed(format!("peers: {what}"))
}

/// The nodes' links to the hub by kind and state, and the first few that hold
/// messages (queued or unacknowledged) with their counters: what a failed check
/// shows.
async fn links(nodes: &[Node]) -> serde_json::Value {
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    let mut holding = Vec::new();
    for node in nodes {
        for link in node.links().await {
            *states
                .entry(format!("{} {}", link.kind, link.state))
                .or_default() += 1;
            if (link.queued > 0 || link.in_flight > 0) && holding.len() < 5 {
                holding.push(format!(
                    "{} {} {}: queued {} in flight {} {:?}",
                    node.id(),
                    link.kind,
                    link.state,
                    link.queued,
                    link.in_flight,
                    link.counters
                ));
            }
        }
    }
    json!({ "states": states, "holding": holding })
}

/// Every node's requests to the hub, one over each link of `kinds`, all at once;
/// `Ok` once all are answered, each with its own body.
async fn connect(hubs: &[Peer], kinds: &[LinkKind]) -> Result<(), BenchError> {
    let mut all: FuturesUnordered<_> = hubs
        .iter()
        .flat_map(|hub| {
            kinds.iter().map(move |&kind| {
                let body = body(kind as u64, lane_size(kind));
                match kind {
                    LinkKind::Urgent => ask(hub, UrgentPing(body)).boxed_local(),
                    LinkKind::Small | LinkKind::Large => ask(hub, Ping(body)).boxed_local(),
                }
            })
        })
        .collect();
    while let Some(answered) = all.next().await {
        answered?;
    }
    Ok(())
}

/// Sends request `r` to the hub; `Ok` once its answer carries the request's body.
fn ask<R>(hub: &Peer, r: R) -> impl Future<Output = Result<(), BenchError>>
where
    R: Carrier + Request,
    R::Response: Carrier,
{
    let (seq, len) = (r.body().seq, r.body().len());
    let response = hub.request_with_timeout(r, SETUP_TIMEOUT);
    async move {
        let response = response.await.map_err(failed)?;
        let body = response.body();
        if body.seq != seq || body.len() != len {
            return Err(BenchError::Lost(format!(
                "many-peers: the answer to request {seq} ({len} B) carried {} ({} B)",
                body.seq,
                body.len()
            )));
        }
        Ok(())
    }
}

/// One message over each of the hub's links of `kinds` (number 0 of each lane),
/// outcomes in the order sent.
fn resend(hub: &Peer, kinds: &[LinkKind]) -> impl Future<Output = Vec<Result<Sent, SendError>>> {
    let sends: Vec<LocalBoxFuture<'static, _>> = kinds
        .iter()
        .map(|&kind| {
            let body = body(0, lane_size(kind));
            match kind {
                LinkKind::Urgent => hub.send(UrgentBlob(body)).boxed_local(),
                LinkKind::Small | LinkKind::Large => hub.send(Blob(body)).boxed_local(),
            }
        })
        .collect();
    futures_util::future::join_all(sends)
}
