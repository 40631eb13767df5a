//! internode against hand-written TCP, sender and receiver in two processes on
//! 127.0.0.1.
//!
//! ```sh
//! cargo run --profile bench --example bench                  # full: 5 repetitions of 1 s per figure, about 6 minutes
//! cargo run --profile bench --example bench -- --quick       # 3 of 0.2 s, under a minute (CI)
//! cargo run --profile bench --example bench -- --only rr,urgent --spinners 2 --json /tmp/bench.json
//! cargo run --profile bench --example bench -- --only oneway --sizes 64 --impls internode,internode-hand
//! cargo run --profile bench --example bench -- --impls internode,internode-tls --only oneway,rr --sizes 64,65536,1048576
//! cargo run --profile bench --example bench -- --quick --count-allocs --only oneway,rr64 --spinners 0
//! cargo run --profile bench --example bench -- --only many-peers                   # 1,000 peers, 30 s idle: under a minute
//! cargo run --profile bench --example bench -- --only many-peers --peers 2000 --idle-secs 60 --peer-links small
//! ```
//!
//! The `bench` profile is `release` with debug information (for `perf`); its binary
//! is `target/release/examples/bench`. docs/performance.md says how to profile it.
//!
//! Seven implementations carry the same payloads (a sequence number and filler); all
//! but `internode-tls` run by default:
//!
//! - `internode`: the full stack as an application uses it, the one the targets are
//!   about: `#[derive(Serialize, Deserialize)]` messages declared with
//!   `internode::message!` / `internode::request!` ([`messages`]) through
//!   `Peer::send` / `Peer::request`, the credit line, the link actor, envelope and
//!   CRC frames, TCP, the inbound connection, decode and the handler actor
//!   ([`via_internode`]), with lossless links (the default: sequence numbers,
//!   acknowledgements, replay after a reconnect; a send ends `Acknowledged`);
//! - `internode-hand`: `internode` with a hand-written `Message` impl carrying
//!   exactly the baselines' payload (no serde), to measure what serde costs (the `vs hand`
//!   column); not in the urgent and idle-memory workloads, which do not depend on
//!   the encoding;
//! - `internode-batch`: `internode`'s one-way messages through the batch path,
//!   `Peer::send_many` of about 64 KiB of messages at a time (one-way only);
//! - `internode-lossy`: `internode` with every link kind lossy on both nodes (a send
//!   ends `Written`), to measure what losslessness costs;
//! - `internode-tls` (opt-in: `--impls internode,internode-tls`): `internode` with
//!   TLS on both nodes (rustls, TLS 1.3, mutual), to measure what TLS costs; the
//!   parent makes a CA and the nodes' certificates with rcgen in a temporary
//!   directory for the run ([`tls`]), and the table gives each of its figures over
//!   `internode`'s (`vs plain`) and ends with those ratios;
//! - `raw`: tokio TCP with pre-encoded length-prefixed frames written in large
//!   batches, about the limit of the machine ([`raw`]);
//! - `framed`: tokio-util `Framed` with a hand-written CRC-32 codec, what a developer
//!   would write ([`framed`]), the baseline of the targets.
//!
//! Each implementation's receiver is another process, this program started again in
//! a hidden role ([`server`], [`child`]; the many-peers workload's hub and peers
//! too); the parent sends and drives the receivers over their standard input and
//! output. Each process runs an actix `System` on one thread (internode nodes run
//! their large links on a thread of their own). Workloads ([`workloads`], [`idle`],
//! [`many`]): one-way throughput (64 B, 1 KiB, 64 KiB, 1 MiB) with the CPU time per
//! message of the sending and the receiving process, request/response latency with
//! one request outstanding, throughput with 64 outstanding (and its CPU time per
//! request), urgent-link latency while the large link is full (internode only),
//! resident memory per idle connected peer, and one node connected to 1,000 peers
//! (`many-peers`, `internode` only: set-up time, the hub's idle CPU, wake-ups and
//! memory per peer, traffic with every peer, reconnection after the hub restarts).
//! The request workloads run a second time with every core kept busy by spinning
//! processes at nice 19: an idle core sleeps between messages, so an idle round trip
//! mostly measures the wake-up. With `--count-allocs` the one-way and `rr64` figures
//! also have the heap allocations per message of each process ([`allocs`]).
//!
//! Every message is checked at its receiver (count, sequence, size; responses by
//! their request's sequence number): a lost, duplicated, reordered or corrupt message
//! fails the run (exit code 1), as does any error or a run over its time bound.
//! Targets (issue 13's, against `framed` in the same run; issue 14's on many peers)
//! are reported with PASS or MISS and never fail it. The output is a table
//! ([`report`]) and, as the last line of standard output (and in `--json FILE`), the
//! same figures as JSON.

