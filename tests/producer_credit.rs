//! Producers under their links' credit, as a user meets them: a stream forwarded to a
//! peer's sink, sends beyond the credit awaited in any order, a send whose deadline
//! passes while it waits for room, and `try_send` refusing without waiting.
#![cfg(feature = "serde")]

mod support;

use std::time::Duration;

use futures_util::{stream, StreamExt};
use internode::limits::Limits;
use internode::node::{OverloadLevel, SendError, Sent};
use internode::{LinkKind, NodeId};
use support::{bounded, builder, collect, sender_behind_proxy, within, Filled};

const B: NodeId = NodeId(2);
const KIB: usize = 1024;

/// Send limits far smaller than what the tests send.
const TINY: Limits = Limits::new(8 * KIB, 16 * KIB, 32 * KIB);

#[actix::test]
async fn a_stream_forwarded_to_a_peer_sink_arrives_whole_and_in_order() {
    bounded(async {
        const N: u64 = 20_000;
        let b = builder(2).start().await.unwrap();
        let mut inbox = collect::<Filled>(&b);
        let a = builder(1).send_limits(TINY).start().await.unwrap();
        a.add_peer(B, b.local_addr()).await;
        let to_b = a.peer(B);

        let messages = stream::iter((0..N).map(|seq| Ok(Filled::new(seq, KIB))));
        let forwarded = actix::spawn(messages.forward(to_b.sink::<Filled>()));
        for expected in 0..N {
            let (from, m) = within("the next message", inbox.recv()).await.unwrap();
            assert_eq!((from, m.seq), (NodeId(1), expected));
            m.check(KIB);
        }
        within("the forward to end", forwarded)
            .await
            .unwrap()
            .expect("every message queued");
        // All of it through a link that holds 24 KiB at most.
        let links = a.links().await;
        let small = links.iter().find(|l| l.kind == LinkKind::Small).unwrap();
        assert_eq!(small.counters.accepted, N);
        assert!(small.counters.failed.is_empty(), "{:?}", small.counters);
    })
    .await;
}

#[actix::test]
async fn sends_beyond_the_credit_keep_their_order_whichever_is_awaited_first() {
    bounded(async {
        const N: u64 = 300;
        let b = builder(2).start().await.unwrap();
        let mut inbox = collect::<Filled>(&b);
        let a = builder(1).send_limits(TINY).start().await.unwrap();
        a.add_peer(B, b.local_addr()).await;
        let to_b = a.peer(B);

        // 300 KiB of sends, far beyond the credit: most wait. Awaited last first: the
        // one polled serves those before it.
        let mut outcomes: Vec<_> = (0..N).map(|seq| to_b.send(Filled::new(seq, KIB))).collect();
        while let Some(outcome) = outcomes.pop() {
            assert_eq!(
                within("a send", outcome).await,
                Ok(Sent::Acknowledged),
                "message {}",
                outcomes.len()
            );
        }
        for expected in 0..N {
            let (_, m) = within("the next message", inbox.recv()).await.unwrap();
            assert_eq!(m.seq, expected, "in the order of the calls");
        }
    })
    .await;
}

#[actix::test]
async fn a_send_waiting_for_room_fails_expired_at_its_deadline_and_try_send_does_not_wait() {
    bounded(async {
        let (a, b, proxy) = sender_behind_proxy(TINY).await;
        let mut inbox = collect::<Filled>(&b);
        let to_b = a.peer(B);
        assert_eq!(to_b.send(Filled::new(0, KIB)).await, Ok(Sent::Acknowledged));
        within("the first message", inbox.recv()).await;

        proxy.stall();
        // Fill the link and its credit, until the link says its reserve is short.
        let mut queued = Vec::new();
        let waiting = loop {
            let seq = queued.len() as u64 + 1;
            assert!(
                seq < 1000,
                "a stalled peer took 1000 KiB under 24 KiB of limits"
            );
            match to_b.try_send(Filled::new(seq, KIB)) {
                Ok(q) => queued.push(actix::spawn(q)),
                // Out of credit, more asked for: the link has not answered yet.
                Err(SendError::Overloaded(OverloadLevel::Link)) => {
                    tokio::time::sleep(support::POLL).await;
                }
                Err(e) => {
                    assert_eq!(e, SendError::Overloaded(OverloadLevel::Endpoint));
                    break seq;
                }
            }
        };
        let started = std::time::Instant::now();
        let late = to_b.send_expiring(Filled::new(waiting, KIB), Duration::from_millis(200));
        assert_eq!(within("the expiry", late).await, Err(SendError::Expired));
        assert!(started.elapsed() >= Duration::from_millis(150));
        // Refused at once, by the sender, while the link is full.
        assert!(matches!(
            to_b.try_send(Filled::new(waiting, KIB)),
            Err(SendError::Overloaded(_))
        ));

        proxy.resume();
        for q in queued {
            assert_eq!(
                within("a queued message", q).await.unwrap(),
                Ok(Sent::Acknowledged)
            );
        }
        // The expired one was never sent; the next one follows the queued ones.
        assert_eq!(
            to_b.send(Filled::new(waiting + 1, KIB)).await,
            Ok(Sent::Acknowledged)
        );
        let mut seqs = Vec::new();
        while seqs.last() != Some(&(waiting + 1)) {
            let (_, m) = within("the messages", inbox.recv()).await.unwrap();
            seqs.push(m.seq);
        }
        let expected: Vec<u64> = (1..waiting).chain([waiting + 1]).collect();
        assert_eq!(seqs, expected);
    })
    .await;
}

