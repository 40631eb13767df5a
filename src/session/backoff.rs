//! The reconnect schedule: [`Backoff`] (its type docs state the invariants).

use std::time::Duration;

/// The shape of a backoff schedule.
///
/// ```
/// use std::time::Duration;
/// use internode::session::BackoffConfig;
/// let config = BackoffConfig::default();
/// assert_eq!(config.ceiling(0), Duration::from_millis(100));
/// assert_eq!(config.ceiling(3), Duration::from_millis(800));
/// assert_eq!(config.ceiling(u32::MAX), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// The ceiling of the first delay.
    pub initial: Duration,
    /// The largest ceiling: no delay is longer.
    pub max: Duration,
    /// How much the ceiling grows after each failure. `0` is taken as `1` (a constant
    /// ceiling of `initial`).
    pub multiplier: u32,
}

impl Default for BackoffConfig {
    /// 100 ms, doubling, capped at 1 s (Cassandra's reconnect schedule).
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2,
        }
    }
}

impl BackoffConfig {
    /// A schedule whose ceiling starts at `initial` and grows by `multiplier` after
    /// each failure, up to `max` (usable in a `const`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use internode::session::BackoffConfig;
    /// let quick = BackoffConfig::default().initial(Duration::from_millis(10)).max(Duration::from_millis(50));
    /// assert_eq!(quick, BackoffConfig::new(Duration::from_millis(10), Duration::from_millis(50), 2));
    /// ```
    pub const fn new(initial: Duration, max: Duration, multiplier: u32) -> Self {
        BackoffConfig {
            initial,
            max,
            multiplier,
        }
    }

    /// This schedule with a first ceiling of `initial`.
    pub const fn initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// This schedule with no delay longer than `max`.
    pub const fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// This schedule with the ceiling growing by `multiplier` after each failure.
    pub const fn multiplier(mut self, multiplier: u32) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The ceiling of the delay after `failures` consecutive failures:
    /// `min(max, initial * multiplier^failures)`, saturating at `max`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let multiplier = self.multiplier.max(1);
        multiplier
            .checked_pow(failures)
            .and_then(|factor| self.initial.checked_mul(factor))
            .map_or(self.max, |ceiling| ceiling.min(self.max))
    }
}

/// A reconnect schedule: call [`next_delay`](Self::next_delay) after each failure and
/// [`reset`](Self::reset) after a success.
///
/// After the `n`-th consecutive failure (counting from 0) the ceiling is
/// `min(max, initial * multiplier^n)`, and the delay is drawn uniformly from
/// `[ceiling / 2, ceiling]`:
///
/// ```text
/// failures so far   0      1      2      3      4      5 ...   (defaults)
/// ceiling           100ms  200ms  400ms  800ms  1s     1s
/// delay in          50-100 100-200 200-400 400-800 500ms-1s 500ms-1s
/// ```
///
/// Invariants:
/// - Every delay lies in `[ceiling / 2, ceiling]`, so it never exceeds
///   [`BackoffConfig::max`] and never collapses to zero ("equal jitter": half the
///   ceiling is fixed, half is random). Plain full jitter (`[0, ceiling]`) lets a
///   link hammer a dead peer when a few draws come out near zero; equal jitter still
///   spreads the links of many nodes apart.
/// - The ceiling is computed with checked arithmetic: any attempt count, however
///   large, gives `max`, never an overflow or a panic.
/// - The random source is a seeded splitmix64 generator: the same seed gives the same
///   delays, which makes the schedule testable; different seeds give different ones.
///
/// ```
/// use std::time::Duration;
/// use internode::session::{Backoff, BackoffConfig};
/// let mut backoff = Backoff::new(BackoffConfig::default(), 7);
/// let first = backoff.next_delay();
/// assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
/// let second = backoff.next_delay();
/// assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
/// backoff.reset();
/// assert_eq!(backoff.attempts(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempts: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// A schedule of the given shape whose jitter is drawn from a generator seeded
    /// with `seed`. Give each link its own seed (e.g. from its peer and kind) so that
    /// links do not retry in lockstep.
    pub fn new(config: BackoffConfig, seed: u64) -> Self {
        Backoff {
            config,
            attempts: 0,
            rng: SplitMix64(seed),
        }
    }

    /// The delay before the next attempt, drawn from `[ceiling / 2, ceiling]` with the
    /// ceiling of the current attempt count; then counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.config.ceiling(self.attempts).as_nanos();
        let floor = ceiling - ceiling / 2; // ceil(ceiling / 2): never below half.
        let span = ceiling - floor;
        let random = (u128::from(self.rng.next()) << 64) | u128::from(self.rng.next());
        let nanos = floor + random % (span + 1);
        self.attempts = self.attempts.saturating_add(1);
        duration_from_nanos(nanos)
    }

    /// Starts the schedule over: call after a successful connection.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// How many delays were handed out since the last [`reset`](Self::reset): the
    /// number of consecutive failures. Saturates at `u32::MAX`.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The schedule's shape.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }
}

