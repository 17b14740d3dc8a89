//! Queries over jobs and registry entries with the filter language, pushed down to the
//! store (which evaluates in memory what its SQL compiler refuses).

use serde_json::Value;
use xchange_filter::{Filter, Limits};
use xchange_store::Store;

use crate::error::{ApiError, ApiResult};
use crate::http::page::{Page, QueryRequest, limit};
use crate::job::JobView;
use crate::node::Node;
use crate::visibility::Hidden;

/// Parses an optional filter from a request field, under `limits`.
pub(crate) fn parse_filter(
    filter: Option<&Value>,
    field: &str,
    limits: &Limits,
) -> ApiResult<Option<Filter>> {
    filter.map(|f| Filter::parse_with(f, limits).map_err(|e| ApiError::filter(&e, field))).transpose()
}

/// The cursor of the next page: the last key when the page is full.
pub(crate) fn next_cursor<T>(items: &[T], limit: u32, key: impl Fn(&T) -> &str) -> Option<String> {
    (items.len() == limit as usize).then(|| items.last().map(|i| key(i).to_owned())).flatten()
}

impl<S: Store + Clone> Node<S> {
    /// Jobs matching `request.filter` (all without one), of `taskdb` if given, in id order.
    /// The filter sees the job view: the document's fields with `job_id`, `taskdb`,
    /// `state`, `created_ms` and `updated_ms` at the top level.
    /// Jobs of the private databases in `hidden` are left out (a page may then hold fewer
    /// than `limit` jobs; its `next` cursor still pages on).
    pub async fn query_jobs(
        &self,
        taskdb: Option<&str>,
        request: QueryRequest,
        hidden: &Hidden,
    ) -> ApiResult<Page<JobView>> {
        let limit = limit(request.limit)?;
        let filter = parse_filter(request.filter.as_ref(), "filter", &self.config.filter_limits())?;
        let after = request.after.as_deref();
        let jobs = match &filter {
            Some(f) => self.store.find_jobs(f, taskdb, after, limit).await?,
            None => self.store.list_jobs(taskdb, after, limit).await?,
        };
        let next = next_cursor(&jobs, limit, |j| &j.job_id);
        let items = jobs
            .into_iter()
            .filter(|j| !hidden.hides_job(&j.taskdb, crate::visibility::is_private_job(&j.document)))
            .map(JobView::from)
            .collect();
        Ok(Page { items, next })
    }
}