mod allocs;
mod child;
mod framed;
mod idle;
mod impls;
mod many;
mod messages;
mod payload;
mod raw;
mod report;
mod server;
mod stats;
mod tcp;
mod tls;
mod via_internode;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use child::Spinners;
use clap::{CommandFactory, Parser};
use impls::Impl;
use internode::LinkKind;
use stats::Results;
use workloads::{Case, Contender, Cores, Timing, Workload};

/// internode against hand-written TCP, sender and receiver in two processes on
/// 127.0.0.1.
#[derive(Parser)]
#[command(name = "bench")]
struct Args {
    /// 3 repetitions of 0.2 s per figure (default 5 of 1 s)
    #[arg(long)]
    quick: bool,
    /// Also write the JSON document to FILE
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Some of: oneway, rr, rr64, urgent, idle, many-peers (default all)
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = workload)]
    only: Vec<Workload>,
    /// Some of: internode, internode-hand, internode-batch, internode-lossy,
    /// internode-tls, raw, framed (default all but internode-tls; fewer for profiling one; e.g.
    /// internode,internode-tls for the cost of TLS)
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = implementation)]
    impls: Vec<Impl>,
    /// One-way payload sizes in bytes (default 64,1024,65536,1048576)
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = size)]
    sizes: Vec<usize>,
    /// Spinning processes for the busy-core runs (default: the number of CPUs; 0: none)
    #[arg(long, value_name = "N")]
    spinners: Option<usize>,
    /// Also count heap allocations per message (sender and receiver; slows every
    /// allocation a little: use a run of its own)
    #[arg(long)]
    count_allocs: bool,
    /// many-peers: the hub's peers (default 1000; --quick: 100)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    peers: Option<u64>,
    /// many-peers: the links each peer opens to the hub, and the hub to it (some of
    /// urgent, small, large; default all three)
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = link_kind)]
    peer_links: Vec<LinkKind>,
    /// many-peers: seconds of the idle window (default 30; --quick: 3)
    #[arg(long, value_name = "SECONDS")]
    idle_secs: Option<f64>,
    /// many-peers: the hub's listen backlog (default the library's, 1024; Linux caps
    /// it at net.core.somaxconn)
    #[arg(long, value_name = "N")]
    hub_backlog: Option<u32>,
    /// many-peers: processes the peers are spread over (default 4)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    peer_procs: Option<u64>,
    /// Role: a receiving process of IMPL for INSTANCES senders
    #[arg(long, hide = true, exclusive = true, num_args = 2, value_names = ["IMPL", "INSTANCES"])]
    serve: Option<Vec<String>>,
    /// Role: the connecting process of the idle-memory workload
    #[arg(long, hide = true, exclusive = true, value_name = "IMPL", value_parser = implementation)]
    idle_client: Option<Impl>,
    /// Role: the many-peers hub, on PORT (0: any) for PEERS peers, with a listen
    /// backlog of BACKLOG
    #[arg(long, hide = true, exclusive = true, num_args = 3, value_names = ["PORT", "PEERS", "BACKLOG"])]
    many_hub: Option<Vec<String>>,
    /// Role: COUNT many-peers peer nodes from number FIRST, the hub on HUB_PORT,
    /// links of KINDS
    #[arg(long, hide = true, exclusive = true, num_args = 4, value_names = ["FIRST", "COUNT", "HUB_PORT", "KINDS"])]
    many_peers: Option<Vec<String>>,
    /// Role: a low-priority busy loop
    #[arg(long, hide = true, exclusive = true)]
    spin: bool,
}

