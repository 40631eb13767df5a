//! Faults and restarts: streams through seeded cuts, lost acknowledgements and flipped
//! bits, cuts at chosen points, restarts of either side, and a property over any
//! schedule of faults.

use super::*;

use proptest::prelude::*;

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
