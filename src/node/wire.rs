//! internode's own messages and parameters inside envelopes.
//!
//! Verbs from [`RESERVED_VERBS_START`](crate::message::RESERVED_VERBS_START) up belong
//! to internode; applications cannot register handlers for them.
//!
//! - `PING` (link -> acceptor) carries a timestamp in microseconds as a vint; the
//!   acceptor answers `PONG` with the same timestamp on the same connection, which
//!   gives the initiator a round-trip time.
//! - A request carries [`PARAM_REQUEST_ID`] (a vint); its response carries the same
//!   parameter and the RESPONSE flag (and FAILURE, with a
//!   [`RemoteFailure`](crate::message::RemoteFailure) payload, when it failed).
//!
//! The envelope id is the sending link's sequence number (1, 2, ... per link actor),
//! so that lossless sessions can acknowledge and replay by id.

use bytes::{Bytes, BytesMut};

use crate::envelope::Envelope;
use crate::message::RESERVED_VERBS_START;
use crate::vint;

/// Keepalive sent by an idle link.
pub(crate) const VERB_PING: u32 = RESERVED_VERBS_START;
/// Answer to a keepalive.
pub(crate) const VERB_PONG: u32 = RESERVED_VERBS_START + 1;

/// Parameter key of a request's correlation id.
pub(crate) const PARAM_REQUEST_ID: u32 = 0;

/// A vint as a parameter or payload value.
pub(crate) fn vint_bytes(v: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(vint::encoded_len(v));
    vint::encode(v, &mut b);
    b.freeze()
}

/// The request id of a request or response envelope, if it carries a valid one.
pub(crate) fn request_id(envelope: &Envelope) -> Option<u64> {
    envelope
        .params
        .iter()
        .find(|(k, _)| *k == PARAM_REQUEST_ID)
        .and_then(|(_, v)| match vint::decode(v) {
            Ok((id, n)) if n == v.len() => Some(id),
            _ => None,
        })
}

/// Milliseconds since the UNIX epoch, for envelope creation times.
pub(crate) fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