/// `nanos` as a [`Duration`]; `nanos` never exceeds the nanoseconds of a `Duration`
/// here, but anything larger saturates instead of panicking.
fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(nanos / NANOS_PER_SEC) {
        // The remainder is below 10^9, so it fits a u32.
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// The splitmix64 generator (Steele, Lea, Flood 2014): tiny, fast, and good enough to
/// spread retries; not for cryptography.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn draw(seed: u64, n: usize) -> Vec<Duration> {
        let mut backoff = Backoff::new(BackoffConfig::default(), seed);
        (0..n).map(|_| backoff.next_delay()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        assert_eq!(draw(42, 20), draw(42, 20));
    }

    #[test]
    fn different_seeds_give_different_delays() {
        let a = draw(1, 20);
        let b = draw(2, 20);
        assert_ne!(a, b);
        // Not just one lucky draw: most positions differ.
        assert!(a.iter().zip(&b).filter(|(x, y)| x != y).count() > 15);
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let config = BackoffConfig::default();
        let ceilings: Vec<_> = (0..7).map(|n| config.ceiling(n)).collect();
        let expected = [100, 200, 400, 800, 1000, 1000, 1000].map(ms);
        assert_eq!(ceilings, expected);
    }

    #[test]
    fn every_delay_lies_between_half_the_ceiling_and_the_ceiling() {
        let config = BackoffConfig::default();
        for seed in 0..200 {
            let mut backoff = Backoff::new(config, seed);
            for n in 0..12 {
                let ceiling = config.ceiling(n);
                let delay = backoff.next_delay();
                assert!(delay >= ceiling / 2, "seed {seed}, attempt {n}: {delay:?}");
                assert!(delay <= ceiling, "seed {seed}, attempt {n}: {delay:?}");
            }
        }
    }

    #[test]
    fn reset_starts_the_schedule_over() {
        let mut backoff = Backoff::new(BackoffConfig::default(), 9);
        for _ in 0..5 {
            backoff.next_delay();
        }
        assert_eq!(backoff.attempts(), 5);
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        let delay = backoff.next_delay();
        assert!(delay >= ms(50) && delay <= ms(100), "{delay:?}");
    }

    #[test]
    fn huge_attempt_counts_and_durations_do_not_overflow() {
        let config = BackoffConfig {
            initial: Duration::MAX,
            max: Duration::MAX,
            multiplier: u32::MAX,
        };
        assert_eq!(config.ceiling(u32::MAX), Duration::MAX);
        let mut backoff = Backoff::new(config, 3);
        for _ in 0..3 {
            assert!(backoff.next_delay() >= Duration::MAX / 2);
        }

        let mut backoff = Backoff::new(BackoffConfig::default(), 3);
        backoff.attempts = u32::MAX - 1;
        for _ in 0..3 {
            let delay = backoff.next_delay();
            assert!(delay >= ms(500) && delay <= ms(1000), "{delay:?}");
        }
        assert_eq!(backoff.attempts(), u32::MAX);
    }

    #[test]
    fn degenerate_configs_do_not_panic() {
        let zero = BackoffConfig {
            initial: Duration::ZERO,
            max: ms(10),
            multiplier: 0,
        };
        let mut backoff = Backoff::new(zero, 0);
        assert_eq!(backoff.next_delay(), Duration::ZERO);
        assert_eq!(zero.ceiling(u32::MAX), Duration::ZERO);

        let constant = BackoffConfig {
            initial: ms(30),
            max: ms(10),
            multiplier: 0,
        };
        assert_eq!(constant.ceiling(0), ms(10), "initial above max is capped");
        assert_eq!(constant.ceiling(1000), ms(10));
        // A one-nanosecond ceiling still never gives zero.
        let tiny = BackoffConfig {
            initial: Duration::from_nanos(1),
            max: Duration::from_nanos(1),
            multiplier: 2,
        };
        let mut backoff = Backoff::new(tiny, 5);
        assert_eq!(backoff.next_delay(), Duration::from_nanos(1));
    }

    #[test]
    fn the_mean_delay_is_three_quarters_of_the_ceiling() {
        let config = BackoffConfig {
            initial: ms(1000),
            max: ms(1000),
            multiplier: 2,
        };
        let mut backoff = Backoff::new(config, 0xDEC0DE);
        let n = 20_000u32;
        let total: Duration = (0..n).map(|_| backoff.next_delay()).sum();
        let mean = total / n;
        // The uniform distribution on [500, 1000] ms has mean 750 ms and standard
        // deviation 144 ms; the mean of 20 000 draws is within 5 ms of 750 ms with
        // overwhelming probability (and, with a fixed seed, always).
        assert!(mean > ms(745) && mean < ms(755), "{mean:?}");
    }
}
