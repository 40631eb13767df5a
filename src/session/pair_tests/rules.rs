//! The rules around the stream: expiry (on arrival, during a replay, while
//! unreachable, in the backlog), a receiver that stops acknowledging, dormancy, drain
//! deadlines, wake-ups, address changes, stale Hellos, bogus positions, timers.

use super::*;

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
    for _ in 0..1000 {
        if pair.link.is_closed() {
            break;
        }
        let at = pair
            .fire_timer_refusing_dials()
            .expect("a draining link has a timer");
        assert!(at <= deadline, "no timer past the deadline");
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
fn the_keeper_of_an_idle_connection_costs_one_timer_at_the_keepalive_interval() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.link.handle_keeper(true, pair.now);
    pair.send(1, None);
    pair.run();
    let next = pair.link.poll_timeout().expect("the heartbeat");
    assert!(
        next >= pair.now + Duration::from_millis(99),
        "no 100 ms tick"
    );
    // Over 30 s of idleness, the keeper wakes about once an idle keepalive
    // interval (5 s).
    let mut wakes = 0;
    let end = pair.now + Duration::from_secs(30);
    while let Some(at) = pair.link.poll_timeout().filter(|at| *at <= end) {
        pair.now = at;
        pair.link.handle_timeout(pair.now, pair.now_ms);
        pair.collect();
        pair.run();
        wakes += 1;
    }
    assert!((6..=8).contains(&wakes), "{wakes} wake-ups in 30 s");
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
    // The receiver takes both, but the connection breaks before it can answer.
    pair.write_late(200);
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
        if pair.fire_timer_refusing_dials().is_none() {
            break;
        }
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
    pair.recv.handle_disconnected(pair.now);
    // The live session replaces it, takes 1..3, and loses its acknowledgement.
    pair.faults.lose_ack_per_mille = 1000;
    for n in 1..=3 {
        pair.send(n, None);
    }
    pair.run();
    pair.faults = Faults::default();
    assert_eq!(pair.delivered, [1, 2, 3]);
    // A late Hello of the replaced session (a dial that was under way) is refused.
    assert_eq!(
        pair.recv
            .handle_hello(0xDEAD, 9, 0, true, Framing::Crc, pair.now),
        Err(crate::session::StaleAttempt::Replaced { session_id: 0xDEAD }),
        "refused as a replaced session, whatever its attempt number"
    );
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
    recv.handle_processed(charge, now + Duration::from_secs(1))
        .unwrap();
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
    pair.write_late(200); // 1 skipped (late), 2 delivered
                          // The note and the acknowledgement are written, then lost with the connection.
    let _lost = pair.recv.poll_transmit(pair.now_ms).unwrap();
    pair.recv.handle_written();
    pair.cut();
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.outcomes[&1], Err(SendError::Expired));
    assert_eq!(pair.outcomes[&2], Ok(Sent::Acknowledged));
    assert_eq!(pair.delivered, [2]);
}

#[test]
fn every_pong_that_answers_a_ping_gives_one_round_trip_time() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.link.handle_keeper(true, pair.now);
    pair.send(1, None);
    pair.run();
    assert_eq!(pair.link.poll_rtt(), None, "no ping yet");
    // Timers fire until the link pings (the first ones may be housekeeping).
    let ping = loop {
        let at = pair.link.poll_timeout().expect("the heartbeat");
        pair.now = at.max(pair.now);
        pair.link.handle_timeout(pair.now, pair.now_ms);
        pair.collect();
        if let Some(ping) = pair.link.poll_transmit(pair.now, pair.now_ms) {
            break ping;
        }
    };
    pair.carry_to_receiver(ping);
    // The pong comes back 3 ms later.
    pair.now += Duration::from_millis(3);
    let pong = pair.recv.poll_transmit(pair.now_ms).expect("the pong");
    pair.recv.handle_written();
    pair.carry_to_sender(pong.clone());
    assert_eq!(pair.link.poll_rtt(), Some(Duration::from_millis(3)));
    assert_eq!(pair.link.poll_rtt(), None, "one sample per pong");
    // The same pong again answers nothing.
    pair.carry_to_sender(pong);
    assert_eq!(pair.link.poll_rtt(), None);
}

#[test]
fn once_everything_is_acknowledged_neither_end_holds_queues() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 7);
    for n in 1..=20 {
        pair.send(n, None);
    }
    pair.run();
    assert_eq!(pair.acknowledged(), 20);
    assert_eq!(pair.link.queues_capacity(), 0, "the sender's queues");
    assert_eq!(pair.recv.queues_capacity(), 0, "the receiver's queues");
    // And they work on.
    pair.send(21, None);
    pair.run();
    assert_eq!(pair.acknowledged(), 21);
    assert_eq!(pair.link.queues_capacity(), 0);
}

#[test]
fn once_everything_is_written_a_lossy_link_holds_no_queues() {
    let mut pair = Pair::new(LinkPolicy::Lossy, 7);
    for n in 1..=20 {
        pair.send(n, None);
    }
    pair.run();
    assert_eq!(pair.delivered.len(), 20);
    assert_eq!(pair.link.queues_capacity(), 0, "the sender's queues");
    assert_eq!(pair.recv.queues_capacity(), 0, "the receiver's queues");
}
