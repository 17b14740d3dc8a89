//! The store, written once for both SQL backends: [`SqlStore`] over a [`Dialect`].
//!
//! `db.rs` is the sqlx plumbing, `dialect.rs` what differs between the databases,
//! `record.rs` the reads every table has, `commit.rs`, `batch.rs`, `plan.rs` and `bulk.rs`
//! the group commit of the hot writes, `registry.rs` the other writes, `jobs.rs` the
//! outbox and statistics, `find.rs` the filter queries.

mod batch;
mod bulk;
mod commit;
pub(crate) mod db;
pub(crate) mod dialect;
mod find;
mod jobs;
mod lease;
mod plan;
mod record;
mod registry;

use serde_json::Value;
use sqlx::pool::{Pool, PoolConnection};
use xchange_filter::Filter;

use crate::checks::{check_new_job, check_transition_input};
use crate::error::StoreError;
use crate::job::{Event, Job, NewJob, Submitted, Transition};
use crate::lease::{ClusterNode, Fence, Lease};
use crate::records::{
    AgentCard, ApiKey, Durability, LatencySummary, Org, Subscription, TaskDb, TaskDbJobCounts, Template,
};
use crate::sql::commit::GroupCommit;
use crate::sql::dialect::Dialect;
use crate::sql::plan::{Write, Written};
use crate::sql::record::Page;
use crate::store::Store;

/// A store on one SQL database. Cloning is cheap and shares the connections and the
/// writer task.
#[derive(Debug)]
pub(crate) struct SqlStore<D: Dialect> {
    /// Where writes go (SQLite: the one writing connection).
    writer: Pool<D>,
    /// Where reads go (PostgreSQL: the same pool).
    reader: Pool<D>,
    commits: GroupCommit,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self { writer: self.writer.clone(), reader: self.reader.clone(), commits: self.commits.clone() }
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A store on migrated pools; starts the writer task on the current tokio runtime.
    pub(crate) fn new(writer: Pool<D>, reader: Pool<D>) -> Self {
        let commits = GroupCommit::start(writer.clone());
        Self { writer, reader, commits }
    }

    async fn read(&self) -> Result<PoolConnection<D>, StoreError> {
        Ok(self.reader.acquire().await?)
    }

    async fn write(&self) -> Result<PoolConnection<D>, StoreError> {
        Ok(self.writer.acquire().await?)
    }
}

impl<D: Dialect> Store for SqlStore<D> {
    async fn submit_job(&self, job: NewJob) -> Result<Submitted, StoreError> {
        check_new_job(&job)?;
        match self.commits.write(Write::Submit(job)).await? {
            Written::Submitted(submitted) => Ok(submitted),
            Written::Transitioned(_) => unreachable!("a submission is answered as one"),
        }
    }

    async fn get_job(&self, job_id: &str) -> Result<Job, StoreError> {
        record::get::<D, Job>(&mut *self.read().await?, job_id).await
    }

    async fn list_jobs(
        &self,
        taskdb: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let page = Page { scope: taskdb.map(|t| ("taskdb", t)), ..Page::by_key::<Job>(after, limit) };
        record::list::<D, Job>(&mut *self.read().await?, &page).await
    }

    async fn list_unfinished_jobs(&self, after: Option<&str>, limit: u32) -> Result<Vec<Job>, StoreError> {
        let page = Page { condition: jobs::UNFINISHED, ..Page::by_key::<Job>(after, limit) };
        record::list::<D, Job>(&mut *self.read().await?, &page).await
    }

    async fn find_jobs(
        &self,
        filter: &Filter,
        taskdb: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let page = Page { scope: taskdb.map(|t| ("taskdb", t)), ..Page::by_key::<Job>(after, limit) };
        find::find::<D, Job>(&mut *self.read().await?, filter, page).await
    }

    async fn transition(&self, t: Transition) -> Result<Job, StoreError> {
        check_transition_input(&t)?;
        match self.commits.write(Write::Transition(t)).await? {
            Written::Transitioned(job) => Ok(job),
            Written::Submitted(_) => unreachable!("a transition is answered as one"),
        }
    }

