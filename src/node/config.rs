//! A node's configuration.

use std::net::SocketAddr;

use super::address::PeerAddr;
use std::time::Duration;

use crate::frame::Framing;
use crate::handshake::{ClusterKey, ClusterKeyError};
use crate::limits::Limits;
use crate::session::{BackoffConfig, HeartbeatConfig, LinkPolicy};
use crate::LinkKind;
use crate::NodeId;

/// Everything a node is started with; built with [`Node::builder`](super::Node::builder).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// This node's id, unique in the cluster.
    pub id: NodeId,
    /// The address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The listen backlog: how many connections the kernel queues (handshake done,
    /// not yet accepted) before it drops new ones (default 1024). Linux caps it at
    /// `/proc/sys/net/core/somaxconn` without saying so (4096 since Linux 5.4, 128
    /// before).
    pub listen_backlog: u32,
    /// The framing this node asks for on its outbound connections.
    pub framing: Framing,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// How long a handshake may take, on either side.
    pub handshake_timeout: Duration,
    /// Reconnect backoff: 100 ms doubling to 1 s by default, with jitter.
    pub backoff: BackoffConfig,
    /// Keepalives (one connected link per peer pings while idle), and the read
    /// timeout.
    pub heartbeat: HeartbeatConfig,
    /// Close a link's connection that carried no message for this long with nothing
    /// waiting; the link goes dormant and keeps its session (default 5 minutes;
    /// `None`: never). See [`NodeBuilder::idle_timeout`](super::NodeBuilder::idle_timeout).
    pub idle_timeout: Option<Duration>,
    /// Default timeout of requests.
    pub request_timeout: Duration,
    /// The largest message, in bytes, sent or accepted from a peer: a larger send fails
    /// with `Oversized` at once, and a larger one from a peer is dropped unread, nothing
    /// allocated for it (counted in `InboundCounters::oversized`). Default: the
    /// endpoint reserve (128 MiB).
    pub max_message: usize,
    /// Byte limits of messages being sent (link capacity, endpoint and global reserve).
    pub send_limits: Limits,
    /// Byte limits of messages received and not yet processed by their handlers.
    pub receive_limits: Limits,
    /// The deadline of messages whose type and send set none: they expire this long
    /// after they are sent. `None` (the default): they never expire.
    pub expire_after: Option<Duration>,
    /// Peers known from the start, with their listen addresses (or host names).
    pub peers: Vec<(NodeId, PeerAddr)>,
    /// What the node tells its peers to connect back to; `None`: its listen address
    /// (see [`NodeBuilder::advertise`](super::NodeBuilder::advertise)).
    pub advertise: Option<SocketAddr>,
    /// The policy of each link kind (urgent, small, large): lossless by default.
    pub link_policies: [LinkPolicy; 3],
    /// How long a close with drain waits for what is queued to be delivered before
    /// failing what remains (default 10 s).
    pub drain_timeout: Duration,
    /// How many connections the node takes at once (docs/design.md, "Connections and the handshake"): beyond
    /// them, a connection is closed as soon as it is accepted, and counted.
    pub admission: AdmissionLimits,
    /// The cluster's name (default [`DEFAULT_CLUSTER_NAME`](Self::DEFAULT_CLUSTER_NAME)):
    /// with a [secret](Self::cluster_secret), a peer must name the same cluster, and
    /// the key is derived from both.
    pub cluster_name: String,
    /// The cluster secret both sides of every connection must prove they know (see
    /// [`handshake`](crate::handshake#authentication)); `None` (the default): no
    /// authentication, any process that reaches the port can join.
    pub cluster_secret: Option<ClusterSecret>,
    /// TLS for every connection (see [`TlsConfig`](super::TlsConfig)); `None` (the
    /// default): plain TCP.
    pub tls: Option<super::TlsConfig>,
}

