//! The [`Store`] trait. Its types are in `job.rs` and `records.rs`.

use std::future::Future;

use serde_json::Value;
use xchange_filter::Filter;

use crate::error::StoreError;
use crate::job::{Event, Job, NewJob, Submitted, Transition};
use crate::lease::{ClusterNode, Fence, Lease};
use crate::records::{
    AgentCard, ApiKey, Durability, LatencySummary, Org, Subscription, TaskDb, TaskDbJobCounts, Template,
};

/// Durable storage for the exchange service: jobs with their outbox of events, the task
/// database registry, organisations, subscriptions, agent cards and templates.
///
/// Every method that writes returns after its transaction is committed durably (fsync'd
/// WAL), or with an error and nothing written. [`Store::submit_job`] and
/// [`Store::transition`] are group-committed: concurrent calls share one transaction and
/// one flush, each with its own answer, as if they had run one after the other (see the
/// crate docs). Lists are ordered by key in byte order and paged by key (`after` is the
/// last key of the previous page, `None` for the first); a `limit` of 0 returns nothing.
///
/// # Filters
///
/// The `find_*` methods take a parsed [`Filter`] and return what [`Filter::matches`]
/// accepts, in key order and paged like the lists. A filter sees a record's *view*: its
/// document's fields with the record's own columns overlaid at the top level (a document
/// that is not a JSON object contributes nothing). [`Job::filter_view`],
/// [`TaskDb::filter_view`] and [`AgentCard::filter_view`] build the views, so that a
/// filter evaluated in memory agrees with the store; for jobs,
/// `{"submitted_by": "alice", "state": "completed"}` works.
///
/// The futures are `Send` so that callers can spawn them on a multi-threaded runtime.
pub trait Store: Send + Sync + 'static {
    /// Creates a job and its [`JOB_POSTING`](crate::JOB_POSTING) event in one transaction.
    ///
    /// Idempotent: if `job_id` exists with the same `body_hash` and `taskdb`, returns
    /// [`Submitted::Existing`] and writes nothing. With another body or task database,
    /// fails with [`StoreError::Conflict`].
    fn submit_job(&self, job: NewJob) -> impl Future<Output = Result<Submitted, StoreError>> + Send;

    /// The job, or [`StoreError::NotFound`].
    fn get_job(&self, job_id: &str) -> impl Future<Output = Result<Job, StoreError>> + Send;

    /// Up to `limit` jobs with `job_id > after`, in `job_id` order; only those of `taskdb`
    /// when it is given.
    fn list_jobs(
        &self,
        taskdb: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Job>, StoreError>> + Send;

    /// Up to `limit` jobs not in a terminal state with `job_id > after`, in `job_id`
    /// order: what a restarted service resumes.
    fn list_unfinished_jobs(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Job>, StoreError>> + Send;

    /// Up to `limit` jobs whose [`Job::filter_view`] matches `filter`, with
    /// `job_id > after`, in `job_id` order; only those of `taskdb` when it is given.
    fn find_jobs(
        &self,
        filter: &Filter,
        taskdb: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Job>, StoreError>> + Send;

    /// Changes a job's state, result and reason code, increments its version and writes
    /// the event, in one transaction; returns the job as changed.
    ///
    /// Checked in this order: [`StoreError::NotFound`]; [`StoreError::StaleVersion`] when
    /// the job is no longer at `expected_version`; [`StoreError::IllegalTransition`] when
    /// the job is in a terminal state or the new state is `submitted`. On any error
    /// nothing is written, the event included.
    fn transition(&self, t: Transition) -> impl Future<Output = Result<Job, StoreError>> + Send;

    /// For every task database that has jobs, in key order: how many are in each state.
    fn job_counts_by_taskdb(&self) -> impl Future<Output = Result<Vec<TaskDbJobCounts>, StoreError>> + Send;

    /// How long the completed jobs of `taskdb` took from creation to their last change
    /// (`updated_ms - created_ms`); `None` when it has no completed job. Read through an
    /// index: the percentiles cost a walk of the index, not of the table.
    fn completed_latency(
        &self,
        taskdb: &str,
    ) -> impl Future<Output = Result<Option<LatencySummary>, StoreError>> + Send;

    /// Up to `limit` events with `id > after`, in id order.
    ///
    /// Ids become visible in increasing order (a transaction that took a smaller id has
    /// committed before a larger one is visible), so a reader that resumes after the last
    /// id it processed misses nothing. Ids may have gaps (rolled-back transactions).
    fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// The largest event id, 0 when there is none: where a new reader that wants only
    /// future events starts.
    fn last_event_id(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Creates or replaces a registry entry and returns it.
    ///
    /// Creating sets version 1; replacing increments the version. With
    /// `expected_version`, the put applies only if the entry is at that version (0: does
    /// not exist), else [`StoreError::StaleVersion`]. Versions restart at 1 after a
    /// delete.
    fn put_taskdb(
        &self,
        task_listing_db_id: &str,
        document: Value,
        expected_version: Option<i64>,
        now_ms: i64,
    ) -> impl Future<Output = Result<TaskDb, StoreError>> + Send;

    /// The registry entry, or [`StoreError::NotFound`].
    fn get_taskdb(&self, task_listing_db_id: &str)
    -> impl Future<Output = Result<TaskDb, StoreError>> + Send;

    /// Deletes the registry entry, or fails with [`StoreError::NotFound`]. Its jobs and
    /// subscriptions stay.
    fn delete_taskdb(&self, task_listing_db_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` registry entries with a key greater than `after`, in key order.
    fn list_taskdbs(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<TaskDb>, StoreError>> + Send;

    /// Up to `limit` registry entries whose [`TaskDb::filter_view`] matches `filter`, with
    /// a key greater than `after`, in key order.
    fn find_taskdbs(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<TaskDb>, StoreError>> + Send;

    /// Creates or replaces an organisation, versioned like [`Store::put_taskdb`].
    fn put_org(
        &self,
        org_id: &str,
        document: Value,
        expected_version: Option<i64>,
        now_ms: i64,
    ) -> impl Future<Output = Result<Org, StoreError>> + Send;

    /// The organisation, or [`StoreError::NotFound`].
    fn get_org(&self, org_id: &str) -> impl Future<Output = Result<Org, StoreError>> + Send;

    /// Deletes the organisation, or fails with [`StoreError::NotFound`]. Its
    /// subscriptions stay (a subject id is opaque to the store).
    fn delete_org(&self, org_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` organisations with an id greater than `after`, in id order.
    fn list_orgs(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Org>, StoreError>> + Send;

    /// Subscribes `subject_id` (an agent id or an organisation id) to the task database's
    /// events. Idempotent: returns whether the subscription is new (an existing one keeps
    /// its `created_ms`). The task database need not be registered.
    fn subscribe(
        &self,
        taskdb: &str,
        subject_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes a subscription; returns whether there was one.
    fn unsubscribe(
        &self,
        taskdb: &str,
        subject_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Up to `limit` subscriptions to `taskdb` with a subject id greater than `after`, in
    /// subject id order.
    fn subscribers(
        &self,
        taskdb: &str,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Subscription>, StoreError>> + Send;

    /// Up to `limit` subscriptions of `subject_id` with a task database greater than
    /// `after`, in task database order.
    fn subscriptions_of(
        &self,
        subject_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Subscription>, StoreError>> + Send;

    /// Creates or replaces an agent's card and returns it.
    fn put_agent_card(
        &self,
        agent_id: &str,
        card: Value,
        now_ms: i64,
    ) -> impl Future<Output = Result<AgentCard, StoreError>> + Send;

    /// The agent's card, or [`StoreError::NotFound`].
    fn get_agent_card(&self, agent_id: &str) -> impl Future<Output = Result<AgentCard, StoreError>> + Send;

    /// Deletes the agent's card, or fails with [`StoreError::NotFound`].
    fn delete_agent_card(&self, agent_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` cards with an agent id greater than `after`, in id order.
    fn list_agent_cards(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AgentCard>, StoreError>> + Send;

    /// Up to `limit` cards whose [`AgentCard::filter_view`] matches `filter`, with an agent
    /// id greater than `after`, in id order.
    fn find_agent_cards(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AgentCard>, StoreError>> + Send;

    /// Creates or replaces a template and returns it (a replacement keeps `created_ms`).
    fn put_template(
        &self,
        name: &str,
        schema: Value,
        now_ms: i64,
    ) -> impl Future<Output = Result<Template, StoreError>> + Send;

    /// The template, or [`StoreError::NotFound`].
    fn get_template(&self, name: &str) -> impl Future<Output = Result<Template, StoreError>> + Send;

    /// Up to `limit` templates with a name greater than `after`, in name order.
    fn list_templates(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Template>, StoreError>> + Send;

    /// Up to `limit` unfinished jobs of `partition` with `job_id > after`, in `job_id`
    /// order: what a node that takes the partition over carries on.
    fn list_unfinished_jobs_in(
        &self,
        partition: i32,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Job>, StoreError>> + Send;

    /// Records that the node is alive at `url` (`starting`: a new incarnation, which
    /// resets its `started_ms`); returns the database's clock (Unix ms), which the lease
    /// times are on.
    fn node_alive(
        &self,
        node_id: &str,
        url: &str,
        starting: bool,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// The database's clock (Unix ms), which the lease times are on; writes nothing.
    fn clock_ms(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Every node that ever said it was alive, by id.
    fn cluster_nodes(&self) -> impl Future<Output = Result<Vec<ClusterNode>, StoreError>> + Send;

    /// Creates the leases of partitions `0..count` that do not exist yet (free), so that
    /// nodes configured with more partitions than the database has add them.
    fn ensure_partitions(&self, count: u32) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every partition's lease, by partition.
    fn partition_leases(&self) -> impl Future<Output = Result<Vec<Lease>, StoreError>> + Send;

    /// Leases `partition` to `node_id` for `ttl_ms` with the next epoch, if it is free,
    /// expired, or held by `node_id` itself (a previous incarnation, fenced off by the new
    /// epoch); `None` when another node holds it.
    fn acquire_partition(
        &self,
        partition: i32,
        node_id: &str,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;

    /// Extends the lease by `ttl_ms` from now if `node_id` still holds it at the fence's
    /// epoch; returns the new expiry, `None` when the lease has moved on.
    fn renew_partition(
        &self,
        fence: Fence,
        node_id: &str,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Frees the partition if `node_id` still holds it at the fence's epoch; returns
    /// whether it did.
    fn release_partition(
        &self,
        fence: Fence,
        node_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates an API key. An id that exists is refused ([`StoreError::InvalidInput`]), as
    /// are empty ids, scopes that are not one word and a hash that is not 64 hex digits.
    fn create_api_key(&self, key: &ApiKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The API key, revoked or not, or [`StoreError::NotFound`].
    fn get_api_key(&self, key_id: &str) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;

    /// Up to `limit` API keys with an id greater than `after`, in id order.
    fn list_api_keys(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;

    /// Revokes the key at `now_ms` (a key already revoked keeps its time) and returns it;
    /// [`StoreError::NotFound`] if there is none.
    fn revoke_api_key(
        &self,
        key_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;

    /// What the connection reports about durability (see [`Durability::is_durable`]).
    fn durability_settings(&self) -> impl Future<Output = Result<Durability, StoreError>> + Send;

    /// Waits for the queued group-commit writes to be committed and answered, then closes
    /// the connections, waiting for those in use to be returned. Calls after this fail
    /// with `StoreError::Database(PoolClosed)`.
    fn close(&self) -> impl Future<Output = ()> + Send;
}
