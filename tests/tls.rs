//! TLS over real sockets: nodes of one CA talk (alone, with a cluster secret bound to
//! the channel, with unprotected framing); a plaintext peer, a certificate of another
//! CA, an expired certificate, a certificate of another node, and a client without a
//! certificate are each refused in the handshake, counted by reason, deliver
//! nothing and have no address learned. Lossless links over TLS survive cuts and
//! corrupted records.
#![cfg(feature = "serde")]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use internode::frame::Framing;
use internode::handshake::{HandshakeError, Reject, RejectReason};
use internode::node::{
    NodeBuilder, RefusalReason, SendError, Sent, StartError, TlsConfig, TlsError,
};
use internode::session::{DisconnectReason, TlsFailure};
use internode::NodeId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::certs::{Ca, NodeCert};
use support::{
    bounded, builder, collect, hello, hello_bytes, recv_n, refused, serve, within, Events, Incr,
    Incremented, Seq,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLUSTER: &str = "internode";

/// A node of `ca`'s cluster, with its own certificate.
fn tls_node(ca: &Ca, id: u64) -> NodeBuilder {
    builder(id).tls(ca.config(&ca.node(id, CLUSTER)))
}

#[actix::test]
async fn nodes_of_one_ca_deliver_both_ways_and_answer_requests() {
    bounded(async {
        let ca = Ca::new("cluster CA");
        for (n, secret) in [None, Some(b"a secret of thirty-two bytes!!!!".to_vec())]
            .into_iter()
            .enumerate()
        {
            let with = |b: NodeBuilder| match &secret {
                Some(s) => b.cluster_secret(s.clone()),
                None => b,
            };
            let b = with(tls_node(&ca, 2)).start().await.unwrap();
            let mut inbox = collect::<Seq>(&b);
            serve::<Incr>(&b, |_, Incr(n)| Ok(Incremented(n + 1)));
            let a = with(tls_node(&ca, 1)).start().await.unwrap();
            a.add_peer(NodeId(2), b.local_addr()).await;
            let to_b = a.peer(NodeId(2));
            let outcomes: Vec<_> = (0..50).map(|seq| to_b.send(Seq(seq))).collect();
            for outcome in support::join_all(outcomes).await {
                assert_eq!(outcome, Ok(Sent::Acknowledged), "case {n}");
            }
            let expected: Vec<_> = (0..50).map(|seq| (NodeId(1), Seq(seq))).collect();
            assert_eq!(recv_n(&mut inbox, 50).await, expected, "case {n}");
            let answer = to_b.request(Incr(41)).await;
            assert_eq!(answer, Ok(Incremented(42)), "case {n}");
            // Back over b's own link to a (it learned a's address from the Hello).
            let mut back = collect::<Seq>(&a);
            assert_eq!(b.send(NodeId(1), Seq(99)).await, Ok(Sent::Acknowledged));
            assert_eq!(recv_n(&mut back, 1).await, vec![(NodeId(2), Seq(99))]);
            assert_eq!(b.refused_connections().await, BTreeMap::new(), "case {n}");
            a.close(false).await;
            b.close(false).await;
        }
    })
    .await;
}

#[actix::test]
async fn unprotected_framing_runs_over_tls_only() {
    bounded(async {
        assert!(matches!(
            builder(1).framing(Framing::Unprotected).start().await,
            Err(StartError::UnprotectedWithoutTls)
        ));
        let ca = Ca::new("cluster CA");
        let b = tls_node(&ca, 2).start().await.unwrap();
        let mut inbox = collect::<Seq>(&b);
        let a = tls_node(&ca, 1)
            .framing(Framing::Unprotected)
            .start()
            .await
            .unwrap();
        a.add_peer(NodeId(2), b.local_addr()).await;
        assert_eq!(a.send(NodeId(2), Seq(1)).await, Ok(Sent::Acknowledged));
        assert_eq!(recv_n(&mut inbox, 1).await, vec![(NodeId(1), Seq(1))]);

        // A plaintext node refuses a Hello asking for it.
        let plain = builder(3).start().await.unwrap();
        let mut raw = TcpStream::connect(plain.local_addr()).await.unwrap();
        let mut unprotected = hello(4);
        unprotected.framing = Framing::Unprotected;
        raw.write_all(&hello_bytes(&unprotected)).await.unwrap();
        let answer = read_to_end(&mut raw).await;
        assert_eq!(
            Reject::decode(&answer).map(|r| r.reason),
            Ok(RejectReason::UnsupportedFraming)
        );
    })
    .await;
}

#[actix::test]
async fn start_refuses_a_certificate_that_does_not_name_the_node() {
    bounded(async {
        let ca = Ca::new("cluster CA");
        let of_node_3 = ca.config(&ca.node(3, CLUSTER));
        assert_eq!(
            builder(1)
                .tls(of_node_3.clone())
                .start()
                .await
                .err()
                .map(|e| e.to_string()),
            Some(StartError::Tls(TlsError::NotThisNode {
                name: "node-1.internode".into()
            }))
            .map(|e| e.to_string())
        );
        // Another cluster's name is another identity.
        assert!(matches!(
            builder(3)
                .tls(of_node_3)
                .cluster_name("other")
                .start()
                .await,
            Err(StartError::Tls(TlsError::NotThisNode { .. }))
        ));
        assert!(matches!(
            TlsConfig::subject_name(NodeId(1), "not a DNS name"),
            Err(TlsError::ClusterName(_))
        ));
        assert!(matches!(
            TlsConfig::from_pem(b"", b"", b""),
            Err(TlsError::NoCertificate { what: "chain" })
        ));
        // A node whose own certificate its peers would refuse does not start.
        let expired = ca.config(&ca.expired_node(1, CLUSTER));
        assert!(matches!(
            builder(1).tls(expired).start().await,
            Err(StartError::Tls(TlsError::OwnCertificate(
                TlsFailure::CertificateExpired
            )))
        ));
        let other = Ca::new("another CA");
        assert!(matches!(
            builder(1).tls(foreign(&ca, &other, 1)).start().await,
            Err(StartError::Tls(TlsError::OwnCertificate(
                TlsFailure::UntrustedCertificate
            )))
        ));
    })
    .await;
}

#[actix::test]
async fn a_plaintext_node_is_refused_by_a_tls_node() {
    let ca = Ca::new("cluster CA");
    bounded(refused(
        builder(1),
        tls_node(&ca, 2),
        // The TLS node's alert (a record of type 0x15) where a handshake was expected.
        DisconnectReason::Handshake(HandshakeError::WrongMagic { found: vec![0x15] }),
        RefusalReason::Tls(TlsFailure::NotTls),
    ))
    .await;
}

#[actix::test]
async fn a_tls_node_is_refused_by_a_plaintext_node() {
    let ca = Ca::new("cluster CA");
    bounded(refused(
        tls_node(&ca, 1),
        builder(2),
        DisconnectReason::PeerClosed,
        RefusalReason::WrongMagic,
    ))
    .await;
}

/// A configuration trusting `ca` with a certificate for node `id` from `other`.
fn foreign(ca: &Ca, other: &Ca, id: u64) -> TlsConfig {
    let cert = other.node(id, CLUSTER);
    TlsConfig::from_pem(
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        ca.pem().as_bytes(),
    )
    .unwrap()
}

/// A client presenting `cert` (which a node would refuse to start with) sends node
/// 1's Hello to node 2: refused as `reason`, nothing delivered, no address learned.
async fn a_client_with(cert: NodeCert, ca: &Ca, reason: RefusalReason) {
    let b = tls_node(ca, 2).start().await.unwrap();
    let mut inbox = collect::<Seq>(&b);
    let config = client_config(ca, Some(&cert));
    // TLS 1.3: the client's handshake completes before the node checked it.
    if let Ok(mut tls) = tls_hello(b.local_addr(), config, 1).await {
        read_to_end(&mut tls).await;
    }
    let refused = counted(&b, reason).await;
    assert_eq!(refused.keys().collect::<Vec<_>>(), vec![&reason]);
    assert!(inbox.try_recv().is_err(), "nothing delivered");
    assert_eq!(b.inbound_connections().await, 0);
    assert!(matches!(
        b.send(NodeId(1), Seq(9)).await,
        Err(SendError::UnknownPeer(NodeId(1)))
    ));
}

#[actix::test]
async fn a_certificate_of_another_ca_is_refused() {
    let ca = Ca::new("cluster CA");
    let other = Ca::new("another CA");
    bounded(a_client_with(
        other.node(1, CLUSTER),
        &ca,
        RefusalReason::Tls(TlsFailure::UntrustedCertificate),
    ))
    .await;
}

#[actix::test]
async fn an_expired_certificate_is_refused() {
    let ca = Ca::new("cluster CA");
    bounded(a_client_with(
        ca.expired_node(1, CLUSTER),
        &ca,
        RefusalReason::Tls(TlsFailure::CertificateExpired),
    ))
    .await;
}

/// Node 1 dials "node 2" at a TLS server presenting `cert`: its link reports `why`.
async fn a_dialer_refuses(ca: &Ca, cert: NodeCert, why: TlsFailure) {
    let server = server_config(&cert);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let accepting = actix::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        }
    });
    let a = tls_node(ca, 1).start().await.unwrap();
    let mut events = Events::subscribe(&a).await;
    a.add_peer(NodeId(2), addr).await;
    let to_b = a.peer(NodeId(2));
    to_b.ready().await.unwrap();
    let _pending = to_b.send(Seq(1));
    let reason = events.next_disconnect("a refused attempt", NodeId(2)).await;
    assert_eq!(reason, DisconnectReason::Tls(why));
    accepting.abort();
}

