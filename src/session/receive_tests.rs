//! Tests of [`ReceiveSession`](super::ReceiveSession)'s receive limits on messages of
//! several frames: each frame charged as it arrives, a frame that does not fit waiting
//! for room, and the read timeout of a connection that holds a partial message. A
//! simulated clock, real [`Reserves`] for the leases, no sockets.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::envelope::{Envelope, Flags};
use crate::frame::{Decoded, Frame, Framing};
use crate::limits::{Limits, Reserves};

const VERB: u32 = 9;

fn config(capacity: usize) -> ReceiveConfig {
    ReceiveConfig {
        capacity,
        lease_chunk: 0,
        max_message: 1 << 20,
        read_timeout: Duration::from_secs(5),
        keepalive_interval: Duration::from_secs(1),
        ack_bytes: 1 << 20,
        read_capacity: crate::frame::DEFAULT_READ_CAPACITY,
        trim_after: crate::session::TRIM_AFTER,
    }
}

fn reserves() -> Reserves<u8> {
    Reserves::new(Limits {
        link_capacity: 0,
        endpoint_reserve: 1 << 20,
        global_reserve: 1 << 20,
    })
}

/// Message `id` with a payload of `len` bytes, encoded, expiring at `expires_at_ms`.
fn message(id: u64, len: usize, expires_at_ms: Option<u64>) -> Bytes {
    Envelope {
        id,
        verb: VERB,
        flags: Flags::EMPTY,
        created_at_ms: 1_000,
        expires_at_ms,
        params: Vec::new(),
        payload: Bytes::from(vec![id as u8; len]),
    }
    .to_bytes()
    .unwrap()
}

/// `m` in frames that are not self-contained, of `chunk` bytes each.
fn parts(m: &Bytes, chunk: usize) -> Vec<Decoded> {
    (0..m.len())
        .step_by(chunk)
        .map(|at| {
            Decoded::Frame(Frame {
                payload: m.slice(at..(at + chunk).min(m.len())),
                self_contained: false,
            })
        })
        .collect()
}

fn self_contained(m: Bytes) -> Decoded {
    Decoded::Frame(Frame {
        payload: m,
        self_contained: true,
    })
}

struct Rig {
    recv: ReceiveSession<u8>,
    reserves: Reserves<u8>,
    now: Instant,
    now_ms: u64,
}

impl Rig {
    fn new(capacity: usize) -> Rig {
        let now = Instant::now();
        let mut recv = ReceiveSession::new(config(capacity));
        recv.handle_hello(1, 1, 0, true, Framing::Crc, now).unwrap();
        Rig {
            recv,
            reserves: reserves(),
            now,
            now_ms: 1_000,
        }
    }

    fn input(&mut self, decoded: Decoded) {
        self.recv
            .handle_input(Ok(decoded), self.now, self.now_ms)
            .expect("the stream is fine");
    }

    /// Grants what the core asks for, if anything; returns whether it asked.
    fn grant(&mut self) -> bool {
        let Some(need) = self.recv.poll_acquire() else {
            return false;
        };
        let grant = self.reserves.try_acquire(&1, need.up_to).unwrap();
        self.recv.handle_lease(grant, self.now).unwrap();
        true
    }

    fn delivered(&mut self) -> Vec<(Envelope, Charge<u8>)> {
        let mut out = Vec::new();
        while let Some(arrival) = self.recv.poll_arrival() {
            match arrival {
                Arrival::Deliver { envelope, charge } => out.push((envelope, charge)),
                Arrival::Response { .. } => panic!("no responses here"),
            }
        }
        out
    }

    /// Gives back what the core releases, and its idle spare once it is idle.
    fn settle(&mut self) {
        self.now += HOUSEKEEPING;
        let _ = self.recv.handle_timeout(self.now);
        while let Some(grant) = self.recv.poll_release() {
            self.reserves.release(grant);
        }
    }

    fn assert_partial_is_the_buffer(&self) {
        let buffer = self
            .recv
            .conn
            .as_ref()
            .map_or(0, |c| c.assembler.body_capacity());
        assert_eq!(self.recv.partial_bytes(), buffer);
    }
}

