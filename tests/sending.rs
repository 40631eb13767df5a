//! Sending as an application does beyond `Peer::send`, between real nodes over
//! loopback: a typed message to a link's address (`Deliver`, and a `Recipient` of it
//! handed to another actor), a message on a chosen link (`Peer::send_on`), raw
//! `Outbound`s that try internode's own verbs, and the feed of failed messages for
//! senders that do not await outcomes.
#![cfg(feature = "serde")]

mod support;

use std::time::Duration;

use actix::prelude::*;
use futures_util::{stream, StreamExt};
use internode::limits::Limits;
use internode::message::RESERVED_VERBS_START;
use internode::node::OverloadLevel;
use internode::node::{Deliver, FailedMessage, Outbound, SendError, SendErrorKind, Sent};
use internode::{LinkKind, NodeId};
use support::{
    bounded, builder, collect, pair, payload_len, recv_n, refusing_port, within, Blob, Seq,
};
use tokio::sync::mpsc;

const B: NodeId = NodeId(2);

/// Forwards every failed message it hears of to a channel.
struct Failures(mpsc::UnboundedSender<FailedMessage>);

impl Actor for Failures {
    type Context = Context<Self>;
}

impl Handler<FailedMessage> for Failures {
    type Result = ();

    fn handle(&mut self, failed: FailedMessage, _: &mut Context<Self>) {
        let _ = self.0.send(failed);
    }
}

/// Subscribes a [`Failures`] to `node`'s feed and returns its channel.
async fn failures_of(node: &internode::node::Node) -> mpsc::UnboundedReceiver<FailedMessage> {
    let (tx, rx) = mpsc::unbounded_channel();
    node.subscribe_failures(Failures(tx).start().recipient())
        .await;
    rx
}

/// Sends `Seq`s to a peer through a `Recipient<Deliver<Seq>>` it was handed.
struct Producer {
    to_peer: Recipient<Deliver<Seq>>,
}

impl Actor for Producer {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "Vec<Result<Sent, SendError>>")]
struct Produce(u64);

impl Handler<Produce> for Producer {
    type Result = ResponseFuture<Vec<Result<Sent, SendError>>>;

    fn handle(&mut self, Produce(n): Produce, _: &mut Context<Self>) -> Self::Result {
        let sends: Vec<_> = (0..n)
            .map(|i| self.to_peer.send(Deliver::new(Seq(i))))
            .collect();
        Box::pin(async move {
            let mut outcomes = Vec::new();
            for send in sends {
                outcomes.push(send.await.unwrap_or(Err(SendError::Closed)));
            }
            outcomes
        })
    }
}

/// A typed message sent to a link's address arrives, in order, with the link's
/// outcome; an actor that only holds a `Recipient` of it sends the same way.
#[actix::test]
async fn a_link_address_takes_typed_messages() {
    bounded(async {
        let (a, b) = pair().await;
        let mut got = collect::<Seq>(&b);
        let small = a.link(B, LinkKind::Small).await.unwrap();
        let outcome = small.send(Deliver::new(Seq(7))).await.unwrap();
        assert_eq!(outcome, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut got, 1).await, vec![(NodeId(1), Seq(7))]);

        let producer = Producer {
            to_peer: small.recipient(),
        }
        .start();
        let outcomes = producer.send(Produce(50)).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == Ok(Sent::Acknowledged)));
        let arrived: Vec<_> = recv_n(&mut got, 50)
            .await
            .into_iter()
            .map(|m| m.1)
            .collect();
        assert_eq!(arrived, (0..50).map(Seq).collect::<Vec<_>>());
    })
    .await;
}

