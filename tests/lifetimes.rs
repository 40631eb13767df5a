//! Lifetimes of handles and futures: every send and request future is `'static` (an
//! actor's handler spawns them into its own context); a `Peer` is taken at once, finds
//! its links on first use, and finds them again after `close_peer`; an unknown peer
//! or a closed node shows in the messages' outcomes, not when the handle is taken.
#![cfg(feature = "serde")]

mod support;

use std::time::Duration;

use actix::prelude::*;
use internode::node::{Node, RequestError, SendError, Sent};
use internode::{LinkKind, NodeId};
use support::{bounded, collect, node, pair, recv_n, serve, within, Incr, Incremented, Seq};
use tokio::sync::mpsc;

const B: NodeId = NodeId(2);

fn is_send<T: Send>(_: &T) {}

/// An actor that, asked to, sends a message and a request to a peer from inside its
/// handler (spawning both futures into its own context) and forwards both outcomes.
struct Relay {
    node: Node,
    to: NodeId,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Sent(u64, Result<Sent, SendError>),
    Answered(u64, Result<Incremented, RequestError>),
}

impl Actor for Relay {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Go(u64);

impl Handler<Go> for Relay {
    type Result = ();

    fn handle(&mut self, Go(n): Go, ctx: &mut Context<Self>) {
        // Neither future borrows `self.node` or the message.
        let sent = self.node.send(self.to, Seq(n));
        let answer = self.node.request(self.to, Incr(n));
        ctx.spawn(sent.into_actor(self).map(move |outcome, act, _| {
            let _ = act.outcomes.send(Outcome::Sent(n, outcome));
        }));
        ctx.spawn(answer.into_actor(self).map(move |outcome, act, _| {
            let _ = act.outcomes.send(Outcome::Answered(n, outcome));
        }));
    }
}

#[actix::test]
async fn an_actor_spawns_sends_and_requests_into_its_own_context() {
    bounded(async {
        let (a, b) = pair().await;
        let mut inbox = collect::<Seq>(&b);
        serve::<Incr>(&b, |_, Incr(n)| Ok(Incremented(n + 1)));
        let (tx, mut outcomes) = mpsc::unbounded_channel();
        let relay = Relay {
            node: a.clone(),
            to: B,
            outcomes: tx,
        }
        .start();

        for n in 0..3 {
            relay.do_send(Go(n));
        }
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(within("an outcome", outcomes.recv()).await.unwrap());
        }
        for n in 0..3 {
            assert!(seen.contains(&Outcome::Sent(n, Ok(Sent::Acknowledged))));
            assert!(seen.contains(&Outcome::Answered(n, Ok(Incremented(n + 1)))));
        }
        let received = recv_n(&mut inbox, 3).await;
        assert_eq!(
            received,
            (0..3).map(|n| (NodeId(1), Seq(n))).collect::<Vec<_>>()
        );

        // The futures outlive the handles they came from, and can go to any thread.
        let to_b = a.peer(B);
        let sent = to_b.send(Seq(3));
        let answer = to_b.request(Incr(3));
        let timed = a.request_with_timeout(B, Incr(4), Duration::from_secs(5));
        let expiring = a.send_expiring(B, Seq(4), Duration::from_secs(5));
        is_send(&sent);
        is_send(&answer);
        is_send(&timed);
        is_send(&expiring);
        drop(to_b);
        assert_eq!(sent.await, Ok(Sent::Acknowledged));
        assert_eq!(answer.await, Ok(Incremented(4)));
        assert_eq!(timed.await, Ok(Incremented(5)));
        assert_eq!(expiring.await, Ok(Sent::Acknowledged));
    })
    .await;
}

