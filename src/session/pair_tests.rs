//! Two cores against each other: a [`LinkSession`] and a [`ReceiveSession`] joined by a
//! simulated connection on a simulated clock, with cuts, lost bytes, corrupted bits
//! and restarts at chosen (or seeded random) points, in the manner of quinn-proto's
//! tests. No socket, no thread, no real time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
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
}

fn config(policy: LinkPolicy, capacity: usize) -> LinkConfig {
    LinkConfig {
        policy,
        batch_bytes: 4096,
        ..LinkConfig::new(capacity, 1024, 1 << 20)
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
        }
    }

    fn send(&mut self, n: u64, expires_at_ms: Option<u64>) {
        self.send_sized(n, 8, expires_at_ms);
    }

    /// Message `n` with a payload of `len` (at least 8) bytes.
    fn send_sized(&mut self, n: u64, len: usize, expires_at_ms: Option<u64>) {
        let mut payload = vec![0u8; len.max(8)];
        payload[..8].copy_from_slice(&n.to_le_bytes());
        let message = Outbound {
            verb: VERB,
            flags: Flags::EMPTY,
            payload: Bytes::from(payload),
            params: Vec::new(),
            expires_at_ms,
        };
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

    /// The link's next transmit is written, then lost on the wire.
    fn write_and_lose(&mut self) {
        let bytes = self.link.poll_transmit(self.now, self.now_ms).unwrap();
        self.link.handle_written(bytes, self.now);
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
        while let Some((n, outcome)) = self.link.poll_outcome() {
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
            self.recv.handle_disconnected();
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
                    self.recv.handle_processed(charge, self.now);
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

#[test]
fn a_stream_through_random_cuts_lost_acks_and_flipped_bits_arrives_exactly_once() {
    for seed in 1..=20 {
        let mut pair = Pair::new(LinkPolicy::Lossless, seed);
        pair.faults = Faults {
            cut_per_mille: 50,
            flip_per_mille: 30,
            lose_ack_per_mille: 20,
        };
        const N: u64 = 2_000;
        pair.stream(N, 7, 97);
        pair.faults = Faults::default();
        pair.settle(Duration::from_secs(60));
        assert_eq!(
            pair.delivered,
            (0..N).collect::<Vec<_>>(),
            "seed {seed}: every message once, in order ({} cuts)",
            pair.cuts
        );
        assert_eq!(pair.acknowledged(), N as usize, "seed {seed}");
        assert!(pair.cuts > 10, "seed {seed}: the faults happened");
        assert_eq!(
            pair.link.pending_bytes(),
            0,
            "seed {seed}: all bytes given back"
        );
        assert!(
            pair.link.counters().replayed > 0,
            "seed {seed}: replays happened"
        );
    }
}

#[test]
fn a_lossy_link_loses_only_what_it_reports_lost() {
    let mut pair = Pair::new(LinkPolicy::Lossy, 7);
    pair.faults = Faults {
        cut_per_mille: 50,
        ..Faults::default()
    };
    pair.stream(2_000, 5, 50);
    pair.faults = Faults::default();
    pair.settle(Duration::from_secs(60));
    assert!(
        strictly_increasing(&pair.delivered),
        "in order, at most once"
    );
    assert_eq!(pair.outcomes.len(), 2_000, "every message has an outcome");
    for (n, outcome) in &pair.outcomes {
        match outcome {
            Ok(Sent::Written) => {}
            Err(SendError::ConnectionLost) => {}
            other => panic!("{n}: {other:?}"),
        }
    }
    let lost: Vec<u64> = (0..2_000)
        .filter(|n| pair.delivered.binary_search(n).is_err())
        .collect();
    // The simulator loses only bytes of a transmit that a cut interrupts, which is
    // never reported written: so every lost message ended ConnectionLost, and every
    // message reported Written arrived.
    for n in &lost {
        assert_eq!(pair.outcomes[n], Err(SendError::ConnectionLost), "{n}");
    }
    assert!(!lost.is_empty() && pair.cuts > 0, "the cuts lost messages");
    assert_eq!(
        pair.recv.counters().duplicates,
        0,
        "a lossy link never replays"
    );
}

#[test]
fn a_cut_after_the_write_and_before_the_ack_replays_the_message_once() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    // Written and received, but the ack is lost with the connection.
    let bytes = pair.link.poll_transmit(pair.now, pair.now_ms).unwrap();
    pair.faults.lose_ack_per_mille = 1000;
    pair.carry_to_receiver(bytes);
    pair.run();
    assert_eq!(pair.delivered, [1]);
    assert_eq!(pair.outcomes.get(&1), None, "not acknowledged yet");
    assert!(!pair.connected);
    pair.faults = Faults::default();
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.delivered, [1], "delivered once");
    assert_eq!(pair.outcomes.get(&1), Some(&Ok(Sent::Acknowledged)));
    assert_eq!(pair.connects, 2);
    // The receiver's position acknowledged it in the handshake: nothing replayed.
    assert_eq!(pair.link.counters().replayed, 0);
}

#[test]
fn a_cut_before_the_message_arrives_replays_it() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    pair.send(2, None);
    pair.write_and_lose(); // written, then lost on the wire
    pair.cut();
    assert!(pair.delivered.is_empty());
    pair.send(3, None);
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.delivered, [1, 2, 3], "replayed first, in order");
    assert_eq!(pair.link.counters().replayed, 2);
    assert_eq!(pair.acknowledged(), 3);
}

