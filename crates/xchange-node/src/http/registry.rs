//! `/v1/taskdbs` (the registry of task databases) and `/v1/templates`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use xchange_protocol::Code;
use xchange_store::{Store, StoreError};

use crate::auth::Caller;
use crate::body::{Strict, StrictPath, StrictQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::federation::FederatedTaskDb;
use crate::http::page::{Page, PageQuery, QueryRequest, limit};
use crate::job::JobView;
use crate::node::{Node, now_ms};
use crate::query::next_cursor;
use crate::taskdb::{TaskDbEntry, TaskDbView};

/// Creates a task database; an existing id is a 409 `conflict`.
#[utoipa::path(post, path = "/v1/taskdbs", tag = "registry", request_body = TaskDbEntry,
    responses((status = 201, body = TaskDbView), (status = "4XX", body = ErrorBody)))]
pub async fn create_taskdb<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    Strict(entry): Strict<TaskDbEntry>,
) -> ApiResult<(StatusCode, Json<TaskDbView>)> {
    Ok((StatusCode::CREATED, Json(node.put_taskdb(entry, Some(0)).await?)))
}

/// Creates or replaces a task database; the id in the body must be the path's.
#[utoipa::path(put, path = "/v1/taskdbs/{id}", tag = "registry", request_body = TaskDbEntry,
    params(("id" = String, Path, description = "task_listing_db_id: 1-64 of [A-Za-z0-9_-]",
        pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = TaskDbView), (status = "4XX", body = ErrorBody)))]
pub async fn put_taskdb<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(id): StrictPath<String>,
    Strict(entry): Strict<TaskDbEntry>,
) -> ApiResult<Json<TaskDbView>> {
    if entry.task_listing_db_id != id {
        return Err(
            ApiError::invalid("task_listing_db_id must be the id in the path").at("task_listing_db_id")
        );
    }
    Ok(Json(node.put_taskdb(entry, None).await?))
}

/// One task database with its performance statistics.
#[utoipa::path(get, path = "/v1/taskdbs/{id}", tag = "registry",
    params(("id" = String, Path, description = "task_listing_db_id")),
    responses((status = 200, body = TaskDbView), (status = "4XX", body = ErrorBody)))]
pub async fn get_taskdb<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(id): StrictPath<String>,
) -> ApiResult<Json<TaskDbView>> {
    Ok(Json(node.get_taskdb(&id).await?))
}

/// Deletes a task database (not `global`). Its jobs stay readable.
#[utoipa::path(delete, path = "/v1/taskdbs/{id}", tag = "registry",
    params(("id" = String, Path, description = "task_listing_db_id")),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn delete_taskdb<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(id): StrictPath<String>,
) -> ApiResult<StatusCode> {
    node.delete_taskdb(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Task databases in id order.
#[utoipa::path(get, path = "/v1/taskdbs", tag = "registry", params(PageQuery),
    responses((status = 200, body = Page<TaskDbView>), (status = "4XX", body = ErrorBody)))]
pub async fn list_taskdbs<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictQuery(page): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<TaskDbView>>> {
    let request = QueryRequest { filter: None, after: page.after, limit: page.limit };
    Ok(Json(node.query_taskdbs(request).await?))
}

/// Searches every node's task databases (the registry shared over the bus; this node's
/// own without a NATS bus) with a filter over the entries; each result names its owner
/// node and the URL it serves the database at.
#[utoipa::path(post, path = "/v1/registry/query", tag = "registry", request_body = QueryRequest,
    responses((status = 200, body = Page<FederatedTaskDb>), (status = "4XX", body = ErrorBody)))]
pub async fn query_federated<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    Strict(request): Strict<QueryRequest>,
) -> ApiResult<Json<Page<FederatedTaskDb>>> {
    Ok(Json(node.query_federated_taskdbs(request).await?))
}

