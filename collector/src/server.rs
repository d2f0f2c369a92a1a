//! The HTTP server: `POST /v1/batch`, `GET /healthz`, `GET /metrics`, the dev-mode event
//! view and `GET /v1/uniques`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::admission::Admission;
use crate::commit::batch;
use crate::committer::{Committer, Job};
use crate::dedup::DedupWindow;
use crate::dev::{dev_events, dev_page, dev_reset, dev_stream, dev_wait, DevStore};
use crate::ingest::key_holders_only;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::sink::{Sink, SinkSpec};
use crate::uniques::{parse_window, Uniques};
use crate::validate::Pipeline;

pub use crate::config::{CollectorConfig, CollectorError, Totals};
pub use crate::defaults::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_DEV_CAPACITY, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_GROUP_REQUESTS,
    DEFAULT_MAX_IN_FLIGHT_BYTES, DEFAULT_MAX_IN_FLIGHT_REQUESTS, DEFAULT_SHUTDOWN_TIMEOUT,
    SHED_RETRY_AFTER_SECONDS,
};
pub use crate::refusal::RETRY_AFTER_SECONDS;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;
/// Most open connections; further ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 1024;

/// The state the handlers share.
pub(crate) struct Shared {
    pub(crate) pipeline: Pipeline,
    pub(crate) registry: Registry,
    pub(crate) good: Arc<dyn Sink>,
    pub(crate) bad: Arc<dyn Sink>,
    /// Requests' records to the group commit ([`crate::committer`]), which alone holds the
    /// deduplication windows.
    pub(crate) commits: mpsc::Sender<Job>,
    /// The group commit, until its task is started by the first request (in the runtime
    /// that serves it).
    committer: Mutex<Option<(Committer, mpsc::Receiver<Job>)>>,
    committer_started: OnceLock<()>,
    /// When the group commit's current write began (0: none under way).
    pub(crate) commit_busy_since: Arc<AtomicU64>,
    health_max_write: std::time::Duration,
    /// How much work is taken on at once.
    pub(crate) admission: Admission,
    pub(crate) metrics: Metrics,
    pub(crate) dev: Option<DevStore>,
    pub(crate) uniques: Mutex<Uniques>,
    pub(crate) write_keys: Vec<String>,
    pub(crate) body_timeout: Duration,
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) requests: AtomicU64,
}

