//! Who may read what: a private task database's jobs, results and events are visible to
//! the organisations subscribed to it (its members) and to admin keys only.
//!
//! A caller's view is worked out once per request ([`Hidden`]: the private databases it is
//! not a member of) and applied to every job and event the request returns. A job that is
//! hidden answers as one that does not exist (404), so that an outsider learns nothing of
//! it, not even that it exists.

use std::collections::BTreeSet;

use serde_json::json;
use xchange_filter::Filter;
use xchange_store::Store;

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult};
use crate::node::Node;

/// The private task databases a caller may not see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hidden(BTreeSet<String>);

impl Hidden {
    /// Whether the jobs and events of `taskdb` are hidden from the caller.
    pub fn hides(&self, taskdb: &str) -> bool {
        self.0.contains(taskdb)
    }
}

/// How many registry entries or subscriptions a view reads per page.
const PAGE: u32 = 500;

impl<S: Store + Clone> Node<S> {
    /// What `caller` may not see (nothing without authentication, or for an admin key).
    pub async fn hidden_from(&self, caller: Option<&Caller>) -> ApiResult<Hidden> {
        let Some(caller) = caller.filter(|c| !c.may(Scope::Admin)) else { return Ok(Hidden::default()) };
        let private = Filter::parse(&json!({"accessibility_data.visibility": "private"}))
            .map_err(|e| ApiError::new(xchange_protocol::Code::Internal, e.to_string()))?;
        let mut hidden = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.find_taskdbs(&private, after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.task_listing_db_id.clone());
            hidden.extend(page.into_iter().map(|db| db.task_listing_db_id));
        }
        if hidden.is_empty() {
            return Ok(Hidden(hidden));
        }
        let mut after: Option<String> = None;
        loop {
            let page = self.store.subscriptions_of(&caller.org_id, after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.taskdb.clone());
            for member_of in page {
                hidden.remove(&member_of.taskdb);
            }
        }
        Ok(Hidden(hidden))
    }

    /// The job, if `hidden` lets the caller see it; else answered as not found.
    pub(crate) async fn visible_job(&self, job_id: &str, hidden: &Hidden) -> ApiResult<xchange_store::Job> {
        let job = self.job(job_id).await?;
        if hidden.hides(&job.taskdb) {
            return Err(xchange_store::StoreError::NotFound { kind: "job", id: job_id.to_owned() }.into());
        }
        Ok(job)
    }
}
