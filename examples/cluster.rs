//! A local cluster in one process: N nodes on 127.0.0.1 (default 3) send each other
//! sequence-numbered typed messages, all to all, for a few seconds, while a line per
//! link shows its state and counters once a second. Midway, one node is taken down for
//! maintenance and started again with the same id on the same port; the others keep
//! sending to it meanwhile, and what they queued while it was down reaches it after the
//! restart.
//!
//! ```sh
//! cargo run --example cluster                      # 3 nodes, ~6 s of traffic
//! cargo run --example cluster -- --nodes 5 --seconds 10 --rate 1000 --port-base 21100
//! ```
//!
//! At the end it prints, per (sender, receiver), the messages accepted, written,
//! delivered and failed by reason, and exits non-zero unless every accepted message
//! was delivered or reported failed, with no duplicate and no reordering.
//!
//! Links are lossy for now (lossless sessions come later): a message written to a
//! socket whose peer then dies can be lost without a failure report. So the node is
//! stopped gracefully, as an operator would for maintenance:
//!
//! 1. every other node closes its links to it with drain (`close_peer(id, true)`):
//!    what is queued is written, then the connections close, and the stopped node's
//!    inbound connections read everything up to the end of the stream. Messages sent
//!    to a link while it closes fail with `closed`;
//! 2. once the stopped node has received everything the others wrote to it and its
//!    inbound connections are gone, it is closed with drain (its own queued messages
//!    are written first) and dropped;
//! 3. the others keep sending to it: new links are created, fail to connect, retry
//!    with backoff, and queue;
//! 4. a new node with the same id starts on the same port, gets the same handlers
//!    (the receive bookkeeping lives outside the node), and the queued messages are
//!    delivered.
//!
//! The cluster is shut down the same way: traffic stops, every outcome is awaited,
//! every node closes its links to the others with drain, and once no connection is
//! left every node is closed.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::prelude::*;
use clap::Parser;
use internode::node::{LinkNotice, LinkSnapshot, Node, Peer, Received, SendErrorKind};
use internode::session::{HeartbeatConfig, LinkEvent, LinkState};
use internode::NodeId;
use serde::{Deserialize, Serialize};

/// The traffic: one message per (sender, receiver, sequence number).
#[derive(Debug, Serialize, Deserialize)]
struct Tick {
    /// The sender's id, as the sender put it in the message.
    from: u64,
    /// Per (sender, receiver), from 0, without gaps.
    seq: u64,
}
internode::message!(Tick, verb = 1);

/// Senders send a burst this often; between bursts the links are idle long enough
/// for keepalives, so that the live lines show round-trip times.
const BURST_EVERY: Duration = Duration::from_millis(250);
/// A sender skips a burst while this many of its messages have no outcome yet.
const MAX_PENDING: u64 = 20_000;
/// How long any one phase may take before the example gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(10);

/// N nodes in one process sending to each other, one of them stopped and restarted
/// midway; checks that every accepted message was delivered or reported failed.
#[derive(Parser)]
#[command(name = "cluster")]
struct Options {
    /// Nodes, 2 to 50
    #[arg(long, value_name = "N", default_value_t = 3)]
    nodes: usize,
    /// Seconds of traffic, 3 to 120
    #[arg(long, value_name = "S", default_value_t = 6.0)]
    seconds: f64,
    /// Messages per second per (sender, receiver), 1 to 100000
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 400)]
    rate: u32,
    /// Node i listens on P+i
    #[arg(long, value_name = "P", default_value_t = 21000)]
    port_base: u16,
    /// Also print node-1's metrics in the Prometheus text format at the end
    #[arg(long)]
    prometheus: bool,
}

fn check(options: Options) -> Result<Options, String> {
    if !(2..=50).contains(&options.nodes) {
        return Err("--nodes must be between 2 and 50".into());
    }
    if !(options.seconds >= 3.0 && options.seconds <= 120.0) {
        return Err("--seconds must be between 3 and 120".into());
    }
    if options.rate == 0 || options.rate > 100_000 {
        return Err("--rate must be between 1 and 100000".into());
    }
    if usize::from(options.port_base) + options.nodes > usize::from(u16::MAX) {
        return Err("--port-base too high".into());
    }
    Ok(options)
}

