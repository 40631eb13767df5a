//! Two nodes on loopback exchanging typed messages and requests.
#![cfg(feature = "serde")]

use std::time::Duration;

use actix::prelude::*;
use internode::node::{HandlerError, Node, Received, RequestError, Requested, Sent};
use internode::NodeId;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    seq: u64,
    text: String,
}
internode::message!(Note, verb = 100);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Add(u64, u64);
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sum(u64);
internode::request!(Add => Sum, verb = 101);
internode::message!(Sum, verb = 102);

/// Forwards what it receives to a channel the test awaits.
struct Collector(mpsc::UnboundedSender<(NodeId, Note)>);
impl Actor for Collector {
    type Context = Context<Self>;
}
impl Handler<Received<Note>> for Collector {
    type Result = ();
    fn handle(&mut self, m: Received<Note>, _: &mut Context<Self>) {
        let _ = self.0.send((m.from, m.message));
    }
}

struct Adder;
impl Actor for Adder {
    type Context = Context<Self>;
}
impl Handler<Requested<Add>> for Adder {
    type Result = Result<Sum, HandlerError>;
    fn handle(&mut self, m: Requested<Add>, _: &mut Context<Self>) -> Self::Result {
        let Add(a, b) = m.message;
        a.checked_add(b)
            .map(Sum)
            .ok_or_else(|| HandlerError("overflow".into()))
    }
}

async fn node(id: u64) -> Node {
    Node::builder(NodeId(id), "127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .unwrap()
}

#[actix::test]
async fn messages_arrive_in_order_and_requests_get_answers() {
    let result = tokio::time::timeout(Duration::from_secs(20), async {
        let a = node(1).await;
        let b = node(2).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        b.handle::<Note>(Collector(tx).start().recipient()).unwrap();
        b.handle_requests::<Add>(Adder.start().recipient()).unwrap();
        a.add_peer(NodeId(2), b.local_addr()).await;

        let peer = a.peer(NodeId(2));
        let outcomes: Vec<_> = (0..1000)
            .map(|seq| {
                peer.send(Note {
                    seq,
                    text: format!("note {seq}"),
                })
            })
            .collect();
        for outcome in outcomes {
            assert_eq!(outcome.await, Ok(Sent::Acknowledged));
        }
        let mut next = 0;
        while next < 1000 {
            let (from, note) = rx.recv().await.unwrap();
            assert_eq!(from, NodeId(1));
            assert_eq!(note.seq, next, "in order, no duplicates");
            next += 1;
        }

        assert_eq!(a.request(NodeId(2), Add(2, 3)).await, Ok(Sum(5)));
        match a.request(NodeId(2), Add(u64::MAX, 1)).await {
            Err(RequestError::Remote(f)) => assert!(f.detail.contains("overflow")),
            other => panic!("expected a remote failure, got {other:?}"),
        }
    })
    .await;
    result.expect("test timed out");
}
