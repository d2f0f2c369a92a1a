//! The collector under sink faults, cancelled clients, strangers and odd numbers: everything
//! it receives ends in the good sink, the dead-letter sink or the duplicate counter, once —
//! or is refused with a status the sender retries.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{batch, envelope, play, post, post_json, serve_with_sinks, start, start_with_source};
use eventwire_collector::registry::Source;
use eventwire_collector::server::{Collector, CollectorConfig};
use eventwire_collector::sink::{MemorySink, Sink, SinkError, SinkRecord};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

/// A small tmpfs (a real full disk: `ENOSPC` from the kernel). Needs root, as CI runs.
struct SmallDisk {
    path: std::path::PathBuf,
    /// Removed after the unmount (fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs and needs root (CI runs as root)"
        );
        SmallDisk {
            path: dir.path().to_owned(),
            _dir: dir,
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

fn lines(path: &Path) -> (Vec<Value>, bool) {
    let text = std::fs::read(path).unwrap_or_default();
    let whole = text.is_empty() || text.ends_with(b"\n");
    let parsed = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("torn line ({e}): {}", String::from_utf8_lossy(l)))
        })
        .collect();
    (parsed, whole)
}

fn ids_of(values: &[Value]) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for v in values {
        *ids.entry(v["event_id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    ids
}

/// A good-sink write that fails part-way (the disk fills in the middle of a batch) leaves
/// no line of that batch, whole or torn: the file is cut back to where the batch began, the
/// answer is 503, and the resend is written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_write_that_fails_part_way_leaves_nothing_of_the_batch() {
    let disk = SmallDisk::mount(256 * 1024);
    let good = disk.path.join("good.jsonl");
    let filler = disk.path.join("filler");
    let c = start(|c| c.good(eventwire_collector::sink::SinkSpec::File(good.clone()))).await;
    let batch_of = |n: usize| {
        let events: Vec<Value> = (0..n)
            .map(|i| {
                envelope(
                    "iglu:com.example.web/frontend_error/jsonschema/1-0-0",
                    json!({ "message": format!("m{i}"), "severity": "error", "stack": "s".repeat(1000) }),
                )
            })
            .collect();
        batch(events)
    };
    // Fill the disk but for ~20 KB, then send a 60 KB batch: it cannot fit.
    let free = 256 * 1024 - 20 * 1024;
    std::fs::write(&filler, vec![b'x'; free]).unwrap();
    let body = batch_of(60);
    let (status, answer) = post_json(&c.url("/v1/batch"), &body).await;
    assert_eq!(status, 503, "{answer}");
    let (written, whole) = lines(&good);
    assert!(whole, "a torn line was left in the good file");
    assert!(
        written.is_empty(),
        "{} lines of a refused batch were left",
        written.len()
    );
    // Room again: the resend is written once, whole.
    std::fs::remove_file(&filler).unwrap();
    let (status, answer) = post_json(&c.url("/v1/batch"), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 60);
    let (written, whole) = lines(&good);
    assert!(whole);
    assert_eq!(written.len(), 60);
    assert!(ids_of(&written).values().all(|n| *n == 1));
}

/// A sink that stores a batch, then takes its time to say so.
#[derive(Clone, Default)]
struct SlowSink {
    inner: MemorySink,
}

impl Sink for SlowSink {
    fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.inner.write(records).await?;
            tokio::time::sleep(Duration::from_millis(600)).await;
            Ok(())
        })
    }
    fn describe(&self) -> String {
        "slow".into()
    }
}

/// A client that gives up while the sink is writing does not cause a duplicate: the commit
/// runs to its end (and records its ids) whatever the client does, so the resend is a
/// duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_mid_commit_causes_no_duplicate() {
    let good = SlowSink::default();
    let config = CollectorConfig::new(Source::Dir(common::repo().join("schemas")));
    let (_collector, server) = serve_with_sinks(
        config,
        Arc::new(good.clone()),
        Arc::new(MemorySink::default()),
    )
    .await;
    let url = format!("{}/v1/batch", server.endpoint());
    let body = batch((0..20).map(|i| play(f64::from(i))).collect()).to_string();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let first = impatient
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await;
    assert!(first.is_err(), "the client should have timed out");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, answer) = post(&url, body, &[("content-type", "application/json")]).await;
    assert_eq!(status, 200);
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(0), Some(20)),
        "{answer}"
    );
    let written: Vec<Value> = good
        .inner
        .records()
        .iter()
        .map(|r| serde_json::from_slice(&r.line).unwrap())
        .collect();
    assert_eq!(written.len(), 20);
    assert!(ids_of(&written).values().all(|n| *n == 1));
}