#[test]
fn a_restarted_receiver_fails_what_it_had_not_acknowledged_and_says_so_once() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    for n in 1..=3 {
        pair.send(n, None);
    }
    pair.run();
    assert_eq!(pair.acknowledged(), 3);
    pair.send(4, None);
    pair.send(5, None);
    pair.write_and_lose();
    // The receiving process dies with 4 and 5 unacknowledged; a new one answers.
    pair.cut();
    pair.recv = ReceiveSession::new(receive_config());
    pair.receiver_session = 0xB2;
    pair.send(6, None); // queued, never written: goes to the new incarnation
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.outcomes[&4], Err(SendError::PeerRestarted));
    assert_eq!(pair.outcomes[&5], Err(SendError::PeerRestarted));
    assert_eq!(pair.outcomes[&6], Ok(Sent::Acknowledged));
    assert_eq!(pair.delivered, [1, 2, 3, 6]);
    let restarts: Vec<_> = pair
        .events
        .iter()
        .filter(|e| matches!(e, LinkEvent::PeerRestarted { .. }))
        .collect();
    assert_eq!(
        restarts,
        [&LinkEvent::PeerRestarted {
            previous_session_id: 0xA1,
            session_id: 0xB2
        }]
    );
    assert_eq!(pair.link.counters().peer_restarts, 1);
}

#[test]
fn a_restarted_sender_starts_over_at_the_receiver() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    for n in 1..=3 {
        pair.send(n, None);
    }
    pair.run();
    pair.cut();
    // A new link session (the sending process restarted) numbers from 1 again.
    pair.link = LinkSession::new(config(LinkPolicy::Lossless, 1 << 20), 0x5E56, pair.now);
    pair.send(10, None);
    pair.run();
    assert_eq!(pair.delivered, [1, 2, 3, 10], "its 1 is not a duplicate");
    assert_eq!(pair.recv.counters().peer_restarts, 1);
}

#[test]
fn an_unacknowledged_message_that_expired_is_not_replayed() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    // Expires before the first retry (the backoff starts at 50-100 ms).
    let deadline = pair.now_ms + 10;
    pair.send(1, Some(deadline));
    pair.send(2, None);
    pair.write_and_lose();
    pair.cut();
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.outcomes[&1], Err(SendError::Expired));
    assert_eq!(pair.outcomes[&2], Ok(Sent::Acknowledged));
    assert_eq!(pair.delivered, [2], "the receiver accepts the gap");
}

