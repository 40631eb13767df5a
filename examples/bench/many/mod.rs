//! The `many-peers` workload: one node (the hub) connected to N peers (default
//! 1,000; `--quick`: 100; `--peers N`), the peers being nodes spread over a few
//! processes.
//!
//! The hub is a process of its own (`--many-hub`, [`hub`]), so that nothing else of
//! the benchmark is in its memory or its wake-ups; the peers are nodes in
//! `--peer-procs` processes (default 4; `--many-peers`, [`peers`]), each node with
//! its own id and its own listener on a free port of 127.0.0.1. Every node runs with
//! the library's defaults (lossless links; heartbeats every second on links that hold
//! messages, every 5 s on an idle peer's keeper link), except the
//! hub's admission limits: as many handshakes may come from one address as from all
//! (here every peer connects from 127.0.0.1; on real hosts each has its own) and at
//! least three inbound connections per peer are taken ([`hub::admission`]). Each
//! peer opens its three links to the hub and the hub its three to the peer
//! (`--peer-links` chooses fewer kinds: `small` alone is the least a peer that
//! sends and receives needs). The phases, and what each measures:
//!
//! 1. **Set-up.** Every peer node sends the hub one request over each of its links,
//!    all at once: urgent 64 B, small 64 B, large 65 KiB; the hub answers each over
//!    its own link of the same kind. A peer is connected once its answers are in: it
//!    then has six connections to the hub, three each way. `setup s` runs from the
//!    parent's `connect` command until every peer process has all its answers.
//!    `setup overflows`: the growth of `ListenOverflows` in `/proc/net/netstat`
//!    meanwhile (see 5; the hub's listener takes the 3N connections in one burst).
//!    The hub's `Node::links()` should then show 3N connected links and
//!    `Node::inbound_connections()` 3N connections (both in the details, with the
//!    hub's refused connections and the peers' disconnect reasons).
//! 2. **Idle.** After a settling pause nothing is sent for the idle window (30 s;
//!    `--quick`: 3 s; `--idle-secs`). Over it: the hub's CPU time (user + system, all
//!    threads, `getrusage`) as a share of one core (`idle CPU %`); its wake-ups per
//!    second (`wakeups/s`: the voluntary context switches of all its threads,
//!    `ru_nvcsw`; each is a thread going to sleep, in `epoll_wait` or on a futex,
//!    and so one wake-up when it runs again; by thread in the details); the same
//!    per peer per keepalive interval (`wakeups/peer/ka`: wake-ups/s x the idle
//!    keepalive interval, `HeartbeatConfig::relaxed_interval`, / N); its preemptions
//!    (`preempted/s`, `ru_nivcsw`, which depend on the machine's load); the
//!    timeslices its live threads ran
//!    (`timeslices/s`, the third field of `/proc/self/task/*/schedstat`: wake-ups
//!    and preemptions together); and the CPU of the peer processes, all N peers
//!    together (`peers CPU %`).
//! 3. **Memory.** The hub's userspace memory per peer: the growth of its `RssAnon`
//!    (`/proc/self/status`: heap and stacks, not files or code) from before the
//!    set-up to the end of the idle window, divided by N (`KiB/peer`), and the same
//!    after `malloc_trim(0)` (`KiB/peer trim`: freed memory the allocator kept no
//!    longer counts). Apart from it, the kernel memory of the hub's sockets
//!    (`kernel KiB/peer`): what `ss -tamnp` says is charged to their buffers
//!    (`skmem` `r` + `w` + `f`: data received and not read, data queued to send,
//!    memory reserved ahead) plus one TCP socket structure each (the object size
//!    of the `TCP` cache of `/proc/slabinfo`), divided by N; without `ss` or
//!    without root (`/proc/slabinfo`) the figure is left out and the details have
//!    what was read. The file, inode and epoll entry of each socket are not
//!    counted.
//! 4. **Traffic.** The hub sends 100 messages of 64 B (`--quick`: 20) to every peer
//!    and every peer sends as many to the hub, all at once, over the small links,
//!    each message's outcome awaited (`Acknowledged`). Every message is checked
//!    where it arrives: per (node, link kind) its sequence numbers must run from 0 up
//!    by one and its size must be right ([`tally`]), and the counts must be exact:
//!    a lost, duplicated, reordered or corrupt message fails the run. `msgs/s`
//!    counts both directions, from the command to the last delivery.
//! 5. **Restart.** The hub process is killed (SIGKILL). Once every peer link has
//!    reported the loss, every peer node sends one message over each of its links
//!    to the hub; they cannot connect and retry with the library's backoff
//!    (jittered, capped at 1 s). After 2 s (`--quick`: 1 s) a new hub process starts
//!    on the same port. `reconnect s`: from the new hub listening until the last of
//!    the 3N links connected (each peer process logs the wall-clock time of every
//!    connection), `reconnect p50 s` until half of them had; `delivered s`: until
//!    the new hub had all 3N messages (checked like the traffic; every send must end
//!    `Acknowledged`). `refused`: connections the new hub refused
//!    (`Node::refused_connections`, by reason in the details); `listen overflows`:
//!    the growth of `ListenOverflows` in `/proc/net/netstat` over the reconnection
//!    (the whole network namespace: connections dropped because a listen queue was
//!    full, which the node never sees). The hub's listen backlog is the library's
//!    1024 (`--hub-backlog`), capped by `net.core.somaxconn` (both in the details).
//!
//! Targets (issue 14's): idle CPU under 1 % of a core, at most one wake-up per peer
//! per keepalive interval, at most 40 KiB of userspace memory per peer (`KiB/peer
//! trim`: what the hub holds; the untrimmed growth adds what glibc kept of the
//! set-up burst's freed buffers, which depends on the allocator, not on the
//! library: docs/performance.md, "Memory per peer"), no
//! connection dropped by a full listen queue after the restart. One run, not
//! repeated; the figures of time depend on the machine's load, the counts and the
//! memory much less.

