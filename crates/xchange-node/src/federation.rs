//! Federation, first part: the registry shared by the nodes on one NATS bus. A node puts
//! the task databases it owns (all but `global`, which every node has) in the shared
//! registry with the URL it serves them at, and a federated registry search on any node
//! sees every node's task databases with their owner. A job submitted here for a task
//! database another node owns is forwarded to that node (its `owner_url`), and where it
//! went is recorded in the shared bucket `{prefix}_forwarded`, so that the job stays
//! readable here.

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use xchange_protocol::{Code, GLOBAL_POOL};
use xchange_store::{Store, StoreError, TaskDb};

use crate::error::{ApiError, ApiResult};
use crate::http::page::{Page, QueryRequest, limit};
use crate::job::{JobView, check_job_id};
use crate::node::{Node, body_hash, new_job_id, now_ms};
use crate::query::{next_cursor, parse_filter};

/// A task database as the federated registry shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FederatedTaskDb {
    /// The task database.
    pub task_listing_db_id: String,
    /// The node that owns it (its manager's agent id).
    pub owner: String,
    /// Where the owner serves it (its `advertise_url`).
    pub owner_url: Option<String>,
    /// Whether this node owns it.
    pub local: bool,
    /// The registry entry, as its owner stores it.
    #[schema(value_type = Object)]
    pub entry: Value,
}

impl<S: Store + Clone> Node<S> {
    fn owner(&self) -> String {
        self.manager.id().to_string()
    }

    /// What this node publishes for task database `id` with registry document `doc`.
    fn shared_value(&self, id: &str, doc: &Value) -> Value {
        json!({"task_listing_db_id": id, "owner": self.owner(),
            "owner_url": self.config.advertise_url, "entry": doc})
    }

    /// Publishes a task database this node owns (after its store write).
    pub(crate) async fn share_taskdb(&self, id: &str, doc: &Value) {
        let Some(registry) = &self.shared_registry else { return };
        if id == GLOBAL_POOL {
            return;
        }
        if let Err(e) = registry.put(&format!("{}.{id}", self.owner()), &self.shared_value(id, doc)).await {
            tracing::warn!(taskdb = %id, error = %e, "cannot publish the task database to the shared registry");
        }
    }

    /// Withdraws a deleted task database from the shared registry.
    pub(crate) async fn unshare_taskdb(&self, id: &str) {
        let Some(registry) = &self.shared_registry else { return };
        if let Err(e) = registry.remove(&format!("{}.{id}", self.owner())).await {
            tracing::warn!(taskdb = %id, error = %e, "cannot withdraw the task database from the shared registry");
        }
    }

    /// Publishes every task database of the store (at start: the bucket may have missed
    /// changes made while the node was away).
    pub(crate) async fn share_all_taskdbs(&self) -> ApiResult<()> {
        if self.shared_registry.is_none() {
            return Ok(());
        }
        for db in self.all_taskdbs().await? {
            self.share_taskdb(&db.task_listing_db_id, &db.document).await;
        }
        Ok(())
    }

    /// Every task database of the store, read a page at a time.
    async fn all_taskdbs(&self) -> ApiResult<Vec<TaskDb>> {
        let mut all: Vec<TaskDb> = Vec::new();
        loop {
            let after = all.last().map(|db| db.task_listing_db_id.clone());
            let page = self.store.list_taskdbs(after.as_deref(), 500).await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// Every node's task databases matching `request.filter` (over the entry), in
    /// (id, owner) order. Without a shared registry: this node's own.
    pub async fn query_federated_taskdbs(&self, request: QueryRequest) -> ApiResult<Page<FederatedTaskDb>> {
        let limit = limit(request.limit)?;
        let filter = parse_filter(request.filter.as_ref(), "filter", &self.config.filter_limits())?;
        let me = self.owner();
        let mut all: Vec<FederatedTaskDb> = match &self.shared_registry {
            Some(registry) => registry
                .entries()
                .into_iter()
                .filter_map(|(_, v)| serde_json::from_value::<Shared>(v).ok())
                .map(|s| FederatedTaskDb {
                    local: s.owner == me,
                    task_listing_db_id: s.task_listing_db_id,
                    owner: s.owner,
                    owner_url: s.owner_url,
                    entry: s.entry,
                })
                .collect(),
            None => self
                .all_taskdbs()
                .await?
                .into_iter()
                .map(|db| FederatedTaskDb {
                    task_listing_db_id: db.task_listing_db_id,
                    owner: me.clone(),
                    owner_url: self.config.advertise_url.clone(),
                    local: true,
                    entry: db.document,
                })
                .collect(),
        };
        all.retain(|t| filter.as_ref().is_none_or(|f| f.matches(&t.entry)));
        all.sort_by(|a, b| (&a.task_listing_db_id, &a.owner).cmp(&(&b.task_listing_db_id, &b.owner)));
        let key = |t: &FederatedTaskDb| format!("{}.{}", t.task_listing_db_id, t.owner);
        if let Some(after) = &request.after {
            all.retain(|t| key(t) > *after);
        }
        all.truncate(limit as usize);
        let keys: Vec<String> = all.iter().map(key).collect();
        let next = next_cursor(&keys, limit, |k| k.as_str());
        Ok(Page { items: all, next })
    }
}

#[derive(serde::Deserialize)]
struct Shared {
    task_listing_db_id: String,
    owner: String,
    owner_url: Option<String>,
    entry: Value,
}

/// Where jobs forwarded from a node went: bucket `{prefix}_forwarded`, key = job id.
pub(crate) const FORWARDED_BUCKET: &str = "forwarded";

pub(crate) fn unreachable_owner(url: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::Unavailable, format!("the owner node {url} cannot be reached: {e}"))
}

impl<S: Store + Clone> Node<S> {
    /// The URL of the node that owns the task database `raw` names, when another node owns
    /// it and this one has no database of that id.
    pub(crate) async fn forward_target(&self, raw: &Value) -> ApiResult<Option<String>> {
        let (Some(registry), Some(db)) =
            (&self.shared_registry, raw.get("task_db_id").and_then(Value::as_str))
        else {
            return Ok(None);
        };
        match self.store.get_taskdb(db).await {
            Ok(_) => return Ok(None),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let me = self.owner();
        Ok(registry
            .entries()
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_value::<Shared>(v).ok())
            .find(|s| s.task_listing_db_id == db && s.owner != me)
            .and_then(|s| s.owner_url))
    }

