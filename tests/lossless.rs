#![cfg(feature = "serde")]
//! Lossless sessions against real faults, over loopback: a stream on all three links
//! through a proxy that cuts every connection at random (and, in a second test, flips
//! random bits), and a receiving process killed with `SIGKILL` and restarted on the
//! same port. What a user relies on: every message accepted is delivered exactly once,
//! in order, through any number of cuts and corrupt frames; every outcome is
//! `Acknowledged`; across a restart of the peer, what it acknowledged stays delivered
//! and the rest fails `PeerRestarted` at once.
//!
//! `RUST_LOG=info cargo test --test lossless -- --nocapture` prints the figures.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use internode::node::{Node, Received, SendError, Sent};
use internode::session::{BackoffConfig, LinkEvent};
use internode::{LinkKind, NodeId};
use serde::{Deserialize, Serialize};
use support::{collect, within, Events, Faults, Filled, Proxy};
use tokio::sync::mpsc::UnboundedReceiver;

const B: NodeId = NodeId(2);
/// Messages per kind: 200,000 in all.
const SMALL: u64 = 120_000;
const URGENT: u64 = 79_700;
const LARGE: u64 = 300;
const SMALL_LEN: usize = 16;
const LARGE_LEN: usize = 70 * 1024;
/// Large messages are numbered from here (they share `Filled` with the small ones).
const LARGE_BASE: u64 = 1 << 40;
/// Outcomes awaited at once.
const WINDOW: usize = 4096;
/// Outcomes awaited at once in the kill test.
const WINDOW_KILL: usize = 512;
/// The bound of each of these tests (they move 200,000 messages in a debug build).
const BOUND: Duration = Duration::from_secs(150);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Urgent(u64);
internode::message!(Urgent, verb = 1060, urgent);

/// What one stream saw.
#[derive(Debug, Default)]
struct Report {
    delivered: BTreeMap<LinkKind, u64>,
    cuts: u64,
    flips: u64,
    corrupt_frames: u64,
    duplicates: u64,
    replayed: u64,
    connections: u64,
    elapsed: Duration,
}

/// Which kind the next message is: one large in 667, then two urgent for three
/// small, until each kind has its count.
fn next_kind(n: u64, sent: &BTreeMap<LinkKind, u64>) -> LinkKind {
    let left = |kind| {
        sent[&kind]
            < match kind {
                LinkKind::Urgent => URGENT,
                LinkKind::Small => SMALL,
                LinkKind::Large => LARGE,
            }
    };
    let wanted = if n % 667 == 0 {
        LinkKind::Large
    } else if n % 5 < 2 {
        LinkKind::Urgent
    } else {
        LinkKind::Small
    };
    [wanted, LinkKind::Small, LinkKind::Urgent, LinkKind::Large]
        .into_iter()
        .find(|k| left(*k))
        .expect("a kind with messages left")
}

fn fast_reconnects(builder: internode::node::NodeBuilder) -> internode::node::NodeBuilder {
    builder.backoff(BackoffConfig::new(
        Duration::from_millis(5),
        Duration::from_millis(40),
        2,
    ))
}

/// Sends the 200,000 messages from A to B through a proxy with `faults` and checks
/// that each arrives once, in order per link, and is acknowledged.
async fn stream_through(faults: Faults) -> Report {
    let started = Instant::now();
    let b = support::node(2).await;
    let mut filled = collect::<Filled>(&b);
    let mut urgent = collect::<Urgent>(&b);
    let proxy = Proxy::start_with(b.local_addr(), faults).await;
    let a = fast_reconnects(support::builder(1)).start().await.unwrap();
    a.add_peer(B, proxy.addr()).await;
    let to_b = a.peer(B);

    let total = SMALL + URGENT + LARGE;
    let receiver = actix::spawn(async move { receive_all(&mut filled, &mut urgent).await });
    let mut pending = FuturesUnordered::new();
    let mut sent = BTreeMap::from([
        (LinkKind::Urgent, 0),
        (LinkKind::Small, 0),
        (LinkKind::Large, 0),
    ]);
    for n in 0..total {
        let kind = next_kind(n, &sent);
        let seq = sent[&kind];
        *sent.get_mut(&kind).unwrap() += 1;
        let outcome = match kind {
            LinkKind::Urgent => to_b.send(Urgent(seq)).boxed_local(),
            LinkKind::Small => to_b.send(Filled::new(seq, SMALL_LEN)).boxed_local(),
            LinkKind::Large => to_b
                .send(Filled::new(LARGE_BASE + seq, LARGE_LEN))
                .boxed_local(),
        };
        pending.push(async move { (n, outcome.await) });
        while pending.len() >= WINDOW {
            let (n, outcome) = pending.next().await.unwrap();
            assert_eq!(outcome, Ok(Sent::Acknowledged), "message {n}");
        }
    }
    while let Some((n, outcome)) = pending.next().await {
        assert_eq!(outcome, Ok(Sent::Acknowledged), "message {n}");
    }
    let delivered = within("every message at the receiver", receiver)
        .await
        .unwrap();
    let links = a.links().await;
    let inbound = b.inbound_counters().await;
    let report = Report {
        delivered,
        cuts: proxy.cuts(),
        flips: proxy.flips(),
        corrupt_frames: inbound.corrupt_frames,
        duplicates: inbound.duplicates,
        replayed: links.iter().map(|l| l.counters.replayed).sum(),
        connections: links.iter().map(|l| l.counters.connections).sum(),
        elapsed: started.elapsed(),
    };
    for link in &links {
        assert_eq!(link.pending_bytes, 0, "{link:?}");
        assert_eq!(link.in_flight, 0, "{link:?}");
    }
    let limits = a.limits().await;
    assert_eq!(
        limits.send.global_in_use, 0,
        "every reserve byte given back"
    );
    report
}

