//! `/v1/orgs` and the subscriptions of agents and organisations to task databases.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use xchange_store::{Store, StoreError};

use crate::body::{Strict, StrictPath, StrictQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::page::{Page, PageQuery, limit};
use crate::node::Node;
use crate::orgs::{OrgEntry, OrgView, SubscriptionView};
use crate::query::next_cursor;

/// Creates an organisation; an existing id is a 409 `conflict`.
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = OrgEntry,
    responses((status = 201, body = OrgView), (status = "4XX", body = ErrorBody)))]
pub async fn create<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    Strict(entry): Strict<OrgEntry>,
) -> ApiResult<(StatusCode, Json<OrgView>)> {
    Ok((StatusCode::CREATED, Json(node.put_org(entry, Some(0)).await?)))
}

/// Replaces an organisation (its members included); the id in the body must be the path's.
#[utoipa::path(put, path = "/v1/orgs/{org_id}", tag = "orgs", request_body = OrgEntry,
    params(("org_id" = String, Path, description = "the organisation id: 1-64 of [A-Za-z0-9_-]",
        pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = OrgView), (status = "4XX", body = ErrorBody)))]
pub async fn put<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(id): StrictPath<String>,
    Strict(entry): Strict<OrgEntry>,
) -> ApiResult<Json<OrgView>> {
    if entry.org_id != id {
        return Err(ApiError::invalid("org_id must be the id in the path").at("org_id"));
    }
    Ok(Json(node.put_org(entry, None).await?))
}

/// One organisation.
#[utoipa::path(get, path = "/v1/orgs/{org_id}", tag = "orgs",
    params(("org_id" = String, Path, description = "the organisation id")),
    responses((status = 200, body = OrgView), (status = "4XX", body = ErrorBody)))]
pub async fn get<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(id): StrictPath<String>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(node.get_org(&id).await?))
}

/// Deletes an organisation.
#[utoipa::path(delete, path = "/v1/orgs/{org_id}", tag = "orgs",
    params(("org_id" = String, Path, description = "the organisation id")),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn delete<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(id): StrictPath<String>,
) -> ApiResult<StatusCode> {
    let deleted = node.store.delete_org(&id).await;
    node.views.forget_all();
    match deleted {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound { .. }) => Err(ApiError::not_found("organisation", &id)),
        Err(e) => Err(e.into()),
    }
}

/// Organisations in id order.
#[utoipa::path(get, path = "/v1/orgs", tag = "orgs", params(PageQuery),
    responses((status = 200, body = Page<OrgView>), (status = "4XX", body = ErrorBody)))]
pub async fn list<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictQuery(page): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<OrgView>>> {
    let n = limit(page.limit)?;
    let orgs = node.store.list_orgs(page.after.as_deref(), n).await?;
    let next = next_cursor(&orgs, n, |o| &o.org_id);
    Ok(Json(Page { items: orgs.into_iter().map(Into::into).collect(), next }))
}

/// Subscribes an agent (by id) or an organisation to a task database: 201 when new, 200
/// when it already was. A private database's jobs go to its subscribers only.
#[utoipa::path(put, path = "/v1/taskdbs/{id}/subscribers/{subject_id}", tag = "orgs",
    params(("id" = String, Path, description = "task_listing_db_id"),
        ("subject_id" = String, Path, description = "an agent id or an organisation id")),
    responses((status = 201), (status = 200), (status = "4XX", body = ErrorBody)))]
pub async fn subscribe<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath((id, subject)): StrictPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let new = node.subscribe(&id, &subject).await?;
    Ok(if new { StatusCode::CREATED } else { StatusCode::OK })
}

/// Ends a subscription.
#[utoipa::path(delete, path = "/v1/taskdbs/{id}/subscribers/{subject_id}", tag = "orgs",
    params(("id" = String, Path, description = "task_listing_db_id"),
        ("subject_id" = String, Path, description = "an agent id or an organisation id")),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn unsubscribe<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath((id, subject)): StrictPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let removed = node.store.unsubscribe(&id, &subject).await?;
    node.views.forget_all();
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("subscription", &format!("{id}/{subject}")))
    }
}

/// The subscribers of a task database, in subject order.
#[utoipa::path(get, path = "/v1/taskdbs/{id}/subscribers", tag = "orgs", params(PageQuery,
        ("id" = String, Path, description = "task_listing_db_id")),
    responses((status = 200, body = Page<SubscriptionView>), (status = "4XX", body = ErrorBody)))]
pub async fn subscribers<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(id): StrictPath<String>,
    StrictQuery(page): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<SubscriptionView>>> {
    let n = limit(page.limit)?;
    let subs = node.store.subscribers(&id, page.after.as_deref(), n).await?;
    let next = next_cursor(&subs, n, |s| &s.subject_id);
    Ok(Json(Page { items: subs.into_iter().map(Into::into).collect(), next }))
}
