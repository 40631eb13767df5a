//! Cluster-secret authentication: Hello, Challenge, Proof, then Accept.

use super::*;

fn key(secret: &[u8]) -> ClusterKey {
    ClusterKey::derive(secret, "test-cluster").unwrap()
}

fn good() -> ClusterKey {
    key(b"the right secret")
}

const NC: Nonce = [0xc1; NONCE_LEN];
const NA: Nonce = [0xa2; NONCE_LEN];

fn initiator(key: &ClusterKey, now: Instant) -> Initiator {
    Initiator::with_auth(hello(1), key, NC, now, TIMEOUT)
}

fn acceptor_with(key: &ClusterKey, nonce: Nonce, now: Instant) -> Acceptor {
    Acceptor::with_auth(AcceptorConfig::new(NodeId(2)), key, nonce, now, TIMEOUT)
}

/// Runs Hello and Challenge: gives the Hello bytes, the Challenge bytes and the
/// Proof bytes the initiator queued.
fn to_proof(
    initiator: &mut Initiator,
    acceptor: &mut Acceptor,
    now: Instant,
) -> (Bytes, Bytes, Bytes) {
    let hello = initiator.poll_transmit().unwrap();
    assert_eq!(
        acceptor.handle_input(&hello, now),
        Ok(None),
        "a Challenge first"
    );
    let challenge = acceptor.poll_transmit().expect("the Challenge is queued");
    assert_eq!(initiator.handle_input(&challenge, now), Ok(None));
    let proof = initiator.poll_transmit().expect("the Proof is queued");
    (hello, challenge, proof)
}

#[test]
fn same_secret_establishes_after_four_messages() {
    let now = Instant::now();
    let (mut i, mut a) = (initiator(&good(), now), acceptor_with(&good(), NA, now));
    let (hello_bytes, challenge, proof) = to_proof(&mut i, &mut a, now);
    let hello = Hello::decode(&hello_bytes).unwrap();
    assert_eq!(&hello.auth.as_bytes()[..NONCE_LEN], &NC);
    assert_eq!(&hello.auth.as_bytes()[NONCE_LEN..], b"test-cluster");
    let challenge = Challenge::decode(&challenge).unwrap();
    assert_eq!((challenge.node_id, challenge.nonce), (NodeId(2), NA));
    assert_eq!(Proof::decode(&proof).unwrap().proof.len(), PROOF_LEN);
    // Bytes after the Proof are the start of the frame stream (leftover).
    let mut input = proof.to_vec();
    input.extend_from_slice(b"never sent by an honest initiator");
    let got = a.handle_input(&input, now).unwrap().unwrap();
    assert_eq!(got.node_id, NodeId(1));
    let on_acceptor = a.accept(params()).unwrap();
    assert_eq!(
        on_acceptor.leftover,
        &b"never sent by an honest initiator"[..]
    );
    let mut accept = a.poll_transmit().unwrap().to_vec();
    accept.extend_from_slice(b"frames");
    let on_initiator = i.handle_input(&accept, now).unwrap().unwrap();
    assert_eq!(on_initiator.peer_node_id, NodeId(2));
    assert_eq!(on_initiator.leftover, &b"frames"[..]);
    assert_eq!((i.poll_timeout(), a.poll_timeout()), (None, None));
}

#[test]
fn any_split_of_the_input_gives_the_same_handshake() {
    let now = Instant::now();
    let (mut i0, mut a0) = (initiator(&good(), now), acceptor_with(&good(), NA, now));
    let (hello, challenge, proof) = to_proof(&mut i0, &mut a0, now);
    // The acceptor gets Hello and Proof in one piece (as a replay would send them):
    // it must still answer the Hello first, then check the Proof.
    let both: Vec<u8> = [&hello[..], &proof[..]].concat();
    for cut in 0..both.len() {
        let mut a = acceptor_with(&good(), NA, now);
        let first = a.handle_input(&both[..cut], now).unwrap();
        let second = a.handle_input(&both[cut..], now).unwrap();
        assert_eq!(first.or(second).map(|h| h.node_id), Some(NodeId(1)));
        assert_eq!(a.poll_transmit().as_deref(), Some(&challenge[..]));
    }
}

