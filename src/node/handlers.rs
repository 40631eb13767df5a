//! Handler registration: the [`Node`] methods that register an actix [`Recipient`] or a
//! closure per message type, and the small actors that run closures.
//!
//! A closure handler is an actor of this module ([`SyncFn`] or [`AsyncFn`]) started on
//! the registering thread and registered like any application actor, so that the
//! dispatch table, local delivery, local requests and the receive limits treat it
//! exactly as they treat an actor: nothing in `dispatch` knows about closures. One
//! difference: a request closure's actor is registered as answering itself, so that
//! a peer's request is answered as the closure's answer exists, not by a task that
//! waits for actix's response.
//!
//! Invariants:
//! - A verb names one Rust type per node (`dispatch`'s table): registering a type
//!   whose verb another type holds fails with [`VerbError::Taken`] and changes
//!   nothing; registering a type again replaces its handler, of either kind. The
//!   replaced handler gets nothing more; what was already in its mailbox is still
//!   handled (a closure's actor stops once that is done).
//! - A message's [`Permit`](super::dispatch::Permit) (its bytes charged to the receive
//!   limits) lives until its handler is done with it: until a sync closure returns,
//!   until an async closure's future completes (the future is wrapped in one that
//!   owns the permit), or, for a request, until the answer exists (before it is
//!   encoded and sent).
//! - A peer's request to a closure is answered by the closure's actor itself, through
//!   the request's `reply`, as soon as the answer exists (registered as answering
//!   itself): no task waits on actix's response channel for it. A local request is
//!   answered through actix's response, as for any actor.
//! - Ordering is the actor's: the closure is called in the order its actor's mailbox
//!   receives the messages, which for one link is the order the peer sent them. An
//!   async closure's future is spawned when the closure returns it, so the futures of
//!   successive messages run concurrently and may finish in any order.

use std::future::Future;
use std::marker::PhantomData;

use actix::prelude::*;

use super::dispatch::{encode_answer, HandlerError, Received, Requested};
use super::Node;
use crate::message::{Message, Request, VerbError};
use crate::NodeId;

/// Runs a closure that handles each message to the end before it returns.
struct SyncFn<F, M> {
    f: F,
    _message: PhantomData<fn(M)>,
}

/// Runs a closure that returns a future per message; the future is spawned.
struct AsyncFn<F, M> {
    f: F,
    _message: PhantomData<fn(M)>,
}

impl<F: Unpin + 'static, M: 'static> Actor for SyncFn<F, M> {
    type Context = Context<Self>;
}

impl<F: Unpin + 'static, M: 'static> Actor for AsyncFn<F, M> {
    type Context = Context<Self>;
}

impl<F, M> Handler<Received<M>> for SyncFn<F, M>
where
    M: Message,
    F: FnMut(NodeId, M) + Unpin + 'static,
{
    type Result = ();

    /// The permit goes when `received` is dropped, after the closure returns.
    fn handle(&mut self, received: Received<M>, _: &mut Context<Self>) {
        let Received {
            from,
            message,
            _permit,
        } = received;
        (self.f)(from, message);
    }
}

impl<F, M> Handler<Requested<M>> for SyncFn<F, M>
where
    M: Request,
    F: FnMut(NodeId, M) -> Result<M::Response, HandlerError> + Unpin + 'static,
{
    type Result = Result<M::Response, HandlerError>;

    /// A peer's request is answered here, as the closure returns (no task awaits
    /// actix's response); a local one through actix's response.
    fn handle(&mut self, requested: Requested<M>, _: &mut Context<Self>) -> Self::Result {
        let Requested {
            from,
            message,
            _permit,
            reply,
        } = requested;
        let answer = (self.f)(from, message);
        drop(_permit);
        if let Some(reply) = reply {
            reply.send(encode_answer(&answer));
        }
        answer
    }
}

impl<F, M, Fut> Handler<Received<M>> for AsyncFn<F, M>
where
    M: Message,
    F: FnMut(NodeId, M) -> Fut + Unpin + 'static,
    Fut: Future<Output = ()> + 'static,
{
    type Result = ();

    fn handle(&mut self, received: Received<M>, _: &mut Context<Self>) {
        let Received {
            from,
            message,
            _permit,
        } = received;
        let work = (self.f)(from, message);
        actix::spawn(async move {
            work.await;
            drop(_permit);
        });
    }
}