#[test]
fn a_receiver_that_stops_acknowledging_makes_sends_fail_instead_of_growing_memory() {
    let capacity = 8 * 64;
    let mut pair = Pair::with(config(LinkPolicy::Lossless, capacity), 1);
    pair.grant_reserve = false;
    pair.send(0, None);
    pair.run();
    // From now on nothing the receiver sends arrives (and nothing is cut).
    let mut overloaded = 0;
    for n in 1..1_000 {
        pair.send(n, None);
        if let Some(bytes) = pair.link.poll_transmit(pair.now, pair.now_ms) {
            pair.link.handle_written(bytes, pair.now);
        }
        if pair.outcomes.get(&n) == Some(&Err(SendError::Overloaded(OverloadLevel::Endpoint))) {
            overloaded += 1;
        }
        assert!(
            pair.link.pending_bytes() <= capacity,
            "{}",
            pair.link.pending_bytes()
        );
    }
    assert!(overloaded > 900, "{overloaded}");
    assert_eq!(pair.link.unacknowledged() * 8, pair.link.pending_bytes());
}

#[test]
fn a_lossless_link_with_nothing_unacknowledged_goes_dormant_and_resumes_its_session() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    pair.run();
    assert_eq!(pair.acknowledged(), 1);
    pair.cut();
    assert_eq!(pair.link.state(), &LinkState::Dormant);
    pair.advance(Duration::from_secs(10));
    assert_eq!(pair.connects, 1, "no retry with nothing to send");
    assert_eq!(pair.link.poll_timeout(), None, "no timer at all");
    pair.send(2, None);
    pair.run();
    assert_eq!(pair.delivered, [1, 2]);
    assert!(!pair
        .events
        .iter()
        .any(|e| matches!(e, LinkEvent::PeerRestarted { .. })));
}

#[test]
fn a_lossless_link_with_unacknowledged_messages_keeps_reconnecting() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    pair.write_and_lose();
    pair.cut();
    assert!(matches!(
        pair.link.state(),
        LinkState::WaitingToRetry { .. }
    ));
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.delivered, [1]);
}

#[test]
fn a_drain_ends_at_its_deadline_and_fails_what_remains() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    pair.write_and_lose();
    pair.send(2, None);
    // The peer is gone for good: every reconnect fails.
    pair.cut();
    let deadline = pair.now + Duration::from_secs(3);
    pair.link.handle_close(true, Some(deadline), pair.now);
    pair.collect();
    assert_eq!(pair.link.state(), &LinkState::Draining);
    // Fail every dial from now on.
    let mut timeouts = 0;
    while !pair.link.is_closed() && timeouts < 1000 {
        let at = pair
            .link
            .poll_timeout()
            .expect("a draining link has a timer");
        assert!(at <= deadline, "no timer past the deadline");
        pair.now = at.max(pair.now);
        pair.link.handle_timeout(pair.now, pair.now_ms);
        while let Some(action) = pair.link.poll_action() {
            if action == LinkAction::Connect {
                pair.link.handle_disconnected(
                    DisconnectReason::ConnectFailed(std::io::ErrorKind::ConnectionRefused),
                    pair.now,
                );
            }
        }
        timeouts += 1;
    }
    pair.collect();
    assert!(pair.link.is_closed());
    assert_eq!(
        pair.outcomes[&1],
        Err(SendError::ConnectionLost),
        "written, in doubt"
    );
    assert_eq!(pair.outcomes[&2], Err(SendError::Closed), "never written");
    assert_eq!(pair.link.pending_bytes(), 0);
}

