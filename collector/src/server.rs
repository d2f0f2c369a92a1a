//! The HTTP server: `POST /v1/batch`, `GET /healthz`, `GET /metrics`, the dev-mode event
//! view and `GET /v1/uniques`.

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use eventwire_schema::protocol::{BatchResponse, ErrorCode, Rejection};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::dedup::{DedupWindow, DEFAULT_DEDUP_GENERATION};
use crate::metrics::Metrics;
use crate::record::{DeadLetter, ErrorDetail, GoodRecord};
use crate::registry::{Registry, RegistryError, Source, DEFAULT_NEGATIVE_TTL};
use crate::sink::{Sink, SinkError, SinkRecord, SinkSpec};
use crate::time::format_timestamp;
use crate::uniques::{parse_window, Uniques};
use crate::validate::{BatchError, Checked, Limits, Pipeline};

pub use crate::defaults::{DEFAULT_BODY_TIMEOUT, DEFAULT_DEV_CAPACITY, DEFAULT_HEADER_TIMEOUT};
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;
/// Most open connections; further ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 1024;
/// `Retry-After` sent with a 503.
pub const RETRY_AFTER_SECONDS: u64 = 2;

/// How to run a collector. Every knob has a `DEFAULT_*` constant.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Where schemas come from.
    pub source: Source,
    /// Good events go here.
    pub good: SinkSpec,
    /// Dead letters go here.
    pub bad: SinkSpec,
    /// Size and shape limits.
    pub limits: Limits,
    /// Accepted write keys; empty means no key is required.
    pub write_keys: Vec<String>,
    /// Browser origins allowed by CORS (`*` for any); empty means no CORS headers.
    pub cors_origins: Vec<String>,
    /// Keep recent events in memory and serve them at `/v1/events`.
    pub dev: bool,
    /// Events kept per kind in dev mode.
    pub dev_capacity: usize,
    /// Dedup window generation (see [`DedupWindow`]).
    pub dedup_generation: usize,
    /// How long an unknown schema is remembered as unknown.
    pub negative_ttl: Duration,
    /// Time allowed to receive a body.
    pub body_timeout: Duration,
    /// `fsync` file sinks after each batch (slower, survives power loss).
    pub fsync: bool,
}

impl CollectorConfig {
    /// Defaults, reading schemas from `source`, writing to `good.jsonl` and `bad.jsonl`.
    pub fn new(source: Source) -> Self {
        CollectorConfig {
            source,
            good: SinkSpec::File("good.jsonl".into()),
            bad: SinkSpec::File("bad.jsonl".into()),
            limits: Limits::default(),
            write_keys: Vec::new(),
            cors_origins: Vec::new(),
            dev: false,
            dev_capacity: DEFAULT_DEV_CAPACITY,
            dedup_generation: DEFAULT_DEDUP_GENERATION,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            fsync: false,
        }
    }

    /// Good events go to `sink`.
    pub fn good(mut self, sink: SinkSpec) -> Self {
        self.good = sink;
        self
    }

    /// Dead letters go to `sink`.
    pub fn bad(mut self, sink: SinkSpec) -> Self {
        self.bad = sink;
        self
    }

    /// Requires one of these write keys.
    pub fn write_keys(mut self, keys: Vec<String>) -> Self {
        self.write_keys = keys;
        self
    }

    /// Allows these browser origins (CORS).
    pub fn cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// Turns the dev mode on or off.
    pub fn dev(mut self, on: bool) -> Self {
        self.dev = on;
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long unknown schemas stay unknown.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Time allowed to receive a body.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }
}

/// Why a collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The registry could not be opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A sink could not be opened.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Metrics could not be registered, or the envelope schema did not compile.
    #[error("{0}")]
    Internal(String),
    /// The listener could not be bound.
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
    /// The good and the dead-letter sink are the same file.
    #[error("the good and the dead-letter sink are the same file ({}): give each its own", .0.display())]
    SharedSinkFile(std::path::PathBuf),
}

/// Totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Events written to the good sink.
    pub accepted: u64,
    /// Events and requests dead-lettered: lines written to the dead-letter sink.
    pub rejected: u64,
    /// Events not written again: good events already stored, and refused events whose dead
    /// letter was already written (a resend; the answer still reports them rejected).
    pub duplicates: u64,
    /// Batch requests answered.
    pub requests: u64,
}

/// Recent records in dev mode.
#[derive(Debug, Default)]
struct Recent {
    good: VecDeque<Value>,
    bad: VecDeque<Value>,
}

struct Shared {
    pipeline: Pipeline,
    registry: Registry,
    good: Arc<dyn Sink>,
    bad: Arc<dyn Sink>,
    /// Held from the dedup check to the dedup insert, across the sink writes: two requests
    /// carrying the same event (a retry racing the original) cannot both write it. Good
    /// events' ids, and dead-lettered events' ids (a resend of a refused event is refused
    /// again, but not written to the dead-letter sink twice).
    commit: tokio::sync::Mutex<(DedupWindow, DedupWindow)>,
    metrics: Metrics,
    recent: Option<Mutex<Recent>>,
    dev_capacity: usize,
    uniques: Mutex<Uniques>,
    write_keys: Vec<String>,
    body_timeout: Duration,
    accepted: AtomicU64,
    rejected: AtomicU64,
    duplicates: AtomicU64,
    requests: AtomicU64,
}

/// A collector: validation, sinks and state, ready to serve.
#[derive(Clone)]
pub struct Collector {
    shared: Arc<Shared>,
    cors_origins: Vec<String>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("registry", &self.shared.registry)
            .field("good", &self.shared.good.describe())
            .field("bad", &self.shared.bad.describe())
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Opens the registry and the sinks named in `config`.
    pub async fn new(config: CollectorConfig) -> Result<Self, CollectorError> {
        let good = config.good.open(config.fsync).await?;
        let bad = config.bad.open(config.fsync).await?;
        // Two file sinks on one file would each cut the other's lines when a write fails.
        // Compared by the file itself (device and inode), so hard links and bind mounts
        // are seen too.
        if let (SinkSpec::File(g), SinkSpec::File(b)) = (&config.good, &config.bad) {
            if same_file::is_same_file(g, b).unwrap_or(false) {
                return Err(CollectorError::SharedSinkFile(
                    std::fs::canonicalize(g).unwrap_or_else(|_| g.clone()),
                ));
            }
        }
        Self::with_sinks(config, good, bad)
    }

    /// A collector writing to sinks you made (tests, embedding).
    pub fn with_sinks(
        config: CollectorConfig,
        good: Arc<dyn Sink>,
        bad: Arc<dyn Sink>,
    ) -> Result<Self, CollectorError> {
        let registry = Registry::new(config.source.clone())?.with_negative_ttl(config.negative_ttl);
        let pipeline = Pipeline::new(config.limits).map_err(CollectorError::Internal)?;
        let metrics = Metrics::new().map_err(|e| CollectorError::Internal(e.to_string()))?;
        // A restart must not forget what was just stored: resends of batches whose answer
        // was lost with the old process are still duplicates.
        let mut dedup = DedupWindow::new(config.dedup_generation);
        let seeded = good.recent_keys();
        if !seeded.is_empty() {
            tracing::info!(ids = seeded.len(), sink = %good.describe(), "deduplication seeded from the good sink");
        }
        for id in &seeded {
            dedup.insert(id);
        }
        Ok(Collector {
            shared: Arc::new(Shared {
                pipeline,
                registry,
                good,
                bad,
                commit: tokio::sync::Mutex::new((
                    dedup,
                    DedupWindow::new(config.dedup_generation / 10 + 1),
                )),
                metrics,
                recent: config.dev.then(|| Mutex::new(Recent::default())),
                dev_capacity: config.dev_capacity.max(1),
                uniques: Mutex::default(),
                write_keys: config.write_keys,
                body_timeout: config.body_timeout,
                accepted: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                duplicates: AtomicU64::new(0),
                requests: AtomicU64::new(0),
            }),
            cors_origins: config.cors_origins,
        })
    }

