//! Work in flight: requests' records are committed in groups (no lock held across a sink
//! write), and past the bounds of work in flight a request is shed at once — 503 with
//! `Retry-After`, before its body is read — while `/healthz` and `/metrics` keep answering.

#![allow(clippy::unwrap_used)] // tests: fail loudly

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{batch, play, post_json, serve_with_sinks};
use eventwire_collector::registry::Source;
use eventwire_collector::server::{Collector, CollectorConfig, ServerHandle};
use eventwire_collector::sink::{MemorySink, Sink, SinkError, SinkRecord};
use eventwire_testkit::probe::metric_sum;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// A good sink whose writes each wait for a permit (the test hands them out), and which
/// records how many records each write carried.
#[derive(Clone)]
struct GatedSink {
    inner: MemorySink,
    gate: Arc<Semaphore>,
    writes: Arc<Mutex<Vec<usize>>>,
    waiting: Arc<AtomicUsize>,
}

impl Sink for GatedSink {
    fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let permit = self.gate.acquire().await;
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            permit.unwrap().forget();
            self.writes.lock().unwrap().push(records.len());
            self.inner.write(records).await
        })
    }
    fn describe(&self) -> String {
        "gated".into()
    }
}

impl Default for GatedSink {
    fn default() -> Self {
        GatedSink {
            inner: MemorySink::default(),
            gate: Arc::new(Semaphore::new(0)),
            writes: Arc::default(),
            waiting: Arc::default(),
        }
    }
}

impl GatedSink {
    /// Waits until a write is held at the gate.
    async fn held(&self) {
        for _ in 0..500 {
            if self.waiting.load(Ordering::SeqCst) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no write reached the sink");
    }

    /// Lets every write through from now on.
    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

async fn serve(config: CollectorConfig, good: &GatedSink) -> (Collector, ServerHandle) {
    serve_with_sinks(
        config,
        Arc::new(good.clone()),
        Arc::new(MemorySink::default()),
    )
    .await
}

/// Waits until `/metrics` shows at least `n` requests in flight.
async fn wait_for_in_flight(server: &ServerHandle, n: f64) {
    let url = format!("{}/metrics", server.endpoint());
    for _ in 0..500 {
        let (_, scrape) = get(&url).await;
        if metric_sum(&scrape, "eventwire_in_flight_requests") >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never {n} requests in flight");
}

fn config() -> CollectorConfig {
    CollectorConfig::new(Source::Dir(common::repo().join("schemas")))
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The head of the answer to a request whose headers are sent but whose body never is.
async fn headers_only(addr: std::net::SocketAddr, content_length: usize) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered before the body was sent")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).to_lowercase()
}

/// While one group's write is held, the requests arriving meanwhile wait without a lock
/// and are written together, with one write, each answered when its lines are in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_arriving_during_a_write_are_written_together() {
    let good = GatedSink::default();
    let (collector, server) = serve(config(), &good).await;
    let url = format!("{}/v1/batch", server.endpoint());
    let first = tokio::spawn({
        let url = url.clone();
        async move { post_json(&url, &batch(vec![play(0.0)])).await }
    });
    good.held().await;
    let later: Vec<_> = (0..10)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                post_json(&url, &batch(vec![play(f64::from(i)), play(f64::from(i))])).await
            })
        })
        .collect();
    // All ten admitted and validated (tiny batches), so waiting at the group commit.
    wait_for_in_flight(&server, 11.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    good.open();
    assert_eq!(first.await.unwrap().0, 200);
    for request in later {
        let (status, answer) = request.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], 2, "{answer}");
    }
    let writes = good.writes.lock().unwrap().clone();
    assert_eq!(writes.iter().sum::<usize>(), 21, "{writes:?}");
    assert_eq!(writes[0], 1, "{writes:?}");
    // Not one write per request: the ten that came during the first write share one (or,
    // on a slow machine where some were still being validated, very few).
    assert!(writes.len() <= 3, "{writes:?}");
    assert!(writes[1] >= 10, "{writes:?}");
    assert_eq!(collector.totals().accepted, 21);
    server.shutdown().await;
}

