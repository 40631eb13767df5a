//! The dialing side of the handshake.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::auth::{self, ChannelBinding, ClusterKey, Nonce};
use super::reader::{MessageReader, RawMessage};
use super::{
    Accept, AuthToken, Challenge, Established, HandshakeError, Hello, MessageType, Proof, Reject,
    RejectReason, VersionRange,
};
use crate::frame::Framing;
use crate::{LinkKind, NodeId};

/// The handshake of the side that dialed: sends a [`Hello`], then waits for an
/// [`Accept`] or a [`Reject`].
///
/// The shell writes what [`poll_transmit`](Self::poll_transmit) gives, feeds what it
/// reads to [`handle_input`](Self::handle_input) until that returns an
/// [`Established`] or an error, calls [`handle_timeout`](Self::handle_timeout) when
/// [`poll_timeout`](Self::poll_timeout)'s instant has come, and
/// [`handle_eof`](Self::handle_eof) when the socket ends. Received bytes after the
/// Accept are returned in [`Established::leftover`].
///
/// It checks the Accept: its version must lie in the Hello's range and its framing must
/// be the one the Hello asked for. It does not check who answered; the shell compares
/// [`Established::peer_node_id`] with the node it meant to reach. Reading back its own
/// Hello (a TCP self-connect) or an Accept carrying its own node id fails with
/// [`HandshakeError::SelfConnect`].
///
/// A full handshake in memory:
///
/// ```
/// use std::time::{Duration, Instant};
/// use internode::frame::Framing;
/// use internode::handshake::{
///     AcceptParams, Acceptor, AcceptorConfig, AuthToken, Hello, Initiator,
/// };
/// use internode::{LinkKind, NodeId};
///
/// let now = Instant::now();
/// let timeout = Duration::from_secs(5);
/// let addr = "127.0.0.1:7001".parse().unwrap();
/// let mut initiator = Initiator::new(Hello::new(NodeId(1), addr, LinkKind::Small, Framing::Lz4), now, timeout);
/// let mut acceptor = Acceptor::new(AcceptorConfig::new(NodeId(2)), now, timeout);
///
/// // The initiator speaks first; the acceptor hands the Hello to its shell.
/// let hello_bytes = initiator.poll_transmit().expect("the Hello is queued");
/// let hello = acceptor.handle_input(&hello_bytes, now)?.expect("the Hello is whole");
/// assert_eq!((hello.node_id, hello.listen_addr), (NodeId(1), addr));
///
/// // The shell checks the peer (authentication, ...) and accepts.
/// let params = AcceptParams::new(42, 0, AuthToken::empty());
/// let on_acceptor = acceptor.accept(params)?;
/// let mut accept_bytes = acceptor.poll_transmit().expect("the Accept is queued").to_vec();
/// accept_bytes.extend_from_slice(b"first frame"); // the acceptor may send frames at once
///
/// let on_initiator = initiator.handle_input(&accept_bytes, now)?.expect("the Accept is whole");
/// assert_eq!(on_initiator.peer_node_id, NodeId(2));
/// assert_eq!(on_initiator.peer_session_id, 42);
/// assert_eq!(on_initiator.framing, Framing::Lz4);
/// assert_eq!(on_initiator.version, on_acceptor.version);
/// assert_eq!(on_initiator.leftover, &b"first frame"[..]);
/// assert_eq!(on_acceptor.peer_listen_addr, Some(addr));
/// assert_eq!(initiator.poll_timeout(), None); // done: no timer needed
/// # Ok::<(), internode::handshake::HandshakeError>(())
/// ```
#[derive(Debug)]
pub struct Initiator {
    node_id: NodeId,
    versions: VersionRange,
    framing: Framing,
    link_kind: LinkKind,
    /// `None` when `now + timeout` does not fit an [`Instant`]: no deadline.
    deadline: Option<Instant>,
    transmit: Option<Bytes>,
    /// With a cluster secret: the key and the Hello's body (the start of the
    /// transcript).
    auth: Option<(ClusterKey, Vec<u8>)>,
    /// Over TLS: the connection's channel binding, covered by both proofs.
    binding: Option<ChannelBinding>,
    state: State,
}

