//! One link's accounting of one direction: [`Account`], and the [`Charge`] it makes
//! for each message.

use super::{Grant, LinkBudget};

/// What one message is charged: bytes of its link's capacity and, for the part that
/// did not fit, a grant of reserve carved out of the link's lease.
///
/// Give it back with [`Account::discharge`] (the link keeps the reserve as spare
/// lease), or give the link part back with [`Account::give_back`] and release the
/// reserve part to the reserves directly (what happens when the link is gone before
/// the message is done with).
#[must_use = "dropping a Charge without discharging it leaks its bytes"]
#[derive(Debug)]
#[non_exhaustive]
pub struct Charge<K> {
    /// Bytes of the link's own capacity.
    pub link: usize,
    /// Bytes of reserve, if any of the message did not fit the link's capacity.
    pub reserve: Option<Grant<K>>,
}

impl<K> Charge<K> {
    /// A charge of nothing.
    pub fn none() -> Self {
        Charge {
            link: 0,
            reserve: None,
        }
    }

    /// All the bytes charged.
    pub fn bytes(&self) -> usize {
        self.link + self.reserve.as_ref().map_or(0, Grant::bytes)
    }

    /// Moves `bytes` of this charge into a new one (its link part first, then its
    /// reserve part); this one keeps the rest. `None`, and nothing changes, if this
    /// charge holds fewer than `bytes`. Together the two hold exactly what this one
    /// held: a link hands a message its bytes out of a larger charge (a producer's
    /// credit) this way.
    #[must_use = "dropping a Charge without discharging it leaks its bytes"]
    pub fn split_off(&mut self, bytes: usize) -> Option<Charge<K>>
    where
        K: Clone,
    {
        if bytes > self.bytes() {
            return None;
        }
        let link = bytes.min(self.link);
        let reserve = match bytes - link {
            0 => None,
            r => Some(self.reserve.as_mut()?.split_off(r)?),
        };
        self.link -= link;
        Some(Charge { link, reserve })
    }

    /// Moves all of `other` into this charge. A charge whose reserve part is of
    /// another endpoint or reserves is handed back, and nothing changes.
    pub fn merge(&mut self, mut other: Charge<K>) -> Result<(), Charge<K>>
    where
        K: Eq,
    {
        if let Some(theirs) = other.reserve.take() {
            match self.reserve.as_mut() {
                None => self.reserve = Some(theirs),
                Some(mine) => {
                    if let Err(theirs) = mine.merge(theirs) {
                        other.reserve = Some(theirs);
                        return Err(other);
                    }
                }
            }
        }
        self.link += other.link;
        Ok(())
    }
}

/// What an [`Account`] needs from the reserves before it can charge a message: at
/// least `at_least` bytes (what the message lacks beyond the spare lease), and up to
/// `up_to` (that and a lease chunk more, to save round trips for the messages that
/// follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReserveNeeded {
    /// The least grant that lets the message be charged.
    pub at_least: usize,
    /// The most worth asking for.
    pub up_to: usize,
}

/// The reserve an account wants from the `ResourceLimits` actor, asked for one
/// request at a time: [`want`](Self::want) says what is needed now (the latest need
/// replaces an earlier one), [`poll`](Self::poll) hands it out unless a request is
/// out, [`answered`](Self::answered) says the request came back (granted or not).
#[derive(Debug, Default)]
pub struct ReserveRequest {
    wanted: Option<ReserveNeeded>,
    out: bool,
}

impl ReserveRequest {
    /// Reserve is needed (`Some`), or no longer (`None`).
    pub fn want(&mut self, need: Option<ReserveNeeded>) {
        self.wanted = need;
    }

    /// What to ask for now, if anything and no request is out.
    pub fn poll(&mut self) -> Option<ReserveNeeded> {
        if self.out {
            return None;
        }
        let need = self.wanted.take()?;
        self.out = true;
        Some(need)
    }

