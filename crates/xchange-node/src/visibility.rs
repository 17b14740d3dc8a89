//! Who may read what: a private task database's jobs, results and events are visible to
//! the organisations subscribed to it (its members) and to admin keys only; so are a
//! private job's (`visibility: private`) in a public database.
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

/// What a caller may not see. The default hides nothing (admin keys, authentication off).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hidden {
    /// The private task databases the caller's organisation is not a member of.
    private_dbs: BTreeSet<String>,
    /// The databases the caller's organisation is subscribed to; `None`: it sees all.
    member_of: Option<BTreeSet<String>>,
}

impl Hidden {
    /// Whether every job and event of `taskdb` is hidden from the caller.
    pub fn hides(&self, taskdb: &str) -> bool {
        self.private_dbs.contains(taskdb)
    }

    /// Whether a job of `taskdb` (private itself or not) is hidden from the caller.
    pub fn hides_job(&self, taskdb: &str, private_job: bool) -> bool {
        self.hides(taskdb) || (private_job && self.member_of.as_ref().is_some_and(|m| !m.contains(taskdb)))
    }
}

/// Whether a stored job document asks for the private path.
pub(crate) fn is_private_job(document: &serde_json::Value) -> bool {
    document["visibility"] == "private"
}

/// How many registry entries or subscriptions a view reads per page.
const PAGE: u32 = 500;

impl<S: Store + Clone> Node<S> {
    /// What `caller` may not see (nothing without authentication, or for an admin key).
    pub async fn hidden_from(&self, caller: Option<&Caller>) -> ApiResult<Hidden> {
        let Some(caller) = caller.filter(|c| !c.may(Scope::Admin)) else { return Ok(Hidden::default()) };
        let private = Filter::parse(&json!({"accessibility_data.visibility": "private"}))
            .map_err(|e| ApiError::new(xchange_protocol::Code::Internal, e.to_string()))?;
        let mut private_dbs = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.find_taskdbs(&private, after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.task_listing_db_id.clone());
            private_dbs.extend(page.into_iter().map(|db| db.task_listing_db_id));
        }
        let mut member_of = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.subscriptions_of(&caller.org_id, after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.taskdb.clone());
            member_of.extend(page.into_iter().map(|s| s.taskdb));
        }
        private_dbs.retain(|db| !member_of.contains(db));
        Ok(Hidden { private_dbs, member_of: Some(member_of) })
    }

    /// The job, if `hidden` lets the caller see it; else answered as not found.
    pub(crate) async fn visible_job(&self, job_id: &str, hidden: &Hidden) -> ApiResult<xchange_store::Job> {
        let job = self.job(job_id).await?;
        if hidden.hides_job(&job.taskdb, is_private_job(&job.document)) {
            return Err(xchange_store::StoreError::NotFound { kind: "job", id: job_id.to_owned() }.into());
        }
        Ok(job)
    }
}
