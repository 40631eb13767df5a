//! Requests that do not simply succeed: timeouts, handler failures, unknown verbs,
//! undecodable payloads, closed links; and one-way messages of an unknown verb,
//! which are skipped without hurting the connection.
#![cfg(feature = "serde")]

mod support;

use std::time::{Duration, Instant};

use actix::prelude::*;
use internode::message::{FailureReason, RemoteFailure};
use internode::node::{HandlerError, RequestError, Requested, SendError, SendErrorKind, Sent};
use internode::session::LinkEvent;
use internode::{LinkKind, NodeId};
use serde::{Deserialize, Serialize};
use support::{bounded, collect, node, pair, recv_n, serve, Events, Incr, Incremented, Seq};
use tokio::sync::mpsc;

const B: NodeId = NodeId(2);

/// Answers `Incr` after a delay; tells `seen` when a request arrives.
struct Slow {
    delay: Duration,
    seen: Option<mpsc::UnboundedSender<u64>>,
}

impl Slow {
    fn new(delay: Duration) -> Slow {
        Slow { delay, seen: None }
    }
}

impl Actor for Slow {
    type Context = Context<Self>;
}

impl Handler<Requested<Incr>> for Slow {
    type Result = ResponseFuture<Result<Incremented, HandlerError>>;

    fn handle(&mut self, m: Requested<Incr>, _: &mut Context<Self>) -> Self::Result {
        if let Some(seen) = &self.seen {
            let _ = seen.send(m.message.0);
        }
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(Incremented(m.message.0 + 1))
        })
    }
}

/// A request type B has no handler for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unhandled(u64);
internode::request!(Unhandled => Incremented, verb = 1200);

/// A one-way message type B has no handler for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unknown(u64);
internode::message!(Unknown, verb = 1201);

/// A request on `Seq`'s verb, which B handles as a one-way message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SeqAsRequest(u64);
internode::request!(SeqAsRequest => Incremented, verb = 1000);

/// A request on `Incr`'s verb whose payload does not decode as an `Incr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NotAnIncr(Vec<u8>);
internode::request!(NotAnIncr => Incremented, verb = 1001);

#[actix::test]
async fn a_request_without_an_answer_in_time_times_out_and_a_late_answer_is_ignored() {
    bounded(async {
        let (a, b) = pair().await;
        let delay = Duration::from_millis(500);
        b.handle_requests::<Incr>(Slow::new(delay).start().recipient())
            .unwrap();

        let start = Instant::now();
        let timeout = Duration::from_millis(100);
        let answer = a.request_with_timeout(B, Incr(1), timeout).await;
        assert_eq!(answer, Err(RequestError::Timeout));
        let waited = start.elapsed();
        assert!(
            waited >= timeout && waited < delay,
            "timed out after {waited:?}"
        );

        // The next request is pending when the first one's answer arrives: it gets
        // its own answer, not that one.
        let answer = a
            .request_with_timeout(B, Incr(10), Duration::from_secs(5))
            .await;
        assert_eq!(answer, Ok(Incremented(11)));
        // (The handler answers each request after its delay, concurrently.)
        assert!(
            start.elapsed() >= timeout + delay,
            "the second answer came after its delay"
        );
    })
    .await;
}

#[actix::test]
async fn a_handler_failure_reaches_the_requester_at_once_with_its_reason() {
    bounded(async {
        let (a, b) = pair().await;
        serve::<Incr>(&b, |_, Incr(n)| {
            if n == 0 {
                Err(HandlerError("zero is not allowed".into()))
            } else {
                Ok(Incremented(n + 1))
            }
        });
        let start = Instant::now();
        let answer = a
            .request_with_timeout(B, Incr(0), Duration::from_secs(10))
            .await;
        assert_eq!(
            answer,
            Err(RequestError::Remote(RemoteFailure::new(
                FailureReason::HandlerFailed,
                "zero is not allowed"
            )))
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "at once, not at the timeout"
        );
        // The link and the handler still work.
        assert_eq!(a.request(B, Incr(1)).await, Ok(Incremented(2)));
    })
    .await;
}

