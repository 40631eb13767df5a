//! The accept rate of a node under a flood of simultaneous connects: how
//! many of N connections opened at once reach the node, and how soon, for each listen
//! backlog.
//!
//! ```sh
//! cargo run --profile bench --example accept_flood                       # 2000 connects, backlogs 128 and 1024, 5 runs
//! cargo run --profile bench --example accept_flood -- --connections 500 --runs 1
//! cargo run --profile bench --example accept_flood -- --slow-log-ms 1    # a log sink that takes 1 ms a line
//! ```
//!
//! Flags: `--connections N` (2000), `--backlogs LIST` (128,1024), `--runs R` (5),
//! `--window-secs S` (10: how long a run waits for the last connection),
//! `--slow-log-ms MS` (0: no logger; otherwise every log line at info level and above
//! takes that long, on the thread that logs it, as a slow or blocked sink would).
//!
//! Each run starts a node with the backlog, then a client thread (its own tokio
//! runtime) opens the N connections at once; each writes an HTTP request line (not an
//! internode Hello) and waits for the node to close it. The node refuses each one and
//! counts it by reason ([`Node::refused_connections`]), which is what "reached the
//! node" means here: accepted, read and counted. A connect the kernel drops (its listen
//! queue full) is retried by the client's TCP after 1 s, then 3 s, 7 s..., so a
//! backlog too small for the flood shows as a time to reach all of a second or more.
//!
//! Printed per run: connects attempted, reached the node within the window and within
//! the first second (before the clients' first SYN retransmission), the time
//! until the last one reached it, the rate (reached / that time), connects that
//! failed at the client, the log lines written, and the kernel's listen-queue
//! overflows during the run (`ListenOverflows` of `/proc/net/netstat`: machine-wide,
//! so another program's connections count too). Then the medians per backlog.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use internode::node::Node;
use internode::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// The accept rate of a node under a flood of simultaneous connects, per listen
/// backlog.
#[derive(Parser)]
#[command(name = "accept_flood")]
struct Args {
    /// Connections opened at once in each run
    #[arg(long, value_name = "N", default_value_t = 2000)]
    connections: usize,
    /// The listen backlogs to measure
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "128,1024"
    )]
    backlogs: Vec<u32>,
    /// Runs per backlog
    #[arg(long, value_name = "R", default_value_t = 5)]
    runs: usize,
    /// How long a run waits for the last connection, in seconds
    #[arg(long, value_name = "S", default_value_t = 10)]
    window_secs: u64,
    /// 0: no logger; otherwise every log line at info level and above takes that many
    /// ms, on the thread that logs it
    #[arg(long, value_name = "MS", default_value_t = 0)]
    slow_log_ms: u64,
}

struct Options {
    connections: usize,
    backlogs: Vec<u32>,
    runs: usize,
    window: Duration,
    slow_log: Option<Duration>,
}

impl From<Args> for Options {
    fn from(args: Args) -> Options {
        Options {
            connections: args.connections,
            backlogs: args.backlogs,
            runs: args.runs,
            window: Duration::from_secs(args.window_secs),
            slow_log: (args.slow_log_ms > 0).then(|| Duration::from_millis(args.slow_log_ms)),
        }
    }
}

/// A logger whose every line takes `delay` (and is then dropped), counting them.
struct SlowLog {
    delay: Duration,
    lines: AtomicU64,
}

impl log::Log for SlowLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            std::thread::sleep(self.delay);
            self.lines.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn flush(&self) {}
}

/// Raises the soft limit of open files to the hard one: a run holds two descriptors
/// per connection (both ends are in this process).
fn raise_fd_limit() {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The kernel's count of connections dropped for a full listen queue, if known.
fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let at = names
            .split_whitespace()
            .position(|n| n == "ListenOverflows")?;
        return values.split_whitespace().nth(at)?.parse().ok();
    }
    None
}

struct Run {
    reached: u64,
    /// Reached within the first second (before the clients' first SYN retransmission).
    within_1s: u64,
    /// Until the last connection reached the node (`None`: not all within the window).
    to_all: Option<Duration>,
    client_errors: BTreeMap<String, u64>,
    overflows: Option<u64>,
    log_lines: u64,
}

impl Run {
    /// Connections per second: reached over the time to reach all (or the window).
    fn rate(&self, window: Duration) -> f64 {
        self.reached as f64 / self.to_all.unwrap_or(window).as_secs_f64()
    }
}