    /// Totals since start.
    pub fn totals(&self) -> Totals {
        let s = &self.shared;
        Totals {
            accepted: s.accepted.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
        }
    }

    /// The routes, as an axum router.
    pub fn router(&self) -> Router {
        // The dev view and the unique counts: for key holders, checked before the handlers
        // read their query.
        let key_holders = Router::new()
            .route("/v1/events", get(dev_events).delete(dev_reset))
            .route("/v1/events/reset", post(dev_reset))
            .route("/v1/uniques", get(uniques))
            .route_layer(axum::middleware::from_fn_with_state(
                self.shared.clone(),
                key_holders_only,
            ));
        let router = Router::new()
            .route("/v1/batch", post(batch))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .merge(key_holders)
            .with_state(self.shared.clone());
        match cors(&self.cors_origins) {
            Some(layer) => router.layer(layer),
            None => router,
        }
    }

    /// Listens on `addr` (port 0 picks a free port) and serves until shut down.
    pub async fn serve(&self, addr: SocketAddr) -> Result<ServerHandle, CollectorError> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let router = self.router();
        let task = tokio::spawn(accept_loop(listener, router, stopped));
        tracing::info!(%addr, "collector listening");
        Ok(ServerHandle {
            addr,
            stop,
            task: Some(task),
        })
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ServerHandle {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to give trackers.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until the process is stopped.
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stopped.changed() => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(DEFAULT_HEADER_TIMEOUT)
                .max_headers(MAX_HEADERS)
                .max_buf_size(64 * 1024);
            if let Err(e) = builder
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::CONTENT_ENCODING,
            ])
            // The browser package reads `Retry-After` on 429/503 to pause as asked.
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(3600)),
    )
}

#[derive(Debug, Deserialize)]
struct BatchQuery {
    write_key: Option<String>,
}

/// A request refused as a whole.
struct Refused {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// What to keep of the request in the dead letter.
    raw: Vec<u8>,
    /// Store a dead letter (false for 401 and 503: nothing was accepted, nothing is lost).
    dead_letter: bool,
}

impl Refused {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>, raw: &[u8]) -> Self {
        Refused {
            status,
            code,
            message: message.into(),
            raw: raw[..raw.len().min(crate::record::MAX_RAW_BYTES)].to_vec(),
            dead_letter: true,
        }
    }
}

async fn batch(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<BatchQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // A query string that does not parse (a repeated `write_key`…) carries no key; the
    // request is judged on the rest, never refused outside the collector's own answers.
    let query = query.map_or(BatchQuery { write_key: None }, |Query(q)| q);
    let started = Instant::now();
    let received_at = Utc::now();
    let (response, bytes) = shared
        .clone()
        .handle(received_at, query, headers, body)
        .await;
    shared.requests.fetch_add(1, Ordering::Relaxed);
    shared.metrics.request(
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
        bytes,
    );
    response
}

