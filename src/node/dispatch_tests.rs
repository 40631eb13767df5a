//! Tests of the dispatch table: verbs held by one type, replacement, snapshots,
//! reserved verbs.

use super::*;
use tokio::sync::mpsc;

/// One byte, on verb 5.
#[derive(Debug, PartialEq)]
struct Five(u8);
/// Another type on verb 5.
#[derive(Debug, PartialEq)]
struct AlsoFive(u8);
/// A request on verb 5.
#[derive(Debug, PartialEq)]
struct AskFive(u8);

macro_rules! one_byte {
    ($name:ident) => {
        impl Message for $name {
            const VERB: u32 = 5;
            fn encode(&self, dst: &mut BytesMut) -> Result<(), crate::message::EncodeError> {
                dst.extend_from_slice(&[self.0]);
                Ok(())
            }
            fn decode(payload: Bytes) -> Result<Self, DecodeError> {
                match payload[..] {
                    [b] => Ok($name(b)),
                    _ => Err(DecodeError::Truncated),
                }
            }
        }
    };
}
one_byte!(Five);
one_byte!(AlsoFive);
one_byte!(AskFive);
impl Request for AskFive {
    type Response = Five;
}

/// Forwards what it gets, tagged with its own number.
struct Tap(u8, mpsc::UnboundedSender<(u8, u8)>);
impl Actor for Tap {
    type Context = Context<Self>;
}
impl Handler<Received<Five>> for Tap {
    type Result = ();
    fn handle(&mut self, m: Received<Five>, _: &mut Context<Self>) {
        let _ = self.1.send((self.0, m.message.0));
    }
}
impl Handler<Received<AlsoFive>> for Tap {
    type Result = ();
    fn handle(&mut self, m: Received<AlsoFive>, _: &mut Context<Self>) {
        let _ = self.1.send((self.0, m.message.0));
    }
}
impl Handler<Requested<AskFive>> for Tap {
    type Result = Result<Five, HandlerError>;
    fn handle(&mut self, m: Requested<AskFive>, _: &mut Context<Self>) -> Self::Result {
        let _ = self.1.send((self.0, m.message.0));
        Ok(Five(m.message.0))
    }
}

/// The next thing a [`Tap`] forwarded, waiting at most 10 s.
async fn next(rx: &mut mpsc::UnboundedReceiver<(u8, u8)>) -> Option<(u8, u8)> {
    let wait = std::time::Duration::from_secs(10);
    tokio::time::timeout(wait, rx.recv())
        .await
        .expect("the handler got the message in time")
}

fn tap(n: u8) -> (Addr<Tap>, mpsc::UnboundedReceiver<(u8, u8)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Tap(n, tx).start(), rx)
}

/// Delivers a one-byte one-way payload of verb 5 from the network.
fn deliver(handlers: &Handlers, byte: u8) -> Result<(), DispatchError> {
    let payload = Bytes::copy_from_slice(&[byte]);
    let from = NodeId(1);
    handlers
        .snapshot()
        .deliver(from, 5, payload, None, None)
        .map_err(|(e, _)| e)
}

#[actix::test]
async fn another_type_on_a_held_verb_is_refused_and_changes_nothing() {
    let handlers = Handlers::default();
    let (first, mut got) = tap(1);
    let (second, _) = tap(2);
    handlers.register::<Five>(first.recipient()).unwrap();

    let taken = VerbError::Taken {
        verb: 5,
        by: std::any::type_name::<Five>(),
    };
    assert_eq!(
        handlers.register::<AlsoFive>(second.recipient()),
        Err(taken)
    );
    assert!(
        taken.to_string().ends_with("dispatch::tests::Five"),
        "{taken}"
    );

    deliver(&handlers, 9).unwrap();
    assert_eq!(
        next(&mut got).await,
        Some((1, 9)),
        "still the first type's handler"
    );
    assert!(handlers.deliver_local(NodeId(2), Five(3)));
    assert_eq!(next(&mut got).await, Some((1, 3)));
    assert!(!handlers.deliver_local(NodeId(2), AlsoFive(3)));
}

#[actix::test]
async fn requests_and_one_way_messages_share_the_verbs() {
    let handlers = Handlers::default();
    let (actor, _) = tap(1);
    handlers
        .register::<Five>(actor.clone().recipient())
        .unwrap();
    assert_eq!(
        handlers.register_requests::<AskFive>(actor.clone().recipient()),
        Err(VerbError::Taken {
            verb: 5,
            by: std::any::type_name::<Five>(),
        })
    );
    assert!(handlers.local_request_handler::<AskFive>().is_none());

    let handlers = Handlers::default();
    handlers
        .register_requests::<AskFive>(actor.clone().recipient())
        .unwrap();
    assert_eq!(
        handlers.register::<Five>(actor.recipient()),
        Err(VerbError::Taken {
            verb: 5,
            by: std::any::type_name::<AskFive>(),
        })
    );
    assert!(handlers.local_request_handler::<AskFive>().is_some());
    assert_eq!(deliver(&handlers, 1), Err(DispatchError::WrongKind(5)));
}

#[actix::test]
async fn the_same_type_again_replaces_its_handler() {
    let handlers = Handlers::default();
    let (first, mut got_first) = tap(1);
    let (second, mut got_second) = tap(2);
    handlers.register::<Five>(first.recipient()).unwrap();
    handlers.register::<Five>(second.recipient()).unwrap();
    deliver(&handlers, 7).unwrap();
    assert_eq!(next(&mut got_second).await, Some((2, 7)));
    assert!(got_first.try_recv().is_err());
}

#[actix::test]
async fn a_snapshot_sees_a_registration_at_its_next_refresh_and_only_then_reloads() {
    let handlers = Handlers::default();
    let mut snapshot = handlers.snapshot();
    let from = NodeId(1);
    let payload = || Bytes::copy_from_slice(&[4]);
    assert!(matches!(
        snapshot.deliver(from, 5, payload(), None, None),
        Err((DispatchError::UnknownVerb(5), None))
    ));

    let (actor, mut got) = tap(1);
    handlers.register::<Five>(actor.recipient()).unwrap();
    handlers.refresh(&mut snapshot);
    assert!(snapshot.deliver(from, 5, payload(), None, None).is_ok());
    assert_eq!(next(&mut got).await, Some((1, 4)));

    // Nothing changed: the same table, not a copy.
    let table = snapshot.table.clone();
    handlers.refresh(&mut snapshot);
    assert!(Arc::ptr_eq(&table, &snapshot.table));
    // A refused registration changes nothing either.
    let (other, _) = tap(2);
    assert!(handlers.register::<AlsoFive>(other.recipient()).is_err());
    handlers.refresh(&mut snapshot);
    assert!(Arc::ptr_eq(&table, &snapshot.table));
}

#[actix::test]
async fn reserved_verbs_are_refused_before_the_table_is_touched() {
    #[derive(Debug)]
    struct Control;
    impl Message for Control {
        const VERB: u32 = crate::message::RESERVED_VERBS_START;
        fn encode(&self, _: &mut BytesMut) -> Result<(), crate::message::EncodeError> {
            Ok(())
        }
        fn decode(_: Bytes) -> Result<Self, DecodeError> {
            Ok(Control)
        }
    }
    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<Received<Control>> for Sink {
        type Result = ();
        fn handle(&mut self, _: Received<Control>, _: &mut Context<Self>) {}
    }
    let handlers = Handlers::default();
    let verb = Control::VERB;
    assert_eq!(
        handlers.register::<Control>(Sink.start().recipient()),
        Err(VerbError::Reserved { verb })
    );
    assert!(handlers.get(verb).is_none());
}
