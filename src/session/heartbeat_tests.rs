//! Tests of [`Heartbeat`](super::Heartbeat): pings, pongs, timeouts, pause and
//! relax, on a simulated clock.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A heartbeat with interval 1 s and timeout 5 s, created at `t0`, origin `t0`.
fn heartbeat() -> (Heartbeat, Instant) {
    let t0 = Instant::now();
    (Heartbeat::new(HeartbeatConfig::default(), t0, t0), t0)
}

fn expect_ping(hb: &mut Heartbeat, now: Instant) -> u64 {
    match hb.handle_timeout(now) {
        HeartbeatAction::SendPing { timestamp_us } => timestamp_us,
        other => panic!("expected a ping, got {other:?}"),
    }
}

#[test]
fn pings_after_an_idle_interval() {
    let (mut hb, t0) = heartbeat();
    assert_eq!(hb.handle_timeout(t0 + ms(999)), HeartbeatAction::Idle);
    assert_eq!(expect_ping(&mut hb, t0 + ms(1000)), 1_000_000);
    assert!(hb.ping_outstanding());
    // The ping counts as a write: the next one is an interval later.
    assert_eq!(hb.handle_timeout(t0 + ms(1500)), HeartbeatAction::Idle);
    hb.handle_read(t0 + ms(1500));
    assert_eq!(expect_ping(&mut hb, t0 + ms(2000)), 2_000_000);
}

#[test]
fn relaxed_pings_at_the_idle_interval_and_allows_as_much_more_silence() {
    let (mut hb, t0) = heartbeat();
    hb.relax();
    assert!(hb.is_relaxed());
    // Ping at 5 s, not 1 s; the read timeout is 5 s + (5 s - 1 s) = 9 s.
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(5000)));
    assert_eq!(hb.handle_timeout(t0 + ms(4999)), HeartbeatAction::Idle);
    let ping = expect_ping(&mut hb, t0 + ms(5000));
    hb.handle_written(t0 + ms(5000));
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(9000)), "the read timeout");
    assert_eq!(hb.handle_timeout(t0 + ms(8999)), HeartbeatAction::Idle);
    assert!(hb.handle_pong(ping, t0 + ms(5010)).is_some());
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(10_000)), "the next ping");
    // Unanswered, the ping is re-sent at the idle interval; silence ends it.
    let _ = expect_ping(&mut hb, t0 + ms(10_000));
    hb.handle_written(t0 + ms(10_000));
    assert_eq!(hb.handle_timeout(t0 + ms(14_009)), HeartbeatAction::Idle);
    assert_eq!(
        hb.handle_timeout(t0 + ms(14_010)),
        HeartbeatAction::TimedOut {
            silent_for: ms(9000)
        }
    );
}

#[test]
fn tightening_allows_a_timeout_from_then_but_keeps_the_silence() {
    let (mut hb, t0) = heartbeat();
    hb.relax();
    let ping = expect_ping(&mut hb, t0 + ms(5000));
    hb.handle_written(t0 + ms(5000));
    assert!(hb.handle_pong(ping, t0 + ms(5000)).is_some());
    // 4.5 s of silence: within the relaxed timeout, not within 5 s of the
    // tightened one if it counted from the last read alone.
    hb.tighten(t0 + ms(9500));
    assert!(!hb.is_relaxed());
    // Nothing was read for over an interval: a ping at once, then every second,
    // unanswered; the timeout is a whole timeout after tightening.
    for at in [9500, 10_500, 11_500, 12_500, 13_500] {
        let _ = expect_ping(&mut hb, t0 + ms(at));
        hb.handle_written(t0 + ms(at));
    }
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(14_500)));
    assert_eq!(hb.handle_timeout(t0 + ms(14_499)), HeartbeatAction::Idle);
    assert!(matches!(
        hb.handle_timeout(t0 + ms(14_500)),
        HeartbeatAction::TimedOut { .. }
    ));

    // Relaxed again without reading anything: the silence since the last read
    // still counts (tightening and relaxing never keeps a silent connection
    // alive).
    let (mut hb, t0) = heartbeat();
    hb.relax();
    let ping = expect_ping(&mut hb, t0 + ms(5000));
    hb.handle_written(t0 + ms(5000));
    assert!(hb.handle_pong(ping, t0 + ms(5000)).is_some());
    for at in [6000, 8000, 10_000, 12_000] {
        hb.tighten(t0 + ms(at));
        hb.relax();
    }
    assert!(!matches!(
        hb.handle_timeout(t0 + ms(13_999)),
        HeartbeatAction::TimedOut { .. }
    ));
    // 9 s after the last read.
    assert!(matches!(
        hb.handle_timeout(t0 + ms(14_000)),
        HeartbeatAction::TimedOut { .. }
    ));
    // Tightening a heartbeat that is not relaxed changes nothing; relaxing one
    // that never pings does not make it ping.
    let (mut tight, t1) = heartbeat();
    tight.tighten(t1 + ms(900));
    assert_eq!(tight.poll_timeout(), Some(t1 + ms(1000)));
    let mut accepting = Heartbeat::read_timeout_only(ms(5000), t1);
    accepting.relax();
    assert!(!accepting.is_relaxed());
    assert_eq!(accepting.poll_timeout(), Some(t1 + ms(5000)));
}

