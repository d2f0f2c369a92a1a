//! The tracker handle and its builder.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

use crate::batch::BatchLimits;
use crate::event::{
    ContextRef, EncodedEvent, EnvelopeRef, SelfDescribing, StaticContext, UnixMillis,
};
use crate::iglu::{IgluUriError, SchemaKey};
use crate::outbox::{Outbox, DEFAULT_MAX_IN_FLIGHT};
use crate::policy::RetryPolicy;
use crate::protocol::{Entity, Event, Labels, Library};
use crate::session::{EventIdentity, Identity, DEFAULT_SESSION_TIMEOUT};
use crate::spool::{Spool, SpoolConfig, SpoolError, SpoolFs};
use crate::spooler::{SpoolLink, Spooler, DEFAULT_SPOOL_COMMIT_INTERVAL};
use crate::stats::{DropReason, FailureReason, Stats};
use crate::transport::Transport;
use crate::worker::{unix_ms_now, Control, FailureCallback, Shared, Worker};

use crate::defaults::DEFAULT_GZIP_MIN_BYTES;
pub use crate::defaults::{
    DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_QUEUE_BYTES, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_SPOOL_MAX_BYTES,
};
/// The library name sent in `context.library.name`.
pub const LIBRARY_NAME: &str = "eventwire-rust";
/// Extra time a blocking `flush`/`shutdown` waits past its timeout for the worker's answer.
const REPLY_GRACE: Duration = Duration::from_millis(250);

/// A hook that sees every event before it is queued and may change it (except its
/// `event_id`) or drop it (`None`). Runs on the caller's thread.
pub type BeforeSend = dyn Fn(Event) -> Option<Event> + Send + Sync;

/// What `track` does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Drop the new event and count it (`DropReason::QueueFull`). Never blocks.
    #[default]
    DropNew,
    /// Wait up to this long for room, then drop and count.
    Block(Duration),
}

/// Why `track` refused an event. Every refusal is also counted in [`Stats`].
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// The event's (or an entity's) schema URI is malformed: fix the URI.
    #[error("invalid schema URI `{uri}`: {source}")]
    InvalidSchema {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        source: IgluUriError,
    },
    /// The event's data could not be serialised to JSON (e.g. a map with non-string keys).
    #[error("event data is not serialisable to JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The serialised envelope is over the per-event limit: send less data per event.
    #[error("event is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The envelope's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The queue is full (the collector is slow or unreachable): the event was dropped.
    #[error("event queue is full: event dropped")]
    QueueFull,
    /// The tracker was shut down: create a new one to track more.
    #[error("tracker is shut down")]
    ShutDown,
    /// The `before_send` hook dropped the event (not a failure: your hook chose to).
    #[error("event dropped by the before_send hook")]
    Filtered,
    /// The spool holds its byte cap of undelivered events (the collector has been
    /// unreachable for long): the event was dropped.
    #[error("spool is full: event dropped")]
    SpoolFull,
}

/// Why `flush` did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlushError {
    /// Events were still pending when the timeout passed. They stay queued and keep being
    /// delivered; call `flush` again or `shutdown`.
    #[error("flush timed out with {pending} events still pending")]
    Timeout {
        /// Events not yet answered for.
        pending: u64,
    },
    /// The tracker is shut down; nothing more will be delivered.
    #[error("tracker is already shut down")]
    AlreadyShutdown,
}

/// Why `shutdown` did not complete cleanly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShutdownError {
    /// The timeout passed first: these events were given up, counted as
    /// `DropReason::ShutDown` and passed to the failure callback.
    #[error("shutdown timed out: {dropped} events were not delivered")]
    Timeout {
        /// Events given up.
        dropped: u64,
    },
    /// `shutdown` was already called.
    #[error("tracker is already shut down")]
    AlreadyShutdown,
}

/// Why the builder could not make a tracker.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No endpoint and no custom transport: set one.
    #[error("no endpoint: call `.endpoint(\"http://…\")` or `.transport(…)`")]
    NoEndpoint,
    /// The endpoint is not an http(s) URL.
    #[error("endpoint `{0}` is not an http:// or https:// URL")]
    InvalidEndpoint(String),
    /// A setting is out of range; the message says which.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The HTTP client could not be created.
    #[error("HTTP client: {0}")]
    Transport(String),
    /// The worker thread could not be started.
    #[error("could not start the worker thread: {0}")]
    Spawn(#[from] std::io::Error),
    /// The spool directory could not be opened: in use by another tracker
    /// ([`SpoolError::Locked`]), or not readable and writable.
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
}