// ---------------------------------------------------------------------------------
// The bookkeeping, outside the nodes: it survives a node's restart.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Written,
    Failed(SendErrorKind),
}

/// What happened to the messages of one (sender, receiver).
#[derive(Default)]
struct Pair {
    /// By sequence number: the outcome the sender observed.
    outcomes: Vec<Outcome>,
    /// By sequence number: whether the receiver's handler got it.
    delivered: Vec<bool>,
    delivered_count: u64,
    /// One past the highest sequence number delivered.
    next_expected: u64,
    duplicates: u64,
    reordered: u64,
    /// Deliveries of sequence numbers never sent, or whose `from` disagrees with the
    /// sender the node reported.
    bogus: u64,
    /// Sequence numbers sent while the receiver was down.
    while_down: std::ops::Range<u64>,
}

impl Pair {
    fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes.iter().filter(|o| **o == outcome).count() as u64
    }

    fn written(&self) -> u64 {
        self.count(Outcome::Written)
    }

    fn pending(&self) -> u64 {
        self.count(Outcome::Pending)
    }

    fn failed(&self) -> BTreeMap<SendErrorKind, u64> {
        let mut failed = BTreeMap::new();
        for o in &self.outcomes {
            if let Outcome::Failed(reason) = o {
                *failed.entry(*reason).or_default() += 1;
            }
        }
        failed
    }

    fn is_delivered(&self, seq: usize) -> bool {
        self.delivered.get(seq).copied().unwrap_or(false)
    }

    /// Written, but never delivered: lost without a report.
    fn lost(&self) -> u64 {
        (0..self.outcomes.len())
            .filter(|&s| self.outcomes[s] == Outcome::Written && !self.is_delivered(s))
            .count() as u64
    }

    /// Delivered although the sender was told it failed. Only `connection_lost` ("may
    /// or may not have reached the peer") allows that.
    fn delivered_despite(&self) -> BTreeMap<SendErrorKind, u64> {
        let mut out = BTreeMap::new();
        for (seq, o) in self.outcomes.iter().enumerate() {
            if let Outcome::Failed(reason) = o {
                if self.is_delivered(seq) {
                    *out.entry(*reason).or_default() += 1;
                }
            }
        }
        out
    }
}

struct Ledger {
    nodes: usize,
    pairs: Vec<Pair>,
}

impl Ledger {
    fn new(nodes: usize) -> Self {
        Ledger {
            nodes,
            pairs: (0..nodes * nodes).map(|_| Pair::default()).collect(),
        }
    }

    fn pair(&mut self, from: usize, to: usize) -> &mut Pair {
        &mut self.pairs[from * self.nodes + to]
    }

    fn accept(&mut self, from: usize, to: usize) -> u64 {
        let pair = self.pair(from, to);
        pair.outcomes.push(Outcome::Pending);
        pair.outcomes.len() as u64 - 1
    }

    fn resolve(&mut self, from: usize, to: usize, seq: u64, outcome: Outcome) {
        self.pair(from, to).outcomes[seq as usize] = outcome;
    }

    fn deliver(&mut self, from: usize, to: usize, seq: u64) {
        let pair = self.pair(from, to);
        let i = seq as usize;
        if i >= pair.outcomes.len() {
            pair.bogus += 1;
            return;
        }
        if pair.delivered.len() <= i {
            pair.delivered.resize(i + 1, false);
        }
        if pair.delivered[i] {
            pair.duplicates += 1;
            return;
        }
        pair.delivered[i] = true;
        pair.delivered_count += 1;
        if seq < pair.next_expected {
            pair.reordered += 1;
        } else {
            pair.next_expected = seq + 1;
        }
    }

