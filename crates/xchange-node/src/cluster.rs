//! The partitions this node manages, leased in the store (see `xchange_store::Lease`).
//!
//! Every node runs this, the embedded default included (one node takes every partition):
//! one code path, and a node that restarts under its own key takes its partitions back at
//! once. Each tick (a third of the lease), the node says it is alive, renews its leases,
//! and evens out the partitions among the live nodes: it takes free or lapsed partitions
//! up to its share, and releases what it holds beyond its share when another node joined.
//! Taking a partition means carrying on its unfinished jobs from the store; losing or
//! releasing one means dropping its jobs here first (their contracts are cancelled, the
//! new owner runs them again: at-least-once execution). Every job write carries the
//! partition's fence, so a node that lost a lease without noticing (paused, cut off)
//! writes nothing: its attempts are refused by the store and counted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use utoipa::ToSchema;
use xchange_protocol::Code;
use xchange_store::{Fence, Job, Lease, Store, StoreError};

use crate::error::ApiError;
use crate::federation::{on_behalf, owner_answer, unreachable_owner};
use crate::metrics::family;
use crate::node::Node;

/// How many jobs a takeover reads per page.
const PAGE: u32 = 500;

/// How long a submission waits for this node to hold a partition (just started, or
/// every partition is held elsewhere) before it is refused.
const NO_PARTITION_WAIT: Duration = Duration::from_secs(3);

/// This node's part in the cluster.
pub(crate) struct Cluster {
    /// The node's id: its key's agent id, stable across restarts of one data folder.
    pub(crate) node_id: String,
    url: String,
    lease_ms: i64,
    partitions: u32,
    held: Mutex<BTreeMap<i32, Fence>>,
    /// Ticks early: a write was fenced, or the node is waiting for a partition.
    wake: Notify,
    pub(crate) stats: ClusterStats,
}

/// What the lease keeper counts (exposed in /metrics).
#[derive(Debug, Default)]
pub(crate) struct ClusterStats {
    /// Partitions taken from a node that had held them (its lease lapsed or was released).
    pub(crate) takeovers: AtomicU64,
    /// Partitions taken, takeovers included.
    pub(crate) acquired: AtomicU64,
    /// Partitions given up to even out the cluster.
    pub(crate) released: AtomicU64,
    /// Partitions found taken by another node at renewal.
    pub(crate) lost: AtomicU64,
    /// Job writes the store refused because their partition's lease had moved on.
    pub(crate) fenced_writes: AtomicU64,
    /// Renewals, acquisitions or heartbeats that failed (the store was unreachable).
    pub(crate) lease_errors: AtomicU64,
}

impl Cluster {
    pub(crate) fn new(node_id: String, url: String, lease_ms: u64, partitions: u32) -> Self {
        Self {
            node_id,
            url,
            lease_ms: i64::try_from(lease_ms).unwrap_or(i64::MAX),
            partitions,
            held: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            stats: ClusterStats::default(),
        }
    }

    /// The partition a new job goes to: one this node holds, spread by the job id.
    pub(crate) fn pick(&self, job_id: &str) -> Option<Fence> {
        let held = self.held.lock();
        if held.is_empty() {
            return None;
        }
        let digest = Sha256::digest(job_id.as_bytes());
        let n = u64::from_le_bytes(digest[..8].try_into().unwrap_or_default());
        held.values().nth((n % held.len() as u64) as usize).copied()
    }

    /// The partitions held now.
    pub(crate) fn held(&self) -> Vec<Fence> {
        self.held.lock().values().copied().collect()
    }

    /// Appends the partition gauges and the lease counters to the metrics text.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        let held = self.held();
        family(out, "xchange_partitions_owned", "gauge", "Partitions this node holds a lease on.");
        let _ = writeln!(out, "xchange_partitions_owned {}", held.len());
        family(out, "xchange_partition_epoch", "gauge", "The epoch of each partition this node holds.");
        for fence in held {
            let _ =
                writeln!(out, "xchange_partition_epoch{{partition=\"{}\"}} {}", fence.partition, fence.epoch);
        }
        let s = &self.stats;
        for (name, help, n) in [
            (
                "xchange_partition_takeovers_total",
                "Partitions taken from a node that stopped renewing them.",
                &s.takeovers,
            ),
            ("xchange_partitions_acquired_total", "Partitions taken, takeovers included.", &s.acquired),
            (
                "xchange_partitions_released_total",
                "Partitions handed back to even out the nodes.",
                &s.released,
            ),
            ("xchange_partitions_lost_total", "Partitions found taken by another node at renewal.", &s.lost),
            (
                "xchange_fenced_writes_total",
                "Job writes refused because their lease had moved on.",
                &s.fenced_writes,
            ),
            ("xchange_lease_errors_total", "Lease renewals or heartbeats that failed.", &s.lease_errors),
        ] {
            family(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", n.load(Relaxed));
        }
    }

