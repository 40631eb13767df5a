//! What happened to a message: the outcome a sender observes, and request errors.

use crate::envelope::EnvelopeError;
use crate::message::{DecodeError, EncodeError, RemoteFailure};
use crate::NodeId;

/// A message's successful outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sent {
    /// On a lossy link: written to the peer's connection (handed to the kernel). If
    /// the connection fails after that, the message may be lost.
    Written,
    /// On a lossless link: the peer's node acknowledged the message, that is, took it
    /// off the connection and charged it to its receive limits on the way to its
    /// handler (or to the request tracker, for a response). It is delivered exactly
    /// once, whatever happens to connections afterwards, unless the peer process
    /// dies. An acknowledgement does not say that the handler has run.
    Acknowledged,
    /// Addressed to this node and handed to its handler without the network.
    DeliveredLocally,
}

/// Which limit had no room for a message (docs/limits.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverloadLevel {
    /// The link's own capacity, while the link is failing to connect (it takes no
    /// reserve then).
    Link,
    /// The reserve shared by the links to the peer.
    Endpoint,
    /// The reserve shared by all the links of the node.
    Global,
}

impl std::fmt::Display for OverloadLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OverloadLevel::Link => "link's capacity",
            OverloadLevel::Endpoint => "peer's reserve",
            OverloadLevel::Global => "node's reserve",
        })
    }
}

/// Why a message was not sent. Every failure reaches its sender at once.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The message did not serialize; only this message failed.
    #[error("message does not serialize: {0}")]
    Serialization(EncodeError),
    /// The envelope could not be built (for example, too many parameters).
    #[error("envelope does not encode: {0}")]
    Envelope(EnvelopeError),
    /// No address is known for the peer.
    #[error("no address known for {0}")]
    UnknownPeer(NodeId),
    /// The link (or the node) is closed or closing; the message was not written.
    #[error("link closed")]
    Closed,
    /// On a lossy link, the connection failed while the message was being written; on
    /// any link, the link was closed (without drain, or at the end of the drain's
    /// deadline) after the message was written and before it was acknowledged. It
    /// may or may not have reached the peer.
    #[error("connection lost while writing")]
    ConnectionLost,
    /// The peer process restarted (a new session) before it acknowledged the
    /// message: it was written to the old incarnation, which may or may not have
    /// taken it. Never given for a message that was not written.
    #[error("the peer restarted before acknowledging the message")]
    PeerRestarted,
    /// A message to this node found no handler for its type.
    #[error("no local handler for verb {0}")]
    NoLocalHandler(u32),
    /// The message's deadline passed before it could be written; it was not. On a
    /// lossless link, a message written on a connection that failed before the peer
    /// acknowledged it, and whose deadline passed before it could be written again,
    /// also ends here: it may have reached the peer.
    #[error("expired before it was written")]
    Expired,
    /// No room for the message's bytes: the link, the peer's or the node's limit.
    #[error("overloaded: no room in the {0}")]
    Overloaded(OverloadLevel),
    /// The message is larger than the node's maximum message size.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    Oversized {
        /// The message's size in bytes.
        size: usize,
        /// The maximum.
        max: usize,
    },
}

impl SendError {
    /// A short stable name of the failure, for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SendError::Serialization(_) => "serialization",
            SendError::Envelope(_) => "envelope",
            SendError::UnknownPeer(_) => "unknown_peer",
            SendError::Closed => "closed",
            SendError::ConnectionLost => "connection_lost",
            SendError::PeerRestarted => "peer_restarted",
            SendError::NoLocalHandler(_) => "no_local_handler",
            SendError::Expired => "expired",
            SendError::Overloaded(OverloadLevel::Link) => "overloaded_link",
            SendError::Overloaded(OverloadLevel::Endpoint) => "overloaded_endpoint",
            SendError::Overloaded(OverloadLevel::Global) => "overloaded_global",
            SendError::Oversized { .. } => "oversized",
        }
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request itself was not sent.
    #[error("request not sent: {0}")]
    Send(SendError),
    /// No response arrived in time.
    #[error("no response within the timeout")]
    Timeout,
    /// The peer answered with a failure.
    #[error("remote failure: {0}")]
    Remote(RemoteFailure),
    /// The response did not decode as the expected type.
    #[error("response does not decode: {0}")]
    Decode(DecodeError),
    /// The link was closed while the request was pending.
    #[error("link closed while the request was pending")]
    Closed,
}

// By hand rather than `#[from]`, which would also make the cause the error's
// `source()`: an error chain would print it twice.
impl From<SendError> for RequestError {
    fn from(e: SendError) -> Self {
        RequestError::Send(e)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::session::{DisconnectReason, LinkEvent};

    /// Messages are written for people (no Debug output), and a cause is printed
    /// once in an error chain: in the message, not again as `source()`.
    #[test]
    fn errors_read_as_words_and_print_their_cause_once() {
        let overloaded = SendError::Overloaded(OverloadLevel::Endpoint);
        assert_eq!(
            overloaded.to_string(),
            "overloaded: no room in the peer's reserve"
        );
        let request = RequestError::from(overloaded);
        assert_eq!(
            request.to_string(),
            "request not sent: overloaded: no room in the peer's reserve"
        );
        assert!(request.source().is_none(), "the cause is in the message");
        let refused = DisconnectReason::ConnectFailed(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(refused.to_string(), "connect failed: connection refused");
        let retry = LinkEvent::RetryScheduled {
            attempt: 3,
            delay: std::time::Duration::from_micros(55_514_579),
        };
        assert_eq!(retry.to_string(), "retry scheduled: attempt 3 in 55514 ms");
    }
}