    /// The request that was out came back (or was abandoned).
    pub fn answered(&mut self) {
        self.out = false;
    }
}

/// The bytes one link holds in one direction: its own capacity (a [`LinkBudget`])
/// first, then reserve bytes leased from the `ResourceLimits` actor.
///
/// Invariants (property-tested):
/// - The bytes charged to messages ([`used`](Self::used)) are the link part, at most
///   the capacity, plus the reserve part; the reserve part plus the spare lease is
///   exactly what the link holds of the reserves.
/// - [`try_charge`](Self::try_charge) either charges the whole message or changes
///   nothing and says what reserve it lacks; so does
///   [`try_extend`](Self::try_extend), which adds bytes to a charge already made (a
///   message charged frame by frame as it arrives): the charge then counts as one, for
///   its whole size.
/// - After [`surplus`](Self::surplus), the spare lease is at most one chunk plus the
///   reserve part of the last message that needed reserve (so that a stream of
///   similar messages finds its reserve without a round trip each); after
///   [`idle_spare`](Self::idle_spare) with no reserve charged, it is nothing.
#[derive(Debug)]
pub struct Account<K> {
    budget: LinkBudget,
    chunk: usize,
    reserve_charged: usize,
    /// The reserve part of the last charge that had one.
    last_reserve: usize,
    spare: Option<Grant<K>>,
}

impl<K: Clone + Eq> Account<K> {
    /// An account with `capacity` bytes of its own that leases reserve `chunk` bytes
    /// at a time (at least what a message needs).
    pub fn new(capacity: usize, chunk: usize) -> Self {
        Account {
            budget: LinkBudget::new(capacity),
            chunk,
            reserve_charged: 0,
            last_reserve: 0,
            spare: None,
        }
    }

    /// Charges a message of `bytes`: the link's capacity first, then the spare lease.
    /// When the lease is short nothing changes, and the error says what to acquire.
    pub fn try_charge(&mut self, bytes: usize) -> Result<Charge<K>, ReserveNeeded> {
        let reserve = self.budget.needs_reserve(bytes);
        let spare = self.spare();
        if reserve > spare {
            let at_least = reserve - spare;
            return Err(ReserveNeeded {
                at_least,
                up_to: at_least.saturating_add(self.chunk),
            });
        }
        let link = bytes - reserve;
        let taken = self.budget.try_take(link);
        debug_assert!(taken, "the link part fits by construction");
        let reserve = if reserve == 0 {
            None
        } else {
            let grant = self.spare.as_mut().and_then(|s| s.split_off(reserve));
            debug_assert!(grant.is_some(), "the spare lease covers the reserve part");
            self.reserve_charged += reserve;
            self.last_reserve = reserve;
            grant
        };
        Ok(Charge { link, reserve })
    }

    /// Charges as much of `up_to` bytes as the capacity and the spare lease have, if
    /// that is at least `at_least` (a producer's credit: at least what its next message
    /// needs, up to a chunk). When even `at_least` does not fit, nothing changes and
    /// the error says what reserve to acquire for it, and for up to `up_to`.
    pub fn try_charge_between(
        &mut self,
        at_least: usize,
        up_to: usize,
    ) -> Result<Charge<K>, ReserveNeeded> {
        let up_to = up_to.max(at_least);
        let available = self.budget.available().saturating_add(self.spare());
        if available < at_least {
            return Err(ReserveNeeded {
                at_least: at_least - available,
                up_to: up_to - available,
            });
        }
        self.try_charge(up_to.min(available))
    }

