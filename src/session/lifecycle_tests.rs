//! Tests of the link lifecycle on a simulated clock.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use super::*;
use crate::handshake::HandshakeError;
use crate::session::{BackoffConfig, ProtocolViolation};

use LifecycleAction::{CloseConnection, Connect, FailQueued, Stop};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn refused() -> DisconnectReason {
    DisconnectReason::ConnectFailed(ErrorKind::ConnectionRefused)
}

fn new_link() -> (Lifecycle, Instant) {
    (
        Lifecycle::new(Backoff::new(BackoffConfig::default(), 0x5EED)),
        Instant::now(),
    )
}

fn events(link: &mut Lifecycle) -> Vec<LinkEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

/// Checks that `actions` schedule one retry after a delay within `[ceiling/2,
/// ceiling]` of `now`, and returns when.
fn expect_retry(actions: &[LifecycleAction], now: Instant, ceiling: Duration) -> Instant {
    let [LifecycleAction::ScheduleRetry { at, delay }] = *actions else {
        panic!("expected one ScheduleRetry, got {actions:?}");
    };
    assert!(
        delay >= ceiling / 2 && delay <= ceiling,
        "{delay:?} vs {ceiling:?}"
    );
    assert_eq!(at, now + delay);
    at
}

#[test]
fn the_first_message_starts_connecting() {
    let (mut link, _) = new_link();
    assert_eq!(link.state(), &LinkState::Dormant);
    assert_eq!(link.poll_timeout(), None);
    assert_eq!(link.handle_messages_waiting(), [Connect]);
    assert_eq!(link.state(), &LinkState::Connecting { attempt: 1 });
    // More messages while connecting change nothing.
    assert!(link.handle_messages_waiting().is_empty());
    assert_eq!(events(&mut link), [LinkEvent::Connecting { attempt: 1 }]);
}

