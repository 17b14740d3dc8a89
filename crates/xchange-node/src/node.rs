//! The node: the store, the runtime with the node's managing agent, and what ties jobs to
//! tasks. Handlers call it; it never sees HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use xchange_core::{Announce, EngineConfig};
use xchange_mesh::{DirectoryWatch, Mesh, RelayHandle, SharedKv, SharedRegistry};
use xchange_protocol::{Code, TaskId, TaskState};
use xchange_runtime::{AgentHandle, Runtime, RuntimeBuilder, TaskFailure};
use xchange_store::{Fence, Job, NewJob, Store, StoreError};

use xchange_rules::Rules;
use xchange_ws::{Gateway, GatewayConfig, static_tokens};

use crate::agents::AgentDirectory;
use crate::auth::KeyCache;
use crate::cluster::Cluster;
use crate::config::NodeConfig;
use crate::drive::{JobLine, JobRef};
use crate::error::{ApiError, ApiResult};
use crate::job::{JobDocument, check_job_id};
use crate::limits::RequestLimits;
use crate::metrics::Metrics;
use crate::validate;
use crate::visibility::Hidden;

/// The kind of every event after a job's `job_posting`: its payload says which state the
/// job entered and why.
pub const JOB_NOTIFICATION: &str = "job_notification";

/// One exchange node.
pub struct Node<S> {
    pub(crate) config: NodeConfig,
    pub(crate) store: S,
    runtime: Runtime,
    pub(crate) manager: AgentHandle,
    /// Jobs running here, by job id, so that a cancel finds the task.
    pub(crate) running: Mutex<HashMap<String, RunningJob>>,
    /// The same, by task, for the events tap: where to send a job's progress.
    pub(crate) jobs_by_task: Mutex<HashMap<TaskId, JobLine>>,
    /// The newest event id this node committed: wakes event streams at once (streams also
    /// poll, for events other nodes commit).
    pub(crate) last_event: watch::Sender<i64>,
    /// Set when the node stops: event streams end, so that a graceful shutdown is not held
    /// open by them.
    pub(crate) closing: watch::Sender<bool>,
    /// Where remote agents connect (WebSocket sessions).
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) agents: Arc<AgentDirectory>,
    pub(crate) rules: Rules,
    pub(crate) metrics: Metrics,
    /// The bus between processes, with its directory and relay (in process: neither).
    pub(crate) mesh: Mesh,
    /// Attaches agents announced in the bus's directory, so the manager offers them work.
    directory_watch: Option<DirectoryWatch>,
    /// Relays the outbox to the bus's server; nudged when events are committed.
    relay: Mutex<Option<RelayHandle>>,
    /// The registry shared with the other nodes on a NATS bus (federation).
    pub(crate) shared_registry: Option<SharedRegistry>,
    /// Where jobs forwarded from here went (federation).
    pub(crate) forwarded: Option<SharedKv>,
    /// For talking to other nodes.
    pub(crate) http: reqwest::Client,
    /// The partitions this node leases (replication).
    pub(crate) cluster: Cluster,
    /// API keys checked recently.
    pub(crate) keys: KeyCache,
    /// Callers' views of the private databases, worked out recently.
    pub(crate) views: crate::visibility::ViewCache,
    /// Requests per key.
    pub(crate) limits: RequestLimits,
    /// Where this node wrote the admin key it created at start, if it did.
    admin_key_file: Mutex<Option<std::path::PathBuf>>,
}

/// A job this node manages.
#[derive(Debug)]
pub(crate) struct RunningJob {
    pub(crate) task: TaskId,
    /// What its writes carry.
    pub(crate) fence: Fence,
    /// Stops its driver when its partition moves to another node.
    pub(crate) abort: Option<tokio::task::AbortHandle>,
}

/// What a submission did.
#[derive(Debug)]
pub struct Accepted {
    /// The job as stored now.
    pub job: Job,
    /// Whether this call created it (else it is a replay of the same body).
    pub created: bool,
}

