//! Closure handlers (`Node::handle_fn` and its async and request forms) between real
//! nodes over loopback: order per link, answers and handler failures, local delivery,
//! and the receive limits held until an async handler's future ends.
#![cfg(feature = "serde")]

mod support;

use std::sync::Arc;

use internode::message::{FailureReason, RemoteFailure};
use internode::node::{HandlerError, InboundSnapshot, Metrics, Node, RequestError, Sent};
use internode::{LinkKind, NodeId};
use serde::{Deserialize, Serialize};
use support::{bounded, pair, poll_until, recv_n, within, Blob, Incr, Incremented, Seq};
use tokio::sync::{mpsc, Semaphore};

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);
const N: u64 = 200;

/// A request answered by an async closure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Halve(u64);
internode::request!(Halve => Incremented, verb = 1300);

/// Sends `Seq(0..N)` from `a` to B through one handle, in order.
async fn send_numbers(a: &Node) {
    let peer = a.peer(B);
    peer.ready().await.unwrap();
    let mut outcomes = Vec::new();
    for n in 0..N {
        outcomes.push(peer.send(Seq(n)));
    }
    for outcome in outcomes {
        assert_eq!(outcome.await, Ok(Sent::Acknowledged));
    }
}

fn failed(detail: &str) -> Result<Incremented, RequestError> {
    Err(RequestError::Remote(RemoteFailure::new(
        FailureReason::HandlerFailed,
        detail,
    )))
}

#[actix::test]
async fn a_sync_closure_gets_one_way_messages_in_the_order_of_their_link() {
    bounded(async {
        let (a, b) = pair().await;
        let (tx, mut got) = mpsc::unbounded_channel();
        let mut count = 0;
        b.handle_fn(move |from: NodeId, Seq(n): Seq| {
            count += 1; // the closure may keep state: it is FnMut
            let _ = tx.send((from, (n, count)));
        })
        .unwrap();

        send_numbers(&a).await;
        let expected: Vec<_> = (0..N).map(|n| (A, (n, n + 1))).collect();
        assert_eq!(recv_n(&mut got, N as usize).await, expected);

        // A message to the node itself reaches the closure without the network.
        assert_eq!(b.send(B, Seq(7)).await, Ok(Sent::DeliveredLocally));
        assert_eq!(recv_n(&mut got, 1).await, vec![(B, (7, N + 1))]);
    })
    .await;
}

#[actix::test]
async fn an_async_closure_is_called_in_the_order_of_its_link_and_every_future_runs() {
    bounded(async {
        let (a, b) = pair().await;
        let (called_tx, mut called) = mpsc::unbounded_channel();
        let (done_tx, mut done) = mpsc::unbounded_channel();
        b.handle_fn_async(move |from: NodeId, Seq(n): Seq| {
            // Before the `async` block: runs in arrival order.
            let _ = called_tx.send((from, n));
            let done = done_tx.clone();
            async move {
                tokio::task::yield_now().await;
                let _ = done.send((from, n));
            }
        })
        .unwrap();

        send_numbers(&a).await;
        let expected: Vec<_> = (0..N).map(|n| (A, n)).collect();
        assert_eq!(recv_n(&mut called, N as usize).await, expected);
        let mut finished: Vec<_> = recv_n(&mut done, N as usize).await;
        finished.sort();
        assert_eq!(finished, expected);
    })
    .await;
}

#[actix::test]
async fn request_closures_answer_and_their_handler_errors_reach_the_requester() {
    bounded(async {
        let (a, b) = pair().await;
        b.handle_requests_fn(|_, Incr(n)| match n {
            0 => Err(HandlerError("zero has no successor here".into())),
            n => Ok(Incremented(n + 1)),
        })
        .unwrap();
        b.handle_requests_fn_async(|from: NodeId, Halve(n): Halve| async move {
            tokio::task::yield_now().await;
            match n % 2 {
                0 => Ok(Incremented(n / 2)),
                _ => Err(HandlerError(format!("{n} is odd (asked by {from})"))),
            }
        })
        .unwrap();

        assert_eq!(a.request(B, Incr(1)).await, Ok(Incremented(2)));
        assert_eq!(
            a.request(B, Incr(0)).await,
            failed("zero has no successor here")
        );
        assert_eq!(a.request(B, Halve(8)).await, Ok(Incremented(4)));
        assert_eq!(
            a.request(B, Halve(3)).await,
            failed("3 is odd (asked by node-1)")
        );

        // Requests to the node itself go to the same closures.
        assert_eq!(b.request(B, Incr(5)).await, Ok(Incremented(6)));
        assert_eq!(
            b.request(B, Halve(5)).await,
            failed("5 is odd (asked by node-2)")
        );

        // Many at once: the async futures run concurrently, each answer to its request.
        let asks: Vec<_> = (0..50u64).map(|n| a.request(B, Halve(2 * n))).collect();
        for (n, answer) in (0..50u64).zip(support::join_all(asks).await) {
            assert_eq!(answer, Ok(Incremented(n)));
        }
    })
    .await;
}