/// A typed message to a link's address gets its deadline (its own here) and the
/// link's limits: with the peer unreachable it expires in the queue, and one larger
/// than the link's capacity is refused at once. The feed hears of both.
#[actix::test]
async fn a_typed_message_to_a_link_expires_and_is_refused_like_any_other() {
    bounded(async {
        let limits = Limits::new(64 * 1024, 1 << 20, 4 << 20);
        let a = builder(1).send_limits(limits).start().await.unwrap();
        let nowhere = refusing_port();
        a.add_peer(B, nowhere.addr()).await;
        let mut failed = failures_of(&a).await;
        let small = a.link(B, LinkKind::Small).await.unwrap();

        let outcome = small
            .send(Deliver::new(Seq(1)).expire_after(Duration::from_millis(50)))
            .await
            .unwrap();
        assert_eq!(outcome, Err(SendError::Expired));
        // The link takes no reserve while it fails to connect: its capacity (64 KiB)
        // holds the first blob, not the second.
        let big = Blob::new(60 * 1024, 1);
        let first = small.send(Deliver::new(big.clone()).expire_after(Duration::from_millis(200)));
        let second = small.send(Deliver::new(big)).await.unwrap();
        assert_eq!(second, Err(SendError::Overloaded(OverloadLevel::Link)));
        assert_eq!(first.await.unwrap(), Err(SendError::Expired));

        let mut reports = Vec::new();
        for _ in 0..3 {
            let report = within("a report", failed.recv()).await.unwrap();
            assert_eq!((report.peer, report.link), (B, LinkKind::Small));
            reports.push((report.verb, report.bytes, report.error.kind()));
        }
        assert_eq!(
            reports,
            vec![
                (1000, payload_len(&Seq(1)), SendErrorKind::Expired),
                (1010, 60 * 1024, SendErrorKind::OverloadedLink),
                (1010, 60 * 1024, SendErrorKind::Expired),
            ]
        );
    })
    .await;
}

/// `send_on` puts a message on the link chosen, whatever its size would choose, and
/// the other links carry nothing.
#[actix::test]
async fn send_on_uses_the_link_chosen() {
    bounded(async {
        let (a, b) = pair().await;
        let mut got = collect::<Seq>(&b);
        let peer = a.peer(B);
        assert_eq!(
            peer.send_on(LinkKind::Large, Seq(1)).await,
            Ok(Sent::Acknowledged)
        );
        assert_eq!(recv_n(&mut got, 1).await, vec![(NodeId(1), Seq(1))]);
        let accepted: Vec<_> = a
            .links()
            .await
            .iter()
            .map(|l| (l.kind, l.counters.accepted))
            .collect();
        assert_eq!(accepted, vec![(LinkKind::Large, 1)]);
    })
    .await;
}

/// An application cannot send internode's own verbs, through a raw `Outbound` or a
/// type that claims one; nothing reaches the peer and the link goes on.
#[actix::test]
async fn internode_verbs_are_refused_from_the_application() {
    struct Forged;
    impl internode::message::Message for Forged {
        const VERB: u32 = RESERVED_VERBS_START + 1;
        fn encode(&self, _: &mut bytes::BytesMut) -> Result<(), internode::message::EncodeError> {
            Ok(())
        }
        fn decode(_: bytes::Bytes) -> Result<Self, internode::message::DecodeError> {
            Ok(Forged)
        }
    }
    bounded(async {
        let (a, b) = pair().await;
        let mut got = collect::<Seq>(&b);
        let small = a.link(B, LinkKind::Small).await.unwrap();
        let raw = Outbound::new(RESERVED_VERBS_START, bytes::Bytes::from_static(b"ack"));
        assert_eq!(
            small.send(raw).await.unwrap(),
            Err(SendError::ReservedVerb(RESERVED_VERBS_START))
        );
        assert_eq!(
            small.send(Deliver::new(Forged)).await.unwrap(),
            Err(SendError::ReservedVerb(RESERVED_VERBS_START + 1))
        );
        assert_eq!(
            a.send(B, Forged).await,
            Err(SendError::ReservedVerb(RESERVED_VERBS_START + 1))
        );
        assert_eq!(a.send(B, Seq(3)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut got, 1).await, vec![(NodeId(1), Seq(3))]);
    })
    .await;
}

