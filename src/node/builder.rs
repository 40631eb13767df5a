//! Building and starting a node: [`NodeBuilder`], [`StartError`], and the checks a
//! configuration passes before anything listens.

use std::net::SocketAddr;

use super::address::PeerAddr;
use std::time::Duration;

use super::{AdmissionLimits, ClusterSecret, LinkPolicy, Node, NodeConfig, TlsConfig, TlsError};
use crate::frame::Framing;
use crate::limits::Limits;
use crate::session::{BackoffConfig, HeartbeatConfig};
use crate::{LinkKind, NodeId};

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why (`error.kind()` is `AddrInUse` when another process holds it).
        error: std::io::Error,
    },
    /// The cluster secret or name cannot be used (an empty secret, a name too long).
    #[error("invalid cluster secret: {0}")]
    ClusterSecret(crate::handshake::ClusterKeyError),
    /// The cluster secret is shorter than [`MIN_SECRET_LEN`] bytes: too guessable.
    #[error("the cluster secret has {len} bytes, fewer than the {min} required", min = MIN_SECRET_LEN)]
    SecretTooShort {
        /// Its length.
        len: usize,
    },
    /// The TLS configuration cannot be used for this node (its certificate does not
    /// name it, the cluster name cannot be part of a DNS name).
    #[error("invalid TLS configuration: {0}")]
    Tls(TlsError),
    /// [`Framing::Unprotected`] (no payload CRC) was asked for without TLS, which is
    /// what would protect the payload's integrity instead.
    #[error("unprotected framing needs TLS")]
    UnprotectedWithoutTls,
}

/// Builds and starts a [`Node`]; see [`Node::builder`].
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    config: NodeConfig,
    /// The maximum message size was set explicitly (it no longer follows the limits).
    max_message_set: bool,
}

impl NodeBuilder {
    pub(super) fn new(config: NodeConfig) -> Self {
        NodeBuilder {
            config,
            max_message_set: false,
        }
    }

    /// The framing of this node's outbound connections.
    pub fn framing(mut self, framing: Framing) -> Self {
        self.config.framing = framing;
        self
    }

    /// How long a TCP connect may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long a handshake may take.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// Reconnect backoff.
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// Keepalive interval and read timeout. Per peer one connected link pings at the
    /// interval (its keeper: the urgent link if connected, else the small, else the
    /// large); the others only while they have something unconfirmed
    /// (docs/design.md, "Writing and heartbeats").
    pub fn heartbeat(mut self, heartbeat: HeartbeatConfig) -> Self {
        self.config.heartbeat = heartbeat;
        self
    }