impl Shared {
    async fn handle(
        self: Arc<Self>,
        received_at: DateTime<Utc>,
        query: BatchQuery,
        headers: HeaderMap,
        body: Body,
    ) -> (Response, usize) {
        let received = format_timestamp(received_at);
        // With write keys, a stranger is turned away before anything is read, parsed, looked
        // up or stored: a key in the header or the query now, one in the body right after the
        // body arrives (a bounded scan, before any parsing).
        let header_key = bearer(&headers).or(query.write_key);
        let keys = !self.write_keys.is_empty();
        if keys
            && header_key
                .as_deref()
                .is_some_and(|k| !self.known_key(k.as_bytes()))
        {
            return (respond(unauthorized()), 0);
        }
        // From here on, whatever is started runs to its end even if the client goes away
        // (hyper drops this future then): a sink write that began is finished and recorded.
        // Without a key in the header, the body's first 4 KiB must hold one: checked once
        // they are in (or the body ended or failed sooner), and a stranger's body is not read
        // further (nor dead-lettered when it fails to arrive).
        let body_key = keys && header_key.is_none();
        let raw = match self.read_body(body, body_key.then_some(&headers)).await {
            Ok(raw) => raw,
            Err(refused) if refused.status == StatusCode::UNAUTHORIZED => {
                return (respond(refused), 0)
            }
            Err(refused) => return (self.spawn_refusal(received, refused).await, 0),
        };
        let len = raw.len();
        let shared = self.clone();
        let work = tokio::spawn(async move {
            match shared.process(received_at, &received, &headers, &raw).await {
                Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
                Err(refused) => shared.refuse(&received, refused).await,
            }
        });
        let response = work.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "a batch's processing task failed");
            respond(unavailable("the request could not be processed".into()))
        });
        (response, len)
    }

    /// [`Shared::refuse`] in a task of its own, so that a dead letter is written whole even
    /// if the client goes away meanwhile.
    async fn spawn_refusal(self: Arc<Self>, received: String, refused: Refused) -> Response {
        let shared = self.clone();
        tokio::spawn(async move { shared.refuse(&received, refused).await })
            .await
            .unwrap_or_else(|_| respond(unavailable("the request could not be processed".into())))
    }

    /// Whether `key` is one of the write keys; compared in constant time (per key).
    fn known_key(&self, key: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let mut known = subtle::Choice::from(0);
        for k in &self.write_keys {
            known |= k.as_bytes().ct_eq(key);
        }
        known.into()
    }

    /// A write key in the body of an uncompressed request (browsers put it there: a beacon
    /// cannot set headers), found by a bounded scan before any parsing.
    fn body_key_ok(&self, headers: &HeaderMap, raw: &[u8]) -> bool {
        // As `decode` reads it: none, empty or `identity` is plain.
        let encoded = headers.get(header::CONTENT_ENCODING).is_some_and(|v| {
            let v = v.as_bytes();
            !(v.is_empty() || v.eq_ignore_ascii_case(b"identity"))
        });
        !encoded && crate::auth::body_write_key(raw).is_some_and(|k| self.known_key(k))
    }

    /// Reads the body, bounded in size and time. With `key_in` (write keys required and
    /// none in the header or the query), the body must carry a known key in its first
    /// [`crate::auth::BODY_KEY_SCAN`] bytes: looked for once they are in, when the body ends
    /// or fails sooner, and when a part is refused as too large; a body whose first 4 KiB
    /// are in without one is not read further. A body that fails (too large, too
    /// slow, cut off) before a known key was seen is a stranger's: 401, nothing stored. Once
    /// the key is seen, a failure is the sender's usual 413/408/400.
    async fn read_body(&self, body: Body, key_in: Option<&HeaderMap>) -> Result<Vec<u8>, Refused> {
        let limit = self.pipeline.limits().max_body_bytes;
        let mut key_pending = key_in.is_some();
        let mut raw = Vec::new();
        let mut body = std::pin::pin!(body);
        let deadline = tokio::time::Instant::now() + self.body_timeout;
        // While a key is pending, `raw` is shorter than the scan window. It is scanned when
        // the window is complete, when the body ends or fails, and when a part is refused as
        // too large: a few scans per request whatever the framing (not one per part).
        let key_seen = |raw: &[u8]| key_in.is_some_and(|h| self.body_key_ok(h, raw));
        let failed = |refused: Refused, raw: &[u8], pending: bool| {
            if pending && !key_seen(raw) {
                unauthorized()
            } else {
                refused
            }
        };
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.as_mut().frame()).await {
                Err(_) => {
                    let refused = Refused::new(
                        StatusCode::REQUEST_TIMEOUT,
                        ErrorCode::Timeout,
                        format!("body not received within {:?}", self.body_timeout),
                        b"",
                    );
                    return Err(failed(refused, &raw, key_pending));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    let refused = Refused::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::Malformed,
                        format!("body could not be read: {e}"),
                        b"",
                    );
                    return Err(failed(refused, &raw, key_pending));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let too_large = raw.len() + data.len() > limit;
            if key_pending {
                let before = raw.len();
                let take = crate::auth::BODY_KEY_SCAN
                    .saturating_sub(before)
                    .min(data.len());
                let complete = before + take >= crate::auth::BODY_KEY_SCAN;
                if complete || too_large {
                    // The window as it stands with this part; put back before the part is
                    // taken whole (or refused as too large).
                    raw.extend_from_slice(&data[..take]);
                    let found = key_seen(&raw);
                    raw.truncate(before);
                    if found {
                        key_pending = false;
                    } else if complete {
                        return Err(unauthorized());
                    }
                }
            }
            if too_large {
                let refused = Refused::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::TooLarge,
                    format!("body over {limit} bytes"),
                    b"",
                );
                return Err(if key_pending { unauthorized() } else { refused });
            }
            raw.extend_from_slice(&data);
        }
        if key_pending && !key_seen(&raw) {
            return Err(unauthorized());
        }
        Ok(raw)
    }

    async fn process(
        &self,
        received_at: DateTime<Utc>,
        received: &str,
        headers: &HeaderMap,
        raw: &[u8],
    ) -> Result<BatchResponse, Refused> {
        check_content_type(headers, raw)?;
        let plain = decode(headers, raw, self.pipeline.limits().max_body_bytes)?;
        let checked = match self
            .pipeline
            .check_batch(&plain, received_at, &self.registry)
            .await
        {
            Ok(c) => c,
            Err(BatchError::Malformed(m)) => {
                return Err(Refused::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Malformed,
                    m,
                    &plain,
                ))
            }
            Err(e @ BatchError::TooManyEvents { .. }) => {
                return Err(Refused::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::TooLarge,
                    e.to_string(),
                    &plain,
                ))
            }
            Err(e @ BatchError::RegistryUnavailable(_)) => {
                tracing::warn!(error = %e, "answering 503");
                return Err(unavailable(e.to_string()));
            }
        };
        self.commit(received, checked).await
    }

    /// Dedups, writes the good sink then the dead-letter sink, and only then remembers the
    /// ids and answers. A sink failure answers 503 with nothing of the batch kept that the
    /// resend would write again: what a sink did take is remembered (and counted) first.
    async fn commit(&self, received: &str, checked: Checked) -> Result<BatchResponse, Refused> {
        let mut guard = self.commit.lock().await;
        let (window, dead_window) = &mut *guard;
        let mut in_batch = HashSet::new();
        let mut fresh = Vec::with_capacity(checked.good.len());
        let mut duplicate_events = Vec::new();
        for good in &checked.good {
            if window.contains(&good.event_id)
                || !in_batch.insert(crate::dedup::key(&good.event_id))
            {
                duplicate_events.push(good);
            } else {
                fresh.push(good);
            }
        }
        let good_records: Vec<SinkRecord> = fresh
            .iter()
            .map(|g| SinkRecord {
                key: Some(crate::dedup::canonical_id(&g.event_id)),
                line: good_line(g, &checked.sent_at, received),
            })
            .collect();
        // A dead letter already written for this very event (a resend: the same code and the
        // same bytes) is not written again; the event is still reported rejected, with its
        // code. Another event under the same id is not the same dead letter.
        let mut dead_in_batch = HashSet::new();
        let mut new_dead = Vec::with_capacity(checked.bad.len());
        let mut repeated_dead = Vec::new();
        for b in &checked.bad {
            match dead_letter_key(&b.dead) {
                Some(k) if dead_window.contains_key(k) || !dead_in_batch.insert(k) => {
                    repeated_dead.push(b);
                }
                k => new_dead.push((k, b)),
            }
        }
        let bad_records: Vec<SinkRecord> = new_dead
            .iter()
            .map(|(_, b)| SinkRecord {
                key: b.dead.event_id().map(crate::dedup::canonical_id),
                line: serde_json::to_vec(&b.dead).unwrap_or_default(),
            })
            .collect();
        if let Err(e) = self.good.write(&good_records).await {
            // What the sink did take (Kafka acknowledges record by record) is remembered, so
            // the sender's resend of this batch does not write it twice.
            // Each index once, whatever the sink reported.
            let taken_at: std::collections::BTreeSet<usize> = e.written().iter().copied().collect();
            let taken: Vec<&crate::validate::GoodEvent> = taken_at
                .iter()
                .filter_map(|&i| fresh.get(i).copied())
                .collect();
            for g in &taken {
                window.insert(&g.event_id);
            }
            drop(guard);
            let taken_records: Vec<&SinkRecord> = taken_at
                .iter()
                .filter_map(|&i| good_records.get(i))
                .collect();
            self.account_good(&taken, &[], taken_records.into_iter());
            tracing::error!(error = %e, written = e.written().len(), "good sink refused a batch; answering 503");
            return Err(unavailable(format!("sink unavailable: {e}")));
        }
        for g in &fresh {
            window.insert(&g.event_id);
        }
        if let Err(e) = self.bad.write(&bad_records).await {
            // Each index once, whatever the sink reported.
            let taken: std::collections::BTreeSet<usize> = e.written().iter().copied().collect();
            for &i in &taken {
                if let Some((Some(k), _)) = new_dead.get(i) {
                    dead_window.insert_key(*k);
                }
            }
            drop(guard);
            // The good events are stored and remembered: counted now, as the resend will
            // find them duplicates.
            self.account_good(&fresh, &[], good_records.iter());
            let taken_dead: Vec<&crate::validate::BadEvent> = taken
                .iter()
                .filter_map(|&i| new_dead.get(i).map(|(_, b)| *b))
                .collect();
            let taken_records: Vec<&SinkRecord> =
                taken.iter().filter_map(|&i| bad_records.get(i)).collect();
            self.account_bad(&taken_dead, &[], taken_records.into_iter());
            tracing::error!(error = %e, "dead-letter sink refused a batch; answering 503");
            return Err(unavailable(format!("sink unavailable: {e}")));
        }
        for (k, _) in &new_dead {
            if let Some(k) = k {
                dead_window.insert_key(*k);
            }
        }
        drop(guard);

        self.account_good(&fresh, &duplicate_events, good_records.iter());
        let written_dead: Vec<&crate::validate::BadEvent> =
            new_dead.iter().map(|(_, b)| *b).collect();
        self.account_bad(&written_dead, &repeated_dead, bad_records.iter());
        Ok(BatchResponse {
            accepted: fresh.len() as u64,
            duplicates: duplicate_events.len() as u64,
            rejected: checked
                .bad
                .iter()
                .map(|b| Rejection {
                    index: b.index,
                    event_id: b.dead.event_id().map(str::to_owned),
                    code: b.dead.code.as_str().to_owned(),
                })
                .collect(),
        })
    }

    /// Counts good events written (`fresh`, whose `records` went to the good sink) and
    /// duplicates dropped: metrics, totals, unique users, the dev view.
    fn account_good<'r>(
        &self,
        fresh: &[&crate::validate::GoodEvent],
        duplicates: &[&crate::validate::GoodEvent],
        records: impl Iterator<Item = &'r SinkRecord>,
    ) {
        for g in fresh {
            self.metrics
                .accepted(g.label("service"), g.label("version"));
        }
        for d in duplicates {
            self.metrics
                .duplicate(d.label("service"), d.label("version"));
        }
        self.accepted
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        self.duplicates
            .fetch_add(duplicates.len() as u64, Ordering::Relaxed);
        self.count_uniques(fresh);
        self.remember_recent(records, |r| &mut r.good);
    }

    /// Counts dead letters written (`written`, whose `records` went to the dead-letter sink)
    /// and refused events whose dead letter was already written (`repeated`, counted as
    /// duplicates: nothing written again).
    fn account_bad<'r>(
        &self,
        written: &[&crate::validate::BadEvent],
        repeated: &[&crate::validate::BadEvent],
        records: impl Iterator<Item = &'r SinkRecord>,
    ) {
        for b in written {
            self.metrics.rejected(
                b.dead.code.as_str(),
                dead_letter_label(&b.dead, "service"),
                dead_letter_label(&b.dead, "version"),
            );
        }
        for b in repeated {
            self.metrics.duplicate(
                dead_letter_label(&b.dead, "service"),
                dead_letter_label(&b.dead, "version"),
            );
        }
        self.rejected
            .fetch_add(written.len() as u64, Ordering::Relaxed);
        self.duplicates
            .fetch_add(repeated.len() as u64, Ordering::Relaxed);
        self.remember_recent(records, |r| &mut r.bad);
    }

    /// Keeps `records` in the dev view's list chosen by `list`, when dev mode is on.
    fn remember_recent<'r>(
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

    fn count_uniques(&self, events: &[&crate::validate::GoodEvent]) {
        if events.is_empty() {
            return;
        }
        let now = Utc::now().timestamp();
        let mut uniques = self
            .uniques
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for g in events {
            if let Some(user) = g
                .context_str("user_id")
                .or_else(|| g.context_str("anonymous_id"))
            {
                uniques.record(g.schema(), user, now);
            }
        }
    }

    /// Answers a refused request, dead-lettering it first when it should be kept. A dead
    /// letter that cannot be written turns the refusal into a 503 the sender retries:
    /// nothing it sent may vanish.
    async fn refuse(&self, received: &str, refused: Refused) -> Response {
        if refused.dead_letter {
            let dead = DeadLetter::for_raw(
                received,
                refused.code,
                vec![ErrorDetail::new("", "request", refused.message.clone())],
                &refused.raw,
            );
            let record = SinkRecord {
                key: None,
                line: serde_json::to_vec(&dead).unwrap_or_default(),
            };
            if let Err(e) = self.bad.write(std::slice::from_ref(&record)).await {
                tracing::error!(error = %e, "dead-letter sink refused a record; answering 503");
                return respond(unavailable(format!(
                    "{} (and the dead-letter sink is unavailable: {e})",
                    refused.message
                )));
            }
            self.rejected.fetch_add(1, Ordering::Relaxed);
            self.metrics.rejected(refused.code.as_str(), None, None);
            if let Some(recent) = &self.recent {
                let mut recent = recent
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                push_bounded(&mut recent.bad, &record.line, self.dev_capacity);
            }
        }
        respond(refused)
    }
}