impl<S: Store + Clone> Node<S> {
    /// Starts the runtime and the node's manager, and carries every unfinished job of the
    /// store to completion.
    pub async fn start(config: NodeConfig, store: S) -> Result<Arc<Self>, ApiError> {
        let rules = crate::routing::load_rules(config.rules.as_deref()).map_err(ApiError::invalid)?;
        let node_id = crate::transport::node_id(&config)?;
        let url = config.advertise_url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
        let cluster = Cluster::new(node_id, url, config.partition_lease_ms, config.partitions);
        let limits = RequestLimits::new(config.rate_limit_per_key, config.rate_limit_burst);
        let mesh = crate::transport::join(&config).await?;
        let runtime = RuntimeBuilder::new(mesh.bus(), Arc::new(engine_config(&config))).shards(1).start();
        let manager = runtime
            .spawn_agent(crate::transport::manager_spec(&config, &mesh)?)
            .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
        let last = store.last_event_id().await?;
        let (agents, cards) = AgentDirectory::new();
        let agents = Arc::new(agents);
        // Agents announced on the bus are listed like those on the WebSocket.
        let directory_watch = mesh.watch(runtime.clone(), Some(crate::agents::observer(&agents)));
        let shared_registry = mesh
            .shared_registry()
            .await
            .map_err(|e| ApiError::new(Code::Unavailable, format!("opening the shared registry: {e}")))?;
        let forwarded = mesh.shared_kv(crate::federation::FORWARDED_BUCKET).await.map_err(|e| {
            ApiError::new(Code::Unavailable, format!("opening the forwarded-jobs bucket: {e}"))
        })?;
        let gateway = GatewayConfig {
            server_id: manager.id().to_string(),
            token_check: (!config.tokens.is_empty()).then(|| static_tokens(config.tokens.clone())),
            observer: Some(crate::agents::observer(&agents)),
            agent_rate: Some(config.agent_rate()),
            max_sessions: config.max_agent_connections,
            max_pools_per_agent: config.max_agent_pools,
            ..GatewayConfig::default()
        };
        let gateway = Arc::new(Gateway::new(runtime.clone(), gateway));
        let node = Arc::new(Self {
            config,
            store,
            runtime,
            manager,
            running: Mutex::new(HashMap::new()),
            jobs_by_task: Mutex::new(HashMap::new()),
            last_event: watch::Sender::new(last),
            closing: watch::Sender::new(false),
            gateway,
            agents,
            rules,
            metrics: Metrics::default(),
            mesh,
            directory_watch,
            relay: Mutex::new(None),
            shared_registry,
            forwarded,
            http: reqwest::Client::new(),
            cluster,
            keys: KeyCache::default(),
            views: crate::visibility::ViewCache::default(),
            limits,
            admin_key_file: Mutex::new(None),
        });
        if node.config.auth {
            *node.admin_key_file.lock() = node.ensure_admin_key().await?;
        }
        node.spawn_limit_sweeper();
        let relay = node
            .mesh
            .relay(node.store.clone())
            .map_err(|e| ApiError::new(Code::Unavailable, e.to_string()))?;
        *node.relay.lock() = relay;
        node.ensure_global_taskdb().await?;
        node.share_all_taskdbs().await?;
        node.clone().spawn_card_writer(cards);
        node.clone().spawn_progress_listener();
        node.join_cluster().await?;
        Ok(node)
    }

    /// The runtime, to host agents next to the node.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The admin API key file this node created at start (first start with authentication
    /// on and no admin key in the store), for the operator to find.
    pub fn created_admin_key_file(&self) -> Option<std::path::PathBuf> {
        self.admin_key_file.lock().clone()
    }

    /// The settings the node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Ends event streams and agent sessions (agents are told goodbye, 5003), so that the
    /// HTTP server can finish; called by [`crate::run`] when its shutdown signal fires.
    pub fn begin_shutdown(&self) {
        self.closing.send_replace(true);
        self.gateway.close();
    }

