//! # internode
//!
//! The network layer for actix applications whose nodes talk to each other: typed
//! messages and requests between the nodes of a cluster over TCP, each peer link an
//! actor whose mailbox is its outbound queue.
//!
//! The crate is built in layers. The lower ones are sans-IO (plain types and state
//! machines, no sockets, no clock reads: the current time is passed in), and nothing
//! below the actor layer imports actix:
//!
//! 1. [`frame`]: the frame codec (CRC, LZ4 and unprotected frames).
//! 2. [`envelope`] (message header) and [`handshake`] (the first bytes of a connection).
//! 3. [`session`]: the link cores — [`session::LinkSession`] (one outbound link: queue,
//!    unacknowledged messages, lifecycle, heartbeat, byte account, expiry, sequence
//!    numbers and replay) and [`session::ReceiveSession`] (one receiving link: order,
//!    duplicates, acknowledgements, receive limits) — and the smaller machines they use.
//! 4. [`limits`]: byte budgets — a link's own capacity and the endpoint and global
//!    reserves that bound the node's memory in each direction.
//! 5. [`node`]: the actors (links, the registry that supervises them, inbound
//!    connections, the request tracker) and the [`node::Node`] facade.
//!
//! The lower layers ([`frame`], [`envelope`], [`handshake`], with [`vint`]) are public
//! for reuse: an independent implementation of the protocol, a custom transport or a
//! proxy can speak the wire format without the actors, and they are as stable as the
//! wire format is (a change to them comes with a new protocol version). Their wire
//! structs (`Frame`, `Envelope`, `Hello`, ...) are deliberately exhaustive, built field
//! by field; the structs a node reports or is configured with are `#[non_exhaustive]`,
//! with constructors. [`session`] and [`limits`] are public for a shell of one's own
//! around the same cores. The fuzz harnesses (`fuzzing`) exist only with the `fuzzing`
//! feature, for the crate's own tests.
//!
//! [`message`](mod@message) says how an application's types become messages (a trait, and with the
//! default `serde` feature, one line per `#[derive(Serialize, Deserialize)]` type).
//! With the `prometheus-client` feature, `node::prometheus` registers a node's metrics
//! in an application's `prometheus_client` registry.
//!
//! A shell drives the sans-IO layers in this order on a new connection: feed received
//! bytes to a [`handshake::Initiator`] or [`handshake::Acceptor`] and send what it asks
//! until it reports the connection established; then wrap the socket with a
//! [`frame::FrameCodec`] of the agreed [`frame::Framing`], pack outgoing envelopes with a
//! [`frame::FrameEncoder`], and turn incoming frames back into messages with an
//! [`envelope::MessageAssembler`]; above them, a [`session::LinkSession`] or
//! [`session::ReceiveSession`] decides everything else (what to write, when to
//! acknowledge, replay, send keepalives, reconnect or give up) and says when it next
//! needs waking (`poll_timeout`).

#![deny(missing_docs)]

pub mod envelope;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod handshake;
pub mod limits;
mod link_kind;
pub mod message;
pub mod node;
mod node_id;
mod outcome;
pub use node::prelude;
pub mod session;
pub mod vint;

pub use link_kind::LinkKind;
pub use node_id::NodeId;

/// The README's code blocks, compiled (and run where they are not `no_run`) as doc tests.
#[cfg(all(doctest, feature = "serde"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