/// The answer to a refusal: its status, `{"error": …, "code": …}`, and `Retry-After` on a 503.
fn respond(refused: Refused) -> Response {
    let mut response = (
        refused.status,
        Json(json!({ "error": refused.message, "code": refused.code.as_str() })),
    )
        .into_response();
    if refused.status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

fn unauthorized() -> Refused {
    Refused {
        status: StatusCode::UNAUTHORIZED,
        code: ErrorCode::Unauthorized,
        message: "write key missing or unknown".into(),
        raw: Vec::new(),
        dead_letter: false,
    }
}

/// A 503: nothing was stored, the sender retries after `Retry-After`.
fn unavailable(message: String) -> Refused {
    Refused {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: ErrorCode::Unavailable,
        message,
        raw: Vec::new(),
        dead_letter: false,
    }
}

fn good_line(g: &crate::validate::GoodEvent, sent_at: &str, received: &str) -> Vec<u8> {
    let e = &g.event;
    let record = GoodRecord {
        event_id: &g.event_id,
        schema: g.schema(),
        data: e.get("data").unwrap_or(&Value::Null),
        entities: e.get("entities"),
        context: e.get("context").unwrap_or(&Value::Null),
        created_at: e
            .get("created_at")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        sent_at,
        received_at: received,
        event_time: g.event_time.clone(),
        event_time_clamped: g.clamped.map(crate::time::Clamped::as_str),
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

/// What a dead letter is remembered by across resends: its code and the event as received,
/// so only the same refusal of the same event is not written twice. A dead letter without
/// a parsed event (its raw bytes, perhaps cut) has no reliable identity: `None`, always
/// written.
fn dead_letter_key(dead: &DeadLetter) -> Option<u128> {
    let event = serde_json::to_vec(dead.event.as_ref()?).ok()?;
    Some(crate::dedup::fingerprint(&[
        dead.code.as_str().as_bytes(),
        &event,
    ]))
}

/// A `context.labels` value of a dead letter's event.
fn dead_letter_label<'a>(dead: &'a DeadLetter, label: &str) -> Option<&'a str> {
    dead.event
        .as_ref()?
        .get("context")?
        .get("labels")?
        .get(label)?
        .as_str()
}

fn push_bounded(queue: &mut VecDeque<Value>, line: &[u8], capacity: usize) {
    if let Ok(v) = serde_json::from_slice(line) {
        if queue.len() >= capacity {
            queue.pop_front();
        }
        queue.push_back(v);
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn check_content_type(headers: &HeaderMap, raw: &[u8]) -> Result<(), Refused> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || mime == "text/plain" {
        Ok(())
    } else {
        Err(Refused::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedEncoding,
            format!("content type {mime:?} is not application/json or text/plain"),
            raw,
        ))
    }
}

/// Undoes `Content-Encoding`, never producing more than `limit` bytes: a gzip bomb costs
/// `limit` bytes of memory at most.
fn decode(headers: &HeaderMap, raw: &[u8], limit: usize) -> Result<Vec<u8>, Refused> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(raw.to_vec()),
        Some("gzip") | Some("x-gzip") => {
            let mut plain = Vec::new();
            // Every member of a multi-member gzip body (concatenated streams are gzip too).
            let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(limit as u64 + 1);
            match decoder.read_to_end(&mut plain) {
                Ok(_) if plain.len() > limit => Err(Refused::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::TooLarge,
                    format!("body over {limit} bytes after decompression"),
                    raw,
                )),
                Ok(_) => Ok(plain),
                Err(e) => Err(Refused::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Malformed,
                    format!("gzip body could not be decoded: {e}"),
                    raw,
                )),
            }
        }
        Some(other) => Err(Refused::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedEncoding,
            format!("content encoding {other:?} is not supported (use gzip or none)"),
            raw,
        )),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    kind: Option<String>,
    event_id: Option<String>,
    schema: Option<String>,
    limit: Option<usize>,
}