impl<F, M, Fut> Handler<Requested<M>> for AsyncFn<F, M>
where
    M: Request,
    F: FnMut(NodeId, M) -> Fut + Unpin + 'static,
    Fut: Future<Output = Result<M::Response, HandlerError>> + 'static,
{
    /// actix spawns the future and sends its output to the dispatcher.
    type Result = ResponseFuture<Result<M::Response, HandlerError>>;

    fn handle(&mut self, requested: Requested<M>, _: &mut Context<Self>) -> Self::Result {
        let Requested {
            from,
            message,
            _permit,
            reply,
        } = requested;
        let work = (self.f)(from, message);
        Box::pin(async move {
            let answer = work.await;
            drop(_permit);
            if let Some(reply) = reply {
                reply.send(encode_answer(&answer));
            }
            answer
        })
    }
}

/// The actor that runs `f`, on the current thread. Boxed so that any closure is
/// `Unpin`, as an actor must be.
fn sync_fn<F, M: 'static>(f: F) -> Addr<SyncFn<Box<F>, M>>
where
    F: 'static,
{
    SyncFn {
        f: Box::new(f),
        _message: PhantomData,
    }
    .start()
}

fn async_fn<F, M: 'static>(f: F) -> Addr<AsyncFn<Box<F>, M>>
where
    F: 'static,
{
    AsyncFn {
        f: Box::new(f),
        _message: PhantomData,
    }
    .start()
}

