//! Committing one group-commit batch: read the jobs it names, decide every write in
//! memory ([`Plan`]), write what was accepted in a few multi-row statements, commit once.
//!
//! Failures:
//! - A refused write (replay, conflict, stale version, ...) is decided before anything is
//!   written, so it writes nothing and changes no other write's answer.
//! - If the database refuses one of the batch's statements before the commit (a
//!   constraint: in PostgreSQL, another node inserted the same new job id since the
//!   batch read it), the batch is rolled back and its writes are retried one per
//!   transaction, so that the refusal is answered to the write it concerns and the others
//!   are decided again, in order.
//! - If anything else fails (connection, I/O, the commit itself), every write of the
//!   batch gets the error and nothing of it is written: no write is acknowledged unless
//!   its commit succeeded.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Connection;
use sqlx::pool::Pool;

use crate::error::StoreError;
use crate::job::Job;
use crate::sql::bulk::{MAX_ROWS, run_rows};
use crate::sql::db::Stmt;
use crate::sql::dialect::Dialect;
use crate::sql::plan::{EventRow, Plan, Write, Written};
use crate::sql::record::Record;

/// The answers of a batch, in order.
pub(crate) type Answers = Vec<Result<Written, StoreError>>;

/// Commits `writes` and answers each of them; see the module docs.
pub(crate) async fn commit<D: Dialect>(pool: &Pool<D>, writes: &[Write]) -> Answers {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(err) => return vec![Err(err.into()); writes.len()],
    };
    match attempt::<D>(&mut conn, writes).await {
        Ok(answers) => answers,
        Err(Failed::Refused(_)) if writes.len() > 1 => {
            let mut answers = Vec::with_capacity(writes.len());
            for write in writes {
                answers.extend(match attempt::<D>(&mut conn, std::slice::from_ref(write)).await {
                    Ok(answer) => answer,
                    Err(Failed::Refused(err) | Failed::Batch(err)) => vec![Err(err)],
                });
            }
            answers
        }
        Err(Failed::Refused(err) | Failed::Batch(err)) => vec![Err(err); writes.len()],
    }
}

/// Why a batch's transaction wrote nothing.
enum Failed {
    /// The database refused a statement before the commit: one write may be to blame.
    Refused(StoreError),
    /// Anything else, the commit included: the batch as a whole failed.
    Batch(StoreError),
}

impl<E: Into<StoreError>> From<E> for Failed {
    fn from(err: E) -> Self {
        Self::Batch(err.into())
    }
}

/// One transaction for the whole batch.
async fn attempt<D: Dialect>(conn: &mut D::Connection, writes: &[Write]) -> Result<Answers, Failed> {
    let mut tx = conn.begin_with(D::BEGIN_WRITE).await?;
    let jobs = load::<D>(&mut tx, writes).await?;
    let mut plan = Plan::new(jobs, load_epochs::<D>(&mut tx, writes).await?);
    let answers: Answers = writes.iter().map(|write| plan.decide(write)).collect();
    if plan.events().is_empty() {
        // Nothing accepted: nothing to write, and no flush to wait for.
        tx.rollback().await?;
        return Ok(answers);
    }
    write_plan::<D>(&mut tx, &plan)
        .await
        .map_err(|err| if err.is_refusal() { Failed::Refused(err) } else { Failed::Batch(err) })?;
    tx.commit().await?;
    Ok(answers)
}

async fn write_plan<D: Dialect>(conn: &mut D::Connection, plan: &Plan<'_>) -> Result<(), StoreError> {
    insert_jobs::<D>(conn, &plan.inserts()).await?;
    update_jobs::<D>(conn, &plan.updates()).await?;
    if let Some(lock) = D::OUTBOX_LOCK {
        Stmt::<D>::new(lock).run(conn).await?;
    }
    insert_events::<D>(conn, plan.events()).await
}