    /// Stops the runtime and hands the partitions back. Jobs still running stay unfinished
    /// in the store and are carried on by the partitions' next owners (this node at its
    /// next start, if it is alone).
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        self.runtime.shutdown().await;
        // The other nodes take the partitions at once instead of waiting for the leases.
        self.release_partitions().await;
        // Stopped before the store closes; what it had not relayed yet goes at the next
        // start (it resumes from the server's last message).
        self.relay.lock().take();
    }

    /// Validates, routes and stores a job; a new one is then handed to the contract net.
    /// Returns once the job is durable.
    /// A caller may not submit to the private databases `hidden` from it (403).
    pub async fn submit(self: &Arc<Self>, raw: Value, hidden: &Hidden) -> ApiResult<Accepted> {
        let result = self.submit_inner(raw, hidden).await;
        let counter = match &result {
            Ok(a) if a.created => &self.metrics.jobs_submitted,
            Ok(_) => &self.metrics.jobs_replayed,
            Err(_) => &self.metrics.jobs_refused,
        };
        counter.fetch_add(1, Relaxed);
        result
    }

    async fn submit_inner(self: &Arc<Self>, raw: Value, hidden: &Hidden) -> ApiResult<Accepted> {
        let now = now_ms();
        let mut doc: JobDocument = crate::body::from_value(raw.clone())?;
        doc.check(now)?;
        validate::job_input(&self.store, &doc, &self.config.filter_limits()).await?;
        let routed = self.route(&mut doc, &raw).await?;
        let running = self.running.lock().len();
        // At the bound, a job id already stored still gets its answer (a replay or a
        // conflict), which takes no new work.
        let known = match (running >= self.config.max_running_jobs, &doc.job_id) {
            (true, Some(id)) => self.store.get_job(id).await.is_ok(),
            _ => false,
        };
        if running >= self.config.max_running_jobs && !known {
            let message =
                format!("this node manages {running} jobs, its limit (max_running_jobs); retry later");
            return Err(crate::limits::busy(message, std::time::Duration::from_secs(1)));
        }
        if hidden.hides(&routed.taskdb) {
            let message =
                format!("task database {:?} is private and your organisation is not a member", routed.taskdb);
            return Err(ApiError::new(Code::Forbidden, message).at("task_db_id"));
        }
        if hidden.hides_job(&routed.taskdb, doc.visibility == crate::job::Visibility::Private) {
            let message = format!(
                "a private job runs on the members of its task database {:?}, and your organisation is not one",
                routed.taskdb
            );
            return Err(ApiError::new(Code::Forbidden, message).at("visibility"));
        }
        // A private job needs a member to run it; refused now rather than failed later.
        if routed.private {
            self.private_contractor(&routed.taskdb, &doc.capability).await?;
        }
        let taskdb = routed.taskdb;
        let body_hash = body_hash(&raw);
        let job_id = doc.job_id.get_or_insert_with(|| new_job_id(now, &body_hash)).clone();
        let document =
            serde_json::to_value(&doc).map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
        let mut new = NewJob { job_id, taskdb, document, body_hash, now_ms: now as i64, fence: None };
        // A partition this node holds; if its lease moved on meanwhile, another one.
        let mut attempts = 0;
        let (submitted, fence) = loop {
            let fence = self.partition_for(&new.job_id).await?;
            new.fence = Some(fence);
            match self.store.submit_job(new.clone()).await {
                Err(StoreError::Fenced { .. }) if attempts < 3 => {
                    attempts += 1;
                    self.cluster.note_fenced();
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                answer => break (answer?, fence),
            }
        };
        let created = submitted.is_created();
        let job = submitted.into_job();
        if created {
            self.note_events();
            self.dispatch(&job, fence);
        }
        Ok(Accepted { job, created })
    }

    /// The job.
    pub async fn job(&self, job_id: &str) -> ApiResult<Job> {
        check_job_id(job_id)?;
        Ok(self.store.get_job(job_id).await?)
    }

    /// Cancels a job that has not ended; a job that has is a conflict. A job another node
    /// manages is cancelled there, asked with the caller's `credential`.
    pub async fn cancel(&self, job_id: &str, reason: &str, credential: Option<&str>) -> ApiResult<Job> {
        let job = self.job(job_id).await?;
        if job.state.is_terminal() {
            return Err(ApiError::new(
                Code::Conflict,
                format!("job {job_id:?} already ended: {}", job.state),
            )
            .at("job_id"));
        }
        let task = self.running.lock().get(job_id).map(|r| r.task);
        let held = self.cluster.held().into_iter().find(|f| f.partition == job.partition);
        match (task, held) {
            // The engine ends the task (and its subcontracts) as cancelled; the job follows.
            (Some(task), _) => self.manager.cancel(task, reason.to_owned()),
            (None, Some(fence)) => {
                let failure = TaskFailure::new(TaskState::Cancelled, Code::Cancelled, reason);
                let private = crate::visibility::is_private_job(&job.document);
                self.finish(JobRef { id: job_id, taskdb: &job.taskdb, fence, private }, None, Err(failure))
                    .await;
            }
            // Another node manages it: only its manager may end it.
            (None, None) => return self.cancel_at_owner(&job, reason, credential).await,
        }
        Ok(job)
    }

    /// Forgets, every minute, the rate-limit state of keys that are idle again.
    fn spawn_limit_sweeper(self: &Arc<Self>) {
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                let Some(node) = node.upgrade() else { return };
                node.limits.forget_idle();
            }
        });
    }

    /// Stores the cards agents present when they connect.
    fn spawn_card_writer(self: Arc<Self>, mut cards: tokio::sync::mpsc::UnboundedReceiver<(String, Value)>) {
        tokio::spawn(async move {
            while let Some((id, card)) = cards.recv().await {
                if let Err(e) = self.store.put_agent_card(&id, card, now_ms() as i64).await {
                    tracing::warn!(agent = %id, error = %e, "cannot store an agent card");
                }
            }
        });
    }

    /// Wakes event streams after a commit.
    pub(crate) fn note_events(&self) {
        // The exact id is not known here; streams read from the store anyway.
        self.last_event.send_modify(|n| *n += 1);
        if let Some(relay) = &*self.relay.lock() {
            relay.nudge();
        }
    }

    /// The last event id the relay had the bus acknowledge, if there is a relay.
    pub(crate) fn relay_cursor(&self) -> Option<i64> {
        let relay = self.relay.lock();
        relay.as_ref().map(|r| r.stats().cursor.load(Relaxed))
    }

    /// The metrics, in Prometheus' text format.
    pub async fn metrics_text(&self) -> String {
        let mut text = self.metrics.render(&self.runtime.stats(), &self.runtime.bus().counters());
        crate::metrics::render_contracts(&mut text, &self.manager.counters().await);
        crate::transport::render_metrics(
            &mut text,
            self.directory_watch.as_ref().map(DirectoryWatch::stats),
            self.relay.lock().as_ref(),
        );
        self.cluster.render_metrics(&mut text);
        text
    }
}