mod hub;
mod peers;
mod sys;
mod tally;

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use internode::node::{NodeConfig, Peer, SendError, Sent};
use internode::{LinkKind, NodeId};
use serde_json::{json, Value};

pub use hub::hub_role;
pub use peers::peers_role;

use crate::child::{self, ChildProc};
use crate::impls::Impl;
use crate::messages::serde_msgs::Blob;
use crate::messages::Body;
use crate::payload;
use crate::stats::{Key, Metric, Results};
use crate::workloads::{Cores, Workload, CONTROL_TIMEOUT};
use crate::BenchError;
use sys::Usage;

/// The hub's node id.
pub const HUB_ID: NodeId = NodeId(1);
/// The id of peer number 0.
const FIRST_PEER_ID: u64 = 100_000;
/// Payload size of the traffic phase's messages (they go over the small links).
pub const TRAFFIC_SIZE: usize = 64;
/// The size of the messages that open a peer's link of `kind` (and of those sent
/// over it while the hub is down): 64 B on the urgent and small links, 65 KiB on
/// the large one.
pub fn lane_size(kind: LinkKind) -> usize {
    match kind {
        LinkKind::Urgent => 64,
        LinkKind::Small => TRAFFIC_SIZE,
        LinkKind::Large => LinkKind::LARGE_THRESHOLD + 1024,
    }
}

/// How long a request of the set-up may wait for its answer.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long starting a process's nodes may take.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A command to run the hub under (memory profiling; see [`Hub::start`]).
const HUB_WRAP_ENV: &str = "BENCH_HUB_WRAP";
/// How long the traffic and the reconnection may take to be delivered.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Open files a peer node takes: its listener, six connections, its bulk thread's
/// runtime, with room to spare.
const FILES_PER_PEER_NODE: u64 = 12;
/// Open files per peer at the hub: six connections, with room to spare.
const FILES_PER_HUB_PEER: u64 = 7;

