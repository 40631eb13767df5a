//! TLS for a node's connections: rustls with the ring provider, TLS 1.3 only,
//! mutual, every certificate checked against the cluster's CA.
//!
//! A node started with a [`TlsConfig`] accepts only TLS and connects only with TLS.
//!
//! **Identity.** The certificate of node `id` in the cluster `name` must carry the
//! DNS subject alternative name `node-<id>.<name>` ([`TlsConfig::subject_name`]; for
//! node 7 of the default cluster, `node-7.internode`). So:
//! - dialing node 7, the node asks for the server name `node-7.<name>`: rustls checks
//!   the acceptor's chain against the CA and that it names node 7;
//! - accepting, rustls checks the initiator's chain against the CA (a client without
//!   a certificate is refused); once the Hello says which node the initiator is, the
//!   listener checks that the certificate names that node, before the registry, an
//!   actor or the address book hears of it;
//! - at start, the node checks its own chain as its peers will (the name, the CA,
//!   the dates, use as a TLS server and client), so a misconfigured node fails at
//!   once rather than being refused by every peer.
//!
//! A certificate therefore proves one node id in one cluster: a node holding the
//! certificate of node 3 cannot pass for node 2, and a certificate of another CA or
//! one outside its validity dates is refused (by the side that checks it: in TLS 1.3
//! an initiator learns that its certificate was refused only at its first read).
//! This holds as long as the CA issues each node exactly one `node-<id>` name and no
//! wildcard: with a cluster name of several labels (`prod.example`), a certificate
//! for `*.prod.example` would pass for every node. Clusters sharing a CA must have
//! distinct names.
//!
//! Every connection makes a full handshake: session resumption is off on both sides
//! (a resumed session skips the chain and date checks, so an expired peer could
//! rejoin on tickets), and links are long-lived. The server name is checked but not
//! sent (no SNI): it would tell an observer who talks to whom. A handshake costs the
//! accepting node a key exchange and a signature on its thread; the admission limits
//! bound how many run at once, not how many a second.
//!
//! **Channel binding.** Both ends take 32 bytes of the connection's exporter (label
//! `EXPORTER-Channel-Binding`, no context: RFC 9266) and, with a cluster secret, bind
//! the handshake proofs to them (see
//! [`Acceptor::bind_to_channel`](crate::handshake::Acceptor::bind_to_channel)).
//!
//! Failures are [`TlsFailure`]s: a dial's disconnect reason, a refused connection's
//! counted reason ([`RefusalReason::Tls`](crate::node::RefusalReason::Tls)).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use super::transport::{io_reason, Stream};
use crate::handshake::ChannelBinding;
use crate::session::{DisconnectReason, TlsFailure};
use crate::NodeId;

/// The exporter label of RFC 9266's `tls-exporter` channel binding.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// A node's TLS configuration: its certificate chain and private key, and the
/// cluster's CA. Built once (the rustls configurations are made here) and cheap to
/// clone. Set with [`NodeBuilder::tls`](super::NodeBuilder::tls).
///
/// ```no_run
/// use internode::node::{Node, TlsConfig};
/// use internode::NodeId;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // node-1.pem must name "node-1.internode" (the default cluster name).
/// let tls = TlsConfig::from_pem_files("node-1.pem", "node-1.key", "ca.pem")?;
/// let node = Node::builder(NodeId(1), "0.0.0.0:7000".parse()?)
///     .tls(tls)
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
///
/// The name a node's certificate must carry:
///
/// ```
/// # use internode::node::TlsConfig;
/// assert_eq!(
///     TlsConfig::subject_name(internode::NodeId(7), "internode").unwrap(),
///     "node-7.internode"
/// );
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    /// The node's own chain (its certificate first), checked at start.
    chain: Arc<Vec<CertificateDer<'static>>>,
    /// The verifiers the configurations use, to check the node's own chain with.
    client_verifier: Arc<dyn ClientCertVerifier>,
    server_verifier: Arc<WebPkiServerVerifier>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("protocol", &"TLS 1.3, mutual")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Caller error: a TLS configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {kind}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        kind: io::ErrorKind,
    },
    /// A PEM input holds no certificate (`what`: the chain or the CA).
    #[error("no certificate in the {what}")]
    NoCertificate {
        /// Which input.
        what: &'static str,
    },
    /// A PEM input is malformed.
    #[error("the {what} is not valid PEM")]
    Pem {
        /// Which input.
        what: &'static str,
    },
    /// The key input holds no private key.
    #[error("no private key in the key input")]
    NoPrivateKey,
    /// rustls refused a certificate, the key, or their combination.
    #[error("rustls refused the configuration: {0}")]
    Rustls(rustls::Error),
    /// The CA certificates make no usable verifier.
    #[error("the CA certificates make no usable verifier")]
    Verifier,
    /// The cluster name cannot be part of a DNS name, so no certificate can name a
    /// node of it.
    #[error("the cluster name {0:?} cannot be part of a DNS name")]
    ClusterName(String),
    /// The node's own certificate does not carry the name it must
    /// ([`TlsConfig::subject_name`]).
    #[error("this node's certificate does not name {name}")]
    NotThisNode {
        /// The name it must carry.
        name: String,
    },
    /// The node's own chain would be refused by its peers (expired, not issued by
    /// the CA, not usable as a TLS server or client).
    #[error("its peers would refuse this node's chain: {0}")]
    OwnCertificate(TlsFailure),
}