/// A fire-and-forget sender (a stream forwarded into a `Peer::sink`) learns from the
/// feed which messages failed: every one of them, each once, with its peer, verb,
/// size and reason, to every subscriber.
#[actix::test]
async fn the_feed_reports_each_message_a_sink_lost() {
    bounded(async {
        let a = builder(1)
            .expire_after(Duration::from_millis(100))
            .start()
            .await
            .unwrap();
        let nowhere = refusing_port();
        a.add_peer(B, nowhere.addr()).await;
        let mut failed = failures_of(&a).await;
        let mut second = failures_of(&a).await;
        const N: u64 = 40;
        stream::iter((0..N).map(|n| Ok(Seq(n))))
            .forward(a.peer(B).sink::<Seq>())
            .await
            .unwrap();
        for feed in [&mut failed, &mut second] {
            let mut reports = Vec::new();
            within("a report per message", async {
                while reports.len() < N as usize {
                    reports.push(feed.recv().await.unwrap());
                }
            })
            .await;
            assert!(reports.iter().all(|f| f.peer == B
                && f.verb == 1000
                && f.error == SendError::Expired
                && f.link == LinkKind::Small));
            let bytes: usize = reports.iter().map(|f| f.bytes).sum();
            let expected: usize = (0..N).map(|n| payload_len(&Seq(n))).sum();
            assert_eq!(bytes, expected);
        }
        // Each once: nothing more comes.
        let metrics = a.metrics().await;
        let expired: u64 = metrics
            .links
            .iter()
            .filter_map(|l| l.counters.failed.get(&SendErrorKind::Expired))
            .sum();
        assert_eq!(expired, N);
        assert!(failed.try_recv().is_err());
    })
    .await;
}

/// The 8 little-endian bytes of a test number.
fn decode_u64(payload: &[u8]) -> Result<u64, internode::message::DecodeError> {
    let bytes: [u8; 8] = payload
        .try_into()
        .map_err(|_| internode::message::DecodeError::Truncated)?;
    Ok(u64::from_le_bytes(bytes))
}

/// A number that refuses to encode when odd.
#[derive(Debug, Clone, PartialEq)]
struct EvenOnly(u64);

impl internode::message::Message for EvenOnly {
    const VERB: u32 = 1400;

    fn encode(&self, dst: &mut bytes::BytesMut) -> Result<(), internode::message::EncodeError> {
        if self.0 % 2 == 1 {
            return Err(internode::message::EncodeError::custom("odd"));
        }
        dst.extend_from_slice(&self.0.to_le_bytes());
        Ok(())
    }

    fn decode(payload: bytes::Bytes) -> Result<Self, internode::message::DecodeError> {
        decode_u64(&payload).map(EvenOnly)
    }
}

/// A batch arrives whole and in order, after what was sent before it on the same
/// handle and before what is sent after; each message's outcome is at its index, and
/// one that does not encode fails alone.
#[actix::test]
async fn a_batch_is_delivered_in_order_with_an_outcome_per_message() {
    bounded(async {
        let (a, b) = pair().await;
        let mut seqs = collect::<Seq>(&b);
        let peer = a.peer(B);
        let before = peer.send(Seq(0));
        let batch = peer.send_many((1..=500).map(Seq));
        let after = peer.send(Seq(501));
        let outcomes = batch.await;
        assert_eq!(outcomes.len(), 500);
        assert!(outcomes.all_sent(), "{:?}", outcomes.failures().next());
        assert!(outcomes.iter().all(|o| *o == Ok(Sent::Acknowledged)));
        assert_eq!(before.await, Ok(Sent::Acknowledged));
        assert_eq!(after.await, Ok(Sent::Acknowledged));
        let arrived: Vec<_> = recv_n(&mut seqs, 502)
            .await
            .into_iter()
            .map(|(_, Seq(n))| n)
            .collect();
        assert_eq!(arrived, (0..=501).collect::<Vec<_>>());

        let mut evens = collect::<EvenOnly>(&b);
        let outcomes = peer.send_many((0..10).map(EvenOnly)).await;
        for (i, outcome) in outcomes.iter().enumerate() {
            match i % 2 {
                0 => assert_eq!(*outcome, Ok(Sent::Acknowledged), "message {i}"),
                _ => assert_eq!(
                    outcome.as_ref().map_err(SendError::kind),
                    Err(SendErrorKind::Serialization),
                    "message {i}"
                ),
            }
        }
        let arrived: Vec<_> = recv_n(&mut evens, 5)
            .await
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            arrived,
            (0..10).step_by(2).map(EvenOnly).collect::<Vec<_>>()
        );
    })
    .await;
}

