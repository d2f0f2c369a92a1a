//! A collector on loopback with file sinks in a temporary directory, and helpers to read
//! what it wrote.

#![allow(dead_code, clippy::unwrap_used)] // shared by several test binaries

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eventwire_collector::registry::Source;
use eventwire_collector::server::{Collector, CollectorConfig, ServerHandle};
use eventwire_collector::sink::{Sink, SinkSpec};
use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub struct Running {
    pub collector: Collector,
    pub server: ServerHandle,
    pub dir: tempfile::TempDir,
}

impl Running {
    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint())
    }

    pub fn good(&self) -> Vec<Value> {
        read_lines(&self.dir.path().join("good.jsonl"))
    }

    pub fn bad(&self) -> Vec<Value> {
        read_lines(&self.dir.path().join("bad.jsonl"))
    }

    /// The server still answers.
    pub async fn assert_serving(&self) {
        let r = reqwest::get(self.url("/healthz")).await.unwrap();
        assert_eq!(r.status(), 200);
    }
}

pub fn read_lines(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub async fn start(configure: impl FnOnce(CollectorConfig) -> CollectorConfig) -> Running {
    start_with_source(Source::Dir(repo().join("schemas")), configure).await
}

pub async fn start_with_source(
    source: Source,
    configure: impl FnOnce(CollectorConfig) -> CollectorConfig,
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig::new(source)
        .good(SinkSpec::File(dir.path().join("good.jsonl")))
        .bad(SinkSpec::File(dir.path().join("bad.jsonl")))
        .dev(true)
        .body_timeout(Duration::from_secs(2));
    let collector = Collector::new(configure(config)).await.unwrap();
    let server = collector
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Running {
        collector,
        server,
        dir,
    }
}

/// A collector writing to the sinks given, served on a free loopback port.
pub async fn serve_with_sinks(
    config: CollectorConfig,
    good: Arc<dyn Sink>,
    bad: Arc<dyn Sink>,
) -> (Collector, ServerHandle) {
    let collector = Collector::with_sinks(config, good, bad).unwrap();
    let server = collector
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (collector, server)
}

/// A batch body around these events.
pub fn batch(events: Vec<Value>) -> Value {
    serde_json::json!({ "sent_at": "2026-11-26T03:10:26.123Z", "events": events })
}

/// A valid envelope for `schema` and `data`.
pub fn envelope(schema: &str, data: Value) -> Value {
    serde_json::json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "schema": schema,
        "data": data,
        "created_at": "2026-11-26T03:10:25.001Z",
        "context": {
            "labels": { "environment": "test", "service": "web", "version": "abc123" },
            "library": { "name": "test", "version": "0" },
            "anonymous_id": "anon-1"
        }
    })
}

pub fn play(position: f64) -> Value {
    envelope(
        "iglu:com.example.media/play/jsonschema/1-0-0",
        serde_json::json!({ "media_id": "b0074dlv", "position_s": position }),
    )
}

pub async fn post(
    url: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.post(url).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    post(
        url,
        body.to_string(),
        &[("content-type", "application/json")],
    )
    .await
}
