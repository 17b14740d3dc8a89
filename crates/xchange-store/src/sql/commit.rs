//! The group-commit writer: one task per store that takes every hot write queued since its
//! last commit (up to [`MAX_BATCH`]) and commits them in one transaction (`batch.rs`).
//!
//! A caller's future resolves when its batch is committed, with its own answer. While one
//! batch is being flushed the next one queues up, so under load a flush is shared by as
//! many writes as arrived during the previous one; alone, a write waits for no one. A
//! caller that stops waiting does not take its write back: a queued write is committed.

use sqlx::pool::Pool;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::StoreError;
use crate::sql::batch;
use crate::sql::dialect::Dialect;
use crate::sql::plan::{Write, Written};

/// The most writes in one transaction: enough to amortize a flush over the submissions
/// that arrive during one, small enough that a batch's statements and the time the write
/// lock is held stay short.
pub(crate) const MAX_BATCH: usize = 512;

/// How many writes may wait; a caller past that waits for room (back-pressure).
const QUEUE: usize = 4 * MAX_BATCH;

enum Msg {
    Write(Write, oneshot::Sender<Result<Written, StoreError>>),
    /// Stop taking writes, commit those queued, then end.
    Close,
}

/// The handle of a store's writer task. Cloning shares the task.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Msg>,
    /// Set when the task has answered everything and ended.
    done: watch::Receiver<bool>,
}

impl GroupCommit {
    /// Starts the writer task on the current tokio runtime, writing through `pool`.
    pub(crate) fn start<D: Dialect>(pool: Pool<D>) -> Self {
        let (queue, inbox) = mpsc::channel(QUEUE);
        let (finished, done) = watch::channel(false);
        tokio::spawn(run(pool, inbox, finished));
        Self { queue, done }
    }

    /// Queues a write and waits for its batch's commit.
    pub(crate) async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.queue.send(Msg::Write(write, answer)).await.map_err(|_| StoreError::closed())?;
        // No answer: the task ended without committing (its runtime shut down).
        answered.await.unwrap_or_else(|_| Err(StoreError::closed()))
    }

    /// Commits what is queued, refuses what comes after, and waits until all is answered.
    pub(crate) async fn close(&self) {
        // Fails only if the task has already ended, which is what we wait for anyway.
        let _ = self.queue.send(Msg::Close).await;
        let mut done = self.done.clone();
        let _ = done.wait_for(|done| *done).await;
    }
}

impl Msg {
    fn into_write(
        self,
        inbox: &mut mpsc::Receiver<Self>,
    ) -> Option<(Write, oneshot::Sender<Result<Written, StoreError>>)> {
        match self {
            Self::Write(write, answer) => Some((write, answer)),
            Self::Close => {
                // Senders fail from now on; what is already queued is still received.
                inbox.close();
                None
            }
        }
    }
}

async fn run<D: Dialect>(pool: Pool<D>, mut inbox: mpsc::Receiver<Msg>, finished: watch::Sender<bool>) {
    let mut msgs = Vec::with_capacity(MAX_BATCH);
    while inbox.recv_many(&mut msgs, MAX_BATCH).await > 0 {
        let (writes, answers): (Vec<_>, Vec<_>) =
            msgs.drain(..).filter_map(|msg| msg.into_write(&mut inbox)).unzip();
        if writes.is_empty() {
            continue;
        }
        for (answer, result) in answers.into_iter().zip(batch::commit(&pool, &writes).await) {
            // The caller may have stopped waiting; its write is committed all the same.
            let _ = answer.send(result);
        }
    }
    let _ = finished.send(true);
}