#[test]
fn each_frame_is_charged_as_it_arrives_and_the_message_carries_the_charge() {
    let mut rig = Rig::new(1 << 20);
    let m = message(1, 300_000, None);
    let mut pending = Vec::new();
    for frame in parts(&m, 100_000) {
        rig.input(frame);
        rig.assert_partial_is_the_buffer();
        pending.push(rig.recv.pending_bytes());
    }
    // The buffer doubles, capped at the length; the last part fits (nothing to charge)
    // and completes the message, which keeps the charge.
    assert_eq!(pending, [100_000, 200_000, m.len(), m.len()]);
    assert_eq!(rig.recv.partial_bytes(), 0);
    let mut delivered = rig.delivered();
    assert_eq!(delivered.len(), 1);
    let (envelope, charge) = delivered.pop().unwrap();
    assert_eq!(envelope.payload.len(), 300_000);
    assert_eq!(charge.bytes(), m.len(), "charged once, for its length");
    assert_eq!(rig.recv.pending_bytes(), m.len());
    rig.recv.handle_processed(charge, rig.now).unwrap();
    assert_eq!(rig.recv.pending_bytes(), 0);
    assert_eq!(rig.recv.counters().received, 1);
    assert!(rig.recv.is_reading());
}

#[test]
fn a_frame_that_does_not_fit_waits_and_goes_on_with_a_lease() {
    let mut rig = Rig::new(100_000);
    let m = message(1, 300_000, None);
    let frames = parts(&m, 60_000);
    let mut frames = frames.into_iter();
    rig.input(frames.next().unwrap());
    assert_eq!(rig.recv.pending_bytes(), 60_000);
    // The second part doubles the buffer to 120 000: 20 000 beyond the capacity.
    rig.input(frames.next().unwrap());
    assert!(!rig.recv.is_reading(), "throttled");
    assert_eq!(rig.recv.counters().throttled, 1);
    assert_eq!(
        rig.recv.pending_bytes(),
        60_000,
        "the waiting frame is not charged"
    );
    rig.assert_partial_is_the_buffer();
    let need = rig.recv.poll_acquire().expect("asks for reserve");
    assert_eq!(need.at_least, 20_000);
    assert!(rig.recv.poll_acquire().is_none(), "one request at a time");
    assert!(rig.delivered().is_empty());
    let grant = rig.reserves.try_acquire(&1, need.up_to).unwrap();
    rig.recv.handle_lease(grant, rig.now).unwrap();
    assert!(
        rig.recv.is_reading(),
        "the frame was taken: reading resumes"
    );
    assert_eq!(rig.recv.pending_bytes(), 120_000);
    assert_eq!(rig.recv.reserve_bytes(), 20_000);
    rig.assert_partial_is_the_buffer();
    for frame in frames {
        rig.input(frame);
        while rig.grant() {}
        rig.assert_partial_is_the_buffer();
    }
    let delivered = rig.delivered();
    assert_eq!(delivered.len(), 1);
    let (_, charge) = delivered.into_iter().next().unwrap();
    assert_eq!(charge.bytes(), m.len());
    // Capacity first, the rest from the reserves.
    assert_eq!(charge.link, 100_000);
    assert_eq!(rig.reserves.in_use(&1), m.len() - 100_000);
    rig.recv.handle_processed(charge, rig.now).unwrap();
    rig.settle();
    assert_eq!(rig.recv.pending_bytes(), 0);
    assert_eq!(rig.reserves.in_use_global(), 0, "the books balance");
}

#[test]
fn a_waiting_frame_goes_on_when_a_handler_makes_room() {
    let mut rig = Rig::new(100_000);
    rig.input(self_contained(message(1, 70_000, None)));
    let (_, held) = rig.delivered().pop().unwrap();
    let large = message(2, 200_000, None);
    let mut frames = parts(&large, 50_000).into_iter();
    rig.input(frames.next().unwrap());
    assert!(!rig.recv.is_reading());
    // While it waits, what arrives after it waits too, in order (a shell that read on
    // although told not to).
    rig.input(frames.next().unwrap());
    assert_eq!(rig.recv.pending_bytes(), held.bytes());
    rig.recv.handle_processed(held, rig.now).unwrap();
    assert!(rig.recv.is_reading());
    assert_eq!(
        rig.recv.pending_bytes(),
        100_000,
        "both parts, doubled to 100 000"
    );
    for frame in frames {
        rig.input(frame);
        while rig.grant() {}
    }
    let (envelope, charge) = rig.delivered().pop().unwrap();
    assert_eq!((envelope.id, charge.bytes()), (2, large.len()));
    rig.recv.handle_processed(charge, rig.now).unwrap();
    rig.settle();
    assert_eq!(rig.reserves.in_use_global(), 0);
}

