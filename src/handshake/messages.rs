//! The three handshake messages and their encoding (layout in the [module
//! doc](super)).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};

use super::auth::{Nonce, NONCE_LEN, PROOF_LEN};
use super::reader::{MessageReader, RawMessage};
use super::{HandshakeError, VersionRange, HEADER_LEN, MAGIC, MAX_AUTH_LEN, TRAILER_LEN};
use crate::frame::Framing;
use crate::{LinkKind, NodeId};

/// The type byte of a handshake message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Initiator to acceptor: who I am and what I want.
    Hello,
    /// Acceptor to initiator: the connection is established.
    Accept,
    /// Acceptor to initiator: the connection is refused.
    Reject,
    /// Acceptor to initiator, with a cluster secret: the acceptor's nonce and proof.
    Challenge,
    /// Initiator to acceptor, with a cluster secret: the initiator's proof.
    Proof,
}

impl MessageType {
    /// The type's code on the wire: 1 to 5.
    pub const fn code(self) -> u8 {
        match self {
            MessageType::Hello => 1,
            MessageType::Accept => 2,
            MessageType::Reject => 3,
            MessageType::Challenge => 4,
            MessageType::Proof => 5,
        }
    }

    /// The type with the given code, if any.
    pub const fn from_code(code: u8) -> Option<MessageType> {
        match code {
            1 => Some(MessageType::Hello),
            2 => Some(MessageType::Accept),
            3 => Some(MessageType::Reject),
            4 => Some(MessageType::Challenge),
            5 => Some(MessageType::Proof),
            _ => None,
        }
    }
}

/// Why an acceptor refused a handshake.
///
/// Decoding never fails on the reason: a code this version does not know (sent by a
/// newer peer) becomes [`RejectReason::Unknown`], which is not retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The version ranges do not overlap (or, from an older peer, the initiator's
    /// preferred version is not the peer's one).
    IncompatibleVersion,
    /// The initiator has the acceptor's own node id.
    SelfConnect,
    /// The initiator's authentication data did not convince the acceptor.
    Unauthorized,
    /// The acceptor does not allow the framing the initiator asked for.
    UnsupportedFraming,
    /// The acceptor's node is shutting down.
    ShuttingDown,
    /// The acceptor belongs to another cluster (the cluster names differ).
    ClusterMismatch,
    /// A reason code this version does not know.
    Unknown(u8),
}

impl RejectReason {
    /// The reason's code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            RejectReason::IncompatibleVersion => 1,
            RejectReason::SelfConnect => 2,
            RejectReason::Unauthorized => 3,
            RejectReason::UnsupportedFraming => 4,
            RejectReason::ShuttingDown => 5,
            RejectReason::ClusterMismatch => 6,
            RejectReason::Unknown(code) => code,
        }
    }

    /// The reason with the given code; unknown codes give [`RejectReason::Unknown`].
    pub const fn from_code(code: u8) -> RejectReason {
        match code {
            1 => RejectReason::IncompatibleVersion,
            2 => RejectReason::SelfConnect,
            3 => RejectReason::Unauthorized,
            4 => RejectReason::UnsupportedFraming,
            5 => RejectReason::ShuttingDown,
            6 => RejectReason::ClusterMismatch,
            other => RejectReason::Unknown(other),
        }
    }

    /// Whether connecting again later may be accepted: only when the peer was
    /// [shutting down](RejectReason::ShuttingDown) (it may come back).
    pub const fn is_retryable(self) -> bool {
        matches!(self, RejectReason::ShuttingDown)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::IncompatibleVersion => f.write_str("incompatible protocol version"),
            RejectReason::SelfConnect => f.write_str("connection to itself"),
            RejectReason::Unauthorized => f.write_str("unauthorized"),
            RejectReason::UnsupportedFraming => f.write_str("unsupported framing"),
            RejectReason::ShuttingDown => f.write_str("shutting down"),
            RejectReason::ClusterMismatch => f.write_str("another cluster"),
            RejectReason::Unknown(code) => write!(f, "unknown reason {code}"),
        }
    }
}