/// Configures a [`Tracker`]. Every knob has a `DEFAULT_*` constant.
#[must_use]
pub struct TrackerBuilder {
    endpoint: Option<String>,
    write_key: Option<String>,
    write_key_in_body: bool,
    labels: Labels,
    anonymous_id: Option<String>,
    session_timeout: Duration,
    limits: BatchLimits,
    max_event_bytes: usize,
    queue_capacity: usize,
    max_queue_bytes: usize,
    when_full: WhenFull,
    retry: RetryPolicy,
    max_in_flight: usize,
    gzip_min_bytes: Option<usize>,
    #[cfg(feature = "reqwest")]
    request_timeout: Duration,
    transport: Option<Arc<dyn Transport>>,
    before_send: Option<Arc<BeforeSend>>,
    on_failure: Option<Arc<FailureCallback>>,
    spool: Option<PathBuf>,
    spool_max_bytes: u64,
    spool_commit_interval: Duration,
    spool_fs: Option<Arc<dyn SpoolFs>>,
}

impl std::fmt::Debug for TrackerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerBuilder")
            .field("endpoint", &self.endpoint)
            .field("labels", &self.labels)
            .field("limits", &self.limits)
            .field("queue_capacity", &self.queue_capacity)
            .field("spool", &self.spool)
            .finish_non_exhaustive()
    }
}

impl Default for TrackerBuilder {
    fn default() -> Self {
        TrackerBuilder {
            endpoint: None,
            write_key: None,
            write_key_in_body: false,
            labels: Labels::default(),
            anonymous_id: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            limits: BatchLimits::default(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
            when_full: WhenFull::DropNew,
            retry: RetryPolicy::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            gzip_min_bytes: Some(DEFAULT_GZIP_MIN_BYTES),
            #[cfg(feature = "reqwest")]
            request_timeout: crate::transport::DEFAULT_REQUEST_TIMEOUT,
            transport: None,
            before_send: None,
            on_failure: None,
            spool: None,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            spool_commit_interval: DEFAULT_SPOOL_COMMIT_INTERVAL,
            spool_fs: None,
        }
    }
}

impl TrackerBuilder {
    /// The collector's base URL, e.g. `http://127.0.0.1:8080` (`/v1/batch` is appended).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The write key, sent as `Authorization: Bearer <key>`.
    pub fn write_key(mut self, key: impl Into<String>) -> Self {
        self.write_key = Some(key.into());
        self
    }

    /// Also put the write key in the body (for proxies that strip `Authorization`).
    pub fn write_key_in_body(mut self, yes: bool) -> Self {
        self.write_key_in_body = yes;
        self
    }

    /// The four standard labels, attached to every event.
    pub fn labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }

    /// Sets one label: `environment`, `service`, `team` or `version`.
    pub fn environment(mut self, v: impl Into<String>) -> Self {
        self.labels.environment = Some(v.into());
        self
    }

    /// Sets the `service` label.
    pub fn service(mut self, v: impl Into<String>) -> Self {
        self.labels.service = Some(v.into());
        self
    }

    /// Sets the `team` label.
    pub fn team(mut self, v: impl Into<String>) -> Self {
        self.labels.team = Some(v.into());
        self
    }

    /// Sets the `version` label (code revision or release).
    pub fn version(mut self, v: impl Into<String>) -> Self {
        self.labels.version = Some(v.into());
        self
    }

    /// A stable anonymous id to reuse (persist it across runs); by default a random UUID.
    pub fn anonymous_id(mut self, id: impl Into<String>) -> Self {
        self.anonymous_id = Some(id.into());
        self
    }

    /// Inactivity after which a new session starts (default [`DEFAULT_SESSION_TIMEOUT`]).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Most events per batch (default [`crate::batch::DEFAULT_MAX_BATCH_EVENTS`]).
    pub fn max_batch_events(mut self, n: usize) -> Self {
        self.limits.max_events = n;
        self
    }

    /// Most body bytes per batch, before compression (default
    /// [`crate::batch::DEFAULT_MAX_BATCH_BYTES`]; match the collector's limit).
    pub fn max_batch_bytes(mut self, n: usize) -> Self {
        self.limits.max_bytes = n;
        self
    }

    /// Longest an event waits for its batch to fill (default
    /// [`crate::batch::DEFAULT_MAX_BATCH_DELAY`]).
    pub fn max_batch_delay(mut self, delay: Duration) -> Self {
        self.limits.max_delay = delay;
        self
    }

    /// Largest accepted event, envelope included (default [`DEFAULT_MAX_EVENT_BYTES`]).
    pub fn max_event_bytes(mut self, n: usize) -> Self {
        self.max_event_bytes = n;
        self
    }

    /// Most events waiting in the queue (default [`DEFAULT_QUEUE_CAPACITY`]).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// Most bytes of events waiting in the queue (default [`DEFAULT_MAX_QUEUE_BYTES`]).
    pub fn max_queue_bytes(mut self, n: usize) -> Self {
        self.max_queue_bytes = n;
        self
    }

