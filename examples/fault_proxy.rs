//! A seeded fault-injecting TCP proxy as a program, for shell scripts: the proxy of
//! the integration tests (`tests/support/proxy.rs`), between nodes of a local cluster
//! for instance.
//!
//! ```sh
//! cargo build --example fault_proxy
//! target/debug/examples/fault_proxy --listen 127.0.0.1:24002 --target 127.0.0.1:23002 \
//!     --cut-every-ms 500:2000 --cut-after-bytes 100k:10m --flip-probability 0.001 --seed 7 &
//! ```
//!
//! Flags: `--listen ADDR --target ADDR` (both required), and the faults, none by
//! default: `--cut-every-ms MIN:MAX` (cut every current connection after a delay
//! drawn in that range, again and again), `--cut-after-bytes MIN:MAX` (cut each
//! connection after a number of bytes drawn in that range, both directions counted;
//! BYTES may end in `k`, `m` or `g`, powers of 1024), `--flip-probability P` (per
//! chunk forwarded towards the target, flip one random bit), `--seed N` (of every
//! draw; by default from the clock, and printed, so that a run can be repeated). A
//! range may be a single value.
//!
//! It prints its address and faults once, then a line of counters every second, to
//! stderr. It runs until killed. Exit status: 1 if it cannot listen, 2 on bad flags.

mod common;

#[path = "../tests/support/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use proxy::{Faults, Proxy};

const USAGE: &str = "usage: fault_proxy --listen ADDR --target ADDR [--cut-every-ms MIN:MAX] \
[--cut-after-bytes MIN:MAX] [--flip-probability P] [--seed N]";

struct Options {
    listen: SocketAddr,
    target: SocketAddr,
    faults: Faults,
}

/// `MIN:MAX`, or `N` for `N:N`, each parsed by `one`.
fn range<T>(value: &str, one: impl Fn(&str) -> Option<T>) -> Option<(T, T)> {
    match value.split_once(':') {
        Some((min, max)) => Some((one(min)?, one(max)?)),
        None => Some((one(value)?, one(value)?)),
    }
}

/// A byte count, maybe ending in `k`, `m` or `g` (powers of 1024).
fn bytes(value: &str) -> Option<u64> {
    let (digits, shift) = match value.as_bytes().last()? {
        b'k' | b'K' => (&value[..value.len() - 1], 10),
        b'm' | b'M' => (&value[..value.len() - 1], 20),
        b'g' | b'G' => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

fn parse_options() -> Result<Options, String> {
    let (mut listen, mut target, mut seed) = (None, None, None);
    let mut faults = Faults::default();
    for (flag, value) in common::flags(USAGE)? {
        let bad = || common::bad_value(&flag, &value, USAGE);
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|_| bad())?),
            "--target" => target = Some(value.parse().map_err(|_| bad())?),
            "--seed" => seed = Some(value.parse().map_err(|_| bad())?),
            "--flip-probability" => faults.flip_probability = value.parse().map_err(|_| bad())?,
            "--cut-after-bytes" => {
                faults.cut_every_bytes = Some(range(&value, bytes).ok_or_else(bad)?)
            }
            "--cut-every-ms" => {
                let ms = |v: &str| v.parse().ok().map(Duration::from_millis);
                faults.cut_every = Some(range(&value, ms).ok_or_else(bad)?);
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    faults.seed = seed.unwrap_or_else(|| {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since.map_or(0, |d| d.as_nanos() as u64)
    });
    faults.check().map_err(|e| format!("{e}\n{USAGE}"))?;
    Ok(Options {
        listen: listen.ok_or_else(|| format!("--listen is required\n{USAGE}"))?,
        target: target.ok_or_else(|| format!("--target is required\n{USAGE}"))?,
        faults,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options = match common::start(parse_options) {
        Ok(options) => options,
        Err(code) => return code,
    };
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