#[test]
fn the_acceptor_never_yields_the_hello_before_a_valid_proof() {
    let now = Instant::now();
    let (mut i, mut a) = (initiator(&good(), now), acceptor_with(&good(), NA, now));
    let (_, _, proof) = to_proof(&mut i, &mut a, now);
    assert!(
        matches!(a.accept(params()), Err(HandshakeError::OutOfOrder { .. })),
        "no Established while the Proof is awaited"
    );
    let (last, head) = proof.split_last().unwrap();
    for byte in head {
        assert_eq!(a.handle_input(&[*byte], now), Ok(None));
        assert!(a.accept(params()).is_err());
    }
    assert!(a.handle_input(&[*last], now).unwrap().is_some());
    assert!(a.accept(params()).is_ok());
}

#[test]
fn the_initiator_sends_nothing_before_the_acceptors_proof_checks_out() {
    let now = Instant::now();
    let mut i = initiator(&good(), now);
    let mut a = acceptor_with(&key(b"another secret"), NA, now);
    let hello = i.poll_transmit().unwrap();
    assert_eq!(a.handle_input(&hello, now), Ok(None));
    let challenge = a.poll_transmit().unwrap();
    assert_eq!(
        i.handle_input(&challenge, now),
        Err(HandshakeError::AuthFailed)
    );
    assert_eq!(i.poll_transmit(), None, "no Proof for an unproven acceptor");
    // The acceptor sees the connection end: the peer did not prove itself.
    assert_eq!(a.handle_eof(), HandshakeError::AuthIncomplete);
}

#[test]
fn a_wrong_proof_from_the_initiator_is_refused() {
    let now = Instant::now();
    let mut a = acceptor_with(&good(), NA, now);
    // An initiator that knows another secret, but answers anyway (a forger).
    let wrong = key(b"another secret");
    let mut i = initiator(&wrong, now);
    let hello = i.poll_transmit().unwrap();
    a.handle_input(&hello, now).unwrap();
    let challenge = Challenge::decode(&a.poll_transmit().unwrap()).unwrap();
    let forged = Proof {
        proof: challenge.proof.map(|b| b ^ 0x55),
    };
    let err = a
        .handle_input(&encode(|d| forged.encode(d)), now)
        .unwrap_err();
    assert_eq!(err, HandshakeError::AuthFailed);
    let reject = Reject::decode(&a.poll_transmit().unwrap()).unwrap();
    assert_eq!(reject.reason, RejectReason::Unauthorized);
    assert!(!err.is_retryable() && !err.is_remote_fault());
}

#[test]
fn missing_secret_on_either_side_is_refused() {
    let now = Instant::now();
    // Initiator without a secret, acceptor with one.
    let mut plain = Initiator::new(
        Hello {
            auth: AuthToken::empty(),
            ..hello(1)
        },
        now,
        TIMEOUT,
    );
    let mut a = acceptor_with(&good(), NA, now);
    let err = a
        .handle_input(&plain.poll_transmit().unwrap(), now)
        .unwrap_err();
    assert_eq!(err, HandshakeError::AuthMissing);
    let reject = a.poll_transmit().unwrap();
    assert!(matches!(
        plain.handle_input(&reject, now),
        Err(HandshakeError::Rejected {
            reason: RejectReason::Unauthorized,
            ..
        })
    ));
    // A Hello whose auth is too short for a nonce (the old test token) likewise.
    let mut a = acceptor_with(&good(), NA, now);
    let short = encode(|d| hello(1).encode(d));
    assert_eq!(
        a.handle_input(&short, now),
        Err(HandshakeError::AuthMissing)
    );

    // Initiator with a secret, acceptor without one: a bare Accept.
    let mut i = initiator(&good(), now);
    let mut a = acceptor(now);
    a.handle_input(&i.poll_transmit().unwrap(), now)
        .unwrap()
        .unwrap();
    a.accept(params()).unwrap();
    assert_eq!(
        i.handle_input(&a.poll_transmit().unwrap(), now),
        Err(HandshakeError::AuthMissing)
    );
    assert_eq!(i.poll_transmit(), None);
}

