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

use super::answer::{forward, unavailable};
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
        // actix hands the answer over on a channel with no callback: `forward` sends
        // it on from the waker the channel calls, within the handler's turn.
        let answer = self.recipient.send(Requested {
            from,
            message,
            _permit: permit,
            reply: None,
        });
        forward(answer, reply, |answer, reply| {
            reply.send(match answer {
                Ok(answer) => encode_answer(&answer),
                Err(mailbox) => Err(unavailable(mailbox)),
            })
        });
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
#[path = "dispatch_tests.rs"]
mod tests;
