//! Messages per sender: a GCRA limit (the governor crate) per agent id, shared by every
//! session of a gateway or every subscription of a network bus, so that one agent cannot
//! flood a node, and reconnecting does not reset its allowance. A message over the limit is
//! refused with 5005 busy and how long to wait.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use xchange_protocol::{AgentId, Code, Refusal};

/// How many messages one agent may send: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages per second on average (at least 1).
    pub per_second: u32,
    /// Messages at once (at least 1).
    pub burst: u32,
}

/// A refusal for a sender over its rate, with the time after which it may send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverRate {
    /// 5005 busy, with a sentence.
    pub refusal: Refusal,
    /// How long until the next message would be admitted.
    pub retry_after: Duration,
}

/// The limiter; see the module docs.
pub struct SenderRates {
    limit: RateLimit,
    limiter: DefaultKeyedRateLimiter<AgentId>,
    clock: DefaultClock,
    admitted: AtomicU32,
}

/// Every this many admissions, senders back at a full allowance are forgotten, so that
/// the memory is bounded by the senders active in the last moments.
const FORGET_EVERY: u32 = 1 << 14;

impl SenderRates {
    /// A limiter for `limit` (zeros count as 1).
    pub fn new(limit: RateLimit) -> Self {
        let at_least_one = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(at_least_one(limit.per_second)).allow_burst(at_least_one(limit.burst));
        Self {
            limit,
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            admitted: AtomicU32::new(0),
        }
    }

    /// Counts one message of `from`; refused when `from` is over its rate.
    pub fn admit(&self, from: AgentId) -> Result<(), OverRate> {
        if self.admitted.fetch_add(1, Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&from).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(self.clock.now());
            let reason = format!(
                "agent {from} sends more than {} messages per second (burst {}); retry in {} ms",
                self.limit.per_second,
                self.limit.burst,
                retry_after.as_millis().max(1)
            );
            OverRate { refusal: Refusal::new(Code::Busy, reason), retry_after }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_over_its_burst_is_refused_and_others_are_not() {
        let rates = SenderRates::new(RateLimit { per_second: 1, burst: 2 });
        let (a, b) = (AgentId::from_index(1, 1), AgentId::from_index(1, 2));
        assert!(rates.admit(a).is_ok() && rates.admit(a).is_ok());
        let over = rates.admit(a).unwrap_err();
        assert_eq!(over.refusal.code, Code::Busy);
        assert!(over.retry_after > Duration::ZERO && over.retry_after <= Duration::from_secs(1), "{over:?}");
        assert!(over.refusal.reason.contains("retry in"), "{}", over.refusal.reason);
        assert!(rates.admit(b).is_ok(), "another sender has its own allowance");
    }
}