/// A partial message, partly on reserve, and a frame of it waiting for more.
fn rig_holding_a_partial_message() -> Rig {
    let mut rig = Rig::new(100_000);
    let m = message(1, 500_000, None);
    let mut frames = parts(&m, 60_000).into_iter();
    rig.input(frames.next().unwrap());
    rig.input(frames.next().unwrap());
    assert!(rig.grant());
    rig.input(frames.next().unwrap());
    assert!(!rig.recv.is_reading(), "the third part waits");
    assert_eq!(rig.recv.partial_bytes(), 120_000);
    assert_eq!(rig.reserves.in_use(&1), 20_000);
    rig
}

fn assert_all_given_back(rig: &mut Rig) {
    assert_eq!(rig.recv.pending_bytes(), 0);
    assert_eq!(rig.recv.partial_bytes(), 0);
    assert!(rig.recv.is_reading(), "nothing waits any more");
    // The request still out is granted later; that grant is given back too.
    rig.grant();
    rig.settle();
    assert_eq!(rig.recv.reserve_bytes(), 0);
    assert_eq!(rig.reserves.in_use_global(), 0, "the books balance");
}

#[test]
fn a_connection_that_ends_gives_its_partial_message_back() {
    let mut rig = rig_holding_a_partial_message();
    rig.recv.handle_disconnected(rig.now);
    assert!(!rig.recv.is_connected());
    assert_all_given_back(&mut rig);
}

#[test]
fn a_replaced_connection_gives_its_partial_message_back() {
    let mut rig = rig_holding_a_partial_message();
    let resume = rig
        .recv
        .handle_hello(1, 2, 0, true, Framing::Crc, rig.now)
        .unwrap();
    assert_eq!(resume, 0, "the partial message was not taken");
    assert_eq!(rig.recv.pending_bytes(), 0);
    // The new connection starts afresh: the sender writes the message again.
    let m = message(1, 500_000, None);
    for frame in parts(&m, 60_000) {
        rig.input(frame);
        while rig.grant() {}
    }
    let (envelope, charge) = rig.delivered().pop().unwrap();
    assert_eq!((envelope.id, charge.bytes()), (1, m.len()));
    rig.recv.handle_processed(charge, rig.now).unwrap();
    assert_all_given_back(&mut rig);
}

#[test]
fn a_broken_stream_gives_its_partial_message_back() {
    let mut rig = Rig::new(100_000);
    let m = message(1, 500_000, None);
    let mut frames = parts(&m, 60_000).into_iter();
    rig.input(frames.next().unwrap());
    rig.input(frames.next().unwrap());
    assert!(rig.grant());
    let broken = rig.recv.handle_input(
        Ok(self_contained(message(2, 10, None))),
        rig.now,
        rig.now_ms,
    );
    assert!(
        broken.is_err(),
        "a self-contained frame inside a large message"
    );
    assert!(!rig.recv.is_connected());
    assert_all_given_back(&mut rig);

    // A node going away takes the partial charge back with its spare lease.
    let mut rig = rig_holding_a_partial_message();
    let spare = rig.recv.take_spare().expect("all of it is spare now");
    rig.reserves.release(spare);
    assert_eq!(rig.reserves.in_use_global(), 0);
}

#[test]
fn a_throttled_connection_holding_a_partial_message_is_reset_if_nothing_moves() {
    let mut rig = rig_holding_a_partial_message();
    let parked_at = rig.now;
    let timeout = config(0).read_timeout;
    assert_eq!(
        rig.recv.poll_timeout(),
        Some(parked_at + Duration::from_secs(1)),
        "the first unsolicited pong"
    );
    // Pongs go out, but the read timeout runs.
    rig.now = parked_at + timeout - Duration::from_millis(1);
    assert!(rig.recv.handle_timeout(rig.now).is_ok());
    assert!(
        rig.recv.poll_transmit(rig.now_ms).is_some(),
        "an unsolicited pong"
    );
    rig.recv.handle_written();
    assert!(rig.recv.poll_timeout().unwrap() <= parked_at + timeout);
    rig.now = parked_at + timeout;
    assert_eq!(
        rig.recv.handle_timeout(rig.now),
        Err(DisconnectReason::read_timeout(timeout))
    );
    assert!(!rig.recv.is_connected());
    assert_eq!(rig.recv.counters().throttled_us, micros(timeout));
    assert_all_given_back(&mut rig);
}