/// The stored jobs that `writes` name, locked until the commit where the dialect needs it,
/// in key order (so that two batches lock rows in the same order and cannot deadlock).
async fn load<D: Dialect>(conn: &mut D::Connection, writes: &[Write]) -> Result<Vec<Job>, StoreError> {
    let mut ids: Vec<&str> = writes.iter().map(Write::job_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut jobs = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_ROWS) {
        // Padded to a power of two with the last id again, for few distinct statements.
        let size = chunk.len().next_power_of_two();
        let params: Vec<String> = (1..=size).map(D::ordered_param).collect();
        let sql = format!(
            "SELECT {} FROM jobs WHERE job_id IN ({}) ORDER BY job_id{}",
            Job::COLUMNS,
            params.join(", "),
            D::FOR_UPDATE
        );
        let padding = std::iter::repeat_n(&chunk[chunk.len() - 1], size - chunk.len());
        let stmt = chunk.iter().chain(padding).fold(Stmt::<D>::built(sql), |stmt, id| stmt.bind(*id));
        for row in stmt.all(conn).await? {
            jobs.push(Job::from_row::<D>(&row)?);
        }
    }
    Ok(jobs)
}

/// The epochs of the partitions that the writes' fences name, locked against a takeover
/// until the commit (see `lease.rs`). After [`load`], always in this order, and in
/// partition order: a takeover locks one lease row only, so no cycle can form.
async fn load_epochs<D: Dialect>(
    conn: &mut D::Connection,
    writes: &[Write],
) -> Result<BTreeMap<i32, i64>, StoreError> {
    let partitions: BTreeSet<i32> = writes.iter().filter_map(Write::fence).map(|f| f.partition).collect();
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let params: Vec<String> = (1..=partitions.len()).map(D::ordered_param).collect();
    let sql = format!(
        "SELECT partition_no, epoch FROM partition_leases WHERE partition_no IN ({}) \
         ORDER BY partition_no{}",
        params.join(", "),
        D::FOR_SHARE
    );
    let stmt = partitions.iter().fold(Stmt::<D>::built(sql), |stmt, p| stmt.bind(*p));
    let mut epochs = BTreeMap::new();
    for row in stmt.all(conn).await? {
        epochs.insert(D::opt_int32(&row, "partition_no")?.unwrap_or(-1), D::int(&row, "epoch")?);
    }
    Ok(epochs)
}

async fn insert_jobs<D: Dialect>(conn: &mut D::Connection, jobs: &[&Job]) -> Result<(), StoreError> {
    let sql = (
        "INSERT INTO jobs (job_id, taskdb, state, document, body_hash, result, reason_code, created_ms, \
         updated_ms, version, partition_no) VALUES",
        "",
    );
    run_rows(conn, sql, 11, jobs, |stmt: Stmt<D>, job| {
        stmt.bind(&job.job_id)
            .bind(&job.taskdb)
            .bind(job.state.as_str())
            .bind(&job.document)
            .bind(&job.body_hash)
            .bind(job.result.as_ref())
            .bind(job.reason_code)
            .bind(job.created_ms)
            .bind(job.updated_ms)
            .bind(job.version)
            .bind(job.partition)
    })
    .await
}

async fn update_jobs<D: Dialect>(conn: &mut D::Connection, jobs: &[&Job]) -> Result<(), StoreError> {
    // Both databases name the columns of a VALUES list column1, column2, ...
    let sql = (
        "UPDATE jobs SET state = v.column2, result = v.column3, reason_code = v.column4, \
         updated_ms = v.column5, version = v.column6 FROM (VALUES",
        ") AS v WHERE jobs.job_id = v.column1",
    );
    run_rows(conn, sql, 6, jobs, |stmt: Stmt<D>, job| {
        stmt.bind(&job.job_id)
            .bind(job.state.as_str())
            .bind(job.result.as_ref())
            .bind(job.reason_code)
            .bind(job.updated_ms)
            .bind(job.version)
    })
    .await
}

async fn insert_events<D: Dialect>(
    conn: &mut D::Connection,
    events: &[EventRow<'_>],
) -> Result<(), StoreError> {
    // One statement's rows take their ids in row order, so ids follow the queue.
    let sql = ("INSERT INTO events (job_id, kind, payload, at_ms) VALUES", "");
    run_rows(conn, sql, 4, events, |stmt: Stmt<D>, event| {
        stmt.bind(event.job_id).bind(event.kind).bind(event.payload).bind(event.at_ms)
    })
    .await
}