/// Receives until every message of the stream is there, checking order and
/// uniqueness per link as they come; returns the count per link.
async fn receive_all(
    filled: &mut UnboundedReceiver<(NodeId, Filled)>,
    urgent: &mut UnboundedReceiver<(NodeId, Urgent)>,
) -> BTreeMap<LinkKind, u64> {
    let mut next = BTreeMap::from([
        (LinkKind::Urgent, 0u64),
        (LinkKind::Small, 0),
        (LinkKind::Large, LARGE_BASE),
    ]);
    let done = |next: &BTreeMap<LinkKind, u64>| {
        next[&LinkKind::Urgent] == URGENT
            && next[&LinkKind::Small] == SMALL
            && next[&LinkKind::Large] == LARGE_BASE + LARGE
    };
    while !done(&next) {
        let (kind, seq) = tokio::select! {
            Some((_, m)) = filled.recv() => {
                if m.seq >= LARGE_BASE {
                    m.check(LARGE_LEN);
                    (LinkKind::Large, m.seq)
                } else {
                    m.check(SMALL_LEN);
                    (LinkKind::Small, m.seq)
                }
            }
            Some((_, Urgent(seq))) = urgent.recv() => (LinkKind::Urgent, seq),
        };
        let expected = next.get_mut(&kind).unwrap();
        assert_eq!(
            seq, *expected,
            "{kind}: {seq} arrived when {expected} was next (a loss, duplicate or reordering)"
        );
        *expected += 1;
    }
    next.into_iter()
        .map(|(kind, n)| {
            (
                kind,
                if kind == LinkKind::Large {
                    n - LARGE_BASE
                } else {
                    n
                },
            )
        })
        .collect()
}

fn expect_all(report: &Report) {
    eprintln!(
        "{} messages in {:.1} s over {} connections: {} cuts, {} bits flipped, {} corrupt \
         frames, {} replayed, {} duplicates dropped",
        report.delivered.values().sum::<u64>(),
        report.elapsed.as_secs_f64(),
        report.connections,
        report.cuts,
        report.flips,
        report.corrupt_frames,
        report.replayed,
        report.duplicates
    );
    assert_eq!(
        report.delivered,
        BTreeMap::from([
            (LinkKind::Urgent, URGENT),
            (LinkKind::Small, SMALL),
            (LinkKind::Large, LARGE)
        ])
    );
}

/// 200,000 messages on all three links through a proxy that cuts every connection
/// every 15-45 ms: at least 300 cuts, nothing lost, duplicated or reordered, every
/// message acknowledged.
#[actix_rt::test]
async fn a_stream_through_hundreds_of_cuts_loses_nothing() {
    let _ = env_logger::builder().is_test(true).try_init();
    let report = tokio::time::timeout(
        BOUND,
        stream_through(Faults {
            seed: 9,
            cut_every: Some((Duration::from_millis(15), Duration::from_millis(45))),
            ..Faults::default()
        }),
    )
    .await
    .expect("the stream finishes in time");
    expect_all(&report);
    assert!(report.cuts >= 300, "{} cuts", report.cuts);
    assert!(
        report.replayed > 0,
        "cuts lost written messages that were replayed"
    );
}