#[test]
fn an_initiator_without_a_secret_does_not_take_a_challenge() {
    let now = Instant::now();
    let mut plain = Initiator::new(hello(1), now, TIMEOUT);
    let challenge = Challenge {
        proof: [0; PROOF_LEN],
        node_id: NodeId(2),
        nonce: NA,
    };
    let err = plain
        .handle_input(&encode(|d| challenge.encode(d)), now)
        .unwrap_err();
    assert!(matches!(
        err,
        HandshakeError::UnexpectedMessage { found: 4, .. }
    ));
}

#[test]
fn another_cluster_name_is_refused() {
    let now = Instant::now();
    let theirs = ClusterKey::derive(b"the right secret", "other-cluster").unwrap();
    let mut i = Initiator::with_auth(hello(1), &theirs, NC, now, TIMEOUT);
    let mut a = acceptor_with(&good(), NA, now);
    let err = a
        .handle_input(&i.poll_transmit().unwrap(), now)
        .unwrap_err();
    assert_eq!(err, HandshakeError::ClusterMismatch);
    assert!(matches!(
        i.handle_input(&a.poll_transmit().unwrap(), now),
        Err(HandshakeError::Rejected {
            reason: RejectReason::ClusterMismatch,
            ..
        })
    ));
    // The name is also in the key: the same secret gives another key.
    assert_ne!(theirs, good());
}

#[test]
fn a_replayed_hello_and_proof_fail_against_a_fresh_nonce() {
    let now = Instant::now();
    let (mut i, mut a) = (initiator(&good(), now), acceptor_with(&good(), NA, now));
    let (hello, _, proof) = to_proof(&mut i, &mut a, now);
    assert!(
        a.handle_input(&proof, now).unwrap().is_some(),
        "the original"
    );
    // The recording, sent to a new connection: the acceptor's nonce differs.
    let mut fresh = acceptor_with(&good(), [0x3c; NONCE_LEN], now);
    assert_eq!(fresh.handle_input(&hello, now), Ok(None));
    assert_eq!(
        fresh.handle_input(&proof, now),
        Err(HandshakeError::AuthFailed)
    );

    // Replayed in one piece: the Challenge still goes out, ahead of the Reject.
    let mut blind = acceptor_with(&good(), [0x3d; NONCE_LEN], now);
    let both: Vec<u8> = [&hello[..], &proof[..]].concat();
    assert_eq!(
        blind.handle_input(&both, now),
        Err(HandshakeError::AuthFailed)
    );
    let out = blind.poll_transmit().unwrap();
    let challenge_len = HEADER_LEN + Challenge::BODY_LEN + TRAILER_LEN;
    assert!(Challenge::decode(&out[..challenge_len]).is_ok());
    let reject = Reject::decode(&out[challenge_len..]).unwrap();
    assert_eq!(reject.reason, RejectReason::Unauthorized);
}

#[test]
fn a_reflected_proof_is_refused() {
    let now = Instant::now();
    // An attacker without the secret sends a Hello (with a nonce and the right name)
    // and answers the Challenge with the acceptor's own proof.
    let mut attacker = initiator(&key(b"not the secret"), now);
    let mut a = acceptor_with(&good(), NA, now);
    a.handle_input(&attacker.poll_transmit().unwrap(), now)
        .unwrap();
    let challenge = Challenge::decode(&a.poll_transmit().unwrap()).unwrap();
    let reflected = Proof {
        proof: challenge.proof,
    };
    assert_eq!(
        a.handle_input(&encode(|d| reflected.encode(d)), now),
        Err(HandshakeError::AuthFailed)
    );

    // The role label matters even with the key: the acceptor's MAC over the
    // initiator's transcript is not the initiator's proof.
    let k = good();
    let transcript: [&[u8]; 3] = [b"hello", b"challenge", b""];
    assert_ne!(
        k.acceptor_proof(&transcript, None),
        k.initiator_proof(&transcript, None)
    );
    assert!(!k.verify_initiator(&transcript, None, &k.acceptor_proof(&transcript, None)));

    // An acceptor's Challenge reflected to the acceptor as a Hello is no Hello: it is
    // refused at the type byte.
    let mut a = acceptor_with(&good(), NA, now);
    let as_hello = encode(|d| challenge.encode(d));
    assert!(matches!(
        a.handle_input(&as_hello, now),
        Err(HandshakeError::UnexpectedMessage { found: 4, .. })
    ));
}