    fn total_pending(&self) -> u64 {
        self.pairs.iter().map(Pair::pending).sum()
    }
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

/// The handler of one node id's messages; the same actor serves every incarnation
/// of the node.
struct Inbox {
    me: usize,
    ledger: Arc<Mutex<Ledger>>,
}

impl Actor for Inbox {
    type Context = Context<Self>;
}

impl Handler<Received<Tick>> for Inbox {
    type Result = ();

    fn handle(&mut self, m: Received<Tick>, _: &mut Context<Self>) {
        let mut ledger = lock(&self.ledger);
        let from = m.from.0 as usize;
        if m.message.from != m.from.0 || from == 0 || from > ledger.nodes {
            if let Some(from) = (m.message.from as usize).checked_sub(1) {
                if from < ledger.nodes {
                    ledger.pair(from, self.me).bogus += 1;
                }
            }
            return;
        }
        ledger.deliver(from - 1, self.me, m.message.seq);
    }
}

/// Answered once everything the inbox received before it was handled.
struct Flush;

impl Message for Flush {
    type Result = ();
}

impl Handler<Flush> for Inbox {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {}
}

/// Prints a node's link events (connections, losses, retries) while `quiet` is off.
struct EventPrinter {
    node: NodeId,
    start: Instant,
    quiet: Rc<Cell<bool>>,
}

impl Actor for EventPrinter {
    type Context = Context<Self>;
}

impl Handler<LinkNotice> for EventPrinter {
    type Result = ();

    fn handle(&mut self, n: LinkNotice, _: &mut Context<Self>) {
        if self.quiet.get() {
            return;
        }
        let what = match &n.event {
            LinkEvent::Connected | LinkEvent::Disconnected { .. } => n.event.to_string(),
            LinkEvent::RetryScheduled { attempt, delay } => {
                format!("retry (attempt {attempt}) in {} ms", delay.as_millis())
            }
            _ => return,
        };
        println!(
            "{} event: {} {} link to {}: {what}",
            stamp(self.start),
            self.node,
            n.kind,
            n.peer
        );
    }
}

// ---------------------------------------------------------------------------------
// The cluster.

struct Shared {
    start: Instant,
    port_base: u16,
    burst: usize,
    ledger: Arc<Mutex<Ledger>>,
    inboxes: Vec<Addr<Inbox>>,
    nodes: RefCell<Vec<Option<Node>>>,
    /// By `from * n + to`: the sender's handle on the receiver's links.
    peers: RefCell<Vec<Option<Peer>>>,
    stop: Cell<bool>,
    quiet: Rc<Cell<bool>>,
    /// Print node-1's metrics in the Prometheus format at the end.
    prometheus: bool,
}

impl Shared {
    fn n(&self) -> usize {
        self.inboxes.len()
    }

    fn id(i: usize) -> NodeId {
        NodeId(i as u64 + 1)
    }

    fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port_base + i as u16 + 1))
    }

    fn node(&self, i: usize) -> Option<Node> {
        self.nodes.borrow()[i].clone()
    }

    fn live_nodes(&self) -> Vec<Node> {
        self.nodes.borrow().iter().flatten().cloned().collect()
    }

    fn forget_peer(&self, from: usize, to: usize) {
        self.peers.borrow_mut()[from * self.n() + to] = None;
    }

    /// Starts node `i` on its port with its handler.
    async fn start_node(&self, i: usize) -> Result<Node, String> {
        let mut builder = Node::builder(Self::id(i), self.addr(i))
            .heartbeat(HeartbeatConfig::default().interval(Duration::from_millis(100)));
        for j in (0..self.n()).filter(|&j| j != i) {
            builder = builder.peer(Self::id(j), self.addr(j));
        }
        // The incarnation that stopped here was closed, which freed the port.
        let node = builder
            .start()
            .await
            .map_err(|e| format!("{} does not start: {e}", Self::id(i)))?;
        node.handle::<Tick>(self.inboxes[i].clone().recipient())
            .map_err(|e| e.to_string())?;
        let printer = EventPrinter {
            node: Self::id(i),
            start: self.start,
            quiet: self.quiet.clone(),
        };
        node.subscribe(printer.start().recipient()).await;
        self.nodes.borrow_mut()[i] = Some(node.clone());
        Ok(node)
    }
}