    /// What `track` does when the queue is full (default: drop the new event, counted).
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Retry settings (see [`RetryPolicy`]). With a [`spool`](Self::spool), the retry
    /// deadline does not apply: events wait on disk until the collector answers.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Most requests in flight at once (default [`DEFAULT_MAX_IN_FLIGHT`]). More keep a
    /// distant collector busy (one batch per round trip each); 1 sends one batch at a time,
    /// in order. A collector's 429/503 or a failing request pauses all of them.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Gzip bodies of at least this many bytes; `None` never compresses (default
    /// [`DEFAULT_GZIP_MIN_BYTES`]).
    pub fn gzip_min_bytes(mut self, n: Option<usize>) -> Self {
        self.gzip_min_bytes = n;
        self
    }

    /// Time allowed for one HTTP request (default
    /// [`crate::transport::DEFAULT_REQUEST_TIMEOUT`]).
    #[cfg(feature = "reqwest")]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sends through this transport instead of HTTP (tests: [`crate::MemoryTransport`]).
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// A hook that may change or drop (return `None`) every event before it is queued, on
    /// the caller's thread: consent checks, scrubbing. Costs one conversion of the event to a
    /// `serde_json::Value`. It may change anything but `event_id`, which the tracker chose
    /// (the deduplication key): a changed id is put back.
    pub fn before_send(
        mut self,
        hook: impl Fn(Event) -> Option<Event> + Send + Sync + 'static,
    ) -> Self {
        self.before_send = Some(Arc::new(hook));
        self
    }

    /// Called on the worker with every event that is not delivered, and why.
    pub fn on_failure(
        mut self,
        callback: impl Fn(&FailureReason, &[EncodedEvent]) + Send + Sync + 'static,
    ) -> Self {
        self.on_failure = Some(Arc::new(callback));
        self
    }

    /// Keeps every event in a spool in `dir` until the collector has answered for it: events
    /// survive a crash or restart and are sent by the next tracker on the same directory
    /// (with their original `event_id` and `created_at`). While the collector is unreachable
    /// and the memory queue is full, new events wait on disk instead of being dropped.
    ///
    /// An event is durable at the spool's next group commit, which starts at most
    /// [`spool_commit_interval`](Self::spool_commit_interval) after `track()` returned and
    /// ends when its fsync does (on a thread of its own: appends never wait for it). One
    /// tracker per directory: a second one gets [`SpoolError::Locked`] from `build()`.
    /// `build()` reads the spool's index (not the events) to find what is undelivered.
    ///
    /// With a spool, transient failures (5xx, timeouts, connection errors) never expire an
    /// event: the retry deadline does not apply, and the backlog waits on disk for as long as
    /// the collector is away, up to [`spool_max_bytes`](Self::spool_max_bytes).
    pub fn spool(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool = Some(dir.into());
        self
    }

    /// Most bytes of undelivered events the spool keeps (default
    /// [`DEFAULT_SPOOL_MAX_BYTES`]); past it `track()` drops with
    /// [`DropReason::SpoolFull`].
    pub fn spool_max_bytes(mut self, n: u64) -> Self {
        self.spool_max_bytes = n;
        self
    }

    /// Longest time between `track()` and the `fsync` that makes the event durable (default
    /// [`DEFAULT_SPOOL_COMMIT_INTERVAL`]). Shorter costs more disk flushes.
    pub fn spool_commit_interval(mut self, interval: Duration) -> Self {
        self.spool_commit_interval = interval;
        self
    }

    /// The spool's file operations (default: the OS's). Tests pass file operations that
    /// fail on purpose ([`crate::spool::SpoolFs`]).
    #[doc(hidden)]
    pub fn spool_fs(mut self, fs: Arc<dyn SpoolFs>) -> Self {
        self.spool_fs = Some(fs);
        self
    }