/// The same stream through a proxy that flips a random bit in 3 of 100 chunks (and
/// cuts connections every 50-150 ms): every corrupt frame resets its connection and
/// replay recovers what it held.
#[actix_rt::test]
async fn a_stream_through_flipped_bits_loses_nothing() {
    let _ = env_logger::builder().is_test(true).try_init();
    let report = tokio::time::timeout(
        BOUND,
        stream_through(Faults {
            seed: 11,
            flip_probability: 0.03,
            cut_every: Some((Duration::from_millis(50), Duration::from_millis(150))),
            ..Faults::default()
        }),
    )
    .await
    .expect("the stream finishes in time");
    expect_all(&report);
    assert!(report.flips >= 20, "{} flips", report.flips);
    assert!(
        report.corrupt_frames > 0,
        "corrupt frames reached the receiver"
    );
}

// ---------------------------------------------------------------------------------
// A receiving process killed and restarted.

/// The environment variable that makes this test binary a receiving node: its value
/// is the address to listen on. The child prints `ready` and then one line per message
/// it receives (`got N`), flushed at once.
const CHILD: &str = "INTERNODE_LOSSLESS_CHILD";

/// Not a test of its own: the receiving process (see [`CHILD`]).
#[actix_rt::test]
async fn receiving_child() {
    let Ok(listen) = std::env::var(CHILD) else {
        return;
    };
    use std::io::Write;
    let node = Node::builder(B, listen.parse().unwrap())
        .start()
        .await
        .expect("the child listens");
    node.handle::<Filled>(Printer.start().recipient()).unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    // Until killed.
    std::future::pending::<()>().await;
}

/// Prints each message's number as its handler runs, flushed at once.
struct Printer;

impl Actor for Printer {
    type Context = Context<Self>;
}

impl Handler<Received<Filled>> for Printer {
    type Result = ();

    fn handle(&mut self, m: Received<Filled>, _: &mut Context<Self>) {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "got {}", m.message.seq);
        let _ = out.flush();
    }
}

/// A line the child printed.
enum Line {
    Ready,
    Got(u64),
}

/// Starts the receiving child on `listen`; its lines come through the channel, which
/// closes when the child's output ends (it exited or was killed).
fn spawn_child(listen: SocketAddr) -> (Child, UnboundedReceiver<Line>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "receiving_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, listen.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the test binary runs again");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness's "test receiving_child ... " may start the line.
            let parsed = if line.ends_with("ready") {
                Line::Ready
            } else if let Some(at) = line.find("got ") {
                Line::Got(line[at + 4..].parse().unwrap())
            } else {
                continue;
            };
            if tx.send(parsed).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for the child's `ready`.
async fn ready(lines: &mut UnboundedReceiver<Line>) {
    within("the child to listen", async {
        while let Some(line) = lines.recv().await {
            if matches!(line, Line::Ready) {
                return;
            }
        }
        panic!("the child died before it listened");
    })
    .await;
}