fn stamp(start: Instant) -> String {
    format!("[{:5.1}s]", start.elapsed().as_secs_f64())
}

/// Sends a burst from `from` to `to` every [`BURST_EVERY`] until told to stop.
/// While `from` is down it sends nothing; a message sent to a link that is closing
/// or closed fails with `closed`, which the ledger records like any outcome.
async fn sender(shared: Rc<Shared>, from: usize, to: usize) {
    let mut ticker = tokio::time::interval(BURST_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let slot = from * shared.n() + to;
    loop {
        ticker.tick().await;
        if shared.stop.get() {
            return;
        }
        let Some(node) = shared.node(from) else {
            continue;
        };
        let known = shared.peers.borrow()[slot].clone();
        let peer = match known {
            Some(peer) => peer,
            None => {
                let peer = node.peer(Shared::id(to));
                shared.peers.borrow_mut()[slot] = Some(peer.clone());
                peer
            }
        };
        if lock(&shared.ledger).pair(from, to).pending() >= MAX_PENDING {
            continue;
        }
        for _ in 0..shared.burst {
            let seq = lock(&shared.ledger).accept(from, to);
            let outcome = peer.send(Tick {
                from: from as u64 + 1,
                seq,
            });
            let ledger = shared.ledger.clone();
            actix::spawn(async move {
                let outcome = match outcome.await {
                    Ok(_) => Outcome::Written,
                    Err(e) => Outcome::Failed(e.kind()),
                };
                lock(&ledger).resolve(from, to, seq, outcome);
            });
        }
    }
}

fn format_failed(failed: &BTreeMap<SendErrorKind, u64>) -> String {
    if failed.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (reason, n) in failed {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{reason}={n}");
    }
    out
}

fn link_line(node: NodeId, s: &LinkSnapshot) -> String {
    let rtt = s.rtt.map_or("-".to_string(), |r| {
        format!("{:.2}ms", r.as_secs_f64() * 1e3)
    });
    format!(
        "  {node} -> {} {:<6} {:<28} rtt {:>7}  queued {:>5}  accepted {:>6}  written {:>6}  failed {}",
        s.peer,
        s.kind.to_string(),
        s.state.to_string(),
        rtt,
        s.queued,
        s.counters.accepted,
        s.counters.written,
        format_failed(&s.counters.failed)
    )
}

/// Once a second: a line per link that is in use, from `Node::links`.
async fn monitor(shared: Rc<Shared>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if shared.stop.get() {
            return;
        }
        let mut lines = Vec::new();
        for node in shared.live_nodes() {
            for link in node.links().await {
                if link.counters.accepted == 0 && link.state == LinkState::Dormant {
                    continue;
                }
                lines.push(link_line(node.id(), &link));
            }
        }
        println!("{} links:", stamp(shared.start));
        for line in lines {
            println!("{line}");
        }
    }
}

