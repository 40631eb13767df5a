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
    /// The verb is one of internode's own (at or above
    /// [`RESERVED_VERBS_START`](crate::message::RESERVED_VERBS_START)): an application
    /// cannot send it.
    #[error("verb {0} is reserved for internode's control messages")]
    ReservedVerb(u32),
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
    /// The kind of failure, without its details: what
    /// [`LinkCounters::failed`](crate::node::LinkCounters::failed) counts by, and
    /// (with [`SendErrorKind::as_str`]) a label for metrics and logs.
    pub fn kind(&self) -> SendErrorKind {
        match self {
            SendError::Serialization(_) => SendErrorKind::Serialization,
            SendError::Envelope(_) => SendErrorKind::Envelope,
            SendError::UnknownPeer(_) => SendErrorKind::UnknownPeer,
            SendError::Closed => SendErrorKind::Closed,
            SendError::ConnectionLost => SendErrorKind::ConnectionLost,
            SendError::PeerRestarted => SendErrorKind::PeerRestarted,
            SendError::NoLocalHandler(_) => SendErrorKind::NoLocalHandler,
            SendError::ReservedVerb(_) => SendErrorKind::ReservedVerb,
            SendError::Expired => SendErrorKind::Expired,
            SendError::Overloaded(OverloadLevel::Link) => SendErrorKind::OverloadedLink,
            SendError::Overloaded(OverloadLevel::Endpoint) => SendErrorKind::OverloadedEndpoint,
            SendError::Overloaded(OverloadLevel::Global) => SendErrorKind::OverloadedGlobal,
            SendError::Oversized { .. } => SendErrorKind::Oversized,
        }
    }
}

/// The kind of a [`SendError`], without its details: one variant per
/// [`SendError`] variant, and one per [`OverloadLevel`] for
/// [`SendError::Overloaded`]. [`as_str`](Self::as_str) gives a stable snake_case
/// name, the `reason` label of the `internode_outbound_failed_*` metrics;
/// `Display` writes the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// [`SendError::Serialization`]: `serialization`.
    Serialization,
    /// [`SendError::Envelope`]: `envelope`.
    Envelope,
    /// [`SendError::UnknownPeer`]: `unknown_peer`.
    UnknownPeer,
    /// [`SendError::Closed`]: `closed`.
    Closed,
    /// [`SendError::ConnectionLost`]: `connection_lost`.
    ConnectionLost,
    /// [`SendError::PeerRestarted`]: `peer_restarted`.
    PeerRestarted,
    /// [`SendError::NoLocalHandler`]: `no_local_handler`.
    NoLocalHandler,
    /// [`SendError::ReservedVerb`]: `reserved_verb`.
    ReservedVerb,
    /// [`SendError::Expired`]: `expired`.
    Expired,
    /// [`SendError::Overloaded`] at [`OverloadLevel::Link`]: `overloaded_link`.
    OverloadedLink,
    /// [`SendError::Overloaded`] at [`OverloadLevel::Endpoint`]: `overloaded_endpoint`.
    OverloadedEndpoint,
    /// [`SendError::Overloaded`] at [`OverloadLevel::Global`]: `overloaded_global`.
    OverloadedGlobal,
    /// [`SendError::Oversized`]: `oversized`.
    Oversized,
}

impl SendErrorKind {
    /// A short stable snake_case name, for metric labels, logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SendErrorKind::Serialization => "serialization",
            SendErrorKind::Envelope => "envelope",
            SendErrorKind::UnknownPeer => "unknown_peer",
            SendErrorKind::Closed => "closed",
            SendErrorKind::ConnectionLost => "connection_lost",
            SendErrorKind::PeerRestarted => "peer_restarted",
            SendErrorKind::NoLocalHandler => "no_local_handler",
            SendErrorKind::ReservedVerb => "reserved_verb",
            SendErrorKind::Expired => "expired",
            SendErrorKind::OverloadedLink => "overloaded_link",
            SendErrorKind::OverloadedEndpoint => "overloaded_endpoint",
            SendErrorKind::OverloadedGlobal => "overloaded_global",
            SendErrorKind::Oversized => "oversized",
        }
    }
}

impl std::fmt::Display for SendErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcomes of a batch of messages ([`Peer::send_many`](crate::node::Peer::send_many)),
/// one per message, by the index the message had in the batch.
///
/// ```
/// use internode::node::{Outcomes, SendError, Sent};
///
/// let outcomes = Outcomes::from(vec![Ok(Sent::Acknowledged), Err(SendError::Expired)]);
/// assert_eq!(outcomes[0], Ok(Sent::Acknowledged));
/// assert!(!outcomes.all_sent());
/// assert_eq!(outcomes.failures().collect::<Vec<_>>(), vec![(1, &SendError::Expired)]);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcomes(Vec<Result<Sent, SendError>>);