    /// Charges `bytes` more to `charge` (one of this account's): the link's capacity
    /// first, then the spare lease, as [`try_charge`](Self::try_charge) does. When the
    /// lease is short nothing changes, and the error says what to acquire.
    pub fn try_extend(
        &mut self,
        charge: &mut Charge<K>,
        bytes: usize,
    ) -> Result<(), ReserveNeeded> {
        let more = self.try_charge(bytes)?;
        if let Err(more) = charge.merge(more) {
            // Both were carved out of this account's lease, which only ever holds
            // grants of one endpoint; undo rather than mix them.
            debug_assert!(false, "a charge of another account");
            self.discharge(more);
            let at_least = bytes.max(1);
            return Err(ReserveNeeded {
                at_least,
                up_to: at_least.saturating_add(self.chunk),
            });
        }
        Ok(())
    }

    /// Adds a grant from the reserves to the spare lease. A grant for another endpoint
    /// or from other reserves is handed back.
    pub fn add_lease(&mut self, grant: Grant<K>) -> Result<(), Grant<K>> {
        match self.spare.as_mut() {
            None => {
                self.spare = Some(grant);
                Ok(())
            }
            Some(spare) => spare.merge(grant),
        }
    }

    /// Gives a charge back in full: the link part to the capacity, the reserve part to
    /// the spare lease (see [`surplus`](Self::surplus)).
    pub fn discharge(&mut self, charge: Charge<K>) {
        self.give_back_link(charge.link);
        if let Some(grant) = charge.reserve {
            self.reserve_charged = self.reserve_charged.saturating_sub(grant.bytes());
            if let Err(grant) = self.add_lease(grant) {
                // A foreign grant cannot come from this account's charges; keep the
                // books straight by not counting it.
                debug_assert!(false, "a charge of another account");
                drop(grant);
            }
        }
    }

    /// Gives back the link part of a charge whose reserve part was released elsewhere;
    /// `reserve` is that part's size, so that it no longer counts as charged here.
    pub fn give_back(&mut self, link: usize, reserve: usize) {
        self.give_back_link(link);
        self.reserve_charged = self.reserve_charged.saturating_sub(reserve);
    }

    fn give_back_link(&mut self, bytes: usize) {
        self.budget.give_back(bytes);
    }

    /// The spare lease beyond what the link keeps (one chunk plus the reserve part of
    /// its last message that needed some). To be released to the reserves.
    #[must_use = "a surplus grant must be released to the reserves"]
    pub fn surplus(&mut self) -> Option<Grant<K>> {
        let keep = self.chunk.saturating_add(self.last_reserve);
        self.release_beyond(keep)
    }

    /// All the spare lease if no reserve is charged (the link has gone idle): to be
    /// released. A link calls it now and then (on a timer), so that an idle link
    /// holds no reserve for long without paying a round trip per message when busy.
    #[must_use = "an idle spare grant must be released to the reserves"]
    pub fn idle_spare(&mut self) -> Option<Grant<K>> {
        if self.reserve_charged > 0 {
            return None;
        }
        self.last_reserve = 0;
        self.release_beyond(0)
    }

    fn release_beyond(&mut self, keep: usize) -> Option<Grant<K>> {
        let spare = self.spare.as_mut()?;
        let excess = spare.bytes().checked_sub(keep).filter(|&e| e > 0)?;
        let grant = spare.split_off(excess);
        if spare.is_empty() {
            self.spare = None;
        }
        grant
    }

    /// All the spare lease, for a link that is going away (charges still held by
    /// messages are theirs to release).
    #[must_use = "the spare lease must be released to the reserves"]
    pub fn take_spare(&mut self) -> Option<Grant<K>> {
        self.spare.take().filter(|g| !g.is_empty())
    }

    /// Bytes charged to messages (link part and reserve part).
    pub fn used(&self) -> usize {
        self.budget.used() + self.reserve_charged
    }

    /// Bytes of reserve charged to messages.
    pub fn reserve_charged(&self) -> usize {
        self.reserve_charged
    }

    /// Bytes of reserve leased but not charged to any message.
    pub fn spare(&self) -> usize {
        self.spare.as_ref().map_or(0, Grant::bytes)
    }

    /// Bytes of the link's own capacity not charged.
    pub fn capacity_left(&self) -> usize {
        self.budget.available()
    }

