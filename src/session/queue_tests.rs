//! The outbound queue on a simulated clock: expiry, eager drops on overload, order, and
//! the bytes given back.

use super::*;
use crate::limits::{Limits, Reserves};

type Queue = OutboundQueue<u8, u32>;

fn push(q: &mut Queue, item: u32, bytes: usize, expires: Option<u64>, now: u64) -> Vec<u32> {
    let mut expired = Vec::new();
    q.try_push(item, bytes, expires, now, &mut expired)
        .unwrap_or_else(|r| panic!("refused: {r:?}"));
    expired.into_iter().map(|e| e.item).collect()
}

fn pop_all(q: &mut Queue, now: u64) -> (Vec<u32>, Vec<u32>) {
    let (mut out, mut expired) = (Vec::new(), Vec::new());
    while let Some(entry) = q.pop(now, &mut expired) {
        out.push(q.settle(entry).item);
    }
    (out, expired.into_iter().map(|e| e.item).collect())
}

#[test]
fn messages_leave_in_order_and_give_their_bytes_back() {
    let mut q = Queue::new(100, 10);
    for i in 0..5 {
        push(&mut q, i, 10, None, 0);
    }
    assert_eq!((q.len(), q.bytes()), (5, 50));
    assert_eq!(pop_all(&mut q, 0), (vec![0, 1, 2, 3, 4], vec![]));
    assert_eq!((q.len(), q.bytes()), (0, 0));
}

#[test]
fn an_expired_message_is_never_admitted_nor_written() {
    let mut q = Queue::new(100, 10);
    let mut expired = Vec::new();
    let refused = q.try_push(1, 10, Some(1000), 1000, &mut expired);
    assert!(
        matches!(refused, Err(Refused::Expired(1))),
        "expires at its deadline"
    );
    push(&mut q, 2, 10, Some(1500), 1000);
    push(&mut q, 3, 10, None, 1000);
    push(&mut q, 4, 10, Some(3000), 1000);
    // The clock moves on while the link is busy: 2 expires before it is written.
    assert_eq!(pop_all(&mut q, 2000), (vec![3, 4], vec![2]));
    assert_eq!(q.bytes(), 0);
}

#[test]
fn regular_expiry_drops_every_expired_message_wherever_it_is() {
    let mut q = Queue::new(100, 10);
    push(&mut q, 1, 10, None, 0);
    push(&mut q, 2, 10, Some(100), 0);
    push(&mut q, 3, 10, None, 0);
    push(&mut q, 4, 10, Some(200), 0);
    push(&mut q, 5, 10, Some(100), 0);
    // The head is taken for writing (it cannot be dropped now); the rest still expire.
    let mut expired = Vec::new();
    let head = q.pop(0, &mut expired).unwrap();
    q.handle_timeout(150, &mut expired);
    let items: Vec<u32> = expired.iter().map(|e| e.item).collect();
    assert_eq!(items, vec![2, 5]);
    assert_eq!(q.bytes(), 30, "the written-but-unsettled head and 3, 4");
    q.handle_timeout(200, &mut expired);
    assert_eq!(expired.last().map(|e| e.item), Some(4));
    let head = q.settle(head);
    assert_eq!(head.item, 1);
    assert_eq!(pop_all(&mut q, 200), (vec![3], vec![]));
}

#[test]
fn a_full_link_drops_expired_messages_before_asking_for_reserve() {
    let mut q = Queue::new(30, 10);
    push(&mut q, 1, 10, Some(100), 0);
    push(&mut q, 2, 10, None, 0);
    push(&mut q, 3, 10, Some(100), 0);
    // Full. At 50 nothing has expired: reserve is needed.
    let mut expired = Vec::new();
    match q.try_push(4, 10, None, 50, &mut expired) {
        Err(Refused::NeedReserve(4, need)) => assert_eq!(need.at_least, 10),
        other => panic!("expected NeedReserve, got {other:?}"),
    }
    assert!(expired.is_empty());
    // At 100, 1 and 3 have expired: dropped eagerly, and 4 fits the link.
    let dropped = push(&mut q, 4, 10, None, 100);
    assert_eq!(dropped, vec![1, 3]);
    assert_eq!(q.bytes(), 20);
    assert_eq!(pop_all(&mut q, 100), (vec![2, 4], vec![]));
}

#[test]
fn reserve_leased_for_a_message_goes_back_once_the_link_is_idle() {
    let mut reserves = Reserves::new(Limits {
        link_capacity: 10,
        endpoint_reserve: 100,
        global_reserve: 100,
    });
    let mut q = Queue::new(10, 16);
    push(&mut q, 1, 10, None, 0);
    let mut expired = Vec::new();
    let Err(Refused::NeedReserve(item, need)) = q.try_push(2, 4, None, 0, &mut expired) else {
        panic!("the link is full");
    };
    let grant = reserves.try_acquire(&1, need.up_to).unwrap();
    assert_eq!(
        grant.bytes(),
        4 + 16,
        "the need and a chunk, to save round trips"
    );
    q.add_lease(grant).unwrap();
    q.try_push(item, 4, None, 0, &mut expired).unwrap();
    push(&mut q, 3, 4, None, 0);
    assert_eq!(q.account().spare(), 12);
    assert!(q.surplus().is_none(), "keeps a chunk and the last need");
    assert_eq!(pop_all(&mut q, 0).0, vec![1, 2, 3]);
    assert!(
        q.surplus().is_none(),
        "still within a chunk and the last need"
    );
    let idle = q.idle_spare().expect("idle: the lease goes back");
    assert_eq!(idle.bytes(), 20);
    reserves.release(idle);
    assert_eq!(reserves.in_use_global(), 0);
}

#[test]
fn keepalives_go_first_and_drain_and_remove_give_bytes_back() {
    let mut q = Queue::new(25, 10);
    push(&mut q, 1, 10, None, 0);
    push(&mut q, 2, 10, None, 0);
    q.push_front(0, 5).unwrap();
    assert_eq!(q.push_front(9, 1), Err(9), "no reserve for keepalives");
    let removed: Vec<u32> = q
        .remove_where(|&i| i == 0)
        .into_iter()
        .map(|e| e.item)
        .collect();
    assert_eq!(removed, vec![0]);
    assert_eq!(q.bytes(), 20);
    let drained: Vec<u32> = q.drain().into_iter().map(|e| e.item).collect();
    assert_eq!(drained, vec![1, 2]);
    assert_eq!((q.len(), q.bytes()), (0, 0));
}
