//! Why an inbound connection was refused: the key of
//! [`Node::refused_connections`](super::Node::refused_connections).
//!
//! The reasons come from several layers: the listener's admission limits, TLS
//! ([`TlsFailure`]), the handshake ([`HandshakeError`]), the registry (the node is
//! closing or has as many connections as it takes) and the receiving session after
//! the Hello ([`StaleAttempt`], a failed accept). Each maps here to one
//! [`RefusalReason`], whose [`as_str`](RefusalReason::as_str) is the one place its
//! name is spelled.

use crate::handshake::HandshakeError;
use crate::session::{StaleAttempt, TlsFailure};

/// Why an inbound connection was refused, as counted by
/// [`Node::refused_connections`](super::Node::refused_connections).
/// [`as_str`](Self::as_str) gives a stable snake_case name (for logs, labels and
/// JSON); `Display` writes the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The first bytes are not the handshake magic: `wrong_magic`.
    WrongMagic,
    /// No protocol version in common: `incompatible_version`.
    IncompatibleVersion,
    /// The connection came from this node itself (or another node with its id):
    /// `self_connect`.
    SelfConnect,
    /// TLS and the handshake did not complete within the handshake timeout:
    /// `timeout`.
    Timeout,
    /// The connection ended before the handshake completed, or the node was closing
    /// when it was accepted: `closed`.
    Closed,
    /// A handshake message that breaks the protocol (undecodable, too long, a wrong
    /// checksum, an unexpected message, an unsupported framing): `malformed`.
    Malformed,
    /// The node has a cluster secret and the peer took no part in authentication:
    /// `auth_missing`.
    AuthMissing,
    /// The peer's cluster-secret proof is wrong: `auth_failed`.
    AuthFailed,
    /// The peer belongs to another cluster: `cluster_mismatch`.
    ClusterMismatch,
    /// The peer closed the connection instead of proving the cluster secret:
    /// `auth_incomplete`.
    AuthIncomplete,
    /// Admission: as many sockets in handshake as the node takes
    /// (`AdmissionLimits::handshakes`): `too_many_handshakes`.
    TooManyHandshakes,
    /// Admission: as many sockets in handshake from the source address as the node
    /// takes (`AdmissionLimits::handshakes_per_ip`): `too_many_from_ip`.
    TooManyFromIp,
    /// Admission: as many established inbound connections as the node takes
    /// (`AdmissionLimits::inbound_connections`): `too_many_connections`.
    TooManyConnections,
    /// TLS failed, or the peer's certificate does not name the node its Hello claims
    /// to be: `tls_not_tls`, `tls_no_certificate`, `tls_untrusted_certificate`,
    /// `tls_certificate_expired`, `tls_wrong_identity`, `tls_refused_by_peer`,
    /// `tls_failed` (for [`TlsFailure::Other`]).
    Tls(TlsFailure),
    /// After the Hello: an older attempt of the peer's current sender session
    /// ([`StaleAttempt::Older`]): `stale_attempt`.
    StaleAttempt,
    /// After the Hello: a sender session of the peer's node id that a newer one
    /// replaced ([`StaleAttempt::Replaced`]; if it goes on, two processes claim one
    /// id): `replaced_session`.
    ReplacedSession,
    /// After the Hello: the handshake's Accept could not be made: `accept_failed`.
    AcceptFailed,
}