/// With write keys configured, a request without a valid one is refused before anything
/// else: 401 `unauthorized`, nothing dead-lettered, no schema looked up. A key in an
/// uncompressed body (as browsers send it) is read by a bounded scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_refused_before_anything_is_stored_or_looked_up() {
    let lookups = Arc::new(AtomicUsize::new(0));
    let registry = registry_server(lookups.clone()).await;
    let c = start_with_source(Source::Http(registry), |c| {
        c.write_keys(vec!["sesame".into()])
    })
    .await;
    let url = c.url("/v1/batch");
    let not_json = "x".repeat(100_000);
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case<'_>> = vec![
        ("no key, not a batch", not_json.clone(), vec![]),
        ("no key, a batch", batch(vec![play(1.0)]).to_string(), vec![]),
        ("a wrong header key", batch(vec![play(1.0)]).to_string(), vec![("authorization", "Bearer nope")]),
        (
            "a wrong body key",
            json!({ "sent_at": "2026-11-26T03:10:26.123Z", "write_key": "nope", "events": [play(1.0)] }).to_string(),
            vec![],
        ),
        ("a gzip body", "garbage".into(), vec![("content-encoding", "gzip")]),
    ];
    for (name, body, headers) in cases {
        let mut h = vec![("content-type", "application/json")];
        h.extend(headers);
        let (status, answer) = post(&url, body, &h).await;
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(answer["code"], "unauthorized", "{name}");
    }
    assert!(c.bad().is_empty(), "strangers reached the dead-letter sink");
    assert!(c.good().is_empty());
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        0,
        "strangers caused registry lookups"
    );
    // The right key, in the body or the header, is let in.
    let body = json!({ "sent_at": "2026-11-26T03:10:26.123Z", "write_key": "sesame", "events": [play(1.0)] });
    let (status, answer) = post(&url, body.to_string(), &[("content-type", "text/plain")]).await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = post(
        &url,
        batch(vec![play(2.0)]).to_string(),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer sesame"),
        ],
    )
    .await;
    assert_eq!(status, 200);
}