/// Searches the registry with a Mongo-style filter over the entries, e.g.
/// `{"search_metadata.tags": "nlp", "task_db_cluster_id": "eu-1"}`.
#[utoipa::path(post, path = "/v1/taskdbs/query", tag = "registry", request_body = QueryRequest,
    responses((status = 200, body = Page<TaskDbView>), (status = "4XX", body = ErrorBody)))]
pub async fn query_taskdbs<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    Strict(request): Strict<QueryRequest>,
) -> ApiResult<Json<Page<TaskDbView>>> {
    Ok(Json(node.query_taskdbs(request).await?))
}

/// Searches the jobs inside one task database.
#[utoipa::path(post, path = "/v1/taskdbs/{id}/jobs/query", tag = "registry", request_body = QueryRequest,
    params(("id" = String, Path, description = "task_listing_db_id")),
    responses((status = 200, body = Page<JobView>), (status = "4XX", body = ErrorBody)))]
pub async fn query_taskdb_jobs<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    caller: Option<Extension<Caller>>,
    StrictPath(id): StrictPath<String>,
    Strict(request): Strict<QueryRequest>,
) -> ApiResult<Json<Page<JobView>>> {
    node.get_taskdb(&id).await?;
    let hidden = node.hidden_from(caller.as_deref()).await?;
    if hidden.hides(&id) {
        let message = format!("task database {id:?} is private and your organisation is not a member");
        return Err(ApiError::new(Code::Forbidden, message).at("id"));
    }
    Ok(Json(node.query_jobs(Some(&id), request, &hidden).await?))
}

/// A template as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    /// Its name.
    pub name: String,
    /// The JSON Schema that job inputs naming it must match.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// When it was first registered (Unix ms).
    pub created_ms: i64,
}

impl From<xchange_store::Template> for TemplateView {
    fn from(t: xchange_store::Template) -> Self {
        Self { name: t.name, schema: t.schema, created_ms: t.created_ms }
    }
}

/// Registers (or replaces) a template: the body is a JSON Schema, which must compile.
#[utoipa::path(put, path = "/v1/templates/{name}", tag = "templates", request_body = Object,
    params(("name" = String, Path, description = "1-64 of [A-Za-z0-9_-]", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = TemplateView), (status = "4XX", body = ErrorBody)))]
pub async fn put_template<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(name): StrictPath<String>,
    Strict(schema): Strict<Value>,
) -> ApiResult<Json<TemplateView>> {
    if !xchange_protocol::is_valid_name(&name) {
        return Err(ApiError::schema("a template name is 1-64 of [A-Za-z0-9_-]").at("name"));
    }
    crate::validate::compile(&schema, "schema")?;
    Ok(Json(node.store.put_template(&name, schema, now_ms() as i64).await?.into()))
}

/// One template.
#[utoipa::path(get, path = "/v1/templates/{name}", tag = "templates",
    params(("name" = String, Path, description = "the template name")),
    responses((status = 200, body = TemplateView), (status = "4XX", body = ErrorBody)))]
pub async fn get_template<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(name): StrictPath<String>,
) -> ApiResult<Json<TemplateView>> {
    match node.store.get_template(&name).await {
        Ok(t) => Ok(Json(t.into())),
        Err(StoreError::NotFound { .. }) => Err(ApiError::not_found("template", &name)),
        Err(e) => Err(e.into()),
    }
}

/// Templates in name order.
#[utoipa::path(get, path = "/v1/templates", tag = "templates", params(PageQuery),
    responses((status = 200, body = Page<TemplateView>), (status = "4XX", body = ErrorBody)))]
pub async fn list_templates<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictQuery(page): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<TemplateView>>> {
    let n = limit(page.limit)?;
    let items: Vec<TemplateView> =
        node.store.list_templates(page.after.as_deref(), n).await?.into_iter().map(Into::into).collect();
    let next = next_cursor(&items, n, |t| &t.name);
    Ok(Json(Page { items, next }))
}