    async fn job_counts_by_taskdb(&self) -> Result<Vec<TaskDbJobCounts>, StoreError> {
        jobs::counts_by_taskdb::<D>(&mut *self.read().await?).await
    }

    async fn completed_latency(&self, taskdb: &str) -> Result<Option<LatencySummary>, StoreError> {
        jobs::completed_latency::<D>(&mut *self.read().await?, taskdb).await
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        jobs::events_after::<D>(&mut *self.read().await?, after, limit).await
    }

    async fn last_event_id(&self) -> Result<i64, StoreError> {
        jobs::last_event_id::<D>(&mut *self.read().await?).await
    }

    async fn put_taskdb(
        &self,
        task_listing_db_id: &str,
        document: Value,
        expected_version: Option<i64>,
        now_ms: i64,
    ) -> Result<TaskDb, StoreError> {
        let mut conn = self.write().await?;
        registry::put_versioned::<D, TaskDb>(
            &mut conn,
            task_listing_db_id,
            document,
            expected_version,
            now_ms,
        )
        .await
    }

    async fn get_taskdb(&self, task_listing_db_id: &str) -> Result<TaskDb, StoreError> {
        record::get::<D, TaskDb>(&mut *self.read().await?, task_listing_db_id).await
    }

    async fn delete_taskdb(&self, task_listing_db_id: &str) -> Result<(), StoreError> {
        record::delete::<D, TaskDb>(&mut *self.write().await?, task_listing_db_id).await
    }

    async fn list_taskdbs(&self, after: Option<&str>, limit: u32) -> Result<Vec<TaskDb>, StoreError> {
        record::list::<D, TaskDb>(&mut *self.read().await?, &Page::by_key::<TaskDb>(after, limit)).await
    }