/// Past the bound of requests in flight, a request is answered 503 with `Retry-After` at
/// once, before its body is sent, and counted; health and metrics keep answering; once the
/// work in flight ends, requests are taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_request_bound_a_request_is_shed_before_its_body_is_read() {
    let good = GatedSink::default();
    let (collector, server) = serve(config().max_in_flight(2, 32 * 1024 * 1024), &good).await;
    let url = format!("{}/v1/batch", server.endpoint());
    let held: Vec<_> = (0..2)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move { post_json(&url, &batch(vec![play(f64::from(i))])).await })
        })
        .collect();
    good.held().await;
    wait_for_in_flight(&server, 2.0).await;
    let scrape_url = format!("{}/metrics", server.endpoint());

    let answer = headers_only(server.addr(), 1000).await;
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1\r\n"), "{answer}");
    assert!(answer.contains("\"code\":\"unavailable\""), "{answer}");
    assert!(answer.contains("too many requests in flight"), "{answer}");

    let (status, body) = get(&format!("{}/healthz", server.endpoint())).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, scrape) = get(&scrape_url).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric_sum(
            &scrape,
            "eventwire_requests_shed_total{reason=\"requests\"}"
        ),
        1.0,
        "{scrape}"
    );
    assert_eq!(
        metric_sum(&scrape, "eventwire_requests_total{status=\"503\"}"),
        1.0
    );

    good.open();
    for request in held {
        assert_eq!(request.await.unwrap().0, 200);
    }
    let (status, answer) = post_json(&url, &batch(vec![play(9.0)])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(collector.totals().accepted, 3);
    assert_eq!(collector.totals().requests, 4);
    server.shutdown().await;
}

/// Past the bound of bytes in flight (a body's declared length counts before it is read),
/// a request is shed the same way; a body larger than the whole bound is taken alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_byte_bound_a_request_is_shed_before_its_body_is_read() {
    let good = GatedSink::default();
    let (_collector, server) = serve(config().max_in_flight(64, 64 * 1024), &good).await;
    let url = format!("{}/v1/batch", server.endpoint());
    // ≈ 40 KiB of events, held at the sink.
    let mut big: Vec<Value> = Vec::new();
    while batch(big.clone()).to_string().len() < 40 * 1024 {
        big.push(play(1.0));
    }
    let body = batch(big);
    let held = tokio::spawn({
        let url = url.clone();
        async move { post_json(&url, &body).await }
    });
    good.held().await;

    let answer = headers_only(server.addr(), 40 * 1024).await;
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("too many bytes in flight"), "{answer}");
    // A small one still fits.
    let small = tokio::spawn({
        let url = url.clone();
        async move { post_json(&url, &batch(vec![play(1.0)])).await }
    });
    let (_, scrape) = get(&format!("{}/metrics", server.endpoint())).await;
    assert_eq!(
        metric_sum(&scrape, "eventwire_requests_shed_total{reason=\"bytes\"}"),
        1.0,
        "{scrape}"
    );
    good.open();
    assert_eq!(held.await.unwrap().0, 200);
    assert_eq!(small.await.unwrap().0, 200);
    server.shutdown().await;
}

/// Connections that declare big bodies and trickle them hold only what arrived: they do
/// not shut out a request that sends its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bodies_hold_only_what_arrived() {
    let good = GatedSink::default();
    good.open();
    let (_collector, server) = serve(config().max_in_flight(64, 64 * 1024), &good).await;
    let mut tricklers = Vec::new();
    for _ in 0..8 {
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let head = "POST /v1/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n{";
        stream.write_all(head.as_bytes()).await.unwrap();
        tricklers.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut events: Vec<Value> = Vec::new();
    while batch(events.clone()).to_string().len() < 40 * 1024 {
        events.push(play(1.0));
    }
    let url = format!("{}/v1/batch", server.endpoint());
    let (status, answer) = post_json(&url, &batch(events)).await;
    assert_eq!(status, 200, "{answer}");
    drop(tricklers);
    server.shutdown().await;
}

/// `/healthz` says 503 while a sink write has been under way too long (a stuck disk, a
/// broker that does not answer), and ok again once it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_stuck_sink_write() {
    let good = GatedSink::default();
    let mut cfg = config();
    cfg.health_max_write = Duration::from_millis(300);
    let (_collector, server) = serve(cfg, &good).await;
    let health = format!("{}/healthz", server.endpoint());
    assert_eq!(get(&health).await.0, 200);
    let url = format!("{}/v1/batch", server.endpoint());
    let held = tokio::spawn(async move { post_json(&url, &batch(vec![play(1.0)])).await });
    good.held().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = get(&health).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("sink write"), "{body}");
    good.open();
    assert_eq!(held.await.unwrap().0, 200);
    assert_eq!(get(&health).await.0, 200);
    server.shutdown().await;
}
