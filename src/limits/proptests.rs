//! Property tests of the accounting: arbitrary sequences of acquire, split, merge and
//! release on several endpoints of two [`Reserves`] (as a node keeps one per direction),
//! checked after every step against the outstanding grants.

use proptest::prelude::*;
use proptest::sample::Index;

use super::{Grant, Limits, Reserves, Shortage};

const ENDPOINTS: u8 = 4;

#[derive(Debug, Clone)]
enum Op {
    Acquire {
        direction: usize,
        endpoint: u8,
        bytes: usize,
    },
    Split {
        grant: Index,
        bytes: usize,
    },
    Merge {
        into: Index,
        from: Index,
    },
    Release {
        grant: Index,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..ENDPOINTS, 0..80usize).prop_map(|(direction, endpoint, bytes)| {
            Op::Acquire { direction, endpoint, bytes }
        }),
        2 => (any::<Index>(), 0..60usize).prop_map(|(grant, bytes)| Op::Split { grant, bytes }),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(into, from)| Op::Merge { into, from }),
        3 => any::<Index>().prop_map(|grant| Op::Release { grant }),
    ]
}

/// Everything observable about one `Reserves`, to compare before and after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    in_use: Vec<usize>,
    peak: Vec<usize>,
    in_use_global: usize,
    peak_global: usize,
    peak_endpoints: usize,
    endpoints: usize,
}

fn snapshot(reserves: &Reserves<u8>) -> Snapshot {
    Snapshot {
        in_use: (0..ENDPOINTS).map(|e| reserves.in_use(&e)).collect(),
        peak: (0..ENDPOINTS).map(|e| reserves.peak(&e)).collect(),
        in_use_global: reserves.in_use_global(),
        peak_global: reserves.peak_global(),
        peak_endpoints: reserves.peak_endpoints(),
        endpoints: reserves.endpoints(),
    }
}

/// The invariants of the module docs, for one direction, given its outstanding grants
/// and its state before the step.
fn check(
    reserves: &Reserves<u8>,
    grants: &[&Grant<u8>],
    before: &Snapshot,
) -> Result<(), TestCaseError> {
    let limits = reserves.limits();
    let now = snapshot(reserves);
    let mut busy = 0;
    for e in 0..ENDPOINTS {
        let i = usize::from(e);
        let granted: usize = grants
            .iter()
            .filter(|g| *g.endpoint() == e)
            .map(|g| g.bytes())
            .sum();
        prop_assert_eq!(now.in_use[i], granted, "endpoint {} in use = its grants", e);
        prop_assert!(now.in_use[i] <= limits.endpoint_reserve);
        prop_assert!(now.peak[i] >= now.in_use[i]);
        prop_assert!(now.peak_endpoints >= now.peak[i]);
        if before.in_use[i] > 0 && now.in_use[i] > 0 {
            prop_assert!(
                now.peak[i] >= before.peak[i],
                "endpoint {} peak decreased",
                e
            );
        }
        let endpoint_left = limits.endpoint_reserve - now.in_use[i];
        prop_assert_eq!(
            reserves.available(&e),
            endpoint_left.min(reserves.available_global())
        );
        busy += usize::from(granted > 0);
    }
    let granted: usize = grants.iter().map(|g| g.bytes()).sum();
    prop_assert_eq!(now.in_use_global, granted, "global in use = all grants");
    prop_assert!(now.in_use_global <= limits.global_reserve);
    prop_assert!(now.peak_global >= now.in_use_global);
    prop_assert!(
        now.peak_global >= before.peak_global,
        "global peak decreased"
    );
    prop_assert!(now.peak_endpoints >= before.peak_endpoints);
    prop_assert_eq!(
        now.endpoints,
        busy,
        "only endpoints with bytes in use are kept"
    );
    Ok(())
}

