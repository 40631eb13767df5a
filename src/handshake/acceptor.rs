//! The accepting side of the handshake.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::auth::{self, ChannelBinding, ClusterKey, Nonce};
use super::initiator::{out_of_order, queue};
use super::reader::MessageReader;
use super::{
    Accept, AuthToken, Challenge, Established, FramingSet, HandshakeError, Hello, MessageType,
    Proof, Reject, RejectReason, VersionRange,
};
use crate::NodeId;

/// What an [`Acceptor`] checks a Hello against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptorConfig {
    /// This node's id: a Hello carrying it is a self-connect.
    pub node_id: NodeId,
    /// The versions this side speaks.
    pub versions: VersionRange,
    /// The framings this side allows (e.g. [`Unprotected`](crate::frame::Framing::Unprotected)
    /// only on TLS listeners).
    pub framings: FramingSet,
}

impl AcceptorConfig {
    /// All [supported](VersionRange::SUPPORTED) versions and all framings.
    pub fn new(node_id: NodeId) -> Self {
        AcceptorConfig {
            node_id,
            versions: VersionRange::SUPPORTED,
            framings: FramingSet::ALL,
        }
    }
}

/// What the shell puts in the Accept, once it has decided to take the connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AcceptParams {
    /// This side's session id for the link.
    pub session_id: u64,
    /// The last sequence number this side received from the initiator on the link
    /// (0 = none).
    pub resume: u64,
    /// This side's authentication data.
    pub auth: AuthToken,
}

impl AcceptParams {
    /// An Accept with this session id, resume point and authentication data.
    pub fn new(session_id: u64, resume: u64, auth: AuthToken) -> Self {
        AcceptParams {
            session_id,
            resume,
            auth,
        }
    }
}

/// The handshake of the side that accepted the socket: reads a [`Hello`], then answers
/// with an [`Accept`] or a [`Reject`].
///
/// [`handle_input`](Self::handle_input) returns the Hello once it is whole and passes
/// the checks this side can make alone; a Hello that fails them is rejected at once (a
/// Reject is queued for [`poll_transmit`](Self::poll_transmit) and the error returned):
///
/// | check                                             | error and Reject reason |
/// |---------------------------------------------------|-------------------------|
/// | the version ranges overlap                        | `IncompatibleVersion`   |
/// | the framing code is known and allowed             | `UnsupportedFraming`    |
/// | the Hello's node id is not this node's            | `SelfConnect`           |
///
/// Anything else wrong (garbage, a malformed Hello) fails without an answer. After a
/// Hello, the shell decides (authentication, known peer, ...): [`accept`](Self::accept)
/// queues the Accept and gives the [`Established`] connection; [`reject`](Self::reject)
/// queues a Reject. Until then it takes no more input: the initiator must not send
/// before it is accepted, and bytes read later belong after
/// [`Established::leftover`]. The deadline keeps running while the shell decides.
///
/// See [`Initiator`](super::Initiator) for a full handshake in memory.
#[derive(Debug)]
pub struct Acceptor {
    config: AcceptorConfig,
    /// `None` when `now + timeout` does not fit an [`Instant`]: no deadline.
    deadline: Option<Instant>,
    transmit: Option<Bytes>,
    /// With a cluster secret: the key and this side's nonce.
    auth: Option<(ClusterKey, Nonce)>,
    /// Over TLS: the connection's channel binding, covered by both proofs.
    binding: Option<ChannelBinding>,
    state: State,
}

#[derive(Debug)]
enum State {
    Reading(MessageReader),
    /// With a cluster secret: the Hello passed the checks and the Challenge is queued;
    /// the initiator's Proof is being read.
    ReadingProof {
        reader: MessageReader,
        hello: Hello,
        version: u8,
        /// The Hello's body and the Challenge's: the transcript so far.
        hello_body: Vec<u8>,
        challenge_body: Vec<u8>,
    },
    /// A Hello passed the checks; the shell decides.
    AwaitingDecision {
        hello: Hello,
        version: u8,
        leftover: Bytes,
    },
    Established,
    Failed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Reading(_) => "reading the Hello",
            State::ReadingProof { .. } => "reading the Proof",
            State::AwaitingDecision { .. } => "awaiting the accept or reject decision",
            State::Established => "established",
            State::Failed => "failed",
        }
    }
}