    /// Validates the settings and starts the worker thread.
    pub fn build(self) -> Result<Tracker, BuildError> {
        let invalid = |m: &str| Err(BuildError::InvalidConfig(m.to_owned()));
        if self.limits.max_events == 0 {
            return invalid("max_batch_events must be at least 1");
        }
        if self.queue_capacity == 0 {
            return invalid("queue_capacity must be at least 1");
        }
        if self.limits.max_delay.is_zero() {
            return invalid("max_batch_delay must be above zero");
        }
        let write_key_json = match (&self.write_key, self.write_key_in_body) {
            (Some(k), true) => Some(serde_json::to_string(k)?),
            _ => None,
        };
        if self.max_in_flight == 0 {
            return invalid("max_in_flight must be at least 1");
        }
        let overhead = crate::batch::body_overhead(write_key_json.as_deref().map(str::len));
        let largest = self.limits.max_bytes.saturating_sub(overhead);
        if self.max_event_bytes == 0 || self.max_event_bytes > largest {
            return invalid(&format!(
                "max_event_bytes must be between 1 and {largest} (max_batch_bytes minus the body's own {overhead} bytes)"
            ));
        }
        let transport: Arc<dyn Transport> = match (self.transport, &self.endpoint) {
            (Some(t), _) => t,
            (None, None) => return Err(BuildError::NoEndpoint),
            #[cfg(feature = "reqwest")]
            (None, Some(endpoint)) => {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                    || endpoint.len() <= "https://".len()
                {
                    return Err(BuildError::InvalidEndpoint(endpoint.clone()));
                }
                Arc::new(
                    crate::transport::HttpTransport::new(endpoint, self.request_timeout)
                        .map_err(|e| BuildError::Transport(e.to_string()))?,
                )
            }
            #[cfg(not(feature = "reqwest"))]
            (None, Some(_)) => {
                return invalid(
                    "no HTTP transport compiled in (feature `reqwest`): pass `.transport(…)`",
                )
            }
        };
        let library = Library {
            name: LIBRARY_NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let context = StaticContext {
            labels: serde_json::value::to_raw_value(&self.labels)?,
            library: serde_json::value::to_raw_value(&library)?,
        };
        let anonymous_id = self
            .anonymous_id
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        if self.spool_commit_interval.is_zero() {
            return invalid("spool_commit_interval must be above zero");
        }
        let shared = Arc::new(Shared::default());
        // With a spool, the capacity is shared between the spool's inbox and the worker's
        // queue: the same number of events in memory either way.
        let worker_capacity = if self.spool.is_some() {
            (self.queue_capacity / 2).max(1)
        } else {
            self.queue_capacity
        };
        let (queue_tx, data_rx) = flume::bounded(worker_capacity);
        let (control_tx, control_rx) = flume::unbounded();
        // With a spool, `track()` hands events to the spool thread, which stores them and
        // passes them on to the worker's queue.
        let (data_tx, spool) = match self.spool {
            None => (queue_tx, None),
            Some(dir) => {
                let fs = self
                    .spool_fs
                    .unwrap_or_else(|| Arc::new(crate::spool::OsFs));
                let (inbox_tx, link) = start_spool(
                    fs,
                    &dir,
                    self.spool_max_bytes,
                    self.spool_commit_interval,
                    queue_tx,
                    worker_capacity,
                    (self.queue_capacity - worker_capacity).max(1),
                    self.max_queue_bytes,
                    &shared,
                    self.on_failure.clone(),
                )?;
                (inbox_tx, Some(link))
            }
        };
        let spooled = spool.is_some();
        // With a spool, a collector that keeps failing never expires an event: it waits on
        // disk until delivered, and only the spool's cap refuses new ones (`spool_full`).
        let retry = if spooled {
            RetryPolicy {
                deadline: Duration::MAX,
                ..self.retry
            }
        } else {
            self.retry
        };
        let worker = Worker {
            shared: shared.clone(),
            data_rx,
            control_rx,
            outbox: Outbox::new(self.limits, retry, self.max_in_flight, write_key_json),
            transport,
            gzip_min_bytes: self.gzip_min_bytes,
            write_key: self.write_key.map(Into::into),
            on_failure: self.on_failure,
            spool,
            origin: Instant::now(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = std::thread::Builder::new()
            .name("eventwire-worker".into())
            .spawn(move || runtime.block_on(worker.run()))?;
        Ok(Tracker {
            inner: Arc::new(Inner {
                shared,
                data_tx,
                control_tx,
                worker: Mutex::new(Some(handle)),
                closed: AtomicBool::new(false),
                identity: Mutex::new(IdentityState {
                    identity: Identity::new(anonymous_id, self.session_timeout),
                    rendered: None,
                }),
                context,
                labels: self.labels,
                library,
                max_event_bytes: self.max_event_bytes,
                max_queue_bytes: self.max_queue_bytes,
                // A batch's worth, or half the queue when the queue is smaller than a batch.
                wake_events: self.limits.max_events.min(self.queue_capacity / 2).max(1),
                wake_bytes: self.limits.max_bytes.min(self.max_queue_bytes / 2).max(1),
                when_full: self.when_full,
                before_send: self.before_send,
                size_hint: AtomicUsize::new(512),
                spool_max_bytes: spooled.then_some(self.spool_max_bytes),
            }),
        })
    }
}

/// Opens the spool (recovering what it holds) and starts its thread; returns the inbox that
/// `track()` sends to.
#[allow(clippy::too_many_arguments)] // the builder's settings, passed on once
fn start_spool(
    fs: Arc<dyn SpoolFs>,
    dir: &std::path::Path,
    max_bytes: u64,
    commit_interval: Duration,
    queue: flume::Sender<EncodedEvent>,
    queue_capacity: usize,
    inbox_capacity: usize,
    max_queue_bytes: usize,
    shared: &Arc<Shared>,
    on_failure: Option<Arc<FailureCallback>>,
) -> Result<(flume::Sender<EncodedEvent>, SpoolLink), BuildError> {
    let config = SpoolConfig {
        // The cap is on undelivered events; the files may also hold acknowledgements and
        // delivered events of segments not yet deleted: room for those, bounded too.
        max_bytes: max_bytes
            .saturating_mul(2)
            .saturating_add(2 * crate::spool::DEFAULT_SEGMENT_BYTES),
        ..SpoolConfig::default()
    };
    let (spool, recovery) = Spool::open_on(fs, dir, config)?;
    if recovery.corrupt_records > 0 || recovery.corrupt_bytes > 0 {
        tracing::warn!(
            records = recovery.corrupt_records,
            bytes = recovery.corrupt_bytes,
            "spool: skipped damaged records (a crash mid-write, or a damaged disk)"
        );
    }
    if !recovery.pending.is_empty() {
        tracing::info!(
            events = recovery.pending.len(),
            "spool: replaying events not delivered before the last stop"
        );
    }
    let first_seq = shared.counters.recovered(
        recovery.pending.len() as u64,
        recovery.corrupt_records,
        recovery.corrupt_bytes,
    );
    shared
        .spool_live_bytes
        .store(recovery.pending_bytes, Ordering::Relaxed);
    let (inbox_tx, inbox) = flume::bounded(inbox_capacity);
    let (ctl_tx, ctl) = flume::unbounded();
    let spooler = Spooler {
        spool,
        inbox,
        ctl,
        queue,
        queue_capacity,
        max_queue_bytes,
        shared: shared.clone(),
        commit_interval,
        on_failure,
        spilled: recovery.pending.into_iter().zip(first_seq..).collect(),
        quiet: Default::default(),
        left: Vec::new(),
        read_failing: None,
    };
    let thread = std::thread::Builder::new()
        .name("eventwire-spool".into())
        .spawn(move || spooler.run())?;
    Ok((
        inbox_tx,
        SpoolLink {
            ctl: ctl_tx,
            thread,
        },
    ))
}

impl From<serde_json::Error> for BuildError {
    fn from(e: serde_json::Error) -> Self {
        BuildError::InvalidConfig(e.to_string())
    }
}

/// The event tracker: cheap to clone, `Send + Sync`, never blocks on I/O.
///
/// See the [crate docs](crate) for a quickstart and the delivery guarantees.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    data_tx: flume::Sender<EncodedEvent>,
    control_tx: flume::Sender<Control>,
    worker: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    identity: Mutex<IdentityState>,
    context: StaticContext,
    labels: Labels,
    library: Library,
    max_event_bytes: usize,
    max_queue_bytes: usize,
    /// Wake the worker every this many queued events…
    wake_events: usize,
    /// …or every this many queued bytes.
    wake_bytes: usize,
    when_full: WhenFull,
    before_send: Option<Arc<BeforeSend>>,
    /// Last envelope size, to allocate the next one's buffer once.
    size_hint: AtomicUsize,
    /// With a spool: the cap on bytes of undelivered events it keeps.
    spool_max_bytes: Option<u64>,
}

/// The identity and its last rendered `context` object.
struct IdentityState {
    identity: Identity,
    rendered: Option<(EventIdentity, Arc<RawValue>)>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("labels", &self.inner.labels)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// A builder with every setting at its default.
    pub fn builder() -> TrackerBuilder {
        TrackerBuilder::default()
    }

    /// Tracks a typed event. Returns its `event_id`.
    pub fn track<E: SelfDescribing>(&self, event: E) -> Result<Uuid, TrackError> {
        self.track_with(event, &[])
    }

    /// Tracks a typed event with entities attached.
    pub fn track_with<E: SelfDescribing>(
        &self,
        event: E,
        entities: &[Entity],
    ) -> Result<Uuid, TrackError> {
        // The schema is a constant: checked once, at compile time.
        if !const { crate::iglu::is_valid_uri(E::SCHEMA) } {
            check_uri(E::SCHEMA)?;
        }
        self.track_data(Cow::Borrowed(E::SCHEMA), &event, entities)
    }

    /// Tracks an event given as a schema URI and JSON data (no generated type needed).
    pub fn track_json(&self, schema: &str, data: &Value) -> Result<Uuid, TrackError> {
        self.track_data(Cow::Owned(schema.to_owned()), data, &[])
    }

    /// Tracks a dynamic event with entities attached.
    pub fn track_json_with(
        &self,
        schema: &str,
        data: &Value,
        entities: &[Entity],
    ) -> Result<Uuid, TrackError> {
        self.track_data(Cow::Owned(schema.to_owned()), data, entities)
    }

    fn track_data<D: Serialize + ?Sized>(
        &self,
        schema: Cow<'static, str>,
        data: &D,
        entities: &[Entity],
    ) -> Result<Uuid, TrackError> {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Relaxed) {
            inner.shared.counters.refused(DropReason::ShutDown);
            return Err(TrackError::ShutDown);
        }
        if let Cow::Owned(uri) = &schema {
            check_uri(uri)?;
        }
        for entity in entities {
            check_uri(&entity.schema)?;
        }
        let event_id = Uuid::now_v7();
        // `created_at` is the id's own timestamp: one clock read, and the two always agree.
        let now = event_id
            .get_timestamp()
            .map(|t| {
                let (secs, nanos) = t.to_unix();
                secs * 1000 + u64::from(nanos) / 1_000_000
            })
            .unwrap_or_else(unix_ms_now);
        let context = self.context_at(now)?;
        let envelope = EnvelopeRef {
            event_id,
            schema: &schema,
            data,
            created_at: UnixMillis(now),
            entities,
            context: &context,
        };
        let event = match &inner.before_send {
            None => {
                let mut json = Vec::with_capacity(inner.size_hint.load(Ordering::Relaxed));
                serde_json::to_writer(&mut json, &envelope)?;
                inner.size_hint.store(json.len() + 64, Ordering::Relaxed);
                EncodedEvent::new(event_id, schema, json)
            }
            Some(hook) => {
                let event: Event = serde_json::from_slice(&serde_json::to_vec(&envelope)?)?;
                let Some(mut event) = hook(event) else {
                    inner.shared.counters.filtered();
                    return Err(TrackError::Filtered);
                };
                // The id is the tracker's: the deduplication key, and the spool's index.
                event.event_id = event_id;
                check_uri(&event.schema)?;
                let json = serde_json::to_vec(&event)?;
                EncodedEvent::new(event.event_id, event.schema, json)
            }
        };
        if event.len() > inner.max_event_bytes {
            inner.shared.counters.refused(DropReason::TooLarge);
            return Err(TrackError::TooLarge {
                size: event.len(),
                limit: inner.max_event_bytes,
            });
        }
        self.enqueue(event)
    }

    /// The `context` object for an event at `now_ms`, rendered once per identity: it changes
    /// only when the session, the user or the anonymous id does.
    fn context_at(&self, now_ms: u64) -> Result<Arc<RawValue>, serde_json::Error> {
        let mut state = self.identity_state();
        let who = state.identity.touch(now_ms, || Uuid::new_v4().to_string());
        if let Some((rendered_for, raw)) = &state.rendered {
            if *rendered_for == who {
                return Ok(raw.clone());
            }
        }
        let context = &self.inner.context;
        let raw: Arc<RawValue> = serde_json::value::to_raw_value(&ContextRef {
            labels: &context.labels,
            library: &context.library,
            anonymous_id: &who.anonymous_id,
            user_id: who.user_id.as_deref(),
            session_id: Some(&who.session_id),
        })?
        .into();
        state.rendered = Some((who, raw.clone()));
        Ok(raw)
    }

    fn enqueue(&self, mut event: EncodedEvent) -> Result<Uuid, TrackError> {
        let inner = &*self.inner;
        let counters = &inner.shared.counters;
        let id = event.event_id();
        let size = event.len();
        if let Some(max) = inner.spool_max_bytes {
            let live = &inner.shared.spool_live_bytes;
            let before = live.fetch_add(size as u64, Ordering::Relaxed);
            if before.saturating_add(size as u64) > max {
                live.fetch_sub(size as u64, Ordering::Relaxed);
                counters.refused(DropReason::SpoolFull);
                return Err(TrackError::SpoolFull);
            }
        }
        let queued = inner.shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if queued + size > inner.max_queue_bytes {
            inner.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.release_spool_bytes(size);
            counters.refused(DropReason::QueueFull);
            return Err(TrackError::QueueFull);
        }
        // Admit before the closed check and before the hand-off: a flush or shutdown that
        // starts now counts this event and waits for it (see `shutdown`).
        let seq = counters.admit();
        event.seq = seq;
        let result = if inner.closed.load(Ordering::SeqCst) {
            Err(DropReason::ShutDown)
        } else {
            match inner.when_full {
                WhenFull::DropNew => inner.data_tx.try_send(event).map_err(|e| match e {
                    flume::TrySendError::Full(_) => DropReason::QueueFull,
                    flume::TrySendError::Disconnected(_) => DropReason::ShutDown,
                }),
                WhenFull::Block(timeout) => {
                    inner
                        .data_tx
                        .send_timeout(event, timeout)
                        .map_err(|e| match e {
                            flume::SendTimeoutError::Timeout(_) => DropReason::QueueFull,
                            flume::SendTimeoutError::Disconnected(_) => DropReason::ShutDown,
                        })
                }
            }
        };
        match result {
            Ok(()) if inner.spool_max_bytes.is_some() => {
                // The spool thread passes it on to the worker, and wakes it.
                counters.enqueued();
                Ok(id)
            }
            Ok(()) => {
                counters.enqueued();
                // Wake the worker only when a batch opens (it must start the batch's timer) or
                // a batch's worth is waiting; otherwise its timer or a later wake covers it.
                // The worker may have taken (and uncounted) the event already: the counter
                // can be below zero for a moment, so wrap rather than overflow.
                let unsent = inner
                    .shared
                    .unsent
                    .fetch_add(1, Ordering::AcqRel)
                    .wrapping_add(1);
                let crossed = queued / inner.wake_bytes != (queued + size) / inner.wake_bytes;
                if unsent == 1 || unsent.is_multiple_of(inner.wake_events) || crossed {
                    inner.shared.wake.notify_one();
                    #[cfg(test)]
                    inner.shared.wakes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(id)
            }
            Err(reason) => {
                inner.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                self.release_spool_bytes(size);
                counters.dropped(reason, 1);
                // Settled out of order (older events may be in flight): a flush waiting for
                // the older ones is not answered by this one (see `ledger`), but one waiting
                // for this very event is, and the worker may be asleep.
                counters.ledger.settle([seq]);
                inner.shared.wake.notify_one();
                Err(match reason {
                    DropReason::QueueFull => TrackError::QueueFull,
                    _ => TrackError::ShutDown,
                })
            }
        }
    }

    /// Gives back the spool room reserved for an event that did not get in.
    fn release_spool_bytes(&self, size: usize) {
        if self.inner.spool_max_bytes.is_some() {
            self.inner
                .shared
                .spool_live_bytes
                .fetch_sub(size as u64, Ordering::Relaxed);
        }
    }

    /// Sets (or clears, with `None`) the signed-in user for the next events.
    pub fn set_user_id(&self, user_id: Option<String>) {
        self.identity_state().identity.set_user_id(user_id);
    }

    /// Forgets the user (sign-out): a new anonymous id, no user id, a new session.
    pub fn reset(&self) {
        self.identity_state()
            .identity
            .reset(Uuid::new_v4().to_string());
    }

    /// The anonymous id currently attached to events (persist it to keep it across runs).
    pub fn anonymous_id(&self) -> String {
        self.identity_state().identity.anonymous_id().to_owned()
    }

    fn identity_state(&self) -> std::sync::MutexGuard<'_, IdentityState> {
        self.inner
            .identity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The labels attached to every event.
    pub fn labels(&self) -> &Labels {
        &self.inner.labels
    }

    /// The library name and version sent in `context.library`.
    pub fn library(&self) -> &Library {
        &self.inner.library
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.shared.counters.snapshot()
    }

    /// Waits until every event tracked before this call is answered for (sent, rejected or
    /// dropped with a reason), or until `timeout`. Blocks the calling thread only; safe inside
    /// any async runtime (use [`Tracker::flush_async`] there to avoid blocking it).
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let reply = self.request_flush(timeout)?;
        wait_reply(&reply, timeout).unwrap_or_else(|| Err(self.flush_timeout()))
    }

    /// [`Tracker::flush`] for async callers: awaits without blocking the runtime; works on
    /// any executor (the worker enforces the timeout).
    pub async fn flush_async(&self, timeout: Duration) -> Result<(), FlushError> {
        let reply = self.request_flush(timeout)?;
        match reply.recv_async().await {
            Ok(result) => result,
            Err(_) => Err(self.flush_timeout()),
        }
    }

    fn request_flush(
        &self,
        timeout: Duration,
    ) -> Result<flume::Receiver<Result<(), FlushError>>, FlushError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(FlushError::AlreadyShutdown);
        }
        let (reply, rx) = flume::bounded(1);
        let target = self.inner.shared.counters.ledger.admitted();
        let control = Control::Flush {
            target,
            deadline: Instant::now() + timeout,
            reply,
        };
        self.inner
            .control_tx
            .send(control)
            .map_err(|_| FlushError::AlreadyShutdown)?;
        Ok(rx)
    }

    fn flush_timeout(&self) -> FlushError {
        FlushError::Timeout {
            pending: self.inner.shared.counters.pending(),
        }
    }

    /// Delivers what is pending (up to `timeout`), then stops the worker. Events still
    /// pending at the timeout are counted as `DropReason::ShutDown` and passed to the failure
    /// callback. Later `track` calls return [`TrackError::ShutDown`].
    pub fn shutdown(&self, timeout: Duration) -> Result<(), ShutdownError> {
        let reply = self.inner.request_shutdown(timeout)?;
        let result = wait_reply(&reply, timeout).unwrap_or(Err(ShutdownError::Timeout {
            dropped: self.inner.shared.counters.pending(),
        }));
        self.inner.join_worker();
        result
    }

    /// [`Tracker::shutdown`] for async callers (does not join the worker thread, which exits
    /// right after answering).
    pub async fn shutdown_async(&self, timeout: Duration) -> Result<(), ShutdownError> {
        let reply = self.inner.request_shutdown(timeout)?;
        match reply.recv_async().await {
            Ok(result) => result,
            Err(_) => Err(ShutdownError::Timeout {
                dropped: self.inner.shared.counters.pending(),
            }),
        }
    }

    /// A guard that shuts the tracker down (delivering what is pending, up to `timeout`) when
    /// it is dropped. Keep it alive for as long as the program tracks events:
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let tracker = eventwire::Tracker::builder().endpoint("http://127.0.0.1:8080").build()?;
    /// let _guard = tracker.shutdown_guard(std::time::Duration::from_secs(5));
    /// // … track events …
    /// # Ok(()) }
    /// ```
    pub fn shutdown_guard(&self, timeout: Duration) -> ShutdownGuard {
        ShutdownGuard {
            tracker: self.clone(),
            timeout,
        }
    }
}