    async fn find_taskdbs(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TaskDb>, StoreError> {
        find::find::<D, TaskDb>(&mut *self.read().await?, filter, Page::by_key::<TaskDb>(after, limit)).await
    }

    async fn put_org(
        &self,
        org_id: &str,
        document: Value,
        expected_version: Option<i64>,
        now_ms: i64,
    ) -> Result<Org, StoreError> {
        let mut conn = self.write().await?;
        registry::put_versioned::<D, Org>(&mut conn, org_id, document, expected_version, now_ms).await
    }

    async fn get_org(&self, org_id: &str) -> Result<Org, StoreError> {
        record::get::<D, Org>(&mut *self.read().await?, org_id).await
    }

    async fn delete_org(&self, org_id: &str) -> Result<(), StoreError> {
        record::delete::<D, Org>(&mut *self.write().await?, org_id).await
    }

    async fn list_orgs(&self, after: Option<&str>, limit: u32) -> Result<Vec<Org>, StoreError> {
        record::list::<D, Org>(&mut *self.read().await?, &Page::by_key::<Org>(after, limit)).await
    }

    async fn subscribe(&self, taskdb: &str, subject_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        registry::subscribe::<D>(&mut *self.write().await?, taskdb, subject_id, now_ms).await
    }

    async fn unsubscribe(&self, taskdb: &str, subject_id: &str) -> Result<bool, StoreError> {
        registry::unsubscribe::<D>(&mut *self.write().await?, taskdb, subject_id).await
    }

    async fn subscribers(
        &self,
        taskdb: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscription>, StoreError> {
        let page =
            Page { order_by: "subject_id", scope: Some(("taskdb", taskdb)), condition: "", after, limit };
        record::list::<D, Subscription>(&mut *self.read().await?, &page).await
    }

    async fn subscriptions_of(
        &self,
        subject_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscription>, StoreError> {
        let page =
            Page { order_by: "taskdb", scope: Some(("subject_id", subject_id)), condition: "", after, limit };
        record::list::<D, Subscription>(&mut *self.read().await?, &page).await
    }

    async fn put_agent_card(
        &self,
        agent_id: &str,
        card: Value,
        now_ms: i64,
    ) -> Result<AgentCard, StoreError> {
        registry::put_agent_card::<D>(&mut *self.write().await?, agent_id, card, now_ms).await
    }

    async fn get_agent_card(&self, agent_id: &str) -> Result<AgentCard, StoreError> {
        record::get::<D, AgentCard>(&mut *self.read().await?, agent_id).await
    }

    async fn delete_agent_card(&self, agent_id: &str) -> Result<(), StoreError> {
        record::delete::<D, AgentCard>(&mut *self.write().await?, agent_id).await
    }

    async fn list_agent_cards(&self, after: Option<&str>, limit: u32) -> Result<Vec<AgentCard>, StoreError> {
        record::list::<D, AgentCard>(&mut *self.read().await?, &Page::by_key::<AgentCard>(after, limit)).await
    }

    async fn find_agent_cards(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AgentCard>, StoreError> {
        let page = Page::by_key::<AgentCard>(after, limit);
        find::find::<D, AgentCard>(&mut *self.read().await?, filter, page).await
    }

    async fn put_template(&self, name: &str, schema: Value, now_ms: i64) -> Result<Template, StoreError> {
        registry::put_template::<D>(&mut *self.write().await?, name, schema, now_ms).await
    }

    async fn get_template(&self, name: &str) -> Result<Template, StoreError> {
        record::get::<D, Template>(&mut *self.read().await?, name).await
    }

    async fn list_templates(&self, after: Option<&str>, limit: u32) -> Result<Vec<Template>, StoreError> {
        record::list::<D, Template>(&mut *self.read().await?, &Page::by_key::<Template>(after, limit)).await
    }

    async fn list_unfinished_jobs_in(
        &self,
        partition: i32,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        lease::unfinished_jobs_in::<D>(&mut *self.read().await?, partition, after, limit).await
    }

    async fn node_alive(&self, node_id: &str, url: &str, starting: bool) -> Result<i64, StoreError> {
        lease::node_alive::<D>(&mut *self.write().await?, node_id, url, starting).await
    }

    async fn clock_ms(&self) -> Result<i64, StoreError> {
        lease::clock_ms::<D>(&mut *self.read().await?).await
    }

    async fn cluster_nodes(&self) -> Result<Vec<ClusterNode>, StoreError> {
        lease::cluster_nodes::<D>(&mut *self.read().await?).await
    }

    async fn ensure_partitions(&self, count: u32) -> Result<(), StoreError> {
        lease::ensure_partitions::<D>(&mut *self.write().await?, count).await
    }

    async fn partition_leases(&self) -> Result<Vec<Lease>, StoreError> {
        lease::partition_leases::<D>(&mut *self.read().await?).await
    }

    async fn acquire_partition(
        &self,
        partition: i32,
        node_id: &str,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        lease::acquire::<D>(&mut *self.write().await?, partition, node_id, ttl_ms).await
    }

    async fn renew_partition(
        &self,
        fence: Fence,
        node_id: &str,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        lease::renew::<D>(&mut *self.write().await?, fence, node_id, ttl_ms).await
    }

    async fn release_partition(&self, fence: Fence, node_id: &str) -> Result<bool, StoreError> {
        lease::release::<D>(&mut *self.write().await?, fence, node_id).await
    }

    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        registry::create_api_key::<D>(&mut *self.write().await?, key).await
    }

    async fn get_api_key(&self, key_id: &str) -> Result<ApiKey, StoreError> {
        record::get::<D, ApiKey>(&mut *self.read().await?, key_id).await
    }

    async fn list_api_keys(&self, after: Option<&str>, limit: u32) -> Result<Vec<ApiKey>, StoreError> {
        record::list::<D, ApiKey>(&mut *self.read().await?, &Page::by_key::<ApiKey>(after, limit)).await
    }

    async fn revoke_api_key(&self, key_id: &str, now_ms: i64) -> Result<ApiKey, StoreError> {
        registry::revoke_api_key::<D>(&mut *self.write().await?, key_id, now_ms).await
    }

    async fn durability_settings(&self) -> Result<Durability, StoreError> {
        // On a writing connection: it is the one whose commits must be durable.
        D::durability(&mut *self.write().await?).await
    }

    async fn close(&self) {
        self.commits.close().await;
        self.reader.close().await;
        // The writer last: SQLite's last connection to close checkpoints the WAL.
        self.writer.close().await;
    }
}
