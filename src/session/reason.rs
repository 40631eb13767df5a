//! Why a connection attempt failed or a connection ended.

use std::io;
use std::time::Duration;

use crate::handshake::HandshakeError;

/// A violation of the framing or message protocol by the peer (or by whatever
/// corrupted the bytes on the way): the connection cannot continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// A frame header failed its CRC24: frame boundaries are lost.
    #[error("corrupt frame header")]
    FrameHeaderCorrupt,
    /// An LZ4 payload did not decompress to its announced length.
    #[error("LZ4 decompression failed")]
    Decompression,
    /// Payload corruption the session cannot recover from (for instance a corrupt
    /// frame inside a large message on a lossy link).
    #[error("unrecoverable payload corruption")]
    UnrecoverableCorruption,
    /// A message envelope that does not decode.
    #[error("malformed message")]
    MessageMalformed,
    /// A frame or message larger than the configured maximum.
    #[error("oversized frame or message")]
    Oversized,
    /// An acknowledgement (or resume position) of a message that was never sent.
    #[error("acknowledgement of a message never sent")]
    BadAcknowledgement,
}

/// Why a TLS connection was not established, on either side. Certificate checks are
/// those of the node's `TlsConfig` (the cluster CA, validity dates, the node id
/// named in the certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The peer does not speak TLS (e.g. a plaintext client at a TLS node), or broke
    /// the TLS protocol.
    #[error("not TLS")]
    NotTls,
    /// The peer sent no certificate.
    #[error("no certificate")]
    NoCertificate,
    /// The peer's certificate is not issued by the cluster's CA (or its chain is
    /// invalid).
    #[error("certificate not issued by the cluster's CA")]
    UntrustedCertificate,
    /// The peer's certificate has expired or is not valid yet.
    #[error("certificate expired or not valid yet")]
    CertificateExpired,
    /// The peer's certificate is valid but names another node than the one it
    /// claims to be (or the one dialed).
    #[error("certificate of another node")]
    WrongIdentity,
    /// The peer refused this node's certificate, or ended the TLS handshake with an
    /// alert.
    #[error("refused by the peer")]
    RefusedByPeer,
    /// Anything else the TLS layer refused (no common cipher suite, ...).
    #[error("TLS handshake failed")]
    Other,
}

impl TlsFailure {
    /// Whether the peer sent what no honest, well-configured peer sends.
    pub fn is_remote_fault(self) -> bool {
        !matches!(self, TlsFailure::RefusedByPeer | TlsFailure::Other)
    }
}

/// Why a connection attempt failed or an established connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer's host name did not resolve (to any address).
    #[error("host name not resolved: {0}")]
    Resolve(io::ErrorKind),
    /// The TCP connect failed.
    #[error("connect failed: {0}")]
    ConnectFailed(io::ErrorKind),
    /// The TCP connect did not complete in time.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(HandshakeError),
    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The TLS handshake failed, or the peer's certificate was refused.
    #[error("TLS failed: {0}")]
    Tls(TlsFailure),
    /// Nothing was read for the heartbeat timeout.
    #[error("nothing read for {silent_for_ms} ms")]
    ReadTimeout {
        /// How long the connection was silent, in milliseconds.
        silent_for_ms: u64,
    },
    /// A write was blocked for the unwritable timeout: the peer takes nothing.
    #[error("a write blocked for {blocked_for_ms} ms")]
    WriteTimeout {
        /// How long the write was blocked, in milliseconds.
        blocked_for_ms: u64,
    },
    /// Reading or writing the socket failed.
    #[error("I/O error: {0}")]
    Io(io::ErrorKind),
    /// The peer closed the connection.
    #[error("closed by the peer")]
    PeerClosed,
    /// The peer broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(ProtocolViolation),
    /// The node that answered at the peer's address is another node: the address
    /// is stale or wrong.
    #[error("expected {expected} at the address, found {found}")]
    WrongPeer {
        /// The peer the link is for.
        expected: crate::NodeId,
        /// The node the handshake reported.
        found: crate::NodeId,
    },
    /// This node closed the link.
    #[error("closed locally")]
    Closed,
    /// The peer's address changed: the link moves to the new one.
    #[error("the peer's address changed")]
    AddressChanged,
    /// The connection carried nothing for the node's idle timeout, with nothing
    /// waiting: this node closed it and the link went dormant, keeping its session
    /// (its next message reconnects and resumes it). Not a failure.
    #[error("idle for {idle_for_ms} ms: closed, the session kept")]
    Idle {
        /// How long the connection had carried nothing, in milliseconds.
        idle_for_ms: u64,
    },
}

impl DisconnectReason {
    /// A [`ReadTimeout`](Self::ReadTimeout) after `silent_for` (saturating at
    /// `u64::MAX` ms), e.g. from a heartbeat's
    /// [`TimedOut`](super::HeartbeatAction::TimedOut).
    pub fn read_timeout(silent_for: Duration) -> Self {
        let silent_for_ms = u64::try_from(silent_for.as_millis()).unwrap_or(u64::MAX);
        DisconnectReason::ReadTimeout { silent_for_ms }
    }

    /// A [`WriteTimeout`](Self::WriteTimeout) after `blocked_for` (saturating), e.g.
    /// from a heartbeat's [`Unwritable`](super::HeartbeatAction::Unwritable).
    pub fn write_timeout(blocked_for: Duration) -> Self {
        let blocked_for_ms = u64::try_from(blocked_for.as_millis()).unwrap_or(u64::MAX);
        DisconnectReason::WriteTimeout { blocked_for_ms }
    }

    /// An [`Idle`](Self::Idle) close after `idle_for` (saturating at `u64::MAX` ms).
    pub fn idle(idle_for: Duration) -> Self {
        let idle_for_ms = u64::try_from(idle_for.as_millis()).unwrap_or(u64::MAX);
        DisconnectReason::Idle { idle_for_ms }
    }

    /// Whether this node ended the connection on purpose (the link was closed, or its
    /// idle connection pruned), as opposed to a failure.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            DisconnectReason::Closed | DisconnectReason::Idle { .. }
        )
    }

    /// Whether the peer (or something between) sent bytes no correct implementation
    /// sends: protocol violations and [remote-fault](HandshakeError::is_remote_fault)
    /// handshake errors. Such connections are counted as garbage.
    pub fn is_remote_fault(&self) -> bool {
        match self {
            DisconnectReason::Protocol(_) | DisconnectReason::WrongPeer { .. } => true,
            DisconnectReason::Handshake(e) => e.is_remote_fault(),
            DisconnectReason::Tls(e) => e.is_remote_fault(),
            _ => false,
        }
    }
}

impl From<HandshakeError> for DisconnectReason {
    fn from(e: HandshakeError) -> Self {
        DisconnectReason::Handshake(e)
    }
}

impl From<ProtocolViolation> for DisconnectReason {
    fn from(v: ProtocolViolation) -> Self {
        DisconnectReason::Protocol(v)
    }
}
