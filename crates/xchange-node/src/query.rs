//! Queries over jobs and registry entries with the filter language.

use serde_json::Value;
use xchange_filter::Filter;
use xchange_store::{Job, Store};

use crate::error::{ApiError, ApiResult};
use crate::http::page::{Page, QueryRequest, limit};
use crate::job::JobView;
use crate::node::Node;

/// How many stored rows one query reads at most before answering with what it found: a
/// filter that matches little must not make one request scan a whole table.
const SCAN_BUDGET: usize = 50_000;

/// Parses an optional filter from a request field.
pub(crate) fn parse_filter(filter: Option<&Value>, field: &str) -> ApiResult<Option<Filter>> {
    filter.map(|f| Filter::parse(f).map_err(|e| ApiError::filter(&e, field))).transpose()
}

/// What a job filter sees: the document's fields with the job's own at the top level.
pub fn job_view(job: &Job) -> Value {
    let mut view = match &job.document {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    view.insert("job_id".into(), Value::String(job.job_id.clone()));
    view.insert("taskdb".into(), Value::String(job.taskdb.clone()));
    view.insert("state".into(), Value::String(job.state.as_str().to_owned()));
    view.insert("created_ms".into(), job.created_ms.into());
    view.insert("updated_ms".into(), job.updated_ms.into());
    Value::Object(view)
}

impl<S: Store + Clone> Node<S> {
    /// Jobs matching `request.filter` (all without one), of `taskdb` if given, in id order.
    pub async fn query_jobs(&self, taskdb: Option<&str>, request: QueryRequest) -> ApiResult<Page<JobView>> {
        let limit = limit(request.limit)? as usize;
        let filter = parse_filter(request.filter.as_ref(), "filter")?;
        let mut after = request.after;
        let mut items = Vec::new();
        let mut scanned = 0;
        loop {
            let page = self.store.list_jobs(taskdb, after.as_deref(), 500).await?;
            let full = page.len() == 500;
            for job in page {
                scanned += 1;
                after = Some(job.job_id.clone());
                if filter.as_ref().is_none_or(|f| f.matches(&job_view(&job))) {
                    items.push(JobView::from(job));
                    if items.len() == limit {
                        return Ok(Page { items, next: after });
                    }
                }
            }
            if !full {
                return Ok(Page { items, next: None });
            }
            if scanned >= SCAN_BUDGET {
                // Answer with what was found; the cursor resumes the scan.
                return Ok(Page { items, next: after });
            }
        }
    }
}
