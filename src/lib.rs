//! # internode
//!
//! The network layer for actix applications whose nodes talk to each other.
//!
//! The crate is built in layers; each lower layer is sans-IO (plain types and state
//! machines, no sockets, no clock reads: the current time is passed in):
//!
//! 1. [`frame`]: the frame codec (CRC, LZ4 and unprotected frames).
//! 2. [`envelope`] (message header) and [`handshake`] (the first bytes of a connection).
//!
//! A shell (the actors of later layers) drives them in this order on a new connection:
//! feed received bytes to a [`handshake::Initiator`] or [`handshake::Acceptor`] and send
//! what it asks until it reports the connection established; then wrap the socket with a
//! [`frame::FrameCodec`] of the agreed [`frame::Framing`], pack outgoing envelopes with a
//! [`frame::FrameEncoder`], and turn incoming frames back into messages with an
//! [`envelope::MessageAssembler`].

#![deny(missing_docs)]

pub mod envelope;
pub mod frame;
pub mod fuzzing;
pub mod handshake;
mod link_kind;
pub mod message;
pub mod node;
mod node_id;
pub mod session;
pub mod vint;

pub use link_kind::LinkKind;
pub use node_id::NodeId;
