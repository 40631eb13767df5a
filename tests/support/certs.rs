//! Test certificates made with rcgen: a cluster CA and node certificates naming
//! `node-<id>.<cluster>` (the identity rule of `internode::node::TlsConfig`), valid
//! or outside their dates. Also used by `examples/gen_certs.rs`.

use internode::node::TlsConfig;
use internode::NodeId;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate authority: its certificate and key.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// A node's certificate and key, in PEM.
pub struct NodeCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("a key pair");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Ca { cert, key }
    }

    /// The CA's certificate, in PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for node `id` of `cluster`, valid now (for the default dates).
    pub fn node(&self, id: u64, cluster: &str) -> NodeCert {
        self.node_with(id, cluster, |_| {})
    }

    /// A certificate for node `id` of `cluster` that expired in 2001.
    pub fn expired_node(&self, id: u64, cluster: &str) -> NodeCert {
        self.node_with(id, cluster, |params| {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })
    }

    fn node_with(
        &self,
        id: u64,
        cluster: &str,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> NodeCert {
        let name = TlsConfig::subject_name(NodeId(id), cluster).expect("a DNS-safe cluster name");
        let key = KeyPair::generate().expect("a key pair");
        let mut params = CertificateParams::new(vec![name.clone()]).expect("node parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // A node is a TLS server when it accepts and a client when it dials.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        adjust(&mut params);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("a node certificate");
        NodeCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The TLS configuration of a node holding `cert`, trusting this CA.
    pub fn config(&self, cert: &NodeCert) -> TlsConfig {
        TlsConfig::from_pem(
            cert.cert_pem.as_bytes(),
            cert.key_pem.as_bytes(),
            self.pem().as_bytes(),
        )
        .expect("a usable TLS configuration")
    }
}
