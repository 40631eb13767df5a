//! Why a handshake failed.

use super::{RejectReason, VersionRange, MAX_HANDSHAKE_BODY};

/// Why a handshake failed, or why a handshake message could not be decoded.
///
/// Variants fall in four groups:
/// - the peer (or something between) sent bytes that break the protocol:
///   [`WrongMagic`](Self::WrongMagic), [`Malformed`](Self::Malformed),
///   [`BodyTooLong`](Self::BodyTooLong), [`ChecksumMismatch`](Self::ChecksumMismatch),
///   [`UnexpectedMessage`](Self::UnexpectedMessage) — see
///   [`is_remote_fault`](Self::is_remote_fault);
/// - the two sides cannot talk to each other as configured:
///   [`IncompatibleVersion`](Self::IncompatibleVersion), [`SelfConnect`](Self::SelfConnect),
///   [`UnsupportedFraming`](Self::UnsupportedFraming), [`Rejected`](Self::Rejected);
/// - cluster-secret authentication failed: [`AuthMissing`](Self::AuthMissing),
///   [`AuthFailed`](Self::AuthFailed), [`ClusterMismatch`](Self::ClusterMismatch),
///   [`AuthIncomplete`](Self::AuthIncomplete);
/// - the connection ended or stalled: [`Truncated`](Self::Truncated),
///   [`Closed`](Self::Closed), [`Timeout`](Self::Timeout);
/// - the caller used a state machine out of order: [`OutOfOrder`](Self::OutOfOrder).
///
/// [`is_retryable`](Self::is_retryable) says whether a new connection may fare better.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The first bytes are not the handshake magic `INOD`: the peer does not speak this
    /// protocol. Reported at the first byte that differs.
    #[error("not an internode handshake: first bytes {found:02x?}, expected \"INOD\"")]
    WrongMagic {
        /// The bytes seen so far, up to and including the first wrong one.
        found: Vec<u8>,
    },
    /// The two version ranges do not overlap (reported by the acceptor, or by an
    /// initiator whose Accept names a version outside its range).
    #[error("no common protocol version: ours {ours}, theirs {theirs}")]
    IncompatibleVersion {
        /// This side's supported range.
        ours: VersionRange,
        /// The peer's range (the single version an Accept named, initiator side).
        theirs: VersionRange,
    },
    /// A message body that cannot be decoded: it ends inside a field, or a field holds
    /// a value the protocol does not define.
    #[error("malformed handshake message: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
    /// A message announced a body longer than [`MAX_HANDSHAKE_BODY`]; refused before
    /// anything was buffered.
    #[error("handshake body of {len} bytes exceeds the maximum of {max}")]
    BodyTooLong {
        /// The announced length.
        len: usize,
        /// The maximum, [`MAX_HANDSHAKE_BODY`].
        max: usize,
    },
    /// The message's CRC32 does not match its contents.
    #[error("handshake checksum mismatch: message carries {carried:08x}, computed {computed:08x}")]
    ChecksumMismatch {
        /// The CRC32 the message carries.
        carried: u32,
        /// The CRC32 computed over the bytes that arrived.
        computed: u32,
    },
    /// A message of a type this side does not expect now (e.g. an Accept sent to an
    /// acceptor), or of an unknown type. Reported at the type byte.
    #[error("unexpected handshake message: expected {expected}, found type code {found}")]
    UnexpectedMessage {
        /// The message type(s) this side was waiting for.
        expected: &'static str,
        /// The type code that arrived.
        found: u8,
    },
    /// The connection ended inside a handshake message.
    #[error("connection closed inside the handshake message ({received} of {expected} bytes)")]
    Truncated {
        /// How many bytes of the message had arrived.
        received: usize,
        /// The message's full length once its header had arrived, otherwise the
        /// header's 7 bytes.
        expected: usize,
    },
    /// The connection ended before any byte of the awaited message arrived (or, on the
    /// acceptor, after the Hello while the shell had not decided yet).
    #[error("connection closed before the handshake completed")]
    Closed,
    /// The handshake did not complete before its deadline.
    #[error("handshake timed out")]
    Timeout,
    /// The connection reached its own node: a TCP self-connect, the node's own listener,
    /// or another node configured with the same id.
    #[error("connection reached its own node (self-connect)")]
    SelfConnect,
    /// The framing code is unknown, not allowed by the acceptor, or (initiator side)
    /// not the one asked for.
    #[error("unsupported framing code {0}")]
    UnsupportedFraming(u8),
    /// The peer refused the handshake with a [`Reject`](super::Reject).
    #[error("handshake rejected by the peer: {reason} (peer speaks versions {peer_versions})")]
    Rejected {
        /// Why the peer refused.
        reason: RejectReason,
        /// The versions the peer speaks: with [`RejectReason::IncompatibleVersion`],
        /// [`Initiator::retry_version`](super::Initiator::retry_version) uses them.
        peer_versions: VersionRange,
    },
    /// One side has a cluster secret and the other takes no part in authentication:
    /// a Hello without a nonce reached an acceptor with a secret, or an initiator with
    /// a secret got an Accept without a Challenge first.
    #[error("the peer does not authenticate with a cluster secret")]
    AuthMissing,
    /// The peer's proof is wrong: it has another secret, or replays, reflects or
    /// forges a proof.
    #[error("the peer's cluster-secret proof is wrong")]
    AuthFailed,
    /// The peer belongs to another cluster (acceptor side: the Hello names another
    /// cluster).
    #[error("the peer belongs to another cluster")]
    ClusterMismatch,
    /// The connection ended after this side's Challenge and before the peer's Proof:
    /// what an initiator with another secret does (it does not answer a challenge it
    /// could not verify).
    #[error("the peer closed the connection instead of proving the cluster secret")]
    AuthIncomplete,
    /// Caller error: a state machine was called in a state that does not take that
    /// call, e.g. `handle_input` after the handshake completed or failed, or
    /// [`Acceptor::accept`](super::Acceptor::accept) before a Hello arrived. The state
    /// machine is left as it was.
    #[error("{call} called while the handshake is {state}")]
    OutOfOrder {
        /// The method called.
        call: &'static str,
        /// The state the machine was in.
        state: &'static str,
    },
}

