//! The HTTP API: routes, the OpenAPI document, Swagger UI, health and metrics, and
//! [`run`], the server's entry point.

pub mod agents;
pub mod events;
pub mod jobs;
pub mod keys;
pub mod orgs;
pub mod page;
pub mod registry;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use tokio::net::TcpListener;
use utoipa::{OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;
use xchange_protocol::Code;
use xchange_store::Store;

use crate::auth::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::node::Node;

/// The OpenAPI 3.1 document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Xchange", description = "An open task exchange for AI agents (AIXP/1).", version = "1"),
    paths(
        jobs::validate, jobs::explain, jobs::submit, jobs::get, jobs::list, jobs::query, jobs::cancel,
        events::stream, events::job_stream,
        registry::create_taskdb, registry::put_taskdb, registry::get_taskdb, registry::delete_taskdb,
        registry::list_taskdbs, registry::query_taskdbs, registry::query_taskdb_jobs, registry::query_federated,
        orgs::create, orgs::put, orgs::get, orgs::delete, orgs::list,
        orgs::subscribe, orgs::unsubscribe, orgs::subscribers,
        registry::put_template, registry::get_template, registry::list_templates,
        agents::list, agents::query, agents::get, agents::connect,
        keys::create, keys::list, keys::revoke,
        healthz, metrics, cluster,
    ),
    components(schemas(ErrorBody, Health)),
    modifiers(&ApiKeySecurity),
    tags(
        (name = "jobs", description = "Submit jobs and follow them to their result."),
        (name = "registry", description = "Task databases and the registry that finds them."),
        (name = "orgs", description = "Organisations and subscriptions to task databases."),
        (name = "templates", description = "Named JSON Schemas that job inputs are checked against."),
        (name = "agents", description = "Agents connected over the WebSocket and their cards."),
        (name = "events", description = "Live events from the outbox, as server-sent events."),
        (name = "keys", description = "API keys of organisations, with scopes (admin)."),
        (name = "system", description = "Health, metrics and the cluster's partitions."),
    )
)]
pub struct ApiDoc;

/// Declares the API keys (`Authorization: Bearer xck_<id>_<secret>`) and, on every
/// operation, the scope it needs, from [`required_scope`] itself so that the document and
/// the middleware cannot disagree. OpenAPI 3.1 lets a non-OAuth requirement list roles:
/// `{"api_key": ["read"]}` is a key with the read scope (or admin). Open operations carry
/// the empty requirement `{}`.
struct ApiKeySecurity;

impl utoipa::Modify for ApiKeySecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("xck_<id>_<secret>".into());
        scheme.description = Some(
            "An API key of an organisation (`xchange keys create`); scopes submit, read, admin. \
             Without one: 401 unauthenticated (5004); without the scope: 403 forbidden (5007)."
                .into(),
        );
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(API_KEY_SCHEME, SecurityScheme::Http(scheme));
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let requirement = match required_scope(&method, path) {
                    Some(scope) => SecurityRequirement::new(API_KEY_SCHEME, [scope.as_str()]),
                    None => SecurityRequirement::default(),
                };
                operation.security = Some(vec![requirement]);
            }
        }
    }
}

/// The security scheme's name in the OpenAPI document.
const API_KEY_SCHEME: &str = "api_key";

/// The whole API over `node`.
pub fn router<S: Store + Clone>(node: Arc<Node<S>>) -> Router {
    let limit = node.config.max_body_bytes;
    let api = Router::new()
        .route("/v1/jobs", post(jobs::submit::<S>).get(jobs::list::<S>))
        .route("/v1/jobs/validate", post(jobs::validate::<S>))
        .route("/v1/jobs/explain", post(jobs::explain::<S>))
        .route("/v1/jobs/query", post(jobs::query::<S>))
        .route("/v1/jobs/{job_id}", get(jobs::get::<S>))
        .route("/v1/jobs/{job_id}/cancel", post(jobs::cancel::<S>))
        .route("/v1/jobs/{job_id}/events", get(events::job_stream::<S>))
        .route("/v1/events", get(events::stream::<S>))
        .route("/v1/taskdbs", post(registry::create_taskdb::<S>).get(registry::list_taskdbs::<S>))
        .route("/v1/taskdbs/query", post(registry::query_taskdbs::<S>))
        .route("/v1/registry/query", post(registry::query_federated::<S>))
        .route(
            "/v1/taskdbs/{id}",
            get(registry::get_taskdb::<S>)
                .put(registry::put_taskdb::<S>)
                .delete(registry::delete_taskdb::<S>),
        )
        .route("/v1/taskdbs/{id}/jobs/query", post(registry::query_taskdb_jobs::<S>))
        .route("/v1/taskdbs/{id}/subscribers", get(orgs::subscribers::<S>))
        .route(
            "/v1/taskdbs/{id}/subscribers/{subject_id}",
            put(orgs::subscribe::<S>).delete(orgs::unsubscribe::<S>),
        )
        .route("/v1/orgs", post(orgs::create::<S>).get(orgs::list::<S>))
        .route("/v1/orgs/{org_id}", get(orgs::get::<S>).put(orgs::put::<S>).delete(orgs::delete::<S>))
        .route("/v1/templates", get(registry::list_templates::<S>))
        .route("/v1/templates/{name}", get(registry::get_template::<S>).put(registry::put_template::<S>))
        .route("/v1/agents", get(agents::list::<S>))
        .route("/v1/agents/query", post(agents::query::<S>))
        .route(xchange_ws::CONNECT_PATH, get(agents::connect::<S>))
        .route("/v1/agents/{id}", get(agents::get::<S>))
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/v1/cluster", get(cluster::<S>))
        .route("/v1/keys", post(keys::create::<S>).get(keys::list::<S>))
        .route("/v1/keys/{key_id}", axum::routing::delete(keys::revoke::<S>))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(node.clone(), require_key::<S>))
        .layer(middleware::from_fn_with_state(node.clone(), count_errors::<S>))
        .with_state(node);
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}

