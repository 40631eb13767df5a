//! A node's configuration.

use std::net::SocketAddr;
use std::time::Duration;

use crate::frame::Framing;
use crate::session::{BackoffConfig, HeartbeatConfig};
use crate::NodeId;

/// Everything a node is started with; built with [`Node::builder`](super::Node::builder).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id, unique in the cluster.
    pub id: NodeId,
    /// The address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The framing this node asks for on its outbound connections.
    pub framing: Framing,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// How long a handshake may take, on either side.
    pub handshake_timeout: Duration,
    /// Reconnect backoff: 100 ms doubling to 1 s by default, with jitter.
    pub backoff: BackoffConfig,
    /// Keepalives on idle connections, and the read timeout.
    pub heartbeat: HeartbeatConfig,
    /// Default timeout of requests.
    pub request_timeout: Duration,
    /// The largest message accepted from a peer, in bytes.
    pub max_message: usize,
    /// Peers known from the start, with their listen addresses.
    pub peers: Vec<(NodeId, SocketAddr)>,
}

impl NodeConfig {
    /// The defaults for a node with this id and listen address.
    pub fn new(id: NodeId, listen: SocketAddr) -> Self {
        NodeConfig {
            id,
            listen,
            framing: Framing::Crc,
            connect_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(2),
            backoff: BackoffConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            request_timeout: Duration::from_secs(5),
            max_message: 128 * 1024 * 1024,
            peers: Vec::new(),
        }
    }
}
