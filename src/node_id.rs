//! Node identity.
//!
//! Every node of a cluster has a [`NodeId`] chosen by the application and unique
//! within the cluster. It travels in the handshake, so that each side knows whom it
//! talks to and a connection that reaches its own node (a TCP self-connect) can be
//! recognised and closed.

use std::fmt;

/// The identity of one node of a cluster, chosen by the application.
///
/// ```
/// use internode::NodeId;
/// let a = NodeId(7);
/// assert_eq!(a.to_string(), "node-7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}
