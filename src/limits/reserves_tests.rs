//! Edge cases of the reserves: zero bytes, exact fits, each level one byte over,
//! endpoints competing, leases, foreign grants.

use super::*;
use crate::NodeId;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

fn reserves(endpoint_reserve: usize, global_reserve: usize) -> Reserves<NodeId> {
    Reserves::new(Limits {
        link_capacity: 0,
        endpoint_reserve,
        global_reserve,
    })
}

#[test]
fn zero_byte_grants_always_succeed_and_take_nothing() {
    let mut r = reserves(0, 0);
    let grant = r.try_acquire(&A, 0).unwrap();
    assert!(grant.is_empty());
    assert_eq!((r.in_use(&A), r.in_use_global(), r.endpoints()), (0, 0, 0));
    r.release(grant);
    assert_eq!(
        (r.in_use_global(), r.endpoints(), r.peak_global()),
        (0, 0, 0)
    );

    let mut r = reserves(10, 10);
    let full = r.try_acquire(&A, 10).unwrap();
    let nothing = r.try_acquire(&A, 0).expect("zero bytes fit a full reserve");
    r.release(nothing);
    assert_eq!(r.in_use(&A), 10);
    r.release(full);
}

#[test]
fn an_exact_fit_is_granted_at_both_levels() {
    let mut r = reserves(100, 100);
    let grant = r.try_acquire(&A, 100).unwrap();
    assert_eq!(grant.bytes(), 100);
    assert_eq!(grant.endpoint(), &A);
    assert_eq!((r.in_use(&A), r.in_use_global()), (100, 100));
    assert_eq!((r.available(&A), r.available_global()), (0, 0));
    r.release(grant);
    assert_eq!((r.in_use(&A), r.in_use_global(), r.endpoints()), (0, 0, 0));
}

#[test]
fn one_byte_over_the_endpoint_reserve_is_an_endpoint_shortage() {
    let mut r = reserves(100, 1000);
    let held = r.try_acquire(&A, 40).unwrap();
    let err = r.try_acquire(&A, 61).unwrap_err();
    assert_eq!(
        err,
        Shortage::Endpoint {
            requested: 61,
            available: 60
        }
    );
    assert_eq!((err.requested(), err.available()), (61, 60));
    assert_eq!(
        (r.in_use(&A), r.in_use_global(), r.peak_global()),
        (40, 40, 40)
    );
    let rest = r.try_acquire(&A, 60).unwrap();
    r.release(held);
    r.release(rest);
}

#[test]
fn one_byte_over_the_global_reserve_is_a_global_shortage() {
    let mut r = reserves(1000, 100);
    let held = r.try_acquire(&A, 40).unwrap();
    let err = r.try_acquire(&A, 61).unwrap_err();
    assert_eq!(
        err,
        Shortage::Global {
            requested: 61,
            available: 60
        }
    );
    assert_eq!((r.in_use(&A), r.in_use_global()), (40, 40));
    r.release(held);
}

#[test]
fn when_both_are_short_the_endpoint_is_named() {
    let mut r = reserves(10, 5);
    let err = r.try_acquire(&A, 11).unwrap_err();
    assert_eq!(
        err,
        Shortage::Endpoint {
            requested: 11,
            available: 10
        }
    );
    assert_eq!(
        err.to_string(),
        "endpoint reserve short: 11 bytes requested, 10 available"
    );
}

#[test]
fn two_endpoints_compete_for_the_global_reserve() {
    let mut r = reserves(70, 100);
    let a = r.try_acquire(&A, 70).unwrap();
    // B's own reserve has 70 left, but only 30 remain globally.
    assert_eq!(r.available(&B), 30);
    let err = r.try_acquire(&B, 31).unwrap_err();
    assert_eq!(
        err,
        Shortage::Global {
            requested: 31,
            available: 30
        }
    );
    let b = r.try_acquire(&B, 30).unwrap();
    assert_eq!(
        (r.in_use(&A), r.in_use(&B), r.in_use_global()),
        (70, 30, 100)
    );
    // A frees its bytes: B may now grow up to its own reserve.
    r.release(a);
    assert_eq!(r.endpoints(), 1);
    let more = r.try_acquire(&B, 40).unwrap();
    let err = r.try_acquire(&B, 1).unwrap_err();
    assert_eq!(
        err,
        Shortage::Endpoint {
            requested: 1,
            available: 0
        }
    );
    r.release(b);
    r.release(more);
    assert_eq!((r.in_use_global(), r.endpoints()), (0, 0));
    assert_eq!((r.peak_global(), r.peak_endpoints()), (100, 70));
}