#[test]
fn failures_with_messages_waiting_retry_with_growing_delays() {
    let (mut link, mut now) = new_link();
    let config = BackoffConfig::default();
    link.handle_messages_waiting();
    for n in 0..8u32 {
        now += ms(5);
        let at = expect_retry(
            &link.handle_disconnected(refused(), true, now),
            now,
            config.ceiling(n),
        );
        assert_eq!(
            link.state(),
            &LinkState::WaitingToRetry {
                attempt: n + 2,
                until: at
            }
        );
        assert_eq!(link.poll_timeout(), Some(at));
        // An early timer does nothing; a due one starts the next attempt.
        assert!(link.handle_retry_timer(at - ms(1)).is_empty());
        assert_eq!(link.handle_retry_timer(at), [Connect]);
        assert_eq!(link.state(), &LinkState::Connecting { attempt: n + 2 });
        assert_eq!(link.poll_timeout(), None);
        now = at;
    }
    let retries: Vec<_> = events(&mut link)
        .into_iter()
        .filter_map(|e| match e {
            LinkEvent::RetryScheduled { attempt, delay } => Some((attempt, delay)),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 8);
    for (n, (attempt, delay)) in retries.into_iter().enumerate() {
        assert_eq!(attempt, n as u32 + 2);
        assert!(delay <= config.ceiling(n as u32));
    }
}

#[test]
fn a_failure_with_nothing_waiting_goes_dormant_and_a_message_wakes_it() {
    let (mut link, now) = new_link();
    link.handle_messages_waiting();
    assert!(link
        .handle_disconnected(DisconnectReason::ConnectTimeout, false, now)
        .is_empty());
    assert_eq!(link.state(), &LinkState::Dormant);
    assert_eq!(link.poll_timeout(), None);
    assert_eq!(
        events(&mut link),
        [
            LinkEvent::Connecting { attempt: 1 },
            LinkEvent::Disconnected {
                reason: DisconnectReason::ConnectTimeout
            },
            LinkEvent::Dormant,
        ]
    );
    // Dormancy connects at once on the next message, but does not reset the backoff.
    assert_eq!(link.handle_messages_waiting(), [Connect]);
    assert_eq!(link.state(), &LinkState::Connecting { attempt: 2 });
    let config = BackoffConfig::default();
    let actions = link.handle_disconnected(refused(), true, now);
    expect_retry(&actions, now, config.ceiling(1));
}

#[test]
fn a_lost_connection_is_retried_with_a_fresh_backoff() {
    let (mut link, mut now) = new_link();
    link.handle_messages_waiting();
    for n in 0..4 {
        let at = expect_retry(
            &link.handle_disconnected(refused(), true, now),
            now,
            BackoffConfig::default().ceiling(n),
        );
        link.handle_retry_timer(at);
        now = at;
    }
    assert_eq!(link.state(), &LinkState::Connecting { attempt: 5 });
    assert!(link.handle_connected(now).is_empty());
    assert_eq!(link.state(), &LinkState::Connected { since: now });
    assert!(link.is_connected());
    events(&mut link);

    // Lost with messages waiting (unacknowledged ones, say): retried, and the
    // backoff starts over.
    now += ms(60_000);
    let at = expect_retry(
        &link.handle_disconnected(DisconnectReason::PeerClosed, true, now),
        now,
        ms(100),
    );
    assert_eq!(
        link.state(),
        &LinkState::WaitingToRetry {
            attempt: 1,
            until: at
        }
    );
    assert_eq!(link.handle_retry_timer(at), [Connect]);
    assert_eq!(link.state(), &LinkState::Connecting { attempt: 1 });
    let delay = at - now;
    assert_eq!(
        events(&mut link),
        [
            LinkEvent::Disconnected {
                reason: DisconnectReason::PeerClosed
            },
            LinkEvent::RetryScheduled { attempt: 1, delay },
            LinkEvent::Connecting { attempt: 1 },
        ]
    );
    // That reconnect fails with nothing waiting: dormant.
    link.handle_disconnected(refused(), false, at);
    assert_eq!(link.state(), &LinkState::Dormant);
}

#[test]
fn a_connection_lost_with_nothing_waiting_goes_dormant() {
    let (mut link, now) = new_link();
    link.handle_messages_waiting();
    link.handle_connected(now);
    assert!(link
        .handle_disconnected(DisconnectReason::PeerClosed, false, now)
        .is_empty());
    assert_eq!(link.state(), &LinkState::Dormant);
    assert_eq!(link.poll_timeout(), None, "no timer on a dormant link");
}

#[test]
fn a_wake_starts_a_waiting_retry_at_once_and_nothing_else() {
    let (mut link, now) = new_link();
    assert!(link.handle_wake().is_empty(), "dormant: nothing to wake");
    link.handle_messages_waiting();
    assert!(
        link.handle_wake().is_empty(),
        "connecting: already on its way"
    );
    link.handle_disconnected(refused(), true, now);
    assert!(matches!(link.state(), LinkState::WaitingToRetry { .. }));
    assert_eq!(link.handle_wake(), [Connect]);
    assert_eq!(link.state(), &LinkState::Connecting { attempt: 2 });
    assert_eq!(link.poll_timeout(), None);
}

#[test]
fn close_with_drain_waits_for_the_queue_then_closes() {
    let (mut link, now) = new_link();
    link.handle_messages_waiting();
    link.handle_connected(now);
    events(&mut link);
    assert!(link.handle_close(true, true).is_empty());
    assert_eq!(link.state(), &LinkState::Draining);
    assert!(link.is_connected());
    // Repeating the close, or sending more, changes nothing.
    assert!(link.handle_close(true, true).is_empty());
    assert!(link.handle_messages_waiting().is_empty());
    assert_eq!(link.handle_drained(), [CloseConnection, Stop]);
    assert_eq!(link.state(), &LinkState::Closed);
    assert!(link.is_closed());
    assert_eq!(events(&mut link), [LinkEvent::Closed]);
}

#[test]
fn draining_retries_while_messages_wait_and_closes_when_none_do() {
    let (mut link, now) = new_link();
    link.handle_messages_waiting();
    link.handle_connected(now);
    link.handle_close(true, true);
    // A failure with messages waiting retries, still draining.
    let at = expect_retry(
        &link.handle_disconnected(DisconnectReason::Io(ErrorKind::BrokenPipe), true, now),
        now,
        ms(100),
    );
    assert_eq!(link.state(), &LinkState::Draining);
    assert_eq!(link.poll_timeout(), Some(at));
    assert_eq!(link.handle_retry_timer(at), [Connect]);
    assert_eq!(link.state(), &LinkState::Draining);
    // A failure with nothing waiting ends the drain: closed.
    assert_eq!(link.handle_disconnected(refused(), false, at), [Stop]);
    assert_eq!(link.state(), &LinkState::Closed);
    assert_eq!(link.poll_timeout(), None);
}

#[test]
fn close_with_drain_on_a_dormant_link_connects_to_deliver() {
    let (mut link, _) = new_link();
    assert_eq!(link.handle_close(true, true), [Connect]);
    assert_eq!(link.state(), &LinkState::Draining);
    assert_eq!(events(&mut link), [LinkEvent::Connecting { attempt: 1 }]);
    // Close with drain and nothing queued closes at once, failing nothing.
    let (mut link, _) = new_link();
    assert_eq!(link.handle_close(true, false), [Stop]);
    assert_eq!(events(&mut link), [LinkEvent::Closed]);
}

#[test]
fn close_without_drain_fails_the_queue() {
    let (mut link, now) = new_link();
    link.handle_messages_waiting();
    link.handle_connected(now);
    assert_eq!(
        link.handle_close(false, true),
        [CloseConnection, FailQueued, Stop]
    );
    assert_eq!(link.state(), &LinkState::Closed);
    // While waiting to retry there is no connection to close; the timer is gone.
    let (mut link, now) = new_link();
    link.handle_messages_waiting();
    link.handle_disconnected(refused(), true, now);
    assert!(link.poll_timeout().is_some());
    assert_eq!(link.handle_close(false, true), [FailQueued, Stop]);
    assert_eq!(link.poll_timeout(), None);
    // A close without drain cuts a drain short.
    let (mut link, _) = new_link();
    link.handle_close(true, true);
    assert_eq!(
        link.handle_close(false, true),
        [CloseConnection, FailQueued, Stop]
    );
}

#[test]
fn a_closed_link_ignores_everything_but_closes_late_connections() {
    let (mut link, now) = new_link();
    link.handle_messages_waiting();
    link.handle_close(false, true);
    events(&mut link);
    assert!(link.handle_messages_waiting().is_empty());
    assert!(link.handle_disconnected(refused(), true, now).is_empty());
    assert!(link.handle_retry_timer(now + ms(10_000)).is_empty());
    assert!(link.handle_close(true, true).is_empty());
    assert!(link.handle_drained().is_empty());
    assert_eq!(link.handle_connected(now), [CloseConnection]);
    assert_eq!(link.state(), &LinkState::Closed);
    assert_eq!(link.poll_event(), None);
}

#[test]
fn reports_that_do_not_fit_the_state_are_ignored() {
    let (mut link, now) = new_link();
    // Failures and timers with no attempt under way.
    assert!(link.handle_disconnected(refused(), true, now).is_empty());
    assert!(link.handle_retry_timer(now).is_empty());
    assert!(link.handle_drained().is_empty());
    assert_eq!(link.state(), &LinkState::Dormant);
    // A stale timer while connected; a duplicate connected report.
    link.handle_messages_waiting();
    link.handle_connected(now);
    assert!(link.handle_retry_timer(now + ms(5000)).is_empty());
    assert!(link.handle_connected(now + ms(1)).is_empty());
    assert_eq!(link.state(), &LinkState::Connected { since: now });
    assert_eq!(
        events(&mut link),
        [LinkEvent::Connecting { attempt: 1 }, LinkEvent::Connected]
    );
}

#[test]
fn a_retry_too_far_away_to_represent_means_dormant() {
    let config = BackoffConfig {
        initial: Duration::MAX,
        max: Duration::MAX,
        multiplier: 2,
    };
    let now = Instant::now();
    let mut link = Lifecycle::new(Backoff::new(config, 1));
    link.handle_messages_waiting();
    assert!(link.handle_disconnected(refused(), true, now).is_empty());
    assert_eq!(link.state(), &LinkState::Dormant);
    // While draining it closes, failing what waits.
    link.handle_close(true, true);
    assert_eq!(
        link.handle_disconnected(refused(), true, now),
        [FailQueued, Stop]
    );
}

#[test]
fn a_whole_life_emits_events_in_order() {
    let (mut link, t0) = new_link();
    link.handle_messages_waiting();
    let retry = link.handle_disconnected(refused(), true, t0);
    let [LifecycleAction::ScheduleRetry { at, delay }] = retry[..] else {
        panic!("{retry:?}")
    };
    link.handle_retry_timer(at);
    link.handle_connected(at);
    let garbage = DisconnectReason::Protocol(ProtocolViolation::FrameHeaderCorrupt);
    let retry = link.handle_disconnected(garbage.clone(), true, at + ms(1));
    let [LifecycleAction::ScheduleRetry {
        at: at2,
        delay: delay2,
    }] = retry[..]
    else {
        panic!("{retry:?}")
    };
    link.handle_retry_timer(at2);
    link.handle_connected(at2);
    link.handle_close(true, true);
    link.handle_drained();
    assert_eq!(
        events(&mut link),
        [
            LinkEvent::Connecting { attempt: 1 },
            LinkEvent::Disconnected { reason: refused() },
            LinkEvent::RetryScheduled { attempt: 2, delay },
            LinkEvent::Connecting { attempt: 2 },
            LinkEvent::Connected,
            LinkEvent::Disconnected { reason: garbage },
            LinkEvent::RetryScheduled {
                attempt: 1,
                delay: delay2
            },
            LinkEvent::Connecting { attempt: 1 },
            LinkEvent::Connected,
            LinkEvent::Closed,
        ]
    );
}

#[test]
fn states_events_and_reasons_display() {
    let now = Instant::now();
    let shown = [
        LinkState::Dormant.to_string(),
        LinkState::Connecting { attempt: 3 }.to_string(),
        LinkState::Connected { since: now }.to_string(),
        LinkState::WaitingToRetry {
            attempt: 4,
            until: now,
        }
        .to_string(),
        LinkState::Draining.to_string(),
        LinkState::Closed.to_string(),
    ];
    assert_eq!(
        shown,
        [
            "dormant",
            "connecting (attempt 3)",
            "connected",
            "waiting to retry (attempt 4)",
            "draining",
            "closed"
        ]
    );
    let event = LinkEvent::Disconnected {
        reason: DisconnectReason::read_timeout(ms(5000)),
    };
    assert_eq!(event.to_string(), "disconnected: nothing read for 5000 ms");
    let event = LinkEvent::RetryScheduled {
        attempt: 2,
        delay: ms(150),
    };
    assert_eq!(event.to_string(), "retry scheduled: attempt 2 in 150 ms");
    assert_eq!(
        DisconnectReason::Protocol(ProtocolViolation::Oversized).to_string(),
        "protocol violation: oversized frame or message"
    );
}

#[test]
fn reasons_say_who_caused_them() {
    assert!(DisconnectReason::Closed.is_local());
    assert!(!DisconnectReason::PeerClosed.is_local());
    assert!(!DisconnectReason::read_timeout(ms(1)).is_local());
    assert!(DisconnectReason::from(ProtocolViolation::Decompression).is_remote_fault());
    assert!(DisconnectReason::from(HandshakeError::Malformed { what: "x" }).is_remote_fault());
    assert!(!DisconnectReason::from(HandshakeError::Timeout).is_remote_fault());
    assert!(!DisconnectReason::Io(ErrorKind::ConnectionReset).is_remote_fault());
    assert_eq!(
        DisconnectReason::read_timeout(Duration::MAX),
        DisconnectReason::ReadTimeout {
            silent_for_ms: u64::MAX
        }
    );
}

#[test]
fn a_late_connection_while_waiting_to_retry_is_taken() {
    let (mut link, now) = new_link();
    link.handle_messages_waiting();
    link.handle_disconnected(DisconnectReason::ConnectTimeout, true, now);
    assert!(link.poll_timeout().is_some());
    assert!(link.handle_connected(now + ms(5)).is_empty());
    assert_eq!(link.state(), &LinkState::Connected { since: now + ms(5) });
    assert_eq!(link.poll_timeout(), None, "the retry is cancelled");
}

#[test]
fn an_idle_connection_closes_on_purpose_without_advancing_the_backoff() {
    let (mut link, now) = new_link();
    link.handle_messages_waiting();
    link.handle_connected(now);
    events(&mut link);
    assert_eq!(link.handle_idle(ms(300)), [CloseConnection]);
    assert_eq!(link.state(), &LinkState::Dormant);
    assert_eq!(
        events(&mut link),
        [
            LinkEvent::Disconnected {
                reason: DisconnectReason::Idle { idle_for_ms: 300 }
            },
            LinkEvent::Dormant
        ]
    );
    assert!(DisconnectReason::idle(ms(300)).is_local());
    assert_eq!(
        DisconnectReason::idle(ms(300)).to_string(),
        "idle for 300 ms: closed, the session kept"
    );
    assert_eq!(link.poll_timeout(), None);
    // Not a failure: the next failed attempt waits the first delay, not a longer one.
    assert_eq!(link.handle_messages_waiting(), [Connect]);
    let actions = link.handle_disconnected(refused(), true, now);
    expect_retry(&actions, now, ms(100));
    // Only a connected, open link is pruned.
    assert!(link.handle_idle(ms(1)).is_empty());
    let (mut link, now) = new_link();
    link.handle_messages_waiting();
    link.handle_connected(now);
    link.handle_close(true, true);
    assert!(link.handle_idle(ms(1)).is_empty(), "draining");
    assert_eq!(link.state(), &LinkState::Draining);
}
