//! Handshakes that complete, and the negotiation between the two sides.

use super::*;

#[test]
fn happy_path_both_sides_agree() {
    let now = Instant::now();
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let mut acceptor = acceptor(now);
    assert_eq!(
        acceptor.poll_transmit(),
        None,
        "the acceptor waits for the Hello"
    );

    let got = acceptor
        .handle_input(&initiator.poll_transmit().unwrap(), now)
        .unwrap();
    assert_eq!(got, Some(hello(1)));
    assert_eq!(initiator.poll_transmit(), None, "the Hello is sent once");
    let at_acceptor = acceptor.accept(params()).unwrap();
    let at_initiator = initiator
        .handle_input(&acceptor.poll_transmit().unwrap(), now)
        .unwrap()
        .unwrap();

    assert_eq!(
        at_acceptor,
        Established {
            version: PROTOCOL_VERSION,
            framing: Framing::Crc,
            peer_node_id: NodeId(1),
            peer_listen_addr: Some(addr()),
            link_kind: LinkKind::Large,
            peer_session_id: 11,
            resume: 3,
            auth: AuthToken::new(&b"from initiator"[..]).unwrap(),
            leftover: Bytes::new(),
        }
    );
    assert_eq!(
        at_initiator,
        Established {
            version: PROTOCOL_VERSION,
            framing: Framing::Crc,
            peer_node_id: NodeId(2),
            peer_listen_addr: None,
            link_kind: LinkKind::Large,
            peer_session_id: 22,
            resume: 7,
            auth: AuthToken::new(&b"from acceptor"[..]).unwrap(),
            leftover: Bytes::new(),
        }
    );
    for done in [initiator.poll_timeout(), acceptor.poll_timeout()] {
        assert_eq!(done, None);
    }
    assert_eq!(initiator.handle_timeout(now + TIMEOUT), Ok(()));
    assert_eq!(acceptor.handle_timeout(now + TIMEOUT), Ok(()));
}

#[test]
fn byte_by_byte_delivery() {
    let now = Instant::now();
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let mut acceptor = acceptor(now);
    let hello_bytes = initiator.poll_transmit().unwrap();
    let (last, head) = hello_bytes.split_last().unwrap();
    for byte in head {
        assert_eq!(acceptor.handle_input(&[*byte], now), Ok(None));
    }
    assert_eq!(acceptor.handle_input(&[*last], now), Ok(Some(hello(1))));
    acceptor.accept(params()).unwrap();

    let accept = acceptor.poll_transmit().unwrap();
    let (last, head) = accept.split_last().unwrap();
    for byte in head {
        assert_eq!(initiator.handle_input(&[*byte], now), Ok(None));
        assert_eq!(
            initiator.handle_input(&[], now),
            Ok(None),
            "empty input is fine"
        );
    }
    let established = initiator.handle_input(&[*last], now).unwrap().unwrap();
    assert_eq!(established.peer_session_id, 22);
}

#[test]
fn leftover_bytes_after_the_message_are_preserved() {
    let now = Instant::now();
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let mut acceptor = acceptor(now);
    let mut input = initiator.poll_transmit().unwrap().to_vec();
    input.extend_from_slice(b"early");
    // Split inside the Hello: the leftover is what follows it in the completing input.
    let (first, second) = input.split_at(10);
    assert_eq!(acceptor.handle_input(first, now), Ok(None));
    assert!(acceptor.handle_input(second, now).unwrap().is_some());
    assert_eq!(acceptor.accept(params()).unwrap().leftover, &b"early"[..]);

    let mut input = acceptor.poll_transmit().unwrap().to_vec();
    input.extend_from_slice(b"\x00garbage is the frame decoder's business");
    let established = initiator.handle_input(&input, now).unwrap().unwrap();
    assert_eq!(
        established.leftover,
        &b"\x00garbage is the frame decoder's business"[..]
    );
}