/// Authentication data carried by a Hello or an Accept: at most [`MAX_AUTH_LEN`] bytes,
/// which the constructor checks, so that every message can be encoded. What the bytes
/// mean (a challenge response, a token) is up to the shell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AuthToken(Bytes);

/// Caller error: authentication data longer than [`MAX_AUTH_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication data of {len} bytes exceeds the maximum of {max}", max = MAX_AUTH_LEN)]
#[non_exhaustive]
pub struct AuthTooLong {
    /// The length that was given.
    pub len: usize,
}

impl AuthToken {
    /// No authentication data.
    pub const fn empty() -> Self {
        AuthToken(Bytes::new())
    }

    /// Wraps `bytes`, if they are at most [`MAX_AUTH_LEN`] long.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Self, AuthTooLong> {
        let bytes = bytes.into();
        if bytes.len() > MAX_AUTH_LEN {
            return Err(AuthTooLong { len: bytes.len() });
        }
        Ok(AuthToken(bytes))
    }

    /// The data.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The data, as [`Bytes`].
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no data.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The initiator's message: who it is, which versions it speaks, and what it wants.
///
/// Exhaustive on purpose, like every handshake message: its fields are the message's
/// fields on the wire, and a new one comes with a new protocol version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The versions the initiator speaks.
    pub versions: VersionRange,
    /// The initiator's node id.
    pub node_id: NodeId,
    /// The address the initiator's node listens on (IPv6 flow info and scope id are
    /// not sent).
    pub listen_addr: SocketAddr,
    /// Which link the connection is for.
    pub link_kind: LinkKind,
    /// The framing the initiator wants for the connection.
    pub framing: Framing,
    /// The initiator's session id for this link.
    pub session_id: u64,
    /// On internode's one-directional links: the sequence number at or below which
    /// every message the initiator wrote on this link session has its outcome (the
    /// acceptor forgets what it kept to tell about them); 0 = none.
    pub resume: u64,
    /// The initiator's authentication data.
    pub auth: AuthToken,
    /// Whether the initiator's link is lossless (it writes again what was not
    /// acknowledged): the acceptor then resets the connection on a corrupt frame
    /// rather than skipping it. Sent after the auth (1 byte, bit 0); absent: `false`.
    pub lossless: bool,
    /// The initiator's connection attempt on this link (1, 2, ...; 0 = not counted),
    /// so that the acceptor can refuse an older attempt that arrives after a newer one
    /// took over. Sent after the flags (8 bytes); absent: 0.
    pub attempt: u64,
}

impl Hello {
    /// A Hello for a fresh session: all [supported](VersionRange::SUPPORTED) versions,
    /// session id and resume position 0, no authentication data.
    pub fn new(
        node_id: NodeId,
        listen_addr: SocketAddr,
        link_kind: LinkKind,
        framing: Framing,
    ) -> Self {
        Hello {
            versions: VersionRange::SUPPORTED,
            node_id,
            listen_addr,
            link_kind,
            framing,
            session_id: 0,
            resume: 0,
            auth: AuthToken::empty(),
            lossless: false,
            attempt: 0,
        }
    }

    /// Length of the body: 46 bytes with an IPv4 address, 58 with IPv6, plus the auth.
    pub fn body_len(&self) -> usize {
        let ip_len = if self.listen_addr.is_ipv4() { 4 } else { 16 };
        2 + 8 + 1 + ip_len + 2 + 1 + 1 + 8 + 8 + 2 + self.auth.len() + 1 + 8
    }