fn limits() -> impl Strategy<Value = Limits> {
    (0..120usize, 0..300usize).prop_map(|(endpoint_reserve, global_reserve)| Limits {
        link_capacity: 0,
        endpoint_reserve,
        global_reserve,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_accounting_holds_for_any_sequence_of_operations(
        limits in prop::array::uniform2(limits()),
        ops in prop::collection::vec(op(), 0..120),
    ) {
        let mut reserves = [Reserves::new(limits[0]), Reserves::new(limits[1])];
        // The outstanding grants, each with the direction that granted it.
        let mut grants: Vec<(usize, Grant<u8>)> = Vec::new();

        for op in ops {
            let before = [snapshot(&reserves[0]), snapshot(&reserves[1])];
            match op {
                Op::Acquire { direction, endpoint, bytes } => {
                    let r = &mut reserves[direction];
                    let endpoint_left = r.limits().endpoint_reserve - r.in_use(&endpoint);
                    let global_left = r.available_global();
                    match r.try_acquire(&endpoint, bytes) {
                        Ok(grant) => {
                            prop_assert!(bytes <= endpoint_left && bytes <= global_left);
                            prop_assert_eq!(grant.bytes(), bytes);
                            prop_assert!(r.owns(&grant) && !reserves[1 - direction].owns(&grant));
                            grants.push((direction, grant));
                        }
                        Err(shortage) => {
                            let expected = if bytes > endpoint_left {
                                Shortage::Endpoint { requested: bytes, available: endpoint_left }
                            } else {
                                prop_assert!(bytes > global_left);
                                Shortage::Global { requested: bytes, available: global_left }
                            };
                            prop_assert_eq!(shortage, expected);
                            prop_assert_eq!(&snapshot(r), &before[direction], "a failed acquire changed something");
                        }
                    }
                }
                Op::Split { grant, bytes } => {
                    if grants.is_empty() { continue; }
                    let at = grant.index(grants.len());
                    let (direction, grant) = &mut grants[at];
                    let (direction, held) = (*direction, grant.bytes());
                    match grant.split_off(bytes) {
                        Some(part) => {
                            prop_assert!(bytes <= held);
                            prop_assert_eq!(part.bytes() + grant.bytes(), held);
                            prop_assert_eq!(part.endpoint(), grant.endpoint());
                            grants.push((direction, part));
                        }
                        None => {
                            prop_assert!(bytes > held);
                            prop_assert_eq!(grant.bytes(), held);
                        }
                    }
                }
                Op::Merge { into, from } => {
                    if grants.len() < 2 { continue; }
                    let into = into.index(grants.len());
                    let from = from.index(grants.len());
                    if into == from { continue; }
                    let (from_direction, from_grant) = grants.swap_remove(from);
                    // swap_remove moved the last grant to `from`.
                    let into = if into == grants.len() { from } else { into };
                    let (into_direction, target) = &mut grants[into];
                    let compatible = *into_direction == from_direction
                        && target.endpoint() == from_grant.endpoint();
                    let total = target.bytes() + from_grant.bytes();
                    match target.merge(from_grant) {
                        Ok(()) => {
                            prop_assert!(compatible);
                            prop_assert_eq!(target.bytes(), total);
                        }
                        Err(back) => {
                            prop_assert!(!compatible);
                            grants.push((from_direction, back));
                        }
                    }
                }
                Op::Release { grant } => {
                    if grants.is_empty() { continue; }
                    let (direction, grant) = grants.swap_remove(grant.index(grants.len()));
                    reserves[direction].release(grant);
                }
            }
            for direction in 0..2 {
                let own: Vec<&Grant<u8>> =
                    grants.iter().filter(|(d, _)| *d == direction).map(|(_, g)| g).collect();
                check(&reserves[direction], &own, &before[direction])?;
            }
        }

        // Release everything: nothing is in use anywhere, nothing is remembered.
        for (direction, grant) in grants {
            reserves[direction].release(grant);
        }
        for r in &reserves {
            prop_assert_eq!(r.in_use_global(), 0);
            prop_assert_eq!(r.endpoints(), 0);
            for e in 0..ENDPOINTS {
                prop_assert_eq!(r.in_use(&e), 0);
            }
            prop_assert_eq!(r.available_global(), r.limits().global_reserve);
        }
    }
}