/// Polls `check` every 20 ms until it holds; false after `timeout`.
async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops node `victim` gracefully and starts it again after `downtime`.
async fn maintenance(
    shared: &Rc<Shared>,
    victim: usize,
    downtime: Duration,
    failures: &mut Vec<String>,
) -> Result<(), String> {
    let n = shared.n();
    let vid = Shared::id(victim);
    let node = shared.node(victim).ok_or("the victim is not running")?;
    let others: Vec<usize> = (0..n).filter(|&i| i != victim).collect();
    println!(
        "{} maintenance of {vid}: the other nodes close their links to it, draining",
        stamp(shared.start)
    );
    // Once `close_peer` returns, every message its links took has its outcome (the
    // ledger records it a moment later), and every later message fails: the senders'
    // handles point at the closed links until the victim is down.
    let mut closed_at = Vec::new();
    for &i in &others {
        if let Some(other) = shared.node(i) {
            other.close_peer(vid, true).await;
        }
        closed_at.push((i, lock(&shared.ledger).pair(i, victim).outcomes.len()));
    }
    let everything_read = wait_until(PHASE_TIMEOUT, || {
        let node = node.clone();
        let shared = shared.clone();
        let closed_at = closed_at.clone();
        async move {
            let all_delivered = {
                let mut ledger = lock(&shared.ledger);
                closed_at.iter().all(|&(i, end)| {
                    let pair = ledger.pair(i, victim);
                    (0..end).all(|seq| match pair.outcomes[seq] {
                        Outcome::Pending => false,
                        Outcome::Written => pair.is_delivered(seq),
                        Outcome::Failed(_) => true,
                    })
                })
            };
            all_delivered && node.inbound_connections().await == 0
        }
    })
    .await;
    if !everything_read {
        failures.push(format!(
            "{vid} did not read everything the others wrote to it within {PHASE_TIMEOUT:?}"
        ));
    }
    let received: u64 = others
        .iter()
        .map(|&i| lock(&shared.ledger).pair(i, victim).delivered_count)
        .sum();
    println!(
        "{} {vid} has read everything written to it ({received} messages) and has no \
         inbound connection left; closing it with drain",
        stamp(shared.start)
    );
    node.close(true).await;
    shared.nodes.borrow_mut()[victim] = None;
    drop(node);
    {
        let mut ledger = lock(&shared.ledger);
        for &i in &others {
            let pair = ledger.pair(i, victim);
            let next = pair.outcomes.len() as u64;
            pair.while_down = next..next;
        }
    }
    for &i in &others {
        shared.forget_peer(victim, i);
        // The next burst opens new links, which cannot connect and queue.
        shared.forget_peer(i, victim);
    }
    println!(
        "{} {vid} is down; the others keep sending to it",
        stamp(shared.start)
    );
    tokio::time::sleep(downtime).await;
    {
        let mut ledger = lock(&shared.ledger);
        for &i in &others {
            let pair = ledger.pair(i, victim);
            pair.while_down.end = pair.outcomes.len() as u64;
        }
    }
    let node = shared.start_node(victim).await?;
    println!(
        "{} {vid} restarted on {} (same id, same port)",
        stamp(shared.start),
        node.local_addr()
    );
    Ok(())
}

/// Stops the traffic and closes the cluster gracefully.
async fn shutdown(shared: &Rc<Shared>, failures: &mut Vec<String>) {
    shared.stop.set(true);
    println!(
        "{} traffic stopped; waiting for every outcome",
        stamp(shared.start)
    );
    let resolved = wait_until(PHASE_TIMEOUT, || {
        let shared = shared.clone();
        async move { lock(&shared.ledger).total_pending() == 0 }
    })
    .await;
    if !resolved {
        failures.push(format!(
            "{} messages still have no outcome after {PHASE_TIMEOUT:?}",
            lock(&shared.ledger).total_pending()
        ));
    }
    shared.quiet.set(true);
    print_metrics(shared).await;
    println!(
        "{} closing: every node closes its links to the others with drain",
        stamp(shared.start)
    );
    let nodes = shared.live_nodes();
    for node in &nodes {
        for other in &nodes {
            if other.id() != node.id() {
                node.close_peer(other.id(), true).await;
            }
        }
    }
    let disconnected = wait_until(PHASE_TIMEOUT, || {
        let nodes = nodes.clone();
        async move {
            for node in &nodes {
                if node.inbound_connections().await > 0 {
                    return false;
                }
            }
            true
        }
    })
    .await;
    if !disconnected {
        failures.push("inbound connections still open after every link closed".into());
    }
    for inbox in &shared.inboxes {
        let _ = inbox.send(Flush).await;
    }
    for node in &nodes {
        node.close(true).await;
    }
    println!("{} every node closed", stamp(shared.start));
}