/// B's receiving side of A's small link.
fn inbound(m: &Metrics) -> Result<&InboundSnapshot, String> {
    m.inbound
        .iter()
        .find(|i| i.peer == A && i.kind == LinkKind::Small)
        .ok_or_else(|| "no inbound link from A yet".to_string())
}

#[actix::test]
async fn an_async_one_way_closure_holds_its_message_against_the_receive_limits_until_its_future_ends(
) {
    bounded(async {
        let (a, b) = pair().await;
        let release = Arc::new(Semaphore::new(0));
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let (ended_tx, mut ended) = mpsc::unbounded_channel();
        let gate = release.clone();
        b.handle_fn_async(move |_, blob: Blob| {
            let (gate, started, ended) = (gate.clone(), started_tx.clone(), ended_tx.clone());
            async move {
                let _ = started.send(blob.0.len());
                gate.acquire().await.expect("the gate stays open").forget();
                let _ = ended.send(());
            }
        })
        .unwrap();

        assert_eq!(a.send(B, Blob::new(1000, 7)).await, Ok(Sent::Acknowledged));
        assert_eq!(
            within("the future to start", started.recv()).await,
            Some(1000)
        );
        // A permit given back when the closure returned would have reached the
        // receiving actor before this request for its snapshot.
        let m = b.metrics().await;
        let held = inbound(&m).unwrap();
        assert_eq!((held.counters.dispatched, held.counters.processed), (1, 0));
        assert!(held.pending_bytes >= 1000, "{held:?}");

        release.add_permits(1);
        within("the future to end", ended.recv()).await.unwrap();
        poll_until("the message's bytes to be given back", || async {
            let m = b.metrics().await;
            let now = inbound(&m)?;
            match (now.counters.processed, now.pending_bytes) {
                (1, 0) => Ok(()),
                other => Err(format!("processed, pending: {other:?}")),
            }
        })
        .await;
    })
    .await;
}

#[actix::test]
async fn an_async_request_closure_holds_its_request_against_the_receive_limits_until_it_answers() {
    bounded(async {
        let (a, b) = pair().await;
        let release = Arc::new(Semaphore::new(0));
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let gate = release.clone();
        b.handle_requests_fn_async(move |_, Halve(n): Halve| {
            let (gate, started) = (gate.clone(), started_tx.clone());
            async move {
                let _ = started.send(n);
                gate.acquire().await.expect("the gate stays open").forget();
                Ok(Incremented(n / 2))
            }
        })
        .unwrap();

        let answer = actix::spawn({
            let a = a.clone();
            async move { a.request(B, Halve(10)).await }
        });
        assert_eq!(
            within("the future to start", started.recv()).await,
            Some(10)
        );
        let m = b.metrics().await;
        let held = inbound(&m).unwrap();
        assert_eq!((held.counters.dispatched, held.counters.processed), (1, 0));
        assert!(held.pending_bytes > 0, "{held:?}");
        assert!(!answer.is_finished());

        release.add_permits(1);
        let answer = within("the answer", answer).await.unwrap();
        assert_eq!(answer, Ok(Incremented(5)));
        poll_until("the request's bytes to be given back", || async {
            let m = b.metrics().await;
            let now = inbound(&m)?;
            match (now.counters.processed, now.pending_bytes) {
                (1, 0) => Ok(()),
                other => Err(format!("processed, pending: {other:?}")),
            }
        })
        .await;
    })
    .await;
}