#[test]
fn a_drain_completes_once_everything_is_acknowledged() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    for n in 1..=5 {
        pair.send(n, None);
    }
    pair.link
        .handle_close(true, Some(pair.now + Duration::from_secs(10)), pair.now);
    pair.collect();
    pair.run();
    assert!(pair.link.is_closed());
    assert_eq!(pair.acknowledged(), 5);
    pair.send(6, None);
    assert_eq!(pair.outcomes[&6], Err(SendError::Closed));
}

#[test]
fn a_peer_that_comes_back_is_reconnected_without_waiting_out_the_backoff() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    pair.write_and_lose();
    pair.cut();
    let LinkState::WaitingToRetry { until, .. } = *pair.link.state() else {
        panic!("{:?}", pair.link.state())
    };
    assert!(until > pair.now);
    pair.link.handle_peer_seen(pair.now);
    pair.collect();
    pair.run();
    assert_eq!(pair.connects, 2, "reconnected at once");
    assert_eq!(pair.delivered, [1]);
}

#[test]
fn an_address_change_moves_queued_and_unacknowledged_messages_to_the_new_connection() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    pair.write_and_lose(); // lost on the old connection
    pair.send(2, None);
    pair.link.handle_address_changed(pair.now);
    pair.collect();
    pair.run();
    assert_eq!(pair.delivered, [1, 2]);
    assert_eq!(pair.acknowledged(), 2);
}

#[test]
fn an_idle_connection_costs_one_timer_at_the_keepalive_interval() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    pair.run();
    let next = pair.link.poll_timeout().expect("the heartbeat");
    assert!(
        next >= pair.now + Duration::from_millis(99),
        "no 100 ms tick"
    );
    // Over 10 s of idleness, the link wakes about once a keepalive interval.
    let mut wakes = 0;
    let end = pair.now + Duration::from_secs(10);
    while let Some(at) = pair.link.poll_timeout().filter(|at| *at <= end) {
        pair.now = at;
        pair.link.handle_timeout(pair.now, pair.now_ms);
        pair.collect();
        pair.run();
        wakes += 1;
    }
    assert!((9..=22).contains(&wakes), "{wakes} wake-ups in 10 s");
}

#[test]
fn a_message_that_reaches_the_peer_after_its_deadline_ends_expired_not_acknowledged() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, Some(pair.now_ms + 100));
    pair.send(2, None);
    let bytes = pair.link.poll_transmit(pair.now, pair.now_ms).unwrap();
    // Slow on the way: it arrives 200 ms later.
    pair.now_ms += 200;
    pair.carry_to_receiver(bytes);
    pair.run();
    assert_eq!(pair.delivered, [2]);
    assert_eq!(pair.outcomes[&1], Err(SendError::Expired));
    assert_eq!(pair.outcomes[&2], Ok(Sent::Acknowledged));
    assert_eq!(pair.recv.counters().expired, 1);
}

#[test]
fn a_skip_the_sender_was_not_told_of_before_a_cut_still_ends_expired() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, Some(pair.now_ms + 100));
    pair.send(2, None);
    let bytes = pair.link.poll_transmit(pair.now, pair.now_ms).unwrap();
    pair.link.handle_written(bytes.clone(), pair.now);
    pair.now_ms += 200;
    // The receiver takes both, but the connection breaks before it can answer.
    pair.at_receiver.1.extend_from_slice(&bytes);
    pair.receive();
    assert_eq!(pair.delivered, [2]);
    pair.cut();
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.outcomes[&1], Err(SendError::Expired));
    assert_eq!(pair.outcomes[&2], Ok(Sent::Acknowledged));
    assert_eq!(pair.delivered, [2], "2 is not delivered twice");
}

