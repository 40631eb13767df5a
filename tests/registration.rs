//! Handler registration between real nodes over loopback: a verb held by one type is
//! refused to any other (one-way or request, actor or closure) and the holder keeps
//! receiving; registering the same type again replaces its handler.
#![cfg(feature = "serde")]

mod support;

use std::any::type_name;

use actix::prelude::*;
use internode::message::{FailureReason, VerbError};
use internode::node::{RequestError, Sent};
use internode::NodeId;
use serde::{Deserialize, Serialize};
use support::{bounded, collect, pair, recv_n, serve, Collector, Incr, Incremented, Seq};
use tokio::sync::mpsc;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

/// Another one-way type on `Seq`'s verb.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NotASeq(String);
internode::message!(NotASeq, verb = 1000);

/// A request type on `Seq`'s verb.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SeqAsRequest(u64);
internode::request!(SeqAsRequest => Incremented, verb = 1000);

/// A one-way type on `Incr`'s (a request's) verb.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IncrAsMessage(u64);
internode::message!(IncrAsMessage, verb = 1001);

fn taken_by<T>(verb: u32) -> Result<(), VerbError> {
    Err(VerbError::Taken {
        verb,
        by: type_name::<T>(),
    })
}

#[actix::test]
async fn a_verb_held_by_a_one_way_type_is_refused_to_every_other_type() {
    bounded(async {
        let (a, b) = pair().await;
        let mut got = collect::<Seq>(&b);

        let (tx, _rx) = mpsc::unbounded_channel();
        let refused = taken_by::<Seq>(1000);
        assert_eq!(
            b.handle::<NotASeq>(Collector(tx).start().recipient()),
            refused
        );
        assert_eq!(b.handle_fn(|_, _: NotASeq| {}), refused);
        assert_eq!(b.handle_fn_async(|_, _: NotASeq| async {}), refused);
        assert_eq!(
            b.handle_requests_fn(|_, r: SeqAsRequest| Ok(Incremented(r.0))),
            refused
        );
        assert_eq!(
            b.handle_requests_fn_async(|_, r: SeqAsRequest| async move { Ok(Incremented(r.0)) }),
            refused
        );
        let message = refused.unwrap_err().to_string();
        let seq = type_name::<Seq>();
        assert!(seq.ends_with("support::Seq"), "{seq}");
        assert_eq!(message, format!("verb 1000 is already taken by {seq}"));

        // Nothing changed: Seq still reaches its collector, decoded.
        assert_eq!(a.send(B, Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut got, 1).await, vec![(A, Seq(1))]);
        // A request on the verb is answered as one of a one-way verb.
        match a.request(B, SeqAsRequest(1)).await {
            Err(RequestError::Remote(failure)) => {
                assert_eq!(failure.reason, FailureReason::UnknownVerb)
            }
            other => panic!("expected an unknown-verb failure, got {other:?}"),
        }
        let counters = b.inbound_counters().await;
        assert_eq!((counters.decode_failed, counters.unknown_verb), (0, 1));
    })
    .await;
}

#[actix::test]
async fn a_verb_held_by_a_request_type_is_refused_to_a_one_way_type() {
    bounded(async {
        let (a, b) = pair().await;
        serve::<Incr>(&b, |_, Incr(n)| Ok(Incremented(n + 1)));

        let (tx, _rx) = mpsc::unbounded_channel();
        let refused = taken_by::<Incr>(1001);
        let collector = Collector::<IncrAsMessage>(tx).start();
        assert_eq!(b.handle::<IncrAsMessage>(collector.recipient()), refused);
        assert_eq!(b.handle_fn(|_, _: IncrAsMessage| {}), refused);

        assert_eq!(a.request(B, Incr(1)).await, Ok(Incremented(2)));
        assert_eq!(
            b.request(B, Incr(2)).await,
            Ok(Incremented(3)),
            "locally too"
        );
    })
    .await;
}

#[actix::test]
async fn registering_the_same_type_again_replaces_its_handler() {
    bounded(async {
        let (a, b) = pair().await;
        let mut first = collect::<Seq>(&b);
        let mut second = collect::<Seq>(&b);
        a.send(B, Seq(1)).await.unwrap();
        assert_eq!(recv_n(&mut second, 1).await, vec![(A, Seq(1))]);
        assert!(
            first.try_recv().is_err(),
            "the replaced handler got nothing"
        );

        // A closure replaces an actor like any handler.
        serve::<Incr>(&b, |_, Incr(n)| Ok(Incremented(n + 1)));
        b.handle_requests_fn(|_, Incr(n)| Ok(Incremented(n * 10)))
            .unwrap();
        assert_eq!(a.request(B, Incr(3)).await, Ok(Incremented(30)));
    })
    .await;
}