    /// The link's own capacity.
    pub fn capacity(&self) -> usize {
        self.budget.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Limits, Reserves};
    use proptest::prelude::*;

    fn limits() -> Limits {
        Limits {
            link_capacity: 100,
            endpoint_reserve: 300,
            global_reserve: 1000,
        }
    }

    #[test]
    fn capacity_first_then_the_lease() {
        let mut reserves = Reserves::new(limits());
        let mut account = Account::<u8>::new(100, 64);
        let small = account.try_charge(60).expect("fits the capacity");
        assert_eq!((small.link, small.reserve.is_none()), (60, true));
        let need = account.try_charge(70).unwrap_err();
        assert_eq!(
            need,
            ReserveNeeded {
                at_least: 30,
                up_to: 94
            }
        );
        assert_eq!(account.used(), 60, "a failed charge changes nothing");
        let grant = reserves.try_acquire(&1, need.up_to).unwrap();
        account.add_lease(grant).unwrap();
        let split = account.try_charge(70).expect("the lease covers it");
        assert_eq!(split.link, 40);
        assert_eq!(split.reserve.as_ref().map(Grant::bytes), Some(30));
        assert_eq!((account.used(), account.spare()), (130, 64));
        // The next 30 bytes come from the spare lease without asking.
        let third = account.try_charge(30).unwrap();
        assert_eq!(third.bytes(), 30);
        assert_eq!(account.spare(), 34);
        assert!(
            account.surplus().is_none(),
            "keeps up to a chunk and a message"
        );
        account.discharge(third);
        account.discharge(split);
        account.discharge(small);
        assert_eq!((account.used(), account.spare()), (0, 94));
        assert!(
            account.surplus().is_none(),
            "a chunk and the last need: 64 + 30"
        );
        let idle = account
            .idle_spare()
            .expect("nothing charged: all of it goes back");
        assert_eq!(idle.bytes(), 94);
        reserves.release(idle);
        assert_eq!(reserves.in_use_global(), 0);
        assert!(account.idle_spare().is_none());
    }

    #[test]
    fn reserve_released_elsewhere_is_no_longer_charged() {
        let mut reserves = Reserves::new(limits());
        let mut account = Account::<u8>::new(10, 8);
        account
            .add_lease(reserves.try_acquire(&1, 20).unwrap())
            .unwrap();
        let charge = account.try_charge(25).unwrap();
        assert_eq!(
            (charge.link, charge.reserve.as_ref().unwrap().bytes()),
            (10, 15)
        );
        let Charge { link, reserve } = charge;
        let reserve = reserve.unwrap();
        account.give_back(link, reserve.bytes());
        reserves.release(reserve);
        assert_eq!(account.used(), 0);
        reserves.release(account.idle_spare().unwrap());
        assert_eq!(reserves.in_use_global(), 0);
    }

    #[test]
    fn an_extended_charge_counts_as_one() {
        let mut reserves = Reserves::new(limits());
        let mut account = Account::<u8>::new(100, 10);
        let mut charge = account.try_charge(60).unwrap();
        account.try_extend(&mut charge, 30).unwrap();
        assert_eq!((charge.link, charge.reserve.is_none()), (90, true));
        // Beyond the capacity: nothing changes until the lease covers it.
        let need = account.try_extend(&mut charge, 40).unwrap_err();
        assert_eq!(need.at_least, 30);
        assert_eq!((charge.bytes(), account.used()), (90, 90));
        account
            .add_lease(reserves.try_acquire(&1, need.up_to).unwrap())
            .unwrap();
        account.try_extend(&mut charge, 40).unwrap();
        account.try_extend(&mut charge, 5).unwrap();
        assert_eq!(charge.link, 100);
        assert_eq!(charge.reserve.as_ref().map(Grant::bytes), Some(35));
        assert_eq!(account.used(), 135);
        account.discharge(charge);
        assert_eq!((account.used(), account.spare()), (0, 40));
        reserves.release(account.idle_spare().unwrap());
        assert_eq!(reserves.in_use_global(), 0);
    }

