//! Handshakes that fail: garbage, truncation, timeouts and calls out of order.

use super::*;

#[test]
fn wrong_magic_fails_at_the_first_byte_without_an_answer() {
    let now = Instant::now();
    let mut acceptor = acceptor(now);
    let err = acceptor.handle_input(b"G", now).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::WrongMagic {
            found: b"G".to_vec()
        }
    );
    assert!(err.is_remote_fault() && !err.is_retryable());
    assert_eq!(acceptor.poll_transmit(), None, "garbage gets no Reject");

    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let err = initiator
        .handle_input(b"IN", now)
        .and_then(|_| initiator.handle_input(b"OX", now));
    assert_eq!(
        err,
        Err(HandshakeError::WrongMagic {
            found: b"INOX".to_vec()
        })
    );
}

#[test]
fn truncated_hello_then_eof() {
    let now = Instant::now();
    let bytes = encode(|d| hello(1).encode(d));
    let mut acceptor = acceptor(now);
    assert_eq!(acceptor.handle_input(&bytes[..20], now), Ok(None));
    let err = acceptor.handle_eof();
    assert_eq!(
        err,
        HandshakeError::Truncated {
            received: 20,
            expected: bytes.len()
        }
    );
    assert!(err.is_retryable() && !err.is_remote_fault());
    assert_eq!(acceptor.poll_transmit(), None);
    assert!(matches!(
        acceptor.handle_input(&bytes[20..], now),
        Err(HandshakeError::OutOfOrder { .. })
    ));

    let mut acceptor = self::acceptor(now);
    acceptor.handle_input(&bytes[..3], now).unwrap();
    assert_eq!(
        acceptor.handle_eof(),
        HandshakeError::Truncated {
            received: 3,
            expected: HEADER_LEN
        }
    );

    let mut acceptor = self::acceptor(now);
    assert_eq!(acceptor.handle_eof(), HandshakeError::Closed);
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    assert_eq!(initiator.handle_eof(), HandshakeError::Closed);
    assert!(matches!(
        initiator.handle_eof(),
        HandshakeError::OutOfOrder { .. }
    ));
}

#[test]
fn oversized_body_len_is_refused_before_the_body_arrives() {
    let now = Instant::now();
    let header = [b'I', b'N', b'O', b'D', 1, 0x01, 0x08]; // body_len 2049
    let mut acceptor = acceptor(now);
    let err = acceptor.handle_input(&header, now).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::BodyTooLong {
            len: 2049,
            max: MAX_HANDSHAKE_BODY
        }
    );
    assert!(err.is_remote_fault());
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let header = [b'I', b'N', b'O', b'D', 2, 0xff, 0xff];
    let err = initiator.handle_input(&header, now);
    assert_eq!(
        err,
        Err(HandshakeError::BodyTooLong {
            len: 65535,
            max: MAX_HANDSHAKE_BODY
        })
    );
}

#[test]
fn checksum_mismatch_fails_the_handshake() {
    let now = Instant::now();
    let mut bytes = encode(|d| hello(1).encode(d));
    bytes[12] ^= 0x40;
    let mut acceptor = acceptor(now);
    let err = acceptor.handle_input(&bytes, now).unwrap_err();
    assert!(
        matches!(err, HandshakeError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable() && err.is_remote_fault());
    assert_eq!(acceptor.poll_transmit(), None);
}

#[test]
fn a_malformed_hello_gets_no_answer() {
    let now = Instant::now();
    let mut acceptor = acceptor(now);
    let err = acceptor
        .handle_input(&message(1, &[1, 1, 0, 0]), now)
        .unwrap_err();
    assert_eq!(
        err,
        HandshakeError::Malformed {
            what: "Hello node id"
        }
    );
    assert_eq!(acceptor.poll_transmit(), None);
    let mut acceptor = self::acceptor(now);
    let err = acceptor.handle_input(&message(1, &[1]), now).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::Malformed {
            what: "Hello version range"
        }
    );
}

#[test]
fn silence_until_the_deadline() {
    let now = Instant::now();
    let deadline = now + TIMEOUT;
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let mut acceptor = acceptor(now);
    assert_eq!(initiator.poll_timeout(), Some(deadline));
    assert_eq!(acceptor.poll_timeout(), Some(deadline));
    let just_before = deadline - Duration::from_nanos(1);
    assert_eq!(initiator.handle_timeout(just_before), Ok(()));
    assert_eq!(acceptor.handle_timeout(just_before), Ok(()));

    assert_eq!(
        initiator.handle_timeout(deadline),
        Err(HandshakeError::Timeout)
    );
    assert_eq!(
        acceptor.handle_timeout(deadline + TIMEOUT),
        Err(HandshakeError::Timeout)
    );
    assert!(HandshakeError::Timeout.is_retryable());
    for (timer, sent) in [
        (initiator.poll_timeout(), None),
        (acceptor.poll_timeout(), acceptor.poll_transmit()),
    ] {
        assert_eq!((timer, sent), (None, None), "failed: no timer, no Reject");
    }
    assert_eq!(initiator.handle_timeout(deadline), Ok(()), "reported once");
    assert!(matches!(
        initiator.handle_input(b"INOD", deadline),
        Err(HandshakeError::OutOfOrder { .. })
    ));
}