#[actix::test]
async fn requests_the_peer_cannot_handle_fail_at_once() {
    bounded(async {
        let (a, b) = pair().await;
        let _inbox = collect::<Seq>(&b);
        serve::<Incr>(&b, |_, Incr(n)| Ok(Incremented(n + 1)));
        let long = Duration::from_secs(10);

        // No handler for the verb.
        let start = Instant::now();
        match a.request_with_timeout(B, Unhandled(1), long).await {
            Err(RequestError::Remote(f)) => assert_eq!(f.reason, FailureReason::UnknownVerb),
            other => panic!("expected an unknown-verb failure, got {other:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "at once, not at the timeout"
        );

        // A request on a verb handled as one-way messages.
        let start = Instant::now();
        match a.request_with_timeout(B, SeqAsRequest(1), long).await {
            Err(RequestError::Remote(f)) => assert_eq!(f.reason, FailureReason::UnknownVerb),
            other => panic!("expected an unknown-verb failure, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(2));

        // A payload that does not decode as the verb's type.
        let start = Instant::now();
        match a
            .request_with_timeout(B, NotAnIncr(vec![0xff; 12]), long)
            .await
        {
            Err(RequestError::Remote(f)) => assert_eq!(f.reason, FailureReason::DecodeFailed),
            other => panic!("expected a decode failure, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(2));

        // None of that hurt the connection.
        assert_eq!(a.request(B, Incr(1)).await, Ok(Incremented(2)));
        let links = a.links().await;
        let small = links.iter().find(|s| s.kind == LinkKind::Small).unwrap();
        assert_eq!(small.counters.connections, 1);
    })
    .await;
}

#[actix::test]
async fn a_one_way_message_of_an_unknown_verb_is_skipped_and_the_connection_stays_up() {
    bounded(async {
        let (a, b) = pair().await;
        let mut inbox = collect::<Seq>(&b);
        let mut events = Events::subscribe(&a).await;
        let to_b = a.peer(B);

        assert_eq!(to_b.send(Seq(0)).await, Ok(Sent::Acknowledged));
        // Unknown, then known, on the same link and connection.
        let unknown = to_b.send(Unknown(1));
        let known = to_b.send(Seq(1));
        assert_eq!(unknown.await, Ok(Sent::Acknowledged));
        assert_eq!(known.await, Ok(Sent::Acknowledged));
        let received = recv_n(&mut inbox, 2).await;
        assert_eq!(received, vec![(NodeId(1), Seq(0)), (NodeId(1), Seq(1))]);

        // More unknown messages interleaved with known ones, in one batch.
        let (mut unknown, mut known) = (Vec::new(), Vec::new());
        for n in 2..200 {
            unknown.push(to_b.send(Unknown(n)));
            known.push(to_b.send(Seq(n)));
        }
        for outcome in support::join_all(unknown).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        for outcome in support::join_all(known).await {
            assert_eq!(outcome, Ok(Sent::Acknowledged));
        }
        let received = recv_n(&mut inbox, 198).await;
        let expected: Vec<_> = (2..200).map(|n| (NodeId(1), Seq(n))).collect();
        assert_eq!(received, expected);

        let small = events.of(B, LinkKind::Small);
        assert_eq!(
            small,
            vec![LinkEvent::Connecting { attempt: 1 }, LinkEvent::Connected],
            "one connection, never lost"
        );
        assert_eq!(b.inbound_connections().await, 1);
        assert!(inbox.try_recv().is_err());
    })
    .await;
}

#[actix::test]
async fn pending_requests_fail_at_once_when_their_link_is_closed() {
    bounded(async {
        let (a, b) = pair().await;
        let (seen, mut arrived) = mpsc::unbounded_channel();
        let slow = Slow {
            delay: Duration::from_secs(5),
            seen: Some(seen),
        };
        b.handle_requests::<Incr>(slow.start().recipient()).unwrap();
        let pending = {
            let a = a.clone();
            actix::spawn(async move {
                a.request_with_timeout(B, Incr(1), Duration::from_secs(20))
                    .await
            })
        };
        // The request was written and is being handled: it waits for its answer.
        assert_eq!(
            support::within("the request", arrived.recv()).await,
            Some(1)
        );
        let start = Instant::now();
        a.close_peer(B, false).await;
        let answer = support::within("the pending request", pending)
            .await
            .unwrap();
        assert_eq!(answer, Err(RequestError::Closed));
        assert!(start.elapsed() < Duration::from_secs(2), "at once");

        // A request to a peer whose address is unknown is not sent at all.
        assert_eq!(
            a.request(NodeId(77), Incr(1)).await,
            Err(RequestError::Send(SendError::UnknownPeer(NodeId(77))))
        );
    })
    .await;
}

/// A request to a peer that is down times out at its deadline, although it is still
/// queued on its link (the link retries to connect).
#[actix::test]
async fn a_request_to_a_peer_that_is_down_times_out() {
    bounded(async {
        let a = node(1).await;
        let nowhere = support::refusing_port();
        a.add_peer(B, nowhere.addr()).await;
        let timeout = Duration::from_millis(300);
        let start = Instant::now();
        let answer = support::within(
            "the request's timeout",
            a.request_with_timeout(B, Incr(1), timeout),
        )
        .await;
        assert_eq!(answer, Err(RequestError::Timeout));
        let waited = start.elapsed();
        assert!(
            waited >= timeout && waited < timeout * 3,
            "timed out after {waited:?}"
        );
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UrgentIncr(u64);
internode::request!(UrgentIncr => Incremented, verb = 1202, urgent);

/// The answer to a request that came over the urgent link goes back over the
/// responder's urgent link, so that it does not wait behind the responder's bulk
/// traffic either; other answers go over the small link.
#[actix_rt::test]
async fn an_urgent_request_is_answered_over_the_urgent_link() {
    bounded(async {
        let (a, b) = pair().await;
        serve(&b, |_, UrgentIncr(n)| Ok(Incremented(n + 1)));
        serve(&b, |_, Incr(n)| Ok(Incremented(n + 1)));
        assert_eq!(a.request(B, UrgentIncr(1)).await, Ok(Incremented(2)));
        assert_eq!(a.request(B, Incr(10)).await, Ok(Incremented(11)));
        let written = |links: &[internode::node::LinkSnapshot], kind| {
            links
                .iter()
                .find(|l| l.peer == NodeId(1) && l.kind == kind)
                .map_or(0, |l| l.counters.written)
        };
        let links = b.links().await;
        assert_eq!(written(&links, LinkKind::Urgent), 1, "{links:?}");
        assert_eq!(written(&links, LinkKind::Small), 1, "{links:?}");
    })
    .await;
}

/// A request's deadline is its timeout: one that timed out while its peer was down is
/// never written when the peer comes back, so the peer never executes it (a caller
/// that retries after a timeout does not apply it twice).
#[actix::test]
async fn a_request_that_timed_out_is_never_executed_later() {
    bounded(async {
        let addr = support::reserve_port();
        let a = node(1).await;
        a.add_peer(B, addr).await;
        let timeout = Duration::from_millis(200);
        let answer = a.request_with_timeout(B, Incr(1), timeout).await;
        assert_eq!(answer, Err(RequestError::Timeout));

        // The peer comes up; the link reconnects and delivers what is still valid.
        let b = support::start_on(support::builder(2), addr).await;
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let handler = Slow {
            delay: Duration::ZERO,
            seen: Some(seen_tx),
        };
        b.handle_requests::<Incr>(handler.start().recipient())
            .unwrap();
        let mut inbox = collect::<Seq>(&b);
        assert_eq!(a.send(B, Seq(7)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(1), Seq(7))]);
        assert_eq!(
            a.request_with_timeout(B, Incr(2), Duration::from_secs(5))
                .await,
            Ok(Incremented(3))
        );
        assert_eq!(seen.recv().await, Some(2), "only the live request ran");
        assert!(seen.try_recv().is_err(), "the timed-out request never ran");
        let link = a
            .links()
            .await
            .into_iter()
            .find(|l| l.kind == LinkKind::Small)
            .unwrap();
        assert_eq!(
            link.counters.failed.get(&SendErrorKind::Expired),
            Some(&1),
            "{link:?}"
        );
    })
    .await;
}

/// The responder sends its answers straight to its link back to the requester, which it
/// learns once; after it closed its links to the requester, its answers go over the
/// new ones.
#[actix::test]
async fn answers_find_the_responders_new_link_after_it_closed_its_links_to_the_requester() {
    bounded(async {
        let (a, b) = pair().await;
        serve(&b, |_, Incr(n)| Ok(Incremented(n + 1)));
        for n in 0..3 {
            assert_eq!(a.request(B, Incr(n)).await, Ok(Incremented(n + 1)));
        }
        b.close_peer(NodeId(1), false).await;
        for n in 10..13 {
            let answer = a.request_with_timeout(B, Incr(n), Duration::from_secs(5));
            assert_eq!(answer.await, Ok(Incremented(n + 1)));
        }
        let small = |links: &[internode::node::LinkSnapshot]| {
            links
                .iter()
                .find(|l| l.peer == NodeId(1) && l.kind == LinkKind::Small)
                .map(|l| l.counters.written)
        };
        assert_eq!(small(&b.links().await), Some(3), "a new link took them");
    })
    .await;
}

/// Records requests and one-way messages in the order it gets them.
struct Recorder(mpsc::UnboundedSender<String>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Requested<Incr>> for Recorder {
    type Result = Result<Incremented, HandlerError>;

    fn handle(&mut self, m: Requested<Incr>, _: &mut Context<Self>) -> Self::Result {
        let _ = self.0.send(format!("request {}", m.message.0));
        Ok(Incremented(m.message.0 + 1))
    }
}

impl Handler<internode::node::Received<Seq>> for Recorder {
    type Result = ();

    fn handle(&mut self, m: internode::node::Received<Seq>, _: &mut Context<Self>) {
        let _ = self.0.send(format!("message {}", m.message.0));
    }
}

/// A request is queued when the call is made, like a one-way message: a request and
/// the message sent after it through the same handle arrive in the order of the calls.
#[actix::test]
async fn a_request_and_a_later_message_on_its_link_arrive_in_the_order_of_the_calls() {
    bounded(async {
        let (a, b) = pair().await;
        let (tx, mut got) = mpsc::unbounded_channel();
        let recorder = Recorder(tx).start();
        b.handle_requests::<Incr>(recorder.clone().recipient())
            .unwrap();
        b.handle::<Seq>(recorder.recipient()).unwrap();
        let peer = a.peer(B);
        let mut requests = Vec::new();
        let mut sends = Vec::new();
        let mut expected = Vec::new();
        for n in 0..50 {
            requests.push(peer.request(Incr(n)));
            sends.push(peer.send(Seq(n)));
            expected.push(format!("request {n}"));
            expected.push(format!("message {n}"));
        }
        for (n, answer) in support::join_all(requests).await.into_iter().enumerate() {
            assert_eq!(answer, Ok(Incremented(n as u64 + 1)));
        }
        for sent in support::join_all(sends).await {
            assert_eq!(sent, Ok(Sent::Acknowledged));
        }
        let mut arrived = Vec::new();
        support::within("everything to arrive", async {
            while arrived.len() < expected.len() {
                arrived.push(got.recv().await.expect("the recorder lives"));
            }
        })
        .await;
        assert_eq!(arrived, expected);
    })
    .await;
}

/// Answers its first request and stops.
struct OneShot;

impl Actor for OneShot {
    type Context = Context<Self>;
}

impl Handler<Requested<Incr>> for OneShot {
    type Result = Result<Incremented, HandlerError>;

    fn handle(&mut self, m: Requested<Incr>, ctx: &mut Context<Self>) -> Self::Result {
        ctx.stop();
        Ok(Incremented(m.message.0 + 1))
    }
}

/// A request whose handler's actor has stopped is answered `HandlerFailed` at once, not
/// left to time out.
#[actix::test]
async fn a_request_to_a_stopped_handler_fails_at_once() {
    bounded(async {
        let (a, b) = pair().await;
        b.handle_requests::<Incr>(OneShot.start().recipient())
            .unwrap();
        assert_eq!(a.request(B, Incr(1)).await, Ok(Incremented(2)));
        let start = Instant::now();
        let answer = a.request_with_timeout(B, Incr(2), Duration::from_secs(20));
        match answer.await {
            Err(RequestError::Remote(failure)) => {
                assert_eq!(failure.reason, FailureReason::HandlerFailed);
                assert!(
                    failure.detail.contains("handler unavailable"),
                    "{failure:?}"
                );
            }
            other => panic!("expected a handler failure, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(5), "at once");
    })
    .await;
}
