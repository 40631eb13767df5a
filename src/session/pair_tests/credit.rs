//! Producers' credit: granted only out of room the link has, charged at once, in the
//! order asked; messages within it never refused for room; given back on close.

use super::*;

fn granted(pair: &Pair) -> Vec<(u64, usize)> {
    pair.credit_answers
        .iter()
        .filter_map(|(id, a)| match a {
            CreditAnswer::Granted(n) => Some((*id, *n)),
            _ => None,
        })
        .collect()
}

#[test]
fn credit_comes_out_of_the_capacity_and_messages_within_it_are_taken() {
    let mut p = Pair::with(config(LinkPolicy::Lossless, 4096), 1);
    p.ask_credit(1, 100, 1000);
    assert_eq!(granted(&p), [(1, 1000)]);
    assert_eq!((p.link.credit_bytes(), p.link.pending_bytes()), (1000, 0));
    for n in 0..10 {
        p.send_credited(n, 100);
    }
    assert_eq!((p.link.credit_bytes(), p.link.pending_bytes()), (0, 1000));
    p.settle(Duration::from_secs(5));
    assert_eq!(p.acknowledged(), 10);
    assert_eq!(p.delivered, (0..10).collect::<Vec<_>>());
    assert_eq!(p.link.pending_bytes() + p.link.credit_bytes(), 0);
}

#[test]
fn asks_wait_for_room_and_are_granted_in_order() {
    // No reserve at all: only the link's 1000 bytes.
    let mut p = Pair::with(config(LinkPolicy::Lossless, 1000), 2);
    p.grant_reserve = false;
    p.ask_credit(1, 600, 600);
    p.send_credited(0, 600);
    // Written, not yet acknowledged: its bytes stay charged.
    p.write_and_lose();
    p.ask_credit(2, 600, 600);
    p.ask_credit(3, 100, 100);
    assert_eq!(
        granted(&p),
        [(1, 600)],
        "neither fits before 2: 3 waits behind it"
    );
    assert!(
        p.credit_answers
            .contains(&(2, CreditAnswer::Waiting(OverloadLevel::Endpoint))),
        "the producer learns why it waits: {:?}",
        p.credit_answers
    );
    assert_eq!(p.link.credit_waiting(), 2);
    // The peer acknowledges after a reconnect: room for both, in order.
    p.cut();
    p.settle(Duration::from_secs(5));
    assert_eq!(p.acknowledged(), 1);
    assert_eq!(granted(&p), [(1, 600), (2, 600), (3, 100)]);
    assert_eq!(p.link.credit_waiting(), 0);
}

#[test]
fn a_message_within_credit_is_never_refused_for_room() {
    let mut p = Pair::with(config(LinkPolicy::Lossless, 100), 3);
    p.ask_credit(1, 5000, 5000);
    assert_eq!(granted(&p), [(1, 5000)], "leased from the reserves");
    assert!(p.link.reserve_bytes() >= 4900);
    assert_eq!(p.reserves.in_use(&PEER), p.link.reserve_bytes());
    // The reserves run dry for everyone else meanwhile.
    p.grant_reserve = false;
    let rest = p.reserves.available(&PEER);
    let hog = p.reserves.try_acquire(&PEER, rest).unwrap();
    for n in 0..5 {
        p.send_credited(n, 1000);
    }
    assert!(p.outcomes.is_empty(), "nothing refused: {:?}", p.outcomes);
    // Without credit the same message is refused at once.
    p.send(99, None);
    assert_eq!(
        p.outcomes.get(&99),
        Some(&Err(SendError::Overloaded(OverloadLevel::Endpoint)))
    );
    p.settle(Duration::from_secs(5));
    assert_eq!(p.acknowledged(), 5);
    p.reserves.release(hog);
}