/// A cluster secret: bytes every node of the cluster is configured with. `Debug`
/// does not show them.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl ClusterSecret {
    /// Wraps `bytes` (checked when the node starts: a secret shorter than
    /// [`MIN_SECRET_LEN`](super::MIN_SECRET_LEN) bytes is refused). Use random bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        ClusterSecret(bytes.into())
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterSecret(<{} bytes, redacted>)", self.0.len())
    }
}

impl NodeConfig {
    /// The policy of links of `kind`.
    pub fn link_policy(&self, kind: LinkKind) -> LinkPolicy {
        self.link_policies[usize::from(kind.code())]
    }
}

impl NodeConfig {
    /// The default [listen backlog](Self::listen_backlog).
    pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;

    /// The default [cluster name](Self::cluster_name).
    pub const DEFAULT_CLUSTER_NAME: &'static str = "internode";

    /// The default [idle timeout](Self::idle_timeout): 5 minutes.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

    /// The handshake key derived from the cluster secret and name, if a secret is set.
    pub fn cluster_key(&self) -> Option<Result<ClusterKey, ClusterKeyError>> {
        self.cluster_secret
            .as_ref()
            .map(|secret| ClusterKey::derive(secret.as_bytes(), &self.cluster_name))
    }

    /// The defaults for a node with this id and listen address.
    ///
    /// ```
    /// # use internode::node::{AdmissionLimits, NodeConfig};
    /// let config = NodeConfig::new(internode::NodeId(1), "127.0.0.1:0".parse().unwrap());
    /// assert_eq!(config.admission, AdmissionLimits::default());
    /// ```
    pub fn new(id: NodeId, listen: SocketAddr) -> Self {
        NodeConfig {
            id,
            listen,
            listen_backlog: NodeConfig::DEFAULT_LISTEN_BACKLOG,
            framing: Framing::Crc,
            connect_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(2),
            backoff: BackoffConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            idle_timeout: Some(NodeConfig::DEFAULT_IDLE_TIMEOUT),
            request_timeout: Duration::from_secs(5),
            max_message: Limits::DEFAULT_ENDPOINT_RESERVE,
            send_limits: Limits::default(),
            receive_limits: Limits::default(),
            expire_after: None,
            peers: Vec::new(),
            advertise: None,
            link_policies: [LinkPolicy::Lossless; 3],
            drain_timeout: Duration::from_secs(10),
            admission: AdmissionLimits::default(),
            cluster_name: NodeConfig::DEFAULT_CLUSTER_NAME.to_owned(),
            cluster_secret: None,
            tls: None,
        }
    }
}

/// How many connections a node takes at once, so that no flood of connections (idle,
/// slow or garbage) exhausts it: connections over a limit are closed as soon as they
/// are accepted and counted in
/// [`Node::refused_connections`](crate::node::Node::refused_connections)
/// ([`RefusalReason`](crate::node::RefusalReason) `TooManyHandshakes`,
/// `TooManyFromIp`, `TooManyConnections`: `too_many_handshakes`, `too_many_from_ip`,
/// `too_many_connections`). A handshake
/// also ends at the node's handshake timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdmissionLimits {
    /// Connections accepted whose handshake is not done yet, from all sources
    /// (default 1024).
    pub handshakes: usize,
    /// Connections in handshake from one source IP address (default 256).
    pub handshakes_per_ip: usize,
    /// Established inbound connections (one per peer and link kind; default 4096).
    /// A new connection replacing a peer's own for the same link is always taken.
    pub inbound_connections: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            handshakes: 1024,
            handshakes_per_ip: 256,
            inbound_connections: 4096,
        }
    }
}

impl AdmissionLimits {
    /// These limits with at most `n` connections in handshake at once.
    pub fn handshakes(mut self, n: usize) -> Self {
        self.handshakes = n;
        self
    }

    /// These limits with at most `n` connections in handshake from one IP address.
    pub fn handshakes_per_ip(mut self, n: usize) -> Self {
        self.handshakes_per_ip = n;
        self
    }

    /// These limits with at most `n` established inbound connections.
    pub fn inbound_connections(mut self, n: usize) -> Self {
        self.inbound_connections = n;
        self
    }
}
