//! Resumable reading of one handshake message's envelope.
//!
//! The reader takes input in pieces of any size and checks each part as soon as it is
//! complete: the magic byte by byte, the type at its byte, `body_len` before it
//! reserves room for the body, the CRC32 once the message is whole. It never holds more
//! than the one message ([`MAX_HANDSHAKE_MESSAGE`] bytes at most) and never consumes
//! bytes past its end.

use super::{
    HandshakeError, MessageType, HEADER_LEN, MAGIC, MAX_HANDSHAKE_BODY, MAX_HANDSHAKE_MESSAGE,
    TRAILER_LEN,
};

/// A whole message whose envelope checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawMessage {
    /// Its type.
    pub ty: MessageType,
    /// Its body (not yet decoded).
    pub body: Vec<u8>,
}

/// Reads one message of one of the expected types.
#[derive(Debug, Clone)]
pub(crate) struct MessageReader {
    /// The message so far: envelope header, body, CRC32; at most
    /// [`MAX_HANDSHAKE_MESSAGE`] bytes.
    buf: Vec<u8>,
    /// The message's whole length once its header is in, else 0.
    total: usize,
    /// What to put in [`HandshakeError::UnexpectedMessage::expected`].
    expected: &'static str,
    /// The message types this reader takes.
    accepts: &'static [MessageType],
}

impl MessageReader {
    /// A reader for one message of a type in `accepts`, described as `expected`.
    pub fn new(expected: &'static str, accepts: &'static [MessageType]) -> Self {
        MessageReader {
            buf: Vec::with_capacity(HEADER_LEN),
            total: 0,
            expected,
            accepts,
        }
    }

    /// How many bytes of the message have arrived.
    pub fn received(&self) -> usize {
        self.buf.len()
    }

    /// The message's full length once its header has arrived, otherwise the header's.
    pub fn expected_len(&self) -> usize {
        if self.total == 0 {
            HEADER_LEN
        } else {
            self.total
        }
    }

    /// What ending the stream now means: [`HandshakeError::Closed`] if nothing had
    /// arrived, else [`HandshakeError::Truncated`].
    pub fn eof_error(&self) -> HandshakeError {
        if self.buf.is_empty() {
            HandshakeError::Closed
        } else {
            HandshakeError::Truncated {
                received: self.received(),
                expected: self.expected_len(),
            }
        }
    }