    /// Appends the whole message (envelope included) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        encode_message(MessageType::Hello, self.body_len(), dst, |dst| {
            dst.put_u8(self.versions.min);
            dst.put_u8(self.versions.max);
            dst.put_u64_le(self.node_id.0);
            match self.listen_addr.ip() {
                IpAddr::V4(ip) => {
                    dst.put_u8(4);
                    dst.put_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    dst.put_u8(6);
                    dst.put_slice(&ip.octets());
                }
            }
            dst.put_u16_le(self.listen_addr.port());
            dst.put_u8(self.link_kind.code());
            dst.put_u8(self.framing.code());
            dst.put_u64_le(self.session_id);
            dst.put_u64_le(self.resume);
            put_auth(dst, &self.auth);
            dst.put_u8(u8::from(self.lossless));
            dst.put_u64_le(self.attempt);
        });
    }

    /// Decodes one whole message that must be a Hello and fill all of `src`.
    pub fn decode(src: &[u8]) -> Result<Hello, HandshakeError> {
        decode_whole(src, MessageType::Hello, "Hello").and_then(|body| Hello::decode_body(&body))
    }

    /// Decodes a Hello body (bytes after the known fields are ignored). An unknown
    /// framing code gives [`HandshakeError::UnsupportedFraming`].
    pub(crate) fn decode_body(body: &[u8]) -> Result<Hello, HandshakeError> {
        let mut c = Cursor(body);
        let versions =
            VersionRange::new(c.u8("Hello version range")?, c.u8("Hello version range")?);
        let node_id = NodeId(c.u64("Hello node id")?);
        let ip = match c.u8("Hello address family")? {
            4 => IpAddr::V4(Ipv4Addr::from(c.array::<4>("Hello IPv4 address")?)),
            6 => IpAddr::V6(Ipv6Addr::from(c.array::<16>("Hello IPv6 address")?)),
            _ => {
                return Err(HandshakeError::Malformed {
                    what: "Hello address family is neither 4 nor 6",
                })
            }
        };
        let listen_addr = SocketAddr::new(ip, c.u16("Hello port")?);
        let link_kind =
            LinkKind::from_code(c.u8("Hello link kind")?).ok_or(HandshakeError::Malformed {
                what: "Hello link kind is unknown",
            })?;
        let framing_code = c.u8("Hello framing")?;
        let session_id = c.u64("Hello session id")?;
        let resume = c.u64("Hello resume position")?;
        let auth = c.auth("Hello auth")?;
        // Appended fields: a Hello without them (or cut short in them) has the defaults.
        let (lossless, attempt) = match (c.u8("Hello flags"), c.u64("Hello attempt")) {
            (Ok(flags), Ok(attempt)) => (flags & 1 == 1, attempt),
            _ => (false, 0),
        };
        let framing = Framing::from_code(framing_code)
            .ok_or(HandshakeError::UnsupportedFraming(framing_code))?;
        Ok(Hello {
            versions,
            node_id,
            listen_addr,
            link_kind,
            framing,
            session_id,
            resume,
            auth,
            lossless,
            attempt,
        })
    }
}

/// The acceptor's message when it takes the connection.
///
/// Exhaustive on purpose, like every handshake message: its fields are the message's
/// fields on the wire, and a new one comes with a new protocol version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// The version of the connection: the newest both sides speak.
    pub version: u8,
    /// The framing of the connection: the one the initiator asked for.
    pub framing: Framing,
    /// The acceptor's node id.
    pub node_id: NodeId,
    /// The acceptor's session id for this link.
    pub session_id: u64,
    /// The last sequence number the acceptor received from the initiator on this
    /// link; 0 = none.
    pub resume: u64,
    /// The acceptor's authentication data.
    pub auth: AuthToken,
}

impl Accept {
    /// Length of the body: 28 bytes plus the auth.
    pub fn body_len(&self) -> usize {
        1 + 1 + 8 + 8 + 8 + 2 + self.auth.len()
    }

    /// Appends the whole message (envelope included) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        encode_message(MessageType::Accept, self.body_len(), dst, |dst| {
            dst.put_u8(self.version);
            dst.put_u8(self.framing.code());
            dst.put_u64_le(self.node_id.0);
            dst.put_u64_le(self.session_id);
            dst.put_u64_le(self.resume);
            put_auth(dst, &self.auth);
        });
    }

    /// Decodes one whole message that must be an Accept and fill all of `src`.
    pub fn decode(src: &[u8]) -> Result<Accept, HandshakeError> {
        decode_whole(src, MessageType::Accept, "Accept").and_then(|body| Accept::decode_body(&body))
    }

    /// Decodes an Accept body (bytes after the known fields are ignored). An unknown
    /// framing code gives [`HandshakeError::UnsupportedFraming`].
    pub(crate) fn decode_body(body: &[u8]) -> Result<Accept, HandshakeError> {
        let mut c = Cursor(body);
        let version = c.u8("Accept version")?;
        let framing_code = c.u8("Accept framing")?;
        let node_id = NodeId(c.u64("Accept node id")?);
        let session_id = c.u64("Accept session id")?;
        let resume = c.u64("Accept resume position")?;
        let auth = c.auth("Accept auth")?;
        let framing = Framing::from_code(framing_code)
            .ok_or(HandshakeError::UnsupportedFraming(framing_code))?;
        Ok(Accept {
            version,
            framing,
            node_id,
            session_id,
            resume,
            auth,
        })
    }
}