/// The engine settings of a node.
fn engine_config(config: &NodeConfig) -> EngineConfig {
    let lease = config.lease_ms * 1000;
    EngineConfig {
        // Calls go to each eligible agent directly (up to 32): a pool topic reaches only the
        // agents subscribed to that pool, not those that serve every pool.
        announce: Announce::Sample(32),
        bid_window: config.bid_window_ms * 1000,
        lease,
        heartbeat_interval: lease / 4,
        report_resend: lease / 3,
        no_contractor_timeout: config.no_contractor_timeout_ms * 1000,
        // Long enough for a job that waits for its first agent.
        message_ttl: 60_000_000,
        terminal_retention: 120_000_000,
        ..EngineConfig::default()
    }
}

/// Hex SHA-256 of the body's canonical form (RFC 8785): the same JSON written with other
/// spacing or key order is the same body.
pub fn body_hash(raw: &Value) -> String {
    let canonical = serde_json_canonicalizer::to_vec(raw).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh job id: a UUIDv7 from the time and the body's hash.
pub(crate) fn new_job_id(now: u64, body_hash: &str) -> String {
    let salt = NEXT_ID.fetch_add(1, Relaxed);
    let mut random = [0u8; 10];
    let digest = Sha256::digest(format!("{body_hash}:{salt}:{}", std::process::id()));
    random.copy_from_slice(&digest[..10]);
    TaskId::new_v7(now, random).to_string()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The task that runs a job under the node `manager`: the same after that node restarts,
/// so that the job's history there reads as one task; another one on another node, so
/// that agents still holding the dead node's contract for the job can bid for the new
/// one (a contract is tied to its task and its manager).
pub(crate) fn task_id_for(job_id: &str, created_ms: i64, manager: &str) -> TaskId {
    let digest = Sha256::digest(format!("{job_id}\n{manager}").as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    TaskId::new_v7(created_ms.max(0) as u64, random)
}

/// Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_hash_ignores_spacing_and_key_order() {
        let a: Value = serde_json::from_str(r#"{"a": 1, "b": [1, 2]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":[1,2],"a":1}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"b":[2,1],"a":1}"#).unwrap();
        assert_eq!(body_hash(&a), body_hash(&b));
        assert_ne!(body_hash(&a), body_hash(&c));
        assert_eq!(body_hash(&a).len(), 64);
    }

    #[test]
    fn task_ids_are_stable_per_job() {
        assert_eq!(task_id_for("j1", 5, "n1"), task_id_for("j1", 5, "n1"));
        assert_ne!(task_id_for("j1", 5, "n1"), task_id_for("j2", 5, "n1"));
        assert_ne!(task_id_for("j1", 5, "n1"), task_id_for("j1", 5, "n2"));
        assert_ne!(new_job_id(1, "h"), new_job_id(1, "h"));
    }
}
