//! Where a job goes, as in the original Xchange: a job that names its task database goes
//! straight there; a job with search constraints goes to the first registry entry they
//! match; otherwise the routing rules decide (a task database, a registry search, priority
//! and tags); with no decision, the global task database.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use xchange_filter::Filter;
use xchange_protocol::{Code, GLOBAL_POOL};
use xchange_rules::{Decision, Route, Rules};
use xchange_store::{Store, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::job::{JobDocument, Visibility};
use crate::node::{Node, now_ms};

/// Where a job goes and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Routed {
    /// The task database the job runs in.
    pub taskdb: String,
    /// How it was chosen: `task_db_id`, `search`, `rule:NAME` or `default`.
    pub decided_by: String,
    /// Whether the job takes the private path (its database or the job itself is private):
    /// awarded directly to a connected member, never announced.
    pub private: bool,
    /// The priority the job runs with (a rule may have set it).
    pub job_priority_value: i64,
    /// The job's tags after the rules added theirs.
    pub tags: Vec<String>,
    /// Each rule looked at: whether it matched, and why.
    #[schema(value_type = Vec<Object>)]
    pub trace: Vec<Value>,
}

/// Loads the rules file, if one is configured.
pub(crate) fn load_rules(path: Option<&std::path::Path>) -> Result<Rules, String> {
    let Some(path) = path else { return Ok(Rules::empty()) };
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read rules {}: {e}", path.display()))?;
    Rules::from_toml(&text).map_err(|e| format!("invalid rules {}: {e}", path.display()))
}

impl<S: Store + Clone> Node<S> {
    /// Decides where `doc` (submitted as `raw`) goes, and applies the rules' priority and
    /// tags to it.
    pub(crate) async fn route(&self, doc: &mut JobDocument, raw: &Value) -> ApiResult<Routed> {
        let decision = self
            .rules
            .evaluate(raw, now_ms() as i64)
            .map_err(|e| ApiError::schema(e.to_string()).at(xchange_rules::TASK_DB_ID_FIELD))?;
        let ((taskdb, private_db), decided_by) = match (&doc.task_db_id, &doc.search, &decision.route) {
            (Some(db), _, _) => (self.existing_taskdb(db, "task_db_id").await?, "task_db_id".to_owned()),
            (None, Some(search), _) => {
                let filter = Filter::parse_with(search, &self.config.filter_limits())
                    .map_err(|e| ApiError::filter(&e, "search"))?;
                (self.search_taskdb(&filter, "search").await?, "search".to_owned())
            }
            (None, None, Route::Explicit(db)) => {
                (self.existing_taskdb(db, "rules").await?, decided(&decision))
            }
            (None, None, Route::Search(search)) => {
                (self.search_taskdb(search.filter(), "rules").await?, decided(&decision))
            }
            (None, None, Route::Global) => ((GLOBAL_POOL.to_owned(), false), decided(&decision)),
        };
        if let Some(priority) = decision.priority {
            doc.job_priority_value = priority;
        }
        for tag in &decision.tags {
            if !doc.tags.contains(tag) {
                doc.tags.push(tag.clone());
            }
        }
        let trace = decision.trace.iter().map(|t| serde_json::to_value(t).unwrap_or_default()).collect();
        Ok(Routed {
            taskdb,
            decided_by,
            private: private_db || doc.visibility == Visibility::Private,
            job_priority_value: doc.job_priority_value,
            tags: doc.tags.clone(),
            trace,
        })
    }

    /// The named task database and whether it is private.
    async fn existing_taskdb(&self, name: &str, field: &str) -> ApiResult<(String, bool)> {
        if name == GLOBAL_POOL {
            return Ok((name.to_owned(), false));
        }
        match self.store.get_taskdb(name).await {
            Ok(db) => Ok((db.task_listing_db_id, is_private(&db.document))),
            Err(StoreError::NotFound { .. }) => Err(ApiError::not_found("task database", name).at(field)),
            Err(e) => Err(e.into()),
        }
    }

    /// The first registry entry, in key order, that `filter` matches, and whether it is
    /// private.
    async fn search_taskdb(&self, filter: &Filter, field: &str) -> ApiResult<(String, bool)> {
        if let Some(db) = self.store.find_taskdbs(filter, None, 1).await?.into_iter().next() {
            return Ok((db.task_listing_db_id, is_private(&db.document)));
        }
        Err(ApiError::new(Code::NotFound, "no task database in the registry matches the search").at(field))
    }
}

/// Whether a registry entry says its jobs are for its members only.
pub(crate) fn is_private(entry: &Value) -> bool {
    entry["accessibility_data"]["visibility"] == "private"
}

fn decided(decision: &Decision) -> String {
    match &decision.decided_by {
        xchange_rules::DecidedBy::Rule(name) => format!("rule:{name}"),
        xchange_rules::DecidedBy::TaskDbId => "task_db_id".to_owned(),
        xchange_rules::DecidedBy::Default => "default".to_owned(),
    }
}