#[test]
fn a_message_that_expires_during_a_replay_is_not_written_and_ends_expired() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    for n in 1..=10 {
        let deadline = (n == 8).then_some(pair.now_ms + 1_000);
        pair.send_sized(n, 1_000, deadline);
    }
    while let Some(bytes) = pair.link.poll_transmit(pair.now, pair.now_ms) {
        pair.link.handle_written(bytes, pair.now); // all lost on the wire
    }
    pair.cut();
    let retry = pair.link.poll_timeout().unwrap();
    pair.now = retry;
    pair.link.handle_timeout(pair.now, pair.now_ms);
    pair.collect(); // reconnected: 8 has not expired yet
    assert!(pair.connected);
    // The replay takes several batches (4 KiB each); 8 expires in between.
    let first = pair.link.poll_transmit(pair.now, pair.now_ms).unwrap();
    pair.carry_to_receiver(first);
    pair.now_ms += 2_000;
    pair.run();
    assert_eq!(pair.delivered, [1, 2, 3, 4, 5, 6, 7, 9, 10]);
    assert_eq!(pair.outcomes[&8], Err(SendError::Expired));
    assert_eq!(pair.acknowledged(), 9);
    assert_eq!(pair.link.pending_bytes(), 0);
}

#[test]
fn an_unacknowledged_message_expires_while_the_peer_is_unreachable() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, Some(pair.now_ms + 500));
    pair.write_and_lose();
    pair.cut();
    // Every reconnect fails.
    for _ in 0..100 {
        let Some(at) = pair.link.poll_timeout() else {
            break;
        };
        let step = at.saturating_duration_since(pair.now);
        pair.now = at.max(pair.now);
        pair.now_ms += step.as_millis() as u64;
        pair.link.handle_timeout(pair.now, pair.now_ms);
        while let Some(action) = pair.link.poll_action() {
            if action == LinkAction::Connect {
                let refused =
                    DisconnectReason::ConnectFailed(std::io::ErrorKind::ConnectionRefused);
                pair.link.handle_disconnected(refused, pair.now);
            }
        }
        pair.collect();
    }
    assert_eq!(pair.outcomes.get(&1), Some(&Err(SendError::Expired)));
    assert_eq!(pair.link.pending_bytes(), 0);
    assert_eq!(
        pair.link.state(),
        &LinkState::Dormant,
        "nothing waits: no more retries"
    );
}

#[test]
fn a_late_hello_of_a_replaced_sender_session_changes_nothing() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.recv
        .handle_hello(0xDEAD, 1, 0, true, Framing::Crc, pair.now)
        .unwrap();
    pair.recv.handle_disconnected();
    // The live session replaces it, takes 1..3, and loses its acknowledgement.
    pair.faults.lose_ack_per_mille = 1000;
    for n in 1..=3 {
        pair.send(n, None);
    }
    pair.run();
    pair.faults = Faults::default();
    assert_eq!(pair.delivered, [1, 2, 3]);
    // A late Hello of the replaced session (a dial that was under way) is refused.
    assert!(pair
        .recv
        .handle_hello(0xDEAD, 9, 0, true, Framing::Crc, pair.now)
        .is_err());
    pair.advance(Duration::from_secs(2));
    assert_eq!(
        pair.delivered,
        [1, 2, 3],
        "the replay is not delivered twice"
    );
    assert_eq!(pair.acknowledged(), 3);
}

#[test]
fn a_resume_position_beyond_what_was_sent_is_refused() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    pair.write_and_lose();
    pair.cut();
    pair.now += Duration::from_secs(2);
    pair.link.handle_timeout(pair.now, pair.now_ms);
    assert_eq!(pair.link.poll_action(), Some(LinkAction::Connect));
    pair.link
        .handle_connected(0xA1, 1_000, Framing::Crc, pair.now, pair.now_ms);
    assert_eq!(pair.link.poll_action(), Some(LinkAction::CloseConnection));
    assert!(!pair.link.is_connected());
    pair.collect();
    assert_eq!(
        pair.outcomes.get(&1),
        None,
        "not acknowledged by a bogus position"
    );
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.delivered, [1]);
    assert_eq!(pair.outcomes[&1], Ok(Sent::Acknowledged));
}

