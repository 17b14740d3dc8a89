//! The leases of partitions and the list of nodes (see `lease.rs` at the crate root). Each
//! is one statement on the writing connection, outside the group commit: a node renews a
//! handful of leases every few seconds, and a renewal must not wait behind a batch of job
//! writes longer than it takes that batch to commit.
//!
//! Every statement touches one lease row, so a statement never holds one row's lock while
//! it waits for another's: with the batches, which lock lease rows in partition order,
//! no cycle of waits can form.

use crate::checks::check_key;
use crate::error::StoreError;
use crate::job::Job;
use crate::lease::{ClusterNode, Fence, Lease};
use crate::sql::db::{Db, Stmt};
use crate::sql::dialect::Dialect;
use crate::sql::jobs::UNFINISHED;
use crate::sql::record::Record;

const LEASE_COLUMNS: &str = "partition_no, owner, epoch, expires_ms, acquired_ms";

fn lease_from_row<D: Db>(row: &D::Row) -> Result<Lease, StoreError> {
    Ok(Lease {
        partition: D::opt_int32(row, "partition_no")?.unwrap_or(-1),
        owner: D::opt_text(row, "owner")?,
        epoch: D::int(row, "epoch")?,
        expires_ms: D::int(row, "expires_ms")?,
        acquired_ms: D::int(row, "acquired_ms")?,
    })
}

/// Records that the node is alive; returns the database's clock.
pub(crate) async fn node_alive<D: Dialect>(
    conn: &mut D::Connection,
    node_id: &str,
    url: &str,
    starting: bool,
) -> Result<i64, StoreError> {
    check_key("node_id", node_id)?;
    let started = if starting { "excluded.started_ms" } else { "cluster_nodes.started_ms" };
    let sql = format!(
        "INSERT INTO cluster_nodes (node_id, url, started_ms, seen_ms) VALUES ($1, $2, {now}, {now}) \
         ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, seen_ms = excluded.seen_ms, \
         started_ms = {started} RETURNING seen_ms",
        now = D::NOW_MS
    );
    let row = Stmt::<D>::built(sql).bind(node_id).bind(url).one(conn).await?;
    Ok(D::int(&row, "seen_ms")?)
}

/// The database's clock, without writing anything.
pub(crate) async fn clock_ms<D: Dialect>(conn: &mut D::Connection) -> Result<i64, StoreError> {
    let row = Stmt::<D>::built(format!("SELECT {} AS now_ms", D::NOW_MS)).one(conn).await?;
    Ok(D::int(&row, "now_ms")?)
}

pub(crate) async fn cluster_nodes<D: Dialect>(
    conn: &mut D::Connection,
) -> Result<Vec<ClusterNode>, StoreError> {
    let rows = Stmt::<D>::new("SELECT node_id, url, started_ms, seen_ms FROM cluster_nodes ORDER BY node_id")
        .all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ClusterNode {
                node_id: D::text(row, "node_id")?,
                url: D::text(row, "url")?,
                started_ms: D::int(row, "started_ms")?,
                seen_ms: D::int(row, "seen_ms")?,
            })
        })
        .collect()
}

/// Creates the lease rows of partitions `0..count` that do not exist yet, free.
pub(crate) async fn ensure_partitions<D: Dialect>(
    conn: &mut D::Connection,
    count: u32,
) -> Result<(), StoreError> {
    if count == 0 || count > i32::MAX as u32 {
        return Err(StoreError::InvalidInput(format!("partition count {count} is not in 1..=2^31-1")));
    }
    for first in (0..count).step_by(256) {
        let last = (first + 256).min(count);
        let rows: Vec<String> = (first..last).map(|p| format!("({p}, NULL, 0, 0, 0)")).collect();
        let sql = format!(
            "INSERT INTO partition_leases ({LEASE_COLUMNS}) VALUES {} ON CONFLICT (partition_no) DO NOTHING",
            rows.join(", ")
        );
        Stmt::<D>::built(sql).run(conn).await?;
    }
    Ok(())
}

pub(crate) async fn partition_leases<D: Dialect>(conn: &mut D::Connection) -> Result<Vec<Lease>, StoreError> {
    let sql = format!("SELECT {LEASE_COLUMNS} FROM partition_leases ORDER BY partition_no");
    Stmt::<D>::built(sql).all(conn).await?.iter().map(lease_from_row::<D>).collect()
}

/// Takes the partition if it is free, expired, or held by this node's id (a previous
/// incarnation, which the new epoch fences off).
pub(crate) async fn acquire<D: Dialect>(
    conn: &mut D::Connection,
    partition: i32,
    node_id: &str,
    ttl_ms: i64,
) -> Result<Option<Lease>, StoreError> {
    check_key("node_id", node_id)?;
    let sql = format!(
        "UPDATE partition_leases SET owner = $2, epoch = epoch + 1, expires_ms = {now} + $3, \
         acquired_ms = {now} WHERE partition_no = $1 AND (owner IS NULL OR expires_ms <= {now} OR owner = $2) \
         RETURNING {LEASE_COLUMNS}",
        now = D::NOW_MS
    );
    let row = Stmt::<D>::built(sql).bind(partition).bind(node_id).bind(ttl_ms).optional(conn).await?;
    row.as_ref().map(lease_from_row::<D>).transpose()
}

/// Extends the lease if this node still holds it at the fence's epoch; returns the new
/// expiry, or `None` when the lease has moved on.
pub(crate) async fn renew<D: Dialect>(
    conn: &mut D::Connection,
    fence: Fence,
    node_id: &str,
    ttl_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let sql = format!(
        "UPDATE partition_leases SET expires_ms = {now} + $4 \
         WHERE partition_no = $1 AND epoch = $2 AND owner = $3 RETURNING expires_ms",
        now = D::NOW_MS
    );
    let row = Stmt::<D>::built(sql)
        .bind(fence.partition)
        .bind(fence.epoch)
        .bind(node_id)
        .bind(ttl_ms)
        .optional(conn)
        .await?;
    Ok(row.map(|row| D::int(&row, "expires_ms")).transpose()?)
}

/// Frees the partition if this node still holds it at the fence's epoch.
pub(crate) async fn release<D: Dialect>(
    conn: &mut D::Connection,
    fence: Fence,
    node_id: &str,
) -> Result<bool, StoreError> {
    let row = Stmt::<D>::new(
        "UPDATE partition_leases SET owner = NULL, expires_ms = 0 \
         WHERE partition_no = $1 AND epoch = $2 AND owner = $3 RETURNING epoch",
    )
    .bind(fence.partition)
    .bind(fence.epoch)
    .bind(node_id)
    .optional(conn)
    .await?;
    Ok(row.is_some())
}

pub(crate) async fn unfinished_jobs_in<D: Dialect>(
    conn: &mut D::Connection,
    partition: i32,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Job>, StoreError> {
    let sql = format!(
        "SELECT {} FROM jobs WHERE partition_no = $1 AND job_id > $2 AND {UNFINISHED} ORDER BY job_id LIMIT $3",
        Job::COLUMNS
    );
    let rows = Stmt::<D>::built(sql)
        .bind(partition)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .all(conn)
        .await?;
    rows.iter().map(Job::from_row::<D>).collect()
}