#[actix::test]
async fn a_peer_taken_before_close_peer_sends_over_the_new_links() {
    bounded(async {
        let (a, b) = pair().await;
        let mut inbox = collect::<Seq>(&b);
        serve::<Incr>(&b, |_, Incr(n)| Ok(Incremented(n + 1)));
        let to_b = a.peer(B);
        assert_eq!(to_b.send(Seq(0)).await, Ok(Sent::Acknowledged));
        let old = to_b
            .link(LinkKind::Small)
            .expect("found on the first message");

        a.close_peer(B, true).await;
        assert!(to_b.link(LinkKind::Small).is_none(), "the old link is gone");
        assert_eq!(to_b.send(Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(to_b.request(Incr(1)).await, Ok(Incremented(2)));
        let new = to_b.link(LinkKind::Small).expect("a new link");
        assert_ne!(old, new, "a new link");
        assert_eq!(
            recv_n(&mut inbox, 2).await,
            vec![(NodeId(1), Seq(0)), (NodeId(1), Seq(1))]
        );

        // Again without drain, with messages in flight: each ends as the close says.
        let queued: Vec<_> = (2..10).map(|n| to_b.send(Seq(n))).collect();
        a.close_peer(B, false).await;
        for outcome in support::join_all(queued).await {
            assert!(
                matches!(
                    outcome,
                    Ok(Sent::Acknowledged)
                        | Err(SendError::Closed)
                        | Err(SendError::ConnectionLost)
                ),
                "{outcome:?}"
            );
        }
        assert_eq!(to_b.send(Seq(10)).await, Ok(Sent::Acknowledged));
    })
    .await;
}

#[actix::test]
async fn an_unknown_peer_fails_its_messages_until_its_address_is_known() {
    bounded(async {
        let a = node(1).await;
        let b = node(2).await;
        let mut inbox = collect::<Seq>(&b);
        // Taking the handle does not fail, nor wait.
        let to_b = a.peer(B);
        assert_eq!(to_b.send(Seq(0)).await, Err(SendError::UnknownPeer(B)));
        assert_eq!(
            to_b.request(Incr(0)).await,
            Err(RequestError::Send(SendError::UnknownPeer(B)))
        );
        assert_eq!(to_b.ready().await, Err(SendError::UnknownPeer(B)));
        assert_eq!(to_b.try_send(Seq(0)).err(), Some(SendError::UnknownPeer(B)));

        a.add_peer(B, b.local_addr()).await;
        assert_eq!(to_b.send(Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(1), Seq(1))]);
    })
    .await;
}

#[actix::test]
async fn a_peer_of_a_closed_node_fails_closed_and_opens_nothing() {
    bounded(async {
        let (a, _b) = pair().await;
        let to_b = a.peer(B);
        assert_eq!(to_b.send(Seq(0)).await, Ok(Sent::Acknowledged));
        let fresh = a.peer(NodeId(3));

        a.close(false).await;
        assert_eq!(to_b.send(Seq(1)).await, Err(SendError::Closed));
        assert_eq!(to_b.ready().await, Err(SendError::Closed));
        assert_eq!(fresh.send(Seq(1)).await, Err(SendError::Closed));
        assert_eq!(a.send(B, Seq(2)).await, Err(SendError::Closed));
        assert!(a.links().await.is_empty(), "no link reopened");
    })
    .await;
}

#[actix::test]
async fn messages_wait_in_call_order_while_a_fresh_handle_finds_its_link() {
    bounded(async {
        let (a, b) = pair().await;
        let mut inbox = collect::<Seq>(&b);
        let to_b = a.peer(B);
        // Before the link is known: in line, in call order, whichever is polled first.
        let mut outcomes: Vec<_> = (0..100).map(|n| to_b.send(Seq(n))).collect();
        let through_node = a.send(B, Seq(100));
        assert!(to_b.link(LinkKind::Small).is_none(), "not found yet");
        // Not ready yet: `try_send` does not wait.
        assert!(matches!(
            to_b.try_send(Seq(999)),
            Err(SendError::Overloaded(_))
        ));
        assert_eq!(through_node.await, Ok(Sent::Acknowledged));
        while let Some(outcome) = outcomes.pop() {
            assert_eq!(outcome.await, Ok(Sent::Acknowledged));
        }
        assert_eq!(
            recv_n(&mut inbox, 101).await,
            (0..=100).map(|n| (NodeId(1), Seq(n))).collect::<Vec<_>>()
        );
    })
    .await;
}
