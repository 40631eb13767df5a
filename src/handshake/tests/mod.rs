//! Scripted-peer tests: an [`Initiator`] and an [`Acceptor`] driven against each other
//! in memory, or against hand-made bytes; and the messages' encodings.

mod auth;
mod failures;
mod messages;
mod peers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;

pub(super) use super::*;

pub(super) const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn addr() -> SocketAddr {
    "[2001:db8::7]:7000".parse().unwrap()
}

pub(super) fn hello(node: u64) -> Hello {
    Hello {
        session_id: 11,
        resume: 3,
        auth: AuthToken::new(&b"from initiator"[..]).unwrap(),
        ..Hello::new(NodeId(node), addr(), LinkKind::Large, Framing::Crc)
    }
}

pub(super) fn params() -> AcceptParams {
    AcceptParams {
        session_id: 22,
        resume: 7,
        auth: AuthToken::new(&b"from acceptor"[..]).unwrap(),
    }
}

pub(super) fn acceptor(now: Instant) -> Acceptor {
    Acceptor::new(AcceptorConfig::new(NodeId(2)), now, TIMEOUT)
}

/// A message with any type and body, and the right checksum.
pub(super) fn message(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(ty);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[MAGIC.len()..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub(super) fn encode(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut buf = BytesMut::new();
    f(&mut buf);
    buf.to_vec()
}

pub(super) fn accept_bytes(version: u8, framing: Framing, node: u64) -> Vec<u8> {
    let accept = Accept {
        version,
        framing,
        node_id: NodeId(node),
        session_id: 1,
        resume: 0,
        auth: AuthToken::empty(),
    };
    encode(|d| accept.encode(d))
}
