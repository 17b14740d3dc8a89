//! Waiting between retries after a failed request.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(5);

/// 100 ms, doubling up to 5 s, back to 100 ms after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { next: FIRST }
    }

    /// Sleeps for the current delay and doubles the next one.
    pub(crate) async fn wait(&mut self) {
        let delay = self.next;
        self.next = (delay * 2).min(MAX);
        tokio::time::sleep(delay).await;
    }

    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }
}
