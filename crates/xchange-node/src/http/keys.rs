//! `/v1/keys`: the API keys of the HTTP API (admin scope). A new key is shown once, in the
//! answer that creates it; the store keeps its hash.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xchange_store::{ApiKey, Store};

use crate::auth::{Scope, new_key};
use crate::body::{Strict, StrictPath, StrictQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::page::{Page, PageQuery, limit};
use crate::node::{Node, now_ms};
use crate::query::next_cursor;

/// What a new key is for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// The organisation the key acts for.
    pub org_id: String,
    /// What it may do: `submit`, `read`, `admin`.
    pub scopes: Vec<Scope>,
    /// A note for people: who the key was given to.
    #[serde(default)]
    pub label: String,
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The key's id (the part of the key after `xck_` and before its secret).
    pub key_id: String,
    /// The organisation it acts for.
    pub org_id: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// The note.
    pub label: String,
    /// When it was created (Unix ms).
    pub created_ms: i64,
    /// When it was revoked (Unix ms), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            key_id: k.key_id,
            org_id: k.org_id,
            scopes: k.scopes,
            label: k.label,
            created_ms: k.created_ms,
            revoked_ms: k.revoked_ms,
        }
    }
}

/// A key just created, with the key itself: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The whole key, for `Authorization: Bearer ...`: keep it, it is not shown again.
    pub key: String,
    /// The key as it is listed.
    #[serde(flatten)]
    pub view: KeyView,
}

/// Creates an API key for an organisation.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = KeyRequest,
    responses((status = 201, body = CreatedKey), (status = "4XX", body = ErrorBody)))]
pub async fn create<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    Strict(request): Strict<KeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    if request.org_id.is_empty() || request.org_id.len() > 128 || request.org_id.contains('\0') {
        return Err(ApiError::invalid("org_id must be 1-128 characters").at("org_id"));
    }
    if request.scopes.is_empty() {
        return Err(ApiError::invalid("a key needs at least one scope").at("scopes"));
    }
    if request.label.len() > 256 {
        return Err(ApiError::invalid("label must be at most 256 bytes").at("label"));
    }
    let mut scopes = request.scopes;
    scopes.sort_unstable();
    scopes.dedup();
    let (key, record) = new_key(&request.org_id, &scopes, &request.label)?;
    node.store.create_api_key(&record).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, view: record.into() })))
}

/// The API keys, revoked ones included, in id order.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(PageQuery),
    responses((status = 200, body = Page<KeyView>), (status = "4XX", body = ErrorBody)))]
pub async fn list<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictQuery(page): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<KeyView>>> {
    let n = limit(page.limit)?;
    let keys = node.store.list_api_keys(page.after.as_deref(), n).await?;
    let next = next_cursor(&keys, n, |k| &k.key_id);
    Ok(Json(Page { items: keys.into_iter().map(Into::into).collect(), next }))
}

/// Revokes a key: it authenticates nothing from now on (on other nodes within seconds).
#[utoipa::path(delete, path = "/v1/keys/{key_id}", tag = "keys",
    params(("key_id" = String, Path, description = "the key's id")),
    responses((status = 200, body = KeyView), (status = "4XX", body = ErrorBody)))]
pub async fn revoke<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(key_id): StrictPath<String>,
) -> ApiResult<Json<KeyView>> {
    let revoked = node.store.revoke_api_key(&key_id, now_ms() as i64).await?;
    node.keys.forget(&key_id);
    Ok(Json(revoked.into()))
}
