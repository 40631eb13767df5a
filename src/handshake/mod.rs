//! The connection handshake: the first bytes each side sends on a new connection.
//!
//! The side that dialed (the [`Initiator`]) sends a [`Hello`]; the side that accepted
//! the socket (the [`Acceptor`]) answers with an [`Accept`] or a [`Reject`]. Both are
//! sans-IO state machines in the quinn vocabulary: the shell feeds them what it reads
//! (`handle_input`, `handle_eof`) and the passing of time (`handle_timeout`), and carries
//! out what they ask (`poll_transmit`: bytes to write; `poll_timeout`: when to wake them).
//! They never read a clock: the current time is an argument.
//!
//! This module is public for reuse, not only for the node above it: an independent
//! implementation of the protocol, a custom transport (another socket type, a test
//! harness, a proxy that inspects traffic) or a tool can open connections with it
//! without the actors. Its API is as stable as the wire format it encodes: it changes
//! with a new protocol version, not otherwise (see the crate documentation).
//!
//! # Wire format
//!
//! All integers are little-endian. Every handshake message has the same envelope:
//!
//! ```text
//! +------+------+------+------+------+------+------+=============+------+------+------+------+
//! | 'I'  | 'N'  | 'O'  | 'D'  | type | body_len    | body        | CRC32 of type, body_len    |
//! | 0x49 | 0x4e | 0x4f | 0x44 | u8   | u16 (<=2048)| body_len B  | and body (crc32fast, u32)  |
//! +------+------+------+------+------+------+------+=============+------+------+------+------+
//!   type: 1 = Hello (initiator -> acceptor), 2 = Accept, 3 = Reject (acceptor -> initiator),
//!         4 = Challenge (acceptor -> initiator), 5 = Proof (initiator -> acceptor)
//! ```
//!
//! ```text
//! Hello body                                 Accept body
//! size   field                               size   field
//! 1      min_version                         1      version (the one chosen)
//! 1      max_version                         1      framing (Framing::code)
//! 8      node_id                             8      node_id (the acceptor's)
//! 1      address family: 4 or 6              8      session_id (the acceptor's)
//! 4|16   IP address, network byte order      8      resume: last sequence number the
//! 2      port                                       acceptor received from the initiator
//! 1      link kind (LinkKind::code)          2      auth_len (<= 1024)
//! 1      framing (Framing::code)             n      auth
//! 8      session_id (the initiator's)
//! 8      resume: sequence number at or       Reject body
//!        below which every message the       size   field
//!        initiator wrote has its outcome     1      reason (RejectReason::code)
//! 2      auth_len (<= 1024)                  1      min_version  } the acceptor's
//! n      auth                                1      max_version  } supported range
//! 1      flags: bit 0 = lossless link
//! 8      attempt (connection attempt number on the link, 0 = not counted)
//! ```
//!
//! ```text
//! Challenge body (cluster secret only)       Proof body (cluster secret only)
//! size   field                               size   field
//! 32     proof_A                             32     proof_I
//! 8      node_id (the acceptor's)
//! 32     nonce_A
//! ```
//!
//! The envelope and the first field(s) of each body are fixed for every protocol
//! version: an acceptor reads the Hello's version range before anything else, so it can
//! reject a peer of any version, and an initiator reads the Accept's version before the
//! rest. A later version may only append fields to a body; decoders ignore bytes after
//! the fields they know. The IPv6 flow info and scope id are not sent (they are
//! meaningless to another host) and decode as 0.
//!
//! # Authentication
//!
//! Without a cluster secret, a handshake is Hello, then Accept or Reject, and the
//! `auth` fields are whatever the shell puts there (internode leaves them empty). With
//! a secret ([`Initiator::with_auth`], [`Acceptor::with_auth`]) it takes four
//! messages, and the acceptor proves itself first:
//!
//! ```text
//! initiator                                             acceptor
//!   Hello { ..., auth = nonce_I (32 B) || cluster name }  ->
//!                                      <-  Challenge { proof_A, node_id_A, nonce_A }
//!   (verifies proof_A; on failure closes, answering nothing)
//!   Proof { proof_I }                                      ->
//!                                  (verifies proof_I; on failure Reject Unauthorized)
//!                                      <-  Accept (or Reject) as without a secret
//!   frames ...
//!
//! K       = HKDF-SHA256(ikm = secret, salt = cluster name, info = "internode handshake v1")
//! proof_A = HMAC-SHA256(K, "internode acceptor v1"  || [Hello body]
//!                          || [Challenge body after proof_A])
//! proof_I = HMAC-SHA256(K, "internode initiator v1" || [Hello body]
//!                          || [Challenge body] || [Proof body after proof_I])
//! [x]     = x's length as a u64 little-endian, then x
//! ```
//!
//! The Hello body holds the initiator's node id, session, attempt, nonce and cluster
//! name; the Challenge body the acceptor's node id and nonce; so both proofs cover the
//! role label, both nonces, both node ids, the cluster name and everything sent
//! before them (appended fields included: a proof covers the bytes after it). The
//! secret never travels. Nonces come from the caller: the shells draw 32 bytes from
//! the OS ([`fresh_nonce`]) per connection. Proofs are compared in constant time
//! (`Mac::verify_slice`).
//!
//! - The initiator answers a Challenge only after its proof checked out, so it never
//!   computes a proof for an acceptor that has not proven itself; a recorded Hello and
//!   Proof fail against the acceptor's fresh nonce; a proof sent back to its author
//!   fails on the role label.
//! - A Hello without a nonce (an auth field shorter than 32 bytes) is
//!   [`HandshakeError::AuthMissing`] and one naming another cluster
//!   [`HandshakeError::ClusterMismatch`], both with a Reject; a wrong Proof is
//!   [`HandshakeError::AuthFailed`] with a Reject; a connection that ends after the
//!   Challenge is [`HandshakeError::AuthIncomplete`]. An initiator with a secret that
//!   gets an Accept without a Challenge fails with [`HandshakeError::AuthMissing`].
//! - [`Acceptor::handle_input`] gives the Hello only once the Proof checked out: the
//!   shell learns of, routes and answers only authenticated peers.
//! - The Accept itself is not covered by a proof. Without TLS an on-path attacker can
//!   relay a handshake and then inject into the plaintext stream: a cluster secret
//!   keeps out scanners, wrong-cluster nodes, replayers and reflectors, not a
//!   man-in-the-middle.
//!
//! # Invariants
//!
//! - A connection is not usable before its handshake completes: neither side may send
//!   frames before it holds an [`Established`] (the acceptor gets it from
//!   [`Acceptor::accept`], the initiator when the Accept arrives). Bytes that arrive in
//!   the same input after the last handshake message are not consumed: they are returned in
//!   [`Established::leftover`] and belong to the frame decoder.
//! - Lengths are checked before memory is reserved: a `body_len` above
//!   [`MAX_HANDSHAKE_BODY`] fails with [`HandshakeError::BodyTooLong`] as soon as its
//!   two bytes arrive, and an auth length above [`MAX_AUTH_LEN`] is refused before the
//!   auth bytes are copied. A state machine never buffers more than one message of at
//!   most [`MAX_HANDSHAKE_MESSAGE`] bytes (a [`MAX_HANDSHAKE_BODY`] body plus 11 bytes of
//!   envelope).
//! - Garbage fails fast: a wrong magic is reported at the first byte that differs, and
//!   an unknown or unexpected message type at the type byte, before the body is read.
//! - Every state machine has a deadline; at or after it the handshake fails with
//!   [`HandshakeError::Timeout`], also when the acceptor's shell has not yet decided.
//! - After a state machine completed or failed, it takes no more input
//!   ([`HandshakeError::OutOfOrder`]) and never panics, whatever it is fed.
//! - The acceptor answers only a well-formed Hello: a peer that sends garbage gets no
//!   bytes back, a well-formed Hello it cannot serve gets a [`Reject`] saying why.