/// `urgent,small,large`: link kinds as the command line and the peer processes
/// take them.
pub fn kinds_word(kinds: &[LinkKind]) -> String {
    kinds
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The inverse of [`kinds_word`].
pub fn parse_kinds(word: &str) -> Option<Vec<LinkKind>> {
    word.split(',')
        .map(|name| LinkKind::ALL.into_iter().find(|k| k.to_string() == name))
        .collect()
}

/// The id of peer number `i`.
pub fn peer_id(i: usize) -> NodeId {
    NodeId(FIRST_PEER_ID + i as u64)
}

/// A message body: sequence number `seq`, `size` bytes as the receiver counts them.
pub fn body(seq: u64, size: usize) -> Body {
    Body {
        seq,
        filler: payload::filler(size),
    }
}

/// What the many-peers workload does.
#[derive(Debug, Clone)]
pub struct ManyOptions {
    /// Peers of the hub.
    pub peers: usize,
    /// The links each peer opens to the hub, and the hub to it.
    pub kinds: Vec<LinkKind>,
    /// The hub's listen backlog.
    pub backlog: u32,
    /// Processes the peers are spread over.
    pub procs: usize,
    /// The idle window.
    pub idle: Duration,
    /// Messages each way per peer in the traffic phase.
    pub messages: u64,
    /// How long the hub is down before it restarts.
    pub down: Duration,
}

impl ManyOptions {
    /// The full run's (1,000 peers, 30 s idle) or `--quick`'s (100 peers, 3 s idle)
    /// options, with the command line's peers, link kinds, hub backlog, idle
    /// seconds and processes.
    pub fn new(
        quick: bool,
        peers: Option<usize>,
        kinds: Vec<LinkKind>,
        backlog: Option<u32>,
        idle_secs: Option<f64>,
        procs: Option<usize>,
    ) -> ManyOptions {
        let peers = peers.unwrap_or(if quick { 100 } else { 1000 }).max(1);
        let mut kinds = if kinds.is_empty() {
            LinkKind::ALL.to_vec()
        } else {
            kinds
        };
        kinds.sort_unstable();
        kinds.dedup();
        ManyOptions {
            peers,
            kinds,
            backlog: backlog.unwrap_or(NodeConfig::DEFAULT_LISTEN_BACKLOG),
            procs: procs.unwrap_or(4).clamp(1, peers),
            idle: Duration::from_secs_f64(idle_secs.unwrap_or(if quick { 3.0 } else { 30.0 })),
            messages: if quick { 20 } else { 100 },
            down: Duration::from_millis(if quick { 1000 } else { 2000 }),
        }
    }

    /// A bound on how long the workload takes.
    pub fn time_bound(&self) -> Duration {
        self.idle
            + self.down
            + Duration::from_secs(60)
            + Duration::from_millis(60) * self.peers as u32
    }

    /// The number of peers of each process.
    fn shares(&self) -> Vec<usize> {
        (0..self.procs)
            .map(|i| self.peers / self.procs + usize::from(i < self.peers % self.procs))
            .collect()
    }
}

/// `m` messages of [`TRAFFIC_SIZE`] bytes (sequence 0 to m - 1) to `peer`, all
/// queued at once; their outcomes, in order.
pub fn send_traffic(peer: &Peer, m: u64) -> impl Future<Output = Vec<Result<Sent, SendError>>> {
    let sends: Vec<_> = (0..m)
        .map(|seq| peer.send(Blob(body(seq, TRAFFIC_SIZE))))
        .collect();
    futures_util::future::join_all(sends)
}

/// Awaits every peer's outcomes: JSON `ok` (`Acknowledged`: the links are
/// lossless), `failed`, `first_failure`.
pub async fn outcomes<F>(mut all: FuturesUnordered<F>) -> Value
where
    F: Future<Output = Vec<Result<Sent, SendError>>>,
{
    let (mut ok, mut failed, mut first_failure) = (0u64, 0u64, None);
    while let Some(outcomes) = all.next().await {
        for outcome in outcomes {
            match outcome {
                Ok(Sent::Acknowledged) => ok += 1,
                other => {
                    failed += 1;
                    first_failure.get_or_insert_with(|| format!("{other:?}"));
                }
            }
        }
    }
    json!({ "ok": ok, "failed": failed, "first_failure": first_failure })
}

/// The hub process and when it started listening (µs since the UNIX epoch).
struct Hub {
    proc: ChildProc,
    port: u16,
    listening_us: u64,
}

impl Hub {
    /// Starts a hub for `peers` peers on `port` (0: a free one) with a listen
    /// backlog of `backlog`.
    async fn start(port: u16, peers: usize, backlog: u32) -> Result<Hub, BenchError> {
        let args = [
            "--many-hub".to_owned(),
            port.to_string(),
            peers.to_string(),
            backlog.to_string(),
        ];
        // Memory profiling (e.g. `BENCH_HUB_WRAP="heaptrack -o /tmp/hub"`): the hub
        // runs under the wrapper and exits after the memory phase (so what it still
        // holds then is what the profiler reports as leaked); the run fails there.
        let wrapper: Vec<String> = std::env::var(HUB_WRAP_ENV)
            .map(|w| w.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let env: &[(&str, &str)] = if wrapper.is_empty() {
            &[]
        } else {
            &[(hub::EXIT_AFTER_TRIM_ENV, "1")]
        };
        let mut proc = ChildProc::spawn_wrapped("many-peers hub", &wrapper, &args, env)?;
        // A wrapper may print lines of its own first: skip them, within the start
        // timeout (a hub that ends fails at once).
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let ready = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = proc.recv(left).await?;
            let mut words = line.split_whitespace();
            if words.next() == Some("ready") {
                break words.map(str::to_owned).collect::<Vec<_>>();
            }
            if wrapper.is_empty() {
                return Err(BenchError::Failed(format!(
                    "many-peers hub answered {line:?}, expected \"ready\""
                )));
            }
        };
        let word = |i: usize| ready.get(i).and_then(|w| w.parse::<u64>().ok());
        match (word(0), word(1)) {
            (Some(port), Some(listening_us)) => Ok(Hub {
                proc,
                port: port as u16,
                listening_us,
            }),
            _ => Err(BenchError::Failed(format!("hub: bad ready line {ready:?}"))),
        }
    }

    /// Its usage so far and its `RssAnon` in KiB.
    async fn stats(&mut self) -> Result<(Usage, u64), BenchError> {
        let words = self.proc.ask("stats", "stats", CONTROL_TIMEOUT).await?;
        let usage = Usage::parse(&words);
        let anon = words.get(4).and_then(|w| w.parse().ok());
        usage
            .zip(anon)
            .ok_or_else(|| BenchError::Failed(format!("hub: bad stats {words:?}")))
    }
}

/// Sends `command` to `child` and parses the rest of its answer, which must start
/// with `expect`, as JSON.
async fn ask_json(
    child: &mut ChildProc,
    command: &str,
    expect: &str,
    timeout: Duration,
) -> Result<Value, BenchError> {
    child.send(command)?;
    let line = child.recv(timeout).await?;
    line.strip_prefix(expect)
        .and_then(|rest| serde_json::from_str(rest.trim()).ok())
        .ok_or_else(|| BenchError::Failed(format!("answered {line:?} to {command:?}")))
}

fn count(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or(0)
}

/// `Err` unless a `sent`/`resent` answer says `expected` sends, all acknowledged.
fn check_sent(who: &str, expected: u64, sent: &Value) -> Result<(), BenchError> {
    if count(sent, "ok") == expected && count(sent, "failed") == 0 {
        return Ok(());
    }
    Err(BenchError::Lost(format!(
        "many-peers: {who} sent {expected} messages: {sent}"
    )))
}

/// `Err` unless a `tally` answer has exactly `per_key` messages, in sequence, of
/// each of `keys` (node, lane) pairs and nothing bad.
fn check_tally(who: &str, keys: usize, per_key: u64, tally: &Value) -> Result<(), BenchError> {
    let exact = count(tally, "count") == keys as u64 * per_key
        && count(tally, "bad") == 0
        && count(tally, "keys") == keys as u64
        && count(tally, "min") == per_key
        && count(tally, "max") == per_key;
    if exact {
        return Ok(());
    }
    Err(BenchError::Lost(format!(
        "many-peers: {who} expected {per_key} messages in sequence from each of {keys} senders: {tally}"
    )))
}

/// Adds the reason counts of an `events` answer to `into`.
fn add_reasons(into: &mut serde_json::Map<String, Value>, events: &Value) {
    if let Some(reasons) = events["reasons"].as_object() {
        for (reason, n) in reasons {
            let total = into.get(reason).and_then(Value::as_u64).unwrap_or(0);
            into.insert(reason.clone(), json!(total + n.as_u64().unwrap_or(0)));
        }
    }
}

/// Every peer process's `events`: the disconnect reasons summed, the connection
/// times (µs since the UNIX epoch) and the peer restarts seen.
async fn events(procs: &mut [ChildProc]) -> Result<(Value, Vec<u64>, u64), BenchError> {
    let mut reasons = serde_json::Map::new();
    let (mut connected, mut restarted) = (Vec::new(), 0);
    for proc in procs {
        let events = ask_json(proc, "events", "events", CONTROL_TIMEOUT).await?;
        add_reasons(&mut reasons, &events);
        connected.extend(
            events["connected_us"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64),
        );
        restarted += count(&events, "peer_restarted");
    }
    connected.sort_unstable();
    Ok((Value::Object(reasons), connected, restarted))
}

/// The CPU time of all peer processes so far.
async fn peers_cpu(procs: &mut [ChildProc]) -> Result<Duration, BenchError> {
    let mut total = Duration::ZERO;
    for proc in procs {
        let words = proc.ask("cpu", "cpu", CONTROL_TIMEOUT).await?;
        let us = words
            .first()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| BenchError::Failed(format!("peers: bad cpu answer {words:?}")))?;
        total += Duration::from_micros(us);
    }
    Ok(total)
}