fn check_uri(uri: &str) -> Result<(), TrackError> {
    SchemaKey::validate(uri).map_err(|source| TrackError::InvalidSchema {
        uri: uri.to_owned(),
        source,
    })
}

fn wait_reply<T>(reply: &flume::Receiver<T>, timeout: Duration) -> Option<T> {
    reply.recv_timeout(timeout.saturating_add(REPLY_GRACE)).ok()
}

impl Inner {
    /// Closes the tracker and asks the worker to deliver what is pending by `timeout`, then
    /// stop. The receiver gets the outcome.
    fn request_shutdown(
        &self,
        timeout: Duration,
    ) -> Result<flume::Receiver<Result<(), ShutdownError>>, ShutdownError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Err(ShutdownError::AlreadyShutdown);
        }
        let (reply, rx) = flume::bounded(1);
        // SeqCst with `enqueue`: every event that saw `closed == false` was admitted before
        // this load, so the target covers it.
        let target = self.shared.counters.ledger.admitted();
        let control = Control::Shutdown {
            target,
            deadline: Instant::now() + timeout,
            reply,
        };
        self.control_tx
            .send(control)
            .map_err(|_| ShutdownError::AlreadyShutdown)?;
        Ok(rx)
    }

    /// Waits for the worker thread to end (it ends right after answering a shutdown).
    fn join_worker(&self) {
        let handle = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("the eventwire worker thread panicked");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: deliver what is pending rather than lose it quietly.
        if let Ok(reply) = self.request_shutdown(DEFAULT_SHUTDOWN_TIMEOUT) {
            if let Some(Err(e)) = wait_reply(&reply, DEFAULT_SHUTDOWN_TIMEOUT) {
                tracing::warn!(error = %e, "tracker dropped");
            }
        }
        self.join_worker();
    }
}

