//! [`FaultyStore`] (feature `testsuite`): a store whose commits can be slowed down or made
//! to fail, so that the service's tests can prove what it does while a commit is pending
//! (no `201` before the job is on disk) and when one fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::StoreError;

/// Wraps a store; every method that writes first waits for the configured delay, then
/// either fails without calling the inner store or hands the call on. Reads are handed on
/// at once. Cloning shares the switches.
///
/// The delay comes *before* the inner write, so during it the write is not in the store
/// yet: a caller that answers before its write's future resolves is caught answering
/// about a job that a read does not find. An injected failure writes nothing, like a
/// failed commit, and answers [`StoreError::Database`] with an I/O error (code
/// `Unavailable`).
#[derive(Debug, Clone)]
pub struct FaultyStore<S> {
    inner: S,
    faults: Arc<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
    delay_ms: AtomicU64,
    fail: AtomicBool,
    writes: AtomicU64,
    failed: AtomicU64,
}

impl<S> FaultyStore<S> {
    /// A wrapper that injects nothing until told to.
    pub fn new(inner: S) -> Self {
        Self { inner, faults: Arc::default() }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Every write waits this long before it is committed (zero: no delay).
    pub fn set_commit_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.faults.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// While on, every write fails (after the delay) and writes nothing.
    pub fn fail_commits(&self, on: bool) {
        self.faults.fail.store(on, Ordering::SeqCst);
    }

    /// How many writes were attempted through the wrapper, failed ones included.
    pub fn writes(&self) -> u64 {
        self.faults.writes.load(Ordering::SeqCst)
    }

    /// How many writes were made to fail.
    pub fn failed_writes(&self) -> u64 {
        self.faults.failed.load(Ordering::SeqCst)
    }

    /// What every write goes through before the inner store.
    async fn before_commit(&self) -> Result<(), StoreError> {
        self.faults.writes.fetch_add(1, Ordering::SeqCst);
        let delay = self.faults.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.faults.fail.load(Ordering::SeqCst) {
            self.faults.failed.fetch_add(1, Ordering::SeqCst);
            return Err(sqlx::Error::Io(std::io::Error::other("injected fault: the commit failed")).into());
        }
        Ok(())
    }
}

/// Reads go straight through; writes pass [`FaultyStore::before_commit`] first.
macro_rules! via_faults {
    (read, $self:ident, $s:ident => $call:expr) => {{
        let $s = &$self.inner;
        $call.await
    }};
    (write, $self:ident, $s:ident => $call:expr) => {{
        $self.before_commit().await?;
        let $s = &$self.inner;
        $call.await
    }};
}

impl_store_by!(impl[S: crate::Store] FaultyStore<S> => via_faults);

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use serde_json::json;
    use xchange_protocol::Code;

    use super::*;
    use crate::{NewJob, SqliteStore, Store};

    fn job(id: &str) -> NewJob {
        NewJob {
            job_id: id.to_owned(),
            taskdb: "db".to_owned(),
            document: json!({"n": 1}),
            body_hash: "a".repeat(64),
            now_ms: 1,
            fence: None,
        }
    }

    async fn store() -> (FaultyStore<SqliteStore>, crate::testing::TempDir) {
        let (store, dir) = crate::testing::sqlite_store().await;
        (FaultyStore::new(store), dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delayed_write_is_not_in_the_store_until_its_future_resolves() {
        let (store, _dir) = store().await;
        store.set_commit_delay(Duration::from_millis(300));
        let writer = tokio::spawn({
            let store = store.clone();
            async move { store.submit_job(job("slow")).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Mid-delay: the submission has not answered and the job is not stored.
        assert!(!writer.is_finished());
        let err = store.get_job("slow").await.expect_err("not yet");
        assert_eq!(err.code(), Code::NotFound);
        assert!(writer.await.expect("task").expect("submit").is_created());
        assert_eq!(store.get_job("slow").await.expect("stored").job_id, "slow");
        // Reads are not delayed, writes are counted.
        assert_eq!(store.writes(), 1);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_commits_write_nothing_until_switched_off() {
        let (store, _dir) = store().await;
        store.fail_commits(true);
        let err = store.submit_job(job("a")).await.expect_err("injected");
        assert_eq!(err.code(), Code::Unavailable);
        let err = store.put_taskdb("db", json!({}), None, 1).await.expect_err("injected");
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
        assert!(store.list_jobs(None, None, 10).await.expect("list").is_empty());
        assert!(store.list_taskdbs(None, 10).await.expect("list").is_empty());
        assert_eq!((store.writes(), store.failed_writes()), (2, 2));

        store.fail_commits(false);
        assert!(store.submit_job(job("a")).await.expect("submit").is_created());
        assert_eq!(store.inner().get_job("a").await.expect("stored").version, 1);
        assert_eq!((store.writes(), store.failed_writes()), (3, 2));
        store.close().await;
    }
}
