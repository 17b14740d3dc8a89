//! Who may read what: a private task database's jobs, results and events are visible to
//! the organisations subscribed to it (its members) and to admin keys only; so are a
//! private job's (`visibility: private`) in a public database.
//!
//! A caller's view ([`Hidden`]: the private databases it is not a member of, and the
//! databases it is subscribed to) is worked out per organisation, kept for 5 s
//! ([`ViewCache`]; a change of subscriptions or of the registry on this node forgets it at
//! once, on another node within those 5 s), and applied to every job and event a request
//! returns. A job that is
//! hidden answers as one that does not exist (404), so that an outsider learns nothing of
//! it, not even that it exists.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

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

/// How long a view is used before it is read from the store again.
const VIEW_FOR: Duration = Duration::from_secs(5);

/// Views worked out recently, by organisation: a burst of reads by one organisation costs
/// one pair of store reads, not one per request.
#[derive(Debug, Default)]
pub(crate) struct ViewCache(Mutex<HashMap<String, (Hidden, Instant)>>);

impl ViewCache {
    fn get(&self, org_id: &str) -> Option<Hidden> {
        let views = self.0.lock();
        views.get(org_id).filter(|(_, at)| at.elapsed() < VIEW_FOR).map(|(view, _)| view.clone())
    }

    fn put(&self, org_id: &str, view: &Hidden) {
        let mut views = self.0.lock();
        // Bounded by the organisations active in the last moments.
        if views.len() > 10_000 {
            views.retain(|_, (_, at)| at.elapsed() < VIEW_FOR);
        }
        views.insert(org_id.to_owned(), (view.clone(), Instant::now()));
    }

    /// Forgets every view: subscriptions or the registry changed.
    pub(crate) fn forget_all(&self) {
        self.0.lock().clear();
    }
}

impl<S: Store + Clone> Node<S> {
    /// What `caller` may not see (nothing without authentication, or for an admin key).
    pub async fn hidden_from(&self, caller: Option<&Caller>) -> ApiResult<Hidden> {
        let Some(caller) = caller.filter(|c| !c.may(Scope::Admin)) else { return Ok(Hidden::default()) };
        if let Some(view) = self.views.get(&caller.org_id) {
            return Ok(view);
        }
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
        let view = Hidden { private_dbs, member_of: Some(member_of) };
        self.views.put(&caller.org_id, &view);
        Ok(view)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_is_kept_per_organisation_until_forgotten() {
        let cache = ViewCache::default();
        let view =
            Hidden { private_dbs: BTreeSet::from(["secret".to_owned()]), member_of: Some(BTreeSet::new()) };
        cache.put("acme", &view);
        assert_eq!(cache.get("acme"), Some(view));
        assert_eq!(cache.get("other"), None, "another organisation has its own view");
        cache.forget_all();
        assert_eq!(cache.get("acme"), None);
    }

    #[test]
    fn a_private_job_is_hidden_from_non_subscribers_only() {
        let view =
            Hidden { private_dbs: BTreeSet::new(), member_of: Some(BTreeSet::from(["shared".to_owned()])) };
        assert!(!view.hides_job("shared", true));
        assert!(view.hides_job("elsewhere", true));
        assert!(!view.hides_job("elsewhere", false));
        assert!(!Hidden::default().hides_job("elsewhere", true), "admins see everything");
    }
}