    /// Counts a refused write and has the keeper look at the leases now.
    pub(crate) fn note_fenced(&self) {
        self.stats.fenced_writes.fetch_add(1, Relaxed);
        self.wake.notify_one();
    }
}

impl<S: Store + Clone> Node<S> {
    /// Joins the cluster: creates the partitions, takes this node's share and carries on
    /// their unfinished jobs, then keeps the leases in the background.
    pub(crate) async fn join_cluster(self: &Arc<Self>) -> Result<(), ApiError> {
        self.store.ensure_partitions(self.cluster.partitions).await?;
        self.tick(true).await?;
        let node = Arc::downgrade(self);
        let every = Duration::from_millis((self.cluster.lease_ms / 3).max(50) as u64);
        let mut closing = self.closing.subscribe();
        tokio::spawn(async move {
            loop {
                let woken = {
                    let Some(node) = node.upgrade() else { return };
                    let cluster_wake = async move { node.cluster.wake.notified().await };
                    tokio::select! {
                        () = tokio::time::sleep(every) => false,
                        () = cluster_wake => true,
                        _ = closing.wait_for(|c| *c) => return,
                    }
                };
                let Some(node) = node.upgrade() else { return };
                if woken {
                    // A burst of fenced writes wakes the keeper once, not once each.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if let Err(e) = node.tick(false).await {
                    node.cluster.stats.lease_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "cannot keep the partition leases; the fences keep writes safe");
                }
            }
        });
        Ok(())
    }

    /// One round of the lease keeper; see the module docs.
    async fn tick(self: &Arc<Self>, starting: bool) -> Result<(), StoreError> {
        let c = &self.cluster;
        let now = self.store.node_alive(&c.node_id, &c.url, starting).await?;
        for fence in c.held() {
            match self.store.renew_partition(fence, &c.node_id, c.lease_ms).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    c.stats.lost.fetch_add(1, Relaxed);
                    tracing::warn!(
                        partition = fence.partition,
                        epoch = fence.epoch,
                        "lost a partition's lease"
                    );
                    self.drop_partition(fence.partition);
                }
                // Unknown: keep managing. If the lease lapsed meanwhile, the fence refuses
                // the writes; if not, nothing was lost.
                Err(e) => {
                    c.stats.lease_errors.fetch_add(1, Relaxed);
                    tracing::warn!(partition = fence.partition, error = %e, "cannot renew a partition's lease");
                }
            }
        }
        let leases = self.store.partition_leases().await?;
        let live = self.store.cluster_nodes().await?.iter().filter(|n| n.seen_ms > now - c.lease_ms).count();
        let share = leases.len().div_ceil(live.max(1));
        let held = c.held.lock().len();
        if held < share {
            self.take_free(&leases, now, share - held).await?;
        } else if held > share {
            self.release_excess(held - share).await?;
        }
        Ok(())
    }

    /// Takes up to `wanted` partitions that nobody holds or whose holder stopped renewing
    /// (or that this node's previous incarnation held).
    async fn take_free(
        self: &Arc<Self>,
        leases: &[Lease],
        now: i64,
        wanted: usize,
    ) -> Result<(), StoreError> {
        let c = &self.cluster;
        let held: Vec<i32> = c.held.lock().keys().copied().collect();
        let candidates = leases.iter().filter(|l| {
            !held.contains(&l.partition) && (l.is_free(now) || l.owner.as_deref() == Some(&c.node_id))
        });
        let mut taken = 0;
        for lease in candidates {
            if taken == wanted {
                break;
            }
            let Some(new) = self.store.acquire_partition(lease.partition, &c.node_id, c.lease_ms).await?
            else {
                continue; // another node was quicker
            };
            taken += 1;
            c.stats.acquired.fetch_add(1, Relaxed);
            if lease.owner.as_ref().is_some_and(|owner| *owner != c.node_id) {
                c.stats.takeovers.fetch_add(1, Relaxed);
            }
            tracing::info!(partition = new.partition, epoch = new.epoch, previous = ?lease.owner, "took a partition");
            c.held.lock().insert(new.partition, new.fence());
            self.carry_on(new.fence()).await?;
        }
        Ok(())
    }

    /// Hands the partitions beyond this node's share back, those with the fewest jobs
    /// running here first, so that a node that joined gets its share.
    async fn release_excess(self: &Arc<Self>, excess: usize) -> Result<(), StoreError> {
        let c = &self.cluster;
        let mut by_load: Vec<(usize, Fence)> = {
            let running = self.running.lock();
            c.held()
                .into_iter()
                .map(|f| (running.values().filter(|r| r.fence.partition == f.partition).count(), f))
                .collect()
        };
        by_load.sort_unstable();
        for (_, fence) in by_load.into_iter().take(excess) {
            // Its jobs stop here before another node can take it.
            self.drop_partition(fence.partition);
            if self.store.release_partition(fence, &c.node_id).await? {
                c.stats.released.fetch_add(1, Relaxed);
                tracing::info!(partition = fence.partition, "released a partition to even out the nodes");
            }
        }
        Ok(())
    }

    /// Hands every partition back (a graceful stop), so that other nodes need not wait
    /// for the leases to lapse.
    pub(crate) async fn release_partitions(&self) {
        for fence in self.cluster.held() {
            self.drop_partition(fence.partition);
            match self.store.release_partition(fence, &self.cluster.node_id).await {
                Ok(true) => {
                    self.cluster.stats.released.fetch_add(1, Relaxed);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(partition = fence.partition, error = %e, "cannot release a partition")
                }
            }
        }
    }

    /// Hands the unfinished jobs of a partition just taken to the manager.
    async fn carry_on(self: &Arc<Self>, fence: Fence) -> Result<(), StoreError> {
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_unfinished_jobs_in(fence.partition, after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = Some(last.job_id.clone());
            for job in &page {
                if !self.running.lock().contains_key(&job.job_id) {
                    self.metrics.jobs_recovered.fetch_add(1, Relaxed);
                    self.dispatch(job, fence);
                }
            }
        }
    }

    /// Stops managing a partition's jobs here: their drivers stop (writing nothing more)
    /// and their contracts are cancelled, for the partition's next owner to run them.
    fn drop_partition(&self, partition: i32) {
        self.cluster.held.lock().remove(&partition);
        let dropped: Vec<_> = self.running.lock().extract_if(|_, r| r.fence.partition == partition).collect();
        for (_, job) in dropped {
            self.jobs_by_task.lock().remove(&job.task);
            if let Some(abort) = &job.abort {
                abort.abort();
            }
            self.manager.cancel(job.task, "the job's partition moved to another node".to_owned());
        }
    }

    /// A partition for a new job, waiting a little if this node holds none yet.
    pub(crate) async fn partition_for(&self, job_id: &str) -> Result<Fence, ApiError> {
        let deadline = tokio::time::Instant::now() + NO_PARTITION_WAIT;
        loop {
            if let Some(fence) = self.cluster.pick(job_id) {
                return Ok(fence);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::new(
                    Code::Unavailable,
                    "this node holds no partition of the jobs yet (every partition is held by another \
                     node, or it has just started); submit to another node or retry",
                ));
            }
            self.cluster.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks the node that holds a job's partition to cancel it (only a job's manager may
    /// end it); answers the job as the shared store has it then.
    pub(crate) async fn cancel_at_owner(
        &self,
        job: &Job,
        reason: &str,
        credential: Option<&str>,
    ) -> Result<Job, ApiError> {
        let unavailable = |why: String| ApiError::new(Code::Unavailable, why).at("job_id");
        let lease = self.store.partition_leases().await?.into_iter().find(|l| l.partition == job.partition);
        let owner = lease.and_then(|l| l.owner).filter(|owner| *owner != self.cluster.node_id);
        let Some(owner) = owner else {
            return Err(unavailable(format!(
                "partition {} of job {:?} is between owners; retry in a few seconds",
                job.partition, job.job_id
            )));
        };
        let nodes = self.store.cluster_nodes().await?;
        let Some(node) = nodes.iter().find(|n| n.node_id == owner) else {
            return Err(unavailable(format!("the owner {owner} of job {:?} is unknown", job.job_id)));
        };
        let url = format!("{}/v1/jobs/{}/cancel", node.url, job.job_id);
        let request = on_behalf(self.http.post(url), credential);
        let answer = request.json(&serde_json::json!({"reason": reason})).send().await;
        owner_answer(&node.url, answer.map_err(|e| unreachable_owner(&node.url, e))?).await?;
        Ok(self.store.get_job(&job.job_id).await?)
    }

    /// Events committed to the store that this node's relay has not published yet.
    async fn relay_lag(&self) -> Option<i64> {
        let cursor = self.relay_cursor()?;
        let last = self.store.last_event_id().await.ok()?;
        Some((last - cursor).max(0))
    }

    /// The nodes, the partitions and their leases, as the store has them now. Reading it
    /// writes nothing: a node is alive when its lease keeper says so, not when asked.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, ApiError> {
        let now = self.store.clock_ms().await?;
        let leases = self.store.partition_leases().await?;
        let nodes = self.store.cluster_nodes().await?;
        let lease_ms = self.cluster.lease_ms;
        let nodes = nodes
            .into_iter()
            .map(|n| {
                let held = |l: &&Lease| l.owner.as_deref() == Some(&n.node_id) && l.expires_ms > now;
                NodeStatus {
                    alive: n.seen_ms > now - lease_ms,
                    seen_ms_ago: now - n.seen_ms,
                    partitions: leases.iter().filter(held).map(|l| l.partition).collect(),
                    node_id: n.node_id,
                    url: n.url,
                    started_ms: n.started_ms,
                }
            })
            .collect();
        let partitions = leases
            .into_iter()
            .map(|l| PartitionStatus {
                partition: l.partition,
                expires_in_ms: (l.expires_ms - now).max(0),
                live: l.owner.is_some() && l.expires_ms > now,
                owner: l.owner,
                epoch: l.epoch,
            })
            .collect();
        let relay_lag = self.relay_lag().await;
        let running_jobs = self.running.lock().len();
        Ok(ClusterStatus {
            node_id: self.cluster.node_id.clone(),
            lease_ms,
            db_clock_ms: now,
            running_jobs,
            relay_lag,
            nodes,
            partitions,
        })
    }
}

