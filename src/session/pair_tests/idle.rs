//! Idle links: who pings (the keeper; the others only while something is
//! unconfirmed), no timer on a link with nothing to do, pruning after the idle timeout
//! and resuming the session after it.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A pair whose link prunes its connection after `idle` without traffic.
fn pruning(policy: LinkPolicy, idle: Duration) -> Pair {
    let mut config = config(policy, 1 << 20);
    config.idle_timeout = Some(idle);
    Pair::with(config, 1)
}

/// Fires the link's timers as they come due until `d` has passed, carrying what it
/// writes; returns how many times the timer fired.
fn wake_ups(pair: &mut Pair, d: Duration) -> usize {
    let end = pair.now + d;
    let mut wakes = 0;
    while let Some(at) = pair.link.poll_timeout().filter(|at| *at <= end) {
        let step = at.saturating_duration_since(pair.now);
        pair.now = at.max(pair.now);
        pair.now_ms += step.as_millis() as u64;
        pair.link.handle_timeout(pair.now, pair.now_ms);
        pair.collect();
        pair.run();
        wakes += 1;
    }
    let step = end.saturating_duration_since(pair.now);
    pair.now = end;
    pair.now_ms += step.as_millis() as u64;
    wakes
}

/// Lets the link give back its spare lease (the one timer an idle link may still
/// have, once).
fn settle_lease(pair: &mut Pair) {
    pair.advance(HOUSEKEEPING);
}

fn restarted(pair: &Pair) -> bool {
    pair.events
        .iter()
        .any(|e| matches!(e, LinkEvent::PeerRestarted { .. }))
}

#[test]
fn an_idle_connected_link_that_is_not_the_keeper_has_no_timer() {
    for policy in [LinkPolicy::Lossless, LinkPolicy::Lossy] {
        let mut pair = Pair::new(policy, 1);
        for n in 1..=3 {
            pair.send(n, None);
        }
        pair.run();
        // Lossless: acknowledged. Lossy: written, then one ping written after the
        // writes and its pong confirm them.
        let wakes = wake_ups(&mut pair, Duration::from_secs(2));
        assert!(wakes <= 2, "{policy:?}: {wakes} wake-ups to confirm");
        settle_lease(&mut pair);
        assert!(matches!(pair.link.state(), LinkState::Connected { .. }));
        assert_eq!(pair.link.poll_timeout(), None, "{policy:?}: a timer");
        assert_eq!(wake_ups(&mut pair, Duration::from_secs(3600)), 0);
        assert!(pair.link.poll_transmit(pair.now, pair.now_ms).is_none());
        // The receiving side heard the connection: no read timeout on it either.
        assert_eq!(pair.recv.poll_timeout(), None, "{policy:?}: receiver");
        // A message after an hour of silence is written and acknowledged: the
        // heartbeat starts from now, it does not find the connection silent.
        pair.send(4, None);
        pair.run();
        assert_eq!(pair.delivered, [1, 2, 3, 4], "{policy:?}");
        assert!(matches!(pair.link.state(), LinkState::Connected { .. }));
        assert_eq!(pair.connects, 1);
    }
}

/// Fires the link's timer now, which must give a ping, and writes the ping (not
/// carried): returns its bytes.
fn write_ping(pair: &mut Pair) -> BytesMut {
    pair.link.handle_timeout(pair.now, pair.now_ms);
    let ping = pair
        .link
        .poll_transmit(pair.now, pair.now_ms)
        .expect("a ping");
    pair.link.handle_written(ping.clone(), pair.now);
    ping
}

/// Fires the link's next timer, which must be a ping due `after` the last one
/// (`last`), and carries the ping to the receiver and its pong back.
fn keeper_ping(pair: &mut Pair, last: Instant, after: Duration) -> Instant {
    let at = pair.link.poll_timeout().expect("the keeper's heartbeat");
    assert_eq!(at, last + after, "a ping {after:?} after the last");
    pair.now = at;
    pair.link.handle_timeout(pair.now, pair.now_ms);
    let ping = pair.link.poll_transmit(pair.now, pair.now_ms);
    pair.carry_to_receiver(ping.expect("a ping"));
    pair.run(); // the pong
    assert_eq!(pair.link.poll_rtt(), Some(Duration::ZERO));
    at
}