#[test]
fn a_challenge_carrying_the_initiators_own_id_is_a_self_connect() {
    let now = Instant::now();
    let mut i = initiator(&good(), now);
    let challenge = Challenge {
        proof: [0; PROOF_LEN],
        node_id: NodeId(1),
        nonce: NA,
    };
    assert_eq!(
        i.handle_input(&encode(|d| challenge.encode(d)), now),
        Err(HandshakeError::SelfConnect)
    );
}

#[test]
fn an_accept_from_another_node_than_the_challenger_is_refused() {
    let now = Instant::now();
    let (mut i, mut a) = (initiator(&good(), now), acceptor_with(&good(), NA, now));
    to_proof(&mut i, &mut a, now);
    let err = i
        .handle_input(&accept_bytes(PROTOCOL_VERSION, Framing::Crc, 3), now)
        .unwrap_err();
    assert!(matches!(err, HandshakeError::Malformed { .. }), "{err:?}");
}

#[test]
fn truncated_and_oversized_proofs() {
    let now = Instant::now();
    let (mut i, mut a) = (initiator(&good(), now), acceptor_with(&good(), NA, now));
    let (_, _, proof) = to_proof(&mut i, &mut a, now);
    let body = Proof::decode(&proof).unwrap().proof;

    // A Proof body shorter than a MAC is malformed; no Reject is owed to garbage.
    let mut short = acceptor_with(&good(), NA, now);
    let mut i2 = initiator(&good(), now);
    to_proof(&mut i2, &mut short, now);
    let err = short
        .handle_input(&message(5, &body[..PROOF_LEN - 1]), now)
        .unwrap_err();
    assert!(matches!(err, HandshakeError::Malformed { .. }), "{err:?}");

    // Appended bytes are covered by the proof: the honest proof no longer matches.
    let mut long = acceptor_with(&good(), NA, now);
    let mut i3 = initiator(&good(), now);
    to_proof(&mut i3, &mut long, now);
    let mut appended = body.to_vec();
    appended.extend_from_slice(b"appended");
    assert_eq!(
        long.handle_input(&message(5, &appended), now),
        Err(HandshakeError::AuthFailed)
    );

    // A body length above the maximum is refused at the header, before any buffer.
    let mut huge = acceptor_with(&good(), NA, now);
    let mut i4 = initiator(&good(), now);
    to_proof(&mut i4, &mut huge, now);
    let header = [b'I', b'N', b'O', b'D', 5, 0x01, 0x08];
    assert_eq!(
        huge.handle_input(&header, now),
        Err(HandshakeError::body_too_long(2049))
    );

    // The EOF inside the Proof: the peer did not prove itself.
    let mut cut = acceptor_with(&good(), NA, now);
    let mut i5 = initiator(&good(), now);
    let (_, _, proof) = to_proof(&mut i5, &mut cut, now);
    assert_eq!(cut.handle_input(&proof[..10], now), Ok(None));
    assert_eq!(cut.handle_eof(), HandshakeError::AuthIncomplete);
}

#[test]
fn a_truncated_challenge_is_malformed_and_an_accept_before_it_is_missing_auth() {
    let now = Instant::now();
    let mut i = initiator(&good(), now);
    let err = i.handle_input(&message(4, &[0; 40]), now).unwrap_err();
    assert!(matches!(err, HandshakeError::Malformed { .. }), "{err:?}");
    let mut i = initiator(&good(), now);
    assert_eq!(
        i.handle_input(&accept_bytes(PROTOCOL_VERSION, Framing::Crc, 2), now),
        Err(HandshakeError::AuthMissing)
    );
}

