//! A seeded fault-injecting TCP proxy as a program, for shell scripts: the proxy of
//! the integration tests (`tests/support/proxy.rs`), between nodes of a local cluster
//! for instance (`examples/local_cluster.sh` cuts connections with it,
//! `examples/netns_cluster.sh` delays them).
//!
//! ```sh
//! cargo build --example fault_proxy
//! target/debug/examples/fault_proxy --listen 127.0.0.1:24002 --target 127.0.0.1:23002 \
//!     --cut-every-ms 500:2000 --cut-after-bytes 100k:10m --flip-probability 0.001 --seed 7 &
//! # 20 ms more each way, 40 ms more per round trip:
//! target/debug/examples/fault_proxy --listen 0.0.0.0:23101 --target 127.0.0.1:23001 --delay-ms 20 &
//! ```
//!
//! Flags: `--listen ADDR --target ADDR` (both required), and the faults, none by
//! default: `--cut-every-ms MIN:MAX` (cut every current connection after a delay
//! drawn in that range, again and again), `--cut-after-bytes MIN:MAX` (cut each
//! connection after a number of bytes drawn in that range, both directions counted;
//! BYTES may end in `k`, `m` or `g`, powers of 1024), `--flip-probability P` (per
//! chunk forwarded towards the target, flip one random bit), `--delay-ms N` (forward
//! every byte, in both directions, at least N ms after it arrived, in order: a
//! one-way latency; at most 16 MiB wait per direction and connection), `--seed N` (of
//! every draw; by default a random one, and printed, so that a run can be repeated).
//! A range may be a single value.
//!
//! It prints its address and faults once, then a line of counters every second, to
//! stderr. It runs until killed. Exit status: 1 if it cannot listen, 2 on bad flags.

mod common;

#[path = "../tests/support/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use proxy::{Faults, Proxy};

/// A seeded fault-injecting TCP proxy: cuts by time or bytes, bit flips, delays.
#[derive(Parser)]
#[command(name = "fault_proxy")]
struct Args {
    /// The address to listen on
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The address to forward to
    #[arg(long, value_name = "ADDR")]
    target: SocketAddr,
    /// Cut every current connection after a delay drawn in this range (ms), again and
    /// again; a single value N is N:N
    #[arg(long, value_name = "MIN:MAX", value_parser = |v: &str| range(v, milliseconds))]
    cut_every_ms: Option<(Duration, Duration)>,
    /// Cut each connection after a number of bytes drawn in this range (both
    /// directions counted; BYTES may end in k, m or g, powers of 1024)
    #[arg(long, value_name = "MIN:MAX", value_parser = |v: &str| range(v, common::bytes))]
    cut_after_bytes: Option<(u64, u64)>,
    /// Per chunk forwarded towards the target, the probability of flipping one random
    /// bit
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    flip_probability: f64,
    /// Forward every byte, both directions, at least this many milliseconds after it
    /// arrived (in order: a one-way latency)
    #[arg(long, value_name = "N", default_value = "0", value_parser = milliseconds)]
    delay_ms: Duration,
    /// The seed of every draw (default: a random one, printed, so that a run can be
    /// repeated)
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

struct Options {
    listen: SocketAddr,
    target: SocketAddr,
    faults: Faults,
}

/// `MIN:MAX`, or `N` for `N:N`, each parsed by `one`.
fn range<T: Clone>(value: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<(T, T), String> {
    match value.split_once(':') {
        Some((min, max)) => Ok((one(min)?, one(max)?)),
        None => one(value).map(|v| (v.clone(), v)),
    }
}

fn milliseconds(value: &str) -> Result<Duration, String> {
    let ms: u64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of milliseconds"))?;
    Ok(Duration::from_millis(ms))
}

fn check(args: Args) -> Result<Options, String> {
    let faults = Faults {
        cut_every: args.cut_every_ms,
        cut_every_bytes: args.cut_after_bytes,
        flip_probability: args.flip_probability,
        delay: args.delay_ms,
        // The OS random number generator; a failure of it is no reason not to run.
        seed: args
            .seed
            .unwrap_or_else(|| getrandom::u64().unwrap_or_default()),
    };
    faults.check()?;
    Ok(Options {
        listen: args.listen,
        target: args.target,
        faults,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options = common::start(check);
    let proxy = match Proxy::bind(options.listen, options.target, options.faults).await {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("fault_proxy: cannot listen on {}: {e}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "fault_proxy: {} -> {}, {:?}",
        proxy.addr(),
        options.target,
        proxy.faults()
    );
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    every_second.tick().await; // the first tick is immediate
    loop {
        every_second.tick().await;
        eprintln!(
            "fault_proxy: accepted {} cuts {} flips {} bytes_forwarded {}",
            proxy.accepted(),
            proxy.cuts(),
            proxy.flips(),
            proxy.bytes_forwarded()
        );
    }
}