#[derive(Debug)]
enum State {
    /// The Hello is sent or queued; the answer is being read.
    AwaitingReply(MessageReader),
    /// With a cluster secret: the Challenge was verified and the Proof queued; the
    /// Accept (or a Reject) is being read. Holds the acceptor's node id.
    AwaitingAccept(MessageReader, crate::NodeId),
    Established,
    Failed,
}

/// What the initiator waits for, in [`HandshakeError::UnexpectedMessage`].
const EXPECTED: &str = "Accept or Reject";
/// What an initiator with a cluster secret waits for first.
const EXPECTED_AUTH: &str = "Challenge or Reject";

impl Initiator {
    /// Starts a handshake: queues `hello` for [`poll_transmit`](Self::poll_transmit)
    /// and sets the deadline to `now + timeout`.
    ///
    /// An empty version range in `hello` is sent as is; the acceptor rejects it as
    /// [`RejectReason::IncompatibleVersion`].
    pub fn new(hello: Hello, now: Instant, timeout: Duration) -> Self {
        let mut buf =
            BytesMut::with_capacity(super::HEADER_LEN + hello.body_len() + super::TRAILER_LEN);
        hello.encode(&mut buf);
        Initiator {
            node_id: hello.node_id,
            versions: hello.versions,
            framing: hello.framing,
            link_kind: hello.link_kind,
            deadline: now.checked_add(timeout),
            transmit: Some(buf.freeze()),
            auth: None,
            binding: None,
            state: State::AwaitingReply(MessageReader::new(
                EXPECTED,
                &[
                    MessageType::Accept,
                    MessageType::Reject,
                    // Only to recognise a TCP self-connect: our own Hello coming back.
                    MessageType::Hello,
                ],
            )),
        }
    }

    /// Starts a handshake authenticated with a cluster secret: like
    /// [`new`](Self::new), but the Hello's auth field carries `nonce` (which must be
    /// fresh: [`fresh_nonce`](super::fresh_nonce)) and the key's cluster name, whatever
    /// `hello.auth` held. The initiator then requires a [`Challenge`] whose proof
    /// checks out before anything else, answers it with its [`Proof`] (queued for
    /// [`poll_transmit`](Self::poll_transmit)), and only then takes the Accept.
    pub fn with_auth(
        mut hello: Hello,
        key: &ClusterKey,
        nonce: Nonce,
        now: Instant,
        timeout: Duration,
    ) -> Self {
        hello.auth = AuthToken::new(auth::hello_auth(&nonce, key))
            .expect("a nonce and a cluster name fit the auth field");
        let mut initiator = Initiator::new(hello, now, timeout);
        let body = initiator
            .transmit
            .as_ref()
            .and_then(|b| b.get(super::HEADER_LEN..b.len() - super::TRAILER_LEN))
            .unwrap_or_default()
            .to_vec();
        initiator.auth = Some((key.clone(), body));
        initiator.state = State::AwaitingReply(MessageReader::new(
            EXPECTED_AUTH,
            &[
                MessageType::Challenge,
                MessageType::Reject,
                // An Accept without a Challenge: the peer has no secret.
                MessageType::Accept,
                MessageType::Hello,
            ],
        ));
        initiator
    }

    /// Binds the proofs to the TLS connection this handshake runs over, as
    /// [`Acceptor::bind_to_channel`](super::Acceptor::bind_to_channel) does on the
    /// other side. Call it before any input; without a cluster secret it changes
    /// nothing.
    pub fn bind_to_channel(mut self, binding: ChannelBinding) -> Self {
        self.binding = Some(binding);
        self
    }