mod acceptor;
mod auth;
mod error;
mod initiator;
mod messages;
mod reader;
#[cfg(test)]
mod tests;

pub use acceptor::{AcceptParams, Acceptor, AcceptorConfig};
pub use auth::{
    fresh_nonce, ChannelBinding, ClusterKey, ClusterKeyError, Nonce, CHANNEL_BINDING_LEN,
    MAX_CLUSTER_NAME_LEN, NONCE_LEN, PROOF_LEN,
};
pub use error::HandshakeError;
pub use initiator::Initiator;
pub use messages::{
    Accept, AuthToken, AuthTooLong, Challenge, Hello, MessageType, Proof, Reject, RejectReason,
};

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::frame::Framing;
use crate::{LinkKind, NodeId};

/// The four bytes every handshake message starts with.
pub const MAGIC: [u8; 4] = *b"INOD";

/// The newest protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// The oldest protocol version this crate speaks.
pub const MIN_PROTOCOL_VERSION: u8 = 1;

/// The largest body a handshake message may announce; a larger `body_len` is refused
/// before anything is buffered.
pub const MAX_HANDSHAKE_BODY: usize = 2048;

/// The largest authentication blob a Hello or Accept may carry.
pub const MAX_AUTH_LEN: usize = 1024;

/// Length of the envelope before the body: magic, type and `body_len`.
pub const HEADER_LEN: usize = 7;

/// Length of the envelope after the body: the CRC32.
pub const TRAILER_LEN: usize = 4;

/// The largest whole handshake message, envelope included: the most a state machine
/// ever buffers.
pub const MAX_HANDSHAKE_MESSAGE: usize = HEADER_LEN + MAX_HANDSHAKE_BODY + TRAILER_LEN;