impl Shared {
    /// Where requests hand their records to the group commit; its task is started on
    /// first use, in the runtime serving the request.
    pub(crate) fn commits(&self) -> &mpsc::Sender<Job> {
        self.committer_started.get_or_init(|| {
            let pending = self
                .committer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some((committer, jobs)) = pending {
                tokio::spawn(committer.run(jobs));
            }
        });
        &self.commits
    }
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
        let kafka = config.kafka_options.resolve()?;
        #[cfg(feature = "kafka")]
        crate::sink::check_options(&kafka)?;
        if !kafka.pairs().is_empty() {
            // Secrets show as ***.
            tracing::info!(options = ?kafka, "kafka client options");
        }
        let good = config.good.open(config.fsync, &kafka).await?;
        let bad = config.bad.open(config.fsync, &kafka).await?;
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
        if config.write_keys.iter().any(|k| k.trim().is_empty()) {
            return Err(CollectorError::EmptyWriteKey);
        }
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
        let max_in_flight_requests = config.max_in_flight_requests.max(1);
        let (commits, jobs) = mpsc::channel(max_in_flight_requests);
        let busy_since = Arc::new(AtomicU64::new(0));
        let committer = Committer {
            good: good.clone(),
            bad: bad.clone(),
            window: dedup,
            dead_window: DedupWindow::new(config.dedup_generation / 10 + 1),
            keep_lines: config.dev,
            max_group: DEFAULT_MAX_GROUP_REQUESTS,
            busy_since: busy_since.clone(),
            sink_errors: metrics.sink_errors(),
        };
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(Collector {
            shared: Arc::new(Shared {
                pipeline,
                registry,
                good,
                bad,
                commits,
                committer: Mutex::new(Some((committer, jobs))),
                committer_started: OnceLock::new(),
                commit_busy_since: busy_since,
                health_max_write: config.health_max_write,
                admission: Admission::new(
                    max_in_flight_requests,
                    config.max_in_flight_bytes,
                    cores,
                ),
                metrics,
                dev: config.dev.then(|| DevStore::new(config.dev_capacity)),
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
            .route("/", get(dev_page))
            .route("/v1/events", get(dev_events).delete(dev_reset))
            .route("/v1/events/wait", get(dev_wait))
            .route("/v1/events/stream", get(dev_stream))
            .route("/v1/events/reset", post(dev_reset))
            .route("/v1/uniques", get(uniques))
            .route_layer(axum::middleware::from_fn_with_state(
                self.shared.clone(),
                key_holders_only,
            ));
        let router = Router::new()
            .route("/v1/batch", post(batch))
            .route("/healthz", get(health))
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
        let (stop, stopped) = tokio::sync::watch::channel(Stop::Serving);
        let router = self.router();
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let task = tokio::spawn(accept_loop(listener, router, stopped, connections.clone()));
        tracing::info!(%addr, "collector listening");
        Ok(ServerHandle {
            addr,
            stop,
            task: Some(task),
            connections,
            shared: self.shared.clone(),
        })
    }

    /// Flushes and closes the sinks (a file is synced to disk; Kafka waits for the
    /// deliveries still outstanding), after the server stopped: what was answered 200 was
    /// already stored, so this only makes it durable sooner and frees the clients.
    ///
    /// # Errors
    /// The first sink that could not be flushed.
    pub async fn close(&self, timeout: Duration) -> Result<(), crate::sink::SinkError> {
        let good = self.shared.good.close(timeout).await;
        let bad = self.shared.bad.close(timeout).await;
        good.and(bad)
    }
}

/// Why a shutdown was not clean.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// Connections still had requests under way at the deadline; they were cut off
    /// unanswered (their clients send them again; what was stored is found a duplicate).
    #[error("{connections} connections still had requests under way after {} s; they were closed unanswered", timeout.as_secs_f64())]
    Unfinished {
        /// How many.
        connections: usize,
        /// The time they were given.
        timeout: Duration,
    },
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<Stop>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// One permit per open connection: all back means every connection is closed.
    connections: Arc<tokio::sync::Semaphore>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
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

    /// Stops gracefully, waiting up to [`DEFAULT_SHUTDOWN_TIMEOUT`] (see
    /// [`ServerHandle::shutdown_within`]); a connection still busy then is cut off.
    pub async fn shutdown(self) {
        if let Err(e) = self.shutdown_within(DEFAULT_SHUTDOWN_TIMEOUT).await {
            tracing::warn!(error = %e, "shutdown");
        }
    }

    /// Stops accepting connections (the port is closed at once), answers every request
    /// under way, closes each connection once it is idle, and ends dev-mode waits and
    /// streams; returns when every connection is closed, or at `timeout`, when the ones
    /// left are cut off.
    ///
    /// # Errors
    /// [`ShutdownError::Unfinished`] when connections were cut off.
    pub async fn shutdown_within(mut self, timeout: Duration) -> Result<(), ShutdownError> {
        let _ = self.stop.send(Stop::Draining);
        if let Some(dev) = &self.shared.dev {
            dev.close();
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
        match tokio::time::timeout(timeout, self.connections.acquire_many(all)).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let open = MAX_CONNECTIONS - self.connections.available_permits();
                let _ = self.stop.send(Stop::Cut);
                Err(ShutdownError::Unfinished {
                    connections: open,
                    timeout,
                })
            }
        }
    }

    /// Serves until the process is stopped.
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    Serving,
    /// Accepting nothing more; each connection closes after the request it has under way.
    Draining,
    /// The shutdown's time is up: connections still open are dropped.
    Cut,
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut stopped: tokio::sync::watch::Receiver<Stop>,
    permits: Arc<tokio::sync::Semaphore>,
) {
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
        let mut stopping = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(DEFAULT_HEADER_TIMEOUT)
                .max_headers(MAX_HEADERS)
                .max_buf_size(64 * 1024);
            let connection =
                builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            // At shutdown: finish the request under way, then close (an idle keep-alive
            // connection closes at once).
            let ended = tokio::select! {
                ended = connection.as_mut() => Some(ended),
                _ = stopping.wait_for(|stop| *stop >= Stop::Draining) => None,
            };
            let ended = match ended {
                Some(ended) => ended,
                None => {
                    connection.as_mut().graceful_shutdown();
                    tokio::select! {
                        ended = connection.as_mut() => ended,
                        _ = stopping.wait_for(|stop| *stop == Stop::Cut) => return,
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    // The port is closed here, before the connections finish.
    drop(listener);
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

/// `ok`, or 503 with the reason when the collector cannot store what it is sent: its commit
/// task is gone, or a sink write has been under way longer than `health_max_write`
/// ([`HEALTH_MAX_WRITE`] by default).
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    if shared.commits.is_closed() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the commit task stopped: nothing can be stored\n",
        )
            .into_response();
    }
    let since = shared.commit_busy_since.load(Ordering::Relaxed);
    let busy = crate::committer::unix_ms().saturating_sub(since);
    if since != 0 && busy > u64::try_from(shared.health_max_write.as_millis()).unwrap_or(u64::MAX) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("a sink write has been under way for {} s\n", busy / 1000),
        )
            .into_response();
    }
    "ok\n".into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.in_flight(
        shared.admission.requests_in_flight(),
        shared.admission.bytes_in_flight(),
    );
    let since = shared.commit_busy_since.load(Ordering::Relaxed);
    shared.metrics.sink_write(if since == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(crate::committer::unix_ms().saturating_sub(since))
    });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
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