/// A static HTTP registry serving the project's schemas, counting lookups.
async fn registry_server(lookups: Arc<AtomicUsize>) -> String {
    use axum::extract::Path as UrlPath;
    let root = common::repo().join("schemas");
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::get(move |UrlPath(path): UrlPath<String>| {
            let root = root.clone();
            let lookups = lookups.clone();
            async move {
                lookups.fetch_add(1, Ordering::SeqCst);
                match std::fs::read(root.join(path)) {
                    Ok(bytes) => (axum::http::StatusCode::OK, bytes),
                    Err(_) => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A sink that refuses every write.
struct RefusingSink;

impl Sink for RefusingSink {
    fn write<'a>(&'a self, _: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async {
            Err(SinkError::Io {
                sink: "refusing".into(),
                cause: std::io::Error::from_raw_os_error(28),
            })
        })
    }
    fn describe(&self) -> String {
        "refusing".into()
    }
}

/// A refusal that should keep a dead letter, when the dead letter cannot be written, is a
/// 503 the sender retries — not a 400/415 it would drop while nothing was stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dead_letter_sink_turns_refusals_into_retries() {
    let config = CollectorConfig::new(Source::Dir(common::repo().join("schemas")));
    let (_collector, server) = serve_with_sinks(
        config,
        Arc::new(MemorySink::default()),
        Arc::new(RefusingSink),
    )
    .await;
    let url = format!("{}/v1/batch", server.endpoint());
    for (body, headers) in [
        (
            "{not json".to_owned(),
            vec![("content-type", "application/json")],
        ),
        (
            batch(vec![play(1.0)]).to_string(),
            vec![("content-type", "image/png")],
        ),
        (
            batch(vec![play(1.0)]).to_string(),
            vec![
                ("content-type", "application/json"),
                ("content-encoding", "br"),
            ],
        ),
    ] {
        let (status, answer) = post(&url, body, &headers).await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["code"], "unavailable");
    }
}

/// A schema broken when first read (half-written, wrong `self`) is looked at again after
/// the negative cache's time to live, like an unknown one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_schema_is_read_again_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("com.example/tick/jsonschema/1-0-0");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{\"self\": {\"vendor\": \"com.exa").unwrap();
    let c = start_with_source(Source::Dir(dir.path().to_owned()), |c| {
        c.negative_ttl(Duration::from_millis(200))
    })
    .await;
    let tick = || envelope("iglu:com.example/tick/jsonschema/1-0-0", json!({ "n": 1 }));
    let (_, answer) = post_json(&c.url("/v1/batch"), &batch(vec![tick()])).await;
    assert_eq!(answer["rejected"][0]["code"], "unknown_schema", "{answer}");
    std::fs::write(
        &path,
        json!({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": { "vendor": "com.example", "name": "tick", "format": "jsonschema", "version": "1-0-0" },
            "type": "object"
        })
        .to_string(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, answer) = post_json(&c.url("/v1/batch"), &batch(vec![tick()])).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
}

/// Each refusal has its own code; `malformed` is only for bodies that are not batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_has_its_own_code() {
    let c = start(|c| c.write_keys(vec!["k".into()])).await;
    let url = c.url("/v1/batch");
    let auth = ("authorization", "Bearer k");
    let ok = batch(vec![play(1.0)]).to_string();
    let (s, a) = post(&url, ok.clone(), &[("content-type", "application/json")]).await;
    assert_eq!((s, a["code"].as_str()), (401, Some("unauthorized")));
    let (s, a) = post(&url, ok.clone(), &[("content-type", "image/png"), auth]).await;
    assert_eq!(
        (s, a["code"].as_str()),
        (415, Some("unsupported_encoding")),
        "{a}"
    );
    let (s, a) = post(
        &url,
        ok,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "br"),
            auth,
        ],
    )
    .await;
    assert_eq!(
        (s, a["code"].as_str()),
        (415, Some("unsupported_encoding")),
        "{a}"
    );
    let (s, a) = post(
        &url,
        "{nope".to_owned(),
        &[("content-type", "application/json"), auth],
    )
    .await;
    assert_eq!((s, a["code"].as_str()), (400, Some("malformed")));
    // A body that never finishes: 408 `timeout`.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(c.server.addr())
        .await
        .unwrap();
    stream
        .write_all(b"POST /v1/batch HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"sent_at\"")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
}

/// `event_time` is always a valid RFC 3339 time near `received_at`: an uninitialised
/// `created_at` (year 1) with a fast client clock is clamped to the oldest allowed time,
/// and the good line says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_time_is_bounded_below_and_clamping_is_reported() {
    let c = start(|c| c).await;
    let mut e = play(1.0);
    e["created_at"] = json!("0001-01-01T00:00:00Z");
    let body = json!({ "sent_at": "2999-01-01T00:00:00Z", "events": [e] });
    let (status, answer) = post_json(&c.url("/v1/batch"), &body).await;
    assert_eq!(status, 200, "{answer}");
    let good = c.good();
    let line = &good[0];
    let received =
        chrono::DateTime::parse_from_rfc3339(line["received_at"].as_str().unwrap()).unwrap();
    let time = line["event_time"].as_str().unwrap();
    let time = chrono::DateTime::parse_from_rfc3339(time).unwrap_or_else(|e| panic!("{time}: {e}"));
    assert!(
        time <= received && received - time <= chrono::Duration::days(366),
        "{line}"
    );
    assert_eq!(line["event_time_clamped"], "too_old", "{line}");
    // An ordinary event says nothing of the kind.
    post_json(&c.url("/v1/batch"), &batch(vec![play(2.0)])).await;
    assert!(c.good()[1].get("event_time_clamped").is_none());
}

