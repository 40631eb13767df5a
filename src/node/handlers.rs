//! Handler registration: the [`Node`] methods that register an actix [`Recipient`]
//! per message type.
//!
//! Invariants:
//! - A verb names one Rust type per node (`dispatch`'s table): registering a type
//!   whose verb another type holds fails with [`VerbError::Taken`] and changes
//!   nothing; registering a type again replaces its handler, of either kind. The
//!   replaced handler gets nothing more; what was already in its mailbox is still
//!   handled.

use actix::prelude::*;

use super::dispatch::{Received, Requested};
use super::Node;
use crate::message::{Message, Request, VerbError};

/// Registration. A verb belongs to one Rust type per node, whichever kind of handler
/// (one-way or request): registering a type
/// whose verb is held by another type fails with [`VerbError::Taken`] and changes
/// nothing, and registering a type again replaces its handler (the replaced one gets
/// no more messages once the call returns).
///
/// Handlers are called in the order their messages arrived on each link, which is
/// the order the peer sent them on that link (messages of different links and peers
/// interleave). Each message's bytes stay charged to the node's receive limits until
/// its handler is done with it, so a slow handler slows the peers sending to it.
impl Node {
    /// Registers the handler of one-way messages of type `M`: an actor that gets each
    /// as a [`Received<M>`] (whose bytes count against the receive limits until the
    /// actor drops it).
    ///
    /// Fails if `M`'s verb is reserved, or taken by another type on this node; a
    /// handler registered before for `M` itself is replaced.
    pub fn handle<M: Message>(&self, recipient: Recipient<Received<M>>) -> Result<(), VerbError> {
        self.inner.handlers.register(recipient)
    }

    /// Registers the handler of requests of type `R`: an actor that gets each as a
    /// [`Requested<R>`] and answers with `Result<R::Response, HandlerError>`. The
    /// response goes back to the requester; an `Err(HandlerError(text))` reaches it as
    /// [`RequestError::Remote`](super::RequestError::Remote) with
    /// [`FailureReason::HandlerFailed`](crate::message::FailureReason::HandlerFailed)
    /// and `text` as the detail.
    ///
    /// Fails as [`handle`](Self::handle) does.
    ///
    /// ```no_run
    /// use std::collections::HashMap;
    ///
    /// use actix::prelude::*;
    /// use internode::node::{HandlerError, Node, Requested};
    /// use internode::NodeId;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Serialize, Deserialize)]
    /// struct Get(String);
    /// #[derive(Debug, Serialize, Deserialize)]
    /// struct Value(Option<String>);
    /// internode::request!(Get => Value, verb = 10);
    /// internode::message!(Value, verb = 11);
    ///
    /// /// Answers at once, from its own state.
    /// struct Store(HashMap<String, String>);
    /// impl Actor for Store {
    ///     type Context = Context<Self>;
    /// }
    /// impl Handler<Requested<Get>> for Store {
    ///     type Result = Result<Value, HandlerError>;
    ///     fn handle(&mut self, r: Requested<Get>, _: &mut Context<Self>) -> Self::Result {
    ///         if r.message.0.is_empty() {
    ///             return Err(HandlerError("empty key".into()));
    ///         }
    ///         Ok(Value(self.0.get(&r.message.0).cloned()))
    ///     }
    /// }
    ///
    /// /// Answers later: the future owns the request, so its bytes stay charged to the
    /// /// receive limits until the answer is ready.
    /// struct Slow;
    /// impl Actor for Slow {
    ///     type Context = Context<Self>;
    /// }
    /// impl Handler<Requested<Get>> for Slow {
    ///     type Result = ResponseFuture<Result<Value, HandlerError>>;
    ///     fn handle(&mut self, r: Requested<Get>, _: &mut Context<Self>) -> Self::Result {
    ///         Box::pin(async move {
    ///             tokio::task::yield_now().await; // a lookup elsewhere
    ///             Ok(Value(Some(format!("{} for {}", r.message.0, r.from))))
    ///         })
    ///     }
    /// }
    ///
    /// #[actix::main]
    /// async fn main() {
    ///     let a = Node::builder(NodeId(1), "127.0.0.1:0".parse().unwrap()).start().await.unwrap();
    ///     let b = Node::builder(NodeId(2), "127.0.0.1:0".parse().unwrap()).start().await.unwrap();
    ///     b.handle_requests::<Get>(Store(HashMap::new()).start().recipient()).unwrap();
    ///     a.handle_requests::<Get>(Slow.start().recipient()).unwrap();
    ///     a.add_peer(NodeId(2), b.local_addr()).await;
    ///     let value = a.request(NodeId(2), Get("k".into())).await;
    ///     println!("{value:?}"); // Ok(Value(None))
    /// }
    /// ```
    pub fn handle_requests<R: Request>(
        &self,
        recipient: Recipient<Requested<R>>,
    ) -> Result<(), VerbError> {
        self.inner.handlers.register_requests(recipient)
    }
}
