//! The worker's HTTP API: `GET /v1/uniques`, `GET /healthz`, `GET /metrics`.
//!
//! `GET /v1/uniques?schema=S&window=5m` — unique users of schema `S` (`vendor/name`);
//! `…&by=D&value=V` — of those whose dimension `D` is `V`; `…&by=D&top=N` — the `N` values of
//! `D` with the most unique users. Answers come from the state topic (every partition's
//! sketches, whoever published them), not from this worker's partitions alone, and name the
//! window, the partitions whose sketches took part, each partition's progress and the
//! estimator's error.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::defaults::{DEFAULT_QUERY_WINDOW, MAX_TOP, SKETCH_BUCKET_SECONDS, SKETCH_MAX_MINUTES};
use crate::state::{relative_standard_error, Window};
use crate::Shared;

/// The routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/uniques", get(uniques))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

#[derive(Debug, Deserialize)]
struct UniquesQuery {
    schema: Option<String>,
    by: Option<String>,
    value: Option<String>,
    top: Option<String>,
    window: Option<String>,
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

fn iso(minute: i64) -> String {
    chrono::DateTime::from_timestamp(minute * SKETCH_BUCKET_SECONDS, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

async fn uniques(State(shared): State<Arc<Shared>>, Query(q): Query<UniquesQuery>) -> Response {
    let Some(schema) = q.schema.filter(|s| !s.is_empty()) else {
        return bad("`schema` is required: `vendor/name`, e.g. `com.example.web/article_view`");
    };
    let window = match q
        .window
        .as_deref()
        .map_or(Ok(DEFAULT_QUERY_WINDOW), humantime::parse_duration)
    {
        Ok(w)
            if w >= Duration::from_secs(60) && w.as_secs() <= (SKETCH_MAX_MINUTES * 60) as u64 =>
        {
            w
        }
        _ => {
            return bad(format!(
            "`window` must be a duration from 1m to {SKETCH_MAX_MINUTES}m, like `5m` (default {}m)",
            DEFAULT_QUERY_WINDOW.as_secs() / 60
        ))
        }
    };
    let minutes = window.as_secs().div_ceil(SKETCH_BUCKET_SECONDS as u64) as i64;
    let span = Window::ending_at(chrono::Utc::now().timestamp_millis(), minutes);
    let by = q.by.unwrap_or_default();
    let top = match q.top.as_deref().map(str::parse::<usize>) {
        None => None,
        Some(Ok(n)) if (1..=MAX_TOP).contains(&n) => Some(n),
        Some(_) => return bad(format!("`top` must be a number from 1 to {MAX_TOP}")),
    };
    if by.is_empty() && (q.value.is_some() || top.is_some()) {
        return bad("`value` and `top` need `by`, the dimension");
    }
    if !by.is_empty() && q.value.is_none() == top.is_none() {
        return bad("with `by`, give either `value` or `top`");
    }
    let view = shared
        .view
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let progress: Vec<_> = view
        .progress()
        .values()
        .map(|p| {
            json!({
                "partition": p.partition,
                "committed": p.committed,
                "newest_received_at_ms": p.newest_received_at_ms,
                "published_at_ms": p.published_at_ms,
            })
        })
        .collect();
    let mut answer = json!({
        "schema": schema,
        "window": {
            "seconds": minutes * SKETCH_BUCKET_SECONDS,
            "from": iso(span.first_minute),
            "to": iso(span.last_minute + 1),
            "clock": "received_at",
        },
        "estimator": {
            "kind": "datasketches-hll",
            "relative_standard_error": relative_standard_error(),
            "bounds": "three standard deviations (≈99.7 %)",
        },
        "progress": progress,
    });
    if let Some(n) = top {
        let (rows, partitions) = view.top(&schema, &by, n, span);
        answer["by"] = json!(by);
        answer["partitions"] = json!(partitions);
        answer["top"] = rows
            .into_iter()
            .map(|(value, e)| {
                json!({"value": value, "uniques": e.uniques, "lower_bound": e.lower_bound, "upper_bound": e.upper_bound})
            })
            .collect();
    } else {
        let value = q.value.unwrap_or_default();
        let (e, partitions) = view.estimate(&schema, &by, &value, span);
        if !by.is_empty() {
            answer["by"] = json!(by);
            answer["value"] = json!(value);
        }
        answer["partitions"] = json!(partitions);
        answer["uniques"] = json!(e.uniques);
        answer["lower_bound"] = json!(e.lower_bound);
        answer["upper_bound"] = json!(e.upper_bound);
    }
    Json(answer).into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let owned = shared.owned();
    match (shared.failing(), shared.stopped()) {
        (_, Some(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "stopped", "reason": reason})),
        )
            .into_response(),
        (Some(reason), None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failing", "reason": reason, "partitions": owned})),
        )
            .into_response(),
        (None, None) => Json(json!({"status": "ok", "writer": shared.writer, "partitions": owned}))
            .into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}
