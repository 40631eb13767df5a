//! The hub process of the many-peers workload (`--many-hub PORT PEERS BACKLOG`):
//! one node that every peer connects to, and the control loop through which the
//! parent measures it.
//!
//! It listens on 127.0.0.1:PORT (0: a free port; the restarted hub is given the
//! first one's) with a listen backlog of BACKLOG, answers the peers' requests with their body (over its own link of
//! the request's kind), checks the one-way messages it receives per (peer, lane)
//! ([`Tally`]), and prints `ready PORT EPOCH_US` once it listens (the wall clock in
//! µs, which the peers' connection times are compared with). Then, one command a
//! line:
//!
//! | command | answer |
//! | --- | --- |
//! | `stats` | `stats CPU_US VOLUNTARY INVOLUNTARY TIMESLICES RSS_ANON_KIB` ([`Usage`](super::sys::Usage)) |
//! | `threads` | `threads JSON`: each thread's voluntary context switches so far, by `NAME TID` |
//! | `trim` | `trim RSS_ANON_KIB` after `malloc_trim(0)` |
//! | `links` | `links JSON`: the node's links by state and kind, and its inbound connections |
//! | `refused` | `refused JSON`: `Node::refused_connections` by reason name |
//! | `send M` | `sent JSON`: M messages of 64 B sent to every peer on its small link, outcomes awaited |
//! | `wait COUNT MILLIS` | `tally JSON` once COUNT messages arrived, one was bad, or MILLIS passed |
//!
//! It exits when its standard input closes (or is killed: the restart).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use internode::node::{AdmissionLimits, HandlerError, Node, Received, Requested};
use internode::session::LinkState;
use serde_json::json;

use super::tally::Tally;
use super::{outcomes, peer_id, send_traffic, HUB_ID};
use crate::child::{self, status_kib};
use crate::messages::serde_msgs::{Blob, Ping, Pong, UrgentBlob, UrgentPing};
use crate::messages::Carrier;
use crate::BenchError;

/// Set by the parent when the hub runs under a memory profiler: the hub exits right
/// after answering `trim`, holding what it held then.
pub const EXIT_AFTER_TRIM_ENV: &str = "BENCH_HUB_EXIT_AFTER_TRIM";

/// The hub's handler: one-way messages to the tally, requests answered with their
/// body.
struct Handler {
    tally: Rc<Tally>,
}

impl Actor for Handler {
    type Context = Context<Self>;
}

impl actix::Handler<Received<Blob>> for Handler {
    type Result = ();

    fn handle(&mut self, m: Received<Blob>, _: &mut Context<Self>) {
        self.tally.blob(m.from, m.message.body());
    }
}

impl actix::Handler<Received<UrgentBlob>> for Handler {
    type Result = ();

    fn handle(&mut self, m: Received<UrgentBlob>, _: &mut Context<Self>) {
        self.tally.urgent(m.from, m.message.body());
    }
}

impl actix::Handler<Requested<Ping>> for Handler {
    type Result = Result<Pong, HandlerError>;

    fn handle(&mut self, m: Requested<Ping>, _: &mut Context<Self>) -> Self::Result {
        Ok(Pong(m.message.into_body()))
    }
}

impl actix::Handler<Requested<UrgentPing>> for Handler {
    type Result = Result<Pong, HandlerError>;

    fn handle(&mut self, m: Requested<UrgentPing>, _: &mut Context<Self>) -> Self::Result {
        Ok(Pong(m.message.into_body()))
    }
}

/// The hub's admission limits for `peers` peers: the defaults, except that as many
/// handshakes may come from one address as from all (every peer here connects from
/// 127.0.0.1; on real hosts each has its own) and at least three inbound
/// connections per peer are taken.
pub fn admission(peers: usize) -> AdmissionLimits {
    let defaults = AdmissionLimits::default();
    defaults
        .handshakes_per_ip(defaults.handshakes)
        .inbound_connections(defaults.inbound_connections.max(3 * peers))
}

