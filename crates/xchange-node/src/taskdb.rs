//! Task databases and their registry entries (the original `TaskListingSchema`), with the
//! performance statistics the node maintains from what actually ran.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use xchange_protocol::{GLOBAL_POOL, is_valid_name};
use xchange_store::{JobState, Store, StoreError, TaskDb, TaskDbJobCounts};

use crate::error::{ApiError, ApiResult};
use crate::http::page::{Page, QueryRequest, limit};
use crate::node::{Node, now_ms};
use crate::query::{next_cursor, parse_filter};

/// A registry entry as submitted. The field names are the original Xchange ones;
/// `task_db_aggregate_performance_stats` is the node's to write and is refused on input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDbEntry {
    /// The key: 1-64 of `[A-Za-z0-9_-]` (it names the pool the database's jobs run in).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub task_listing_db_id: String,
    /// Related systems, registries, organisations or groups.
    #[serde(default)]
    pub association_ids: Vec<String>,
    /// The base URL of the node that owns the database (for federation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_listing_db_api_url: Option<String>,
    /// What searches look at (any JSON), e.g.
    /// `{"tags": ["nlp"], "capabilities": ["summarise"]}`.
    #[serde(default)]
    pub search_metadata: Value,
    /// What the database is like (any JSON; kept, searchable).
    #[serde(default)]
    pub task_db_characteristics_data: Value,
    /// Maintained by the node: refused on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = stats_schema)]
    pub task_db_aggregate_performance_stats: Option<Value>,
    /// Collections inside the database.
    #[serde(default)]
    pub collection_ids: Vec<String>,
    /// Who may use it: `{"visibility": "public" | "private"}` and anything else.
    #[serde(default)]
    #[schema(schema_with = accessibility_schema)]
    pub accessibility_data: Value,
    /// The cluster the database runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_db_cluster_id: Option<String>,
}

/// `accessibility_data`: an object (or null) whose `visibility`, when present, is `public`
/// or `private`.
fn accessibility_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let visibility = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["public", "private"]));
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Object, Type::Null]))
        .property("visibility", visibility)
        .description(Some("Who may use it: `{\"visibility\": \"public\" | \"private\"}` and anything else."))
        .build()
}

/// `task_db_aggregate_performance_stats`: read-only, so that clients leave it out.
fn stats_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Object, Type::Null]))
        .read_only(true)
        .description(Some("Maintained by the node: refused on input."))
        .build()
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
        if !(self.accessibility_data.is_object() || self.accessibility_data.is_null()) {
            return Err(ApiError::schema("accessibility_data must be an object").at("accessibility_data"));
        }
        if self.visibility().is_none() {
            return Err(ApiError::schema("accessibility_data.visibility must be \"public\" or \"private\"")
                .at("accessibility_data.visibility"));
        }
        Ok(())
    }

    /// Refuses making the global database private: every job without a route lands there.
    fn check_global(&self) -> ApiResult<()> {
        if self.task_listing_db_id == GLOBAL_POOL && self.visibility() == Some("private") {
            return Err(ApiError::new(
                xchange_protocol::Code::Forbidden,
                "the global task database stays public",
            )
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
        entry.check_global()?;
        let id = entry.task_listing_db_id.clone();
        let doc = serde_json::to_value(&entry).map_err(|e| ApiError::invalid(e.to_string()))?;
        let stored = self.store.put_taskdb(&id, doc, expected_version, now_ms() as i64).await;
        self.views.forget_all();
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
        self.share_taskdb(&stored.task_listing_db_id, &stored.document).await;
        self.taskdb_view(stored, &self.store.job_counts_by_taskdb().await?).await
    }

    /// The entry with its statistics.
    pub async fn get_taskdb(&self, id: &str) -> ApiResult<TaskDbView> {
        match self.store.get_taskdb(id).await {
            Ok(db) => self.taskdb_view(db, &self.store.job_counts_by_taskdb().await?).await,
            Err(StoreError::NotFound { .. }) => Err(ApiError::not_found("task database", id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an entry. Its jobs stay readable.
    pub async fn delete_taskdb(&self, id: &str) -> ApiResult<()> {
        if id == GLOBAL_POOL {
            return Err(ApiError::new(xchange_protocol::Code::Forbidden, "the global task database stays"));
        }
        let deleted = self.store.delete_taskdb(id).await;
        self.views.forget_all();
        match deleted {
            Ok(()) => {
                self.unshare_taskdb(id).await;
                Ok(())
            }
            Err(StoreError::NotFound { .. }) => Err(ApiError::not_found("task database", id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Entries matching a filter over the entry document, in key order.
    pub async fn query_taskdbs(&self, request: QueryRequest) -> ApiResult<Page<TaskDbView>> {
        let limit = limit(request.limit)?;
        let filter = parse_filter(request.filter.as_ref(), "filter", &self.config.filter_limits())?;
        let after = request.after.as_deref();
        let dbs = match &filter {
            Some(f) => self.store.find_taskdbs(f, after, limit).await?,
            None => self.store.list_taskdbs(after, limit).await?,
        };
        let next = next_cursor(&dbs, limit, |d| &d.task_listing_db_id);
        // One count for the whole page: the store answers it for every database at once.
        let counts = self.store.job_counts_by_taskdb().await?;
        let mut items = Vec::with_capacity(dbs.len());
        for db in dbs {
            items.push(self.taskdb_view(db, &counts).await?);
        }
        Ok(Page { items, next })
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

    async fn taskdb_view(&self, db: TaskDb, counts: &[TaskDbJobCounts]) -> ApiResult<TaskDbView> {
        let mut entry = db.document;
        entry["task_db_aggregate_performance_stats"] =
            self.taskdb_stats(&db.task_listing_db_id, counts).await?;
        Ok(TaskDbView { entry, version: db.version, created_ms: db.created_ms, updated_ms: db.updated_ms })
    }

    /// Jobs by state, completion rate and submit-to-end latency percentiles of completed
    /// jobs, read from the store's indexes over what actually ran.
    async fn taskdb_stats(&self, id: &str, counts: &[TaskDbJobCounts]) -> ApiResult<Value> {
        let by_state = counts.iter().find(|c| c.taskdb == id).map(|c| c.counts.clone()).unwrap_or_default();
        let total: u64 = by_state.values().sum();
        let count = |s: JobState| by_state.get(&s).copied().unwrap_or(0);
        let ended = count(JobState::Completed) + count(JobState::Failed) + count(JobState::Expired);
        let latency = self.store.completed_latency(id).await?;
        let by_state: std::collections::BTreeMap<&str, u64> =
            by_state.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        Ok(json!({
            "jobs": total,
            "jobs_by_state": by_state,
            "completion_rate": if ended == 0 { Value::Null } else { json!(count(JobState::Completed) as f64 / ended as f64) },
            "latency_ms_p50": latency.as_ref().map(|l| l.p50_ms),
            "latency_ms_p90": latency.as_ref().map(|l| l.p90_ms),
            "latency_ms_p99": latency.as_ref().map(|l| l.p99_ms),
        }))
    }
}