    /// How long a link's connection may carry no message (written or acknowledged;
    /// keepalives do not count), with nothing waiting, before the link closes it and
    /// goes dormant (default [`NodeConfig::DEFAULT_IDLE_TIMEOUT`], 5 minutes). The link
    /// keeps its session: its next message reconnects and resumes it, without loss and
    /// without `PeerRestarted`. `None`: idle connections stay open (and their keeper
    /// keeps pinging).
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = internode::node::Node::builder(internode::NodeId(1), "127.0.0.1:0".parse().unwrap());
    /// let quick = builder.clone().idle_timeout(Duration::from_secs(30));
    /// assert_eq!(quick.config().idle_timeout, Some(Duration::from_secs(30)));
    /// let never = builder.idle_timeout(None);
    /// assert_eq!(never.config().idle_timeout, None);
    /// ```
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.idle_timeout = timeout.into();
        self
    }

    /// Default timeout of requests.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// The byte limits of both directions (link capacity, endpoint and global
    /// reserve; default 4 MiB, 128 MiB, 512 MiB).
    ///
    /// Unless [`max_message`](Self::max_message) is set, the maximum message size
    /// follows the endpoint reserve of sending.
    pub fn limits(self, limits: Limits) -> Self {
        self.send_limits(limits).receive_limits(limits)
    }

    /// The byte limits of messages being sent (and, unless set on its own, the
    /// maximum message size: the endpoint reserve).
    pub fn send_limits(mut self, limits: Limits) -> Self {
        self.config.send_limits = limits;
        if !self.max_message_set {
            self.config.max_message = limits.endpoint_reserve;
        }
        self
    }

    /// The byte limits of messages received and not yet processed by their handlers.
    pub fn receive_limits(mut self, limits: Limits) -> Self {
        self.config.receive_limits = limits;
        self
    }

    /// The largest message sent or accepted, in bytes.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.config.max_message = bytes;
        self.max_message_set = true;
        self
    }

    /// The deadline of messages whose type and send set none.
    pub fn expire_after(mut self, after: Duration) -> Self {
        self.config.expire_after = Some(after);
        self
    }

    /// The policy of the links of `kind` (all are [`LinkPolicy::Lossless`] unless
    /// set).
    pub fn link_policy(mut self, kind: LinkKind, policy: LinkPolicy) -> Self {
        self.config.link_policies[usize::from(kind.code())] = policy;
        self
    }

    /// How long a close with drain waits for what is queued to be delivered before
    /// failing what remains (default 10 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.config.drain_timeout = timeout;
        self
    }

    /// How many connections the node takes at once ([`AdmissionLimits`]).
    pub fn admission(mut self, limits: AdmissionLimits) -> Self {
        self.config.admission = limits;
        self
    }

    /// The listen backlog: how many connections the kernel queues before the node
    /// accepts them (default 1024); a connect beyond it is dropped and retried by the
    /// client's TCP a second or more later. Linux caps it at
    /// `/proc/sys/net/core/somaxconn` (4096 since Linux 5.4, 128 before).
    pub fn listen_backlog(mut self, backlog: u32) -> Self {
        self.config.listen_backlog = backlog;
        self
    }

    /// The cluster secret: every connection, in both directions, then authenticates
    /// in its handshake (each side proves it knows the secret; the secret never
    /// travels), and a peer without it, or with another, never gets past the
    /// handshake. Use at least 32 random bytes: a shorter secret makes
    /// [`start`](Self::start) fail. Without a TLS link an on-path attacker can still
    /// relay a handshake and then tamper with the stream (see
    /// [`handshake`](crate::handshake#authentication)).
    pub fn cluster_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.config.cluster_secret = Some(ClusterSecret::new(secret));
        self
    }

    /// The cluster secret, read from a file: its bytes, without one final line ending
    /// (`\n` or `\r\n`). An empty secret is an error of kind `InvalidData`.
    pub fn cluster_secret_file(
        self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Self, std::io::Error> {
        let mut bytes = std::fs::read(path)?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the cluster secret file is empty",
            ));
        }
        Ok(self.cluster_secret(bytes))
    }

    /// The cluster's name (default `"internode"`): with a cluster secret, peers must
    /// name the same cluster (a node of another cluster is refused as such), and the
    /// handshake key depends on it. At most
    /// [`MAX_CLUSTER_NAME_LEN`](crate::handshake::MAX_CLUSTER_NAME_LEN) bytes.
    pub fn cluster_name(mut self, name: impl Into<String>) -> Self {
        self.config.cluster_name = name.into();
        self
    }

    /// TLS for every connection, both ways (see [`TlsConfig`] for what is checked):
    /// the node then accepts only TLS and connects only with TLS, and its
    /// certificate must name it (`node-<id>.<cluster name>`, else
    /// [`start`](Self::start) fails). With a [cluster secret](Self::cluster_secret)
    /// too, the handshake's proofs are bound to each TLS connection.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// A peer known from the start, at a socket address or a host name and port
    /// (resolved at every connect attempt; see [`PeerAddr`]).
    pub fn peer(mut self, id: NodeId, addr: impl Into<PeerAddr>) -> Self {
        self.config.peers.push((id, addr.into()));
        self
    }

    /// The address this node tells its peers to connect back to (in its Hello):
    /// where it can be reached from them, when that is not the address it listens
    /// on (a node bound to `0.0.0.0`, behind a NAT or a port mapping). Without it, a
    /// node announces its listen address; one bound to an unspecified address then
    /// announces only its port, and peers that learn its address from a connection
    /// take the IP the connection came from.
    pub fn advertise(mut self, addr: SocketAddr) -> Self {
        self.config.advertise = Some(addr);
        self
    }

    /// The configuration as built so far.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Binds the listen address and starts the node's actors. Must be called inside
    /// a running actix `System`.
    pub async fn start(self) -> Result<Node, StartError> {
        Node::start(self.config).await
    }
}

/// Binds `addr` with SO_REUSEADDR (as `TcpListener::bind` does) and listens with
/// `backlog`.
pub(super) fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The shortest cluster secret a node starts with, in bytes: 32 random bytes are
/// beyond guessing (shorter ones, typed by people, often are not).
pub const MIN_SECRET_LEN: usize = 32;

/// Checks what the types cannot: the secret and cluster name, the TLS configuration
/// against this node's id, unprotected framing only over TLS. Warns (once, here)
/// when nothing authenticates peers.
pub(super) fn check(config: &NodeConfig) -> Result<(), StartError> {
    if let Some(key) = config.cluster_key() {
        key?;
    }
    if let Some(secret) = &config.cluster_secret {
        let len = secret.as_bytes().len();
        if len < MIN_SECRET_LEN {
            return Err(StartError::SecretTooShort { len });
        }
    }
    match &config.tls {
        Some(tls) => tls.check_own(config.id, &config.cluster_name)?,
        None if config.framing == Framing::Unprotected => {
            return Err(StartError::UnprotectedWithoutTls)
        }
        None => {}
    }
    if config.cluster_secret.is_none() && config.tls.is_none() {
        log::warn!(
            "{}: no cluster secret and no TLS: any process that reaches the port can join",
            config.id
        );
    }
    Ok(())
}

// By hand rather than `#[from]`, which would also make the cause the error's
// `source()` (printed twice in an error chain): the message carries it.
impl From<crate::handshake::ClusterKeyError> for StartError {
    fn from(e: crate::handshake::ClusterKeyError) -> Self {
        StartError::ClusterSecret(e)
    }
}

impl From<TlsError> for StartError {
    fn from(e: TlsError) -> Self {
        StartError::Tls(e)
    }
}
