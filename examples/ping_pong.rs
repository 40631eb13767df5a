//! Request/response between two nodes on 127.0.0.1: node-1 asks node-2 to echo a
//! payload, one request at a time, and prints the round-trip times.
//!
//! ```sh
//! cargo run --example ping_pong
//! cargo run --release --example ping_pong -- --requests 20000 --size 1024 --port-base 22100
//! ```
//!
//! Every response must carry the request's sequence number and payload back; the
//! example exits non-zero if one does not, or if a request fails.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use actix::prelude::*;
use clap::Parser;
use hdrhistogram::Histogram;
use internode::frame::Framing;
use internode::node::{HandlerError, Node, Requested};
use internode::NodeId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    seq: u64,
    payload: Vec<u8>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Pong {
    seq: u64,
    payload: Vec<u8>,
}

internode::request!(Ping => Pong, verb = 1);
internode::message!(Pong, verb = 2);

/// Node-2's handler: sends the ping back.
struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Requested<Ping>> for Echo {
    type Result = Result<Pong, HandlerError>;

    fn handle(&mut self, m: Requested<Ping>, _: &mut Context<Self>) -> Self::Result {
        Ok(Pong {
            seq: m.message.seq,
            payload: m.message.payload,
        })
    }
}

/// Request/response between two nodes on 127.0.0.1: node-1 asks node-2 to echo a
/// payload, one request at a time, and prints the round-trip times.
#[derive(Parser)]
#[command(name = "ping_pong")]
struct Options {
    /// Requests measured (at least 1)
    #[arg(long, value_name = "N", default_value_t = 2000)]
    requests: usize,
    /// Requests before the measured ones, not measured
    #[arg(long, value_name = "N", default_value_t = 200)]
    warmup: usize,
    /// Payload bytes of each request and response (at most 16 MiB)
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: usize,
    /// Frames of both nodes' links: crc, lz4 or unprotected
    #[arg(long, default_value_t = Framing::Crc)]
    framing: Framing,
    /// The nodes listen on P+1 and P+2
    #[arg(long, value_name = "P", default_value_t = 22000)]
    port_base: u16,
}

fn check(options: Options) -> Result<Options, String> {
    if options.requests == 0 {
        return Err("--requests must be at least 1".into());
    }
    if options.size > 16 << 20 {
        return Err("--size must be at most 16 MiB".into());
    }
    if options.port_base > u16::MAX - 2 {
        return Err("--port-base too high".into());
    }
    Ok(options)
}

/// A payload that differs for every request, so that a response to another request
/// cannot pass for this one's.
fn payload(seq: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8)
        .collect()
}

async fn ping(client: &Node, server: NodeId, seq: u64, size: usize) -> Result<Duration, String> {
    let expected = payload(seq, size);
    let started = Instant::now();
    let response = client
        .request(
            server,
            Ping {
                seq,
                payload: expected.clone(),
            },
        )
        .await
        .map_err(|e| format!("request {seq} failed: {e}"))?;
    let rtt = started.elapsed();
    if response.seq != seq || response.payload != expected {
        return Err(format!(
            "request {seq}: wrong response (seq {}, {} payload bytes)",
            response.seq,
            response.payload.len()
        ));
    }
    Ok(rtt)
}

/// Nanoseconds as microseconds.
fn micros(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1e3)
}

async fn run(options: Options) -> Result<(), String> {
    let addr = |i: u16| SocketAddr::from(([127, 0, 0, 1], options.port_base + i));
    let start = |id: u64, port: u16| {
        Node::builder(NodeId(id), addr(port))
            .framing(options.framing)
            .start()
    };
    let client = start(1, 1).await.map_err(|e| e.to_string())?;
    let server = start(2, 2).await.map_err(|e| e.to_string())?;
    server
        .handle_requests::<Ping>(Echo.start().recipient())
        .map_err(|e| e.to_string())?;
    client.add_peer(server.id(), server.local_addr()).await;
    println!(
        "{} on {} asks {} on {} to echo {} B payloads ({} frames), one request at a time",
        client.id(),
        client.local_addr(),
        server.id(),
        server.local_addr(),
        options.size,
        options.framing
    );

    // The warm-up opens the links both ways (node-2 answers over its own link to
    // node-1, which it opens on the first response).
    let warmup = Instant::now();
    for seq in 0..options.warmup as u64 {
        ping(&client, server.id(), seq, options.size).await?;
    }
    println!(
        "warm-up: {} requests in {:.1} ms",
        options.warmup,
        warmup.elapsed().as_secs_f64() * 1e3
    );

    // Round trips in ns, to 3 significant digits (a value is off by at most 0.1%),
    // from 1 ns to a minute.
    let mut rtts = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| format!("histogram: {e}"))?;
    let measured = Instant::now();
    for i in 0..options.requests as u64 {
        let seq = options.warmup as u64 + i;
        let rtt = ping(&client, server.id(), seq, options.size).await?;
        rtts.saturating_record(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
    }
    let elapsed = measured.elapsed();
    // A percentile is the value below which that share of the round trips lie.
    println!(
        "round trips: count {}  min {}  mean {}  p50 {}  p90 {}  p99 {}  max {}",
        rtts.len(),
        micros(rtts.min()),
        micros(rtts.mean() as u64),
        micros(rtts.value_at_quantile(0.50)),
        micros(rtts.value_at_quantile(0.90)),
        micros(rtts.value_at_quantile(0.99)),
        micros(rtts.max()),
    );
    println!(
        "{} requests in {:.1} ms: {:.0} requests/s, one at a time",
        rtts.len(),
        elapsed.as_secs_f64() * 1e3,
        rtts.len() as f64 / elapsed.as_secs_f64()
    );
    for link in client
        .links()
        .await
        .into_iter()
        .chain(server.links().await)
        .filter(|l| l.counters.accepted > 0)
    {
        println!(
            "link to {} ({}): {} messages written, failed {:?}",
            link.peer, link.kind, link.counters.written, link.counters.failed
        );
    }
    // Shut down the way an operator would: each side closes its link to the other
    // (nothing is queued), so that neither sees its link lost when the other closes.
    client.close_peer(server.id(), true).await;
    server.close_peer(client.id(), true).await;
    client.close(true).await;
    server.close(true).await;
    Ok(())
}

fn main() -> ExitCode {
    let options = common::start(check);
    let limit = Duration::from_secs(60);
    let result = actix::System::new().block_on(async move {
        tokio::time::timeout(limit, run(options))
            .await
            .unwrap_or_else(|_| Err(format!("the example did not finish within {limit:?}")))
    });
    match result {
        Ok(()) => {
            println!("ok: every response carried its request's sequence number and payload");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