#[test]
fn incompatible_versions_are_reported_on_both_sides() {
    let now = Instant::now();
    let newer = Hello {
        versions: VersionRange::new(2, 3),
        ..hello(1)
    };
    let mut initiator = Initiator::new(newer, now, TIMEOUT);
    let mut acceptor = acceptor(now);
    let err = acceptor
        .handle_input(&initiator.poll_transmit().unwrap(), now)
        .unwrap_err();
    assert_eq!(
        err,
        HandshakeError::IncompatibleVersion {
            ours: VersionRange::single(1),
            theirs: VersionRange::new(2, 3)
        }
    );
    let reject = acceptor.poll_transmit().expect("a Reject is queued");
    let err = initiator.handle_input(&reject, now).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::Rejected {
            reason: RejectReason::IncompatibleVersion,
            peer_versions: VersionRange::single(1)
        }
    );
    assert!(!err.is_retryable());
    assert_eq!(
        initiator.retry_version(&err),
        None,
        "the ranges do not overlap"
    );
}

#[test]
fn a_newer_hello_layout_is_still_rejected_by_version() {
    // A future version may lay out the rest of the Hello differently: only the first
    // two bytes of the body count for the version check.
    let now = Instant::now();
    let mut acceptor = acceptor(now);
    let err = acceptor
        .handle_input(&message(1, &[7, 9, 0xff]), now)
        .unwrap_err();
    assert!(
        matches!(err, HandshakeError::IncompatibleVersion { .. }),
        "{err:?}"
    );
    assert_eq!(
        Reject::decode(&acceptor.poll_transmit().unwrap()),
        Ok(Reject {
            reason: RejectReason::IncompatibleVersion,
            versions: VersionRange::SUPPORTED
        })
    );
}

#[test]
fn an_older_peer_that_lists_one_version_gets_a_retry() {
    let now = Instant::now();
    let wide = Hello {
        versions: VersionRange::new(1, 4),
        ..hello(1)
    };
    let mut initiator = Initiator::new(wide, now, TIMEOUT);
    // An old acceptor that only speaks version 3 and refused our preferred 4.
    let reject = Reject {
        reason: RejectReason::IncompatibleVersion,
        versions: VersionRange::single(3),
    };
    let err = initiator
        .handle_input(&encode(|d| reject.encode(d)), now)
        .unwrap_err();
    assert_eq!(initiator.retry_version(&err), Some(3));

    let pinned = Hello {
        versions: VersionRange::single(3),
        ..hello(1)
    };
    let again = Initiator::new(pinned, now, TIMEOUT);
    assert_eq!(
        again.retry_version(&err),
        None,
        "no loop: 3 was already all we offered"
    );
    assert_eq!(again.retry_version(&HandshakeError::Timeout), None);
}

#[test]
fn negotiation_picks_the_highest_common_version() {
    let now = Instant::now();
    let wide = Hello {
        versions: VersionRange::new(1, 5),
        ..hello(1)
    };
    let mut initiator = Initiator::new(wide, now, TIMEOUT);
    let config = AcceptorConfig {
        versions: VersionRange::new(2, 4),
        ..AcceptorConfig::new(NodeId(2))
    };
    let mut acceptor = Acceptor::new(config, now, TIMEOUT);
    acceptor
        .handle_input(&initiator.poll_transmit().unwrap(), now)
        .unwrap();
    assert_eq!(acceptor.accept(params()).unwrap().version, 4);
    let established = initiator
        .handle_input(&acceptor.poll_transmit().unwrap(), now)
        .unwrap();
    assert_eq!(established.unwrap().version, 4);
}

#[test]
fn an_accept_outside_our_range_is_refused() {
    let now = Instant::now();
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let err = initiator
        .handle_input(&accept_bytes(9, Framing::Crc, 2), now)
        .unwrap_err();
    assert_eq!(
        err,
        HandshakeError::IncompatibleVersion {
            ours: VersionRange::SUPPORTED,
            theirs: VersionRange::single(9)
        }
    );
}

#[test]
fn self_connect_is_detected() {
    let now = Instant::now();
    // Dialing our own listener: the acceptor sees its own node id.
    let mut initiator = Initiator::new(hello(2), now, TIMEOUT);
    let mut acceptor = acceptor(now);
    let err = acceptor
        .handle_input(&initiator.poll_transmit().unwrap(), now)
        .unwrap_err();
    assert_eq!(err, HandshakeError::SelfConnect);
    let err = initiator
        .handle_input(&acceptor.poll_transmit().unwrap(), now)
        .unwrap_err();
    assert_eq!(
        err,
        HandshakeError::Rejected {
            reason: RejectReason::SelfConnect,
            peer_versions: VersionRange::SUPPORTED
        }
    );

    // A TCP self-connect: the socket reads back what it wrote.
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let own = initiator.poll_transmit().unwrap();
    assert_eq!(
        initiator.handle_input(&own, now),
        Err(HandshakeError::SelfConnect)
    );

    // An Accept carrying our own id.
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let err = initiator.handle_input(&accept_bytes(1, Framing::Crc, 1), now);
    assert_eq!(err, Err(HandshakeError::SelfConnect));
}