#[test]
fn returned_credit_makes_room_for_the_next_ask() {
    let mut p = Pair::with(config(LinkPolicy::Lossy, 1000), 4);
    p.grant_reserve = false;
    p.ask_credit(1, 800, 800);
    p.ask_credit(2, 500, 500);
    assert_eq!(granted(&p), [(1, 800)]);
    p.link.handle_credit_returned(800, p.now);
    p.collect();
    assert_eq!(granted(&p), [(1, 800), (2, 500)]);
    assert_eq!(p.link.credit_bytes(), 500);
    // More than held is given back: only what is held goes.
    p.link.handle_credit_returned(10_000, p.now);
    assert_eq!(p.link.credit_bytes(), 0);
}

#[test]
fn a_parked_reserve_request_grants_credit_when_the_reserves_free_up() {
    let mut p = Pair::with(config(LinkPolicy::Lossy, 100), 5);
    let all = p.reserves.available(&PEER);
    let hog = p.reserves.try_acquire(&PEER, all).unwrap();
    p.ask_credit(1, 300, 300);
    assert!(granted(&p).is_empty());
    assert!(p.credit_parked.is_some(), "asked the reserves and waits");
    p.reserves.release(hog);
    assert!(p.serve_credit_acquire());
    assert_eq!(granted(&p), [(1, 300)]);
}

#[test]
fn closing_refuses_the_asks_and_gives_every_credited_byte_back() {
    let mut p = Pair::with(config(LinkPolicy::Lossless, 100), 6);
    p.ask_credit(1, 400, 400);
    p.grant_reserve = false;
    p.ask_credit(2, 500_000, 500_000);
    assert_eq!(granted(&p), [(1, 400)]);
    p.link.handle_close(false, None, p.now);
    p.collect();
    // The parked request is answered after all: the grant goes straight back.
    p.grant_reserve = true;
    assert!(p.serve_credit_acquire());
    assert!(p
        .credit_answers
        .contains(&(2, CreditAnswer::Refused(SendError::Closed))));
    assert_eq!(p.link.credit_bytes(), 0);
    assert_eq!(p.reserves.in_use(&PEER), 0, "the lease went back");
    // A message sent under the credit it held fails `Closed`, nothing leaks.
    p.send_credited(7, 100);
    assert_eq!(p.outcomes.get(&7), Some(&Err(SendError::Closed)));
    p.ask_credit(3, 1, 1);
    assert!(p
        .credit_answers
        .contains(&(3, CreditAnswer::Refused(SendError::Closed))));
}

#[test]
fn a_link_failing_to_connect_grants_no_credit_beyond_its_capacity() {
    let mut p = Pair::with(config(LinkPolicy::Lossless, 1000), 7);
    p.send(0, None);
    // The peer is gone: the link retries.
    p.cut();
    while !matches!(p.link.state(), LinkState::WaitingToRetry { .. }) {
        p.fire_timer_refusing_dials().expect("the link retries");
    }
    p.ask_credit(1, 500, 500);
    assert_eq!(granted(&p), [(1, 500)], "within the capacity");
    p.ask_credit(2, 800, 800);
    assert_eq!(granted(&p).len(), 1);
    assert!(
        p.credit_answers
            .contains(&(2, CreditAnswer::Waiting(OverloadLevel::Link))),
        "told at once that it waits for the link: {:?}",
        p.credit_answers
    );
    assert!(
        p.credit_parked.is_none(),
        "no reserve for a link that cannot deliver"
    );
    assert_eq!(p.reserves.in_use(&PEER), 0);
}

#[test]
fn credit_held_moves_off_the_reserve_once_the_capacity_has_room() {
    let mut p = Pair::with(config(LinkPolicy::Lossless, 1000), 8);
    p.send_sized(0, 1000, None);
    p.ask_credit(1, 600, 600);
    assert_eq!(granted(&p), [(1, 600)]);
    assert!(
        p.reserves.in_use(&PEER) >= 600,
        "leased while the link was full"
    );
    // The message is acknowledged: the link's capacity has room again; the credit
    // the producer still holds moves onto it and the lease goes back.
    p.settle(Duration::from_secs(5));
    p.advance(Duration::from_secs(1));
    assert_eq!(p.acknowledged(), 1);
    assert_eq!(p.link.credit_bytes(), 600);
    assert_eq!(p.reserves.in_use(&PEER), 0);
    assert_eq!(p.link.reserve_bytes(), 0);
}
