//! Where a peer listens: [`PeerAddr`], a socket address or a host name and port.
//!
//! Invariants: a host name is resolved on every connect attempt, never cached by the
//! node, so a peer that comes back on another IP (a rescheduled pod, a replaced
//! host) is found at the next retry; resolution runs on the runtime's blocking pool
//! (`tokio::net::lookup_host`), never on the node's thread; its failure is a
//! [`DisconnectReason::Resolve`] like any failed attempt (retried with backoff). The
//! resolved addresses are tried in the order the resolver gives them, each with the
//! node's connect timeout, until one connects.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::session::DisconnectReason;

/// Where a peer listens: a socket address, or a host name resolved at every connect
/// attempt.
///
/// ```
/// use internode::node::PeerAddr;
///
/// let by_ip: PeerAddr = "10.0.0.7:23001".parse().unwrap();
/// assert_eq!(by_ip, PeerAddr::Socket("10.0.0.7:23001".parse().unwrap()));
/// let by_name: PeerAddr = "node-2.cluster.svc:23001".parse().unwrap();
/// assert_eq!(by_name, PeerAddr::host("node-2.cluster.svc", 23001));
/// assert_eq!(by_name.to_string(), "node-2.cluster.svc:23001");
/// assert!("node-2".parse::<PeerAddr>().is_err()); // no port
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// An IP address and port.
    Socket(SocketAddr),
    /// A host name (resolved on every connect attempt) and port.
    Host {
        /// The name, as the resolver takes it (a DNS name or an `/etc/hosts` entry).
        name: String,
        /// The port.
        port: u16,
    },
}

impl PeerAddr {
    /// The host `name` at `port`.
    pub fn host(name: impl Into<String>, port: u16) -> Self {
        PeerAddr::Host {
            name: name.into(),
            port,
        }
    }

    /// The addresses to try, in order: this one, or what the name resolves to now.
    pub(crate) async fn resolve(&self) -> Result<Vec<SocketAddr>, DisconnectReason> {
        match self {
            PeerAddr::Socket(addr) => Ok(vec![*addr]),
            PeerAddr::Host { name, port } => {
                let found: Vec<_> = tokio::net::lookup_host((name.as_str(), *port))
                    .await
                    .map_err(|e| {
                        log::debug!("cannot resolve {name}: {e}");
                        DisconnectReason::Resolve(e.kind())
                    })?
                    .collect();
                if found.is_empty() {
                    return Err(DisconnectReason::Resolve(std::io::ErrorKind::NotFound));
                }
                Ok(found)
            }
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        PeerAddr::Socket(addr)
    }
}

impl From<(&str, u16)> for PeerAddr {
    fn from((name, port): (&str, u16)) -> Self {
        match name.parse() {
            Ok(ip) => PeerAddr::Socket(SocketAddr::new(ip, port)),
            Err(_) => PeerAddr::host(name, port),
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Socket(addr) => write!(f, "{addr}"),
            PeerAddr::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

/// Why a string is not a [`PeerAddr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerAddrError {
    /// No `:port` at the end.
    #[error("no port (expected host:port)")]
    MissingPort,
    /// The port is not a number from 0 to 65535.
    #[error("bad port {0:?}")]
    BadPort(String),
    /// The host name is empty or has characters no host name has.
    #[error("bad host name {0:?}")]
    BadHost(String),
}

impl FromStr for PeerAddr {
    type Err = PeerAddrError;

    /// `ip:port`, `[ipv6]:port` or `name:port`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(PeerAddr::Socket(addr));
        }
        let (name, port) = s.rsplit_once(':').ok_or(PeerAddrError::MissingPort)?;
        let port = port
            .parse::<u16>()
            .map_err(|_| PeerAddrError::BadPort(port.to_string()))?;
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if name.is_empty() || !name.chars().all(valid) {
            return Err(PeerAddrError::BadHost(name.to_string()));
        }
        Ok(PeerAddr::from((name, port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_names_and_refuses_the_rest() {
        assert_eq!(
            "[::1]:7000".parse(),
            Ok(PeerAddr::Socket("[::1]:7000".parse().unwrap()))
        );
        assert_eq!("db_1:9".parse(), Ok(PeerAddr::host("db_1", 9)));
        assert_eq!(
            "node:70000".parse::<PeerAddr>(),
            Err(PeerAddrError::BadPort("70000".into()))
        );
        assert_eq!(
            ":80".parse::<PeerAddr>(),
            Err(PeerAddrError::BadHost(String::new()))
        );
        assert_eq!(
            "a b:80".parse::<PeerAddr>(),
            Err(PeerAddrError::BadHost("a b".into()))
        );
        assert_eq!(
            "localhost".parse::<PeerAddr>(),
            Err(PeerAddrError::MissingPort)
        );
        // An IP given as a name is an address.
        assert_eq!(
            PeerAddr::from(("127.0.0.1", 5)),
            PeerAddr::Socket("127.0.0.1:5".parse().unwrap())
        );
    }

    #[actix::test]
    async fn a_name_resolves_now_and_a_bad_one_is_a_disconnect_reason() {
        let found = PeerAddr::host("localhost", 4000).resolve().await.unwrap();
        assert!(found
            .iter()
            .all(|a| a.port() == 4000 && a.ip().is_loopback()));
        let missing = PeerAddr::host("no-such-host.invalid", 4000).resolve().await;
        assert!(matches!(missing, Err(DisconnectReason::Resolve(_))));
    }
}
