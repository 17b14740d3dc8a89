//! Limits that keep one caller from flooding a node: requests per API key per second
//! (GCRA, with a burst), and a bound on the jobs a node manages at once. Both are answered
//! 429 `busy` (5005) with `Retry-After`, so that a client knows when to come back.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use xchange_protocol::Code;

use crate::error::ApiError;

/// The request limiter, keyed by API key id.
pub(crate) struct RequestLimits {
    per_key: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl RequestLimits {
    /// `per_second` requests per key on average, `burst` at once (0 counts as 1; the
    /// config refuses 0).
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let at_least_one = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(at_least_one(per_second)).allow_burst(at_least_one(burst));
        Self { per_key: RateLimiter::keyed(quota), clock: DefaultClock::default() }
    }

    /// Counts a request of `key_id`; refused with how long to wait when over its quota.
    pub(crate) fn check(&self, key_id: &str) -> Result<(), ApiError> {
        match self.per_key.check_key(&key_id.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(busy(
                    format!("this API key is over its request rate; retry in {} ms", wait.as_millis()),
                    wait,
                ))
            }
        }
    }

    /// Forgets the keys that are back to a full quota, so that the limiter's memory stays
    /// bounded by the keys active in the last moments.
    pub(crate) fn forget_idle(&self) {
        self.per_key.retain_recent();
    }
}

/// A 429 `busy` refusal that says when to retry.
pub(crate) fn busy(message: String, retry_after: Duration) -> ApiError {
    ApiError::new(Code::Busy, message).retry_after(retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_burst_waits_and_others_do_not() {
        let limits = RequestLimits::new(1, 3);
        for _ in 0..3 {
            assert!(limits.check("a").is_ok());
        }
        let refused = limits.check("a").unwrap_err();
        assert_eq!(refused.code, Code::Busy);
        assert!(refused.retry_after_secs().is_some_and(|s| (1..=2).contains(&s)), "{refused:?}");
        assert!(limits.check("b").is_ok(), "another key has its own quota");
    }
}
