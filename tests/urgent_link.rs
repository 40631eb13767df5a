//! A large message does not delay an urgent one: the large link carries a 64 MiB
//! message while the urgent link delivers.
#![cfg(feature = "serde")]

mod support;

use std::time::Instant;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use internode::message::{DecodeError, EncodeError, Message};
use internode::node::{Received, Sent};
use internode::{LinkKind, NodeId};
use serde::{Deserialize, Serialize};
use support::{bounded, node, within, Events};
use tokio::sync::mpsc;

const SIZE: usize = 64 * 1024 * 1024;

/// A large payload, encoded as its bytes (a hand-written [`Message`]: no serde pass
/// over 64 MiB, one byte at a time).
#[derive(Debug)]
struct Blob(Bytes);

impl Message for Blob {
    const VERB: u32 = 1100;

    fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.extend_from_slice(&self.0);
        Ok(())
    }

    fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        Ok(Blob(payload))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Alarm(u64);
internode::message!(Alarm, verb = 1101, urgent);

#[derive(Debug)]
enum Arrived {
    Blob { len: usize, intact: bool },
    Alarm(u64),
}

/// Handles both types and reports them in the order it handled them.
struct Receiver(mpsc::UnboundedSender<Arrived>);

impl Actor for Receiver {
    type Context = Context<Self>;
}

impl Handler<Received<Blob>> for Receiver {
    type Result = ();

    fn handle(&mut self, m: Received<Blob>, _: &mut Context<Self>) {
        let bytes = &m.message.0;
        let intact = bytes.iter().enumerate().all(|(i, b)| *b == pattern(i));
        let _ = self.0.send(Arrived::Blob {
            len: bytes.len(),
            intact,
        });
    }
}

impl Handler<Received<Alarm>> for Receiver {
    type Result = ();

    fn handle(&mut self, m: Received<Alarm>, _: &mut Context<Self>) {
        let _ = self.0.send(Arrived::Alarm(m.message.0));
    }
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

#[actix::test]
async fn the_urgent_link_delivers_while_the_large_link_carries_a_long_message() {
    bounded(async {
        let a = node(1).await;
        let b = node(2).await;
        let (tx, mut arrived) = mpsc::unbounded_channel();
        let receiver = Receiver(tx).start();
        b.handle::<Blob>(receiver.clone().recipient()).unwrap();
        b.handle::<Alarm>(receiver.recipient()).unwrap();
        a.add_peer(NodeId(2), b.local_addr()).await;
        let mut events = Events::subscribe(&a).await;
        let to_b = a.peer(NodeId(2));

        // Both links connected first, so that the race below is between the two
        // messages, not between two handshakes.
        assert_eq!(to_b.send(Alarm(0)).await, Ok(Sent::Acknowledged));
        let small_blob = Blob((0..100_000).map(pattern).collect());
        assert_eq!(to_b.send(small_blob).await, Ok(Sent::Acknowledged));
        for kind in [LinkKind::Urgent, LinkKind::Large] {
            events
                .wait_for("the connection", NodeId(2), kind, |e| {
                    *e == internode::session::LinkEvent::Connected
                })
                .await;
        }
        within("the warm-up messages", async {
            for _ in 0..2 {
                arrived.recv().await.unwrap();
            }
        })
        .await;

        let blob = Blob((0..SIZE).map(pattern).collect());
        let start = Instant::now();
        let large = to_b.send(blob);
        let urgent = to_b.send(Alarm(1));
        assert_eq!(urgent.await, Ok(Sent::Acknowledged));
        let first = within("the urgent message", arrived.recv()).await.unwrap();
        assert!(
            matches!(first, Arrived::Alarm(1)),
            "the urgent message arrives first, got {first:?}"
        );
        assert_eq!(large.await, Ok(Sent::Acknowledged));
        let second = within("the large message", arrived.recv()).await.unwrap();
        let Arrived::Blob { len, intact } = second else {
            panic!("expected the large message, got {second:?}");
        };
        assert_eq!(len, SIZE);
        assert!(intact, "the large message arrived intact");
        eprintln!("{} MiB delivered in {:?}", SIZE >> 20, start.elapsed());

        let links = a.links().await;
        let large = links.iter().find(|s| s.kind == LinkKind::Large).unwrap();
        assert_eq!(large.counters.written, 2);
        assert_eq!(large.counters.written_bytes, (100_000 + SIZE) as u64);
    })
    .await;
}