/// The acceptor's message when it refuses the connection.
///
/// Exhaustive on purpose, like every handshake message: its fields are the message's
/// fields on the wire, and a new one comes with a new protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// Why.
    pub reason: RejectReason,
    /// The versions the acceptor speaks.
    pub versions: VersionRange,
}

impl Reject {
    /// Length of the body: 3 bytes.
    pub const BODY_LEN: usize = 3;

    /// Appends the whole message (envelope included) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        encode_message(MessageType::Reject, Self::BODY_LEN, dst, |dst| {
            dst.put_u8(self.reason.code());
            dst.put_u8(self.versions.min);
            dst.put_u8(self.versions.max);
        });
    }

    /// Decodes one whole message that must be a Reject and fill all of `src`.
    pub fn decode(src: &[u8]) -> Result<Reject, HandshakeError> {
        decode_whole(src, MessageType::Reject, "Reject").and_then(|body| Reject::decode_body(&body))
    }

    /// Decodes a Reject body (bytes after the known fields are ignored).
    pub(crate) fn decode_body(body: &[u8]) -> Result<Reject, HandshakeError> {
        let mut c = Cursor(body);
        let reason = RejectReason::from_code(c.u8("Reject reason")?);
        let min = c.u8("Reject version range")?;
        let max = c.u8("Reject version range")?;
        Ok(Reject {
            reason,
            versions: VersionRange::new(min, max),
        })
    }
}

/// The acceptor's message when a cluster secret is set: sent after the Hello, before
/// any Accept, it proves that the acceptor knows the secret and challenges the
/// initiator to prove it too (with a [`Proof`]).
///
/// Exhaustive on purpose, like every handshake message: its fields are the message's
/// fields on the wire, and a new one comes with a new protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// The acceptor's proof: HMAC over the Hello body and the rest of this body.
    pub proof: [u8; PROOF_LEN],
    /// The acceptor's node id.
    pub node_id: NodeId,
    /// The acceptor's fresh nonce.
    pub nonce: Nonce,
}

impl Challenge {
    /// Length of the body: 72 bytes.
    pub const BODY_LEN: usize = PROOF_LEN + 8 + NONCE_LEN;

    /// Appends the whole message (envelope included) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        encode_message(MessageType::Challenge, Self::BODY_LEN, dst, |dst| {
            dst.put_slice(&self.proof);
            self.encode_covered(dst);
        });
    }

    /// The part of the body after the proof, which the proof covers.
    pub(crate) fn encode_covered(&self, dst: &mut impl BufMut) {
        dst.put_u64_le(self.node_id.0);
        dst.put_slice(&self.nonce);
    }

    /// Decodes one whole message that must be a Challenge and fill all of `src`.
    pub fn decode(src: &[u8]) -> Result<Challenge, HandshakeError> {
        decode_whole(src, MessageType::Challenge, "Challenge")
            .and_then(|body| Challenge::decode_body(&body))
    }

    /// Decodes a Challenge body (bytes after the known fields are ignored; the proof
    /// covers them).
    pub(crate) fn decode_body(body: &[u8]) -> Result<Challenge, HandshakeError> {
        let mut c = Cursor(body);
        Ok(Challenge {
            proof: c.array("Challenge proof")?,
            node_id: NodeId(c.u64("Challenge node id")?),
            nonce: c.array("Challenge nonce")?,
        })
    }
}

/// The initiator's message when a cluster secret is set: its answer to a
/// [`Challenge`] whose proof it verified.
///
/// Exhaustive on purpose, like every handshake message: its fields are the message's
/// fields on the wire, and a new one comes with a new protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// The initiator's proof: HMAC over the Hello body, the Challenge body and the rest
    /// of this body.
    pub proof: [u8; PROOF_LEN],
}

