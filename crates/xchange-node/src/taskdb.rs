//! Task databases and their registry entries (the original `TaskListingSchema`), with the
//! performance statistics the node maintains from what actually ran.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use xchange_protocol::{GLOBAL_POOL, is_valid_name};
use xchange_store::{JobState, Store, StoreError, TaskDb};

use crate::error::{ApiError, ApiResult};
use crate::http::page::{Page, QueryRequest, limit};
use crate::node::{Node, now_ms};
use crate::query::parse_filter;

/// A registry entry as submitted. The field names are the original Xchange ones;
/// `task_db_aggregate_performance_stats` is the node's to write and is refused on input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDbEntry {
    /// The key: 1-64 of `[A-Za-z0-9_-]` (it names the pool the database's jobs run in).
    pub task_listing_db_id: String,
    /// Related systems, registries, organisations or groups.
    #[serde(default)]
    pub association_ids: Vec<String>,
    /// The base URL of the node that owns the database (for federation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_listing_db_api_url: Option<String>,
    /// What searches look at, e.g. `{"tags": ["nlp"], "capabilities": ["summarise"]}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub search_metadata: Value,
    /// What the database is like (kept, searchable).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub task_db_characteristics_data: Value,
    /// Maintained by the node: refused on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub task_db_aggregate_performance_stats: Option<Value>,
    /// Collections inside the database.
    #[serde(default)]
    pub collection_ids: Vec<String>,
    /// Who may use it: `{"visibility": "public" | "private"}` and anything else.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub accessibility_data: Value,
    /// The cluster the database runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_db_cluster_id: Option<String>,
}

/// A registry entry as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskDbView {
    /// The entry, with the node's performance statistics filled in.
    #[schema(value_type = Object)]
    pub entry: Value,
    /// Incremented by every change.
    pub version: i64,
    /// When it was created (Unix ms).
    pub created_ms: i64,
    /// When it last changed (Unix ms).
    pub updated_ms: i64,
}

impl TaskDbEntry {
    fn check(&self) -> ApiResult<()> {
        if !is_valid_name(&self.task_listing_db_id) {
            return Err(
                ApiError::schema("task_listing_db_id must be 1-64 of [A-Za-z0-9_-]").at("task_listing_db_id")
            );
        }
        if self.task_db_aggregate_performance_stats.is_some() {
            return Err(ApiError::invalid("task_db_aggregate_performance_stats is maintained by the node")
                .at("task_db_aggregate_performance_stats"));
        }
        if self.visibility().is_none() {
            return Err(ApiError::schema("accessibility_data.visibility must be \"public\" or \"private\"")
                .at("accessibility_data.visibility"));
        }
        Ok(())
    }

    /// `public` unless `accessibility_data.visibility` says `private`.
    fn visibility(&self) -> Option<&str> {
        match self.accessibility_data.get("visibility") {
            None => Some("public"),
            Some(Value::String(v)) if v == "public" || v == "private" => Some(v),
            _ => None,
        }
    }
}

impl<S: Store + Clone> Node<S> {
    /// Creates (`expected_version` 0), replaces (`Some(v)` or `None`) a registry entry.
    pub async fn put_taskdb(
        &self,
        entry: TaskDbEntry,
        expected_version: Option<i64>,
    ) -> ApiResult<TaskDbView> {
        entry.check()?;
        let id = entry.task_listing_db_id.clone();
        let doc = serde_json::to_value(&entry).map_err(|e| ApiError::invalid(e.to_string()))?;
        let stored = self.store.put_taskdb(&id, doc, expected_version, now_ms() as i64).await;
        let stored = match stored {
            Err(StoreError::StaleVersion { actual, .. }) if expected_version == Some(0) => {
                return Err(ApiError::new(
                    xchange_protocol::Code::Conflict,
                    format!("task database {id:?} already exists (version {actual})"),
                )
                .at("task_listing_db_id"));
            }
            other => other?,
        };
        self.taskdb_view(stored).await
    }

    /// The entry with its statistics.
    pub async fn get_taskdb(&self, id: &str) -> ApiResult<TaskDbView> {
        match self.store.get_taskdb(id).await {
            Ok(db) => self.taskdb_view(db).await,
            Err(StoreError::NotFound { .. }) => Err(ApiError::not_found("task database", id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an entry. Its jobs stay readable.
    pub async fn delete_taskdb(&self, id: &str) -> ApiResult<()> {
        if id == GLOBAL_POOL {
            return Err(ApiError::new(xchange_protocol::Code::Forbidden, "the global task database stays"));
        }
        match self.store.delete_taskdb(id).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound { .. }) => Err(ApiError::not_found("task database", id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Entries matching a filter over the entry document, in key order.
    pub async fn query_taskdbs(&self, request: QueryRequest) -> ApiResult<Page<TaskDbView>> {
        let limit = limit(request.limit)? as usize;
        let filter = parse_filter(request.filter.as_ref(), "filter")?;
        let mut after = request.after;
        let mut items = Vec::new();
        loop {
            let page = self.store.list_taskdbs(after.as_deref(), 500).await?;
            let full = page.len() == 500;
            for db in page {
                after = Some(db.task_listing_db_id.clone());
                if filter.as_ref().is_none_or(|f| f.matches(&db.document)) {
                    items.push(self.taskdb_view(db).await?);
                    if items.len() == limit {
                        return Ok(Page { items, next: after });
                    }
                }
            }
            if !full {
                return Ok(Page { items, next: None });
            }
        }
    }

    /// Makes sure the global task database has a registry entry.
    pub(crate) async fn ensure_global_taskdb(&self) -> ApiResult<()> {
        let entry = json!({
            "task_listing_db_id": GLOBAL_POOL,
            "search_metadata": {"description": "the default task database"},
            "accessibility_data": {"visibility": "public"},
        });
        match self.store.put_taskdb(GLOBAL_POOL, entry, Some(0), now_ms() as i64).await {
            Ok(_) | Err(StoreError::StaleVersion { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn taskdb_view(&self, db: TaskDb) -> ApiResult<TaskDbView> {
        let mut entry = db.document;
        entry["task_db_aggregate_performance_stats"] = self.taskdb_stats(&db.task_listing_db_id).await?;
        Ok(TaskDbView { entry, version: db.version, created_ms: db.created_ms, updated_ms: db.updated_ms })
    }

    /// Jobs by state, completion rate and submit-to-end latency percentiles of completed
    /// jobs, computed from the jobs stored for the database.
    async fn taskdb_stats(&self, id: &str) -> ApiResult<Value> {
        let mut by_state = std::collections::BTreeMap::<&'static str, u64>::new();
        let mut latencies = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_jobs(Some(id), after.as_deref(), 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.job_id.clone());
            for job in &page {
                *by_state.entry(job.state.as_str()).or_default() += 1;
                if job.state == JobState::Completed {
                    latencies.push((job.updated_ms - job.created_ms).max(0));
                }
            }
        }
        let total: u64 = by_state.values().sum();
        let ended: u64 = by_state
            .iter()
            .filter(|(s, _)| matches!(**s, "completed" | "failed" | "expired"))
            .map(|(_, n)| n)
            .sum();
        latencies.sort_unstable();
        let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied();
        Ok(json!({
            "jobs": total,
            "jobs_by_state": by_state,
            "completion_rate": if ended == 0 { Value::Null } else { json!(latencies.len() as f64 / ended as f64) },
            "latency_ms_p50": pct(0.5),
            "latency_ms_p99": pct(0.99),
        }))
    }
}
