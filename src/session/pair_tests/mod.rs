//! Two cores against each other: a [`LinkSession`] and a [`ReceiveSession`] joined by a
//! simulated connection on a simulated clock, with cuts, lost bytes, corrupted bits
//! and restarts at chosen (or seeded random) points, in the manner of quinn-proto's
//! tests. No socket, no thread, no real time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::backoff::SplitMix64;
use super::*;
use crate::envelope::Flags;
use crate::frame::{FrameCodec, Framing};
use crate::limits::{Limits, Reserves};
use crate::outcome::{OverloadLevel, SendError, Sent};

const VERB: u32 = 7;
const PEER: u8 = 2;

/// The deterministic generator of the faults (the backoff's).
struct Rng(SplitMix64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.next() % n.max(1)
    }
}

/// What can go wrong on the simulated connection.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    /// Chance (per transmit, in 1/1000) that the connection is cut while the transmit
    /// is on the wire: part of it arrives, the rest and anything unread is lost.
    cut_per_mille: u64,
    /// Chance (per transmit, in 1/1000) that one bit of it is flipped.
    flip_per_mille: u64,
    /// Chance (per ack transmit, in 1/1000) that it is lost (cut before it arrives).
    lose_ack_per_mille: u64,
}

/// The two ends and the wire between them.
struct Pair {
    now: Instant,
    now_ms: u64,
    link: LinkSession<u8, u64>,
    recv: ReceiveSession<u8>,
    reserves: Reserves<u8>,
    receiver_session: u64,
    connected: bool,
    /// Decoders of the current connection, at each end.
    at_receiver: (FrameCodec, BytesMut),
    at_sender: (FrameCodec, BytesMut),
    delivered: Vec<u64>,
    outcomes: HashMap<u64, Result<Sent, SendError>>,
    events: Vec<LinkEvent>,
    connects: u64,
    cuts: u64,
    rng: Rng,
    faults: Faults,
    /// Give reserve when asked (else the shell reports a shortage).
    grant_reserve: bool,
    /// Answers to credit asks, in the order they came.
    credit_answers: Vec<(u64, CreditAnswer)>,
    /// A credit reserve request found the reserves short and waits for them.
    credit_parked: Option<crate::limits::ReserveNeeded>,
}

fn config(policy: LinkPolicy, capacity: usize) -> LinkConfig {
    LinkConfig {
        policy,
        batch_bytes: 4096,
        ..LinkConfig::new(capacity, 1024, 1 << 20)
    }
}

/// Message `n`: a payload of `len` (at least 8) bytes that starts with `n`.
fn message(n: u64, len: usize, expires_at_ms: Option<u64>) -> Outbound {
    let mut payload = vec![0u8; len.max(8)];
    payload[..8].copy_from_slice(&n.to_le_bytes());
    Outbound {
        verb: VERB,
        flags: Flags::EMPTY,
        payload: Bytes::from(payload),
        params: Vec::new(),
        expires_at_ms,
    }
}

fn receive_config() -> ReceiveConfig {
    ReceiveConfig {
        capacity: 1 << 20,
        lease_chunk: 1024,
        max_message: 1 << 20,
        read_timeout: Duration::from_secs(5),
        keepalive_interval: Duration::from_secs(1),
        ack_bytes: 16 << 10,
        read_capacity: crate::frame::DEFAULT_READ_CAPACITY,
        trim_after: crate::session::TRIM_AFTER,
    }
}

impl Pair {
    fn new(policy: LinkPolicy, seed: u64) -> Pair {
        Pair::with(config(policy, 1 << 20), seed)
    }

