//! A node under a flood of connections keeps serving its peers (docs/design.md,
//! "Connections and the handshake"):
//! 2,000 idle connections from eight addresses and 200 handshakes that trickle one
//! byte a second, while a connected peer sends to the node all along. The admission
//! limits close most of the idle ones at once, the handshake timeout the rest and the
//! slow ones; the peer's messages keep arriving; memory stays bounded. Run twice: with
//! plain nodes, then with nodes authenticated by TLS and a cluster secret (the
//! attackers speak plain TCP either way: they get no further than a handshake slot).
//!
//! One test in this binary: it reads the process's resident memory. `cargo test --test
//! connection_flood -- --nocapture` prints the figures.
#![cfg(feature = "serde")]

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use internode::node::{NodeBuilder, RefusalReason, Sent};
use internode::NodeId;
use support::certs::Ca;
use support::{
    bounded, builder, collect, connect_from, hello_bytes, raise_fd_limit, status_kib, within, Seq,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDLE: usize = 2_000;
const SLOW: usize = 200;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Waits until the node closes `stream` (EOF or reset); how long that took.
async fn until_closed(mut stream: TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[actix::test]
async fn a_flood_of_idle_and_slow_connections_leaves_the_peers_served() {
    let fds = raise_fd_limit();
    assert!(
        fds >= 2 * (IDLE + SLOW) as u64 + 200,
        "the test needs {} open files, the limit is {fds}",
        2 * (IDLE + SLOW) + 200
    );
    // One after the other: each reads the process's resident memory.
    bounded(flood(None)).await;
    let ca = Ca::new("cluster CA");
    bounded(flood(Some(&ca))).await;
}

/// The flood against node 2 while node 1 sends to it; with `ca`, both nodes use TLS
/// with certificates of it, and a cluster secret.
async fn flood(ca: Option<&Ca>) {
    let secure = |builder: NodeBuilder, id| match ca {
        Some(ca) => builder
            .tls(ca.config(&ca.node(id, "internode")))
            .cluster_secret(b"a secret of thirty-two bytes!!!!".to_vec()),
        None => builder,
    };
    let mode = if ca.is_some() {
        "TLS + secret"
    } else {
        "plain"
    };
    let b = secure(builder(2).handshake_timeout(HANDSHAKE_TIMEOUT), 2)
        .start()
        .await
        .unwrap();
    let mut inbox = collect::<Seq>(&b);
    let a = secure(builder(1), 1).start().await.unwrap();
    a.add_peer(NodeId(2), b.local_addr()).await;
    let to_b = a.peer(NodeId(2));
    assert_eq!(to_b.send(Seq(0)).await, Ok(Sent::Acknowledged));
    within("the first message", inbox.recv()).await;
    let baseline_kib = status_kib("VmRSS");

    // The peer sends all along, one message at a time.
    let sent = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let sender = {
        let (sent, stop) = (sent.clone(), stop.clone());
        actix::spawn(async move {
            let mut n = 1;
            while !stop.get() {
                assert_eq!(to_b.send(Seq(n)).await, Ok(Sent::Acknowledged));
                sent.set(n);
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let started = Instant::now();
    let addr = b.local_addr();
    let mut attackers = Vec::new();
    for i in 0..IDLE {
        let stream = connect_from(&format!("127.0.1.{}", 1 + i % 8), addr).await;
        attackers.push(actix::spawn(until_closed(stream)));
    }
    let hello = hello_bytes(&support::hello(60)).freeze();
    for i in 0..SLOW {
        let mut stream = connect_from(&format!("127.0.2.{}", 1 + i % 4), addr).await;
        let hello = hello.clone();
        attackers.push(actix::spawn(async move {
            let started = Instant::now();
            // One byte a second, until the node closes the connection.
            for byte in hello.iter() {
                if stream.write_all(&[*byte]).await.is_err() {
                    return started.elapsed();
                }
                let mut buf = [0u8; 16];
                let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf));
                if let Ok(Ok(0) | Err(_)) = read.await {
                    return started.elapsed();
                }
            }
            panic!("a one-byte-a-second Hello was let through");
        }));
    }
    let opened = started.elapsed();
    let during = sent.get();
    let mut peak_kib = status_kib("VmRSS");

    // Every attacking connection is closed, within the handshake timeout and a
    // margin.
    let mut slowest = Duration::ZERO;
    for attacker in attackers {
        let took = within("an attacker to be closed", attacker).await.unwrap();
        slowest = slowest.max(took);
        peak_kib = peak_kib.max(status_kib("VmRSS"));
    }
    let after = sent.get();
    stop.set(true);
    within("the sender", sender).await.unwrap();
    let mut received = 0;
    while inbox.try_recv().is_ok() {
        received += 1;
    }

    let refused = b.refused_connections().await;
    let total: u64 = refused.values().sum();
    let growth_kib = peak_kib.saturating_sub(baseline_kib);
    println!(
        "{mode}: {IDLE} idle + {SLOW} slow connections opened in {opened:?}; slowest \
             closed after {slowest:?}; refused {refused:?}"
    );
    println!(
        "the peer's messages: {during} acknowledged while the flood opened, {after} by the \
             time every attacker was closed, {received} received"
    );
    println!("RSS: baseline {baseline_kib} KiB, peak {peak_kib} KiB, growth {growth_kib} KiB");
    assert_eq!(
        total,
        (IDLE + SLOW) as u64,
        "every attacker refused and counted"
    );
    assert!(
        refused
            .get(&RefusalReason::TooManyHandshakes)
            .is_some_and(|n| *n > 0),
        "{refused:?}"
    );
    assert!(
        refused.get(&RefusalReason::Timeout).is_some_and(|n| *n > 0),
        "{refused:?}"
    );
    assert!(
        slowest < HANDSHAKE_TIMEOUT * 4,
        "closed within the handshake timeout"
    );
    assert!(
        after > during && after > 10,
        "the peer was served all along"
    );
    // Bounded: the sockets' user-space state, a handshake buffer each for those
    // admitted (at most 1,024), the test's own tasks: a few MiB. Stated bound:
    // 32 MiB.
    assert!(growth_kib < 32 * 1024, "RSS grew by {growth_kib} KiB");
    a.close(false).await;
    b.close(false).await;
}