/// A stream into a receiving process that is killed (`SIGKILL`) mid-stream and
/// started again on the same port: what the first incarnation acknowledged was
/// received by it (exactly once), every message it had not acknowledged fails
/// `PeerRestarted` at once (with one `PeerRestarted` event), and the new incarnation
/// receives everything sent after, in order, once.
#[actix_rt::test]
async fn a_receiver_killed_and_restarted_keeps_what_it_acknowledged() {
    let _ = env_logger::builder().is_test(true).try_init();
    tokio::time::timeout(Duration::from_secs(60), async {
        let listen = support::reserve_port();
        let (mut first, mut first_lines) = spawn_child(listen);
        ready(&mut first_lines).await;
        let a = fast_reconnects(support::builder(1)).start().await.unwrap();
        let mut events = Events::subscribe(&a).await;
        a.add_peer(B, listen).await;
        let to_b = a.peer(B);

        // A steady stream; the receiver is killed once 2000 messages were acknowledged.
        let mut outcomes: BTreeMap<u64, Result<Sent, SendError>> = BTreeMap::new();
        let mut pending = FuturesUnordered::new();
        let mut n = 0u64;
        let mut killed_at = None;
        let mut second = None;
        let mut acked = 0;
        while outcomes.len() < 6_000 {
            while pending.len() < WINDOW_KILL && n < 6_000 {
                let outcome = to_b.send(Filled::new(n, 64));
                pending.push(async move { (n, outcome.await) });
                n += 1;
            }
            let (seq, outcome) = pending.next().await.unwrap();
            acked += usize::from(outcome.is_ok());
            outcomes.insert(seq, outcome);
            if killed_at.is_none() && acked >= 2_000 {
                first.kill().expect("SIGKILL");
                first.wait().unwrap();
                killed_at = Some(n);
                let (child, mut lines) = spawn_child(listen);
                ready(&mut lines).await;
                second = Some((child, lines));
            }
        }
        let (mut second, mut second_lines) = second.expect("the receiver was restarted");
        // Everything the killed incarnation's handler printed (its output has ended).
        let mut before = Vec::new();
        while let Some(line) = first_lines.recv().await {
            if let Line::Got(n) = line {
                before.push(n);
            }
        }

        let restarted: Vec<u64> = outcomes
            .iter()
            .filter(|(_, o)| **o == Err(SendError::PeerRestarted))
            .map(|(s, _)| *s)
            .collect();
        let acknowledged: Vec<u64> = outcomes
            .iter()
            .filter(|(_, o)| **o == Ok(Sent::Acknowledged))
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(
            acknowledged.len() + restarted.len(),
            outcomes.len(),
            "every outcome is Acknowledged or PeerRestarted: {:?}",
            outcomes
                .values()
                .filter(|o| !matches!(o, Ok(_) | Err(SendError::PeerRestarted)))
                .take(3)
                .collect::<Vec<_>>()
        );
        assert!(!restarted.is_empty(), "the kill caught messages in flight");
        // Acknowledgements are cumulative per incarnation: what the first one
        // acknowledged precedes what failed PeerRestarted, which precedes what the new
        // one acknowledged.
        let boundary = *restarted.last().unwrap();
        let (first_acked, second_acked): (Vec<u64>, Vec<u64>) =
            acknowledged.iter().partition(|s| **s < boundary);
        assert!(
            first_acked.iter().all(|s| *s < restarted[0]),
            "PeerRestarted failures form one block after the first incarnation's"
        );

        // The new incarnation gets exactly the ones it acknowledged, in order, once:
        // nothing of the old session reaches it. The last message sent is one of them.
        let mut after = Vec::new();
        let last = *second_acked
            .last()
            .expect("the new incarnation acknowledged");
        within("the new incarnation to get its messages", async {
            while after.last() != Some(&last) {
                match second_lines.recv().await {
                    Some(Line::Got(n)) => after.push(n),
                    Some(Line::Ready) => {}
                    None => panic!("the new incarnation died"),
                }
            }
        })
        .await;
        second.kill().unwrap();
        second.wait().unwrap();
        assert_eq!(after, second_acked, "the new incarnation");

        // The first incarnation's handler got a prefix, in order, once. Everything it
        // acknowledged reached it: an acknowledgement means "taken off the connection
        // and handed to the handler's mailbox", so the only acknowledged messages a
        // SIGKILL may take with it are those still in that mailbox, right after the
        // last one handled, at most what the sender had outstanding (it may also have
        // handled a few it had not acknowledged yet: those failed PeerRestarted, in
        // doubt).
        assert_eq!(before, (0..before.len() as u64).collect::<Vec<_>>());
        let in_mailbox: Vec<u64> = first_acked
            .iter()
            .copied()
            .filter(|s| before.binary_search(s).is_err())
            .collect();
        assert_eq!(
            in_mailbox,
            (before.len() as u64..before.len() as u64 + in_mailbox.len() as u64)
                .collect::<Vec<_>>(),
            "acknowledged by the first incarnation and never handled: only its mailbox's tail"
        );
        assert!(
            in_mailbox.len() <= WINDOW_KILL,
            "{} acknowledged, never handled",
            in_mailbox.len()
        );
        for s in &restarted {
            assert!(
                !after.contains(s),
                "{s} failed PeerRestarted but reached the new one"
            );
        }
        events
            .wait_for("the restart notice", B, LinkKind::Small, |e| {
                matches!(e, LinkEvent::PeerRestarted { .. })
            })
            .await;
        let notices = events
            .take_arrived()
            .iter()
            .filter(|n| matches!(n.event, LinkEvent::PeerRestarted { .. }))
            .count();
        assert_eq!(notices, 1, "one notice");
        eprintln!(
            "killed after {} sent: {} acknowledged ({} by the first incarnation, {} of them \
             still in its mailbox), {} failed PeerRestarted, {} received by the second",
            killed_at.unwrap(),
            acknowledged.len(),
            first_acked.len(),
            in_mailbox.len(),
            restarted.len(),
            after.len()
        );
    })
    .await
    .expect("the test finishes in time");
}
