//! Writing a message into a connection's frames, for [`LinkSession`](super::LinkSession)'s
//! transmits: first writes and replays alike.

use bytes::BytesMut;

use super::Outbound;
use crate::envelope::Envelope;
use crate::frame::FrameEncoder;

/// Writes one message with sequence number `seq` into the frames: the header through
/// `scratch`, the payload straight from where it lies. The params and payload are lent
/// to the envelope and put back, so that the message can be written again.
pub(super) fn encode(
    scratch: &mut BytesMut,
    encoder: &mut FrameEncoder,
    seq: u64,
    message: &mut Outbound,
    now_ms: u64,
) -> Result<(), crate::envelope::EnvelopeError> {
    let envelope = Envelope {
        id: seq,
        verb: message.verb,
        flags: message.flags,
        created_at_ms: now_ms,
        expires_at_ms: message.expires_at_ms,
        params: std::mem::take(&mut message.params),
        // Lent too, rather than cloned: a clone of a freshly frozen buffer allocates
        // its shared header.
        payload: std::mem::take(&mut message.payload),
    };
    scratch.clear();
    let result = envelope.encode_header(scratch);
    message.params = envelope.params;
    message.payload = envelope.payload;
    result?;
    encoder.push_parts(&[scratch, &message.payload]);
    Ok(())
}