fn workload(name: &str) -> Result<Workload, String> {
    Workload::parse(name).ok_or_else(|| format!("unknown workload {name:?}"))
}

fn implementation(name: &str) -> Result<Impl, String> {
    Impl::parse(name).ok_or_else(|| format!("unknown implementation {name:?}"))
}

fn link_kind(name: &str) -> Result<LinkKind, String> {
    LinkKind::ALL
        .into_iter()
        .find(|k| k.to_string() == name)
        .ok_or_else(|| format!("unknown link kind {name:?}"))
}

fn size(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(size) if size >= payload::SEQ_BYTES => Ok(size),
        _ => Err(format!(
            "{value:?} is not a size of at least {} bytes",
            payload::SEQ_BYTES
        )),
    }
}

/// Why the benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A receiver is missing messages, or got some out of sequence or corrupt.
    #[error("lost or corrupt messages: {0}")]
    Lost(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The options of a benchmark run.
struct Options {
    quick: bool,
    json: Option<PathBuf>,
    only: Vec<Workload>,
    impls: Vec<Impl>,
    /// Payload sizes of the one-way workload.
    sizes: Vec<usize>,
    spinners: usize,
    /// The many-peers workload's.
    many: many::ManyOptions,
}

/// What this process is.
enum Role {
    /// The benchmark itself (the sending side).
    Bench(Options),
    /// `--serve IMPL INSTANCES`: a receiving process.
    Serve(Impl, usize),
    /// `--idle-client IMPL`: the connecting process of the idle-memory workload.
    IdleClient(Impl),
    /// `--many-hub PORT PEERS BACKLOG`: the many-peers workload's hub.
    ManyHub(u16, usize, u32),
    /// `--many-peers FIRST COUNT HUB_PORT KINDS`: peer nodes of the many-peers
    /// workload.
    ManyPeers(usize, usize, u16, Vec<LinkKind>),
    /// `--spin`: a low-priority busy loop.
    Spin,
}

fn role(args: Args) -> Result<Role, String> {
    if let Some(serve) = args.serve {
        let instances = serve[1]
            .parse()
            .map_err(|_| format!("--serve: bad instance count {:?}", serve[1]))?;
        return Ok(Role::Serve(implementation(&serve[0])?, instances));
    }
    if let Some(imp) = args.idle_client {
        return Ok(Role::IdleClient(imp));
    }
    if let Some(hub) = args.many_hub {
        let port = number(&hub[0], "--many-hub port")?;
        let peers = number(&hub[1], "--many-hub peers")?;
        let backlog = number(&hub[2], "--many-hub backlog")?;
        return Ok(Role::ManyHub(port, peers, backlog));
    }
    if let Some(peers) = args.many_peers {
        return Ok(Role::ManyPeers(
            number(&peers[0], "--many-peers first")?,
            number(&peers[1], "--many-peers count")?,
            number(&peers[2], "--many-peers hub port")?,
            many::parse_kinds(&peers[3])
                .ok_or_else(|| format!("--many-peers: bad link kinds {:?}", peers[3]))?,
        ));
    }
    if args.spin {
        return Ok(Role::Spin);
    }
    Ok(Role::Bench(Options {
        quick: args.quick,
        json: args.json,
        only: or(args.only, &Workload::ALL),
        impls: or(args.impls, &Impl::DEFAULT),
        sizes: or(args.sizes, &workloads::ONEWAY_SIZES),
        spinners: args
            .spinners
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        many: many::ManyOptions::new(
            args.quick,
            args.peers.map(|n| n as usize),
            args.peer_links,
            args.hub_backlog,
            args.idle_secs,
            args.peer_procs.map(|n| n as usize),
        ),
    }))
}

/// A hidden role's numeric argument.
fn number<T: std::str::FromStr>(word: &str, what: &str) -> Result<T, String> {
    word.parse()
        .map_err(|_| format!("{what}: bad number {word:?}"))
}

/// The values given, or `default` when none.
fn or<T: Clone>(given: Vec<T>, default: &[T]) -> Vec<T> {
    if given.is_empty() {
        default.to_vec()
    } else {
        given
    }
}

async fn run(options: &Options) -> Result<(), BenchError> {
    let started = Instant::now();
    let timing = Timing::new(options.quick);
    let mut results = Results::default();
    // Removed when the run ends, however it ends (its children are killed first).
    let _certs = if options.impls.contains(&Impl::InternodeTls) {
        // One server node per receiving process, 256 for the idle-memory workload.
        let servers = if options.only.contains(&Workload::Idle) {
            idle::PEERS[idle::PEERS.len() - 1]
        } else {
            1
        };
        Some(tls::CertDir::create(via_internode::node_ids(servers))?)
    } else {
        None
    };

    let cases = Case::all(&options.only, &options.sizes);
    if !cases.is_empty() {
        let mut contenders = Vec::new();
        for &imp in &options.impls {
            if cases.iter().any(|c| c.runs_with(imp)) {
                contenders.push(Contender::start(imp).await?);
            }
        }
        workloads::phase(Cores::Idle, &cases, &mut contenders, &timing, &mut results).await?;
        let busy_cases: Vec<Case> = cases
            .iter()
            .copied()
            .filter(|c| c.workload.runs_busy())
            .collect();
        if options.spinners > 0 && !busy_cases.is_empty() {
            let mut spinners = Spinners::start(options.spinners)?;
            spinners.started().await?;
            let busy = workloads::phase(
                Cores::Busy,
                &busy_cases,
                &mut contenders,
                &timing,
                &mut results,
            )
            .await;
            drop(spinners);
            busy?;
        }
        for contender in contenders {
            contender.close().await;
        }
    }
    if options.only.contains(&Workload::Idle) {
        for &imp in &options.impls {
            if Workload::Idle.runs_with(imp) {
                idle::measure(imp, timing.settle, &mut results).await?;
            }
        }
    }
    let many_peers = options.only.contains(&Workload::ManyPeers);
    if many_peers
        && options
            .impls
            .iter()
            .any(|&i| Workload::ManyPeers.runs_with(i))
    {
        many::measure(&options.many, timing.settle, &mut results).await?;
    }

    let info = report::RunInfo {
        quick: options.quick,
        impls: options.impls.clone(),
        reps: timing.reps,
        seconds_per_figure: timing.time.as_secs_f64(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        spinners: options.spinners,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    print!("{}", report::table(&results, &info));
    let json = report::json(&results, &info).to_string();
    if let Some(path) = &options.json {
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
    }
    println!("{json}");
    Ok(())
}

fn exit(result: Result<(), BenchError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    if args.count_allocs || std::env::var_os(allocs::ENV).is_some() {
        allocs::enable();
    }
    let role = role(args).unwrap_or_else(|e| {
        Args::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit()
    });
    let options = match role {
        Role::Bench(options) => options,
        Role::Serve(imp, instances) => return exit(server::serve_role(imp, instances)),
        Role::IdleClient(imp) => return exit(idle::client_role(imp)),
        Role::ManyHub(port, peers, backlog) => return exit(many::hub_role(port, peers, backlog)),
        Role::ManyPeers(first, count, hub_port, kinds) => {
            return exit(many::peers_role(first, count, hub_port, kinds))
        }
        Role::Spin => child::spin(),
    };
    child::raise_fd_limit();
    let mut limit = Duration::from_secs(if options.quick { 90 } else { 600 });
    if options.only.contains(&Workload::ManyPeers) {
        limit += options.many.time_bound();
    }
    exit(actix::System::new().block_on(async {
        tokio::time::timeout(limit, run(&options))
            .await
            .unwrap_or_else(|_| {
                Err(BenchError::Timeout(format!(
                    "the benchmark did not finish within {limit:?}"
                )))
            })
    }))
}