#[test]
fn a_frame_taken_counts_as_progress_for_the_read_timeout() {
    let mut rig = rig_holding_a_partial_message();
    let timeout = config(0).read_timeout;
    // The waiting frame is taken just before the timeout, with a lease.
    rig.now += timeout - Duration::from_millis(100);
    assert!(rig.grant());
    assert!(rig.recv.is_reading());
    let taken_at = rig.now;
    rig.now += timeout - Duration::from_millis(1);
    assert!(rig.recv.handle_timeout(rig.now).is_ok(), "moved: not reset");
    assert!(rig.recv.is_connected());
    rig.now = taken_at + timeout;
    assert!(rig.recv.handle_timeout(rig.now).is_err(), "silent since");
}

#[test]
fn a_throttled_connection_without_a_partial_message_is_not_reset() {
    let mut rig = Rig::new(100);
    let frame = [message(1, 60, None), message(2, 60, None)].concat();
    rig.input(self_contained(Bytes::from(frame)));
    assert!(!rig.recv.is_reading(), "the second waits in the backlog");
    let start = rig.now;
    for _ in 0..60 {
        rig.now += Duration::from_secs(1);
        assert!(rig.recv.handle_timeout(rig.now).is_ok());
        while rig.recv.poll_transmit(rig.now_ms).is_some() {
            rig.recv.handle_written();
        }
    }
    assert!(rig.recv.is_connected(), "the read timeout is suspended");
    assert!(rig.recv.poll_timeout().unwrap() <= rig.now + Duration::from_secs(1));
    assert!(rig.now - start > Duration::from_secs(50));
}

#[test]
fn a_large_message_that_completes_after_its_deadline_gives_its_charge_back() {
    let mut rig = Rig::new(1 << 20);
    let m = message(1, 200_000, Some(rig.now_ms + 10));
    let mut frames = parts(&m, 100_000);
    let last = frames.pop().unwrap();
    for frame in frames {
        rig.input(frame);
    }
    assert!(rig.recv.pending_bytes() > 0);
    rig.now_ms += 100;
    rig.input(last);
    assert!(rig.delivered().is_empty());
    assert_eq!(rig.recv.counters().expired, 1);
    assert_eq!(rig.recv.pending_bytes(), 0, "expired: its charge went back");
}

#[test]
fn an_older_attempt_of_the_current_session_is_refused_as_such() {
    let mut rig = Rig::new(1 << 20);
    rig.recv
        .handle_hello(1, 5, 0, true, Framing::Crc, rig.now)
        .unwrap();
    let refused = rig.recv.handle_hello(1, 3, 0, true, Framing::Crc, rig.now);
    assert_eq!(
        refused,
        Err(StaleAttempt::Older {
            attempt: 3,
            current: 5
        })
    );
}

#[test]
fn a_connection_silent_after_its_handshake_is_reset_at_the_read_timeout() {
    let rig = Rig::new(1 << 20);
    let timeout = config(0).read_timeout;
    assert_eq!(rig.recv.poll_timeout(), Some(rig.now + timeout));
    let mut recv = rig.recv;
    assert!(recv.handle_timeout(rig.now + timeout / 2).is_ok());
    assert_eq!(
        recv.handle_timeout(rig.now + timeout),
        Err(DisconnectReason::read_timeout(timeout))
    );
    assert!(!recv.is_connected());
}

#[test]
fn an_idle_connection_once_heard_has_no_read_timeout_and_no_timer() {
    let mut rig = Rig::new(1 << 20);
    rig.input(self_contained(message(1, 100, None)));
    for (_, charge) in rig.delivered() {
        rig.recv.handle_processed(charge, rig.now).unwrap();
    }
    rig.settle();
    // Silent for good: the sender is idle and not its peer's keeper.
    assert_eq!(
        rig.recv.poll_timeout(),
        None,
        "no timer on an idle connection"
    );
    rig.now += Duration::from_secs(3600);
    assert!(rig.recv.handle_timeout(rig.now).is_ok());
    assert!(rig.recv.is_connected());
    // A large message under way puts the read timeout back: its sender writes on.
    let timeout = config(0).read_timeout;
    let m = message(2, 200_000, None);
    let first = parts(&m, 100_000).remove(0);
    rig.input(first);
    // First the trim deadline (a frame that large grew the shell's read buffer), then
    // the read timeout.
    let start = rig.now;
    let trim_after = config(0).trim_after;
    assert!(trim_after < timeout);
    assert_eq!(rig.recv.poll_timeout(), Some(start + trim_after));
    rig.now += trim_after;
    assert!(rig.recv.handle_timeout(rig.now).is_ok());
    assert!(rig.recv.poll_trim());
    assert_eq!(rig.recv.poll_timeout(), Some(start + timeout));
    rig.now = start + timeout;
    assert_eq!(
        rig.recv.handle_timeout(rig.now),
        Err(DisconnectReason::read_timeout(timeout))
    );
}