impl Outcomes {
    /// How many messages the batch had.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the batch was empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The outcome of message `index`, if the batch had it.
    pub fn get(&self, index: usize) -> Option<&Result<Sent, SendError>> {
        self.0.get(index)
    }

    /// Every outcome, in the order of the messages.
    pub fn iter(&self) -> std::slice::Iter<'_, Result<Sent, SendError>> {
        self.0.iter()
    }

    /// Whether every message was sent (none failed).
    pub fn all_sent(&self) -> bool {
        self.0.iter().all(Result::is_ok)
    }

    /// The messages that failed: their index and why.
    pub fn failures(&self) -> impl Iterator<Item = (usize, &SendError)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, outcome)| outcome.as_ref().err().map(|e| (i, e)))
    }

    /// The outcomes, in the order of the messages.
    pub fn into_vec(self) -> Vec<Result<Sent, SendError>> {
        self.0
    }
}

impl From<Vec<Result<Sent, SendError>>> for Outcomes {
    fn from(outcomes: Vec<Result<Sent, SendError>>) -> Self {
        Outcomes(outcomes)
    }
}

impl std::ops::Index<usize> for Outcomes {
    type Output = Result<Sent, SendError>;

    fn index(&self, index: usize) -> &Self::Output {
        &self.0[index]
    }
}

impl IntoIterator for Outcomes {
    type Item = Result<Sent, SendError>;
    type IntoIter = std::vec::IntoIter<Result<Sent, SendError>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Outcomes {
    type Item = &'a Result<Sent, SendError>;
    type IntoIter = std::slice::Iter<'a, Result<Sent, SendError>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
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

    /// Every kind, with a failure of that kind and its name (today's labels: they
    /// must not change, dashboards and the examples' JSON use them).
    #[test]
    fn every_send_error_kind_has_a_distinct_snake_case_name() {
        let table = [
            (
                SendError::Serialization(EncodeError::custom("x")),
                SendErrorKind::Serialization,
                "serialization",
            ),
            (
                SendError::Envelope(EnvelopeError::VerbOverflow { value: 0 }),
                SendErrorKind::Envelope,
                "envelope",
            ),
            (
                SendError::UnknownPeer(NodeId(7)),
                SendErrorKind::UnknownPeer,
                "unknown_peer",
            ),
            (SendError::Closed, SendErrorKind::Closed, "closed"),
            (
                SendError::ConnectionLost,
                SendErrorKind::ConnectionLost,
                "connection_lost",
            ),
            (
                SendError::PeerRestarted,
                SendErrorKind::PeerRestarted,
                "peer_restarted",
            ),
            (
                SendError::NoLocalHandler(3),
                SendErrorKind::NoLocalHandler,
                "no_local_handler",
            ),
            (SendError::Expired, SendErrorKind::Expired, "expired"),
            (
                SendError::Overloaded(OverloadLevel::Link),
                SendErrorKind::OverloadedLink,
                "overloaded_link",
            ),
            (
                SendError::Overloaded(OverloadLevel::Endpoint),
                SendErrorKind::OverloadedEndpoint,
                "overloaded_endpoint",
            ),
            (
                SendError::Overloaded(OverloadLevel::Global),
                SendErrorKind::OverloadedGlobal,
                "overloaded_global",
            ),
            (
                SendError::Oversized { size: 2, max: 1 },
                SendErrorKind::Oversized,
                "oversized",
            ),
            (
                SendError::ReservedVerb(u32::MAX),
                SendErrorKind::ReservedVerb,
                "reserved_verb",
            ),
        ];
        // The table has every kind: a new variant fails to compile here until it
        // is given a place, and then the count until it is in the table.
        let place = |kind: SendErrorKind| match kind {
            SendErrorKind::Serialization => 0,
            SendErrorKind::Envelope => 1,
            SendErrorKind::UnknownPeer => 2,
            SendErrorKind::Closed => 3,
            SendErrorKind::ConnectionLost => 4,
            SendErrorKind::PeerRestarted => 5,
            SendErrorKind::NoLocalHandler => 6,
            SendErrorKind::Expired => 7,
            SendErrorKind::OverloadedLink => 8,
            SendErrorKind::OverloadedEndpoint => 9,
            SendErrorKind::OverloadedGlobal => 10,
            SendErrorKind::Oversized => 11,
            SendErrorKind::ReservedVerb => 12,
        };
        let mut names = std::collections::BTreeSet::new();
        for (i, (error, kind, name)) in table.iter().enumerate() {
            assert_eq!(place(*kind), i, "{kind:?}");
            assert_eq!(error.kind(), *kind, "{error}");
            assert_eq!(kind.as_str(), *name);
            assert_eq!(kind.to_string(), *name, "Display is the name");
            assert!(is_snake_case(name), "{name}");
            assert!(names.insert(*name), "{name} given twice");
        }
    }

    fn is_snake_case(name: &str) -> bool {
        name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('_')
            && !name.contains("__")
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }
}
