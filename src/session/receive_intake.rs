//! Taking what a connection delivers, for [`ReceiveSession`]: frames charged as they
//! arrive ([`MessageAssembler::growth`](crate::envelope::MessageAssembler::growth)),
//! messages decoded, filtered and charged, and what waits for receive limits (the
//! backlog, a frame that did not fit) drained in order. The invariants are
//! [`ReceiveSession`]'s.

use std::time::Instant;

use bytes::Bytes;

use super::control::{self, VERB_ACK, VERB_EXPIRED, VERB_PING, VERB_PONG};
use super::{micros, Arrival, Parked, ReceiveSession};
use crate::envelope::{Envelope, Flags};
use crate::frame::Decoded;
use crate::limits::{Charge, ReserveNeeded};
use crate::session::{DisconnectReason, ProtocolViolation};

impl<K: Clone + Eq> ReceiveSession<K> {
    /// Takes one input of the connection: returns whether it was taken (false: it
    /// waits at the front of `parked`, the link throttled).
    pub(super) fn take_input(
        &mut self,
        decoded: Decoded,
        now: Instant,
        now_ms: u64,
    ) -> Result<bool, DisconnectReason> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(true);
        };
        let frame = match decoded {
            Decoded::Frame(frame) => frame,
            Decoded::Corrupt {
                payload_len,
                uncompressed_len,
                self_contained,
                ..
            } => {
                self.counters.corrupt_frames += 1;
                let lost = if uncompressed_len > 0 {
                    uncompressed_len
                } else {
                    payload_len
                };
                if conn.lossless {
                    return Err(ProtocolViolation::UnrecoverableCorruption.into());
                }
                let result = conn.assembler.corrupt_frame(lost, self_contained);
                if conn.assembler.body_capacity() == 0 {
                    // An abandoned message's buffer is gone: so is its charge.
                    self.discharge_partial();
                }
                return result
                    .map(|_| true)
                    .map_err(|_| ProtocolViolation::UnrecoverableCorruption.into());
            }
        };
        // What the frame adds to the buffer is charged before it is taken.
        let growth = conn.assembler.growth(&frame);
        if growth > 0 {
            let charged = match self.partial.as_mut() {
                Some(partial) => self.account.try_extend(partial, growth),
                None => self
                    .account
                    .try_charge(growth)
                    .map(|charge| self.partial = Some(charge)),
            };
            if let Err(need) = charged {
                self.parked.push_front(Parked {
                    decoded: Decoded::Frame(frame),
                    at: now,
                    at_ms: now_ms,
                });
                self.throttle(need, now);
                return Ok(false);
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(true);
        };
        let mut messages = std::mem::take(&mut self.scratch);
        let assembled = conn.assembler.push(frame, &mut messages);
        let skipped = conn.assembler.take_skipped();
        // The partial charge goes with the message the frame completed (a frame that
        // is not self-contained holds a part of one message only), or back.
        let mut carried = None;
        if conn.assembler.body_capacity() == 0 {
            match self.partial.take() {
                Some(partial) if assembled.is_ok() && messages.len() == 1 => {
                    carried = Some(partial);
                }
                Some(partial) => self.account.discharge(partial),
                None => {}
            }
        }
        for m in messages.drain(..) {
            let charge = carried.take();
            self.take_message(m, charge, now, now_ms);
        }
        self.scratch = messages;
        for header in skipped {
            // Taken off the stream unread: it counts as taken, so that the
            // sender stops writing it again.
            log::warn!(
                "a message of {} bytes (verb {}) skipped: larger than the maximum of {}",
                header.message_len(),
                header.verb,
                self.config.max_message
            );
            self.counters.oversized += 1;
            self.in_seq = self.in_seq.max(header.id);
        }
        assembled
            .map(|()| true)
            .map_err(|_| ProtocolViolation::MessageMalformed.into())
    }

    /// Takes a message cut by the assembler, `charge` its bytes if it was charged as it
    /// arrived: hands it over, or puts it in the backlog, or skips it (then its charge
    /// goes back).
    pub(super) fn take_message(
        &mut self,
        bytes: Bytes,
        charge: Option<Charge<K>>,
        now: Instant,
        now_ms: u64,
    ) {
        match self.accept(bytes, now_ms) {
            Some((envelope, size)) if self.backlog.is_empty() => {
                self.admit(envelope, size, charge, now);
            }
            Some((envelope, size)) => {
                // No frame is taken while the backlog waits, so a message charged as
                // it arrived never lands here; if one did, it would give its charge
                // back and be charged at its turn, like those before it.
                if let Some(charge) = charge {
                    self.account.discharge(charge);
                }
                self.backlog.push_back((envelope, size));
            }
            None => {
                if let Some(charge) = charge {
                    self.account.discharge(charge);
                }
            }
        }
    }

    /// Decodes a message and applies the sequence filter and its deadline: the
    /// envelope and its size if it is for a handler (counted as received), `None` if it
    /// was a control message, a duplicate, expired, undecodable or a response (handed
    /// to `arrivals` here, uncharged).
    pub(super) fn accept(&mut self, mut bytes: Bytes, now_ms: u64) -> Option<(Envelope, usize)> {
        let size = bytes.len();
        let envelope = match Envelope::decode(&mut bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                log::warn!("undecodable envelope skipped: {e}");
                self.counters.received += 1;
                self.counters.received_bytes += size as u64;
                self.counters.decode_failed += 1;
                return None;
            }
        };
        match envelope.verb {
            VERB_PING => {
                if let (Some(ts), Some(conn)) =
                    (control::decode_vint(&envelope.payload), self.conn.as_mut())
                {
                    conn.pong = Some(ts);
                }
                return None;
            }
            VERB_PONG | VERB_ACK | VERB_EXPIRED => return None,
            _ => {}
        }
        if envelope.id != 0 {
            if envelope.id <= self.in_seq {
                self.counters.duplicates += 1;
                return None;
            }
            self.in_seq = envelope.id;
            if let Some(conn) = self.conn.as_mut() {
                conn.unacked_bytes = conn.unacked_bytes.saturating_add(size);
            }
        }
        self.counters.received += 1;
        self.counters.received_bytes += size as u64;
        // Skipped unread if it arrived late (and the sender told, so that its outcome
        // is `Expired`); once taken, a message is handed over however long it waits.
        if envelope.expires_at_ms.is_some() && envelope.is_expired(now_ms) {
            self.counters.expired += 1;
            if envelope.id != 0 {
                self.expired_notes.push_back(envelope.id);
            }
            return None;
        }
        if envelope.flags.contains(Flags::RESPONSE) {
            self.counters.dispatched += 1;
            self.counters.processed += 1;
            self.arrivals.push_back(Arrival::Response { envelope });
            return None;
        }
        Some((envelope, size))
    }

    /// Hands a message over if the limits have room (or it comes charged); otherwise
    /// parks it at the head of the backlog and stops reading. Returns whether it went
    /// through.
    pub(super) fn admit(
        &mut self,
        envelope: Envelope,
        size: usize,
        charge: Option<Charge<K>>,
        now: Instant,
    ) -> bool {
        let charge = match charge.map_or_else(|| self.account.try_charge(size), Ok) {
            Ok(charge) => charge,
            Err(need) => {
                self.backlog.push_front((envelope, size));
                self.throttle(need, now);
                return false;
            }
        };
        self.arrivals
            .push_back(Arrival::Deliver { envelope, charge });
        true
    }

    /// Stops reading until `need` (or the handlers' releases) make room.
    pub(super) fn throttle(&mut self, need: ReserveNeeded, now: Instant) {
        if self.throttled_since.is_none() {
            self.throttled_since = Some(now);
            self.keepalive_at = Some(now + self.config.keepalive_interval);
            self.counters.throttled += 1;
        }
        self.acquire.want(Some(need));
    }

    /// Whether anything waits for receive limits (then the link is throttled).
    pub(super) fn is_waiting(&self) -> bool {
        !self.backlog.is_empty() || !self.parked.is_empty()
    }

    /// Whether a partial message is held: a frame waiting for room, or frames of a
    /// message in the assembler.
    pub(super) fn holds_partial(&self) -> bool {
        !self.parked.is_empty() || self.conn.as_ref().is_some_and(|c| !c.assembler.is_idle())
    }

    /// Goes on with what waits, in order, as far as the limits allow: the backlog,
    /// then the frames that waited (each taken counts as progress for the read
    /// timeout). Reading resumes once nothing waits.
    pub(super) fn drain(&mut self, now: Instant) -> Result<(), DisconnectReason> {
        while let Some((envelope, size)) = self.backlog.pop_front() {
            if !self.admit(envelope, size, None, now) {
                return Ok(());
            }
        }
        while let Some(parked) = self.parked.pop_front() {
            // Its deadline clock moved on as much as the monotonic one.
            let waited = now.saturating_duration_since(parked.at).as_millis();
            let now_ms = parked
                .at_ms
                .saturating_add(u64::try_from(waited).unwrap_or(u64::MAX));
            match self.take_input(parked.decoded, now, now_ms) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(reason) => {
                    self.forget_connection(now);
                    return Err(reason);
                }
            }
            if let Some(conn) = self.conn.as_mut() {
                conn.heartbeat.handle_read(now);
            }
            if !self.backlog.is_empty() {
                return Ok(());
            }
        }
        self.unthrottle(now);
        Ok(())
    }

    /// Nothing waits any more: reading resumes.
    pub(super) fn unthrottle(&mut self, now: Instant) {
        self.acquire.want(None);
        if let Some(since) = self.throttled_since.take() {
            self.keepalive_at = None;
            self.counters.throttled_us += micros(now.saturating_duration_since(since));
            // The silence was ours: the read timeout starts again.
            if let Some(conn) = self.conn.as_mut() {
                conn.heartbeat.handle_read(now);
            }
        }
    }

    /// The current connection is gone (ended, replaced, reset): its partial message's
    /// charge goes back and its waiting frames are dropped; the backlog stays.
    pub(super) fn forget_connection(&mut self, now: Instant) {
        self.drop_connection_state();
        self.keepalive_at = None;
        if self.backlog.is_empty() {
            self.unthrottle(now);
        }
    }

    pub(super) fn drop_connection_state(&mut self) {
        self.conn = None;
        self.parked.clear();
        self.discharge_partial();
    }

    pub(super) fn discharge_partial(&mut self) {
        if let Some(partial) = self.partial.take() {
            self.account.discharge(partial);
        }
    }
}
