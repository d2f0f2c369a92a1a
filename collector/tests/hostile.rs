//! Malicious and broken requests: each gets a bounded answer with the right status, a dead
//! letter where there was something to keep, and the server keeps serving others meanwhile.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The last dead letter, after checking its code.
fn last_dead_letter(c: &Running, code: &str) -> Value {
    let bad = c.bad();
    let last = bad.last().cloned().unwrap_or(Value::Null);
    assert_eq!(last["code"], code, "{last}");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_a_batch_is_400_with_the_raw_bytes_kept() {
    let c = start(|c| c).await;
    let cases: &[&[u8]] = &[
        b"this is not json",
        b"[1,2,3]",
        br#"{"events": 5, "sent_at": "2026-11-26T03:10:26.123Z"}"#,
        br#"{"events": []}"#,
        br#"{"sent_at": "yesterday", "events": []}"#,
        b"{\"sent_at\": \"2026-11-26T03:10:26.123Z\", \"events\": [{\"x\": \"\xff\xfe\"}]}",
        b"",
    ];
    for (i, body) in cases.iter().enumerate() {
        let (status, answer) = post(
            &c.url("/v1/batch"),
            body.to_vec(),
            &[("content-type", "application/json")],
        )
        .await;
        assert_eq!(status, 400, "case {i}: {answer}");
        assert_eq!(answer["code"], "malformed");
        let dead = last_dead_letter(&c, "malformed");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(dead["raw"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw, *body, "case {i}: the raw bytes are kept");
        assert!(dead["errors"][0]["message"].is_string());
    }
    assert_eq!(c.bad().len(), cases.len());
    c.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bomb_and_oversized_bodies_are_413_and_cost_little() {
    let c = start(|c| c).await;
    // 64 MiB of zeros compress to ~64 KiB: decompression stops at the 1 MiB limit.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < 200 * 1024);
    let (status, _) = post(
        &c.url("/v1/batch"),
        bomb,
        &[
            ("content-encoding", "gzip"),
            ("content-type", "application/json"),
        ],
    )
    .await;
    assert_eq!(status, 413);
    last_dead_letter(&c, "too_large");
    // 2 MiB uncompressed.
    let big =
        json!({"sent_at": "2026-11-26T03:10:26.123Z", "events": [], "pad": "x".repeat(2 << 20)});
    let (status, _) = post_json(&c.url("/v1/batch"), &big).await;
    assert_eq!(status, 413);
    last_dead_letter(&c, "too_large");
    c.assert_serving().await;
    // Metrics count refusals under their real status.
    let metrics = c.metrics().await;
    assert!(
        metrics.contains(r#"eventwire_requests_total{status="413"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_gzip_unknown_encodings_and_wrong_types_are_refused() {
    let c = start(|c| c).await;
    let body = batch(vec![play(1.0)]).to_string();
    let gz = gzip(body.as_bytes());
    let (status, _) = post(
        &c.url("/v1/batch"),
        gz[..gz.len() / 2].to_vec(),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(status, 400);
    last_dead_letter(&c, "malformed");
    let (status, _) = post(
        &c.url("/v1/batch"),
        body.clone(),
        &[("content-encoding", "br")],
    )
    .await;
    assert_eq!(status, 415);
    last_dead_letter(&c, "unsupported_encoding");
    let (status, _) = post(
        &c.url("/v1/batch"),
        body.clone(),
        &[("content-type", "application/xml")],
    )
    .await;
    assert_eq!(status, 415);
    last_dead_letter(&c, "unsupported_encoding");
    // text/plain (a beacon) and gzip are fine.
    let (status, _) = post(
        &c.url("/v1/batch"),
        body.clone(),
        &[("content-type", "text/plain;charset=UTF-8")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = post(
        &c.url("/v1/batch"),
        gzip(batch(vec![play(2.0)]).to_string().as_bytes()),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)));
    assert_eq!(c.good().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_long_strings_big_events_and_huge_batches() {
    let c = start(|c| c).await;
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let nested = envelope(
        "iglu:com.example.media/play/jsonschema/1-0-0",
        json!({"media_id": "b0074dlv", "position_s": 1, "x": deep}),
    );
    let long = envelope(
        "iglu:com.example.media/play/jsonschema/1-0-0",
        json!({"media_id": "b0074dlv", "position_s": 1, "s": "y".repeat(100_000)}),
    );
    let big = envelope(
        "iglu:com.example.media/play/jsonschema/1-0-0",
        json!({"media_id": "b0074dlv", "position_s": 1, "list": vec!["z".repeat(1000); 300]}),
    );
    let good = play(3.0);
    let (status, answer) =
        post_json(&c.url("/v1/batch"), &batch(vec![nested, long, big, good])).await;
    assert_eq!(status, 200);
    let codes: Vec<&str> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["too_large", "too_large", "too_large"], "{answer}");
    assert_eq!(
        answer["accepted"], 1,
        "the good event in the same batch still goes through"
    );
    let bad = c.bad();
    assert_eq!(bad.len(), 3);
    assert!(bad.iter().all(|b| b["raw"].is_string()));
    let keywords: Vec<&str> = bad
        .iter()
        .map(|b| b["errors"][0]["keyword"].as_str().unwrap())
        .collect();
    assert_eq!(keywords, ["maxDepth", "maxStringBytes", "maxEventBytes"]);

    // 10^5 tiny events: over the per-batch limit, refused whole (the tracker splits).
    let tiny = json!({});
    let many = json!({"sent_at": "2026-11-26T03:10:26.123Z", "events": vec![tiny; 100_000]});
    let (status, _) = post_json(&c.url("/v1/batch"), &many).await;
    assert_eq!(status, 413);
    last_dead_letter(&c, "too_large");
    // Nesting past serde's own recursion limit is not even a batch.
    let (status, _) = post(&c.url("/v1/batch"), "[".repeat(100_000), &[]).await;
    assert_eq!(status, 400);
    c.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_uris_cannot_leave_the_registry() {
    // A registry with a symlink pointing outside it.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    std::fs::create_dir_all(root.join("com.evil/escape/jsonschema")).unwrap();
    let outside = dir.path().join("secret");
    std::fs::write(&outside, r#"{"self":{"vendor":"com.evil","name":"escape","format":"jsonschema","version":"1-0-0"},"type":"object"}"#).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("com.evil/escape/jsonschema/1-0-0")).unwrap();
    let c = start_with_source(eventwire_collector::registry::Source::Dir(root), |c| c).await;
    let mut events = Vec::new();
    for uri in [
        "iglu:../../etc/passwd/jsonschema/1-0-0",
        "iglu:com.example/%2e%2e/jsonschema/1-0-0",
        "iglu:/etc/passwd/jsonschema/1-0-0",
        "iglu:com.example/..\\..\\x/jsonschema/1-0-0",
        "iglu:http://evil.example/x/jsonschema/1-0-0",
        "http://evil.example/schemas/x/jsonschema/1-0-0",
    ] {
        events.push(envelope(uri, json!({})));
    }
    events.push(envelope("iglu:com.evil/escape/jsonschema/1-0-0", json!({})));
    let (status, answer) = post_json(&c.url("/v1/batch"), &batch(events)).await;
    assert_eq!(status, 200);
    let codes: Vec<&str> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "invalid_envelope",
            "invalid_envelope",
            "invalid_envelope",
            "invalid_envelope",
            "invalid_envelope",
            "invalid_envelope",
            "unknown_schema", // the symlink's target is outside the root: treated as absent
        ]
    );
    assert_eq!(answer["accepted"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_edge_cases_are_data_not_trouble() {
    let c = start(|c| c).await;
    let weird = [
        "\u{0}",
        "\u{202e}gnp.exe",
        "😀".repeat(10).as_str(),
        "\u{FEFF}bom",
        "a\u{0301}",
    ]
    .map(str::to_owned);
    let events: Vec<Value> = weird
        .iter()
        .map(|q| {
            envelope(
                "iglu:com.example.web/search/jsonschema/1-0-0",
                json!({"query": q, "results_count": 0}),
            )
        })
        .collect();
    let (status, answer) = post_json(&c.url("/v1/batch"), &batch(events)).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(5)));
    let stored: Vec<String> = c
        .good()
        .iter()
        .map(|g| g["data"]["query"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, weird);
    // A lone surrogate escape cannot become text: that event is dead-lettered on its own,
    // with its raw bytes, and the good event beside it is kept.
    let body = format!(
        r#"{{"sent_at":"2026-11-26T03:10:26.123Z","events":[{{"q":"\ud800"}},{}]}}"#,
        play(1.0)
    );
    let (status, answer) = post(&c.url("/v1/batch"), body, &[]).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(answer["rejected"][0]["code"], "malformed");
    let dead = last_dead_letter(&c, "malformed");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(dead["raw"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, br#"{"q":"\ud800"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_floods_and_slow_bodies_are_cut_off() {
    let c = start(|c| c).await;
    // 200 headers.
    let mut request = String::from("POST /v1/batch HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        request.push_str(&format!("X-Flood-{i}: {}\r\n", "v".repeat(100)));
    }
    request.push_str("Content-Length: 2\r\n\r\n{}");
    let mut stream = tokio::net::TcpStream::connect(c.server.addr())
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    // A body that trickles in slower than the body timeout (2 s here).
    let mut stream = tokio::net::TcpStream::connect(c.server.addr())
        .await
        .unwrap();
    stream
        .write_all(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"sent_at\"")
        .await
        .unwrap();
    // Meanwhile the server serves others.
    c.assert_serving().await;
    let (status, _) = post_json(&c.url("/v1/batch"), &batch(vec![play(1.0)])).await;
    assert_eq!(status, 200);
    let n = tokio::time::timeout(Duration::from_secs(6), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    last_dead_letter(&c, "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_keys_from_header_body_or_query() {
    let c = start(|c| c.write_keys(vec!["k1".into()])).await;
    let url = c.url("/v1/batch");
    let body = || batch(vec![play(1.0)]);
    let (status, _) = post_json(&url, &body()).await;
    assert_eq!(status, 401, "missing key");
    let (status, _) = post(
        &url,
        body().to_string(),
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(status, 401, "wrong key");
    let (status, _) = post(&url, body().to_string(), &[("authorization", "Bearer k1")]).await;
    assert_eq!(status, 200);
    let mut in_body = body();
    in_body["write_key"] = json!("k1");
    let (status, _) = post_json(&url, &in_body).await;
    assert_eq!(status, 200);
    let (status, _) = post_json(&format!("{url}?write_key=k1"), &body()).await;
    assert_eq!(status, 200);
    let mut wrong_body = body();
    wrong_body["write_key"] = json!("k2");
    let (status, _) = post_json(&url, &wrong_body).await;
    assert_eq!(status, 401);
    assert_eq!(c.good().len(), 3);
    assert!(c.bad().is_empty(), "refused keys store nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_for_configured_origins_only() {
    let c = start(|c| c.cors_origins(vec!["https://app.example.com".into()])).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, c.url("/v1/batch"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // A simple (text/plain) POST from the browser package: allowed, and `Retry-After` is
    // readable by the page.
    let post = client
        .post(c.url("/v1/batch"))
        .header("origin", "https://app.example.com")
        .header("content-type", "text/plain;charset=UTF-8")
        .body(batch(vec![play(1.0)]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    assert_eq!(
        post.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        post.headers()["access-control-expose-headers"],
        "retry-after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_do_not_starve_others_and_are_closed() {
    let c = start(|c| c).await;
    // 300 connections that send their headers a byte at a time and never finish them.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(c.server.addr())
            .await
            .unwrap();
        s.write_all(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    let started = std::time::Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..24 {
            for s in &mut slow {
                let _ = s.write_all(b"a").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        slow
    });
    // Meanwhile everyone else is served, promptly.
    for i in 0..5 {
        let t = std::time::Instant::now();
        let (status, answer) =
            post_json(&c.url("/v1/batch"), &batch(vec![play(f64::from(i))])).await;
        assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    // The header timeout (10 s) ends every slow connection, trickle or not.
    let mut slow = trickle.await.unwrap();
    let mut closed = 0;
    for s in &mut slow {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => closed += 1,
            Ok(Ok(n)) => {
                let head = String::from_utf8_lossy(&buf[..n]);
                assert!(head.starts_with("HTTP/1.1 408"), "{head}");
                closed += 1;
            }
            Err(_) => {}
        }
    }
    assert_eq!(closed, 300, "after {:?}", started.elapsed());
    c.assert_serving().await;
}