/// Fills the credit and link of a peer that is unreachable: `try_send` of 4 KiB
/// messages (their outcomes kept) until it is refused five times in a row.
async fn fill_unreachable(peer: &internode::node::Peer) -> Vec<internode::node::Queued> {
    let mut kept = Vec::new();
    let mut misses = 0;
    while misses < 5 {
        match peer.try_send(Filled::new(kept.len() as u64, 4 * KIB)) {
            Ok(q) => {
                kept.push(q);
                misses = 0;
            }
            Err(SendError::Overloaded(_)) => misses += 1,
            Err(e) => panic!("after {}: {e:?}", kept.len()),
        }
        tokio::time::sleep(support::POLL).await;
    }
    kept
}

#[actix::test]
async fn a_dropped_outcome_neither_withdraws_its_message_nor_keeps_its_credit() {
    bounded(async {
        let b = builder(2).start().await.unwrap();
        let mut inbox = collect::<Filled>(&b);
        let a = builder(1).send_limits(TINY).start().await.unwrap();
        a.add_peer(B, b.local_addr()).await;
        let to_b = a.peer(B);
        // 200 KiB through 24 KiB of limits, every outcome dropped at once.
        for seq in 0..200 {
            let queued = within("room", to_b.enqueue(Filled::new(seq, KIB))).await;
            drop(queued.expect("queued"));
        }
        for expected in 0..200 {
            let (_, m) = within("the next message", inbox.recv()).await.unwrap();
            assert_eq!(m.seq, expected);
        }
        assert_eq!(
            to_b.send(Filled::new(200, KIB)).await,
            Ok(Sent::Acknowledged)
        );
    })
    .await;
}

#[actix::test]
async fn an_enqueue_is_in_line_from_the_call_not_from_its_first_poll() {
    bounded(async {
        let b = builder(2).start().await.unwrap();
        let mut inbox = collect::<Filled>(&b);
        let a = builder(1).start().await.unwrap();
        a.add_peer(B, b.local_addr()).await;
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        let first = to_b.enqueue(Filled::new(1, 16));
        let second = to_b.try_send(Filled::new(2, 16)).expect("within credit");
        let first = first.await.expect("queued");
        assert_eq!(first.await, Ok(Sent::Acknowledged));
        assert_eq!(second.await, Ok(Sent::Acknowledged));
        for expected in [1, 2] {
            let (_, m) = within("the next message", inbox.recv()).await.unwrap();
            assert_eq!(m.seq, expected);
        }
    })
    .await;
}

#[actix::test]
async fn a_send_expires_while_waiting_behind_another_and_new_lines_never_hang() {
    bounded(async {
        let a = builder(1).send_limits(TINY).start().await.unwrap();
        let nowhere = support::refusing_port();
        a.add_peer(B, nowhere.addr()).await;
        let to_b = a.peer(B);
        to_b.ready().await.unwrap();
        let kept = fill_unreachable(&to_b).await;
        assert!(!kept.is_empty());

        // The first (larger than any room left) waits without a deadline; the one
        // behind it still expires.
        let first = actix::spawn(to_b.send(Filled::new(1000, 6 * KIB)));
        let second = to_b.send_expiring(Filled::new(1001, KIB), Duration::from_millis(200));
        assert_eq!(within("the expiry", second).await, Err(SendError::Expired));

        // A link of the peer closes: the registry makes it a new line; the others
        // keep theirs, and a send on the full, failing small link through a new
        // handle does not hang (it waits until its deadline).
        let urgent = to_b.link(LinkKind::Urgent).unwrap().clone();
        urgent
            .send(internode::node::CloseLink::new(false))
            .await
            .unwrap();
        let late = a.send_expiring(B, Filled::new(1002, KIB), Duration::from_millis(200));
        assert_eq!(
            within("a send through a new handle", late).await,
            Err(SendError::Expired)
        );
        first.abort();
        drop(kept);
    })
    .await;
}