/// `GET /v1/cluster`: what `xchange cluster status` prints.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node_id: String,
    /// How long a lease lasts unless renewed, in milliseconds (this node's setting).
    pub lease_ms: i64,
    /// The database's clock when the status was read (Unix ms): the leases' clock.
    pub db_clock_ms: i64,
    /// Jobs this node manages now.
    pub running_jobs: usize,
    /// Events this node committed that its relay has not yet published to the bus
    /// (absent without a relay).
    pub relay_lag: Option<i64>,
    /// Every node that ever joined, by id.
    pub nodes: Vec<NodeStatus>,
    /// Every partition's lease, by partition.
    pub partitions: Vec<PartitionStatus>,
}

/// A node as the cluster sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeStatus {
    /// Its id (its key's agent id).
    pub node_id: String,
    /// Where it is reached.
    pub url: String,
    /// Whether it said it was alive within one lease.
    pub alive: bool,
    /// How long ago it last said so, in milliseconds (its heartbeat lag).
    pub seen_ms_ago: i64,
    /// When this incarnation started (database clock, Unix ms).
    pub started_ms: i64,
    /// The partitions it holds an unexpired lease on.
    pub partitions: Vec<i32>,
}

/// A partition's lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: i32,
    /// Its holder (absent: released or never taken).
    pub owner: Option<String>,
    /// Grows at every acquisition; writes under an older one are refused.
    pub epoch: i64,
    /// Whether the lease is held and unexpired.
    pub live: bool,
    /// How long until it lapses unless renewed, in milliseconds (0: lapsed).
    pub expires_in_ms: i64,
}