#[test]
fn the_deadline_runs_while_the_proof_is_awaited() {
    let now = Instant::now();
    let (mut i, mut a) = (initiator(&good(), now), acceptor_with(&good(), NA, now));
    to_proof(&mut i, &mut a, now);
    assert_eq!(a.poll_timeout(), Some(now + TIMEOUT));
    assert_eq!(i.poll_timeout(), Some(now + TIMEOUT));
    assert_eq!(
        a.handle_timeout(now + TIMEOUT),
        Err(HandshakeError::Timeout)
    );
    assert_eq!(
        i.handle_timeout(now + TIMEOUT),
        Err(HandshakeError::Timeout)
    );
}

#[test]
fn keys_refuse_an_empty_secret_and_a_long_name_and_hide_the_key() {
    assert_eq!(
        ClusterKey::derive(b"", "c"),
        Err(ClusterKeyError::EmptySecret)
    );
    let long = "x".repeat(MAX_CLUSTER_NAME_LEN + 1);
    assert!(matches!(
        ClusterKey::derive(b"s", &long),
        Err(ClusterKeyError::NameTooLong { .. })
    ));
    let name = "x".repeat(MAX_CLUSTER_NAME_LEN);
    let k = ClusterKey::derive(b"s", &name).unwrap();
    // The longest name still fits the Hello.
    let mut i = Initiator::with_auth(hello(1), &k, NC, Instant::now(), TIMEOUT);
    assert!(Hello::decode(&i.poll_transmit().unwrap()).is_ok());
    let shown = format!("{:?}", good());
    assert!(
        shown.contains("redacted") && shown.contains("test-cluster"),
        "{shown}"
    );
    assert_ne!(good(), key(b"the right secret!"));
}

/// Over TLS both proofs cover the connection's exporter: a handshake relayed
/// between two TLS connections (a different binding on each end) fails at the
/// initiator, before it proves anything; the same binding on both ends establishes.
#[test]
fn proofs_bound_to_a_channel_check_out_only_over_that_channel() {
    let now = Instant::now();
    let bound_initiator = |b| initiator(&good(), now).bind_to_channel(b);
    let bound_acceptor = |b| acceptor_with(&good(), NA, now).bind_to_channel(b);

    let (mut i, mut a) = (bound_initiator([7; 32]), bound_acceptor([7; 32]));
    let (_, _, proof) = to_proof(&mut i, &mut a, now);
    assert!(a.handle_input(&proof, now).unwrap().is_some());
    a.accept(params()).unwrap();
    let accept = a.poll_transmit().unwrap();
    assert!(i.handle_input(&accept, now).unwrap().is_some());

    // Relayed: each end computed its proofs over its own connection.
    let unbound = || initiator(&good(), now);
    let cases: [(Initiator, Acceptor); 3] = [
        (bound_initiator([7; 32]), bound_acceptor([8; 32])),
        (unbound(), bound_acceptor([7; 32])),
        (bound_initiator([7; 32]), acceptor_with(&good(), NA, now)),
    ];
    for (n, (mut i, mut a)) in cases.into_iter().enumerate() {
        let hello = i.poll_transmit().unwrap();
        assert_eq!(a.handle_input(&hello, now), Ok(None), "case {n}");
        let challenge = a.poll_transmit().unwrap();
        assert_eq!(
            i.handle_input(&challenge, now),
            Err(HandshakeError::AuthFailed),
            "case {n}"
        );
        assert_eq!(i.poll_transmit(), None, "case {n}: no Proof");
    }

    // An initiator's proof made over another channel fails at the acceptor too
    // (same nonces: only the binding differs).
    let (mut i, mut a) = (bound_initiator([7; 32]), bound_acceptor([7; 32]));
    let (hello, _, proof) = to_proof(&mut i, &mut a, now);
    let mut other = bound_acceptor([9; 32]);
    assert_eq!(other.handle_input(&hello, now), Ok(None));
    assert_eq!(
        other.handle_input(&proof, now),
        Err(HandshakeError::AuthFailed)
    );
}