/// Registration. A verb belongs to one Rust type per node, whichever kind of handler
/// (one-way or request) and whichever form (actor or closure): registering a type
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
    /// # #[cfg(feature = "serde")] // `message!` needs it
    /// # mod example {
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
    /// # }
    /// # fn main() {}
    /// ```
    pub fn handle_requests<R: Request>(
        &self,
        recipient: Recipient<Requested<R>>,
    ) -> Result<(), VerbError> {
        self.inner.handlers.register_requests(recipient)
    }

    /// Registers a closure as the handler of one-way messages of type `M`, for
    /// handlers that need no actor of their own. It is called with the sender and the
    /// message, one message at a time, on the thread that registers it (which must
    /// run an actix system, as for starting any actor); the message's bytes count
    /// against the receive limits until it returns. Like an actor's handler it holds
    /// its thread while it runs: keep it short, or use
    /// [`handle_fn_async`](Self::handle_fn_async).
    ///
    /// Fails as [`handle`](Self::handle) does.
    ///
    /// ```no_run
    /// # #[cfg(feature = "serde")] // `message!` needs it
    /// # mod example {
    /// use internode::node::Node;
    /// use internode::NodeId;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Serialize, Deserialize)]
    /// struct Hello(String);
    /// internode::message!(Hello, verb = 1);
    ///
    /// # async fn run(node: Node) {
    /// let mut greeted = 0;
    /// node.handle_fn(move |from: NodeId, hello: Hello| {
    ///     greeted += 1;
    ///     println!("{from} says {} ({greeted} so far)", hello.0);
    /// })
    /// .unwrap();
    /// # }
    /// # }
    /// # fn main() {}
    /// ```
    pub fn handle_fn<M: Message>(
        &self,
        f: impl FnMut(NodeId, M) + 'static,
    ) -> Result<(), VerbError> {
        self.handle(sync_fn(f).recipient())
    }

    /// Registers an async closure as the handler of one-way messages of type `M`:
    /// `|from, message| async move { ... }`. The closure is called in the order the
    /// messages arrive (as [`handle_fn`](Self::handle_fn)'s is) and its future is
    /// spawned on the registering thread; futures of successive messages run
    /// concurrently, so do what must happen in order before the `async` block. A
    /// message's bytes count against the receive limits until its future completes,
    /// which bounds how many futures run at once.
    ///
    /// Fails as [`handle`](Self::handle) does.
    ///
    /// ```no_run
    /// # #[cfg(feature = "serde")] // `message!` needs it
    /// # mod example {
    /// use internode::node::Node;
    /// use internode::NodeId;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Serialize, Deserialize)]
    /// struct Put(String, String);
    /// internode::message!(Put, verb = 2);
    ///
    /// # async fn run(node: Node) {
    /// node.handle_fn_async(|from: NodeId, put: Put| async move {
    ///     tokio::task::yield_now().await; // write it somewhere
    ///     println!("{from} stored {}", put.0);
    /// })
    /// .unwrap();
    /// # }
    /// # }
    /// # fn main() {}
    /// ```
    pub fn handle_fn_async<M, Fut>(
        &self,
        f: impl FnMut(NodeId, M) -> Fut + 'static,
    ) -> Result<(), VerbError>
    where
        M: Message,
        Fut: Future<Output = ()> + 'static,
    {
        self.handle(async_fn(f).recipient())
    }

    /// Registers a closure as the handler of requests of type `R`: called with the
    /// requester and the request, one at a time, on the registering thread; its
    /// `Ok` goes back as the response, its `Err(HandlerError(text))` as a
    /// [`RequestError::Remote`](super::RequestError::Remote) failure
    /// ([`FailureReason::HandlerFailed`](crate::message::FailureReason::HandlerFailed),
    /// `text`). The request's bytes count against the receive limits until it returns.
    ///
    /// Fails as [`handle`](Self::handle) does.
    ///
    /// ```no_run
    /// # #[cfg(feature = "serde")] // `message!` needs it
    /// # mod example {
    /// use internode::node::{HandlerError, Node};
    /// use internode::NodeId;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Serialize, Deserialize)]
    /// struct Div(u64, u64);
    /// #[derive(Debug, Serialize, Deserialize)]
    /// struct Quotient(u64);
    /// internode::request!(Div => Quotient, verb = 20);
    /// internode::message!(Quotient, verb = 21);
    ///
    /// # async fn run(node: Node) {
    /// node.handle_requests_fn(|_from: NodeId, Div(a, b): Div| {
    ///     a.checked_div(b)
    ///         .map(Quotient)
    ///         .ok_or_else(|| HandlerError(format!("{a} / 0")))
    /// })
    /// .unwrap();
    /// // A requester of Div(1, 0) gets RequestError::Remote(RemoteFailure {
    /// //     reason: FailureReason::HandlerFailed, detail: "1 / 0" })
    /// # }
    /// # }
    /// # fn main() {}
    /// ```
    pub fn handle_requests_fn<R: Request>(
        &self,
        f: impl FnMut(NodeId, R) -> Result<R::Response, HandlerError> + 'static,
    ) -> Result<(), VerbError> {
        let recipient = sync_fn(f).recipient();
        self.inner.handlers.register_requests_answering(recipient)
    }

    /// Registers an async closure as the handler of requests of type `R`:
    /// `|from, request| async move { ... }`, whose future's output is the answer, as
    /// for [`handle_requests_fn`](Self::handle_requests_fn). Called in arrival order,
    /// futures spawned and run concurrently (see
    /// [`handle_fn_async`](Self::handle_fn_async)); a request's bytes count against
    /// the receive limits until its future completes.
    ///
    /// Fails as [`handle`](Self::handle) does.
    ///
    /// ```no_run
    /// # #[cfg(feature = "serde")] // `message!` needs it
    /// # mod example {
    /// use internode::node::{HandlerError, Node};
    /// use internode::NodeId;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Serialize, Deserialize)]
    /// struct Fetch(String);
    /// #[derive(Debug, Serialize, Deserialize)]
    /// struct Fetched(Vec<u8>);
    /// internode::request!(Fetch => Fetched, verb = 30);
    /// internode::message!(Fetched, verb = 31);
    ///
    /// async fn read(path: &str) -> std::io::Result<Vec<u8>> {
    ///     tokio::task::yield_now().await; // the disk, another service, ...
    ///     Ok(path.as_bytes().to_vec())
    /// }
    ///
    /// # async fn run(node: Node) {
    /// node.handle_requests_fn_async(|from: NodeId, fetch: Fetch| async move {
    ///     match read(&fetch.0).await {
    ///         Ok(bytes) => Ok(Fetched(bytes)),
    ///         Err(e) => Err(HandlerError(format!("{} for {from}: {e}", fetch.0))),
    ///     }
    /// })
    /// .unwrap();
    /// # }
    /// # }
    /// # fn main() {}
    /// ```
    pub fn handle_requests_fn_async<R, Fut>(
        &self,
        f: impl FnMut(NodeId, R) -> Fut + 'static,
    ) -> Result<(), VerbError>
    where
        R: Request,
        Fut: Future<Output = Result<R::Response, HandlerError>> + 'static,
    {
        let recipient = async_fn(f).recipient();
        self.inner.handlers.register_requests_answering(recipient)
    }
}