    /// The bytes to write next, if any: the Hello, once; with a cluster secret, the
    /// Proof once the Challenge checked out.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.take()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called: the deadline while
    /// the handshake is in progress, `None` once it has completed or failed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingReply(_) | State::AwaitingAccept(..) => self.deadline,
            State::Established | State::Failed => None,
        }
    }

    /// Fails the handshake with [`HandshakeError::Timeout`] if it is still in progress
    /// at or after its deadline; otherwise does nothing.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        let in_progress = matches!(
            self.state,
            State::AwaitingReply(_) | State::AwaitingAccept(..)
        );
        if in_progress && self.deadline.is_some_and(|d| now >= d) {
            self.state = State::Failed;
            return Err(HandshakeError::Timeout);
        }
        Ok(())
    }

    /// Feeds bytes read from the connection.
    ///
    /// `Ok(None)`: all of `data` was taken and the answer is not whole yet.
    /// `Ok(Some(established))`: the peer accepted; bytes of `data` after the Accept are
    /// in [`Established::leftover`]. `Err`: the handshake failed (a Reject gives
    /// [`HandshakeError::Rejected`]); the connection must be closed. Input at or after
    /// the deadline fails with [`HandshakeError::Timeout`], and input after the
    /// handshake completed or failed with [`HandshakeError::OutOfOrder`].
    pub fn handle_input(
        &mut self,
        data: &[u8],
        now: Instant,
    ) -> Result<Option<Established>, HandshakeError> {
        let mut data = data;
        loop {
            let reader = match &mut self.state {
                State::AwaitingReply(reader) | State::AwaitingAccept(reader, _) => reader,
                State::Established => return Err(out_of_order("handle_input", "established")),
                State::Failed => return Err(out_of_order("handle_input", "failed")),
            };
            let fed = if self.deadline.is_some_and(|d| now >= d) {
                Err(HandshakeError::Timeout)
            } else {
                reader.feed(data)
            };
            let (message, used) = match fed {
                Ok(None) => return Ok(None),
                Ok(Some(whole)) => whole,
                Err(e) => {
                    self.state = State::Failed;
                    return Err(e);
                }
            };
            let rest = data.get(used..).unwrap_or_default();
            if message.ty == MessageType::Challenge {
                // Verified, the Proof queued: read on (an honest acceptor sends
                // nothing more before the Proof, but bytes are bytes).
                if let Err(e) = self.on_challenge(&message.body) {
                    self.state = State::Failed;
                    return Err(e);
                }
                data = rest;
                continue;
            }
            let result = self.on_message(message, rest);
            self.state = match result {
                Ok(_) => State::Established,
                Err(_) => State::Failed,
            };
            return result.map(Some);
        }
    }

    /// Checks the Challenge's proof and queues the Proof.
    fn on_challenge(&mut self, body: &[u8]) -> Result<(), HandshakeError> {
        let (key, hello_body) = self
            .auth
            .as_ref()
            .ok_or(HandshakeError::UnexpectedMessage {
                expected: EXPECTED,
                found: MessageType::Challenge.code(),
            })?;
        let challenge = Challenge::decode_body(body)?;
        if challenge.node_id == self.node_id {
            return Err(HandshakeError::SelfConnect);
        }
        let covered = body.get(auth::PROOF_LEN..).unwrap_or_default();
        if !key.verify_acceptor(
            &[hello_body, covered],
            self.binding.as_ref(),
            &challenge.proof,
        ) {
            return Err(HandshakeError::AuthFailed);
        }
        let proof = Proof {
            proof: key.initiator_proof(&[hello_body, body, &[]], self.binding.as_ref()),
        };
        let mut buf =
            BytesMut::with_capacity(super::HEADER_LEN + Proof::BODY_LEN + super::TRAILER_LEN);
        proof.encode(&mut buf);
        queue(&mut self.transmit, buf);
        self.state = State::AwaitingAccept(
            MessageReader::new(EXPECTED, &[MessageType::Accept, MessageType::Reject]),
            challenge.node_id,
        );
        Ok(())
    }

    /// Reports that the connection ended: [`HandshakeError::Closed`] if no byte of the
    /// answer had arrived, [`HandshakeError::Truncated`] if a part had. The handshake
    /// has failed. After the handshake completed or failed: [`HandshakeError::OutOfOrder`].
    pub fn handle_eof(&mut self) -> HandshakeError {
        match &self.state {
            State::AwaitingReply(reader) | State::AwaitingAccept(reader, _) => {
                let error = reader.eof_error();
                self.state = State::Failed;
                error
            }
            State::Established => out_of_order("handle_eof", "established"),
            State::Failed => out_of_order("handle_eof", "failed"),
        }
    }

    /// The version to retry with after `error`, if retrying can succeed where this
    /// handshake failed on versions.
    ///
    /// A current acceptor rejects with [`RejectReason::IncompatibleVersion`] only when
    /// the ranges do not overlap, so this gives `None`. An older peer that only lists
    /// one version may reject a Hello whose range holds that version but prefers a newer
    /// one: then the ranges overlap, and this gives the newest common version, for a new
    /// connection whose Hello carries [`VersionRange::single`] of it. Gives `None` when
    /// this Hello already offered only that version, so retries cannot loop, and for any
    /// other error.
    pub fn retry_version(&self, error: &HandshakeError) -> Option<u8> {
        match error {
            HandshakeError::Rejected {
                reason: RejectReason::IncompatibleVersion,
                peer_versions,
            } => self
                .versions
                .highest_common(*peer_versions)
                .filter(|&v| self.versions != VersionRange::single(v)),
            _ => None,
        }
    }

    /// Checks the answer and builds the result.
    fn on_message(
        &self,
        message: RawMessage,
        leftover: &[u8],
    ) -> Result<Established, HandshakeError> {
        match message.ty {
            MessageType::Accept => {
                // The version comes first and is checked before the rest, whose layout
                // a version this side does not speak might change.
                let version = message
                    .body
                    .first()
                    .copied()
                    .ok_or(HandshakeError::Malformed {
                        what: "Accept version",
                    })?;
                if !self.versions.contains(version) {
                    return Err(HandshakeError::IncompatibleVersion {
                        ours: self.versions,
                        theirs: VersionRange::single(version),
                    });
                }
                let accept = Accept::decode_body(&message.body)?;
                if accept.node_id == self.node_id {
                    return Err(HandshakeError::SelfConnect);
                }
                match (&self.state, &self.auth) {
                    (State::AwaitingReply(_), Some(_)) => return Err(HandshakeError::AuthMissing),
                    (State::AwaitingAccept(_, challenger), _) if *challenger != accept.node_id => {
                        return Err(HandshakeError::Malformed {
                            what: "Accept node id differs from the Challenge's",
                        })
                    }
                    _ => {}
                }
                if accept.framing != self.framing {
                    return Err(HandshakeError::UnsupportedFraming(accept.framing.code()));
                }
                Ok(Established {
                    version,
                    framing: accept.framing,
                    peer_node_id: accept.node_id,
                    peer_listen_addr: None,
                    link_kind: self.link_kind,
                    peer_session_id: accept.session_id,
                    resume: accept.resume,
                    auth: accept.auth,
                    leftover: Bytes::copy_from_slice(leftover),
                })
            }
            MessageType::Reject => {
                let reject = Reject::decode_body(&message.body)?;
                Err(HandshakeError::Rejected {
                    reason: reject.reason,
                    peer_versions: reject.versions,
                })
            }
            MessageType::Hello => match Hello::decode_body(&message.body) {
                Ok(hello) if hello.node_id == self.node_id => Err(HandshakeError::SelfConnect),
                _ => Err(HandshakeError::UnexpectedMessage {
                    expected: EXPECTED,
                    found: MessageType::Hello.code(),
                }),
            },
            // Never accepted by the readers here (the Challenge is handled before).
            other => Err(HandshakeError::UnexpectedMessage {
                expected: EXPECTED,
                found: other.code(),
            }),
        }
    }
}

/// Queues `bytes` for `poll_transmit` after what is already queued (a Challenge not
/// yet taken stays ahead of the Reject that follows it in the same input).
pub(super) fn queue(transmit: &mut Option<Bytes>, bytes: BytesMut) {
    *transmit = Some(match transmit.take() {
        None => bytes.freeze(),
        Some(queued) => {
            let mut all = BytesMut::with_capacity(queued.len() + bytes.len());
            all.extend_from_slice(&queued);
            all.extend_from_slice(&bytes);
            all.freeze()
        }
    });
}

pub(super) fn out_of_order(call: &'static str, state: &'static str) -> HandshakeError {
    HandshakeError::OutOfOrder { call, state }
}