    /// Forwards a submission to the node at `owner_url`, having first recorded where the
    /// job goes (so that it stays readable here even if the answer is lost). Returns the
    /// owner's status (201, or 200 for a replay) and job.
    /// The caller's `credential`, if any, goes with the request.
    pub async fn forward_job(
        &self,
        mut raw: Value,
        owner_url: &str,
        credential: Option<&str>,
    ) -> ApiResult<(u16, JobView)> {
        let job_id = match raw.get("job_id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => {
                let id = new_job_id(now_ms(), &body_hash(&raw));
                raw["job_id"] = json!(id);
                id
            }
        };
        check_job_id(&job_id)?;
        if let Some(forwarded) = &self.forwarded {
            let record = json!({"owner_url": owner_url, "at_ms": now_ms()});
            forwarded
                .put(&job_id, &record)
                .await
                .map_err(|e| ApiError::new(Code::Unavailable, e.to_string()))?;
        }
        let request = on_behalf(self.http.post(format!("{owner_url}/v1/jobs")), credential);
        let answer = request.json(&raw).send().await;
        owner_answer(owner_url, answer.map_err(|e| unreachable_owner(owner_url, e))?).await
    }

    /// The URL of the node a job was forwarded to from here, if it was.
    pub(crate) async fn forwarded_to(&self, job_id: &str) -> ApiResult<Option<String>> {
        let Some(forwarded) = &self.forwarded else { return Ok(None) };
        let record =
            forwarded.get(job_id).await.map_err(|e| ApiError::new(Code::Unavailable, e.to_string()))?;
        Ok(record.as_ref().and_then(|r| r["owner_url"].as_str()).map(str::to_owned))
    }

    /// A job that was forwarded from here, as its owner shows it now (asked with the
    /// caller's `credential`).
    pub(crate) async fn forwarded_job(
        &self,
        job_id: &str,
        credential: Option<&str>,
    ) -> ApiResult<Option<JobView>> {
        let Some(url) = self.forwarded_to(job_id).await? else { return Ok(None) };
        let answer = on_behalf(self.http.get(format!("{url}/v1/jobs/{job_id}")), credential).send().await;
        Ok(Some(owner_answer(&url, answer.map_err(|e| unreachable_owner(&url, e))?).await?.1))
    }
}

/// A request to another node, carrying the caller's key when there is one.
pub(crate) fn on_behalf(
    request: reqwest::RequestBuilder,
    credential: Option<&str>,
) -> reqwest::RequestBuilder {
    match credential {
        Some(key) => request.bearer_auth(key),
        None => request,
    }
}

/// The owner's answer: its job, or its refusal with the owner's code.
pub(crate) async fn owner_answer(url: &str, answer: reqwest::Response) -> ApiResult<(u16, JobView)> {
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.map_err(|e| unreachable_owner(url, e))?;
    if status < 300 {
        let job = serde_json::from_value(body).map_err(|e| unreachable_owner(url, e))?;
        return Ok((status, job));
    }
    let code = body["error"]["code"].as_u64().and_then(|n| u16::try_from(n).ok()).and_then(Code::from_number);
    let message = body["error"]["message"].as_str().unwrap_or("refused");
    Err(ApiError::new(code.unwrap_or(Code::Unavailable), format!("the owner node {url}: {message}")))
}
