//! [`RttHistogram`]: the distribution of one peer's keepalive round-trip times.
//!
//! Two records of the same samples, each exact for what it answers:
//! - an [`hdrhistogram`] with two significant digits (every recorded value is known
//!   within 1%), for [`quantile`](RttHistogram::quantile), [`min`](RttHistogram::min),
//!   [`max`](RttHistogram::max) and [`mean`](RttHistogram::mean). It resizes to the
//!   largest sample recorded, from 1 µs up to [`RTT_MAX`]: measured, its counts (32
//!   bits each: a value's count stops at about four billion samples, far beyond a
//!   ping a second) take 1 KiB while every sample is below 256 µs (and when empty),
//!   2 KiB up to about 1 ms, 4 KiB up to 16 ms, 5 KiB up to 100 ms, 7 KiB up to 1 s
//!   and 10 KiB at most (a sample near `RTT_MAX`);
//! - counts per fixed bucket ([`RTT_BUCKETS`]) and the exact sum, for the Prometheus
//!   histogram (`le` buckets, `_sum`, `_count`): 128 bytes.
//!
//! Invariants: [`count`](RttHistogram::count) is the number of samples recorded (or
//! added), and equals the `+Inf` bucket; the cumulative bucket counts never decrease
//! from one bound to the next; a sample above `RTT_MAX` counts as `RTT_MAX`, and one
//! below a microsecond as 0 (both in the sum too); nothing is ever removed.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The largest round-trip time recorded as itself; longer ones count as this.
pub const RTT_MAX: Duration = Duration::from_secs(60);

/// The upper bounds of the fixed buckets ([`RttHistogram::buckets`], and the `le`
/// labels of the Prometheus histogram), from 100 µs to 5 s; above the last one, only
/// the `+Inf` bucket (the count).
pub const RTT_BUCKETS: [Duration; 15] = [
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2_500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2_500),
    Duration::from_secs(5),
];

/// The hdrhistogram's count per value: 32 bits halve its memory (one histogram per
/// peer); it saturates rather than wraps, and the total count is 64 bits.
type Count = u32;

/// Significant digits of the hdrhistogram: values within 1%.
const SIGNIFICANT_DIGITS: u8 = 2;

/// The keepalive round-trip times of one peer (see the module documentation):
/// count, exact sum, quantiles within 1%, and cumulative counts at fixed bounds.
///
/// ```
/// use std::time::Duration;
/// use internode::node::RttHistogram;
///
/// let mut rtt = RttHistogram::new();
/// for ms in [1, 2, 3, 4, 90] {
///     rtt.record(Duration::from_millis(ms));
/// }
/// assert_eq!(rtt.count(), 5);
/// assert_eq!(rtt.sum(), Duration::from_millis(100));
/// let median = rtt.quantile(0.5).unwrap();
/// assert!(median.abs_diff(Duration::from_millis(3)) <= Duration::from_micros(30));
/// // At or below 2.5 ms: two samples; at or below 5 ms: four.
/// let buckets: Vec<_> = rtt.buckets().collect();
/// assert_eq!(buckets[4], (Duration::from_micros(2_500), 2));
/// assert_eq!(buckets[5], (Duration::from_millis(5), 4));
/// ```
#[derive(Debug, Clone)]
pub struct RttHistogram {
    /// Microseconds, resizing to the largest sample.
    hdr: Histogram<Count>,
    /// Samples per fixed bucket: `buckets[i]` counts those above `RTT_BUCKETS[i - 1]`
    /// and at most `RTT_BUCKETS[i]` (not cumulative).
    buckets: [u64; RTT_BUCKETS.len()],
    /// The exact sum, in microseconds.
    sum_us: u64,
}

impl Default for RttHistogram {
    fn default() -> Self {
        RttHistogram::new()
    }
}

impl RttHistogram {
    /// An empty histogram (1 KiB).
    pub fn new() -> Self {
        // Auto-resizing from 1 µs with two significant digits: valid constants.
        let hdr = Histogram::new(SIGNIFICANT_DIGITS).expect("valid hdrhistogram constants");
        RttHistogram {
            hdr,
            buckets: [0; RTT_BUCKETS.len()],
            sum_us: 0,
        }
    }

    /// Records one round-trip time.
    pub fn record(&mut self, rtt: Duration) {
        let us = micros(rtt.min(RTT_MAX));
        // Within range (clamped), or the counts grow to it: cannot fail.
        let _ = self.hdr.record(us);
        if let Some(i) = RTT_BUCKETS.iter().position(|b| us <= micros(*b)) {
            self.buckets[i] += 1;
        }
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Adds every sample of `other` (the round-trip times of two nodes to one peer,
    /// or of two periods).
    pub fn add(&mut self, other: &RttHistogram) {
        // Both resize to what they hold: adding cannot run out of range.
        let _ = self.hdr.add(&other.hdr);
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// The number of samples.
    pub fn count(&self) -> u64 {
        self.hdr.len()
    }

    /// Whether no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The sum of the samples (exact, to the microsecond).
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us)
    }

    /// The mean of the samples; `None` when empty.
    pub fn mean(&self) -> Option<Duration> {
        (!self.is_empty()).then(|| Duration::from_micros(self.sum_us / self.count()))
    }

    /// The smallest sample (within 1%); `None` when empty.
    pub fn min(&self) -> Option<Duration> {
        (!self.is_empty()).then(|| Duration::from_micros(self.hdr.min()))
    }

    /// The largest sample (within 1%); `None` when empty.
    pub fn max(&self) -> Option<Duration> {
        (!self.is_empty()).then(|| Duration::from_micros(self.hdr.max()))
    }

    /// The sample at quantile `q` (0.5: the median, 0.99: the 99th percentile;
    /// clamped to 0..=1), within 1%; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        (!self.is_empty()).then(|| Duration::from_micros(self.hdr.value_at_quantile(q)))
    }

