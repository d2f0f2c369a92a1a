//! A registry served over HTTP (a static bucket in Iglu layout): fetched on first use,
//! cached, a schema added after start-up is picked up without a restart, and an unreachable
//! registry makes the collector answer 503 (the tracker resends) rather than dead-letter.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::*;
use eventwire_collector::registry::Source;
use serde_json::json;

/// A static file server over `root`, counting requests.
async fn bucket(root: PathBuf) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let state = (root, hits.clone());
    let app = axum::Router::new()
        .route(
            "/schemas/{*path}",
            axum::routing::get(
                |State((root, hits)): State<(PathBuf, Arc<AtomicUsize>)>,
                 Path(path): Path<String>| async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    match std::fs::read(root.join(path)) {
                        Ok(bytes) => (StatusCode::OK, bytes),
                        Err(_) => (StatusCode::NOT_FOUND, Vec::new()),
                    }
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/schemas"), hits, task)
}

const SEARCH: &str = "iglu:com.example.web/search/jsonschema/1-0-0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_schemas_are_picked_up_without_restart() {
    let served = tempfile::tempdir().unwrap();
    let (url, hits, _server) = bucket(served.path().to_owned()).await;
    let c = start_with_source(Source::Http(url), |c| {
        c.negative_ttl(Duration::from_millis(300))
    })
    .await;
    let search = || envelope(SEARCH, json!({"query": "rain", "results_count": 3}));

    // Not there yet: dead-lettered as unknown.
    let (status, answer) = post_json(&c.url("/v1/batch"), &batch(vec![search()])).await;
    assert_eq!(status, 200);
    assert_eq!(answer["rejected"][0]["code"], "unknown_schema");

    // Published to the bucket.
    let dest = served.path().join("com.example.web/search/jsonschema");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(
        repo().join("schemas/com.example.web/search/jsonschema/1-0-0"),
        dest.join("1-0-0"),
    )
    .unwrap();

    // Within the negative-cache time the answer is still "unknown", without asking again.
    let before = hits.load(Ordering::SeqCst);
    let (_, answer) = post_json(&c.url("/v1/batch"), &batch(vec![search()])).await;
    assert_eq!(answer["rejected"][0]["code"], "unknown_schema");
    assert_eq!(hits.load(Ordering::SeqCst), before, "negative cache hit");

    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, answer) = post_json(&c.url("/v1/batch"), &batch(vec![search(), search()])).await;
    assert_eq!(answer["accepted"], 2, "{answer}");
    // And the compiled schema is cached: further events fetch nothing.
    let after = hits.load(Ordering::SeqCst);
    let (_, answer) = post_json(&c.url("/v1/batch"), &batch(vec![search()])).await;
    assert_eq!(answer["accepted"], 1);
    assert_eq!(hits.load(Ordering::SeqCst), after);
    // Invalid data against the fetched schema is still caught.
    let (_, answer) = post_json(
        &c.url("/v1/batch"),
        &batch(vec![envelope(SEARCH, json!({"query": ""}))]),
    )
    .await;
    assert_eq!(answer["rejected"][0]["code"], "schema_invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_answers_503_and_stores_nothing() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = start_with_source(
        Source::Http(format!("http://127.0.0.1:{port}/schemas")),
        |c| c,
    )
    .await;
    let client = reqwest::Client::new();
    let response = client
        .post(c.url("/v1/batch"))
        .body(
            batch(vec![envelope(
                SEARCH,
                json!({"query": "x", "results_count": 1}),
            )])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    assert!(c.good().is_empty() && c.bad().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_uris_cannot_send_the_registry_client_elsewhere() {
    // The registry, and another server that must never be asked anything.
    let (base, hits, _task) = bucket(repo().join("schemas")).await;
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil = elsewhere.local_addr().unwrap();
    let contacted = Arc::new(AtomicUsize::new(0));
    let count = contacted.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = elsewhere.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let c = start_with_source(Source::Http(base), |c| c).await;
    let tricks = [
        format!("iglu:com.example@{evil}/x/jsonschema/1-0-0"),
        format!("iglu:{evil}/x/jsonschema/1-0-0"),
        format!("iglu:http://{evil}/x/jsonschema/1-0-0"),
        format!("iglu:com.example/x/jsonschema/1-0-0?@{evil}"),
        format!("iglu:com.example/x/jsonschema/1-0-0#@{evil}"),
        "iglu:com.example/..%2f..%2fx/jsonschema/1-0-0".to_owned(),
        "iglu:com.example/%2e%2e/jsonschema/1-0-0".to_owned(),
        "iglu:com.example/x\\@evil/jsonschema/1-0-0".to_owned(),
        "iglu:com.example/x/jsonschema/1-0-0/../../../../etc/passwd".to_owned(),
    ];
    let mut events: Vec<_> = tricks.iter().map(|u| envelope(u, json!({}))).collect();
    events.push(envelope(SEARCH, json!({"query": "x", "results_count": 1})));
    let (status, answer) = post_json(&c.url("/v1/batch"), &batch(events)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["accepted"], 1,
        "the honest event beside them is kept"
    );
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), tricks.len());
    assert!(
        rejected.iter().all(|r| r["code"] == "invalid_envelope"),
        "{answer}"
    );
    assert_eq!(c.bad().len(), tricks.len(), "each one dead-lettered");
    assert_eq!(
        contacted.load(Ordering::SeqCst),
        0,
        "nothing went elsewhere"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "only the honest schema was fetched"
    );
    c.assert_serving().await;
}

/// A registry URL with a password: when the registry is unreachable, the 503 every client
/// reads (browser write keys are public) names the registry without the password.
#[tokio::test]
async fn a_registry_password_is_never_in_an_answer() {
    let c = start_with_source(
        Source::Http("http://reader:hunter2-registry@127.0.0.1:1".into()),
        |c| c,
    )
    .await;
    let (status, answer) = post_json(&c.url("/v1/batch"), &batch(vec![play(1.0)])).await;
    assert_eq!(status, 503, "{answer}");
    let text = answer.to_string();
    assert!(!text.contains("hunter2-registry"), "{text}");
    assert!(text.contains("reader:***@127.0.0.1:1"), "{text}");
}