impl Acceptor {
    /// Starts reading a Hello on a new connection, with a deadline of `now + timeout`.
    pub fn new(config: AcceptorConfig, now: Instant, timeout: Duration) -> Self {
        Acceptor {
            config,
            deadline: now.checked_add(timeout),
            transmit: None,
            auth: None,
            binding: None,
            state: State::Reading(MessageReader::new("Hello", &[MessageType::Hello])),
        }
    }

    /// Starts reading a Hello on a new connection that must authenticate with the
    /// cluster secret of `key`; `nonce` must be fresh
    /// ([`fresh_nonce`](super::fresh_nonce)).
    ///
    /// After the checks of [`new`](Self::new), a Hello without a nonce fails with
    /// [`HandshakeError::AuthMissing`] and one naming another cluster with
    /// [`HandshakeError::ClusterMismatch`] (each with a Reject). A good one gets a
    /// [`Challenge`] (queued for [`poll_transmit`](Self::poll_transmit), and
    /// [`handle_input`](Self::handle_input) gives `Ok(None)`); the Hello is returned
    /// only once the initiator's [`Proof`] has checked out. A wrong proof fails with
    /// [`HandshakeError::AuthFailed`] (and a Reject), an end of the connection before
    /// the Proof with [`HandshakeError::AuthIncomplete`].
    pub fn with_auth(
        config: AcceptorConfig,
        key: &ClusterKey,
        nonce: Nonce,
        now: Instant,
        timeout: Duration,
    ) -> Self {
        Acceptor {
            auth: Some((key.clone(), nonce)),
            ..Acceptor::new(config, now, timeout)
        }
    }

    /// Binds the proofs to the TLS connection this handshake runs over: both sides'
    /// proofs also cover `binding` (the connection's exporter, see
    /// [`ChannelBinding`]), so they check out only when both ends computed them over
    /// the same connection. Call it before any input, on both sides or on neither;
    /// without a cluster secret it changes nothing.
    pub fn bind_to_channel(mut self, binding: ChannelBinding) -> Self {
        self.binding = Some(binding);
        self
    }