#[test]
fn an_idle_interval_shorter_than_the_interval_is_the_interval() {
    let t0 = Instant::now();
    let config = HeartbeatConfig::default().idle_interval(ms(10));
    let mut hb = Heartbeat::new(config, t0, t0);
    hb.relax();
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(1000)));
}

#[test]
fn no_ping_while_writing() {
    let (mut hb, t0) = heartbeat();
    for step in 1..=20 {
        let now = t0 + ms(500 * step);
        hb.handle_written(now);
        hb.handle_read(now);
        assert_eq!(hb.handle_timeout(now), HeartbeatAction::Idle, "at {step}");
    }
    assert!(!hb.ping_outstanding());
}

#[test]
fn pings_while_writing_when_nothing_is_read() {
    // A link that only writes reads nothing but pongs: it must ping while busy,
    // or its read timeout resets a healthy connection.
    let (mut hb, t0) = heartbeat();
    let mut pings = 0;
    for step in 1..=120 {
        let now = t0 + ms(100 * step);
        hb.handle_written(now);
        match hb.handle_timeout(now) {
            HeartbeatAction::SendPing { timestamp_us } => {
                pings += 1;
                assert!(hb.handle_pong(timestamp_us, now + ms(1)).is_some());
            }
            HeartbeatAction::Idle => {}
            other => panic!("{other:?} at step {step}"),
        }
    }
    // 12 s of writing: a ping about every interval (1 s), none more often.
    assert!((10..=12).contains(&pings), "{pings} pings");
}

#[test]
fn a_pong_gives_the_round_trip_time() {
    let (mut hb, t0) = heartbeat();
    assert_eq!(hb.rtt(), None);
    let ts = expect_ping(&mut hb, t0 + ms(1000));
    assert_eq!(hb.handle_pong(ts, t0 + ms(1007)), Some(ms(7)));
    assert_eq!(hb.rtt(), Some(ms(7)));
    assert!(!hb.ping_outstanding());
}

#[test]
fn a_slow_pong_to_a_resent_ping_still_counts() {
    let (mut hb, t0) = heartbeat();
    let first = expect_ping(&mut hb, t0 + ms(1000));
    let second = expect_ping(&mut hb, t0 + ms(2000));
    assert_ne!(first, second);
    assert_eq!(hb.handle_pong(first, t0 + ms(2200)), Some(ms(1200)));
    assert!(hb.ping_outstanding(), "the second ping is still unanswered");
    assert_eq!(hb.handle_pong(second, t0 + ms(2300)), Some(ms(300)));
}

#[test]
fn stale_garbage_and_future_pongs_are_ignored() {
    let (mut hb, t0) = heartbeat();
    let ts = expect_ping(&mut hb, t0 + ms(1000));
    assert_eq!(hb.handle_pong(12345, t0 + ms(1010)), None, "never sent");
    assert_eq!(hb.handle_pong(u64::MAX, t0 + ms(1010)), None, "future");
    assert_eq!(hb.rtt(), None);
    assert_eq!(hb.handle_pong(ts, t0 + ms(1020)), Some(ms(20)));
    assert_eq!(hb.handle_pong(ts, t0 + ms(1030)), None, "duplicate");
    assert_eq!(hb.rtt(), Some(ms(20)));
    // Pings forgotten after REMEMBERED_PINGS newer ones.
    let old = expect_ping(&mut hb, t0 + ms(2020));
    for n in 1..=REMEMBERED_PINGS as u64 {
        expect_ping(&mut hb, t0 + ms(2020 + 1000 * n));
    }
    assert_eq!(hb.handle_pong(old, t0 + ms(7000)), None, "forgotten");
    // A pong "answering" a ping at a time earlier than it was sent (the caller's
    // clock went backwards) does not give a round-trip time.
    let (mut hb, t0) = heartbeat();
    let ts = expect_ping(&mut hb, t0 + ms(1000));
    assert_eq!(hb.handle_pong(ts, t0 + ms(900)), None);
    assert!(hb.ping_outstanding());
}

