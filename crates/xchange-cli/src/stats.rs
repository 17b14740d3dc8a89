//! Latency percentiles for the demo and the benchmarks.

use hdrhistogram::Histogram;

/// A latency recorder in microseconds (1 µs to 1 hour, 3 significant digits).
pub(crate) struct Latencies(Histogram<u64>);

impl Latencies {
    pub(crate) fn new() -> Self {
        Self(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"))
    }

    pub(crate) fn record(&mut self, micros: u64) {
        self.0.saturating_record(micros.max(1));
    }

    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.value_at_quantile(q) }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        let _ = self.0.add(&other.0);
    }

    pub(crate) fn len(&self) -> u64 {
        self.0.len()
    }
}
