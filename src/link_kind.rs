//! The three kinds of link between two nodes.
//!
//! Each pair of nodes talks over up to three independent connections, one per
//! [`LinkKind`], so that a large message never delays urgent or small ones.

use std::fmt;

/// Which of a peer's three links a connection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkKind {
    /// Small control and stability messages (heartbeats, membership).
    Urgent,
    /// Ordinary messages of at most [`LinkKind::LARGE_THRESHOLD`] bytes.
    Small,
    /// Messages above [`LinkKind::LARGE_THRESHOLD`] bytes.
    Large,
}

impl LinkKind {
    /// Messages whose encoded size is above this many bytes go over the large link.
    pub const LARGE_THRESHOLD: usize = 64 * 1024;

    /// All kinds, in wire-code order.
    pub const ALL: [LinkKind; 3] = [LinkKind::Urgent, LinkKind::Small, LinkKind::Large];

    /// The one-byte code of this kind on the wire.
    pub fn code(self) -> u8 {
        match self {
            LinkKind::Urgent => 0,
            LinkKind::Small => 1,
            LinkKind::Large => 2,
        }
    }

    /// The kind with the given wire code, if any.
    pub fn from_code(code: u8) -> Option<LinkKind> {
        LinkKind::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkKind::Urgent => "urgent",
            LinkKind::Small => "small",
            LinkKind::Large => "large",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for kind in LinkKind::ALL {
            assert_eq!(LinkKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(LinkKind::from_code(3), None);
        assert_eq!(LinkKind::from_code(255), None);
    }
}
