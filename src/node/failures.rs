//! The failed-message feed: [`FailedMessage`], one per message a link took and could
//! not deliver, for applications that send without awaiting each outcome
//! ([`Node::subscribe_failures`](super::Node::subscribe_failures)).
//!
//! Invariants: a link reports each message that ends in an error to every subscriber
//! it knows, once, when the outcome is decided (the same moment the sender's future
//! resolves and the link's `failed` counters count it); a subscriber added later hears
//! of failures from then on. The registry keeps the subscribers and hands each link
//! the current list (when the link is created and whenever the list changes), so a
//! failure costs one actix message per subscriber and nothing when there are none.
//! Failures returned by the call itself (a message that never reached a link: it did
//! not encode, no address is known, its deadline passed while it waited for credit)
//! go to the caller only. Internode's own control messages are never reported.

use std::sync::Arc;

use actix::{Message, Recipient};

use crate::outcome::SendError;
use crate::{LinkKind, NodeId};

/// A message a link took and could not deliver: to whom, over which link, what it
/// was, and why.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FailedMessage {
    /// The peer it was for.
    pub peer: NodeId,
    /// The link it was queued on.
    pub link: LinkKind,
    /// Its verb (the message type's [`VERB`](crate::message::Message::VERB)).
    pub verb: u32,
    /// Its payload and parameters, in bytes.
    pub bytes: usize,
    /// Why it failed ([`SendError::kind`] for a label).
    pub error: SendError,
}

impl Message for FailedMessage {
    type Result = ();
}

/// The subscribers to a node's failed-message feed, as a link holds them.
#[derive(Clone, Default)]
pub(crate) struct FailureFeed(Arc<[Recipient<FailedMessage>]>);

impl FailureFeed {
    /// The feed with `recipient` added, and without the subscribers that stopped.
    pub fn with(&self, recipient: Recipient<FailedMessage>) -> FailureFeed {
        let live = self.0.iter().filter(|r| r.connected()).cloned();
        FailureFeed(live.chain(std::iter::once(recipient)).collect())
    }

    /// Whether anyone listens.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Tells every subscriber.
    pub fn report(&self, failed: FailedMessage) {
        if let Some((last, others)) = self.0.split_last() {
            for r in others {
                r.do_send(failed.clone());
            }
            last.do_send(failed);
        }
    }
}

/// The registry hands a link the current subscribers.
pub(crate) struct SetFailureFeed(pub FailureFeed);

impl Message for SetFailureFeed {
    type Result = ();
}

/// Adds a subscriber (to the registry).
pub(crate) struct SubscribeFailures(pub Recipient<FailedMessage>);

impl Message for SubscribeFailures {
    type Result = ();
}