/// A batch goes to this node's own handler when sent to itself, and fails as a
/// whole when it cannot be queued: more bytes than the link could ever take, or its
/// deadline passed while the peer is unreachable (each message then reported to the
/// feed).
#[actix::test]
async fn a_batch_fails_as_a_whole_when_it_cannot_be_queued() {
    bounded(async {
        let limits = Limits::new(64 * 1024, 64 * 1024, 1 << 20);
        let a = builder(1)
            .send_limits(limits)
            .expire_after(Duration::from_millis(100))
            .start()
            .await
            .unwrap();
        let mut own = collect::<Seq>(&a);
        let outcomes = a.peer(NodeId(1)).send_many((0..3).map(Seq)).await;
        assert!(outcomes.iter().all(|o| *o == Ok(Sent::DeliveredLocally)));
        assert_eq!(recv_n(&mut own, 3).await.len(), 3);

        let nowhere = refusing_port();
        a.add_peer(B, nowhere.addr()).await;
        let mut failed = failures_of(&a).await;
        let peer = a.peer(B);
        // 200 KiB: over the link's capacity plus the peer's reserve.
        let outcomes = peer
            .send_many((0..50).map(|_| Blob::new(4 * 1024, 1)))
            .await;
        assert_eq!(outcomes.len(), 50);
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, Err(SendError::Oversized { .. }))));

        let outcomes = peer.send_many((0..20).map(Seq)).await;
        assert_eq!(outcomes.into_vec(), vec![Err(SendError::Expired); 20]);
        let mut reports = Vec::new();
        within("a report per message", async {
            while reports.len() < 20 {
                reports.push(failed.recv().await.unwrap());
            }
        })
        .await;
        assert!(reports.iter().all(|f| f.error == SendError::Expired));
    })
    .await;
}

/// Batches beyond the link's credit wait for room, in order with single sends, and
/// all arrive: the bound holds for batches as for single messages.
#[actix::test]
async fn batches_wait_for_credit_and_all_arrive() {
    bounded(async {
        let limits = Limits::new(64 * 1024, 128 * 1024, 1 << 20);
        let a = builder(1).send_limits(limits).start().await.unwrap();
        let b = support::node(2).await;
        a.add_peer(B, b.local_addr()).await;
        let mut got = collect::<Blob>(&b);
        let peer = a.peer(B);
        let batches: Vec<_> = (0..40u8)
            .map(|i| peer.send_many((0..16).map(move |_| Blob::new(1024, i))))
            .collect();
        for (i, batch) in batches.into_iter().enumerate() {
            let outcomes = batch.await;
            assert!(
                outcomes.all_sent(),
                "batch {i}: {:?}",
                outcomes.failures().next()
            );
        }
        let arrived = recv_n(&mut got, 40 * 16).await;
        let fills: Vec<u8> = arrived.iter().map(|(_, Blob(b))| b[0]).collect();
        let expected: Vec<u8> = (0..40u8).flat_map(|i| [i; 16]).collect();
        assert_eq!(fills, expected);
    })
    .await;
}

/// A number whose `encode` breaks the contract for 3: it clears the buffer it was
/// given instead of only appending.
#[derive(Debug, Clone, PartialEq)]
struct Clearing(u64);

impl internode::message::Message for Clearing {
    const VERB: u32 = 1401;

    fn encode(&self, dst: &mut bytes::BytesMut) -> Result<(), internode::message::EncodeError> {
        if self.0 == 3 {
            dst.clear();
            return Ok(());
        }
        dst.extend_from_slice(&self.0.to_le_bytes());
        Ok(())
    }

    fn decode(payload: bytes::Bytes) -> Result<Self, internode::message::DecodeError> {
        decode_u64(&payload).map(Clearing)
    }
}

/// An `encode` that erases what the batch encoded before it fails those messages and
/// itself, never the node; the messages after it go.
#[actix::test]
async fn a_batch_survives_an_encode_that_breaks_its_contract() {
    bounded(async {
        let (a, b) = pair().await;
        let mut got = collect::<Clearing>(&b);
        let outcomes = a.peer(B).send_many((0..6).map(Clearing)).await;
        let kinds: Vec<_> = outcomes
            .iter()
            .map(|o| o.as_ref().map_err(SendError::kind).copied())
            .collect();
        let lost = Err(SendErrorKind::Serialization);
        let sent = Ok(Sent::Acknowledged);
        assert_eq!(kinds, vec![lost, lost, lost, lost, sent, sent]);
        let arrived: Vec<_> = recv_n(&mut got, 2).await.into_iter().map(|m| m.1).collect();
        assert_eq!(arrived, vec![Clearing(4), Clearing(5)]);
    })
    .await;
}