    fn with(config: LinkConfig, seed: u64) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            now_ms: 1_000_000,
            link: LinkSession::new(config, 0x5E55, now),
            recv: ReceiveSession::new(receive_config()),
            reserves: Reserves::new(Limits {
                link_capacity: 0,
                endpoint_reserve: 1 << 20,
                global_reserve: 1 << 21,
            }),
            receiver_session: 0xA1,
            connected: false,
            at_receiver: (FrameCodec::new(Framing::Crc), BytesMut::new()),
            at_sender: (FrameCodec::new(Framing::Crc), BytesMut::new()),
            delivered: Vec::new(),
            outcomes: HashMap::new(),
            events: Vec::new(),
            connects: 0,
            cuts: 0,
            rng: Rng(SplitMix64(seed)),
            faults: Faults::default(),
            grant_reserve: true,
            credit_answers: Vec::new(),
            credit_parked: None,
        }
    }

    fn send(&mut self, n: u64, expires_at_ms: Option<u64>) {
        self.send_sized(n, 8, expires_at_ms);
    }

    /// Message `n` with a payload of `len` (at least 8) bytes.
    fn send_sized(&mut self, n: u64, len: usize, expires_at_ms: Option<u64>) {
        let message = message(n, len, expires_at_ms);
        let mut admission = self.link.handle_send(message, n, self.now, self.now_ms);
        while let Admission::NeedReserve {
            message,
            token,
            need,
        } = admission
        {
            let granted = if self.grant_reserve {
                self.reserves.try_acquire(&PEER, need.up_to).ok()
            } else {
                None
            };
            match granted {
                Some(grant) => {
                    self.link.handle_lease(grant);
                    admission = self.link.handle_send(message, token, self.now, self.now_ms);
                }
                None => {
                    self.link
                        .handle_shortage(message, token, OverloadLevel::Endpoint);
                    break;
                }
            }
        }
        self.collect();
    }

    /// Serves the parked credit reserve request if the reserves (and `grant_reserve`)
    /// allow; whether it was served.
    fn serve_credit_acquire(&mut self) -> bool {
        let Some(need) = self.credit_parked else {
            return false;
        };
        let available = self.reserves.available(&PEER);
        if !self.grant_reserve || available < need.at_least {
            return false;
        }
        let grant = self.reserves.try_acquire(&PEER, need.up_to.min(available));
        self.credit_parked = None;
        self.link.handle_credit_lease(grant.ok(), self.now);
        self.collect();
        true
    }

    /// Message `n` of `len` bytes sent under credit.
    fn send_credited(&mut self, n: u64, len: usize) {
        let admission =
            self.link
                .handle_send_credited(message(n, len, None), n, self.now, self.now_ms);
        assert!(
            !matches!(admission, Admission::NeedReserve { .. }),
            "a message within credit needs no reserve"
        );
        self.collect();
    }

    /// A producer asks for credit.
    fn ask_credit(&mut self, id: u64, at_least: usize, up_to: usize) {
        self.link.handle_credit_ask(id, at_least, up_to, self.now);
        self.collect();
    }

    /// The link's next transmit is written, then lost on the wire.
    fn write_and_lose(&mut self) {
        let bytes = self.link.poll_transmit(self.now, self.now_ms).unwrap();
        self.link.handle_written(bytes, self.now);
    }

    /// The link's next transmit is written and reaches the receiver `delay_ms` later
    /// (its clock moves on), which reads it without answering yet.
    fn write_late(&mut self, delay_ms: u64) {
        let bytes = self.link.poll_transmit(self.now, self.now_ms).unwrap();
        self.link.handle_written(bytes.clone(), self.now);
        self.now_ms += delay_ms;
        self.at_receiver.1.extend_from_slice(&bytes);
        self.receive();
    }

    /// Moves time to the link's next timer and fires it, refusing every connect the
    /// link then tries (the peer is gone); the instant it fired, or `None` if the link
    /// has no timer.
    fn fire_timer_refusing_dials(&mut self) -> Option<Instant> {
        let at = self.link.poll_timeout()?;
        let step = at.saturating_duration_since(self.now);
        self.now = at.max(self.now);
        self.now_ms += step.as_millis() as u64;
        self.link.handle_timeout(self.now, self.now_ms);
        while let Some(action) = self.link.poll_action() {
            if action == LinkAction::Connect {
                let refused =
                    DisconnectReason::ConnectFailed(std::io::ErrorKind::ConnectionRefused);
                self.link.handle_disconnected(refused, self.now);
            }
        }
        self.collect();
        Some(at)
    }

    /// Sends `n` messages (numbered from 0), moving everything every `run_every` and
    /// letting 300 ms pass every `idle_every`.
    fn stream(&mut self, n: u64, run_every: u64, idle_every: u64) {
        for m in 0..n {
            self.send(m, None);
            if m % run_every == 0 {
                self.run();
            }
            if m % idle_every == 0 {
                self.advance(Duration::from_millis(300));
            }
        }
    }

    /// Takes the link's outcomes, events and releases, and carries out its actions.
    fn collect(&mut self) {
        while let Some(done) = self.link.poll_outcome() {
            let (n, outcome) = (done.token, done.result);
            assert!(
                self.outcomes.insert(n, outcome).is_none(),
                "message {n} got two outcomes"
            );
        }
        while let Some(e) = self.link.poll_event() {
            self.events.push(e);
        }
        while let Some(grant) = self.link.poll_release() {
            self.reserves.release(grant);
        }
        while let Some(grant) = self.recv.poll_release() {
            drop(grant); // the receiver's reserves are not modelled
        }
        while let Some(answer) = self.link.poll_credit() {
            self.credit_answers.push(answer);
        }
        if let Some(need) = self.link.poll_credit_acquire() {
            // As the ResourceLimits actor does: at once if it can, else parked.
            self.credit_parked = Some(need);
            if !self.serve_credit_acquire() {
                self.link.handle_credit_shortage(OverloadLevel::Endpoint);
            }
            return self.collect();
        }
        while let Some(action) = self.link.poll_action() {
            match action {
                LinkAction::Connect => self.dial(),
                LinkAction::CloseConnection => self.drop_connection(),
                LinkAction::Stop => {}
            }
        }
    }

    /// The handshake, done at once: the receiver answers the resume position.
    fn dial(&mut self) {
        self.drop_connection();
        let lossless = self.link.policy() == LinkPolicy::Lossless;
        self.connects += 1;
        let resume = self
            .recv
            .handle_hello(
                self.link.session_id(),
                self.connects,
                self.link.settled(),
                lossless,
                Framing::Crc,
                self.now,
            )
            .expect("a fresh attempt");
        self.connected = true;
        self.at_receiver = (FrameCodec::new(Framing::Crc), BytesMut::new());
        self.at_sender = (FrameCodec::new(Framing::Crc), BytesMut::new());
        self.link.handle_connected(
            self.receiver_session,
            resume,
            Framing::Crc,
            self.now,
            self.now_ms,
        );
        self.collect();
    }

    fn drop_connection(&mut self) {
        if self.connected {
            self.connected = false;
            self.recv.handle_disconnected(self.now);
        }
    }

    /// The connection breaks: both ends learn it.
    fn cut(&mut self) {
        self.cuts += 1;
        self.drop_connection();
        self.link
            .handle_disconnected(DisconnectReason::PeerClosed, self.now);
        self.collect();
    }

    /// Moves everything that can move, until nothing does (or the connection breaks).
    fn run(&mut self) {
        for _ in 0..100_000 {
            if !self.connected {
                return;
            }
            let mut moved = false;
            if let Some(bytes) = self.link.poll_transmit(self.now, self.now_ms) {
                moved = true;
                self.carry_to_receiver(bytes);
            }
            if !self.connected {
                return;
            }
            if let Some(bytes) = self.recv.poll_transmit(self.now_ms) {
                moved = true;
                self.recv.handle_written();
                self.carry_to_sender(bytes);
            }
            if !moved {
                return;
            }
        }
        panic!("the cores never settle");
    }

    fn carry_to_receiver(&mut self, mut bytes: BytesMut) {
        let flip = self.rng.below(1000) < self.faults.flip_per_mille;
        let cut = self.rng.below(1000) < self.faults.cut_per_mille;
        if flip && !bytes.is_empty() {
            let at = self.rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << self.rng.below(8);
        }
        let arrives = if cut {
            self.rng.below(bytes.len() as u64 + 1) as usize
        } else {
            bytes.len()
        };
        self.at_receiver.1.extend_from_slice(&bytes[..arrives]);
        if !cut {
            // Written whole (a cut write is never reported written).
            self.link.handle_written(bytes, self.now);
            self.collect();
        }
        self.receive();
        if cut && self.connected {
            self.cut();
        }
    }

    fn receive(&mut self) {
        loop {
            if !self.connected {
                return;
            }
            let (codec, buf) = &mut self.at_receiver;
            let item = match codec.decode(buf) {
                Ok(Some(item)) => Ok(item),
                Ok(None) => {
                    // Everything that arrived is read: the batch ends.
                    self.recv.handle_caught_up();
                    return;
                }
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            let result = self.recv.handle_input(item, self.now, self.now_ms);
            self.deliver();
            if result.is_err() || failed {
                // The receiver closes the connection; the sender sees it closed.
                self.connected = false;
                self.cut();
                return;
            }
        }
    }

    /// The receiver's handlers: every message is processed at once.
    fn deliver(&mut self) {
        while let Some(arrival) = self.recv.poll_arrival() {
            match arrival {
                Arrival::Deliver { envelope, charge } => {
                    let n = u64::from_le_bytes(envelope.payload[..8].try_into().unwrap());
                    self.delivered.push(n);
                    self.recv
                        .handle_processed(charge, self.now)
                        .expect("nothing waits");
                }
                Arrival::Response { .. } => panic!("no responses here"),
            }
        }
    }

    fn carry_to_sender(&mut self, bytes: BytesMut) {
        if self.rng.below(1000) < self.faults.lose_ack_per_mille {
            self.cut();
            return;
        }
        let (codec, buf) = &mut self.at_sender;
        buf.extend_from_slice(&bytes);
        while let Ok(Some(item)) = codec.decode(buf) {
            self.link.handle_input(Ok(item), self.now);
        }
        self.collect();
    }

    /// Lets `d` pass: the link's timers fire as they come due.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.link.poll_timeout().filter(|at| *at <= end) {
            let step = at.max(self.now) - self.now;
            self.now = at.max(self.now);
            self.now_ms += step.as_millis() as u64;
            self.link.handle_timeout(self.now, self.now_ms);
            self.collect();
            self.run();
        }
        let step = end - self.now;
        self.now = end;
        self.now_ms += step.as_millis() as u64;
        self.link.handle_timeout(self.now, self.now_ms);
        self.collect();
        self.run();
    }

    /// Runs until nothing waits on the link (or `limit` of simulated time passed).
    fn settle(&mut self, limit: Duration) {
        let end = self.now + limit;
        while self.now < end {
            self.run();
            if self.link.queued() == 0 && self.link.unacknowledged() == 0 {
                return;
            }
            self.advance(Duration::from_millis(50));
        }
    }

    fn acknowledged(&self) -> usize {
        self.outcomes
            .values()
            .filter(|o| **o == Ok(Sent::Acknowledged))
            .count()
    }
}

fn strictly_increasing(v: &[u64]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

mod credit;
mod faults;
mod idle;
mod rules;