    /// Takes bytes from `data` until the message is whole: then returns it with how
    /// many bytes of `data` it took (the rest is not part of the message). `Ok(None)`:
    /// all of `data` was taken and more is needed. After an error or a whole message
    /// the reader must not be fed again.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<(RawMessage, usize)>, HandshakeError> {
        let mut rest = data;
        // The header, a byte at a time, so that each field is checked at once.
        while self.buf.len() < HEADER_LEN {
            let Some((&byte, tail)) = rest.split_first() else {
                return Ok(None);
            };
            rest = tail;
            self.header_byte(byte)?;
        }
        // The body and the CRC32, in bulk; the room for them was reserved when the
        // header completed.
        let missing = self.total.saturating_sub(self.buf.len());
        let (chunk, tail) = rest.split_at(missing.min(rest.len()));
        self.buf.extend_from_slice(chunk);
        rest = tail;
        if self.buf.len() < self.total {
            return Ok(None);
        }
        let message = self.finish()?;
        Ok(Some((message, data.len() - rest.len())))
    }

    /// Checks and keeps one byte of the envelope header.
    fn header_byte(&mut self, byte: u8) -> Result<(), HandshakeError> {
        let at = self.buf.len();
        if let Some(&want) = MAGIC.get(at) {
            if byte != want {
                let mut found = self.buf.clone();
                found.push(byte);
                return Err(HandshakeError::WrongMagic { found });
            }
        } else if at == MAGIC.len() {
            let accepted = MessageType::from_code(byte).filter(|ty| self.accepts.contains(ty));
            if accepted.is_none() {
                return Err(HandshakeError::UnexpectedMessage {
                    expected: self.expected,
                    found: byte,
                });
            }
        }
        self.buf.push(byte);
        if self.buf.len() == HEADER_LEN {
            let body_len = self.body_len();
            if body_len > MAX_HANDSHAKE_BODY {
                return Err(HandshakeError::body_too_long(body_len));
            }
            self.total = HEADER_LEN + body_len + TRAILER_LEN;
            debug_assert!(self.total <= MAX_HANDSHAKE_MESSAGE);
            self.buf.reserve_exact(self.total - self.buf.len());
        }
        Ok(())
    }

    /// The `body_len` field (0 until the header is in).
    fn body_len(&self) -> usize {
        match self.buf.get(MAGIC.len() + 1..HEADER_LEN) {
            Some(&[low, high]) => usize::from(u16::from_le_bytes([low, high])),
            _ => 0,
        }
    }

    /// Checks the CRC32 of the whole message and splits off its body.
    fn finish(&mut self) -> Result<RawMessage, HandshakeError> {
        let crc_at = self.total - TRAILER_LEN;
        let (covered, trailer) = match (self.buf.get(MAGIC.len()..crc_at), self.buf.get(crc_at..)) {
            (Some(covered), Some(&[a, b, c, d])) => (covered, u32::from_le_bytes([a, b, c, d])),
            _ => {
                return Err(HandshakeError::Malformed {
                    what: "message envelope",
                })
            }
        };
        let computed = crc32fast::hash(covered);
        if computed != trailer {
            return Err(HandshakeError::ChecksumMismatch {
                carried: trailer,
                computed,
            });
        }
        let ty = covered
            .first()
            .and_then(|&code| MessageType::from_code(code))
            .ok_or(HandshakeError::Malformed {
                what: "message type",
            })?;
        let body = covered
            .get(HEADER_LEN - MAGIC.len()..)
            .unwrap_or_default()
            .to_vec();
        Ok(RawMessage { ty, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(ty);
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(body);
        let crc = crc32fast::hash(&out[4..]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn reader() -> MessageReader {
        MessageReader::new("Hello", &[MessageType::Hello])
    }

    #[test]
    fn whole_message_in_one_piece_stops_at_its_end() {
        let mut bytes = message(1, b"body");
        bytes.extend_from_slice(b"next");
        let (raw, used) = reader().feed(&bytes).unwrap().unwrap();
        assert_eq!(raw.ty, MessageType::Hello);
        assert_eq!(raw.body, b"body");
        assert_eq!(used, bytes.len() - 4);
    }

    #[test]
    fn any_split_gives_the_same_message() {
        let bytes = message(1, &[7; 40]);
        for cut in 0..bytes.len() {
            let mut r = reader();
            assert_eq!(r.feed(&bytes[..cut]).unwrap(), None, "cut at {cut}");
            assert_eq!(r.received(), cut);
            let (raw, used) = r.feed(&bytes[cut..]).unwrap().unwrap();
            assert_eq!((raw.body.len(), used), (40, bytes.len() - cut));
        }
    }

    #[test]
    fn eof_errors_say_what_arrived() {
        let bytes = message(1, &[0; 10]);
        let mut r = reader();
        assert_eq!(r.eof_error(), HandshakeError::Closed);
        r.feed(&bytes[..3]).unwrap();
        let truncated = |received, expected| HandshakeError::Truncated { received, expected };
        assert_eq!(r.eof_error(), truncated(3, HEADER_LEN));
        r.feed(&bytes[3..12]).unwrap();
        assert_eq!(r.eof_error(), truncated(12, bytes.len()));
    }

    #[test]
    fn oversized_body_len_is_refused_before_reserving() {
        let mut r = reader();
        let err = r
            .feed(&[b'I', b'N', b'O', b'D', 1, 0x01, 0x08])
            .unwrap_err();
        assert_eq!(err, HandshakeError::body_too_long(2049));
        assert!(r.buf.capacity() < MAX_HANDSHAKE_MESSAGE);
        let mut r = reader();
        assert_eq!(
            r.feed(&[b'I', b'N', b'O', b'D', 1, 0x00, 0x08]).unwrap(),
            None
        );
        assert_eq!(r.expected_len(), MAX_HANDSHAKE_MESSAGE);
    }

    #[test]
    fn wrong_magic_and_type_are_reported_at_their_byte() {
        let err = reader().feed(b"INX").unwrap_err();
        assert_eq!(
            err,
            HandshakeError::WrongMagic {
                found: b"INX".to_vec()
            }
        );
        let err = reader().feed(&[b'I', b'N', b'O', b'D', 9]).unwrap_err();
        let expected = "Hello";
        assert_eq!(
            err,
            HandshakeError::UnexpectedMessage { expected, found: 9 }
        );
    }

    #[test]
    fn flipped_bit_fails_the_checksum() {
        let mut bytes = message(1, b"body");
        bytes[8] ^= 1;
        let err = reader().feed(&bytes).unwrap_err();
        assert!(
            matches!(err, HandshakeError::ChecksumMismatch { .. }),
            "{err:?}"
        );
    }
}