    #[test]
    fn foreign_leases_are_refused() {
        let mut reserves = Reserves::new(limits());
        let mut account = Account::<u8>::new(10, 8);
        account
            .add_lease(reserves.try_acquire(&1, 5).unwrap())
            .unwrap();
        let other = reserves.try_acquire(&2, 5).unwrap();
        let back = account.add_lease(other).unwrap_err();
        reserves.release(back);
        reserves.release(account.take_spare().unwrap());
        assert_eq!(reserves.in_use_global(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Charge(usize),
        ChargeBetween(usize, usize),
        Split(prop::sample::Index, usize),
        Merge(prop::sample::Index, prop::sample::Index),
        Extend(prop::sample::Index, usize),
        Discharge(prop::sample::Index),
        ReleaseElsewhere(prop::sample::Index),
        Surplus,
        Idle,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..120usize).prop_map(Op::Charge),
            2 => (0..120usize, 0..200usize).prop_map(|(a, b)| Op::ChargeBetween(a, b)),
            1 => (any::<prop::sample::Index>(), 0..130usize).prop_map(|(i, b)| Op::Split(i, b)),
            1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>())
                .prop_map(|(i, j)| Op::Merge(i, j)),
            2 => (any::<prop::sample::Index>(), 0..60usize).prop_map(|(i, b)| Op::Extend(i, b)),
            2 => any::<prop::sample::Index>().prop_map(Op::Discharge),
            1 => any::<prop::sample::Index>().prop_map(Op::ReleaseElsewhere),
            1 => Just(Op::Surplus),
            1 => Just(Op::Idle),
        ]
    }

    proptest! {
        /// Drives an account against real reserves the way a link does (acquire what a
        /// failed charge asks for, then charge again) and checks after every step that
        /// the link part stays within the capacity, the reserves within their limits,
        /// and that the reserves' in-use bytes are exactly the account's reserve part
        /// plus its spare lease (plus what was released elsewhere: nothing).
        #[test]
        fn books_balance(ops in prop::collection::vec(op(), 1..200), chunk in 1..64usize) {
            let limits = limits();
            let mut reserves = Reserves::new(limits);
            let mut account = Account::<u8>::new(limits.link_capacity, chunk);
            let mut charges: Vec<Charge<u8>> = Vec::new();
            for op in ops {
                match op {
                    Op::Charge(bytes) => match account.try_charge(bytes) {
                        Ok(c) => charges.push(c),
                        Err(need) => {
                            prop_assert!(need.at_least > 0 && need.up_to >= need.at_least);
                            let available = reserves.available(&1);
                            if available >= need.at_least {
                                let grant = reserves
                                    .try_acquire(&1, need.up_to.min(available))
                                    .unwrap();
                                account.add_lease(grant).unwrap();
                                let charge = account.try_charge(bytes);
                                prop_assert!(charge.is_ok(), "a granted need is enough");
                                charges.push(charge.unwrap());
                            } else {
                                let used = account.used();
                                prop_assert!(reserves.try_acquire(&1, need.at_least).is_err());
                                prop_assert_eq!(account.used(), used);
                            }
                        }
                    },
                    Op::ChargeBetween(at_least, up_to) => {
                        let used = account.used();
                        let link_used = account.used() - account.reserve_charged();
                        let room = limits.link_capacity - link_used + account.spare();
                        match account.try_charge_between(at_least, up_to) {
                            Ok(c) => {
                                prop_assert!(c.bytes() >= at_least);
                                prop_assert!(c.bytes() <= up_to.max(at_least));
                                charges.push(c);
                            }
                            Err(need) => {
                                prop_assert_eq!(account.used(), used);
                                prop_assert!(need.at_least > 0 && need.up_to >= need.at_least);
                                prop_assert!(at_least > room);
                            }
                        }
                    }
                    Op::Split(i, bytes) if !charges.is_empty() => {
                        let at = i.index(charges.len());
                        let held = charges[at].bytes();
                        match charges[at].split_off(bytes) {
                            Some(part) => {
                                prop_assert!(bytes <= held);
                                prop_assert_eq!(part.bytes(), bytes);
                                prop_assert_eq!(part.bytes() + charges[at].bytes(), held);
                                charges.push(part);
                            }
                            None => {
                                prop_assert!(bytes > held);
                                prop_assert_eq!(charges[at].bytes(), held);
                            }
                        }
                    }
                    Op::Merge(i, j) if charges.len() >= 2 => {
                        let (i, j) = (i.index(charges.len()), j.index(charges.len()));
                        if i != j {
                            let from = charges.swap_remove(j);
                            let into = if i == charges.len() { j } else { i };
                            let total = charges[into].bytes() + from.bytes();
                            prop_assert!(charges[into].merge(from).is_ok(), "same account");
                            prop_assert_eq!(charges[into].bytes(), total);
                        }
                    }
                    Op::Extend(i, bytes) if !charges.is_empty() => {
                        let i = i.index(charges.len());
                        let size = charges[i].bytes();
                        if let Err(need) = account.try_extend(&mut charges[i], bytes) {
                            prop_assert!(need.at_least > 0 && need.up_to >= need.at_least);
                            prop_assert_eq!(charges[i].bytes(), size, "a failed extend changes nothing");
                            let available = reserves.available(&1);
                            if available >= need.at_least {
                                let grant = reserves
                                    .try_acquire(&1, need.up_to.min(available))
                                    .unwrap();
                                account.add_lease(grant).unwrap();
                                let extended = account.try_extend(&mut charges[i], bytes);
                                prop_assert!(extended.is_ok(), "a granted need is enough");
                            }
                        }
                        if charges[i].bytes() != size {
                            prop_assert_eq!(charges[i].bytes(), size + bytes);
                        }
                    }
                    Op::Discharge(i) if !charges.is_empty() => {
                        let c = charges.swap_remove(i.index(charges.len()));
                        account.discharge(c);
                    }
                    Op::ReleaseElsewhere(i) if !charges.is_empty() => {
                        let Charge { link, reserve } = charges.swap_remove(i.index(charges.len()));
                        let bytes = reserve.as_ref().map_or(0, Grant::bytes);
                        account.give_back(link, bytes);
                        if let Some(g) = reserve {
                            reserves.release(g);
                        }
                    }
                    Op::Surplus => {
                        if let Some(g) = account.surplus() {
                            reserves.release(g);
                        }
                        // At most a chunk and the largest charge's reserve part.
                        prop_assert!(account.spare() <= chunk + 200);
                    }
                    Op::Idle => {
                        let charged = account.reserve_charged();
                        let spare = account.spare();
                        match account.idle_spare() {
                            Some(g) => {
                                prop_assert_eq!((charged, g.bytes()), (0, spare));
                                reserves.release(g);
                            }
                            None => prop_assert!(charged > 0 || spare == 0),
                        }
                    }
                    _ => {}
                }
                let charged: usize = charges.iter().map(Charge::bytes).sum();
                prop_assert_eq!(account.used(), charged);
                let link: usize = charges.iter().map(|c| c.link).sum();
                prop_assert!(link <= limits.link_capacity);
                prop_assert_eq!(
                    reserves.in_use(&1),
                    account.reserve_charged() + account.spare()
                );
                prop_assert!(reserves.in_use(&1) <= limits.endpoint_reserve);
            }
            for c in charges.drain(..) {
                account.discharge(c);
            }
            if let Some(g) = account.idle_spare() {
                reserves.release(g);
            }
            prop_assert_eq!(account.used(), 0);
            prop_assert_eq!(reserves.in_use_global(), 0);
        }
    }
}