/// An inclusive range of protocol versions, `min..=max`.
///
/// A range with `min > max` is empty: it overlaps nothing, so a Hello carrying one is
/// rejected as [`RejectReason::IncompatibleVersion`].
///
/// ```
/// use internode::handshake::VersionRange;
/// let ours = VersionRange::new(1, 3);
/// assert_eq!(ours.highest_common(VersionRange::new(2, 5)), Some(3));
/// assert_eq!(ours.highest_common(VersionRange::single(4)), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionRange {
    /// The oldest version in the range.
    pub min: u8,
    /// The newest version in the range.
    pub max: u8,
}

impl VersionRange {
    /// The versions this crate speaks: [`MIN_PROTOCOL_VERSION`]`..=`[`PROTOCOL_VERSION`].
    pub const SUPPORTED: VersionRange = VersionRange::new(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION);

    /// The range `min..=max`.
    pub const fn new(min: u8, max: u8) -> Self {
        VersionRange { min, max }
    }

    /// The range holding only `version`.
    pub const fn single(version: u8) -> Self {
        VersionRange::new(version, version)
    }

    /// Whether the range holds no version (`min > max`).
    pub const fn is_empty(self) -> bool {
        self.min > self.max
    }

    /// Whether `version` lies in the range.
    pub const fn contains(self, version: u8) -> bool {
        self.min <= version && version <= self.max
    }

    /// The newest version both ranges hold, if any.
    pub fn highest_common(self, other: VersionRange) -> Option<u8> {
        let low = self.min.max(other.min);
        let high = self.max.min(other.max);
        (low <= high).then_some(high)
    }
}

impl Default for VersionRange {
    fn default() -> Self {
        VersionRange::SUPPORTED
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.min, self.max)
    }
}

/// A set of [`Framing`]s: those an acceptor allows.
///
/// ```
/// use internode::frame::Framing;
/// use internode::handshake::FramingSet;
/// let plain = FramingSet::ALL.without(Framing::Unprotected);
/// assert!(plain.contains(Framing::Lz4));
/// assert!(!plain.contains(Framing::Unprotected));
/// assert_eq!(plain, [Framing::Crc, Framing::Lz4].into_iter().collect());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FramingSet(u8);

impl FramingSet {
    /// No framing.
    pub const EMPTY: FramingSet = FramingSet(0);
    /// Every framing.
    pub const ALL: FramingSet = FramingSet::EMPTY
        .with(Framing::Crc)
        .with(Framing::Lz4)
        .with(Framing::Unprotected);

    const fn bit(framing: Framing) -> u8 {
        1 << framing.code()
    }

    /// This set and `framing`.
    pub const fn with(self, framing: Framing) -> Self {
        FramingSet(self.0 | Self::bit(framing))
    }

    /// This set without `framing`.
    pub const fn without(self, framing: Framing) -> Self {
        FramingSet(self.0 & !Self::bit(framing))
    }

    /// Whether `framing` is in the set.
    pub const fn contains(self, framing: Framing) -> bool {
        self.0 & Self::bit(framing) != 0
    }

    /// The framings in the set, in wire-code order.
    pub fn iter(self) -> impl Iterator<Item = Framing> {
        Framing::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Framing> for FramingSet {
    fn from_iter<I: IntoIterator<Item = Framing>>(iter: I) -> Self {
        iter.into_iter().fold(FramingSet::EMPTY, FramingSet::with)
    }
}

/// What a completed handshake agreed, as seen from one side (the same struct for both).
///
/// "Peer" is the other side; [`resume`](Established::resume) is where a lossless
/// session resumes sending to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Established {
    /// The protocol version of the connection: the newest both sides speak.
    pub version: u8,
    /// The framing of the connection, as the initiator asked.
    pub framing: Framing,
    /// The peer's node id.
    pub peer_node_id: NodeId,
    /// The address the peer listens on, from its Hello: `Some` on the acceptor side.
    /// `None` on the initiator side, whose shell knows the address it dialed.
    pub peer_listen_addr: Option<SocketAddr>,
    /// Which link of the pair of nodes the connection serves (from the Hello).
    pub link_kind: LinkKind,
    /// The peer's session id on this link: when it differs from the one of the
    /// previous connection, the peer process restarted.
    pub peer_session_id: u64,
    /// On the initiator side, from the Accept: the last sequence number the peer has
    /// taken from this side on this link (0 = none); a lossless session drops what is
    /// at or below it and replays the rest. On the acceptor side, from the Hello: the
    /// number at or below which every message the initiator wrote has its outcome.
    pub resume: u64,
    /// The peer's authentication data, for the shell to verify.
    pub auth: AuthToken,
    /// Bytes that arrived after the handshake message in the same input: the start of
    /// the frame stream, to be fed to the frame decoder before anything read later.
    pub leftover: Bytes,
}
