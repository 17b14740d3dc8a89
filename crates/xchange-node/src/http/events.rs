//! Server-sent events from the outbox: every job transition, in commit order, resumable
//! from the last event id and filterable with the filter language.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::Stream;
use serde::Deserialize;
use utoipa::IntoParams;
use xchange_filter::Filter;
use xchange_protocol::Code;
use xchange_store::{Event, Store};

use crate::auth::{Caller, Scope};
use crate::body::{StrictPath, StrictQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::node::Node;
use crate::visibility::Hidden;

/// How often a stream looks for events committed by other nodes sharing the store.
const POLL: Duration = Duration::from_secs(1);
const BATCH: u32 = 256;
/// How often a stream checks its caller again: a revoked key ends the stream, and a
/// membership gained or lost changes what it shows, within this time.
const RECHECK: Duration = Duration::from_secs(5);

/// Where a stream starts and what it keeps.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Start after this event id (the `Last-Event-ID` header wins); default: only new
    /// events.
    pub after: Option<i64>,
    /// A Mongo-style filter (JSON) over `{id, job_id, kind, payload, at_ms}`, e.g.
    /// `{"kind": "job_notification", "payload.state": "completed"}`.
    pub filter: Option<String>,
}

/// Every job event: `job_posting` when a job is accepted, `job_notification` at each
/// later transition (`payload.state` says which). Each SSE message has the event id as
/// its `id` and the kind as its `event`.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(StreamQuery),
    responses((status = 200, description = "text/event-stream of events", content_type = "text/event-stream"),
        (status = "4XX", body = ErrorBody)))]
pub async fn stream<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    StrictQuery(q): StrictQuery<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let filter = match q.filter.as_deref() {
        None => None,
        Some(text) => {
            let value = serde_json::from_str(text)
                .map_err(|e| ApiError::schema(format!("filter is not JSON: {e}")).at("filter"))?;
            let limits = node.config.filter_limits();
            Some(Filter::parse_with(&value, &limits).map_err(|e| ApiError::filter(&e, "filter"))?)
        }
    };
    let after = match (last_event_id(&headers)?, q.after) {
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => node.store.last_event_id().await?,
    };
    let caller = caller.map(|Extension(c)| c);
    let hidden = node.hidden_from(caller.as_ref()).await?;
    Ok(open(node, after, Selection { filter, job: None, hidden, caller }))
}

/// One job's events from its `job_posting` on; the stream ends after its terminal state.
/// A job this node forwarded to the node owning its task database is redirected there.
#[utoipa::path(get, path = "/v1/jobs/{job_id}/events", tag = "jobs",
    params(("job_id" = String, Path, description = "the job id: 1-128 characters, none a control character or `/`",
        min_length = 1, max_length = 128, pattern = r"^[^/\x00-\x1f\x7f-\x9f]*$")),
    responses((status = 200, description = "text/event-stream of the job's events", content_type = "text/event-stream"),
        (status = 307, description = "a forwarded job: its events are on its owner node"),
        (status = "4XX", body = ErrorBody)))]
pub async fn job_stream<S: Store + Clone>(
    State(node): State<Arc<Node<S>>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    StrictPath(job_id): StrictPath<String>,
) -> ApiResult<Response> {
    let hidden = node.hidden_from(caller.as_deref()).await?;
    if let Err(e) = node.visible_job(&job_id, &hidden).await {
        return match node.forwarded_to(&job_id).await? {
            Some(owner_url) if e.code == Code::NotFound => {
                Ok(Redirect::temporary(&format!("{owner_url}/v1/jobs/{job_id}/events")).into_response())
            }
            _ => Err(e),
        };
    }
    let after = last_event_id(&headers)?.unwrap_or(0);
    let caller = caller.map(|Extension(c)| c);
    Ok(open(node, after, Selection { filter: None, job: Some(job_id), hidden, caller }).into_response())
}

fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    headers
        .get("last-event-id")
        .map(|v| {
            v.to_str().ok().and_then(|s| s.trim().parse::<i64>().ok()).ok_or_else(|| {
                ApiError::invalid("Last-Event-ID must be an event id (an integer)").at("Last-Event-ID")
            })
        })
        .transpose()
}

