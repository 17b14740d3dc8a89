//! Organisations (the original `OrgObject` fields plus their member agents), subscriptions
//! of agents and organisations to task databases, and who may run a private database's
//! jobs: its subscribers, directly or through an organisation.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use xchange_protocol::{AgentId, Code, is_valid_name};
use xchange_store::{Org, Store, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::node::{Node, now_ms};

/// An organisation as submitted. Field names are the original ones; `members` lists the
/// agent ids that act for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgEntry {
    /// The key: 1-64 of `[A-Za-z0-9_-]`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub org_id: String,
    /// Its name.
    #[serde(default)]
    pub org_name: String,
    /// What it does.
    #[serde(default)]
    pub org_description: String,
    /// `org_name:org_spec_id` in the original registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_uri: Option<String>,
    /// The spec it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_spec_id: Option<String>,
    /// Where its own services answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_service_gateway_url: Option<String>,
    /// Its local database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_local_db_url: Option<String>,
    /// Its asset registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_asset_registry_id: Option<String>,
    /// Groups it belongs to.
    #[serde(default)]
    pub org_group_ids: Vec<String>,
    /// Tags, searchable.
    #[serde(default)]
    pub org_tags: Vec<String>,
    /// Named URLs (any JSON; kept).
    #[serde(default)]
    pub org_url_map: Value,
    /// Anything else (any JSON).
    #[serde(default)]
    pub org_metadata: Value,
    /// Its spec's data (any JSON; kept).
    #[serde(default)]
    pub org_spec_data: Value,
    /// The agents that act for it (agent ids: 52 characters of lower-case base32hex, the
    /// Ed25519 public key).
    #[serde(default)]
    #[schema(schema_with = members_schema)]
    pub members: Vec<String>,
}

/// `members`: agent ids. The last of an id's 52 base32hex characters carries one bit of
/// the 32-byte key and four zero bits, hence `0` or `g`.
fn members_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let id = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[0-9a-v]{51}[0g]$"));
    ArrayBuilder::new()
        .items(id)
        .description(Some(
            "The agents that act for it (agent ids: 52 characters of lower-case base32hex, the \
             Ed25519 public key).",
        ))
        .build()
}

/// An organisation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    /// The organisation.
    #[schema(value_type = Object)]
    pub org: Value,
    /// Incremented by every change.
    pub version: i64,
}

impl From<Org> for OrgView {
    fn from(org: Org) -> Self {
        Self { org: org.document, version: org.version }
    }
}

/// A subscription as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// The task database.
    pub taskdb: String,
    /// An agent id or an organisation id.
    pub subject_id: String,
    /// When it was made (Unix ms).
    pub created_ms: i64,
}

impl From<xchange_store::Subscription> for SubscriptionView {
    fn from(s: xchange_store::Subscription) -> Self {
        Self { taskdb: s.taskdb, subject_id: s.subject_id, created_ms: s.created_ms }
    }
}

impl OrgEntry {
    fn check(&self) -> ApiResult<()> {
        if !is_valid_name(&self.org_id) {
            return Err(ApiError::schema("org_id must be 1-64 of [A-Za-z0-9_-]").at("org_id"));
        }
        if let Some(i) = self.members.iter().position(|m| m.parse::<AgentId>().is_err()) {
            return Err(ApiError::schema("a member must be an agent id").at(format!("members[{i}]")));
        }
        Ok(())
    }
}

impl<S: Store + Clone> Node<S> {
    /// Creates (`Some(0)`) or replaces an organisation.
    pub async fn put_org(&self, entry: OrgEntry, expected_version: Option<i64>) -> ApiResult<OrgView> {
        entry.check()?;
        let doc = serde_json::to_value(&entry).map_err(|e| ApiError::invalid(e.to_string()))?;
        match self.store.put_org(&entry.org_id, doc, expected_version, now_ms() as i64).await {
            Ok(org) => Ok(org.into()),
            Err(StoreError::StaleVersion { .. }) if expected_version == Some(0) => {
                Err(ApiError::new(Code::Conflict, format!("organisation {:?} already exists", entry.org_id))
                    .at("org_id"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One organisation.
    pub async fn get_org(&self, id: &str) -> ApiResult<OrgView> {
        match self.store.get_org(id).await {
            Ok(org) => Ok(org.into()),
            Err(StoreError::NotFound { .. }) => Err(ApiError::not_found("organisation", id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Subscribes an agent or an organisation to a registered task database; returns
    /// whether the subscription is new.
    pub async fn subscribe(&self, taskdb: &str, subject: &str) -> ApiResult<bool> {
        self.get_taskdb(taskdb).await?;
        let is_agent = subject.parse::<AgentId>().is_ok();
        if !is_agent {
            self.get_org(subject).await.map_err(|e| e.at("subject_id"))?;
        }
        let new = self.store.subscribe(taskdb, subject, now_ms() as i64).await?;
        self.views.forget_all();
        Ok(new)
    }

    /// The agents that may run a private database's jobs: its subscribed agents and the
    /// members of its subscribed organisations.
    pub(crate) async fn members_of(&self, taskdb: &str) -> ApiResult<BTreeSet<String>> {
        let mut members = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.subscribers(taskdb, after.as_deref(), 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.subject_id.clone());
            for sub in page {
                if sub.subject_id.parse::<AgentId>().is_ok() {
                    members.insert(sub.subject_id);
                } else if let Ok(org) = self.store.get_org(&sub.subject_id).await {
                    members.extend(org.members().map(str::to_owned));
                }
            }
        }
        Ok(members)
    }

    /// For a job of a private database: the connected member offering `capability` at
    /// the lowest price (ties by id), to award it directly; refused with 5024 when none is
    /// connected.
    pub(crate) async fn private_contractor(&self, taskdb: &str, capability: &str) -> ApiResult<AgentId> {
        let members = self.members_of(taskdb).await?;
        let best = self
            .agents
            .list()
            .into_iter()
            .filter(|a| a.connected && members.contains(&a.id))
            .filter(|a| a.card["capabilities"].as_array().is_some_and(|c| c.iter().any(|x| x == capability)))
            .min_by_key(|a| (a.card["price_per_unit"].as_u64().unwrap_or(u64::MAX), a.id.clone()));
        match best.and_then(|a| a.id.parse().ok()) {
            Some(id) => Ok(id),
            None => Err(ApiError::new(
                Code::NoEligibleContractor,
                format!("no connected member of private task database {taskdb:?} offers {capability:?}"),
            )
            .at("task_db_id")),
        }
    }
}

impl<S: Store + Clone> Node<S> {
    /// The contractor a job must be directed to: a member, when its task database is
    /// private or the job itself is; `None` for public jobs, which are announced.
    pub(crate) async fn directed_contractor(
        &self,
        taskdb: &str,
        doc: &crate::job::JobDocument,
    ) -> ApiResult<Option<AgentId>> {
        let public_job = doc.visibility == crate::job::Visibility::Public;
        // The global database is public (it cannot be made private): no read on the hot path.
        if public_job && taskdb == xchange_protocol::GLOBAL_POOL {
            return Ok(None);
        }
        let private_db = match self.store.get_taskdb(taskdb).await {
            Ok(db) => crate::routing::is_private(&db.document),
            Err(StoreError::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if !private_db && public_job {
            return Ok(None);
        }
        self.private_contractor(taskdb, &doc.capability).await.map(Some)
    }
}
