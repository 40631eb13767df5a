//! What an application uses, in one import that sits beside actix's prelude:
//!
//! ```
//! use actix::prelude::*;
//! use internode::prelude::*;
//! # #[cfg(feature = "serde")] // `message!` needs it
//! # mod example {
//! # use actix::prelude::*;
//! # use internode::prelude::*;
//!
//! #[derive(Debug, serde::Serialize, serde::Deserialize)]
//! struct Ping(u64);
//! internode::message!(Ping, verb = 7);
//!
//! struct Counter(u64);
//! impl Actor for Counter {
//!     type Context = Context<Self>;
//! }
//! impl Handler<Received<Ping>> for Counter {
//!     type Result = ();
//!     fn handle(&mut self, m: Received<Ping>, _: &mut Context<Self>) {
//!         self.0 += m.message.0;
//!     }
//! }
//!
//! /// An actix message and an internode message side by side: no clash.
//! #[derive(Message)]
//! #[rtype(result = "u64")]
//! struct Total;
//!
//! fn is_remote<M: RemoteMessage>() -> u32 {
//!     M::VERB
//! }
//! # fn check() { let _ = is_remote::<Ping>(); }
//! # }
//! # fn main() {}
//! ```
//!
//! internode's own message traits are here as [`RemoteMessage`] and
//! [`RemoteRequest`], so that actix's `Message` (trait and derive) keeps its name; the
//! macros are `internode::message!` and `internode::request!`.

pub use super::{
    HandlerError, Node, NodeBuilder, Peer, Received, RequestError, Requested, SendError, Sent,
};
pub use crate::message::{Message as RemoteMessage, Request as RemoteRequest};
pub use crate::{LinkKind, NodeId};