struct Selection {
    filter: Option<Filter>,
    job: Option<String>,
    /// The private databases the caller may not see, as of the last check.
    hidden: Hidden,
    /// Who reads the stream (none with authentication off), checked again every
    /// [`RECHECK`].
    caller: Option<Caller>,
}

impl Selection {
    fn keeps(&self, event: &Event) -> bool {
        if self.job.as_deref().is_some_and(|j| j != event.job_id) {
            return false;
        }
        // A private job's events say so: `visibility` on its notifications, its document
        // on its posting.
        let private =
            event.payload["visibility"] == "private" || event.payload["document"]["visibility"] == "private";
        if event.payload["taskdb"].as_str().is_some_and(|t| self.hidden.hides_job(t, private)) {
            return false;
        }
        self.filter.as_ref().is_none_or(|f| f.matches(&serde_json::to_value(event).unwrap_or_default()))
    }

    /// Whether the stream is done after `event`: a job stream ends with its job.
    fn ends_with(&self, event: &Event) -> bool {
        self.job.is_some()
            && event.kind == crate::node::JOB_NOTIFICATION
            && event.payload["state"].as_str().is_some_and(|s| {
                s.parse::<xchange_store::JobState>().is_ok_and(xchange_store::JobState::is_terminal)
            })
    }
}

struct Cursor<S> {
    node: Arc<Node<S>>,
    after: i64,
    selection: Selection,
    ready: VecDeque<Event>,
    wake: tokio::sync::watch::Receiver<i64>,
    closing: tokio::sync::watch::Receiver<bool>,
    done: bool,
    checked: tokio::time::Instant,
}

fn open<S: Store + Clone>(
    node: Arc<Node<S>>,
    after: i64,
    selection: Selection,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    node.metrics.event_streams.fetch_add(1, Relaxed);
    let wake = node.last_event.subscribe();
    let closing = node.closing.subscribe();
    let checked = tokio::time::Instant::now();
    let cursor =
        Cursor { node, after, selection, ready: VecDeque::new(), wake, closing, done: false, checked };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        let event = c.next().await?;
        let sse = SseEvent::default()
            .id(event.id.to_string())
            .event(event.kind.clone())
            .json_data(&event)
            .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"));
        Some((Ok(sse), c))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

impl<S: Store + Clone> Cursor<S> {
    /// Authenticates the caller again and works out its view anew; false when the key no
    /// longer holds (revoked, or its scope taken away): the stream ends.
    async fn recheck(&mut self) -> bool {
        self.checked = tokio::time::Instant::now();
        let Some(caller) = &self.selection.caller else { return true };
        let again = match self.node.authenticate(Some(caller.credential.expose())).await {
            Ok(again) if again.may(Scope::Read) => again,
            Ok(_) => return false,
            Err(e) if e.code == Code::Unauthenticated => return false,
            // The store is down for a moment: keep the view it had.
            Err(_) => return true,
        };
        match self.node.hidden_from(Some(&again)).await {
            Ok(hidden) => self.selection.hidden = hidden,
            Err(e) => tracing::warn!(error = %e, "event stream cannot check its caller's view"),
        }
        self.selection.caller = Some(again);
        true
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.done || *self.closing.borrow() {
                return None;
            }
            if let Some(event) = self.ready.pop_front() {
                self.done = self.selection.ends_with(&event);
                return Some(event);
            }
            if self.checked.elapsed() >= RECHECK && !self.recheck().await {
                return None;
            }
            self.wake.borrow_and_update();
            match self.node.store.events_after(self.after, BATCH).await {
                Ok(batch) if !batch.is_empty() => {
                    self.after = batch.last().map_or(self.after, |e| e.id);
                    self.ready.extend(batch.into_iter().filter(|e| self.selection.keeps(e)));
                }
                Ok(_) => {
                    tokio::select! {
                        woken = tokio::time::timeout(POLL, self.wake.changed()) => {
                            if let Ok(Err(_)) = woken {
                                // The node is gone; poll the store rather than spin.
                                tokio::time::sleep(POLL).await;
                            }
                        }
                        _ = self.closing.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event stream cannot read the outbox");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }
}
