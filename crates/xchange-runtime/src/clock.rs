//! Where the runtime reads the time it passes to engines.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use xchange_core::Micros;

/// A source of unix time in microseconds.
pub trait Clock: Send + Sync + 'static {
    /// The current unix time in microseconds.
    fn now(&self) -> Micros;
}

/// The wall clock read once at start, advanced by the monotonic clock: it never goes back
/// when the system time is adjusted, and reading it is one `Instant::now`.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    unix_at_start: Micros,
    start: Instant,
}

impl SystemClock {
    /// A clock anchored at the current system time.
    pub fn new() -> Self {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as Micros);
        Self { unix_at_start: unix, start: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Micros {
        self.unix_at_start + self.start.elapsed().as_micros() as Micros
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_near_the_wall_clock_and_monotonic() {
        let clock = SystemClock::new();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as Micros;
        let a = clock.now();
        let b = clock.now();
        assert!(a.abs_diff(wall) < 1_000_000);
        assert!(b >= a);
    }
}