/// Numbers travel exactly and validation decides on the exact value: `-0` is an integer, an
/// integer beyond 64 bits is written as sent, and a bound is not passed by rounding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_kept_and_judged_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("com.example/count/jsonschema/1-0-0");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        json!({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": { "vendor": "com.example", "name": "count", "format": "jsonschema", "version": "1-0-0" },
            "type": "object",
            "properties": {
                "n": { "type": "integer" },
                "low": { "type": "integer", "minimum": -9223372036854775808i64 }
            }
        })
        .to_string(),
    )
    .unwrap();
    let c = start_with_source(Source::Dir(dir.path().to_owned()), |c| c).await;
    let event = |data: &str| {
        let e = envelope("iglu:com.example/count/jsonschema/1-0-0", json!({}));
        e.to_string()
            .replace("\"data\":{}", &format!("\"data\":{data}"))
    };
    let body = format!(
        "{{\"sent_at\":\"2026-11-26T03:10:26.123Z\",\"events\":[{},{},{},{}]}}",
        event("{\"n\":-0}"),
        event("{\"n\":12345678901234567890123}"),
        event("{\"low\":-9223372036854775809}"),
        event("{\"n\":1.50}")
    );
    let (status, answer) = post(
        &c.url("/v1/batch"),
        body,
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let rejected: Vec<u64> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, vec![2, 3], "{answer}");
    let text = std::fs::read_to_string(c.dir.path().join("good.jsonl")).unwrap();
    assert!(text.contains("\"n\":-0"), "{text}");
    assert!(text.contains("\"n\":12345678901234567890123"), "{text}");
}

/// Metric label values are bounded in length, and past the cardinality cap new values
/// share one `other` series: `/metrics` stays small whatever clients send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_stay_bounded() {
    let c = start(|c| c).await;
    let long = "s".repeat(64 * 1024);
    for i in 0..600 {
        let mut e = play(1.0);
        e["context"]["labels"]["service"] = json!(format!(
            "svc-{i}-{}",
            if i == 0 { long.as_str() } else { "" }
        ));
        e["context"]["labels"]["version"] = json!(format!("v{i}"));
        post_json(&c.url("/v1/batch"), &batch(vec![e])).await;
    }
    let metrics = c.metrics().await;
    assert!(
        metrics.len() < 200 * 1024,
        "{} bytes of metrics",
        metrics.len()
    );
    assert!(
        metrics.lines().all(|l| l.len() < 1024),
        "a label value was not cut"
    );
    assert!(
        metrics.contains("\"other\""),
        "no `other` series past the cap"
    );
}

/// One rule and one code for every depth: deeper than the limit is `too_large` (`maxDepth`),
/// whether 40 levels or 10,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_depth_over_the_limit_is_too_large() {
    let c = start(|c| c).await;
    for depth in [33, 40, 126, 127, 128, 130, 1000, 10_000] {
        let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let e = play(1.0).to_string().replace(
            "\"position_s\":1.0",
            &format!("\"position_s\":1.0,\"deep\":{nested}"),
        );
        let body = format!("{{\"sent_at\":\"2026-11-26T03:10:26.123Z\",\"events\":[{e}]}}");
        let (status, answer) = post(
            &c.url("/v1/batch"),
            body,
            &[("content-type", "application/json")],
        )
        .await;
        assert_eq!(status, 200, "depth {depth}: {answer}");
        assert_eq!(
            answer["rejected"][0]["code"], "too_large",
            "depth {depth}: {answer}"
        );
    }
    assert!(c
        .bad()
        .iter()
        .all(|d| d["errors"][0]["keyword"] == "maxDepth"));
}

/// A refused event resent (the sender did not hear the first answer) is refused again with
/// its code, but its dead letter is written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_refusal_is_dead_lettered_once() {
    let c = start(|c| c).await;
    let mut wrong = play(1.0);
    wrong["data"]["position_s"] = json!("not a number");
    let body = batch(vec![wrong, play(2.0)]);
    for round in 0..3 {
        let (status, answer) = post_json(&c.url("/v1/batch"), &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["rejected"].as_array().unwrap().len(),
            1,
            "round {round}: {answer}"
        );
        assert_eq!(answer["rejected"][0]["code"], "schema_invalid", "{answer}");
    }
    assert_eq!(c.bad().len(), 1, "{:?}", c.bad());
    assert_eq!(c.good().len(), 1);
}

