//! Inbound dispatch: from a verb to the application's handler.
//!
//! The table maps each registered verb to a type-erased handler that decodes the
//! payload into the message type and hands it to the application's actix
//! [`Recipient`]. It is shared by the node's inbound connections and read on every
//! message; it is written only when the application registers a handler. The table is
//! copied on write and versioned: each connection reads its own [`Snapshot`], checked
//! against the version once per turn (one atomic load), so a message takes no lock.
//!
//! Invariants:
//! - A verb names one Rust type: requests and one-way messages share the table, keyed
//!   by verb alone. Registering a type whose verb another type holds is refused
//!   ([`VerbError::Taken`]) and leaves the table as it was; registering the same type
//!   again replaces its handler (of either kind). Check and insertion happen under
//!   one write lock, so two registrations racing for a verb cannot both win.
//! - A registration takes effect for every message that arrives after it returns: the
//!   new table and its version are published before it returns, and a connection
//!   refreshes its snapshot at the start of every turn, before it hands anything over.
//! - A message of an unknown verb, or one whose payload fails to decode, is refused
//!   with a [`DispatchError`]; the caller skips it (its length is known) and counts it,
//!   and a request among them gets a failure response at once.
//! - A message to the node itself is handed over as the value it is, without encoding.
//! - A message from a peer carries the [`Permit`] for its bytes inside the
//!   [`Received`] or [`Requested`] the handler gets: the bytes count against the
//!   receive limits until the handler has finished with the message and drops it
//!   (also when it is refused, or its handler is gone). The messages handed over in
//!   one turn of the connection share one permit, so their bytes come back together,
//!   when the last of them is dropped: never before any of them is, and with one
//!   actix message per turn rather than one per message.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};

use super::resource_limits::Held;
use super::respond::Responder;
use crate::message::{
    check_verb, DecodeError, FailureReason, Message, RemoteFailure, Request, VerbError,
};
use crate::NodeId;

/// A message received from a peer (or from the node itself), as an application's
/// handler gets it.
///
/// Its bytes count against the node's receive limits until the handler drops it
/// (docs/limits.md): a handler that is slow, or keeps messages, slows the
/// peers that send them.
#[derive(Debug)]
pub struct Received<M> {
    /// The node that sent it.
    pub from: NodeId,
    /// The message.
    pub message: M,
    /// Held for its drop: gives the message's bytes back.
    pub(crate) _permit: Option<Permit>,
}

impl<M> Received<M> {
    /// A message from `from`, as a test or a local producer would hand it to a
    /// handler (it holds no receive limits).
    pub fn new(from: NodeId, message: M) -> Self {
        Received {
            from,
            message,
            _permit: None,
        }
    }
}

/// The receive limits held by the messages one turn of an inbound connection handed
/// over (usually those of one frame), shared by them: each message holds a clone, and
/// when the last is dropped the bytes of all of them go back to the connection in one
/// [`Processed`]. If the connection has gone, the reserve part goes back to the
/// `ResourceLimits` actor by itself (a [`Held`] dropped with the last message).
///
/// A message costs a reference count here, not an actix message and an address.
#[derive(Clone)]
pub(crate) struct Permit(Arc<Batch>);

struct Batch {
    link: usize,
    reserve: Option<Held>,
    messages: u64,
    inbound: Addr<super::inbound::Inbound>,
}

impl Permit {
    /// The permit of `messages` messages charged `link` bytes of the connection's
    /// capacity and `reserve`, to be given back to `inbound`.
    pub(crate) fn new(
        link: usize,
        reserve: Option<Held>,
        messages: u64,
        inbound: Addr<super::inbound::Inbound>,
    ) -> Self {
        Permit(Arc::new(Batch {
            link,
            reserve,
            messages,
            inbound,
        }))
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let batch = &self.0;
        let reserve = batch.reserve.as_ref().map_or(0, Held::bytes);
        write!(
            f,
            "Permit({} bytes, {} messages)",
            batch.link + reserve,
            batch.messages
        )
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.inbound.do_send(Processed {
            link: self.link,
            reserve: self.reserve.take(),
            messages: self.messages,
        });
    }
}