/// Shuts the tracker down when dropped; see [`Tracker::shutdown_guard`].
#[must_use = "the guard shuts the tracker down when dropped; bind it: `let _guard = …`"]
#[derive(Debug)]
pub struct ShutdownGuard {
    tracker: Tracker,
    timeout: Duration,
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        match self.tracker.shutdown(self.timeout) {
            Ok(()) | Err(ShutdownError::AlreadyShutdown) => {}
            Err(e) => tracing::warn!(error = %e, "eventwire shutdown"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly on purpose

    use super::*;

    /// `track()` wakes the worker when a batch opens or fills, not per event: events the
    /// worker has moved into its outbox still count as queued until a batch is cut.
    #[test]
    fn track_wakes_the_worker_per_batch_not_per_event() {
        let tracker = Tracker::builder()
            .transport(crate::NoopTransport)
            .max_batch_events(100)
            .max_batch_delay(Duration::from_millis(20))
            .queue_capacity(100_000)
            .build()
            .unwrap();
        let n = 20_000;
        for i in 0..n {
            tracker
                .track_json(
                    "iglu:com.example/e/jsonschema/1-0-0",
                    &serde_json::json!({ "i": i }),
                )
                .unwrap();
        }
        tracker.flush(Duration::from_secs(20)).unwrap();
        let wakes = tracker.inner.shared.wakes.load(Ordering::Relaxed);
        // A batch opening and a batch filling: about two per 100 events, not one per event.
        assert!(wakes <= n / 100 * 3, "{wakes} wakes for {n} events");
        assert_eq!(tracker.stats().sent, n);
    }
}
