//! Job reads beyond get and list: the outbox, the unfinished jobs, the statistics.

use std::collections::BTreeMap;

use crate::checks::{parse_state, sql_limit};
use crate::error::StoreError;
use crate::job::Event;
use crate::records::{LatencySummary, TaskDbJobCounts};
use crate::sql::db::{Db, Stmt};
use crate::sql::dialect::Dialect;

/// The condition of a job that is not finished, as the `jobs_unfinished` partial index
/// spells it (the planner uses the index only for this very condition).
pub(crate) const UNFINISHED: &str = "state IN ('submitted', 'announced', 'awarded', 'running')";

pub(crate) async fn events_after<D: Dialect>(
    conn: &mut D::Connection,
    after: i64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let rows = Stmt::<D>::new(
        "SELECT id, job_id, kind, payload, at_ms FROM events WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(sql_limit(limit))
    .all(conn)
    .await?;
    rows.iter().map(event_from_row::<D>).collect()
}

fn event_from_row<D: Db>(row: &D::Row) -> Result<Event, StoreError> {
    Ok(Event {
        id: D::int(row, "id")?,
        job_id: D::text(row, "job_id")?,
        kind: D::text(row, "kind")?,
        payload: D::json(row, "payload")?,
        at_ms: D::int(row, "at_ms")?,
    })
}

pub(crate) async fn last_event_id<D: Dialect>(conn: &mut D::Connection) -> Result<i64, StoreError> {
    let row = Stmt::<D>::new("SELECT COALESCE(MAX(id), 0) AS id FROM events").one(conn).await?;
    Ok(D::int(&row, "id")?)
}

pub(crate) async fn counts_by_taskdb<D: Dialect>(
    conn: &mut D::Connection,
) -> Result<Vec<TaskDbJobCounts>, StoreError> {
    // The jobs_taskdb_state index covers this: no table row is read.
    let rows = Stmt::<D>::new(
        "SELECT taskdb, state, COUNT(*) AS n FROM jobs GROUP BY taskdb, state ORDER BY taskdb, state",
    )
    .all(conn)
    .await?;
    let mut counts: Vec<TaskDbJobCounts> = Vec::new();
    for row in &rows {
        let taskdb = D::text(row, "taskdb")?;
        let state = parse_state(&D::text(row, "state")?)?;
        let n = u64::try_from(D::int(row, "n")?).unwrap_or(0);
        match counts.last_mut() {
            Some(last) if last.taskdb == taskdb => {
                last.counts.insert(state, n);
            }
            _ => counts.push(TaskDbJobCounts { taskdb, counts: BTreeMap::from([(state, n)]) }),
        }
    }
    Ok(counts)
}

pub(crate) async fn completed_latency<D: Dialect>(
    conn: &mut D::Connection,
    taskdb: &str,
) -> Result<Option<LatencySummary>, StoreError> {
    // The expression is spelled as in the jobs_completed_latency index, so both use it.
    let row = Stmt::<D>::new(
        "SELECT COUNT(*) AS n, MIN(updated_ms - created_ms) AS lo, MAX(updated_ms - created_ms) AS hi, \
         CAST(SUM(updated_ms - created_ms) AS BIGINT) AS total \
         FROM jobs WHERE taskdb = $1 AND state = 'completed'",
    )
    .bind(taskdb)
    .one(conn)
    .await?;
    let count = D::int(&row, "n")?;
    let (Some(min_ms), Some(max_ms), Some(sum_ms)) =
        (D::opt_int(&row, "lo")?, D::opt_int(&row, "hi")?, D::opt_int(&row, "total")?)
    else {
        return Ok(None);
    };
    Ok(Some(LatencySummary {
        count: u64::try_from(count).unwrap_or(0),
        min_ms,
        p50_ms: percentile::<D>(conn, taskdb, count, 50).await?,
        p90_ms: percentile::<D>(conn, taskdb, count, 90).await?,
        p99_ms: percentile::<D>(conn, taskdb, count, 99).await?,
        max_ms,
        sum_ms,
    }))
}

/// The `percent`th percentile of the `count` completed jobs' latencies.
async fn percentile<D: Dialect>(
    conn: &mut D::Connection,
    taskdb: &str,
    count: i64,
    percent: i64,
) -> Result<i64, StoreError> {
    let row = Stmt::<D>::new(
        "SELECT updated_ms - created_ms AS latency FROM jobs WHERE taskdb = $1 AND state = 'completed' \
         ORDER BY updated_ms - created_ms LIMIT 1 OFFSET $2",
    )
    .bind(taskdb)
    .bind(nearest_rank(count, percent) - 1)
    .one(conn)
    .await?;
    Ok(D::int(&row, "latency")?)
}

/// The 1-based rank of the `percent`th percentile of `n` values, nearest-rank method:
/// `ceil(percent / 100 * n)`, at least 1.
fn nearest_rank(n: i64, percent: i64) -> i64 {
    ((percent * n + 99) / 100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobState;

    #[test]
    fn nearest_ranks() {
        assert_eq!(nearest_rank(1, 50), 1);
        assert_eq!(nearest_rank(1, 99), 1);
        assert_eq!(nearest_rank(4, 50), 2);
        assert_eq!(nearest_rank(5, 50), 3);
        assert_eq!(nearest_rank(100, 99), 99);
        assert_eq!(nearest_rank(101, 99), 100);
        assert_eq!(nearest_rank(1000, 90), 900);
    }

    #[test]
    fn unfinished_names_exactly_the_non_terminal_states() {
        for state in JobState::ALL {
            let quoted = format!("'{state}'");
            assert_eq!(UNFINISHED.contains(&quoted), !state.is_terminal(), "{state}");
        }
    }
}
