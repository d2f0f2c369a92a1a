//! The dev mode: the recent good events and dead letters kept in memory, served at
//! `GET /v1/events` and cleared by `DELETE /v1/events` or `POST /v1/events/reset`.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::server::Shared;
use crate::sink::SinkRecord;

/// Recent records in dev mode.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    pub(crate) good: VecDeque<Value>,
    pub(crate) bad: VecDeque<Value>,
}

pub(crate) fn push_bounded(queue: &mut VecDeque<Value>, line: &[u8], capacity: usize) {
    if let Ok(v) = serde_json::from_slice(line) {
        if queue.len() >= capacity {
            queue.pop_front();
        }
        queue.push_back(v);
    }
}

impl Shared {
    /// Keeps `records` in the dev view's list chosen by `list`, when dev mode is on.
    pub(crate) fn remember_recent<'r>(
        &self,
        records: impl Iterator<Item = &'r SinkRecord>,
        list: impl Fn(&mut Recent) -> &mut VecDeque<Value>,
    ) {
        if let Some(recent) = &self.recent {
            let mut recent = recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for r in records {
                push_bounded(list(&mut recent), &r.line, self.dev_capacity);
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    kind: Option<String>,
    event_id: Option<String>,
    schema: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn dev_events(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<EventsQuery>,
) -> Response {
    let Some(recent) = &shared.recent else {
        return (
            StatusCode::NOT_FOUND,
            "dev mode is off (start the collector with --dev)\n",
        )
            .into_response();
    };
    let recent = recent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let source = match q.kind.as_deref() {
        None | Some("good") => &recent.good,
        Some("bad") => &recent.bad,
        Some(_) => return (StatusCode::BAD_REQUEST, "kind must be good or bad\n").into_response(),
    };
    let event_of = |v: &Value| -> Value {
        // Dead letters hold the event under `event`; good records are the event.
        v.get("event").cloned().unwrap_or_else(|| v.clone())
    };
    let matches: Vec<&Value> = source
        .iter()
        .filter(|v| {
            let e = event_of(v);
            q.event_id
                .as_deref()
                .is_none_or(|id| e.get("event_id").and_then(Value::as_str) == Some(id))
                && q.schema
                    .as_deref()
                    .is_none_or(|s| e.get("schema").and_then(Value::as_str) == Some(s))
        })
        .rev()
        .take(q.limit.unwrap_or(usize::MAX))
        .collect();
    Json(json!({ "count": matches.len(), "events": matches })).into_response()
}

pub(crate) async fn dev_reset(State(shared): State<Arc<Shared>>) -> Response {
    let Some(recent) = &shared.recent else {
        return (
            StatusCode::NOT_FOUND,
            "dev mode is off (start the collector with --dev)\n",
        )
            .into_response();
    };
    *recent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Recent::default();
    (StatusCode::OK, Json(json!({ "reset": true }))).into_response()
}