#[test]
fn the_keeper_pings_at_the_idle_interval_and_only_while_it_is_the_keeper() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    pair.run();
    settle_lease(&mut pair);
    assert_eq!(pair.link.poll_timeout(), None);
    assert!(!pair.link.is_keeper());

    pair.link.handle_keeper(true, pair.now);
    assert!(pair.link.is_keeper());
    let config = HeartbeatConfig::default();
    let mut last = pair.now;
    for _ in 0..5 {
        last = keeper_ping(&mut pair, last, config.relaxed_interval());
    }
    // No longer the keeper: quiet again at once (its last ping was answered).
    pair.link.handle_keeper(false, pair.now);
    assert_eq!(pair.link.poll_timeout(), None);
    assert_eq!(wake_ups(&mut pair, Duration::from_secs(60)), 0);
    assert_eq!(pair.delivered, [1]);
}

#[test]
fn the_keeper_watches_at_the_interval_while_it_holds_a_message() {
    let config = HeartbeatConfig::default();
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.link.handle_keeper(true, pair.now);
    pair.send(1, None);
    pair.run();
    let start = pair.now;
    let last = keeper_ping(&mut pair, start, config.relaxed_interval());
    // Just before the next idle ping (4.9 s after the last read, the pong), a
    // message is written and not acknowledged: the keeper is watched at the
    // interval again. Nothing was read for longer than an interval, so it pings at
    // once; its read timeout is a whole timeout after the message, not 5 s after
    // the last read (which would be 0.1 s away).
    pair.now += config.relaxed_interval() - ms(100);
    pair.send(2, None);
    let written = pair.link.poll_transmit(pair.now, pair.now_ms).expect("2");
    pair.link.handle_written(written.clone(), pair.now);
    let sent_at = pair.now;
    let at = pair.link.poll_timeout().expect("the heartbeat");
    assert!(at <= pair.now, "a ping at once");
    let ping = write_ping(&mut pair);
    // Neither the message nor the ping has arrived just under a timeout later: no
    // timeout yet.
    pair.now = sent_at + config.timeout - ms(1);
    pair.link.handle_timeout(pair.now, pair.now_ms);
    pair.collect();
    assert!(matches!(pair.link.state(), LinkState::Connected { .. }));
    assert!(last < sent_at);
    pair.carry_to_receiver(ping);
    // The message arrives and is acknowledged: relaxed again.
    pair.carry_to_receiver(written);
    pair.run();
    assert_eq!(pair.delivered, [1, 2]);
    assert_eq!(pair.acknowledged(), 2);
    let next = pair.link.poll_timeout().expect("the keeper's heartbeat");
    assert!(
        next >= pair.now + config.relaxed_interval() - ms(1),
        "relaxed"
    );
}

#[test]
fn a_new_connection_with_nothing_left_to_write_pings_until_the_peer_answers() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, Some(pair.now_ms + 10));
    assert_eq!(pair.connects, 1);
    // The message expires before the connection can write it.
    pair.now_ms += 100;
    pair.run();
    pair.collect();
    assert_eq!(pair.outcomes[&1], Err(SendError::Expired));
    // The receiver, which has heard nothing yet, watches the connection; the link
    // pings within an interval so that it hears something.
    let connected_at = pair.now;
    let read_timeout = receive_config().read_timeout;
    assert_eq!(pair.recv.poll_timeout(), Some(connected_at + read_timeout));
    let interval = HeartbeatConfig::default().interval;
    assert_eq!(wake_ups(&mut pair, interval), 1, "one ping");
    assert_eq!(pair.recv.poll_timeout(), None, "heard");
    settle_lease(&mut pair);
    assert_eq!(pair.link.poll_timeout(), None, "answered: quiet");
}

#[test]
fn a_link_holding_unacknowledged_messages_keeps_watching_its_connection() {
    let mut pair = pruning(LinkPolicy::Lossless, ms(300));
    pair.send(1, None);
    pair.write_and_lose();
    // The peer answers pings but never got the message: it stays unacknowledged,
    // the heartbeat runs, and the connection is not pruned.
    let wakes = wake_ups(&mut pair, Duration::from_secs(5));
    assert!((4..=6).contains(&wakes), "{wakes} pings in 5 s");
    assert!(matches!(pair.link.state(), LinkState::Connected { .. }));
    assert_eq!(pair.link.unacknowledged(), 1);
    assert!(pair.link.poll_timeout().is_some());
}