/// To an inbound connection: the handlers finished with `messages` messages holding
/// these bytes together.
pub(crate) struct Processed {
    pub link: usize,
    pub reserve: Option<Held>,
    pub messages: u64,
}

impl actix::Message for Processed {
    type Result = ();
}

impl<M: Message> actix::Message for Received<M> {
    type Result = ();
}

/// A request received from a peer (or from the node itself); the handler's answer
/// goes back to the requester.
///
/// Like [`Received`], its bytes count against the receive limits until it is dropped.
#[derive(Debug)]
pub struct Requested<M> {
    /// The node that sent it.
    pub from: NodeId,
    /// The request.
    pub message: M,
    /// Held for its drop: gives the message's bytes back.
    pub(crate) _permit: Option<Permit>,
    /// For a handler registered as answering itself (the closure handlers): where its
    /// answer goes. `None` for others, whose answer actix brings back.
    pub(crate) reply: Option<Responder>,
}

impl<M> Requested<M> {
    /// A request from `from` that holds no receive limits (a local one).
    pub fn new(from: NodeId, message: M) -> Self {
        Requested {
            from,
            message,
            _permit: None,
            reply: None,
        }
    }
}

impl<M: Request> actix::Message for Requested<M> {
    type Result = Result<M::Response, HandlerError>;
}

/// Why an application's request handler could not answer; travels back to the
/// requester as a failure response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// Why an inbound message could not be handed to a handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DispatchError {
    /// No handler is registered for the verb.
    #[error("no handler for verb {0}")]
    UnknownVerb(u32),
    /// The payload did not decode as the verb's type.
    #[error("payload of verb {verb} does not decode: {error}")]
    Decode {
        /// The verb.
        verb: u32,
        /// The decoder's error.
        error: DecodeError,
    },
    /// A request arrived for a verb registered as a one-way message, or the reverse.
    #[error("verb {0} is registered for another kind of message (request or one-way)")]
    WrongKind(u32),
}

impl DispatchError {
    /// The failure reason sent back for a request refused with this error.
    pub(crate) fn failure(&self) -> RemoteFailure {
        let reason = match self {
            DispatchError::UnknownVerb(_) | DispatchError::WrongKind(_) => {
                FailureReason::UnknownVerb
            }
            DispatchError::Decode { .. } => FailureReason::DecodeFailed,
        };
        RemoteFailure {
            reason,
            detail: self.to_string(),
        }
    }
}

/// A refused delivery: the error, and the request's reply handed back so that the
/// caller can answer with a failure.
pub(crate) type Refused = (DispatchError, Option<Responder>);

trait ErasedHandler: Send + Sync {
    fn deliver(
        &self,
        from: NodeId,
        payload: Bytes,
        reply: Option<Responder>,
        permit: Option<Permit>,
    ) -> Result<(), Refused>;

    /// `message` is a `Box<M>` of the handler's own type.
    fn deliver_local(&self, from: NodeId, message: Box<dyn Any + Send>) -> bool;

    fn is_request(&self) -> bool;

    /// For local requests: the recipient, as `Recipient<Requested<M>>`.
    fn as_any(&self) -> &dyn Any;
}

struct OneWay<M: Message> {
    recipient: Recipient<Received<M>>,
}

impl<M: Message> ErasedHandler for OneWay<M> {
    fn deliver(
        &self,
        from: NodeId,
        payload: Bytes,
        reply: Option<Responder>,
        permit: Option<Permit>,
    ) -> Result<(), Refused> {
        if reply.is_some() {
            return Err((DispatchError::WrongKind(M::VERB), reply));
        }
        let message = M::decode(payload).map_err(|error| {
            let verb = M::VERB;
            (DispatchError::Decode { verb, error }, None)
        })?;
        self.recipient.do_send(Received {
            from,
            message,
            _permit: permit,
        });
        Ok(())
    }

    fn deliver_local(&self, from: NodeId, message: Box<dyn Any + Send>) -> bool {
        match message.downcast::<M>() {
            Ok(message) => {
                self.recipient.do_send(Received::new(from, *message));
                true
            }
            Err(_) => false,
        }
    }