#[test]
fn the_charges_of_a_frame_come_back_merged_in_one_step() {
    let mut rig = Rig::new(100_000);
    // Three messages in one frame, beyond the capacity: the third needs reserve.
    let mut frame = Vec::new();
    for id in 1..=3 {
        frame.extend_from_slice(&message(id, 40_000, None));
    }
    rig.input(self_contained(Bytes::from(frame)));
    while rig.grant() {}
    let delivered = rig.delivered();
    assert_eq!(delivered.len(), 3);
    let mut merged = Charge::none();
    for (_, charge) in delivered {
        merged.merge(charge).expect("one link, one endpoint");
    }
    assert_eq!(merged.link, 100_000);
    assert!(merged.reserve.is_some());
    assert_eq!(rig.recv.pending_bytes(), merged.bytes());
    rig.recv.handle_processed_many(merged, 3, rig.now).unwrap();
    assert_eq!(rig.recv.counters().processed, 3);
    assert_eq!(rig.recv.pending_bytes(), 0);
    rig.settle();
    assert_eq!(rig.reserves.in_use_global(), 0, "the books balance");
}

#[test]
fn a_large_frame_asks_for_one_trim_once_large_frames_stop_and_small_ones_never() {
    let mut rig = Rig::new(1 << 20);
    let take = |rig: &mut Rig, id: u64, len: usize| {
        rig.input(self_contained(message(id, len, None)));
        for (_, charge) in rig.delivered() {
            rig.recv.handle_processed(charge, rig.now).unwrap();
        }
    };
    take(&mut rig, 1, 100);
    rig.settle();
    assert_eq!(rig.recv.poll_timeout(), None, "small frames arm nothing");
    assert!(!rig.recv.poll_trim());

    let after = config(0).trim_after;
    take(&mut rig, 2, 20_000);
    let first = rig.now;
    assert_eq!(rig.recv.poll_timeout(), Some(first + after));
    // Another large frame before the deadline: no trim then, the deadline moves on.
    rig.now += after / 2;
    take(&mut rig, 3, 20_000);
    let last = rig.now;
    rig.now = first + after;
    rig.recv.handle_timeout(rig.now).unwrap();
    assert!(!rig.recv.poll_trim(), "a large frame came meanwhile");
    assert_eq!(rig.recv.poll_timeout(), Some(last + after));
    rig.now = last + after;
    rig.recv.handle_timeout(rig.now).unwrap();
    assert!(rig.recv.poll_trim(), "quiet since the last large frame");
    assert!(!rig.recv.poll_trim(), "once");
    assert_eq!(rig.recv.poll_timeout(), None, "nothing armed once trimmed");
    assert!(rig.recv.is_connected());
}

#[test]
fn a_frame_that_fits_the_read_capacity_only_without_its_trailer_arms_a_trim() {
    // The codec grows the read buffer for the payload and its trailer (4 bytes with
    // CRC framing): a payload 2 bytes under the capacity grows it, so it must arm
    // the trim like any larger frame.
    let mut rig = Rig::new(1 << 20);
    let capacity = config(0).read_capacity;
    // The envelope's own length fields grow with the payload: find the payload.
    let m = (0..capacity)
        .rev()
        .map(|len| message(1, len, None))
        .find(|m| m.len() == capacity - 2)
        .expect("an envelope of the length");
    rig.input(self_contained(m));
    for (_, charge) in rig.delivered() {
        rig.recv.handle_processed(charge, rig.now).unwrap();
    }
    let after = config(0).trim_after;
    assert_eq!(rig.recv.poll_timeout(), Some(rig.now + after));
}
