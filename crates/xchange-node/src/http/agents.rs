//! `/v1/agents`: the WebSocket where remote agents join the contract net, and the cards of
//! the agents that did.

use std::sync::Arc;

use axum::Json;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt, future};
use xchange_store::Store;
use xchange_ws::{max_frame_bytes, serve_session};

use crate::agents::AgentEntry;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::page::Page;
use crate::node::Node;

/// Opens an agent session: AIXP/1 over WebSocket (challenge, signed hello, welcome 5001,
/// then envelopes both ways; see docs/agents.md).
#[utoipa::path(get, path = "/v1/agents/connect", tag = "agents",
    responses((status = 101, description = "switching to the WebSocket session")))]
pub async fn connect<S: Store + Clone>(ws: WebSocketUpgrade, State(node): State<Arc<Node<S>>>) -> Response {
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

/// Every agent seen since the node started, with its card and status.
#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    responses((status = 200, body = Page<AgentEntry>)))]
pub async fn list<S: Store + Clone>(State(node): State<Arc<Node<S>>>) -> Json<Page<AgentEntry>> {
    Json(Page { items: node.agents.list(), next: None })
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "the agent id")),
    responses((status = 200, body = AgentEntry), (status = 404, body = ErrorBody)))]
pub async fn get<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentEntry>> {
    node.agents.get(&id).map(Json).ok_or_else(|| ApiError::not_found("agent", &id))
}