/// One UUID spelled in upper and in lower case is one event, within a batch as across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_uuid_in_two_spellings_is_one_event() {
    let c = start(|c| c).await;
    let first = play(1.0);
    let mut upper = play(1.0);
    upper["event_id"] = json!(first["event_id"].as_str().unwrap().to_uppercase());
    let (status, answer) = post_json(&c.url("/v1/batch"), &batch(vec![first, upper.clone()])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(1), Some(1)),
        "{answer}"
    );
    let (_, answer) = post_json(&c.url("/v1/batch"), &batch(vec![upper])).await;
    assert_eq!(answer["duplicates"], 1, "{answer}");
    assert_eq!(c.good().len(), 1);
}

/// Concatenated gzip members are one gzip body: every member's events are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_member_gzip_body_is_read_whole() {
    use std::io::Write;
    let c = start(|c| c).await;
    let text = batch(vec![play(1.0), play(2.0)]).to_string();
    let (head, tail) = text.split_at(text.len() / 2);
    let mut body = Vec::new();
    for part in [head, tail] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(part.as_bytes()).unwrap();
        body.extend(gz.finish().unwrap());
    }
    let (status, answer) = post(
        &c.url("/v1/batch"),
        body,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
}

/// Posts `start` as the first bytes of a declared 10,000-byte body, sends no more, and
/// returns the head of the answer (which comes after the 2 s body timeout).
async fn trickle(endpoint: &str, start: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 10000\r\n\r\n{start}"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a trickled body");
    String::from_utf8_lossy(&answer).into_owned()
}

