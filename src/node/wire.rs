//! internode's own parameters inside envelopes (its own messages, keepalives and
//! acknowledgements, are in [`session::control`](crate::session::control)).
//!
//! - A request carries [`PARAM_REQUEST_ID`] (a vint); its response carries the same
//!   parameter and the RESPONSE flag (and FAILURE, with a
//!   [`RemoteFailure`](crate::message::RemoteFailure) payload, when it failed).
//!
//! The envelope id is the sending link's sequence number (1, 2, ... per link session),
//! so that lossless sessions can acknowledge and replay by id.

use crate::envelope::Envelope;
use crate::vint;

/// Parameter key of a request's correlation id.
pub(crate) const PARAM_REQUEST_ID: u32 = 0;

pub(crate) use crate::session::control::vint_bytes;

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