#[test]
fn input_at_the_deadline_is_too_late() {
    let now = Instant::now();
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let mut acceptor = acceptor(now);
    let late = now + TIMEOUT;
    assert_eq!(
        acceptor.handle_input(&initiator.poll_transmit().unwrap(), late),
        Err(HandshakeError::Timeout)
    );
    let accept = accept_bytes(1, Framing::Crc, 2);
    assert_eq!(
        initiator.handle_input(&accept, late),
        Err(HandshakeError::Timeout)
    );
}

#[test]
fn the_deadline_runs_while_the_shell_decides() {
    let now = Instant::now();
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let mut acceptor = acceptor(now);
    acceptor
        .handle_input(&initiator.poll_transmit().unwrap(), now)
        .unwrap();
    assert_eq!(acceptor.poll_timeout(), Some(now + TIMEOUT));
    assert_eq!(
        acceptor.handle_timeout(now + TIMEOUT),
        Err(HandshakeError::Timeout)
    );
    assert!(matches!(
        acceptor.accept(params()),
        Err(HandshakeError::OutOfOrder { .. })
    ));
}

#[test]
fn unexpected_message_types_fail_at_the_type_byte() {
    let now = Instant::now();
    let accept = accept_bytes(1, Framing::Crc, 1);
    let mut acceptor = acceptor(now);
    let err = acceptor.handle_input(&accept[..5], now).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::UnexpectedMessage {
            expected: "Hello",
            found: 2
        }
    );
    assert!(err.is_remote_fault() && !err.is_retryable());

    let mut acceptor = self::acceptor(now);
    let err = acceptor.handle_input(&message(9, &[]), now);
    assert_eq!(
        err,
        Err(HandshakeError::UnexpectedMessage {
            expected: "Hello",
            found: 9
        })
    );

    // Another node's Hello sent to an initiator.
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let other = encode(|d| hello(5).encode(d));
    let err = initiator.handle_input(&other, now);
    assert_eq!(
        err,
        Err(HandshakeError::UnexpectedMessage {
            expected: "Accept or Reject",
            found: 1
        })
    );
}

fn out_of_order<T>(call: &'static str, state: &'static str) -> Result<T, HandshakeError> {
    Err(HandshakeError::OutOfOrder { call, state })
}

#[test]
fn calls_out_of_order_are_refused_and_leave_the_state_alone() {
    let now = Instant::now();
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let mut acceptor = acceptor(now);
    assert_eq!(
        acceptor.accept(params()),
        out_of_order("accept", "reading the Hello")
    );

    let hello_bytes = initiator.poll_transmit().unwrap();
    acceptor.handle_input(&hello_bytes, now).unwrap();
    let waiting = "awaiting the accept or reject decision";
    assert_eq!(
        acceptor.handle_input(b"more", now),
        out_of_order("handle_input", waiting)
    );
    assert_eq!(
        acceptor.poll_timeout(),
        Some(now + TIMEOUT),
        "still in progress"
    );
    acceptor.accept(params()).unwrap();
    assert_eq!(
        acceptor.accept(params()),
        out_of_order("accept", "established")
    );
    assert_eq!(
        acceptor.reject(RejectReason::ShuttingDown),
        out_of_order("reject", "established")
    );
    assert_eq!(
        acceptor.handle_input(&hello_bytes, now),
        out_of_order("handle_input", "established")
    );
    assert!(matches!(
        acceptor.handle_eof(),
        HandshakeError::OutOfOrder { .. }
    ));

    let accept = acceptor.poll_transmit().unwrap();
    initiator.handle_input(&accept, now).unwrap().unwrap();
    assert_eq!(
        initiator.handle_input(&accept, now),
        out_of_order("handle_input", "established")
    );
    assert!(!HandshakeError::OutOfOrder {
        call: "",
        state: ""
    }
    .is_retryable());
}

#[test]
fn huge_timeouts_mean_no_deadline() {
    let now = Instant::now();
    let initiator = Initiator::new(hello(1), now, Duration::MAX);
    assert_eq!(initiator.poll_timeout(), None);
    let mut acceptor = Acceptor::new(AcceptorConfig::new(NodeId(2)), now, Duration::MAX);
    assert_eq!(
        acceptor.handle_timeout(now + Duration::from_secs(86_400)),
        Ok(())
    );
}