/// The client side: opens `n` connections to `addr` at once from a thread of its
/// own once `start` fires; each writes a request line and reads until closed.
/// Returns the failures by kind.
fn flood(
    addr: SocketAddr,
    n: usize,
    window: Duration,
    start: oneshot::Receiver<()>,
) -> oneshot::Receiver<BTreeMap<String, u64>> {
    let (done, result) = oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let errors = runtime.block_on(async move {
            let _ = start.await;
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    tokio::spawn(tokio::time::timeout(window, async move {
                        let mut stream = tokio::net::TcpStream::connect(addr).await?;
                        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
                        let mut buf = [0u8; 64];
                        while stream.read(&mut buf).await? > 0 {}
                        Ok::<_, std::io::Error>(())
                    }))
                })
                .collect();
            let mut errors = BTreeMap::new();
            for task in tasks {
                let error = match task.await.expect("a client task") {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => format!("{:?}", e.kind()),
                    Err(_) => "timeout".to_string(),
                };
                *errors.entry(error).or_default() += 1;
            }
            errors
        });
        let _ = done.send(errors);
    });
    result
}

async fn run_once(options: &Options, backlog: u32, log: Option<&SlowLog>) -> Run {
    // The accept path is measured, not admission: every connect may be in handshake.
    let n = options.connections;
    let admission = internode::node::AdmissionLimits::default()
        .handshakes(n)
        .handshakes_per_ip(n);
    let node = Node::builder(NodeId(1), "127.0.0.1:0".parse().unwrap())
        .listen_backlog(backlog)
        .admission(admission)
        .start()
        .await
        .expect("the node starts");
    let n = options.connections as u64;
    let (start, started) = oneshot::channel();
    let client = flood(
        node.local_addr(),
        options.connections,
        options.window,
        started,
    );
    let lines_before = log.map_or(0, |l| l.lines.load(Ordering::Relaxed));
    let overflows_before = listen_overflows();
    let t0 = Instant::now();
    let _ = start.send(());
    let mut reached = 0;
    let mut within_1s = 0;
    let mut to_all = None;
    while t0.elapsed() < options.window {
        reached = node.refused_connections().await.values().sum::<u64>();
        if t0.elapsed() < Duration::from_secs(1) {
            within_1s = reached;
        }
        if reached >= n {
            to_all = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let client_errors = client.await.unwrap_or_default();
    let overflows = overflows_before.zip(listen_overflows()).map(|(a, b)| b - a);
    node.close(false).await;
    Run {
        reached,
        within_1s,
        to_all,
        client_errors,
        overflows,
        log_lines: log.map_or(0, |l| l.lines.load(Ordering::Relaxed)) - lines_before,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn main() -> ExitCode {
    let options = Options::from(Args::parse());
    raise_fd_limit();
    let log: Option<&'static SlowLog> = options.slow_log.map(|delay| {
        let log: &'static SlowLog = Box::leak(Box::new(SlowLog {
            delay,
            lines: AtomicU64::new(0),
        }));
        log::set_logger(log).expect("the only logger");
        log::set_max_level(log::LevelFilter::Info);
        log
    });
    let n = options.connections;
    let window = options.window;
    println!(
        "{n} simultaneous connects, window {window:?}, log sink: {}",
        options
            .slow_log
            .map_or("none".to_string(), |d| format!("{d:?} a line"))
    );
    println!("backlog  run  reached  within_1s  to_all_ms  conn_per_s  overflows  log_lines  client_errors");
    let runs = actix::System::new().block_on(async {
        let mut runs: BTreeMap<u32, Vec<Run>> = BTreeMap::new();
        for i in 0..options.runs {
            for &backlog in &options.backlogs {
                let run = run_once(&options, backlog, log).await;
                println!(
                    "{backlog:>7}  {i:>3}  {:>7}  {:>9}  {:>9}  {:>10.0}  {:>9}  {:>9}  {:?}",
                    run.reached,
                    run.within_1s,
                    run.to_all
                        .map_or("-".to_string(), |t| format!("{:.0}", t.as_secs_f64() * 1e3)),
                    run.rate(window),
                    run.overflows.map_or("?".to_string(), |o| o.to_string()),
                    run.log_lines,
                    run.client_errors,
                );
                runs.entry(backlog).or_default().push(run);
            }
        }
        runs
    });
    println!("medians over {} runs:", options.runs);
    let mut all_reached = true;
    for (backlog, runs) in &runs {
        all_reached &= runs.iter().all(|r| r.to_all.is_some());
        let ms = |r: &Run| r.to_all.unwrap_or(window).as_secs_f64() * 1e3;
        println!(
            "  backlog {backlog:>5}: reached {:.0} of {n} ({:.0} within 1 s), to all {:.0} ms, \
             {:.0} conn/s, {:.0} overflows, {:.0} log lines",
            median(runs.iter().map(|r| r.reached as f64).collect()),
            median(runs.iter().map(|r| r.within_1s as f64).collect()),
            median(runs.iter().map(ms).collect()),
            median(runs.iter().map(|r| r.rate(window)).collect()),
            median(
                runs.iter()
                    .map(|r| r.overflows.unwrap_or(0) as f64)
                    .collect()
            ),
            median(runs.iter().map(|r| r.log_lines as f64).collect()),
        );
    }
    if all_reached {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