impl TlsConfig {
    /// From DER certificates: the node's `chain` (its own certificate first), its
    /// `key`, and the `ca` certificates every peer's chain must lead to.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca: Vec<CertificateDer<'static>>,
    ) -> Result<TlsConfig, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { what: "chain" });
        }
        if ca.is_empty() {
            return Err(TlsError::NoCertificate { what: "CA" });
        }
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots.add(cert).map_err(TlsError::Rustls)?;
        }
        let roots = Arc::new(roots);
        // ring: no C toolchain or CMake to build it. It has no
        // post-quantum key exchange (rustls deprecates it for that since 0.23.48).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = &[&rustls::version::TLS13];

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|_| TlsError::Verifier)?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(TlsError::Rustls)?
            .with_client_cert_verifier(client_verifier.clone())
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(TlsError::Rustls)?;
        // No resumption: a resumed session skips the peer's chain and dates, so a
        // peer whose certificate has expired could rejoin on tickets forever. Links
        // are long-lived; a full handshake per connection costs little.
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;

        let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|_| TlsError::Verifier)?;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(TlsError::Rustls)?
            .with_webpki_verifier(server_verifier.clone())
            .with_client_auth_cert(chain.clone(), key)
            .map_err(TlsError::Rustls)?;
        client.resumption = rustls::client::Resumption::disabled();
        // The server name (`node-<id>.<cluster>`) is checked in the server's
        // certificate but not sent in clear: it would tell an observer who talks
        // to whom. The acceptor has one certificate and needs no SNI.
        client.enable_sni = false;

        Ok(TlsConfig {
            client: Arc::new(client),
            server: Arc::new(server),
            chain: Arc::new(chain),
            client_verifier,
            server_verifier,
        })
    }

    /// From PEM: the node's certificate chain, its private key (PKCS#8, PKCS#1 or
    /// SEC1) and the CA certificates.
    pub fn from_pem(chain: &[u8], key: &[u8], ca: &[u8]) -> Result<TlsConfig, TlsError> {
        let certs = |pem: &[u8], what| {
            CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| TlsError::Pem { what })
        };
        let chain = certs(chain, "chain")?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { what: "chain" });
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey,
            _ => TlsError::Pem { what: "key" },
        })?;
        TlsConfig::new(chain, key, certs(ca, "CA")?)
    }

    /// From PEM files, as [`from_pem`](Self::from_pem).
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| TlsError::Read {
                path: path.to_owned(),
                kind: e.kind(),
            })
        };
        TlsConfig::from_pem(
            &read(chain.as_ref())?,
            &read(key.as_ref())?,
            &read(ca.as_ref())?,
        )
    }

    /// The DNS name the certificate of node `id` in the cluster `cluster` must carry
    /// as a subject alternative name: `node-<id>.<cluster>`.
    pub fn subject_name(id: NodeId, cluster: &str) -> Result<String, TlsError> {
        let name = format!("node-{}.{cluster}", id.0);
        match ServerName::try_from(name.as_str()) {
            Ok(ServerName::DnsName(_)) => Ok(name),
            _ => Err(TlsError::ClusterName(cluster.to_owned())),
        }
    }

    /// Checks this node's own chain as its peers will: it names node `id` of
    /// `cluster`, leads to the CA, is within its dates, and may serve both as a TLS
    /// server and as a client.
    pub(crate) fn check_own(&self, id: NodeId, cluster: &str) -> Result<(), TlsError> {
        let name = TlsConfig::subject_name(id, cluster)?;
        let (leaf, intermediates) = self
            .chain
            .split_first()
            .ok_or(TlsError::NoCertificate { what: "chain" })?;
        check_name(leaf, &name).map_err(|_| TlsError::NotThisNode { name: name.clone() })?;
        let server_name =
            ServerName::try_from(name).map_err(|_| TlsError::ClusterName(cluster.to_owned()))?;
        let now = UnixTime::now();
        let own = |e: rustls::Error| TlsError::OwnCertificate(failure(&e));
        self.server_verifier
            .verify_server_cert(leaf, intermediates, &server_name, &[], now)
            .map_err(own)?;
        self.client_verifier
            .verify_client_cert(leaf, intermediates, now)
            .map_err(own)?;
        Ok(())
    }

    /// The TLS handshake of a dialed connection to node `peer` of `cluster`: the
    /// stream and its channel binding.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
        peer: NodeId,
        cluster: &str,
    ) -> Result<(Stream, ChannelBinding), DisconnectReason> {
        let name = TlsConfig::subject_name(peer, cluster)
            .ok()
            .and_then(|name| ServerName::try_from(name).ok())
            .ok_or(DisconnectReason::Tls(TlsFailure::Other))?;
        let tls = TlsConnector::from(self.client.clone())
            .connect(name, tcp)
            .await
            .map_err(io_reason)?;
        let binding = binding(tls.get_ref().1.export_keying_material(
            [0; 32],
            EXPORTER_LABEL,
            None,
        ))?;
        Ok((Stream::Tls(Box::new(TlsStream::Client(tls))), binding))
    }

    /// The TLS handshake of an accepted connection: the stream, its channel binding
    /// and the peer's certificate (checked against the CA, not yet against a node
    /// id: see [`check_peer`](Self::check_peer)).
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(Stream, ChannelBinding, CertificateDer<'static>), DisconnectReason> {
        let tls = TlsAcceptor::from(self.server.clone())
            .accept(tcp)
            .await
            .map_err(io_reason)?;
        let conn = tls.get_ref().1;
        let binding = binding(conn.export_keying_material([0; 32], EXPORTER_LABEL, None))?;
        let cert = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .cloned()
            .ok_or(DisconnectReason::Tls(TlsFailure::NoCertificate))?;
        Ok((Stream::Tls(Box::new(TlsStream::Server(tls))), binding, cert))
    }

    /// Checks that `cert` (a peer's, verified by [`accept`](Self::accept)) names
    /// node `id` of `cluster`.
    pub(crate) fn check_peer(
        cert: &CertificateDer<'_>,
        id: NodeId,
        cluster: &str,
    ) -> Result<(), TlsFailure> {
        let name = TlsConfig::subject_name(id, cluster).map_err(|_| TlsFailure::WrongIdentity)?;
        check_name(cert, &name)
    }
}