#[test]
fn times_out_after_silence_and_stays_timed_out() {
    let (mut hb, t0) = heartbeat();
    for at in (0..5000).step_by(250).chain([4999]) {
        let action = hb.handle_timeout(t0 + ms(at));
        assert!(
            !matches!(action, HeartbeatAction::TimedOut { .. }),
            "at {at}"
        );
    }
    let silent = HeartbeatAction::TimedOut {
        silent_for: ms(5000),
    };
    assert_eq!(hb.handle_timeout(t0 + ms(5000)), silent);
    assert_eq!(
        hb.handle_timeout(t0 + ms(6000)),
        HeartbeatAction::TimedOut {
            silent_for: ms(6000)
        }
    );
}

#[test]
fn reads_restart_the_timeout() {
    let (mut hb, t0) = heartbeat();
    hb.handle_read(t0 + ms(4000));
    hb.handle_written(t0 + ms(4500));
    // Not timed out at 5 s: only a ping is due (nothing was read for an interval).
    assert!(matches!(
        hb.handle_timeout(t0 + ms(5000)),
        HeartbeatAction::SendPing { .. }
    ));
    assert!(matches!(
        hb.handle_timeout(t0 + ms(9000)),
        HeartbeatAction::TimedOut { silent_for } if silent_for == ms(5000)
    ));
    // A pong is a read, even an unmatched one; an older `now` moves nothing back.
    let (mut hb, t0) = heartbeat();
    hb.handle_pong(1, t0 + ms(4500));
    hb.handle_read(t0 + ms(100));
    hb.handle_written(t0 + ms(9000));
    assert!(matches!(
        hb.handle_timeout(t0 + ms(9000)),
        HeartbeatAction::SendPing { .. }
    ));
}

#[test]
fn poll_timeout_is_the_sooner_of_ping_and_timeout() {
    let (mut hb, t0) = heartbeat();
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(1000)));
    // Traffic both ways keeps pings away.
    hb.handle_written(t0 + ms(300));
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(1000)), "nothing read yet");
    hb.handle_read(t0 + ms(300));
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(1300)));
    expect_ping(&mut hb, t0 + ms(1300));
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(2300)));
    // Writes alone do not: when reads stop and writes go on, a ping is due an
    // interval after the last one, and the timeout still comes when no pong does.
    hb.handle_written(t0 + ms(2000));
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(2300)));
    // Before the deadline poll is idle; at it, it is not.
    assert_eq!(hb.handle_timeout(t0 + ms(2299)), HeartbeatAction::Idle);
    expect_ping(&mut hb, t0 + ms(2300));
    hb.handle_written(t0 + ms(3000));
    expect_ping(&mut hb, t0 + ms(3300));
    expect_ping(&mut hb, t0 + ms(4300));
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(5300)));
    assert_eq!(hb.handle_timeout(t0 + ms(5299)), HeartbeatAction::Idle);
    assert_eq!(
        hb.handle_timeout(t0 + ms(5300)),
        HeartbeatAction::TimedOut {
            silent_for: ms(5000)
        }
    );
}

#[test]
fn the_accepting_side_never_pings_but_times_out() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::read_timeout_only(ms(3000), t0);
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(3000)));
    assert_eq!(hb.handle_timeout(t0 + ms(2999)), HeartbeatAction::Idle);
    hb.handle_read(t0 + ms(2000));
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(5000)));
    assert_eq!(hb.handle_timeout(t0 + ms(4999)), HeartbeatAction::Idle);
    assert_eq!(
        hb.handle_timeout(t0 + ms(5000)),
        HeartbeatAction::TimedOut {
            silent_for: ms(3000)
        }
    );
    assert!(!hb.ping_outstanding());
}

#[test]
fn huge_durations_mean_never() {
    let t0 = Instant::now();
    let config = HeartbeatConfig {
        interval: Duration::MAX,
        timeout: Duration::MAX,
        ..HeartbeatConfig::default()
    };
    let mut hb = Heartbeat::new(config, t0, t0);
    assert_eq!(hb.poll_timeout(), None);
    assert_eq!(
        hb.handle_timeout(t0 + Duration::from_secs(1 << 30)),
        HeartbeatAction::Idle
    );
    let mut hb = Heartbeat::read_timeout_only(Duration::MAX, t0);
    assert_eq!(hb.poll_timeout(), None);
    assert_eq!(hb.handle_timeout(t0 + ms(1)), HeartbeatAction::Idle);
    // Only the ping overflows: the timeout is still the deadline.
    let config = HeartbeatConfig {
        interval: Duration::MAX,
        timeout: ms(10),
        ..HeartbeatConfig::default()
    };
    let hb = Heartbeat::new(config, t0, t0);
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(10)));
}