/// With write keys configured, the routes it guards are for key holders only (a `Bearer`
/// header or a `write_key` query parameter; a query that does not parse carries no key),
/// checked before the handler reads its query.
async fn key_holders_only(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !shared.write_keys.is_empty() {
        let query_key = Query::<BatchQuery>::try_from_uri(request.uri())
            .ok()
            .and_then(|Query(q)| q.write_key);
        let key = bearer(request.headers()).or(query_key);
        if !key.is_some_and(|k| shared.known_key(k.as_bytes())) {
            return respond(unauthorized());
        }
    }
    next.run(request).await
}

async fn dev_events(State(shared): State<Arc<Shared>>, Query(q): Query<EventsQuery>) -> Response {
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

async fn dev_reset(State(shared): State<Arc<Shared>>) -> Response {
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

#[derive(Debug, Deserialize)]
struct UniquesQuery {
    schema: String,
    window: Option<String>,
}

async fn uniques(State(shared): State<Arc<Shared>>, Query(q): Query<UniquesQuery>) -> Response {
    let window = match parse_window(q.window.as_deref().unwrap_or("5m")) {
        Ok(w) => w,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": e.to_string() })),
            )
                .into_response()
        }
    };
    let uniques = shared
        .uniques
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match uniques.estimate(&q.schema, window, Utc::now().timestamp()) {
        Ok(n) => {
            Json(json!({ "schema": q.schema, "window_seconds": window.as_secs(), "uniques": n }))
                .into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}
