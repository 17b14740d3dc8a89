//! `/v1/jobs`: validate, submit, get, list, query, cancel.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use xchange_protocol::Code;
use xchange_store::Store;

use crate::auth::{Caller, credential_of};
use crate::body::{OrDefault, Strict, StrictPath, StrictQuery};
use crate::error::{ApiResult, ErrorBody};
use crate::http::page::{Page, QueryRequest};
use crate::job::{JobDocument, JobView};
use crate::node::{Node, now_ms};
use crate::routing::Routed;

/// The answer of a validation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validated {
    /// Always true: a document that fails is answered with an error.
    pub valid: bool,
    /// Where the job would go, and why.
    pub routing: Routed,
}

/// Checks a job document as a submission would, without storing or running it.
#[utoipa::path(post, path = "/v1/jobs/validate", tag = "jobs", request_body = JobDocument,
    responses((status = 200, body = Validated), (status = "4XX", body = ErrorBody)))]
pub async fn validate<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    Strict(raw): Strict<Value>,
) -> ApiResult<Json<Validated>> {
    Ok(Json(Validated { valid: true, routing: checked_route(&node, raw).await? }))
}

/// Explains where a job would go: the task database, how it was chosen, and for each
/// routing rule whether it matched and why. Nothing is stored.
#[utoipa::path(post, path = "/v1/jobs/explain", tag = "jobs", request_body = JobDocument,
    responses((status = 200, body = Routed), (status = "4XX", body = ErrorBody)))]
pub async fn explain<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    Strict(raw): Strict<Value>,
) -> ApiResult<Json<Routed>> {
    Ok(Json(checked_route(&node, raw).await?))
}

async fn checked_route<S: Store + Clone>(node: &Node<S>, raw: Value) -> ApiResult<Routed> {
    let mut doc: JobDocument = crate::body::from_value(raw.clone())?;
    doc.check(now_ms())?;
    crate::validate::job_input(&node.store, &doc, &node.config.filter_limits()).await?;
    node.route(&mut doc, &raw).await
}

/// Submits a job. 201 once it is durable; the same `job_id` with the same body again
/// answers 200 with the job as it is now; with another body, 409 `conflict`. A private job
/// (or a job of a private task database) that no connected member can run is refused with
/// 503 `no_eligible_contractor` (5024) and not stored: it may be sent again once one is.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = JobDocument,
    responses((status = 201, body = JobView), (status = 200, description = "a replay", body = JobView),
        (status = "4XX", body = ErrorBody),
        (status = 503, description = "no_eligible_contractor (5024): a private job and no connected \
            member to run it; or unavailable (5039): the store does not answer", body = ErrorBody)))]
pub async fn submit<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    caller: Option<Extension<Caller>>,
    Strict(raw): Strict<Value>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    if let Some(owner) = node.forward_target(&raw).await? {
        let credential = credential_of(caller.as_deref());
        let (status, job) = node.forward_job(raw, &owner, credential).await?;
        return Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), Json(job)));
    }
    let hidden = node.hidden_from(caller.as_deref()).await?;
    let accepted = node.submit(raw, &hidden).await?;
    let status = if accepted.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(accepted.job.into())))
}

/// One job: its state, document, result and reason.
#[utoipa::path(get, path = "/v1/jobs/{job_id}", tag = "jobs",
    params(("job_id" = String, Path, description = "the job id: 1-128 characters, none a control character or `/`",
        min_length = 1, max_length = 128, pattern = r"^[^/\x00-\x1f\x7f-\x9f]*$")),
    responses((status = 200, body = JobView), (status = "4XX", body = ErrorBody)))]
pub async fn get<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    caller: Option<Extension<Caller>>,
    StrictPath(job_id): StrictPath<String>,
) -> ApiResult<Json<JobView>> {
    let hidden = node.hidden_from(caller.as_deref()).await?;
    match node.visible_job(&job_id, &hidden).await {
        Ok(job) => Ok(Json(job.into())),
        // Forwarded to the node that owns its task database: read there.
        Err(e) if e.code == Code::NotFound => {
            let credential = credential_of(caller.as_deref());
            node.forwarded_job(&job_id, credential).await?.map(Json).ok_or(e)
        }
        Err(e) => Err(e),
    }
}

/// Jobs in id order, a page at a time.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, body = Page<JobView>), (status = "4XX", body = ErrorBody)))]
pub async fn list<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    caller: Option<Extension<Caller>>,
    StrictQuery(q): StrictQuery<JobsQuery>,
) -> ApiResult<Json<Page<JobView>>> {
    let request = QueryRequest { filter: None, after: q.after, limit: q.limit };
    let hidden = node.hidden_from(caller.as_deref()).await?;
    Ok(Json(node.query_jobs(q.taskdb.as_deref(), request, &hidden).await?))
}

/// A page of jobs, of one task database or of all. (One struct: each query extractor
/// refuses the parameters it does not know.)
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Items per page (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only jobs of this task database.
    pub taskdb: Option<String>,
}

/// Jobs matching a Mongo-style filter over the job view (the document's fields with
/// `job_id`, `taskdb`, `state`, `created_ms` and `updated_ms` at the top level).
#[utoipa::path(post, path = "/v1/jobs/query", tag = "jobs", request_body = QueryRequest,
    responses((status = 200, body = Page<JobView>), (status = "4XX", body = ErrorBody)))]
pub async fn query<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    caller: Option<Extension<Caller>>,
    Strict(request): Strict<QueryRequest>,
) -> ApiResult<Json<Page<JobView>>> {
    let hidden = node.hidden_from(caller.as_deref()).await?;
    Ok(Json(node.query_jobs(None, request, &hidden).await?))
}

/// Why a job is cancelled.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// In words; kept with the job's last event.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Cancels a job and its subcontracts. A job that already ended is a 409 `conflict`.
#[utoipa::path(post, path = "/v1/jobs/{job_id}/cancel", tag = "jobs",
    params(("job_id" = String, Path, description = "the job id: 1-128 characters, none a control character or `/`",
        min_length = 1, max_length = 128, pattern = r"^[^/\x00-\x1f\x7f-\x9f]*$")), request_body = Option<CancelRequest>,
    responses((status = 202, body = JobView), (status = "4XX", body = ErrorBody)))]
pub async fn cancel<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    caller: Option<Extension<Caller>>,
    StrictPath(job_id): StrictPath<String>,
    OrDefault(body): OrDefault<CancelRequest>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let reason = body.reason.unwrap_or_else(|| "cancelled by request".to_owned());
    let job = node.cancel(&job_id, &reason, credential_of(caller.as_deref())).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}