#[test]
fn unsupported_framing_is_rejected() {
    let now = Instant::now();
    let unprotected = Hello {
        framing: Framing::Unprotected,
        ..hello(1)
    };
    let mut initiator = Initiator::new(unprotected, now, TIMEOUT);
    let config = AcceptorConfig {
        framings: FramingSet::ALL.without(Framing::Unprotected),
        ..AcceptorConfig::new(NodeId(2))
    };
    let mut acceptor = Acceptor::new(config, now, TIMEOUT);
    let err = acceptor.handle_input(&initiator.poll_transmit().unwrap(), now);
    assert_eq!(err, Err(HandshakeError::UnsupportedFraming(2)));
    let err = initiator
        .handle_input(&acceptor.poll_transmit().unwrap(), now)
        .unwrap_err();
    assert!(matches!(
        err,
        HandshakeError::Rejected {
            reason: RejectReason::UnsupportedFraming,
            ..
        }
    ));

    // An unknown framing code (valid checksum) is rejected the same way.
    let mut body = encode(|d| hello(1).encode(d))[HEADER_LEN..].to_vec();
    body.truncate(body.len() - TRAILER_LEN);
    body[30] = 7; // IPv6: 2 + 8 + 1 + 16 + 2 + 1 bytes before the framing
    let mut acceptor = self::acceptor(now);
    assert_eq!(
        acceptor.handle_input(&message(1, &body), now),
        Err(HandshakeError::UnsupportedFraming(7))
    );
    assert!(acceptor.poll_transmit().is_some());

    // The initiator insists on the framing it asked for.
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let err = initiator.handle_input(&accept_bytes(1, Framing::Lz4, 2), now);
    assert_eq!(
        err,
        Err(HandshakeError::UnsupportedFraming(Framing::Lz4.code()))
    );
}

#[test]
fn the_shell_can_reject() {
    let now = Instant::now();
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let mut acceptor = acceptor(now);
    acceptor
        .handle_input(&initiator.poll_transmit().unwrap(), now)
        .unwrap();
    acceptor.reject(RejectReason::Unauthorized).unwrap();
    assert_eq!(acceptor.poll_timeout(), None);
    let err = initiator
        .handle_input(&acceptor.poll_transmit().unwrap(), now)
        .unwrap_err();
    assert!(matches!(
        err,
        HandshakeError::Rejected {
            reason: RejectReason::Unauthorized,
            ..
        }
    ));
    assert!(!err.is_retryable() && !err.is_remote_fault());

    // Shutting down, before the Hello even arrived: worth another try later.
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let mut acceptor = self::acceptor(now);
    acceptor.reject(RejectReason::ShuttingDown).unwrap();
    let err = initiator
        .handle_input(&acceptor.poll_transmit().unwrap(), now)
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(initiator.retry_version(&err), None);
}

#[test]
fn unknown_reject_reasons_are_understood_as_unknown() {
    let now = Instant::now();
    let mut initiator = Initiator::new(hello(1), now, TIMEOUT);
    let err = initiator
        .handle_input(&message(3, &[200, 1, 1]), now)
        .unwrap_err();
    let expected = HandshakeError::Rejected {
        reason: RejectReason::Unknown(200),
        peer_versions: VersionRange::single(1),
    };
    assert_eq!(err, expected);
    assert!(!err.is_retryable());
}

#[test]
fn version_ranges_and_framing_sets() {
    assert!(VersionRange::new(3, 2).is_empty());
    assert_eq!(
        VersionRange::new(3, 2).highest_common(VersionRange::new(0, 9)),
        None
    );
    assert_eq!(VersionRange::new(1, 3).to_string(), "1..=3");
    assert_eq!(VersionRange::default(), VersionRange::SUPPORTED);
    assert_eq!(FramingSet::ALL.iter().collect::<Vec<_>>(), Framing::ALL);
    assert_eq!(FramingSet::EMPTY.iter().count(), 0);
    assert!(FramingSet::EMPTY.with(Framing::Lz4).contains(Framing::Lz4));
}