#[test]
fn timestamps_before_the_origin_saturate_to_zero() {
    let t0 = Instant::now();
    let origin = t0 + ms(10_000);
    let mut hb = Heartbeat::new(HeartbeatConfig::default(), origin, t0);
    assert_eq!(expect_ping(&mut hb, t0 + ms(1000)), 0);
}

#[test]
fn a_blocked_write_suspends_the_read_timeout_until_the_unwritable_timeout() {
    let t0 = Instant::now();
    let config = HeartbeatConfig::default();
    let mut hb = Heartbeat::new(config, t0, t0);
    hb.handle_write_started(t0 + Duration::from_secs(1));
    // Silent for up to 30 s, but the write is in flight: the peer is slow, not
    // dead. Pings may still be due; nothing times out.
    for secs in 2..31 {
        let action = hb.handle_timeout(t0 + Duration::from_secs(secs));
        assert!(
            matches!(
                action,
                HeartbeatAction::Idle | HeartbeatAction::SendPing { .. }
            ),
            "{action:?} at {secs} s"
        );
    }
    assert_eq!(
        hb.handle_timeout(t0 + Duration::from_secs(31)),
        HeartbeatAction::Unwritable {
            blocked_for: Duration::from_secs(30)
        }
    );
}

#[test]
fn a_write_that_was_blocked_and_completed_counts_as_a_sign_of_life() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(HeartbeatConfig::default(), t0, t0);
    hb.handle_write_started(t0);
    hb.handle_written(t0 + Duration::from_secs(8));
    // The peer took the data at 8 s: the read timeout counts from there.
    assert!(!matches!(
        hb.handle_timeout(t0 + Duration::from_secs(12)),
        HeartbeatAction::TimedOut { .. }
    ));
    assert!(matches!(
        hb.handle_timeout(t0 + Duration::from_secs(13)),
        HeartbeatAction::TimedOut { .. }
    ));
}

#[test]
fn a_write_that_completed_at_once_proves_nothing() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(HeartbeatConfig::default(), t0, t0);
    hb.handle_write_started(t0 + Duration::from_secs(4));
    hb.handle_written(t0 + Duration::from_secs(4));
    assert_eq!(
        hb.handle_timeout(t0 + Duration::from_secs(5)),
        HeartbeatAction::TimedOut {
            silent_for: Duration::from_secs(5)
        }
    );
}

#[test]
fn a_paused_heartbeat_neither_pings_nor_times_out_and_resumes_fresh() {
    let (mut hb, t0) = heartbeat();
    hb.pause();
    assert!(hb.is_paused());
    assert_eq!(hb.poll_timeout(), None, "no timer while paused");
    assert_eq!(hb.handle_timeout(t0 + ms(60_000)), HeartbeatAction::Idle);
    // A minute of silence while paused is no silence: the next ping is an
    // interval after the resume, the timeout a timeout after it.
    let t1 = t0 + ms(60_000);
    hb.resume(t1);
    assert!(!hb.is_paused());
    assert_eq!(hb.poll_timeout(), Some(t1 + ms(1000)));
    assert_eq!(expect_ping(&mut hb, t1 + ms(1000)), 61_000_000);
    assert_eq!(
        hb.handle_timeout(t1 + ms(5000)),
        HeartbeatAction::TimedOut {
            silent_for: ms(5000)
        }
    );
    // Resuming a running heartbeat changes nothing.
    let (mut hb, t0) = heartbeat();
    hb.resume(t0 + ms(900));
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(1000)));
}

#[test]
fn a_paused_heartbeat_still_catches_a_blocked_write_and_counts_pongs() {
    let (mut hb, t0) = heartbeat();
    let ts = expect_ping(&mut hb, t0 + ms(1000));
    hb.pause();
    assert_eq!(hb.answered_ping(), None);
    assert_eq!(hb.handle_pong(ts, t0 + ms(1010)), Some(ms(10)));
    assert_eq!(hb.answered_ping(), Some(t0 + ms(1000)));
    hb.handle_write_started(t0 + ms(2000));
    assert_eq!(hb.poll_timeout(), Some(t0 + ms(32_000)));
    assert_eq!(
        hb.handle_timeout(t0 + ms(32_000)),
        HeartbeatAction::Unwritable {
            blocked_for: ms(30_000)
        }
    );
}
