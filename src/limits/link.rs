//! One link's own capacity: [`LinkBudget`].

/// The bytes one link (in one direction) may have in use without asking the
/// `ResourceLimits` actor for reserve, owned by the link actor.
///
/// Invariant: [`used`](Self::used) never exceeds [`capacity`](Self::capacity).
/// [`try_take`](Self::try_take) takes all or nothing; giving back more than is used is
/// a bug in the caller, caught in debug builds and saturating at zero in release
/// builds.
///
/// A message of `size` bytes is split between the link and the reserves:
/// [`needs_reserve`](Self::needs_reserve) says how many bytes must come from the
/// reserves (none while the message fits the link); the link takes the rest. When the
/// message is done with, each part goes back where it came from.
///
/// ```
/// use internode::limits::LinkBudget;
///
/// let mut link = LinkBudget::new(100);
/// assert_eq!(link.needs_reserve(60), 0);
/// assert!(link.try_take(60));
/// // 40 bytes of capacity left: a 100-byte message needs 60 bytes of reserve.
/// let size = 100;
/// let from_reserve = link.needs_reserve(size);
/// assert_eq!(from_reserve, 60);
/// // ... acquire `from_reserve` bytes from the reserves (or a lease), then:
/// assert!(link.try_take(size - from_reserve));
/// assert_eq!(link.used(), 100);
/// link.give_back(size - from_reserve);
/// link.give_back(60);
/// assert_eq!(link.used(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkBudget {
    capacity: usize,
    used: usize,
}

impl LinkBudget {
    /// A link allowed `capacity` bytes of its own, none in use.
    pub fn new(capacity: usize) -> Self {
        LinkBudget { capacity, used: 0 }
    }

    /// Takes `bytes` of the link's capacity if that much is left (`true`); otherwise
    /// takes nothing (`false`). Zero bytes are always taken.
    pub fn try_take(&mut self, bytes: usize) -> bool {
        if bytes > self.available() {
            return false;
        }
        self.used += bytes;
        true
    }

    /// Gives back `bytes` taken earlier.
    ///
    /// # Panics
    ///
    /// In debug builds, if `bytes` exceeds what is in use (a bug in the caller); in
    /// release builds the count saturates at zero.
    pub fn give_back(&mut self, bytes: usize) {
        debug_assert!(
            bytes <= self.used,
            "giving back {bytes} bytes to a link with {} in use",
            self.used
        );
        self.used = self.used.saturating_sub(bytes);
    }

    /// How many of `bytes` must come from the reserves because the link's remaining
    /// capacity does not cover them: `bytes - available()`, or 0 if they fit. The rest,
    /// `bytes - needs_reserve(bytes)`, is what [`try_take`](Self::try_take) can then
    /// take from the link.
    pub fn needs_reserve(&self, bytes: usize) -> usize {
        bytes.saturating_sub(self.available())
    }

    /// Bytes of the link's capacity in use.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Bytes of the link's capacity left.
    pub fn available(&self) -> usize {
        self.capacity - self.used
    }

    /// The link's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn takes_up_to_the_capacity_exactly() {
        let mut link = LinkBudget::new(10);
        assert!(link.try_take(0));
        assert!(link.try_take(10));
        assert!(!link.try_take(1), "one byte over");
        assert!(link.try_take(0), "zero bytes fit a full link");
        assert_eq!(
            (link.used(), link.available(), link.capacity()),
            (10, 0, 10)
        );
        link.give_back(10);
        assert_eq!(link.used(), 0);
    }

    #[test]
    fn a_failed_take_takes_nothing() {
        let mut link = LinkBudget::new(10);
        assert!(link.try_take(4));
        assert!(!link.try_take(7));
        assert!(!link.try_take(usize::MAX));
        assert_eq!(link.used(), 4);
    }

    #[test]
    fn needs_reserve_is_the_part_beyond_the_remaining_capacity() {
        let mut link = LinkBudget::new(10);
        assert_eq!(link.needs_reserve(10), 0);
        assert_eq!(link.needs_reserve(11), 1);
        assert!(link.try_take(7));
        assert_eq!(link.needs_reserve(3), 0);
        assert_eq!(link.needs_reserve(5), 2);
        assert_eq!(link.needs_reserve(usize::MAX), usize::MAX - 3);
        assert_eq!(LinkBudget::new(0).needs_reserve(8), 8);
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "giving back 5 bytes"))]
    fn giving_back_more_than_is_used_saturates() {
        let mut link = LinkBudget::new(10);
        assert!(link.try_take(3));
        link.give_back(5); // panics in debug builds
        assert_eq!(link.used(), 0);
    }

    proptest! {
        #[test]
        fn used_stays_within_the_capacity_and_matches_what_was_taken(
            capacity in 0usize..200,
            sizes in prop::collection::vec(0usize..80, 0..40),
        ) {
            let mut link = LinkBudget::new(capacity);
            let mut taken = Vec::new();
            for (i, size) in sizes.into_iter().enumerate() {
                // Alternate: every third step gives back the oldest take.
                if i % 3 == 2 && !taken.is_empty() {
                    link.give_back(taken.remove(0));
                } else {
                    let fits = link.needs_reserve(size) == 0;
                    prop_assert_eq!(link.try_take(size), fits);
                    if fits {
                        taken.push(size);
                    } else {
                        let part = size - link.needs_reserve(size);
                        prop_assert!(link.try_take(part), "the part not from the reserves fits");
                        prop_assert_eq!(link.available(), 0);
                        taken.push(part);
                    }
                }
                prop_assert!(link.used() <= capacity);
                prop_assert_eq!(link.used(), taken.iter().sum::<usize>());
            }
            for size in taken {
                link.give_back(size);
            }
            prop_assert_eq!(link.used(), 0);
        }
    }
}