    fn is_request(&self) -> bool {
        false
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct TwoWay<M: Request> {
    recipient: Recipient<Requested<M>>,
    /// The recipient answers through the [`Requested::reply`] it is given (a closure
    /// handler's actor) rather than through actix's response.
    answers_itself: bool,
}

impl<M: Request> ErasedHandler for TwoWay<M> {
    fn deliver(
        &self,
        from: NodeId,
        payload: Bytes,
        reply: Option<Responder>,
        permit: Option<Permit>,
    ) -> Result<(), Refused> {
        let Some(reply) = reply else {
            return Err((DispatchError::WrongKind(M::VERB), None));
        };
        let message = match M::decode(payload) {
            Ok(message) => message,
            Err(error) => {
                let verb = M::VERB;
                return Err((DispatchError::Decode { verb, error }, Some(reply)));
            }
        };
        if self.answers_itself {
            // No task: the handler sends its answer itself (if its actor is gone,
            // the request is dropped with the mailbox and its reply answers so).
            self.recipient.do_send(Requested {
                from,
                message,
                _permit: permit,
                reply: Some(reply),
            });
            return Ok(());
        }
        // actix hands the answer over on a channel with no callback: a task awaits it.
        let answer = self.recipient.send(Requested {
            from,
            message,
            _permit: permit,
            reply: None,
        });
        let mut task = Box::pin(async move {
            reply.send(match answer.await {
                Ok(answer) => encode_answer(&answer),
                Err(mailbox) => Err(RemoteFailure {
                    reason: FailureReason::HandlerFailed,
                    detail: format!("handler unavailable: {mailbox}"),
                }),
            });
        });
        // Polled once now: when the handler's mailbox is over its capacity, actix
        // keeps the message in the future and puts it in the mailbox at its first
        // poll, which in the task would come after the messages handed over later
        // (one-way ones go in at once): the order of the link would not hold.
        let mut now = std::task::Context::from_waker(std::task::Waker::noop());
        if std::future::Future::poll(task.as_mut(), &mut now).is_pending() {
            actix::spawn(task);
        }
        Ok(())
    }

    fn deliver_local(&self, _: NodeId, _: Box<dyn Any + Send>) -> bool {
        false
    }

    fn is_request(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A handler's answer as it goes back: the encoded response, or a failure.
pub(crate) fn encode_answer<R: Message>(
    answer: &Result<R, HandlerError>,
) -> Result<(u32, Bytes), RemoteFailure> {
    match answer {
        Ok(response) => encode_response(response),
        Err(e) => Err(RemoteFailure {
            reason: FailureReason::HandlerFailed,
            detail: e.0.clone(),
        }),
    }
}

/// Encodes a response payload; an encoding failure becomes a failure response.
pub(crate) fn encode_response<R: Message>(response: &R) -> Result<(u32, Bytes), RemoteFailure> {
    let mut buf = BytesMut::new();
    match response.encode(&mut buf) {
        Ok(()) => Ok((R::VERB, buf.freeze())),
        Err(e) => Err(RemoteFailure {
            reason: FailureReason::HandlerFailed,
            detail: format!("response does not encode: {e}"),
        }),
    }
}

/// The verbs registered, and their handlers.
type Table = HashMap<u32, Entry>;

/// The node's table of handlers, shared by its inbound connections.
///
/// Copy on write: a registration (rare) builds a new table and bumps the version;
/// an inbound connection reads through its own [`Snapshot`], which it refreshes with
/// one atomic load per turn and reloads only when the version moved. So a message
/// costs no lock and no reference count, and a registration reaches every
/// connection's next turn, hence every message that arrives after it returns.
#[derive(Default, Clone)]
pub(crate) struct Handlers {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    table: RwLock<Arc<Table>>,
    /// Bumped under the write lock by every change of `table`.
    version: AtomicU64,
}

/// One connection's copy of the table; see [`Handlers::refresh`].
pub(crate) struct Snapshot {
    version: u64,
    table: Arc<Table>,
}

/// One registered verb: the Rust type that holds it, and its handler.
#[derive(Clone)]
struct Entry {
    type_id: TypeId,
    type_name: &'static str,
    handler: Arc<dyn ErasedHandler>,
}

impl Handlers {
    /// Registers `handler` for the verb of `M`, unless the verb is reserved or held
    /// by another type; replaces the handler `M` had.
    fn insert<M: Message>(&self, handler: Arc<dyn ErasedHandler>) -> Result<(), VerbError> {
        check_verb(M::VERB)?;
        // A poisoned lock only means a panic elsewhere while inserting; the map
        // itself is always whole (it is replaced in one assignment).
        let mut table = self.shared.table.write().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = table.get(&M::VERB) {
            if held.type_id != TypeId::of::<M>() {
                return Err(VerbError::Taken {
                    verb: M::VERB,
                    by: held.type_name,
                });
            }
        }
        let entry = Entry {
            type_id: TypeId::of::<M>(),
            type_name: std::any::type_name::<M>(),
            handler,
        };
        let mut next = Table::clone(&table);
        next.insert(M::VERB, entry);
        *table = Arc::new(next);
        self.shared.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn get(&self, verb: u32) -> Option<Arc<dyn ErasedHandler>> {
        let table = self.shared.table.read().unwrap_or_else(|e| e.into_inner());
        table.get(&verb).map(|entry| entry.handler.clone())
    }

    /// The table as it is now, for a connection to read messages through.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let table = self.shared.table.read().unwrap_or_else(|e| e.into_inner());
        Snapshot {
            // Read under the lock: the version of exactly this table.
            version: self.shared.version.load(Ordering::Acquire),
            table: table.clone(),
        }
    }

    /// Brings `snapshot` up to date if a registration changed the table since it was
    /// taken: one atomic load when nothing changed.
    pub(crate) fn refresh(&self, snapshot: &mut Snapshot) {
        if self.shared.version.load(Ordering::Acquire) != snapshot.version {
            *snapshot = self.snapshot();
        }
    }

    /// Registers (or replaces) the handler of one-way messages of type `M`.
    pub(crate) fn register<M: Message>(
        &self,
        recipient: Recipient<Received<M>>,
    ) -> Result<(), VerbError> {
        self.insert::<M>(Arc::new(OneWay { recipient }))
    }

    /// Registers (or replaces) the handler of requests of type `M`.
    pub(crate) fn register_requests<M: Request>(
        &self,
        recipient: Recipient<Requested<M>>,
    ) -> Result<(), VerbError> {
        self.insert::<M>(Arc::new(TwoWay {
            recipient,
            answers_itself: false,
        }))
    }

    /// Registers (or replaces) a handler of requests of type `M` that answers a
    /// request from a peer through its [`Requested::reply`] (and a local one through
    /// actix's response, as any handler).
    pub(crate) fn register_requests_answering<M: Request>(
        &self,
        recipient: Recipient<Requested<M>>,
    ) -> Result<(), VerbError> {
        self.insert::<M>(Arc::new(TwoWay {
            recipient,
            answers_itself: true,
        }))
    }

    /// Hands a one-way message from this node to its own handler, without encoding.
    pub(crate) fn deliver_local<M: Message>(&self, from: NodeId, message: M) -> bool {
        match self.get(M::VERB) {
            Some(handler) if !handler.is_request() => {
                handler.deliver_local(from, Box::new(message))
            }
            _ => false,
        }
    }

    /// The handler of local requests of type `M`, if one is registered.
    pub(crate) fn local_request_handler<M: Request>(&self) -> Option<Recipient<Requested<M>>> {
        let handler = self.get(M::VERB)?;
        handler
            .as_any()
            .downcast_ref::<TwoWay<M>>()
            .map(|h| h.recipient.clone())
    }
}

impl Snapshot {
    /// Hands a received payload to the handler of `verb`; `reply` is `Some` for a
    /// request and answers it (later) with the response or a failure.
    pub(crate) fn deliver(
        &self,
        from: NodeId,
        verb: u32,
        payload: Bytes,
        reply: Option<Responder>,
        permit: Option<Permit>,
    ) -> Result<(), Refused> {
        match self.table.get(&verb) {
            Some(entry) => entry.handler.deliver(from, payload, reply, permit),
            None => Err((DispatchError::UnknownVerb(verb), reply)),
        }
    }
}

#[cfg(test)]
mod tests {
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
}
