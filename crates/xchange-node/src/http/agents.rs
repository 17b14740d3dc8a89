//! `/v1/agents`: the WebSocket where remote agents join the contract net, and the cards of
//! the agents that did.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt, future};
use xchange_store::{Store, StoreError};
use xchange_ws::{max_frame_bytes, serve_session};

use crate::agents::AgentEntry;
use crate::body::{Strict, StrictPath, StrictQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::page::{Page, PageQuery, QueryRequest, limit};
use crate::node::Node;
use crate::query::{next_cursor, parse_filter};

/// Opens an agent session: AIXP/1 over WebSocket (challenge, signed hello, welcome 5001,
/// then envelopes both ways; see docs/agents.md).
/// A request that is not a WebSocket upgrade is refused with 400 `invalid_request` naming
/// the header at fault.
#[utoipa::path(get, path = "/v1/agents/connect", tag = "agents",
    responses((status = 101, description = "switching to the WebSocket session"),
        (status = "4XX", description = "not a WebSocket upgrade", body = ErrorBody)))]
pub async fn connect<S: Store + Clone>(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(node): State<Arc<Node<S>>>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return not_an_upgrade(&rejection).into_response(),
    };
    let gateway = node.gateway.clone();
    let max = max_frame_bytes(&gateway.config().limits);
    ws.max_message_size(max).max_frame_size(max).on_upgrade(move |socket| async move {
        let frames = socket
            .with(|text: String| future::ready(Ok::<_, axum::Error>(Message::Text(text.into()))))
            .filter_map(|message| {
                future::ready(match message {
                    Ok(Message::Text(text)) => Some(Ok(text.as_str().to_owned())),
                    Ok(Message::Binary(bytes)) => Some(Ok(String::from_utf8_lossy(&bytes).into_owned())),
                    Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => None,
                    Err(e) => Some(Err(e)),
                })
            });
        serve_session(Box::pin(frames), &gateway).await;
    })
}

/// axum's refusal of an upgrade, as an error of the table rather than plain text.
fn not_an_upgrade(rejection: &WebSocketUpgradeRejection) -> ApiError {
    let header = match rejection {
        WebSocketUpgradeRejection::InvalidConnectionHeader(_) => "Connection",
        WebSocketUpgradeRejection::InvalidUpgradeHeader(_) => "Upgrade",
        WebSocketUpgradeRejection::InvalidWebSocketVersionHeader(_) => "Sec-WebSocket-Version",
        WebSocketUpgradeRejection::WebSocketKeyHeaderMissing(_) => "Sec-WebSocket-Key",
        _ => "",
    };
    let message = format!("not a WebSocket upgrade: {}", rejection.body_text().to_lowercase());
    ApiError::invalid(message).at(header)
}

/// Agents whose cards the node stored, in id order, with their status since the start.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(PageQuery),
    responses((status = 200, body = Page<AgentEntry>), (status = "4XX", body = ErrorBody)))]
pub async fn list<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictQuery(page): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<AgentEntry>>> {
    let request = QueryRequest { filter: None, after: page.after, limit: page.limit };
    Ok(Json(node.query_agents(request).await?))
}

/// Agents whose card matches a Mongo-style filter, e.g. `{"capabilities": "echo"}`.
#[utoipa::path(post, path = "/v1/agents/query", tag = "agents", request_body = QueryRequest,
    responses((status = 200, body = Page<AgentEntry>), (status = "4XX", body = ErrorBody)))]
pub async fn query<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    Strict(request): Strict<QueryRequest>,
) -> ApiResult<Json<Page<AgentEntry>>> {
    Ok(Json(node.query_agents(request).await?))
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "the agent id")),
    responses((status = 200, body = AgentEntry), (status = "4XX", body = ErrorBody)))]
pub async fn get<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    StrictPath(id): StrictPath<String>,
) -> ApiResult<Json<AgentEntry>> {
    match node.store.get_agent_card(&id).await {
        Ok(card) => Ok(Json(node.agents.entry(&id, card.card))),
        Err(StoreError::NotFound { .. }) => Err(ApiError::not_found("agent", &id)),
        Err(e) => Err(e.into()),
    }
}

impl<S: Store + Clone> Node<S> {
    async fn query_agents(&self, request: QueryRequest) -> ApiResult<Page<AgentEntry>> {
        let limit = limit(request.limit)?;
        let filter = parse_filter(request.filter.as_ref(), "filter", &self.config.filter_limits())?;
        let after = request.after.as_deref();
        let cards = match &filter {
            Some(f) => self.store.find_agent_cards(f, after, limit).await?,
            None => self.store.list_agent_cards(after, limit).await?,
        };
        let next = next_cursor(&cards, limit, |c| &c.agent_id);
        let items = cards.into_iter().map(|c| self.agents.entry(&c.agent_id, c.card)).collect();
        Ok(Page { items, next })
    }
}