impl HandshakeError {
    /// Whether a new connection may succeed where this one failed: the connection
    /// ended or stalled ([`Truncated`](Self::Truncated), [`Closed`](Self::Closed),
    /// [`Timeout`](Self::Timeout)), a checksum failed (corruption on the way need not
    /// recur), or the peer is [shutting down](RejectReason::ShuttingDown).
    ///
    /// Wrong magic, malformed messages, incompatible versions (unless
    /// [`Initiator::retry_version`](super::Initiator::retry_version) names one),
    /// self-connects, unsupported framings, authentication and authorization
    /// failures stay as they are: retrying does not help.
    pub fn is_retryable(&self) -> bool {
        match self {
            HandshakeError::Truncated { .. }
            | HandshakeError::Closed
            | HandshakeError::Timeout
            | HandshakeError::ChecksumMismatch { .. } => true,
            HandshakeError::Rejected { reason, .. } => reason.is_retryable(),
            HandshakeError::WrongMagic { .. }
            | HandshakeError::IncompatibleVersion { .. }
            | HandshakeError::Malformed { .. }
            | HandshakeError::BodyTooLong { .. }
            | HandshakeError::UnexpectedMessage { .. }
            | HandshakeError::SelfConnect
            | HandshakeError::UnsupportedFraming(_)
            | HandshakeError::AuthMissing
            | HandshakeError::AuthFailed
            | HandshakeError::ClusterMismatch
            | HandshakeError::AuthIncomplete
            | HandshakeError::OutOfOrder { .. } => false,
        }
    }

    /// Whether the peer (or something between) sent bytes that no correct
    /// implementation of this protocol sends: the connection is closed and counted as
    /// garbage. Configuration mismatches (versions, framing, self-connect), rejections,
    /// ends of the connection and timeouts are not remote faults.
    pub fn is_remote_fault(&self) -> bool {
        matches!(
            self,
            HandshakeError::WrongMagic { .. }
                | HandshakeError::Malformed { .. }
                | HandshakeError::BodyTooLong { .. }
                | HandshakeError::ChecksumMismatch { .. }
                | HandshakeError::UnexpectedMessage { .. }
        )
    }

    pub(crate) fn body_too_long(len: usize) -> Self {
        HandshakeError::BodyTooLong {
            len,
            max: MAX_HANDSHAKE_BODY,
        }
    }
}