impl Proof {
    /// Length of the body: 32 bytes.
    pub const BODY_LEN: usize = PROOF_LEN;

    /// Appends the whole message (envelope included) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        encode_message(MessageType::Proof, Self::BODY_LEN, dst, |dst| {
            dst.put_slice(&self.proof);
        });
    }

    /// Decodes one whole message that must be a Proof and fill all of `src`.
    pub fn decode(src: &[u8]) -> Result<Proof, HandshakeError> {
        decode_whole(src, MessageType::Proof, "Proof").and_then(|body| Proof::decode_body(&body))
    }

    /// Decodes a Proof body (bytes after the proof are ignored; the proof covers them).
    pub(crate) fn decode_body(body: &[u8]) -> Result<Proof, HandshakeError> {
        Ok(Proof {
            proof: Cursor(body).array("Proof proof")?,
        })
    }
}

/// Writes the envelope around the body that `write_body` appends (exactly `body_len`
/// bytes, at most `MAX_HANDSHAKE_BODY`: guaranteed by the message types, whose auth is
/// bounded by [`AuthToken`]).
fn encode_message(
    ty: MessageType,
    body_len: usize,
    dst: &mut BytesMut,
    write_body: impl FnOnce(&mut BytesMut),
) {
    debug_assert!(body_len <= super::MAX_HANDSHAKE_BODY);
    dst.reserve(HEADER_LEN + body_len + TRAILER_LEN);
    let start = dst.len();
    dst.put_slice(&MAGIC);
    dst.put_u8(ty.code());
    dst.put_u16_le(body_len as u16);
    write_body(dst);
    debug_assert_eq!(dst.len() - start, HEADER_LEN + body_len);
    let crc = crc32fast::hash(&dst[start + MAGIC.len()..]);
    dst.put_u32_le(crc);
}

fn put_auth(dst: &mut BytesMut, auth: &AuthToken) {
    // An AuthToken holds at most MAX_AUTH_LEN (1024) bytes: the length fits a u16.
    dst.put_u16_le(auth.len() as u16);
    dst.put_slice(auth.as_bytes());
}

/// Reads one whole message of type `ty` that fills all of `src`; returns its body.
fn decode_whole(
    src: &[u8],
    ty: MessageType,
    name: &'static str,
) -> Result<Vec<u8>, HandshakeError> {
    let accepts: &'static [MessageType] = match ty {
        MessageType::Hello => &[MessageType::Hello],
        MessageType::Accept => &[MessageType::Accept],
        MessageType::Reject => &[MessageType::Reject],
        MessageType::Challenge => &[MessageType::Challenge],
        MessageType::Proof => &[MessageType::Proof],
    };
    let mut reader = MessageReader::new(name, accepts);
    match reader.feed(src)? {
        None => Err(reader.eof_error()),
        Some((_, used)) if used < src.len() => Err(HandshakeError::Malformed {
            what: "bytes after the end of the message",
        }),
        Some((RawMessage { body, .. }, _)) => Ok(body),
    }
}

/// Reads fields off the front of a body; running out is [`HandshakeError::Malformed`].
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], HandshakeError> {
        let (head, tail) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(HandshakeError::Malformed { what })?;
        self.0 = tail;
        Ok(*head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HandshakeError> {
        self.array::<1>(what).map(|[b]| b)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HandshakeError> {
        self.array(what).map(u16::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, HandshakeError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// The auth length (checked against [`MAX_AUTH_LEN`] before copying) and bytes.
    fn auth(&mut self, what: &'static str) -> Result<AuthToken, HandshakeError> {
        let len = usize::from(self.u16(what)?);
        if len > MAX_AUTH_LEN {
            return Err(HandshakeError::Malformed {
                what: "auth length above 1024",
            });
        }
        let bytes = self
            .0
            .get(..len)
            .ok_or(HandshakeError::Malformed { what })?;
        self.0 = self.0.get(len..).unwrap_or_default();
        AuthToken::new(Bytes::copy_from_slice(bytes))
            .map_err(|_| HandshakeError::Malformed { what })
    }
}
