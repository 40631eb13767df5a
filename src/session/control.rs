//! internode's own messages on a connection: keepalives and acknowledgements.
//!
//! They are envelopes with verbs from [`RESERVED_VERBS_START`] up (the reserved
//! verbs) and id 0: they carry no sequence number, are never charged to the limits and
//! never replayed.
//!
//! - `PING` (link -> acceptor) carries a timestamp in microseconds as a vint; the
//!   acceptor answers `PONG` with the same timestamp on the same connection, which gives
//!   the link a round-trip time. A throttled acceptor also sends unsolicited pongs
//!   (timestamp `u64::MAX`) so that the link's read timeout does not fire.
//! - `ACK` (acceptor -> link) carries, as a vint, the highest sequence number the
//!   acceptor has taken from the link (cumulative: everything at or below it).
//! - `EXPIRED` (acceptor -> link) carries, as a vint, the sequence number of a message
//!   the acceptor skipped because it arrived after its deadline; it always precedes the
//!   `ACK` that covers that number, so the link ends the message `Expired`, not
//!   acknowledged.
//!
//! Application messages carry their link's sequence number as the envelope id
//! (1, 2, ... per link session, given when first written and kept when replayed).

use bytes::{Bytes, BytesMut};

use crate::envelope::{Envelope, Flags};
use crate::frame::FrameEncoder;
use crate::message::RESERVED_VERBS_START;
use crate::vint;

/// Keepalive sent by a link.
pub const VERB_PING: u32 = RESERVED_VERBS_START;
/// Answer to a keepalive.
pub const VERB_PONG: u32 = RESERVED_VERBS_START + 1;
/// Cumulative acknowledgement of a link's messages.
pub const VERB_ACK: u32 = RESERVED_VERBS_START + 2;
/// The acceptor skipped one message (its sequence number): it arrived after its
/// deadline. Sent before the acknowledgement that covers it.
pub const VERB_EXPIRED: u32 = RESERVED_VERBS_START + 3;

/// The timestamp of an unsolicited pong (matches no ping).
pub const UNSOLICITED_PONG: u64 = u64::MAX;

/// A vint as a parameter or payload value.
pub fn vint_bytes(v: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(vint::encoded_len(v));
    vint::encode(v, &mut b);
    b.freeze()
}

/// The value of a payload that must be exactly one vint.
pub fn decode_vint(payload: &[u8]) -> Option<u64> {
    match vint::decode(payload) {
        Ok((v, n)) if n == payload.len() => Some(v),
        _ => None,
    }
}

/// Appends a control message of `verb` carrying `value` to `encoder`'s frames.
pub(crate) fn push(encoder: &mut FrameEncoder, verb: u32, value: u64, now_ms: u64) {
    let envelope = Envelope {
        id: 0,
        verb,
        flags: Flags::EMPTY,
        created_at_ms: now_ms,
        expires_at_ms: None,
        params: Vec::new(),
        payload: vint_bytes(value),
    };
    let mut buf = BytesMut::with_capacity(24);
    // A control envelope has no params and a short payload: it always encodes.
    if envelope.encode(&mut buf).is_ok() {
        encoder.push(&buf);
    }
}