#[test]
fn a_message_taken_into_the_backlog_is_handed_over_even_if_it_expires_there() {
    let config = ReceiveConfig {
        capacity: 100,
        lease_chunk: 0,
        ..receive_config()
    };
    let mut recv: ReceiveSession<u8> = ReceiveSession::new(config);
    let now = Instant::now();
    let now_ms = 1_000;
    recv.handle_hello(1, 1, 0, true, Framing::Crc, now).unwrap();
    let mut encoder = crate::frame::FrameEncoder::new(Framing::Crc);
    for id in 1..=2 {
        let envelope = crate::envelope::Envelope {
            id,
            verb: VERB,
            flags: Flags::EMPTY,
            created_at_ms: now_ms,
            expires_at_ms: Some(now_ms + 50),
            params: Vec::new(),
            payload: Bytes::from(vec![id as u8; 80]),
        };
        encoder.push(&envelope.to_bytes().unwrap());
    }
    let mut wire = encoder.take();
    let frame = FrameCodec::new(Framing::Crc)
        .decode(&mut wire)
        .unwrap()
        .unwrap();
    recv.handle_input(Ok(frame), now, now_ms).unwrap();
    let Some(Arrival::Deliver { charge, .. }) = recv.poll_arrival() else {
        panic!("the first one fits")
    };
    assert!(recv.poll_arrival().is_none(), "the second waits for room");
    assert!(!recv.is_reading());
    assert_eq!(recv.position(), 2, "both taken (and acknowledged)");
    // Its deadline passes while it waits; it was acknowledged, so it is handed over.
    recv.handle_processed(charge, now + Duration::from_secs(1));
    assert!(matches!(
        recv.poll_arrival(),
        Some(Arrival::Deliver { envelope, .. }) if envelope.id == 2
    ));
    assert_eq!(recv.counters().expired, 0);
}

#[test]
fn an_expiry_note_lost_with_its_connection_is_told_again() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, Some(pair.now_ms + 100));
    pair.send(2, None);
    let bytes = pair.link.poll_transmit(pair.now, pair.now_ms).unwrap();
    pair.link.handle_written(bytes.clone(), pair.now);
    pair.now_ms += 200;
    pair.at_receiver.1.extend_from_slice(&bytes);
    pair.receive(); // 1 skipped (late), 2 delivered
                    // The note and the acknowledgement are written, then lost with the connection.
    let _lost = pair.recv.poll_transmit(pair.now_ms).unwrap();
    pair.recv.handle_written();
    pair.cut();
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.outcomes[&1], Err(SendError::Expired));
    assert_eq!(pair.outcomes[&2], Ok(Sent::Acknowledged));
    assert_eq!(pair.delivered, [2]);
}

proptest! {
    /// Any schedule of cuts and flipped bits, on any mix of sends and idle time:
    /// every message is delivered exactly once, in order, and acknowledged.
    #[test]
    fn any_schedule_of_faults_delivers_each_message_once_in_order(
        seed in any::<u64>(),
        cut in 0..200u64,
        flip in 0..100u64,
        lose_ack in 0..100u64,
        sends in prop::collection::vec(1..20u64, 1..40),
    ) {
        let mut pair = Pair::new(LinkPolicy::Lossless, seed);
        pair.faults = Faults { cut_per_mille: cut, flip_per_mille: flip, lose_ack_per_mille: lose_ack };
        let mut n = 0;
        for burst in sends {
            for _ in 0..burst {
                pair.send(n, None);
                n += 1;
            }
            pair.run();
            let idle = Duration::from_millis(pair.rng.below(400));
            pair.advance(idle);
        }
        pair.faults = Faults::default();
        pair.settle(Duration::from_secs(120));
        prop_assert_eq!(&pair.delivered, &(0..n).collect::<Vec<_>>());
        prop_assert_eq!(pair.acknowledged(), n as usize);
    }
}