#[actix::test]
async fn a_dialer_refuses_an_acceptor_with_an_expired_or_foreign_certificate() {
    bounded(async {
        let ca = Ca::new("cluster CA");
        let other = Ca::new("another CA");
        a_dialer_refuses(
            &ca,
            ca.expired_node(2, CLUSTER),
            TlsFailure::CertificateExpired,
        )
        .await;
        a_dialer_refuses(
            &ca,
            other.node(2, CLUSTER),
            TlsFailure::UntrustedCertificate,
        )
        .await;
    })
    .await;
}

/// A TLS server presenting `cert`, checking no client.
fn server_config(cert: &NodeCert) -> Arc<rustls::ServerConfig> {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    )
}

/// Connects to the node at `addr` with TLS (`config`) and writes node `id`'s Hello.
async fn tls_hello(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    id: u64,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("node-2.internode").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    tls.write_all(&hello_bytes(&hello(id))).await?;
    tls.flush().await?;
    Ok(tls)
}

/// A client of the cluster's CA that speaks TLS itself: with `cert` (or none).
fn client_config(ca: &Ca, cert: Option<&NodeCert>) -> Arc<rustls::ClientConfig> {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match cert {
        Some(cert) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

async fn read_to_end<S: AsyncReadExt + Unpin>(stream: &mut S) -> Vec<u8> {
    within("the node to close the connection", async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        answer
    })
    .await
}

/// Waits until `node` counted a refusal for `reason`; returns all its counts.
async fn counted(
    node: &internode::node::Node,
    reason: RefusalReason,
) -> BTreeMap<RefusalReason, u64> {
    support::poll_until("the refusal to be counted", || async {
        let refused = node.refused_connections().await;
        if refused.contains_key(&reason) {
            Ok(refused)
        } else {
            Err(refused)
        }
    })
    .await
}

/// A client holding node 3's valid certificate says it is node 1: the node answers
/// Unauthorized, counts it, learns no address and delivers nothing. With its own id
/// it gets in, with a full handshake every time (no resumption: a resumed session
/// would skip the certificate's checks).
#[actix::test]
async fn a_certificate_of_another_node_is_refused() {
    bounded(async {
        let ca = Ca::new("cluster CA");
        let b = tls_node(&ca, 2).start().await.unwrap();
        let mut inbox = collect::<Seq>(&b);
        let config = client_config(&ca, Some(&ca.node(3, CLUSTER)));
        let mut tls = tls_hello(b.local_addr(), config.clone(), 1).await.unwrap();
        let answer = read_to_end(&mut tls).await;
        assert_eq!(
            Reject::decode(&answer).map(|r| r.reason),
            Ok(RejectReason::Unauthorized)
        );
        let refused = counted(&b, RefusalReason::Tls(TlsFailure::WrongIdentity)).await;
        assert_eq!(
            refused.keys().collect::<Vec<_>>(),
            vec![&RefusalReason::Tls(TlsFailure::WrongIdentity)]
        );
        assert!(inbox.try_recv().is_err(), "nothing delivered");
        assert!(matches!(
            b.send(NodeId(1), Seq(9)).await,
            Err(SendError::UnknownPeer(NodeId(1)))
        ));
        // The same certificate with its own id gets in, twice, never resumed (the
        // client would resume if it could).
        for _ in 0..2 {
            let mut tls = tls_hello(b.local_addr(), config.clone(), 3).await.unwrap();
            let mut buf = [0u8; 64];
            let n = within("the Accept", tls.read(&mut buf)).await.unwrap();
            assert_eq!(buf[4], 2, "an Accept: {:?}", &buf[..n]);
            assert_eq!(
                tls.get_ref().1.handshake_kind(),
                Some(rustls::HandshakeKind::Full)
            );
        }
    })
    .await;
}

#[actix::test]
async fn a_client_without_a_certificate_is_refused() {
    bounded(async {
        let ca = Ca::new("cluster CA");
        let b = tls_node(&ca, 2).start().await.unwrap();
        // TLS 1.3: the client's handshake completes before the server has checked it.
        if let Ok(mut tls) = tls_hello(b.local_addr(), client_config(&ca, None), 1).await {
            read_to_end(&mut tls).await;
        }
        let refused = counted(&b, RefusalReason::Tls(TlsFailure::NoCertificate)).await;
        assert_eq!(
            refused.keys().collect::<Vec<_>>(),
            vec![&RefusalReason::Tls(TlsFailure::NoCertificate)]
        );
        assert_eq!(b.inbound_connections().await, 0);
    })
    .await;
}

/// Node 1 dials node 2 at an address where node 3 answers with its own valid
/// certificate: node 1 refuses it before it sends its Hello.
#[actix::test]
async fn a_node_answering_with_another_nodes_certificate_is_refused() {
    bounded(async {
        let ca = Ca::new("cluster CA");
        let c = tls_node(&ca, 3).start().await.unwrap();
        let mut inbox = collect::<Seq>(&c);
        let a = tls_node(&ca, 1).start().await.unwrap();
        let mut events = Events::subscribe(&a).await;
        a.add_peer(NodeId(2), c.local_addr()).await;
        let to_b = a.peer(NodeId(2));
        to_b.ready().await.unwrap();
        let _pending = to_b.send(Seq(1));
        let reason = events.next_disconnect("a refused attempt", NodeId(2)).await;
        assert_eq!(reason, DisconnectReason::Tls(TlsFailure::WrongIdentity));
        let refused = counted(&c, RefusalReason::Tls(TlsFailure::RefusedByPeer)).await;
        assert_eq!(
            refused.keys().collect::<Vec<_>>(),
            vec![&RefusalReason::Tls(TlsFailure::RefusedByPeer)]
        );
        assert!(inbox.try_recv().is_err(), "nothing delivered");
    })
    .await;
}

/// Lossless links over TLS through a proxy that cuts every connection again and
/// again and flips bits (TLS refuses the record and the connection is reset): every
/// message is delivered once, in order, and acknowledged.
#[actix::test]
async fn tls_links_stay_lossless_through_cuts_and_corruption() {
    bounded(async {
        let ca = Ca::new("cluster CA");
        let b = tls_node(&ca, 2).start().await.unwrap();
        let mut inbox = collect::<Seq>(&b);
        let proxy = support::Proxy::start_with(
            b.local_addr(),
            support::Faults {
                seed: 21,
                flip_probability: 0.05,
                cut_every: Some((Duration::from_millis(20), Duration::from_millis(60))),
                ..support::Faults::default()
            },
        )
        .await;
        let a = tls_node(&ca, 1).start().await.unwrap();
        a.add_peer(NodeId(2), proxy.addr()).await;
        let to_b = a.peer(NodeId(2));
        // Until the proxy has cut and corrupted enough connections.
        let mut outcomes = Vec::new();
        let mut seq = 0;
        while proxy.cuts() < 5 || proxy.flips() < 3 {
            outcomes.push(
                within("room in the link", to_b.enqueue(Seq(seq)))
                    .await
                    .unwrap(),
            );
            seq += 1;
            if seq % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        for outcome in outcomes {
            assert_eq!(within("an outcome", outcome).await, Ok(Sent::Acknowledged));
        }
        let got = recv_n(&mut inbox, seq as usize).await;
        let expected: Vec<_> = (0..seq).map(|n| (NodeId(1), Seq(n))).collect();
        assert_eq!(got, expected, "once each, in order");
        assert!(inbox.try_recv().is_err(), "no duplicate");
        println!(
            "{seq} messages through {} cuts and {} flips",
            proxy.cuts(),
            proxy.flips()
        );
    })
    .await;
}

/// A node that closes ends its TLS connections as cleanly as plain ones: the peer's
/// link sees the peer close, not an I/O error.
#[actix::test]
async fn a_closing_tls_peer_is_seen_closing() {
    bounded(async {
        let ca = Ca::new("cluster CA");
        let b = tls_node(&ca, 2).start().await.unwrap();
        let a = tls_node(&ca, 1).start().await.unwrap();
        let mut events = Events::subscribe(&a).await;
        a.add_peer(NodeId(2), b.local_addr()).await;
        assert_eq!(a.send(NodeId(2), Seq(1)).await, Ok(Sent::Acknowledged));
        b.close(false).await;
        let reason = events.next_disconnect("the peer to close", NodeId(2)).await;
        assert_eq!(reason, DisconnectReason::PeerClosed);
    })
    .await;
}