    /// The bytes to write next, if any, once: the Accept or the Reject; with a cluster
    /// secret also the Challenge, followed by a Reject when the same input held the
    /// Hello and a wrong Proof.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.take()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called: the deadline while
    /// the handshake is in progress (also while the shell decides), `None` once it has
    /// completed or failed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Reading(_) | State::ReadingProof { .. } | State::AwaitingDecision { .. } => {
                self.deadline
            }
            State::Established | State::Failed => None,
        }
    }

    /// Fails the handshake with [`HandshakeError::Timeout`] if it is still in progress
    /// at or after its deadline; otherwise does nothing. No Reject is sent.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        if self.in_progress() && self.deadline.is_some_and(|d| now >= d) {
            self.state = State::Failed;
            return Err(HandshakeError::Timeout);
        }
        Ok(())
    }

    /// Feeds bytes read from the connection.
    ///
    /// `Ok(None)`: all of `data` was taken and the Hello is not whole yet.
    /// `Ok(Some(hello))`: the Hello passed the checks; bytes of `data` after it are
    /// kept for [`Established::leftover`]; now [`accept`](Self::accept) or
    /// [`reject`](Self::reject). `Err`: the handshake failed (send what
    /// [`poll_transmit`](Self::poll_transmit) gives, if anything, and close). Input at
    /// or after the deadline fails with [`HandshakeError::Timeout`]; input after the
    /// Hello with [`HandshakeError::OutOfOrder`], which leaves the state as it was.
    pub fn handle_input(
        &mut self,
        data: &[u8],
        now: Instant,
    ) -> Result<Option<Hello>, HandshakeError> {
        let mut data = data;
        loop {
            let reader = match &mut self.state {
                State::Reading(reader) | State::ReadingProof { reader, .. } => reader,
                _ => return Err(out_of_order("handle_input", self.state.name())),
            };
            let fed = if self.deadline.is_some_and(|d| now >= d) {
                Err(HandshakeError::Timeout)
            } else {
                reader.feed(data)
            };
            let (message, used) = match fed {
                Ok(None) => return Ok(None),
                Ok(Some(whole)) => whole,
                Err(e) => return Err(self.fail(e)),
            };
            let rest = data.get(used..).unwrap_or_default();
            let checked = match std::mem::replace(&mut self.state, State::Failed) {
                State::Reading(_) => self
                    .check_hello(&message.body)
                    .and_then(|(hello, version)| self.challenge(hello, version, message.body)),
                State::ReadingProof {
                    hello,
                    version,
                    hello_body,
                    challenge_body,
                    ..
                } => self
                    .check_proof(&hello_body, &challenge_body, &message.body)
                    .map(|()| Some((hello, version))),
                // Not reached: only the reading states have a reader.
                other => {
                    let name = other.name();
                    self.state = other;
                    return Err(out_of_order("handle_input", name));
                }
            };
            match checked {
                // The Challenge is queued: read the Proof.
                Ok(None) => data = rest,
                Ok(Some((hello, version))) => {
                    let result = hello.clone();
                    self.state = State::AwaitingDecision {
                        hello,
                        version,
                        leftover: Bytes::copy_from_slice(rest),
                    };
                    return Ok(Some(result));
                }
                Err(error) => return Err(self.fail(error)),
            }
        }
    }

    /// Fails the handshake with `error`, queuing a Reject if it has a reason to give.
    fn fail(&mut self, error: HandshakeError) -> HandshakeError {
        let reason = match error {
            HandshakeError::IncompatibleVersion { .. } => Some(RejectReason::IncompatibleVersion),
            HandshakeError::UnsupportedFraming(_) => Some(RejectReason::UnsupportedFraming),
            HandshakeError::SelfConnect => Some(RejectReason::SelfConnect),
            HandshakeError::AuthMissing | HandshakeError::AuthFailed => {
                Some(RejectReason::Unauthorized)
            }
            HandshakeError::ClusterMismatch => Some(RejectReason::ClusterMismatch),
            _ => None,
        };
        if let Some(reason) = reason {
            self.queue_reject(reason);
        }
        self.state = State::Failed;
        error
    }

    /// Without a cluster secret: the Hello is for the shell (`Some`). With one: checks
    /// the Hello's nonce and cluster name, queues the Challenge and waits for the Proof
    /// (`None`).
    fn challenge(
        &mut self,
        hello: Hello,
        version: u8,
        hello_body: Vec<u8>,
    ) -> Result<Option<(Hello, u8)>, HandshakeError> {
        let Some((key, nonce)) = &self.auth else {
            return Ok(Some((hello, version)));
        };
        let (_, cluster) =
            auth::split_hello_auth(hello.auth.as_bytes()).ok_or(HandshakeError::AuthMissing)?;
        if cluster != key.cluster() {
            return Err(HandshakeError::ClusterMismatch);
        }
        let mut covered = Vec::with_capacity(Challenge::BODY_LEN);
        let mut challenge = Challenge {
            proof: [0; auth::PROOF_LEN],
            node_id: self.config.node_id,
            nonce: *nonce,
        };
        challenge.encode_covered(&mut covered);
        challenge.proof = key.acceptor_proof(&[&hello_body, &covered], self.binding.as_ref());
        let mut buf =
            BytesMut::with_capacity(super::HEADER_LEN + Challenge::BODY_LEN + super::TRAILER_LEN);
        challenge.encode(&mut buf);
        let challenge_body = buf
            .get(super::HEADER_LEN..buf.len() - super::TRAILER_LEN)
            .unwrap_or_default()
            .to_vec();
        queue(&mut self.transmit, buf);
        self.state = State::ReadingProof {
            reader: MessageReader::new("Proof", &[MessageType::Proof]),
            hello,
            version,
            hello_body,
            challenge_body,
        };
        Ok(None)
    }

    /// Checks the initiator's Proof against the transcript.
    fn check_proof(
        &self,
        hello_body: &[u8],
        challenge_body: &[u8],
        body: &[u8],
    ) -> Result<(), HandshakeError> {
        let key = &self
            .auth
            .as_ref()
            .ok_or(out_of_order("check_proof", "unauthenticated"))?
            .0;
        let proof = Proof::decode_body(body)?;
        let covered = body.get(auth::PROOF_LEN..).unwrap_or_default();
        if key.verify_initiator(
            &[hello_body, challenge_body, covered],
            self.binding.as_ref(),
            &proof.proof,
        ) {
            Ok(())
        } else {
            Err(HandshakeError::AuthFailed)
        }
    }

    /// Takes the connection after a Hello: queues an Accept with the newest common
    /// version, the initiator's framing and `params`, and returns what was agreed.
    /// Before a Hello, or after the handshake completed or failed:
    /// [`HandshakeError::OutOfOrder`], and the state is left as it was.
    pub fn accept(&mut self, params: AcceptParams) -> Result<Established, HandshakeError> {
        let (hello, version, leftover) =
            match std::mem::replace(&mut self.state, State::Established) {
                State::AwaitingDecision {
                    hello,
                    version,
                    leftover,
                } => (hello, version, leftover),
                other => {
                    let name = other.name();
                    self.state = other;
                    return Err(out_of_order("accept", name));
                }
            };
        let accept = Accept {
            version,
            framing: hello.framing,
            node_id: self.config.node_id,
            session_id: params.session_id,
            resume: params.resume,
            auth: params.auth,
        };
        let mut buf =
            BytesMut::with_capacity(super::HEADER_LEN + accept.body_len() + super::TRAILER_LEN);
        accept.encode(&mut buf);
        queue(&mut self.transmit, buf);
        Ok(Established {
            version,
            framing: hello.framing,
            peer_node_id: hello.node_id,
            peer_listen_addr: Some(hello.listen_addr),
            link_kind: hello.link_kind,
            peer_session_id: hello.session_id,
            resume: hello.resume,
            auth: hello.auth,
            leftover,
        })
    }

    /// Refuses the connection: queues a Reject with `reason` and this side's versions;
    /// the handshake has failed. Allowed while the handshake is in progress, also
    /// before a Hello (e.g. [`RejectReason::ShuttingDown`]); afterwards:
    /// [`HandshakeError::OutOfOrder`].
    pub fn reject(&mut self, reason: RejectReason) -> Result<(), HandshakeError> {
        if !self.in_progress() {
            return Err(out_of_order("reject", self.state.name()));
        }
        self.queue_reject(reason);
        self.state = State::Failed;
        Ok(())
    }

    /// Reports that the connection ended: [`HandshakeError::Closed`] if no byte of the
    /// Hello had arrived or the Hello was awaiting the decision,
    /// [`HandshakeError::Truncated`] if a part of it had. The handshake has failed.
    /// After the handshake completed or failed: [`HandshakeError::OutOfOrder`].
    pub fn handle_eof(&mut self) -> HandshakeError {
        let error = match &self.state {
            State::Reading(reader) => reader.eof_error(),
            State::ReadingProof { .. } => HandshakeError::AuthIncomplete,
            State::AwaitingDecision { .. } => HandshakeError::Closed,
            State::Established | State::Failed => {
                return out_of_order("handle_eof", self.state.name())
            }
        };
        self.state = State::Failed;
        error
    }

    fn in_progress(&self) -> bool {
        matches!(
            self.state,
            State::Reading(_) | State::ReadingProof { .. } | State::AwaitingDecision { .. }
        )
    }

    fn queue_reject(&mut self, reason: RejectReason) {
        let reject = Reject {
            reason,
            versions: self.config.versions,
        };
        let mut buf =
            BytesMut::with_capacity(super::HEADER_LEN + Reject::BODY_LEN + super::TRAILER_LEN);
        reject.encode(&mut buf);
        queue(&mut self.transmit, buf);
    }

    /// The checks this side makes alone, in order: versions (read before the rest of
    /// the body, whose layout a version this side does not speak might change), the
    /// body, self-connect, framing. Returns the Hello and the version to use.
    fn check_hello(&self, body: &[u8]) -> Result<(Hello, u8), HandshakeError> {
        let ours = self.config.versions;
        let theirs = match body {
            [min, max, ..] => VersionRange::new(*min, *max),
            _ => {
                return Err(HandshakeError::Malformed {
                    what: "Hello version range",
                })
            }
        };
        let version = ours
            .highest_common(theirs)
            .ok_or(HandshakeError::IncompatibleVersion { ours, theirs })?;
        let hello = Hello::decode_body(body)?;
        if hello.node_id == self.config.node_id {
            return Err(HandshakeError::SelfConnect);
        }
        if !self.config.framings.contains(hello.framing) {
            return Err(HandshakeError::UnsupportedFraming(hello.framing.code()));
        }
        Ok((hello, version))
    }
}