/// With write keys, a body without a header key that fails to arrive — too large, too slow —
/// before its key was seen is a stranger's: 401, and no dead letter written for it. A
/// repeated `write_key` parameter is no key (an answer in the collector's own shape). The
/// dev view and the unique counts are for key holders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_failing_bodies_leave_no_trace() {
    let c = start(|c| {
        c.write_keys(vec!["sesame".into()])
            .limits(eventwire_collector::validate::Limits {
                max_body_bytes: 64 * 1024,
                ..Default::default()
            })
    })
    .await;
    let url = c.url("/v1/batch");
    let json = [("content-type", "application/json")];
    let (status, answer) = post(&url, "y".repeat(200_000), &json).await;
    assert_eq!(
        (status, &answer["code"]),
        (401, &json!("unauthorized")),
        "{answer}"
    );

    // Sends 100 bytes of a declared 10,000 and waits past the 2 s body timeout.
    let answer = trickle(&c.endpoint(), &"z".repeat(100)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    let (status, answer) = post(
        &format!("{url}?write_key=sesame&write_key=sesame"),
        batch(vec![play(1.0)]).to_string(),
        &json,
    )
    .await;
    assert_eq!(
        (status, &answer["code"]),
        (401, &json!("unauthorized")),
        "{answer}"
    );
    assert!(
        c.bad().is_empty(),
        "strangers reached the dead-letter sink: {:?}",
        c.bad()
    );
    assert!(c.good().is_empty());

    // A key holder's oversized body is dead-lettered as ever.
    let (status, _) = post(
        &format!("{url}?write_key=sesame"),
        "y".repeat(200_000),
        &json,
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(c.bad().len(), 1);

    let client = reqwest::Client::new();
    for path in [
        "/v1/events",
        "/v1/uniques?schema=iglu:com.example.media/play/jsonschema/1-0-0",
    ] {
        let stranger = client.get(c.url(path)).send().await.unwrap();
        assert_eq!(stranger.status(), 401, "{path}");
        let holder = client
            .get(c.url(path))
            .bearer_auth("sesame")
            .send()
            .await
            .unwrap();
        assert_eq!(holder.status(), 200, "{path}");
    }
    let stranger = client.delete(c.url("/v1/events")).send().await.unwrap();
    assert_eq!(stranger.status(), 401);
}

/// Once a key holder's body key has been seen, a body that then trickles is the sender's own
/// 408 (retried), not a stranger's 401 (dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_holders_slow_body_is_a_timeout_not_a_stranger() {
    let c = start(|c| c.write_keys(vec!["sesame".into()])).await;
    let answer = trickle(&c.endpoint(), r#"{"write_key":"sesame","events":["#).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Two different events under one event id, both refused, are two dead letters: only the
/// same refusal of the same event is written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_refused_events_sharing_an_id_are_two_dead_letters() {
    let c = start(|c| c).await;
    let mut one = play(1.0);
    one["data"]["position_s"] = json!("not a number");
    let mut other = one.clone();
    other["data"]["position_s"] = json!("nor this");
    let (status, answer) = post_json(&c.url("/v1/batch"), &batch(vec![one.clone()])).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post_json(&c.url("/v1/batch"), &batch(vec![other, one])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rejected"].as_array().unwrap().len(), 2, "{answer}");
    let bad = c.bad();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert_ne!(bad[0]["event"], bad[1]["event"]);
}

/// When the dead-letter sink fails after the good sink took a batch's good events, those
/// are counted as accepted (they are stored, and the resend finds them duplicates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_events_stored_before_a_dead_letter_failure_are_counted() {
    let good = Arc::new(MemorySink::default());
    let config = CollectorConfig::new(Source::Dir(common::repo().join("schemas")));
    let (collector, server) = serve_with_sinks(config, good.clone(), Arc::new(RefusingSink)).await;
    let url = format!("{}/v1/batch", server.endpoint());
    let mut wrong = play(1.0);
    wrong["data"]["position_s"] = json!("not a number");
    let good_one = play(2.0);
    // The good event twice: the second copy is a duplicate, counted only when a batch is
    // answered (not on a 503, so not once per resend).
    let body = batch(vec![good_one.clone(), good_one, wrong]);
    for (round, counted) in [(1, 0), (1, 0), (1, 0)].into_iter().enumerate() {
        let (status, answer) = post_json(&url, &body).await;
        assert_eq!(status, 503, "round {round}: {answer}");
        let totals = collector.totals();
        assert_eq!(
            (totals.accepted, totals.duplicates, totals.rejected),
            (counted.0, counted.1, 0),
            "round {round}: {totals:?}"
        );
    }
    assert_eq!(good.records().len(), 1);
}

/// A sink that stores the batch and then fails, naming as taken the records `taken` lists
/// for a batch of that many (as it likes: twice, out of range).
struct NamingSink {
    inner: MemorySink,
    taken: fn(usize) -> Vec<usize>,
}

impl Sink for NamingSink {
    fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.inner.write(records).await?;
            Err(SinkError::Broker {
                sink: "naming".into(),
                message: "no acknowledgement for the rest".into(),
                written: (self.taken)(records.len()),
            })
        })
    }
    fn describe(&self) -> String {
        "naming".into()
    }
}

/// What a failing sink says it took is counted once per record, however it says it, and
/// remembered: the resend writes only what was not taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_naming_a_record_twice_counts_it_once() {
    let config = CollectorConfig::new(Source::Dir(common::repo().join("schemas")));
    let (collector, server) = serve_with_sinks(
        config,
        Arc::new(NamingSink {
            inner: MemorySink::default(),
            // Every record but the last, each named twice, and one that is not there.
            taken: |n| {
                (0..n.saturating_sub(1))
                    .chain(0..n.saturating_sub(1))
                    .chain([99])
                    .collect()
            },
        }),
        Arc::new(MemorySink::default()),
    )
    .await;
    let url = format!("{}/v1/batch", server.endpoint());
    let events = batch(vec![play(1.0), play(2.0), play(3.0)]);
    let (status, answer) = post_json(&url, &events).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(collector.totals().accepted, 2, "{:?}", collector.totals());
    // The resend: two duplicates, and the third is written alone (and not taken again).
    let (status, _) = post_json(&url, &events).await;
    assert_eq!(status, 503);
    assert_eq!(collector.totals().accepted, 2);
    let (status, _) = post_json(&url, &batch(vec![play(1.0), play(2.0)])).await;
    assert_eq!(status, 503);
    assert_eq!(collector.totals().accepted, 3);
}

