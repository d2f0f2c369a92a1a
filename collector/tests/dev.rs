//! Dev mode for an app's tests: `context.test_id` keeps parallel tests apart,
//! `/v1/events/wait` answers as soon as the events are there (or 408 with what arrived and
//! why near misses missed), the live stream sends records as they are stored, and
//! `eventwire::testing::Expect` (the Rust helper) reads all of it.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::*;
use eventwire::testing::{Expect, ExpectError};
use eventwire::Tracker;
use serde_json::{json, Value};

const SEARCH: &str = "iglu:com.example.web/search/jsonschema/1-0-0";
const PLAY: &str = "iglu:com.example.media/play/jsonschema/1-0-0";

fn tracker(endpoint: &str, test_id: &str) -> Tracker {
    Tracker::builder()
        .endpoint(endpoint)
        .test_id(test_id)
        .service("dev-test")
        .max_batch_delay(Duration::from_millis(20))
        .build()
        .unwrap()
}

/// Tracks `n` searches with `test_id` on a blocking thread (the tracker's calls block).
async fn track_searches(endpoint: String, test_id: &'static str, n: usize) {
    tokio::task::spawn_blocking(move || {
        let t = tracker(&endpoint, test_id);
        for i in 0..n {
            t.track_json(
                SEARCH,
                &json!({"query": format!("{test_id}-{i}"), "results_count": i}),
            )
            .unwrap();
        }
        t.flush(Duration::from_secs(10)).unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_answers_once_its_events_arrive_and_sees_only_its_own_test() {
    let c = start(|c| c).await;
    let endpoint = c.endpoint();
    // The wait starts before anything is tracked, with a long timeout: it must answer as
    // soon as the third event of test "a" is stored, whatever test "b" sends meanwhile.
    let expect = Expect::at(endpoint.clone())
        .schema(SEARCH)
        .test_id("a")
        .count(3)
        .timeout(Duration::from_secs(60));
    let waiting = tokio::spawn(async move { expect.events().await });
    let started = Instant::now();
    tokio::join!(
        track_searches(endpoint.clone(), "b", 5),
        track_searches(endpoint.clone(), "a", 3)
    );
    let events = waiting.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the wait answered only at {:?}",
        started.elapsed()
    );
    let mut queries: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["query"].as_str().unwrap())
        .collect();
    queries.sort_unstable();
    assert_eq!(queries, ["a-0", "a-1", "a-2"]);
    assert!(events.iter().all(|e| e["context"]["test_id"] == "a"));
    // The list endpoint filters by test id and label too.
    let listed: Value = reqwest::get(c.url("/v1/events?test_id=b&label=service=dev-test"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 5);
    let none: Value = reqwest::get(c.url("/v1/events?test_id=b&label=service=web"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_times_out_says_what_arrived_and_why_each_near_miss_missed() {
    let c = start(|c| c).await;
    let with_test = |mut e: Value, id: &str| {
        e["context"]["test_id"] = json!(id);
        e
    };
    let good = with_test(play(1.0), "t-1");
    let refused = with_test(play(-5.0), "t-1"); // position_s below its minimum
    let other_test = with_test(play(2.0), "t-2");
    let no_test = play(3.0);
    let (status, _) = post_json(
        &c.url("/v1/batch"),
        &batch(vec![good.clone(), refused.clone(), other_test, no_test]),
    )
    .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let err = Expect::at(c.endpoint())
        .schema(PLAY)
        .test_id("t-1")
        .count(2)
        .timeout(Duration::from_millis(700))
        .events()
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(700));
    let ExpectError::Missing {
        arrived,
        near_misses,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(arrived.len(), 1);
    assert_eq!(arrived[0]["event_id"], good["event_id"]);
    // Closest first: the dead letter of this test, then the events of the same schema
    // without this test id.
    let whys: Vec<(String, String)> = near_misses
        .iter()
        .map(|m| (m.kind.clone(), m.why.join("; ")))
        .collect();
    assert_eq!(whys.len(), 3, "{whys:?}");
    assert_eq!(whys[0].0, "bad");
    assert!(
        whys[0]
            .1
            .starts_with("dead-lettered as schema_invalid (/data/position_s:"),
        "{whys:?}"
    );
    let mut rest: Vec<&str> = whys[1..].iter().map(|w| w.1.as_str()).collect();
    rest.sort_unstable();
    assert_eq!(
        rest,
        [
            r#"test_id is "t-2", not "t-1""#,
            r#"test_id is absent, not "t-1""#
        ]
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "expected 2 events (schema={PLAY}, test_id=t-1) within 700ms; 1 arrived\n  - good {}",
            good["event_id"].as_str().unwrap()
        )),
        "{message}"
    );
    assert!(
        message.contains("dead-lettered as schema_invalid"),
        "{message}"
    );
    // Waiting for the dead letter itself finds it.
    let dead = Expect::at(c.endpoint())
        .dead_letters()
        .test_id("t-1")
        .events()
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["event"]["event_id"], refused["event_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_wait_queries_are_refused_with_the_reason() {
    let c = start(|c| c).await;
    for (query, says) in [
        ("kind=all&count=0", "count must be at least 1"),
        ("kind=ugly", "kind must be good, bad or all"),
        ("timeout=soon", "is not a duration"),
        ("timeout=10m", "over the longest wait"),
    ] {
        let r = reqwest::get(c.url(&format!("/v1/events/wait?{query}")))
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let text = r.text().await.unwrap();
        assert!(text.contains(says), "{query}: {text}");
    }
    // Without --dev there is nothing to wait on, and the helper says so.
    let off = start(|c| c.dev(false)).await;
    let err = Expect::at(off.endpoint()).events().await.unwrap_err();
    assert!(
        matches!(&err, ExpectError::Collector { status: 404, body } if body.contains("--dev")),
        "{err}"
    );
    let page = reqwest::get(off.url("/")).await.unwrap();
    assert_eq!(page.status(), 404);
}

/// Reads server-sent events from `r` until `done` says it has enough: `(event, data)`.
async fn read_sse(
    r: &mut reqwest::Response,
    done: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let mut text = String::new();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&seen) {
        assert!(Instant::now() < deadline, "the stream sent only {seen:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .expect("the stream went quiet")
            .unwrap()
            .expect("the stream ended");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let message: String = text.drain(..end + 2).collect();
            let mut event = String::from("message");
            let mut data = String::new();
            for line in message.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !data.is_empty() {
                seen.push((event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_sends_the_latest_records_then_each_new_one_then_resets() {
    let c = start(|c| c).await;
    post_json(&c.url("/v1/batch"), &batch(vec![play(1.0), play(-1.0)])).await;
    let mut r = reqwest::get(c.url("/v1/events/stream?kind=all"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let first = read_sse(&mut r, |s| s.len() >= 2).await;
    let kinds: Vec<&str> = first
        .iter()
        .map(|(_, d)| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["good", "bad"]);
    let late = play(7.0);
    post_json(&c.url("/v1/batch"), &batch(vec![late.clone()])).await;
    let next = read_sse(&mut r, |s| !s.is_empty()).await;
    assert_eq!(next[0].0, "record");
    assert_eq!(next[0].1["record"]["event_id"], late["event_id"]);
    assert!(next[0].1["seq"].as_u64().unwrap() > first[1].1["seq"].as_u64().unwrap());
    reqwest::Client::new()
        .post(c.url("/v1/events/reset"))
        .send()
        .await
        .unwrap();
    let reset = read_sse(&mut r, |s| !s.is_empty()).await;
    assert_eq!(reset[0].0, "reset");
    // A filtered stream sends only what matches.
    let mut only_bad = reqwest::get(c.url("/v1/events/stream?kind=bad"))
        .await
        .unwrap();
    post_json(&c.url("/v1/batch"), &batch(vec![play(8.0), play(-8.0)])).await;
    let bad = read_sse(&mut only_bad, |s| !s.is_empty()).await;
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].1["kind"], "bad");
    // And the page that reads it is served.
    let page = reqwest::get(c.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/v1/events/stream"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_write_keys_the_helper_gives_its_key_and_says_when_it_is_missing() {
    let c = start(|c| c.write_keys(vec!["k-1".into()])).await;
    let mut e = play(1.0);
    e["context"]["test_id"] = json!("keyed");
    let (status, _) = post(
        &c.url("/v1/batch"),
        batch(vec![e]).to_string(),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer k-1"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let err = Expect::at(c.endpoint())
        .test_id("keyed")
        .events()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExpectError::Collector { status: 401, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("(give its write key: Expect::write_key)"),
        "{err}"
    );
    let by_header = Expect::at(c.endpoint())
        .test_id("keyed")
        .write_key("k-1")
        .events()
        .await
        .unwrap();
    assert_eq!(by_header.len(), 1);
    // A key in the collector's URL (as a page's link to the dev page has it) is kept.
    let by_query = Expect::at(format!("{}/?write_key=k-1", c.endpoint()))
        .test_id("keyed")
        .events()
        .await
        .unwrap();
    assert_eq!(by_query.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_site_cannot_empty_the_store() {
    let c = start(|c| c).await;
    post_json(&c.url("/v1/batch"), &batch(vec![play(1.0)])).await;
    let reset = |origin: Option<String>| {
        let mut r = reqwest::Client::new().post(c.url("/v1/events/reset"));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let refused = reset(Some("https://evil.example".into())).await.unwrap();
    assert_eq!(refused.status(), 403);
    let held: Value = reqwest::get(c.url("/v1/events"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(held["count"], 1, "a cross-site reset emptied the store");
    // The dev page's own origin, and a client without one, may.
    let own = reset(Some(c.endpoint().trim_end_matches('/').to_owned()))
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    post_json(&c.url("/v1/batch"), &batch(vec![play(2.0)])).await;
    assert_eq!(reset(None).await.unwrap().status(), 200);
    let left: Value = reqwest::get(c.url("/v1/events"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(left["count"], 0);
}