/// The `--many-hub PORT PEERS BACKLOG` role.
pub fn hub_role(port: u16, peers: usize, backlog: u32) -> Result<(), BenchError> {
    child::child_setup();
    actix::System::new().block_on(async move {
        let tally = Rc::new(Tally::default());
        let node = Node::builder(HUB_ID, SocketAddr::from(([127, 0, 0, 1], port)))
            .admission(admission(peers))
            .listen_backlog(backlog)
            .start()
            .await
            .map_err(|e| BenchError::Failed(format!("hub: {e}")))?;
        let listening = epoch_us();
        let handler = Handler {
            tally: tally.clone(),
        }
        .start();
        let register = |r: Result<(), _>| r.map_err(|e| BenchError::Failed(format!("hub: {e}")));
        register(node.handle::<Blob>(handler.clone().recipient()))?;
        register(node.handle::<UrgentBlob>(handler.clone().recipient()))?;
        register(node.handle_requests::<Ping>(handler.clone().recipient()))?;
        register(node.handle_requests::<UrgentPing>(handler.clone().recipient()))?;
        println!("ready {} {listening}", node.local_addr().port());
        let mut commands = child::commands();
        while let Some(line) = commands.recv().await {
            println!("{}", answer(&node, peers, &tally, &line).await?);
            if line == "trim" && std::env::var_os(EXIT_AFTER_TRIM_ENV).is_some() {
                std::process::exit(0);
            }
        }
        Ok(())
    })
}

/// Microseconds since the UNIX epoch (comparable between the processes of one
/// machine).
pub fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

async fn answer(
    node: &Node,
    peers: usize,
    tally: &Tally,
    line: &str,
) -> Result<String, BenchError> {
    let bad = || BenchError::Failed(format!("hub: bad command {line:?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    Ok(match words.as_slice() {
        ["stats"] => format!(
            "stats {} {}",
            super::sys::Usage::here().words(),
            status_kib("RssAnon")?
        ),
        ["threads"] => format!("threads {}", json!(super::sys::thread_wakeups())),
        ["trim"] => {
            // SAFETY: malloc_trim only gives free heap memory back to the system.
            unsafe { libc::malloc_trim(0) };
            format!("trim {}", status_kib("RssAnon")?)
        }
        ["links"] => format!("links {}", links(node).await),
        ["refused"] => {
            let refused: BTreeMap<&str, u64> = node
                .refused_connections()
                .await
                .into_iter()
                .map(|(reason, n)| (reason.as_str(), n))
                .collect();
            format!("refused {}", json!(refused))
        }
        ["send", m] => {
            let m = m.parse().map_err(|_| bad())?;
            format!("sent {}", send_to_all(node, peers, m).await)
        }
        ["wait", count, millis] => {
            let count = count.parse().map_err(|_| bad())?;
            let timeout = Duration::from_millis(millis.parse().map_err(|_| bad())?);
            format!("tally {}", tally.wait(count, timeout).await)
        }
        _ => return Err(bad()),
    })
}

/// The node's links counted by state and by kind, and its inbound connections.
async fn links(node: &Node) -> serde_json::Value {
    let mut states: BTreeMap<&str, u64> = BTreeMap::new();
    let mut connected: BTreeMap<String, u64> = BTreeMap::new();
    for link in node.links().await {
        let state = match link.state {
            LinkState::Dormant => "dormant",
            LinkState::Connecting { .. } => "connecting",
            LinkState::Connected { .. } => "connected",
            LinkState::WaitingToRetry { .. } => "waiting_to_retry",
            LinkState::Draining => "draining",
            LinkState::Closed => "closed",
        };
        *states.entry(state).or_default() += 1;
        if state == "connected" {
            *connected.entry(link.kind.to_string()).or_default() += 1;
        }
    }
    json!({
        "states": states,
        "connected_by_kind": connected,
        "inbound_connections": node.inbound_connections().await,
        "inbound_counters": format!("{:?}", node.inbound_counters().await),
    })
}

/// Sends `m` messages to each of the `peers` peers ([`send_traffic`]), all queued at
/// once, and awaits every outcome ([`outcomes`]).
async fn send_to_all(node: &Node, peers: usize, m: u64) -> serde_json::Value {
    let sends = (0..peers)
        .map(|i| send_traffic(&node.peer(peer_id(i)), m))
        .collect();
    outcomes(sends).await
}