/// A sink that failed but took every record of a request leaves nothing to resend: the
/// request is answered 200, each record counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_that_took_every_record_is_answered_200() {
    let config = CollectorConfig::new(Source::Dir(common::repo().join("schemas")));
    let good = MemorySink::default();
    let (collector, server) = serve_with_sinks(
        config,
        Arc::new(NamingSink {
            inner: good.clone(),
            // Every record, each twice.
            taken: |n| (0..n).chain(0..n).collect(),
        }),
        Arc::new(MemorySink::default()),
    )
    .await;
    let url = format!("{}/v1/batch", server.endpoint());
    let (status, answer) = post_json(&url, &batch(vec![play(1.0), play(2.0)])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(collector.totals().accepted, 2);
    assert_eq!(good.records().len(), 2);
}

/// A key holder's body that arrives a byte at a time, its key at the end, is read whole:
/// the key is looked for when the body ends, not only when 4 KiB are in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_key_in_tiny_parts_at_the_end_is_found() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = start(|c| c.write_keys(vec!["sesame".into()])).await;
    let addr = c.endpoint().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut body = batch(vec![play(1.0)]);
    body["write_key"] = json!("sesame");
    let body = body.to_string();
    assert!(body.ends_with(r#""write_key":"sesame"}"#), "{body}");
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for (i, b) in body.bytes().enumerate() {
        stream
            .write_all(format!("1\r\n{}\r\n", b as char).as_bytes())
            .await
            .unwrap();
        if i % 64 == 0 {
            stream.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(c.good().len(), 1);
}

/// One file for the good and the dead-letter sink is refused at start: each would cut the
/// other's lines after a failed write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_for_both_sinks_is_refused() {
    use eventwire_collector::server::CollectorError;
    use eventwire_collector::sink::SinkSpec;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let config = CollectorConfig::new(Source::Dir(common::repo().join("schemas")))
        .good(SinkSpec::parse(path.to_str().unwrap()))
        .bad(SinkSpec::parse(
            dir.path().join(".").join("events.jsonl").to_str().unwrap(),
        ));
    match Collector::new(config).await {
        Err(CollectorError::SharedSinkFile(p)) => {
            assert_eq!(p, std::fs::canonicalize(&path).unwrap());
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("one file for both sinks was accepted"),
    }
    // The same file under another name (a hard link).
    let link = dir.path().join("also.jsonl");
    std::fs::hard_link(&path, &link).unwrap();
    let config = CollectorConfig::new(Source::Dir(common::repo().join("schemas")))
        .good(SinkSpec::parse(path.to_str().unwrap()))
        .bad(SinkSpec::parse(link.to_str().unwrap()));
    assert!(matches!(
        Collector::new(config).await,
        Err(CollectorError::SharedSinkFile(_))
    ));
    // Two files are fine.
    let config = CollectorConfig::new(Source::Dir(common::repo().join("schemas")))
        .good(SinkSpec::parse(path.to_str().unwrap()))
        .bad(SinkSpec::parse(
            dir.path().join("bad.jsonl").to_str().unwrap(),
        ));
    assert!(Collector::new(config).await.is_ok());
}

/// A stranger's query to the unique counts is refused for the missing key before the query
/// itself is judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_401_before_their_query_is_judged() {
    let c = start(|c| c.write_keys(vec!["sesame".into()])).await;
    let client = reqwest::Client::new();
    for path in [
        "/v1/uniques",
        "/v1/events?kind=nonsense",
        "/v1/uniques?schema=",
    ] {
        let stranger = client.get(c.url(path)).send().await.unwrap();
        assert_eq!(stranger.status(), 401, "{path}");
    }
    let holder = client
        .get(c.url("/v1/uniques"))
        .bearer_auth("sesame")
        .send()
        .await
        .unwrap();
    assert_ne!(holder.status(), 401);
}