/// Whether `cert` carries the DNS name `name`.
fn check_name(cert: &CertificateDer<'_>, name: &str) -> Result<(), TlsFailure> {
    let parsed = ParsedCertificate::try_from(cert).map_err(|_| TlsFailure::UntrustedCertificate)?;
    let name = ServerName::try_from(name).map_err(|_| TlsFailure::WrongIdentity)?;
    rustls::client::verify_server_name(&parsed, &name).map_err(|_| TlsFailure::WrongIdentity)
}

fn binding(
    exported: Result<ChannelBinding, rustls::Error>,
) -> Result<ChannelBinding, DisconnectReason> {
    exported.map_err(|e| DisconnectReason::Tls(failure(&e)))
}

/// The TLS failure an I/O error from a TLS stream carries, if any.
pub(crate) fn failure_of(e: &io::Error) -> Option<TlsFailure> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(failure)
}

/// What a rustls error says of the peer.
fn failure(e: &rustls::Error) -> TlsFailure {
    use rustls::Error;
    match e {
        Error::InvalidCertificate(cert) => match cert {
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::CertificateExpired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::WrongIdentity
            }
            _ => TlsFailure::UntrustedCertificate,
        },
        Error::NoCertificatesPresented => TlsFailure::NoCertificate,
        Error::AlertReceived(_) => TlsFailure::RefusedByPeer,
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
        | Error::PeerMisbehaved(_)
        | Error::PeerSentOversizedRecord
        | Error::DecryptError => TlsFailure::NotTls,
        _ => TlsFailure::Other,
    }
}
