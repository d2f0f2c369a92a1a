//! Tracker → collector → file sinks: every event id lands once, in good or bad with the right
//! code; duplicates are counted, not written; times are stamped and skew-corrected.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use eventwire::{Entity, FailureReason, Tracker};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_lands_once_in_good_or_bad_with_its_code() {
    let c = start(|c| c).await;
    let failures = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = failures.clone();
    let tracker = Tracker::builder()
        .endpoint(c.endpoint())
        .environment("test")
        .service("e2e")
        .version("v1")
        .on_failure(
            move |reason: &FailureReason, events: &[eventwire::EncodedEvent]| {
                for e in events {
                    sink.lock()
                        .unwrap()
                        .push((e.event_id().to_string(), reason.clone()));
                }
            },
        )
        .build()
        .unwrap();
    let player = Entity {
        schema: "iglu:com.example.media/player/jsonschema/1-0-0".into(),
        data: json!({"kind": "video", "player_name": "html5", "volume": 80}),
    };
    let mut expected: HashMap<String, Option<&str>> = HashMap::new();
    let mut track = |schema: &str, data: Value, entities: &[Entity], code: Option<&'static str>| {
        let id = tracker.track_json_with(schema, &data, entities).unwrap();
        expected.insert(id.to_string(), code);
    };
    for i in 0..20 {
        track(
            "iglu:com.example.media/play/jsonschema/1-0-0",
            json!({"media_id": "b0074dlv", "position_s": i as f64}),
            std::slice::from_ref(&player),
            None,
        );
    }
    track(
        "iglu:com.example.web/search/jsonschema/1-0-0",
        json!({"query": "weather", "results_count": 12}),
        &[],
        None,
    );
    track(
        "iglu:com.example.shop/checkout/jsonschema/1-0-1",
        json!({"order_id": "ORD-123456", "currency": "GBP", "total": 12.5, "payment_method": "card",
               "items": [{"sku": "AB-1234", "quantity": 1, "unit_price": 12.5}]}),
        &[],
        None,
    );
    // Wrong type.
    track(
        "iglu:com.example.media/play/jsonschema/1-0-0",
        json!({"media_id": "b0074dlv", "position_s": "12"}),
        &[],
        Some("schema_invalid"),
    );
    // Below the minimum.
    track(
        "iglu:com.example.media/play/jsonschema/1-0-0",
        json!({"media_id": "b0074dlv", "position_s": -1}),
        &[],
        Some("schema_invalid"),
    );
    // Not in the registry.
    track(
        "iglu:com.example.media/rewind/jsonschema/1-0-0",
        json!({}),
        &[],
        Some("unknown_schema"),
    );
    // A bad entity.
    let bad_player = Entity {
        schema: "iglu:com.example.media/player/jsonschema/1-0-0".into(),
        data: json!({"kind": "hologram", "player_name": "x"}),
    };
    track(
        "iglu:com.example.media/play/jsonschema/1-0-0",
        json!({"media_id": "b0074dlv", "position_s": 1}),
        &[bad_player],
        Some("entity_invalid"),
    );
    tracker.flush_async(T).await.unwrap();

    let good = c.good();
    let bad = c.bad();
    let mut seen: HashMap<String, Option<String>> = HashMap::new();
    for g in &good {
        let id = g["event_id"].as_str().unwrap().to_owned();
        assert!(seen.insert(id, None).is_none(), "an id landed twice");
        // Times are stamped.
        for field in ["created_at", "sent_at", "received_at", "event_time"] {
            assert!(g[field].is_string(), "{field} in {g}");
        }
        assert!(g["event_time"].as_str().unwrap() <= g["received_at"].as_str().unwrap());
        assert_eq!(g["context"]["labels"]["service"], "e2e");
    }
    for b in &bad {
        let id = b["event"]["event_id"].as_str().unwrap().to_owned();
        let code = b["code"].as_str().unwrap().to_owned();
        assert!(b["errors"].as_array().is_some_and(|e| !e.is_empty()), "{b}");
        assert!(seen.insert(id, Some(code)).is_none(), "an id landed twice");
    }
    let expected: HashMap<String, Option<String>> = expected
        .into_iter()
        .map(|(k, v)| (k, v.map(str::to_owned)))
        .collect();
    assert_eq!(seen, expected);

    // The dead letter says where and why.
    let below = bad
        .iter()
        .find(|b| b["event"]["data"]["position_s"] == json!(-1))
        .unwrap();
    assert_eq!(below["errors"][0]["path"], "/data/position_s");
    assert_eq!(below["errors"][0]["keyword"], "minimum");
    let entity = bad.iter().find(|b| b["code"] == "entity_invalid").unwrap();
    assert_eq!(entity["errors"][0]["path"], "/entities/0/data/kind");

    // The tracker heard about each rejection.
    let s = tracker.stats();
    assert_eq!((s.sent, s.rejected, s.pending), (22, 4, 0));
    assert_eq!(failures.lock().unwrap().len(), 4);
    assert_eq!(c.collector.totals().accepted, 22);
    tracker.shutdown_async(T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_batch_is_counted_as_duplicates_not_written_twice() {
    let c = start(|c| c).await;
    let body = batch(vec![play(1.0), play(2.0), play(3.0)]);
    let (status, first) = post_json(&c.url("/v1/batch"), &body).await;
    assert_eq!(status, 200);
    assert_eq!(first["accepted"], 3);
    // The answer was "lost": the tracker resends the same batch.
    let (status, second) = post_json(&c.url("/v1/batch"), &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        (second["accepted"].as_u64(), second["duplicates"].as_u64()),
        (Some(0), Some(3))
    );
    // A batch carrying the same event twice.
    let e = play(4.0);
    let (_, third) = post_json(&c.url("/v1/batch"), &batch(vec![e.clone(), e])).await;
    assert_eq!(
        (third["accepted"].as_u64(), third["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(c.good().len(), 4);
    assert_eq!(c.collector.totals().duplicates, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_time_corrects_client_clock_skew() {
    let c = start(|c| c).await;
    // The client's clock is a day fast; the event waited 5 s before being sent.
    let mut e = play(1.0);
    e["created_at"] = json!("2030-01-02T00:00:00.000Z");
    let body = json!({"sent_at": "2030-01-02T00:00:05.000Z", "events": [e]});
    let before = chrono::Utc::now();
    let (status, _) = post_json(&c.url("/v1/batch"), &body).await;
    assert_eq!(status, 200);
    let g = &c.good()[0];
    let received =
        chrono::DateTime::parse_from_rfc3339(g["received_at"].as_str().unwrap()).unwrap();
    let event_time =
        chrono::DateTime::parse_from_rfc3339(g["event_time"].as_str().unwrap()).unwrap();
    assert_eq!((received - event_time).num_milliseconds(), 5000);
    assert!(received >= before - chrono::Duration::milliseconds(1));
    assert_eq!(
        g["created_at"], "2030-01-02T00:00:00.000Z",
        "the client's value is kept as sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_serves_recent_events_and_resets() {
    let c = start(|c| c).await;
    let good = play(1.0);
    let bad = play(-5.0);
    let id = bad["event_id"].as_str().unwrap().to_owned();
    post_json(&c.url("/v1/batch"), &batch(vec![good, bad])).await;
    let q: Value = reqwest::get(c.url(&format!("/v1/events?kind=bad&event_id={id}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["count"], 1);
    assert_eq!(q["events"][0]["code"], "schema_invalid");
    let q: Value = reqwest::get(
        c.url("/v1/events?kind=good&schema=iglu:com.example.media/play/jsonschema/1-0-0"),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(q["count"], 1);
    let r = reqwest::Client::new()
        .delete(c.url("/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let q: Value = reqwest::get(c.url("/v1/events?kind=good"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uniques_count_distinct_users_per_schema() {
    let c = start(|c| c).await;
    let mut events = Vec::new();
    for i in 0..30 {
        let mut e = play(i as f64);
        // 10 users: by user_id when set, else anonymous_id.
        if i % 2 == 0 {
            e["context"]["user_id"] = json!(format!("user-{}", i % 10));
        } else {
            e["context"]["anonymous_id"] = json!(format!("anon-{}", i % 10));
        }
        events.push(e);
    }
    post_json(&c.url("/v1/batch"), &batch(events)).await;
    let q: Value = reqwest::get(
        c.url("/v1/uniques?schema=iglu:com.example.media/play/jsonschema/1-0-0&window=5m"),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(q["uniques"], 10, "{q}");
    assert_eq!(q["window_seconds"], 300);
    let r = reqwest::get(c.url("/v1/uniques?schema=x&window=3d"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_by_code_service_and_version() {
    let c = start(|c| c).await;
    post_json(
        &c.url("/v1/batch"),
        &batch(vec![play(1.0), play(2.0), play(-1.0)]),
    )
    .await;
    let text = c.metrics().await;
    assert!(
        text.contains(r#"eventwire_events_accepted_total{service="web",version="abc123"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"eventwire_events_rejected_total{code="schema_invalid",service="web",version="abc123"} 1"#), "{text}");
    assert!(
        text.contains("eventwire_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(r#"eventwire_requests_total{status="200"} 1"#),
        "{text}"
    );
}