impl RefusalReason {
    /// A short stable snake_case name, for logs, labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::WrongMagic => "wrong_magic",
            RefusalReason::IncompatibleVersion => "incompatible_version",
            RefusalReason::SelfConnect => "self_connect",
            RefusalReason::Timeout => "timeout",
            RefusalReason::Closed => "closed",
            RefusalReason::Malformed => "malformed",
            RefusalReason::AuthMissing => "auth_missing",
            RefusalReason::AuthFailed => "auth_failed",
            RefusalReason::ClusterMismatch => "cluster_mismatch",
            RefusalReason::AuthIncomplete => "auth_incomplete",
            RefusalReason::TooManyHandshakes => "too_many_handshakes",
            RefusalReason::TooManyFromIp => "too_many_from_ip",
            RefusalReason::TooManyConnections => "too_many_connections",
            RefusalReason::Tls(failure) => match failure {
                TlsFailure::NotTls => "tls_not_tls",
                TlsFailure::NoCertificate => "tls_no_certificate",
                TlsFailure::UntrustedCertificate => "tls_untrusted_certificate",
                TlsFailure::CertificateExpired => "tls_certificate_expired",
                TlsFailure::WrongIdentity => "tls_wrong_identity",
                TlsFailure::RefusedByPeer => "tls_refused_by_peer",
                TlsFailure::Other => "tls_failed",
            },
            RefusalReason::StaleAttempt => "stale_attempt",
            RefusalReason::ReplacedSession => "replaced_session",
            RefusalReason::AcceptFailed => "accept_failed",
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason an acceptor's handshake error is counted under.
impl From<&HandshakeError> for RefusalReason {
    fn from(e: &HandshakeError) -> Self {
        match e {
            HandshakeError::WrongMagic { .. } => RefusalReason::WrongMagic,
            HandshakeError::IncompatibleVersion { .. } => RefusalReason::IncompatibleVersion,
            HandshakeError::SelfConnect => RefusalReason::SelfConnect,
            HandshakeError::Timeout => RefusalReason::Timeout,
            HandshakeError::Closed | HandshakeError::Truncated { .. } => RefusalReason::Closed,
            HandshakeError::AuthMissing => RefusalReason::AuthMissing,
            HandshakeError::AuthFailed => RefusalReason::AuthFailed,
            HandshakeError::ClusterMismatch => RefusalReason::ClusterMismatch,
            HandshakeError::AuthIncomplete => RefusalReason::AuthIncomplete,
            HandshakeError::Malformed { .. }
            | HandshakeError::BodyTooLong { .. }
            | HandshakeError::ChecksumMismatch { .. }
            | HandshakeError::UnexpectedMessage { .. }
            | HandshakeError::UnsupportedFraming(_)
            | HandshakeError::Rejected { .. }
            | HandshakeError::OutOfOrder { .. } => RefusalReason::Malformed,
        }
    }
}

impl From<TlsFailure> for RefusalReason {
    fn from(failure: TlsFailure) -> Self {
        RefusalReason::Tls(failure)
    }
}

impl From<&StaleAttempt> for RefusalReason {
    fn from(stale: &StaleAttempt) -> Self {
        match stale {
            StaleAttempt::Older { .. } => RefusalReason::StaleAttempt,
            StaleAttempt::Replaced { .. } => RefusalReason::ReplacedSession,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::handshake::{RejectReason, VersionRange};

    /// Every reason, from what it is refused for, with its name: the names counted
    /// before the enum (the examples' JSON and the operators' tools read them).
    #[test]
    fn every_refusal_reason_has_a_distinct_snake_case_name_from_its_cause() {
        use RefusalReason as R;
        let versions = VersionRange::single(1);
        let handshake = |e: HandshakeError| R::from(&e);
        let table: Vec<(R, R, &str)> = vec![
            (
                handshake(HandshakeError::WrongMagic { found: vec![0] }),
                R::WrongMagic,
                "wrong_magic",
            ),
            (
                handshake(HandshakeError::IncompatibleVersion {
                    ours: versions,
                    theirs: versions,
                }),
                R::IncompatibleVersion,
                "incompatible_version",
            ),
            (
                handshake(HandshakeError::SelfConnect),
                R::SelfConnect,
                "self_connect",
            ),
            (handshake(HandshakeError::Timeout), R::Timeout, "timeout"),
            (handshake(HandshakeError::Closed), R::Closed, "closed"),
            (
                handshake(HandshakeError::Malformed { what: "x" }),
                R::Malformed,
                "malformed",
            ),
            (
                handshake(HandshakeError::AuthMissing),
                R::AuthMissing,
                "auth_missing",
            ),
            (
                handshake(HandshakeError::AuthFailed),
                R::AuthFailed,
                "auth_failed",
            ),
            (
                handshake(HandshakeError::ClusterMismatch),
                R::ClusterMismatch,
                "cluster_mismatch",
            ),
            (
                handshake(HandshakeError::AuthIncomplete),
                R::AuthIncomplete,
                "auth_incomplete",
            ),
            (
                R::TooManyHandshakes,
                R::TooManyHandshakes,
                "too_many_handshakes",
            ),
            (R::TooManyFromIp, R::TooManyFromIp, "too_many_from_ip"),
            (
                R::TooManyConnections,
                R::TooManyConnections,
                "too_many_connections",
            ),
            (
                TlsFailure::NotTls.into(),
                R::Tls(TlsFailure::NotTls),
                "tls_not_tls",
            ),
            (
                TlsFailure::NoCertificate.into(),
                R::Tls(TlsFailure::NoCertificate),
                "tls_no_certificate",
            ),
            (
                TlsFailure::UntrustedCertificate.into(),
                R::Tls(TlsFailure::UntrustedCertificate),
                "tls_untrusted_certificate",
            ),
            (
                TlsFailure::CertificateExpired.into(),
                R::Tls(TlsFailure::CertificateExpired),
                "tls_certificate_expired",
            ),
            (
                TlsFailure::WrongIdentity.into(),
                R::Tls(TlsFailure::WrongIdentity),
                "tls_wrong_identity",
            ),
            (
                TlsFailure::RefusedByPeer.into(),
                R::Tls(TlsFailure::RefusedByPeer),
                "tls_refused_by_peer",
            ),
            (
                TlsFailure::Other.into(),
                R::Tls(TlsFailure::Other),
                "tls_failed",
            ),
            (
                R::from(&StaleAttempt::Older {
                    attempt: 1,
                    current: 2,
                }),
                R::StaleAttempt,
                "stale_attempt",
            ),
            (
                R::from(&StaleAttempt::Replaced { session_id: 1 }),
                R::ReplacedSession,
                "replaced_session",
            ),
            (R::AcceptFailed, R::AcceptFailed, "accept_failed"),
        ];
        // The table has every reason: a new variant (here or in `TlsFailure`) fails
        // to compile here until it is given a place, then the count until it is in
        // the table.
        let place = |reason: R| match reason {
            R::WrongMagic => 0,
            R::IncompatibleVersion => 1,
            R::SelfConnect => 2,
            R::Timeout => 3,
            R::Closed => 4,
            R::Malformed => 5,
            R::AuthMissing => 6,
            R::AuthFailed => 7,
            R::ClusterMismatch => 8,
            R::AuthIncomplete => 9,
            R::TooManyHandshakes => 10,
            R::TooManyFromIp => 11,
            R::TooManyConnections => 12,
            R::Tls(TlsFailure::NotTls) => 13,
            R::Tls(TlsFailure::NoCertificate) => 14,
            R::Tls(TlsFailure::UntrustedCertificate) => 15,
            R::Tls(TlsFailure::CertificateExpired) => 16,
            R::Tls(TlsFailure::WrongIdentity) => 17,
            R::Tls(TlsFailure::RefusedByPeer) => 18,
            R::Tls(TlsFailure::Other) => 19,
            R::StaleAttempt => 20,
            R::ReplacedSession => 21,
            R::AcceptFailed => 22,
        };
        let mut names = BTreeSet::new();
        for (i, (from, reason, name)) in table.iter().enumerate() {
            assert_eq!(place(*reason), i, "{reason:?}");
            assert_eq!(from, reason, "{name}");
            assert_eq!(reason.as_str(), *name);
            assert_eq!(reason.to_string(), *name, "Display is the name");
            assert!(is_snake_case(name), "{name}");
            assert!(names.insert(*name), "{name} given twice");
        }
        // Each name leads back to its reason, and only to it.
        for (_, reason, name) in &table {
            let back: Vec<_> = table
                .iter()
                .filter(|(_, r, _)| r.as_str() == *name)
                .map(|(_, r, _)| *r)
                .collect();
            assert_eq!(back, [*reason], "{name}");
        }
        // The handshake errors with no reason of their own.
        for e in [
            HandshakeError::Truncated {
                received: 1,
                expected: 7,
            },
            HandshakeError::Closed,
        ] {
            assert_eq!(R::from(&e), R::Closed, "{e}");
        }
        for e in [
            HandshakeError::BodyTooLong { len: 2, max: 1 },
            HandshakeError::ChecksumMismatch {
                carried: 1,
                computed: 2,
            },
            HandshakeError::UnexpectedMessage {
                expected: "Hello",
                found: 9,
            },
            HandshakeError::UnsupportedFraming(9),
            HandshakeError::Rejected {
                reason: RejectReason::Unauthorized,
                peer_versions: versions,
            },
            HandshakeError::OutOfOrder {
                call: "accept",
                state: "done",
            },
        ] {
            assert_eq!(R::from(&e), R::Malformed, "{e}");
        }
    }

    fn is_snake_case(name: &str) -> bool {
        name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('_')
            && !name.contains("__")
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }
}