/// Every live node's metrics (`Node::metrics`): reserves, links, inbound connections.
async fn print_metrics(shared: &Rc<Shared>) {
    println!("{} metrics:", stamp(shared.start));
    for node in shared.live_nodes() {
        let m = node.metrics().await;
        let (send, recv) = (&m.limits.send, &m.limits.receive);
        println!(
            "  {}: reserve in use send {} B (peak {} of {}), receive {} B (peak {} of {})",
            m.node,
            send.global_in_use,
            send.global_peak,
            send.limits.global_reserve,
            recv.global_in_use,
            recv.global_peak,
            recv.limits.global_reserve
        );
        for l in m.links.iter().filter(|l| l.counters.accepted > 0) {
            println!(
                "    out {} {:<6} pending {:>3} msgs {:>7} B  written {:>6} msgs {:>9} B  \
                 connections {}/{} attempts  failed {}",
                l.peer,
                l.kind.to_string(),
                l.queued + l.in_flight,
                l.pending_bytes,
                l.counters.written,
                l.counters.written_bytes,
                l.counters.connections,
                l.counters.connection_attempts,
                format_failed(&l.counters.failed)
            );
        }
        for i in &m.inbound {
            let c = &i.counters;
            println!(
                "    in  {} {:<6} received {:>6} msgs {:>9} B  processed {:>6}  expired {}  \
                 throttled {} ({} us)  corrupt frames {}  errors {}",
                i.peer,
                i.kind.to_string(),
                c.received,
                c.received_bytes,
                c.processed,
                c.expired,
                c.throttled,
                c.throttled_us,
                c.corrupt_frames,
                c.errors()
            );
        }
    }
    if shared.prometheus {
        if let Some(node) = shared.node(0) {
            println!(
                "{} node-1 in the Prometheus text format:",
                stamp(shared.start)
            );
            print!("{}", node.metrics().await.to_prometheus());
        }
    }
}

async fn run(options: Options) -> Result<Vec<String>, String> {
    let n = options.nodes;
    let ledger = Arc::new(Mutex::new(Ledger::new(n)));
    let inboxes = (0..n)
        .map(|me| {
            Inbox {
                me,
                ledger: ledger.clone(),
            }
            .start()
        })
        .collect();
    let burst = (options.rate as f64 * BURST_EVERY.as_secs_f64()).ceil() as usize;
    let shared = Rc::new(Shared {
        start: Instant::now(),
        port_base: options.port_base,
        burst,
        ledger,
        inboxes,
        nodes: RefCell::new(vec![None; n]),
        peers: RefCell::new(vec![None; n * n]),
        stop: Cell::new(false),
        quiet: Rc::new(Cell::new(false)),
        prometheus: options.prometheus,
    });
    for i in 0..n {
        let node = shared.start_node(i).await?;
        println!(
            "{} {} listening on {}",
            stamp(shared.start),
            node.id(),
            node.local_addr()
        );
    }
    println!(
        "{} traffic: every node sends {} messages every {:?} to every other ({} msg/s per pair)",
        stamp(shared.start),
        burst,
        BURST_EVERY,
        options.rate
    );
    for from in 0..n {
        for to in (0..n).filter(|&to| to != from) {
            actix::spawn(sender(shared.clone(), from, to));
        }
    }
    actix::spawn(monitor(shared.clone()));

    let total = Duration::from_secs_f64(options.seconds);
    let mut failures = Vec::new();
    let victim = n - 1;
    tokio::time::sleep(total.mul_f64(0.3)).await;
    maintenance(&shared, victim, total.mul_f64(0.25), &mut failures).await?;
    let elapsed = shared.start.elapsed();
    tokio::time::sleep(total.saturating_sub(elapsed)).await;
    shutdown(&shared, &mut failures).await;

    report(&shared, victim, &mut failures);
    Ok(failures)
}