/// The growth of `ListenOverflows` and `ListenDrops` since `before`.
fn listen_growth(before: Option<(u64, u64)>) -> Option<(u64, u64)> {
    let (b, a) = (before?, sys::listen_drops()?);
    Some((a.0.saturating_sub(b.0), a.1.saturating_sub(b.1)))
}

fn listen_json(growth: Option<(u64, u64)>) -> Value {
    match growth {
        Some((overflows, drops)) => json!({ "overflows": overflows, "drops": drops }),
        None => json!("unreadable"),
    }
}

/// Seconds from `from_us` until the `q` quantile of `times_us` (sorted).
fn seconds_until(times_us: &[u64], q: f64, from_us: u64) -> f64 {
    let i = ((times_us.len() as f64 * q).ceil() as usize).clamp(1, times_us.len().max(1)) - 1;
    times_us
        .get(i)
        .map_or(f64::NAN, |&t| t.saturating_sub(from_us) as f64 / 1e6)
}

/// Runs the workload and adds its figures (and details) to `results`.
pub async fn measure(
    options: &ManyOptions,
    settle: Duration,
    results: &mut Results,
) -> Result<(), BenchError> {
    let n = options.peers;
    // Links per peer each way.
    let k = options.kinds.len();
    let shares = options.shares();
    let files = child::raise_fd_limit();
    let need = (n as u64 * FILES_PER_HUB_PEER).max(shares[0] as u64 * FILES_PER_PEER_NODE) + 64;
    if files < need {
        return Err(BenchError::Failed(format!(
            "many-peers: {n} peers in {} processes need about {need} open files per process; \
             the limit is {files} (ulimit -Hn), use fewer --peers or more --peer-procs",
            options.procs
        )));
    }
    let key = |metric| Key {
        cores: Cores::Idle,
        workload: Workload::ManyPeers,
        size: n,
        metric,
        imp: Impl::Internode,
    };
    // An idle peer's keepalive interval: its keeper pings at the idle interval.
    let interval = NodeConfig::new(HUB_ID, "127.0.0.1:0".parse().expect("an address"))
        .heartbeat
        .relaxed_interval();
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let mut details = serde_json::Map::new();
    details.insert(
        "run".into(),
        json!({
            "peers": n,
            "peer_processes": options.procs,
            "links_each_way": kinds_word(&options.kinds),
            "keepalive_interval_s": interval.as_secs_f64(),
            "idle_window_s": options.idle.as_secs_f64(),
            "messages_each_way_per_peer": options.messages,
            "hub_down_s": options.down.as_secs_f64(),
            "hub_admission": format!("{:?}", hub::admission(n)),
            "hub_listen_backlog": options.backlog,
            "somaxconn": somaxconn,
        }),
    );

    // The processes, every node listening before anything is measured.
    let mut hub = Hub::start(0, n, options.backlog).await?;
    let mut procs = Vec::with_capacity(shares.len());
    let mut first = 0;
    // Every link logs a warning when the hub is killed: thousands of lines, which
    // the details count instead (unless RUST_LOG asks for them).
    let quiet: &[(&str, &str)] = match std::env::var_os("RUST_LOG") {
        Some(_) => &[],
        None => &[("RUST_LOG", "error")],
    };
    for (i, &share) in shares.iter().enumerate() {
        procs.push(ChildProc::spawn_with_env(
            format!("many-peers peers {i}"),
            &[
                "--many-peers".into(),
                first.to_string(),
                share.to_string(),
                hub.port.to_string(),
                kinds_word(&options.kinds),
            ],
            quiet,
        )?);
        first += share;
    }
    for proc in &mut procs {
        proc.expect("ready", START_TIMEOUT).await?;
    }
    tokio::time::sleep(settle).await;

    // 1. Set-up.
    let (_, anon_before) = hub.stats().await?;
    let listen_before = sys::listen_drops();
    let started = Instant::now();
    for proc in &mut procs {
        proc.send("connect")?;
    }
    for proc in &mut procs {
        proc.expect("connected", SETUP_TIMEOUT + CONTROL_TIMEOUT)
            .await?;
    }
    results.add(key(Metric::SetupS), started.elapsed().as_secs_f64());
    let setup_listen = listen_growth(listen_before);
    if let Some((overflows, _)) = setup_listen {
        results.add(key(Metric::SetupListenOverflows), overflows as f64);
    }
    let links = ask_json(&mut hub.proc, "links", "links", CONTROL_TIMEOUT).await?;
    let refused = ask_json(&mut hub.proc, "refused", "refused", CONTROL_TIMEOUT).await?;
    let (reasons, connected, _) = events(&mut procs).await?;
    details.insert(
        "setup".into(),
        json!({
            "hub_links": links,
            "hub_refused": refused,
            "peer_links_connected": connected.len(),
            "peer_disconnects": reasons,
            "listen_queue": listen_json(setup_listen),
        }),
    );
    let connected_links = links["states"]["connected"].as_u64().unwrap_or(0);
    let inbound = count(&links, "inbound_connections");
    if connected_links != (k * n) as u64 || inbound != (k * n) as u64 {
        eprintln!(
            "many-peers: after the set-up the hub has {connected_links} connected links and \
             {inbound} inbound connections, expected {} each",
            k * n
        );
    }

    // 2. Idle.
    tokio::time::sleep(settle).await;
    let peers_before = peers_cpu(&mut procs).await?;
    let threads_before = ask_json(&mut hub.proc, "threads", "threads", CONTROL_TIMEOUT).await?;
    let (before, _) = hub.stats().await?;
    let window_started = Instant::now();
    tokio::time::sleep(options.idle).await;
    let (after, anon_after) = hub.stats().await?;
    let window = window_started.elapsed().as_secs_f64();
    let threads_after = ask_json(&mut hub.proc, "threads", "threads", CONTROL_TIMEOUT).await?;
    // Each thread's wake-ups per second over the window (threads that lived through it).
    let thread_wakeups: serde_json::Map<String, Value> = threads_after
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(thread, after)| {
            let before = threads_before[thread].as_u64()?;
            let per_s = after.as_u64()?.saturating_sub(before) as f64 / window;
            Some((thread.clone(), json!((per_s * 10.0).round() / 10.0)))
        })
        .collect();
    let peers_after = peers_cpu(&mut procs).await?;
    let per_s = |a: u64, b: u64| a.saturating_sub(b) as f64 / window;
    let wakeups = per_s(after.voluntary, before.voluntary);
    results.add(
        key(Metric::IdleCpuPct),
        after.cpu.saturating_sub(before.cpu).as_secs_f64() / window * 100.0,
    );
    results.add(key(Metric::WakeupsPerS), wakeups);
    results.add(
        key(Metric::WakeupsPerPeerKeepalive),
        wakeups * interval.as_secs_f64() / n as f64,
    );
    results.add(
        key(Metric::PreemptedPerS),
        per_s(after.involuntary, before.involuntary),
    );
    results.add(
        key(Metric::TimeslicesPerS),
        per_s(after.timeslices, before.timeslices),
    );
    results.add(
        key(Metric::PeersCpuPct),
        peers_after.saturating_sub(peers_before).as_secs_f64() / window * 100.0,
    );

    // 3. Memory.
    let trimmed = hub.proc.ask("trim", "trim", CONTROL_TIMEOUT).await?;
    let anon_trimmed: u64 = trimmed
        .first()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| BenchError::Failed(format!("hub: bad trim answer {trimmed:?}")))?;
    let per_peer = |kib: u64| kib.saturating_sub(anon_before) as f64 / n as f64;
    results.add(key(Metric::KibPerPeer), per_peer(anon_after));
    results.add(key(Metric::KibPerPeerTrimmed), per_peer(anon_trimmed));
    let sockets = sys::socket_memory(hub.proc.pid());
    let tcp_socket = sys::tcp_socket_size();
    // Without ss or /proc/slabinfo (root only) the figure would be a part of the
    // whole: the details then have the part that was read.
    if let (Some(sockets), Some(tcp_socket)) = (sockets, tcp_socket) {
        let bytes = sockets.buffer_bytes + sockets.sockets * tcp_socket;
        results.add(
            key(Metric::KernelKibPerPeer),
            bytes as f64 / 1024.0 / n as f64,
        );
    }
    let links = ask_json(&mut hub.proc, "links", "links", CONTROL_TIMEOUT).await?;
    let (reasons, connected, _) = events(&mut procs).await?;
    details.insert(
        "idle".into(),
        json!({
            "window_s": window,
            "hub_cpu_s": after.cpu.saturating_sub(before.cpu).as_secs_f64(),
            "hub_voluntary_switches": after.voluntary.saturating_sub(before.voluntary),
            "hub_involuntary_switches": after.involuntary.saturating_sub(before.involuntary),
            "hub_timeslices": after.timeslices.saturating_sub(before.timeslices),
            "hub_wakeups_per_s_by_thread": thread_wakeups,
            "hub_rss_anon_kib": {
                "before_setup": anon_before,
                "after_idle": anon_after,
                "after_trim": anon_trimmed,
            },
            "hub_sockets": sockets.map(|s| s.sockets),
            "hub_socket_buffer_bytes": sockets.map(|s| s.buffer_bytes),
            "tcp_socket_struct_bytes": tcp_socket,
            "hub_links_after": links,
            "peer_links_connected": connected.len(),
            "peer_disconnects": reasons,
        }),
    );

    // 4. Traffic, both ways at once.
    let m = options.messages;
    let started = Instant::now();
    hub.proc.send(&format!("send {m}"))?;
    for proc in &mut procs {
        proc.send(&format!("send {m}"))?;
    }
    let sent = hub.proc.recv(DELIVERY_TIMEOUT).await?;
    let sent: Value = sent
        .strip_prefix("sent")
        .and_then(|rest| serde_json::from_str(rest.trim()).ok())
        .ok_or_else(|| BenchError::Failed(format!("hub answered {sent:?} to send")))?;
    check_sent("the hub", n as u64 * m, &sent)?;
    for (proc, &share) in procs.iter_mut().zip(&shares) {
        let line = proc.recv(DELIVERY_TIMEOUT).await?;
        let sent: Value = line
            .strip_prefix("sent")
            .and_then(|rest| serde_json::from_str(rest.trim()).ok())
            .ok_or_else(|| BenchError::Failed(format!("peers answered {line:?} to send")))?;
        check_sent("a peer process", share as u64 * m, &sent)?;
    }
    let wait = |count: u64| format!("wait {count} {}", DELIVERY_TIMEOUT.as_millis());
    let tally = ask_json(
        &mut hub.proc,
        &wait(n as u64 * m),
        "tally",
        DELIVERY_TIMEOUT + CONTROL_TIMEOUT,
    )
    .await?;
    check_tally("the hub", n, m, &tally)?;
    for (proc, &share) in procs.iter_mut().zip(&shares) {
        let tally = ask_json(
            proc,
            &wait(share as u64 * m),
            "tally",
            DELIVERY_TIMEOUT + CONTROL_TIMEOUT,
        )
        .await?;
        check_tally("a peer process", share, m, &tally)?;
    }
    let traffic = started.elapsed().as_secs_f64();
    results.add(key(Metric::MsgsPerS), (2 * n as u64 * m) as f64 / traffic);
    let (reasons, _, _) = events(&mut procs).await?;
    details.insert(
        "traffic".into(),
        json!({
            "messages": 2 * n as u64 * m,
            "seconds": traffic,
            "peer_disconnects": reasons,
        }),
    );

    // 5. Restart: the hub killed, the peers with something to send, a new hub.
    let port = hub.port;
    drop(hub);
    // Every link must know the hub is gone before the peers send: a message taken
    // by a link still connected to the dead hub may be written to it, and is then
    // failed `PeerRestarted` by the new one (it may have been received before the
    // crash: lossless links deliver at most once across a peer's restart).
    for (proc, &share) in procs.iter_mut().zip(&shares) {
        let links = (k * share) as u64;
        let command = format!("down {links} {}", CONTROL_TIMEOUT.as_millis());
        let down = proc.ask(&command, "down", 2 * CONTROL_TIMEOUT).await?;
        if down.first().and_then(|d| d.parse::<u64>().ok()) < Some(links) {
            return Err(BenchError::Timeout(format!(
                "many-peers: {links} links should have lost the killed hub, {down:?} did"
            )));
        }
    }
    for proc in &mut procs {
        proc.ask("resend", "queued", CONTROL_TIMEOUT).await?;
    }
    tokio::time::sleep(options.down).await;
    let (down_reasons, _, _) = events(&mut procs).await?;
    let listen_before = sys::listen_drops();
    let mut hub = Hub::start(port, n, options.backlog).await?;
    let tally = ask_json(
        &mut hub.proc,
        &wait((k * n) as u64),
        "tally",
        DELIVERY_TIMEOUT + CONTROL_TIMEOUT,
    )
    .await?;
    let delivered_us = hub::epoch_us();
    let restart_listen = listen_growth(listen_before);
    let (reasons, connected, restarted) = events(&mut procs).await?;
    let refused = ask_json(&mut hub.proc, "refused", "refused", CONTROL_TIMEOUT).await?;
    if let Err(e) = check_tally("the restarted hub", k * n, 1, &tally) {
        let mut links = Vec::new();
        for proc in &mut procs {
            links.push(ask_json(proc, "links", "links", CONTROL_TIMEOUT).await?);
            let command = format!("resent {}", CONTROL_TIMEOUT.as_millis());
            links.push(ask_json(proc, &command, "resent", 2 * CONTROL_TIMEOUT).await?);
        }
        let hub_links = ask_json(&mut hub.proc, "links", "links", CONTROL_TIMEOUT).await?;
        return Err(BenchError::Lost(format!(
            "{e}; {} of the peers' {} links connected since the hub restarted; their \
             disconnect reasons since: {reasons}; the hub refused: {refused}; the hub's \
             links: {hub_links}; the peers' links: {}",
            connected.len(),
            k * n,
            Value::Array(links)
        )));
    }
    for (proc, &share) in procs.iter_mut().zip(&shares) {
        let command = format!("resent {}", DELIVERY_TIMEOUT.as_millis());
        let resent = ask_json(proc, &command, "resent", DELIVERY_TIMEOUT + CONTROL_TIMEOUT).await?;
        check_sent(
            "a peer process after the restart",
            (k * share) as u64,
            &resent,
        )?;
    }
    let from = hub.listening_us;
    results.add(
        key(Metric::ReconnectS),
        seconds_until(&connected, 1.0, from),
    );
    results.add(
        key(Metric::ReconnectP50S),
        seconds_until(&connected, 0.5, from),
    );
    results.add(
        key(Metric::DeliveredS),
        delivered_us.saturating_sub(from) as f64 / 1e6,
    );
    let refused_total: u64 = refused
        .as_object()
        .map_or(0, |r| r.values().filter_map(Value::as_u64).sum());
    results.add(key(Metric::Refused), refused_total as f64);
    if let Some((overflows, _)) = restart_listen {
        results.add(key(Metric::ListenOverflows), overflows as f64);
    }
    let spread = [0.1, 0.5, 0.9].map(|q| seconds_until(&connected, q, from));
    details.insert(
        "restart".into(),
        json!({
            "peer_disconnects_while_down": down_reasons,
            "peer_disconnects_after_restart": reasons,
            "peer_links_connected": connected.len(),
            "connected_s_p10_p50_p90": spread,
            "peer_restarted_events": restarted,
            "hub_refused": refused,
            "listen_queue": listen_json(restart_listen),
        }),
    );
    results
        .details
        .insert(Workload::ManyPeers.name().into(), Value::Object(details));
    Ok(())
}