/// Serves `router(node)` on `listener` until `shutdown` resolves, then finishes the
/// requests in flight (mini-redis' `run(listener, shutdown)`: tests bind port 0).
pub async fn run<S: Store + Clone>(
    listener: TcpListener,
    node: Arc<Node<S>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(node.clone());
    let shutdown = async move {
        shutdown.await;
        node.begin_shutdown();
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn no_route() -> ApiError {
    ApiError::new(Code::NotFound, "no such endpoint; see /openapi.json")
}

async fn no_method() -> ApiError {
    ApiError::invalid("this endpoint does not take that method; see /openapi.json")
}

/// With `auth` on, every `/v1/` call must carry an API key with the scope the call needs
/// (`Authorization: Bearer xck_...`): else 401 `unauthenticated` (5004), or 403 `forbidden`
/// (5007) for a key without the scope. Health, metrics and the API documents stay open;
/// agents authenticate on their WebSocket (a signed hello). The caller goes into the
/// request's extensions for the handlers.
async fn require_key<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(scope) = required_scope(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    if !node.config.auth {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = match node.authenticate(given).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    if let Err(refusal) = node.limits.check(&caller.key_id) {
        return refusal.into_response();
    }
    if !caller.may(scope) {
        let message = format!("this API key may not do that: it needs the {} scope", scope.as_str());
        return ApiError::new(Code::Forbidden, message).at("Authorization").into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The scope a call needs; `None` for what stays open.
fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    if !path.starts_with("/v1/") || path == xchange_ws::CONNECT_PATH {
        return None;
    }
    // A query is a POST that only reads.
    let reads = method == Method::GET || method == Method::HEAD || path.ends_with("/query");
    Some(if path == "/v1/keys" || path.starts_with("/v1/keys/") {
        Scope::Admin
    } else if reads {
        Scope::Read
    } else if path.starts_with("/v1/jobs") {
        Scope::Submit
    } else {
        Scope::Admin
    })
}

async fn count_errors<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() {
        node.metrics.http_4xx.fetch_add(1, Relaxed);
    } else if status.is_server_error() {
        node.metrics.http_5xx.fetch_add(1, Relaxed);
    }
    response
}

/// What `/healthz` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when the store does not answer.
    pub status: String,
    /// Whether the store's commits survive a power loss (WAL + synchronous=FULL, or
    /// synchronous_commit on).
    pub store_durable: bool,
}

/// Whether the node and its store answer.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz<S: Store + Clone>(State(node): State<Arc<Node<S>>>) -> (StatusCode, Json<Health>) {
    match node.store.durability_settings().await {
        Ok(d) => (StatusCode::OK, Json(Health { status: "ok".into(), store_durable: d.is_durable() })),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store does not answer");
            let health = Health { status: "unavailable".into(), store_durable: false };
            (StatusCode::SERVICE_UNAVAILABLE, Json(health))
        }
    }
}

/// Counters in Prometheus' text format.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics<S: Store + Clone>(State(node): State<Arc<Node<S>>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], node.metrics_text().await)
}

/// The nodes that share this node's store, the partitions of the jobs, and who leases
/// each (see docs/deployment.md).
#[utoipa::path(get, path = "/v1/cluster", tag = "system",
    responses((status = 200, body = crate::ClusterStatus), (status = "4XX", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn cluster<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
) -> Result<Json<crate::ClusterStatus>, ApiError> {
    Ok(Json(node.cluster_status().await?))
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    #[test]
    fn each_call_needs_its_scope() {
        let scope = |m: Method, p: &str| required_scope(&m, p);
        assert_eq!(scope(Method::GET, "/healthz"), None);
        assert_eq!(scope(Method::GET, "/metrics"), None);
        assert_eq!(scope(Method::GET, xchange_ws::CONNECT_PATH), None);
        assert_eq!(scope(Method::POST, "/v1/jobs"), Some(Scope::Submit));
        assert_eq!(scope(Method::POST, "/v1/jobs/j1/cancel"), Some(Scope::Submit));
        assert_eq!(scope(Method::POST, "/v1/jobs/query"), Some(Scope::Read));
        assert_eq!(scope(Method::GET, "/v1/jobs/j1/events"), Some(Scope::Read));
        assert_eq!(scope(Method::POST, "/v1/registry/query"), Some(Scope::Read));
        assert_eq!(scope(Method::POST, "/v1/taskdbs"), Some(Scope::Admin));
        assert_eq!(scope(Method::PUT, "/v1/taskdbs/db/subscribers/o"), Some(Scope::Admin));
        assert_eq!(scope(Method::GET, "/v1/keys"), Some(Scope::Admin));
        assert_eq!(scope(Method::DELETE, "/v1/keys/k"), Some(Scope::Admin));
        assert_eq!(scope(Method::GET, "/v1/cluster"), Some(Scope::Read));
    }
}
