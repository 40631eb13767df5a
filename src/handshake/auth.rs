//! Cluster-secret authentication: the key, the nonces and the two proofs (layout and
//! order in the [module doc](super#authentication)).
//!
//! Pure functions of their inputs: the nonces come from the caller (the shell draws
//! them from the OS with [`fresh_nonce`]), so the state machines stay deterministic.

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::MAX_AUTH_LEN;

type HmacSha256 = Hmac<Sha256>;

/// Length of a nonce, in bytes.
pub const NONCE_LEN: usize = 32;

/// Length of a proof (an HMAC-SHA256 tag), in bytes.
pub const PROOF_LEN: usize = 32;

/// The longest cluster name: what fits in a Hello's auth field after the nonce.
pub const MAX_CLUSTER_NAME_LEN: usize = MAX_AUTH_LEN - NONCE_LEN;

/// A nonce: 32 bytes that must be fresh and unpredictable for every handshake.
pub type Nonce = [u8; NONCE_LEN];

/// Length of a [`ChannelBinding`], in bytes.
pub const CHANNEL_BINDING_LEN: usize = 32;

/// What ties the proofs to one TLS connection: its exporter
/// (`EXPORTER-Channel-Binding`, RFC 9266), the same 32 bytes on both ends of that
/// connection and different on any other. A proof computed over one connection's
/// binding fails on another, so a man in the middle who terminates two TLS
/// connections cannot relay the proofs between them.
pub type ChannelBinding = [u8; CHANNEL_BINDING_LEN];

/// The role label of the acceptor's proof.
const ACCEPTOR_LABEL: &[u8] = b"internode acceptor v1";
/// The role label of the initiator's proof.
const INITIATOR_LABEL: &[u8] = b"internode initiator v1";
/// The HKDF `info` of the handshake key.
const KEY_INFO: &[u8] = b"internode handshake v1";

/// A fresh nonce from the operating system's random number generator.
///
/// # Panics
///
/// If the OS cannot give random bytes: a node must not authenticate with a
/// predictable nonce.
pub fn fresh_nonce() -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).expect("the OS random number generator failed");
    nonce
}

/// The handshake key of a cluster: HKDF-SHA256 of the secret (salt = the cluster
/// name, info = `"internode handshake v1"`), and the cluster name it was derived for.
/// The secret itself is not kept; `Debug` shows the name only.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey {
    key: [u8; 32],
    cluster: Vec<u8>,
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterKey")
            .field("cluster", &String::from_utf8_lossy(&self.cluster))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Caller error: a cluster secret or name that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClusterKeyError {
    /// The secret is empty.
    #[error("the cluster secret is empty")]
    EmptySecret,
    /// The cluster name is longer than [`MAX_CLUSTER_NAME_LEN`] bytes.
    #[error("the cluster name has {len} bytes, more than the maximum of {max}", max = MAX_CLUSTER_NAME_LEN)]
    NameTooLong {
        /// The name's length.
        len: usize,
    },
}

impl ClusterKey {
    /// Derives the key of the cluster `name` from `secret`.
    pub fn derive(secret: &[u8], name: &str) -> Result<ClusterKey, ClusterKeyError> {
        if secret.is_empty() {
            return Err(ClusterKeyError::EmptySecret);
        }
        if name.len() > MAX_CLUSTER_NAME_LEN {
            return Err(ClusterKeyError::NameTooLong { len: name.len() });
        }
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(name.as_bytes()), secret)
            .expand(KEY_INFO, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Ok(ClusterKey {
            key,
            cluster: name.as_bytes().to_vec(),
        })
    }

    /// The cluster name, as sent in the Hello.
    pub fn cluster(&self) -> &[u8] {
        &self.cluster
    }

    /// The MAC over `label`, the transcript's parts and, over TLS, the channel
    /// binding as one more part (without TLS the transcript has no such part, so the
    /// proofs are those of a plain connection).
    fn mac(&self, label: &[u8], parts: &[&[u8]], binding: Option<&ChannelBinding>) -> HmacSha256 {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(label);
        let binding = binding.map(|b| &b[..]);
        for part in parts.iter().copied().chain(binding) {
            // Each part with its length, so that no two transcripts read the same.
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac
    }

    /// The acceptor's proof over its transcript (the parts, each length-prefixed).
    pub(crate) fn acceptor_proof(
        &self,
        transcript: &[&[u8]],
        binding: Option<&ChannelBinding>,
    ) -> [u8; PROOF_LEN] {
        self.mac(ACCEPTOR_LABEL, transcript, binding)
            .finalize()
            .into_bytes()
            .into()
    }

    /// The initiator's proof over its transcript.
    pub(crate) fn initiator_proof(
        &self,
        transcript: &[&[u8]],
        binding: Option<&ChannelBinding>,
    ) -> [u8; PROOF_LEN] {
        self.mac(INITIATOR_LABEL, transcript, binding)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `proof` is the acceptor's proof over `transcript`; compared in constant
    /// time ([`Mac::verify_slice`]).
    pub(crate) fn verify_acceptor(
        &self,
        transcript: &[&[u8]],
        binding: Option<&ChannelBinding>,
        proof: &[u8],
    ) -> bool {
        self.mac(ACCEPTOR_LABEL, transcript, binding)
            .verify_slice(proof)
            .is_ok()
    }

    /// Whether `proof` is the initiator's proof over `transcript`, in constant time.
    pub(crate) fn verify_initiator(
        &self,
        transcript: &[&[u8]],
        binding: Option<&ChannelBinding>,
        proof: &[u8],
    ) -> bool {
        self.mac(INITIATOR_LABEL, transcript, binding)
            .verify_slice(proof)
            .is_ok()
    }
}

/// The Hello's auth field when a secret is set: the initiator's nonce, then the
/// cluster name.
pub(crate) fn hello_auth(nonce: &Nonce, key: &ClusterKey) -> Vec<u8> {
    let mut auth = Vec::with_capacity(NONCE_LEN + key.cluster.len());
    auth.extend_from_slice(nonce);
    auth.extend_from_slice(&key.cluster);
    auth
}

/// Splits a Hello's auth field into the nonce and the cluster name; `None` if it is
/// too short to hold a nonce (the peer has no secret).
pub(crate) fn split_hello_auth(auth: &[u8]) -> Option<(&[u8], &[u8])> {
    (auth.len() >= NONCE_LEN).then(|| auth.split_at(NONCE_LEN))
}