#[test]
fn an_idle_link_is_pruned_and_its_next_message_resumes_the_session() {
    // Longer than the keepalive interval: a lossy link's writes are confirmed by a
    // ping after them (at 1 s) before it may be pruned.
    let idle = ms(1500);
    for policy in [LinkPolicy::Lossless, LinkPolicy::Lossy] {
        let mut pair = pruning(policy, idle);
        for n in 1..=3 {
            pair.send(n, None);
        }
        pair.run();
        let last_traffic = pair.now;
        pair.advance(idle - ms(1));
        assert!(
            matches!(pair.link.state(), LinkState::Connected { .. }),
            "{policy:?}: pruned early"
        );
        assert_eq!(pair.link.poll_timeout(), Some(last_traffic + idle));
        pair.advance(ms(1));
        assert_eq!(pair.link.state(), &LinkState::Dormant, "{policy:?}");
        assert!(!pair.connected, "the connection is closed");
        let tail: Vec<_> = pair.events.iter().rev().take(2).rev().cloned().collect();
        assert_eq!(
            tail,
            [
                LinkEvent::Disconnected {
                    reason: DisconnectReason::Idle { idle_for_ms: 1500 }
                },
                LinkEvent::Dormant
            ],
            "{policy:?}"
        );
        // Dormant: no socket, no timer, the session kept.
        assert_eq!(pair.link.poll_timeout(), None);
        assert_eq!(wake_ups(&mut pair, Duration::from_secs(60)), 0);
        pair.send(4, None);
        pair.run();
        assert_eq!(pair.connects, 2, "{policy:?}: reconnected for the message");
        assert_eq!(pair.delivered, [1, 2, 3, 4], "{policy:?}");
        assert!(!restarted(&pair), "{policy:?}");
        assert_eq!(pair.recv.counters().peer_restarts, 0, "{policy:?}");
        assert_eq!(pair.recv.counters().duplicates, 0, "{policy:?}");
        if policy == LinkPolicy::Lossless {
            assert_eq!(pair.acknowledged(), 4);
        }
        assert_eq!(pair.link.counters().peer_restarts, 0);
    }
}

#[test]
fn the_keeper_is_pruned_too_once_its_ping_is_answered() {
    let idle = Duration::from_millis(12_500);
    let mut pair = pruning(LinkPolicy::Lossless, idle);
    pair.link.handle_keeper(true, pair.now);
    pair.send(1, None);
    pair.run();
    let last_traffic = pair.now;
    // Pings at 5 s and 10 s (the idle interval), then the prune at 12.5 s:
    // keepalives are no traffic.
    let wakes = wake_ups(&mut pair, idle + ms(1));
    assert_eq!(wakes, 3, "two pings, then the prune");
    assert_eq!(pair.link.state(), &LinkState::Dormant);
    assert!(pair.events.contains(&LinkEvent::Disconnected {
        reason: DisconnectReason::Idle {
            idle_for_ms: 12_500
        }
    }));
    assert!(pair.now >= last_traffic + idle);
    assert_eq!(pair.link.poll_timeout(), None);
    // A keeper with a ping out waits for the pong (closing with a pong on its way
    // could make the kernel reset the connection instead of ending it).
    let mut pair = pruning(LinkPolicy::Lossless, ms(5500));
    pair.link.handle_keeper(true, pair.now);
    pair.send(1, None);
    pair.run();
    let start = pair.now;
    pair.now = pair.link.poll_timeout().unwrap();
    let ping = write_ping(&mut pair);
    pair.now = start + ms(5500);
    pair.link.handle_timeout(pair.now, pair.now_ms);
    assert!(matches!(pair.link.state(), LinkState::Connected { .. }));
    assert!(
        pair.link.poll_timeout().unwrap() > pair.now,
        "the read timeout"
    );
    // The pong comes: pruned at once.
    pair.at_receiver.1.extend_from_slice(&ping);
    pair.receive();
    pair.run();
    assert!(pair.link.poll_timeout().unwrap() <= pair.now);
    pair.link.handle_timeout(pair.now, pair.now_ms);
    pair.collect();
    assert_eq!(pair.link.state(), &LinkState::Dormant);
}

#[test]
fn no_pruning_without_an_idle_timeout() {
    let mut pair = Pair::new(LinkPolicy::Lossless, 1);
    pair.send(1, None);
    pair.run();
    settle_lease(&mut pair);
    assert_eq!(wake_ups(&mut pair, Duration::from_secs(3600)), 0);
    assert!(matches!(pair.link.state(), LinkState::Connected { .. }));
}