/// Prints the final table and checks every pair's accounting.
fn report(shared: &Shared, victim: usize, failures: &mut Vec<String>) {
    let n = shared.n();
    let mut ledger = lock(&shared.ledger);
    println!();
    println!(
        "{:<18} {:>9} {:>9} {:>9}  {:<22} {:>5} {:>5} {:>9}",
        "sender -> receiver",
        "accepted",
        "written",
        "delivered",
        "failed",
        "lost",
        "dup",
        "reordered"
    );
    let mut totals = [0u64; 6];
    for from in 0..n {
        for to in (0..n).filter(|&to| to != from) {
            let link = format!("{} -> {}", Shared::id(from), Shared::id(to));
            let pair = ledger.pair(from, to);
            let accepted = pair.outcomes.len() as u64;
            let written = pair.written();
            let failed = pair.failed();
            let lost = pair.lost();
            println!(
                "{:<18} {:>9} {:>9} {:>9}  {:<22} {:>5} {:>5} {:>9}",
                link,
                accepted,
                written,
                pair.delivered_count,
                format_failed(&failed),
                lost,
                pair.duplicates,
                pair.reordered
            );
            for (t, v) in totals.iter_mut().zip([
                accepted,
                written,
                pair.delivered_count,
                failed.values().sum(),
                lost,
                pair.duplicates,
            ]) {
                *t += v;
            }
            let pending = pair.pending();
            if pending > 0 {
                failures.push(format!("{link}: {pending} messages never got an outcome"));
            }
            if lost > 0 {
                failures.push(format!(
                    "{link}: {lost} messages written but never delivered, without a failure"
                ));
            }
            for (reason, count) in pair.delivered_despite() {
                if reason != SendErrorKind::ConnectionLost {
                    failures.push(format!(
                        "{link}: {count} messages delivered although they failed with {reason}"
                    ));
                }
            }
            if pair.duplicates > 0 {
                failures.push(format!("{link}: {} duplicates", pair.duplicates));
            }
            if pair.reordered > 0 {
                failures.push(format!("{link}: {} delivered out of order", pair.reordered));
            }
            if pair.bogus > 0 {
                failures.push(format!(
                    "{link}: {} deliveries of messages never sent",
                    pair.bogus
                ));
            }
            if pair.delivered_count == 0 {
                failures.push(format!("{link}: nothing delivered"));
            }
        }
    }
    println!(
        "{:<18} {:>9} {:>9} {:>9}  {:<22} {:>5} {:>5}",
        "total", totals[0], totals[1], totals[2], totals[3], totals[4], totals[5]
    );
    println!();
    for from in (0..n).filter(|&from| from != victim) {
        let pair = ledger.pair(from, victim);
        let range = pair.while_down.clone();
        let sent = range.end - range.start;
        let delivered = range
            .clone()
            .filter(|&s| pair.is_delivered(s as usize))
            .count();
        println!(
            "{} -> {}: {sent} messages sent while {} was down, {delivered} delivered after its restart",
            Shared::id(from),
            Shared::id(victim),
            Shared::id(victim)
        );
        if sent == 0 || delivered == 0 {
            failures.push(format!(
                "{} -> {}: nothing sent while it was down reached it after the restart",
                Shared::id(from),
                Shared::id(victim)
            ));
        }
    }
}

fn main() -> ExitCode {
    let options = common::start(check);
    let limit = Duration::from_secs_f64(options.seconds) + Duration::from_secs(40);
    let result = actix::System::new().block_on(async move {
        match tokio::time::timeout(limit, run(options)).await {
            Ok(result) => result,
            Err(_) => Err(format!("the example did not finish within {limit:?}")),
        }
    });
    match result {
        Ok(failures) if failures.is_empty() => {
            println!(
                "ok: every accepted message was delivered or reported failed; \
                 no duplicate, no reordering"
            );
            ExitCode::SUCCESS
        }
        Ok(failures) => {
            for f in failures {
                eprintln!("FAILED: {f}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
