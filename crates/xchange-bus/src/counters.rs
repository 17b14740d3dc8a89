//! What a bus counts, and the striped atomics an in-process bus counts with.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use xchange_protocol::{Code, Kind};

/// Number of message kinds, the length of [`BusCounters::delivered`].
pub const KINDS: usize = Kind::ALL.len();

/// A snapshot of what a bus did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusCounters {
    /// Copies delivered, per kind (indexed by [`Kind::index`]). A broadcast to N subscribers
    /// counts N, so per-task counts compare with the FIPA message formulas.
    pub delivered: [u64; KINDS],
    /// Messages (or copies) that reached no live subscriber.
    pub dropped: u64,
    /// Bytes produced by encoding messages at the edge.
    pub bytes_encoded: u64,
    /// Messages refused by the edge checks, per code.
    pub refused: BTreeMap<Code, u64>,
    /// Times the transport discarded messages because this process fell behind (a NATS
    /// slow consumer); the engines' timeouts recover what was lost.
    pub overflowed: u64,
    /// Times the connection to the server was lost (and reconnected).
    pub disconnects: u64,
}

impl BusCounters {
    /// Copies delivered of `kind`.
    pub fn delivered_of(&self, kind: Kind) -> u64 {
        self.delivered[kind.index()]
    }

    /// Copies delivered of every kind.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.iter().sum()
    }

    /// Messages refused with `code`.
    pub fn refused_with(&self, code: Code) -> u64 {
        self.refused.get(&code).copied().unwrap_or(0)
    }

    /// Messages refused with any code.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }
}

/// Stripes of hot counters. Two publisher threads bumping the same cache line would bounce
/// it between cores on every message (tens of ns each at ~1M msg/s); each thread instead
/// picks one stripe and the snapshot sums them.
const STRIPES: usize = 8;

#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    delivered: [AtomicU64; KINDS],
    dropped: AtomicU64,
    bytes: AtomicU64,
}

/// The live counters of an in-process bus.
pub(crate) struct Stats {
    stripes: [Stripe; STRIPES],
    // Refusals are rare: one unstriped cell per code.
    refused: Vec<AtomicU64>,
    overflowed: AtomicU64,
    disconnects: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            stripes: Default::default(),
            refused: Code::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            overflowed: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
        }
    }
}

fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    INDEX.with(|i| *i)
}

impl Stats {
    fn stripe(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }

    pub(crate) fn delivered(&self, kind: Kind, copies: u64) {
        self.stripe().delivered[kind.index()].fetch_add(copies, Relaxed);
    }

    pub(crate) fn dropped(&self, copies: u64) {
        self.stripe().dropped.fetch_add(copies, Relaxed);
    }

    pub(crate) fn encoded(&self, bytes: usize) {
        self.stripe().bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn refused(&self, code: Code) {
        // Code::ALL is in numeric order, so the position is found by binary search.
        let i = Code::ALL.binary_search(&code).expect("every code is in Code::ALL");
        self.refused[i].fetch_add(1, Relaxed);
    }

    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn overflowed(&self) {
        self.overflowed.fetch_add(1, Relaxed);
    }

    #[cfg_attr(not(any(feature = "nats", feature = "redis")), allow(dead_code))]
    pub(crate) fn disconnected(&self) {
        self.disconnects.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> BusCounters {
        let mut out = BusCounters {
            overflowed: self.overflowed.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            ..BusCounters::default()
        };
        for s in &self.stripes {
            for (total, cell) in out.delivered.iter_mut().zip(&s.delivered) {
                *total += cell.load(Relaxed);
            }
            out.dropped += s.dropped.load(Relaxed);
            out.bytes_encoded += s.bytes.load(Relaxed);
        }
        for (code, cell) in Code::ALL.iter().zip(&self.refused) {
            let n = cell.load(Relaxed);
            if n > 0 {
                out.refused.insert(*code, n);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_stripes_and_lists_only_seen_codes() {
        let stats = Stats::default();
        stats.delivered(Kind::Cfp, 3);
        std::thread::scope(|s| {
            s.spawn(|| stats.delivered(Kind::Cfp, 2));
            s.spawn(|| stats.dropped(1));
        });
        stats.refused(Code::Expired);
        stats.refused(Code::Expired);
        stats.encoded(10);
        let snap = stats.snapshot();
        assert_eq!(snap.delivered_of(Kind::Cfp), 5);
        assert_eq!(snap.delivered_total(), 5);
        assert_eq!(snap.dropped, 1);
        assert_eq!(snap.bytes_encoded, 10);
        assert_eq!(snap.refused_with(Code::Expired), 2);
        assert_eq!(snap.refused.len(), 1);
    }
}
