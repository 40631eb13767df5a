//! Which link of each peer carries the peer's keepalive (docs/design.md, "Writing and
//! heartbeats"): the registry's bookkeeping ([`Keepers`]) and what it tells the links
//! ([`SetKeeper`]).
//!
//! The rule: of a peer's links that are connected, the urgent one if it is, else the
//! small one, else the large one is the peer's *keeper*: it pings whenever it is
//! connected, idle or not. The others ping only while they have something unconfirmed
//! (`LinkSession`'s idle rule), so an idle peer costs one keepalive per interval, not
//! three, and an idle link that is not the keeper arms no timer.
//!
//! One connection's liveness covers the others: the peer's process and the path to
//! it are the same for all three, and whatever a link sends is watched on its own
//! connection until it is confirmed. When the keeper's connection ends (a read
//! timeout: the peer went silent; or a prune, or any failure), the next connected link
//! becomes the keeper and pings from then on, so a peer that vanished is found on
//! every connection it had, one read timeout after the other, and a live one keeps
//! exactly one keepalive.
//!
//! Invariants: at most one keeper per peer is designated at any time, always a link
//! whose last reported event left it connected; a link is told only when its role
//! changes. The links hear it by message, so for a moment after a change two links
//! may ping, or none: harmless (one ping more, or one interval later).

use std::collections::HashMap;

use crate::session::LinkEvent;
use crate::{LinkKind, NodeId};

/// To a link: whether it carries its peer's keepalive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SetKeeper(pub bool);

impl actix::Message for SetKeeper {
    type Result = ();
}

/// A peer's connected links and its keeper.
#[derive(Debug, Default, Clone, Copy)]
struct PeerLinks {
    /// By [`LinkKind::code`]: whether the link reported it is connected.
    connected: [bool; 3],
    keeper: Option<LinkKind>,
}

/// The keeper of every peer with a connected link (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct Keepers {
    peers: HashMap<NodeId, PeerLinks>,
}

impl Keepers {
    /// A link of `peer` reported `event`: returns the links whose role changes, with
    /// their new role (the old keeper first), to tell with [`SetKeeper`].
    pub fn handle_event(
        &mut self,
        peer: NodeId,
        kind: LinkKind,
        event: &LinkEvent,
    ) -> Vec<(LinkKind, bool)> {
        let connected = match event {
            LinkEvent::Connected => true,
            LinkEvent::Disconnected { .. } | LinkEvent::Dormant | LinkEvent::Closed => false,
            _ => return Vec::new(),
        };
        let links = self.peers.entry(peer).or_default();
        links.connected[usize::from(kind.code())] = connected;
        let keeper = LinkKind::ALL
            .into_iter()
            .find(|k| links.connected[usize::from(k.code())]);
        let mut changes = Vec::new();
        if keeper != links.keeper {
            changes.extend(links.keeper.map(|old| (old, false)));
            changes.extend(keeper.map(|new| (new, true)));
            links.keeper = keeper;
        }
        if keeper.is_none() {
            // Nothing connected: nothing kept for the peer.
            self.peers.remove(&peer);
        }
        changes
    }

    /// The keeper of `peer`, if one of its links is connected.
    #[cfg(test)]
    pub fn keeper(&self, peer: NodeId) -> Option<LinkKind> {
        self.peers.get(&peer).and_then(|p| p.keeper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::DisconnectReason;
    use LinkKind::{Large, Small, Urgent};

    const P: NodeId = NodeId(7);

    fn lost() -> LinkEvent {
        LinkEvent::Disconnected {
            reason: DisconnectReason::read_timeout(std::time::Duration::from_secs(5)),
        }
    }

    #[test]
    fn the_urgent_link_keeps_the_peer_else_the_small_else_the_large() {
        let mut keepers = Keepers::default();
        assert_eq!(
            keepers.handle_event(P, Large, &LinkEvent::Connected),
            [(Large, true)]
        );
        assert_eq!(
            keepers.handle_event(P, Small, &LinkEvent::Connected),
            [(Large, false), (Small, true)]
        );
        assert_eq!(
            keepers.handle_event(P, Urgent, &LinkEvent::Connected),
            [(Small, false), (Urgent, true)]
        );
        // Events that change no connection change nothing.
        let retry = LinkEvent::RetryScheduled {
            attempt: 1,
            delay: std::time::Duration::from_millis(100),
        };
        assert!(keepers.handle_event(P, Small, &retry).is_empty());
        assert!(keepers
            .handle_event(P, Urgent, &LinkEvent::Connected)
            .is_empty());
        assert_eq!(keepers.keeper(P), Some(Urgent));
    }

    #[test]
    fn when_the_keeper_goes_the_next_connected_link_takes_over() {
        let mut keepers = Keepers::default();
        for kind in LinkKind::ALL {
            keepers.handle_event(P, kind, &LinkEvent::Connected);
        }
        // A non-keeper going changes nothing.
        assert!(keepers.handle_event(P, Small, &lost()).is_empty());
        assert!(keepers
            .handle_event(P, Small, &LinkEvent::Dormant)
            .is_empty());
        // The keeper goes silent: the large link takes over (and probes the peer).
        assert_eq!(
            keepers.handle_event(P, Urgent, &lost()),
            [(Urgent, false), (Large, true)]
        );
        assert_eq!(keepers.keeper(P), Some(Large));
        // The last one goes: no keeper, nothing kept for the peer.
        assert_eq!(
            keepers.handle_event(P, Large, &LinkEvent::Closed),
            [(Large, false)]
        );
        assert_eq!(keepers.keeper(P), None);
        assert!(keepers.peers.is_empty());
        // Peers are independent.
        keepers.handle_event(P, Small, &LinkEvent::Connected);
        keepers.handle_event(NodeId(8), Urgent, &LinkEvent::Connected);
        assert_eq!(keepers.keeper(P), Some(Small));
        assert_eq!(keepers.keeper(NodeId(8)), Some(Urgent));
    }
}