    /// Each bound of [`RTT_BUCKETS`] with the number of samples at or below it
    /// (cumulative, exact); the samples above the last bound are those missing from
    /// [`count`](Self::count).
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        RTT_BUCKETS
            .iter()
            .zip(&self.buckets)
            .scan(0, |total, (bound, n)| {
                *total += n;
                Some((*bound, *total))
            })
    }

    /// Bytes of memory this histogram holds (its counts and itself).
    #[cfg(test)]
    fn memory(&self) -> usize {
        std::mem::size_of::<Self>() + self.hdr.distinct_values() * std::mem::size_of::<Count>()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn an_empty_histogram_answers_none_and_holds_no_counts() {
        let rtt = RttHistogram::new();
        assert_eq!((rtt.count(), rtt.sum()), (0, Duration::ZERO));
        assert_eq!((rtt.min(), rtt.max(), rtt.mean()), (None, None, None));
        assert_eq!(rtt.quantile(0.5), None);
        assert!(rtt.buckets().all(|(_, n)| n == 0));
        assert_eq!(rtt.memory(), std::mem::size_of::<RttHistogram>() + 1024);
    }

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let mut rtt = RttHistogram::new();
        for sample in [us(100), us(101), us(1_000), Duration::from_secs(6)] {
            rtt.record(sample);
        }
        let buckets: Vec<_> = rtt.buckets().collect();
        assert_eq!(buckets.len(), RTT_BUCKETS.len());
        assert_eq!(buckets[0], (us(100), 1), "a sample on a bound counts in it");
        assert_eq!(buckets[1], (us(250), 2));
        assert_eq!(buckets[3], (us(1_000), 3));
        assert_eq!(
            buckets[14],
            (Duration::from_secs(5), 3),
            "6 s is only in +Inf"
        );
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(rtt.count(), 4);
        assert_eq!(rtt.sum(), us(100 + 101 + 1_000 + 6_000_000));
    }

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut rtt = RttHistogram::new();
        for n in 1..=1000 {
            rtt.record(us(n * 37));
        }
        for (q, exact) in [(0.0, 37), (0.5, 500 * 37), (0.99, 990 * 37), (1.0, 37_000)] {
            let got = rtt.quantile(q).unwrap().as_micros() as f64;
            let exact = exact as f64;
            assert!(
                (got - exact).abs() <= exact / 100.0,
                "q {q}: {got} vs {exact}"
            );
        }
        assert_eq!(rtt.quantile(f64::NAN), rtt.quantile(0.0));
        assert_eq!(rtt.quantile(7.0), rtt.max());
        assert_eq!(rtt.mean(), Some(us(500 * 37 + 18)));
    }

    #[test]
    fn huge_samples_count_as_the_maximum() {
        let mut rtt = RttHistogram::new();
        rtt.record(Duration::from_secs(3600));
        rtt.record(Duration::MAX);
        assert_eq!(rtt.sum(), RTT_MAX * 2);
        let max = rtt.max().unwrap();
        assert!(max >= RTT_MAX && max <= RTT_MAX + RTT_MAX / 100, "{max:?}");
    }

    #[test]
    fn adding_merges_every_record() {
        let (mut a, mut b) = (RttHistogram::new(), RttHistogram::new());
        a.record(us(200));
        b.record(Duration::from_millis(30));
        b.record(us(90));
        a.add(&b);
        assert_eq!((a.count(), a.sum()), (3, us(30_290)));
        assert_eq!(a.buckets().next(), Some((us(100), 1)));
        assert_eq!(a.buckets().nth(7), Some((Duration::from_millis(25), 2)));
        assert!(a.max().unwrap() >= Duration::from_millis(30));
    }

    /// The memory stated in the module documentation (issue 14 wants an idle peer
    /// to cost at most 40 KiB in all).
    #[test]
    fn memory_grows_with_the_largest_sample_up_to_10_kib() {
        let mut rtt = RttHistogram::new();
        let base = std::mem::size_of::<RttHistogram>();
        let mut steps = Vec::new();
        for sample in [us(200), us(1_000), us(16_000), us(100_000), us(1_000_000)] {
            rtt.record(sample);
            steps.push((rtt.memory() - base) / 1024);
        }
        assert_eq!(steps, [1, 2, 4, 5, 7]);
        rtt.record(RTT_MAX);
        assert_eq!((rtt.memory() - base) / 1024, 10);
        assert!(base <= 256, "{base}");
    }
}