#[test]
fn a_lease_is_carved_into_messages_and_merged_back() {
    let mut r = reserves(1000, 1000);
    let mut lease = r.try_acquire(&A, 300).unwrap();
    let m1 = lease.split_off(100).unwrap();
    let m2 = lease.split_off(200).unwrap();
    assert!(lease.is_empty());
    assert!(lease.split_off(1).is_none(), "more than the lease holds");
    assert_eq!(r.in_use(&A), 300, "splitting moves bytes, it takes none");
    lease.merge(m1).unwrap();
    r.release(m2);
    assert_eq!(r.in_use(&A), 100);
    assert_eq!(lease.bytes(), 100);
    r.release(lease);
    assert_eq!((r.in_use_global(), r.endpoints()), (0, 0));
}

#[test]
fn grants_of_another_endpoint_or_reserves_do_not_merge() {
    let mut r = reserves(1000, 1000);
    let mut other = reserves(1000, 1000);
    let mut a = r.try_acquire(&A, 10).unwrap();
    let b = r.try_acquire(&B, 20).unwrap();
    let foreign = other.try_acquire(&A, 30).unwrap();
    let b = a.merge(b).unwrap_err();
    let foreign = a.merge(foreign).unwrap_err();
    assert_eq!((a.bytes(), b.bytes(), foreign.bytes()), (10, 20, 30));
    assert!(r.owns(&a) && !r.owns(&foreign) && other.owns(&foreign));
    r.release(a);
    r.release(b);
    other.release(foreign);
}

#[test]
#[cfg_attr(debug_assertions, should_panic(expected = "did not grant it"))]
fn a_grant_released_to_other_reserves_changes_nothing() {
    let mut sending = reserves(1000, 1000);
    let mut receiving = reserves(1000, 1000);
    let held = sending.try_acquire(&A, 10).unwrap();
    let grant = receiving.try_acquire(&A, 10).unwrap();
    sending.release(grant); // panics in debug builds
    assert_eq!((sending.in_use(&A), receiving.in_use(&A)), (10, 10));
    sending.release(held);
}

#[test]
fn huge_requests_do_not_overflow() {
    let mut r = reserves(usize::MAX, usize::MAX);
    let big = r.try_acquire(&A, usize::MAX - 1).unwrap();
    let err = r.try_acquire(&B, 2).unwrap_err();
    assert_eq!(
        err,
        Shortage::Global {
            requested: 2,
            available: 1
        }
    );
    let one = r.try_acquire(&B, 1).unwrap();
    assert_eq!(r.in_use_global(), usize::MAX);
    assert!(r.try_acquire(&A, usize::MAX).is_err());
    r.release(big);
    r.release(one);
    assert_eq!(r.in_use_global(), 0);
}

#[test]
fn endpoint_peaks_are_forgotten_with_the_endpoint_but_the_maximum_stays() {
    let mut r = reserves(100, 100);
    let grant = r.try_acquire(&A, 60).unwrap();
    assert_eq!(r.peak(&A), 60);
    r.release(grant);
    assert_eq!(
        (r.peak(&A), r.peak_endpoints(), r.peak_global()),
        (0, 60, 60)
    );
    let grant = r.try_acquire(&A, 5).unwrap();
    assert_eq!((r.peak(&A), r.peak_endpoints()), (5, 60));
    r.release(grant);
}

#[test]
fn default_limits_are_cassandras() {
    let r: Reserves<NodeId> = Reserves::default();
    assert_eq!(r.limits(), Limits::default());
    assert_eq!(r.available(&A), 128 << 20);
    assert_eq!(r.available_global(), 512 << 20);
}
