//! Configuring a tracker and starting it: the builder, its checks, and the start of the
//! worker thread (and, with a spool, of the spool thread).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventwire_pii::PublicKey;
use eventwire_schema::pii::Marks;
use uuid::Uuid;

use crate::batch::BatchLimits;
use crate::defaults::{
    DEFAULT_GZIP_MIN_BYTES, DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_QUEUE_BYTES, DEFAULT_QUEUE_CAPACITY, DEFAULT_SESSION_TIMEOUT,
    DEFAULT_SPOOL_COMMIT_INTERVAL, DEFAULT_SPOOL_MAX_BYTES,
};
use crate::errors::BuildError;
#[allow(unused_imports)] // for the docs' links
use crate::errors::TrackError;
use crate::event::{EncodedEvent, StaticContext};
use crate::outbox::Outbox;
use crate::policy::RetryPolicy;
use crate::protocol::{Event, Labels, Library};
use crate::seal::{MarksBySchema, PiiPolicy};
use crate::session::Identity;
use crate::shared::{FailureCallback, Shared};
use crate::spool::{Spool, SpoolConfig, SpoolFs};
use crate::spooler::{SpoolLink, Spooler};
use crate::stats::FailureReason;
use crate::tracker::{BeforeSend, IdentityState, Inner, Tracker, WhenFull, LIBRARY_NAME};
use crate::transport::Transport;
use crate::worker::Worker;

/// Configures a [`Tracker`]. Every knob has a `DEFAULT_*` constant.
#[must_use]
pub struct TrackerBuilder {
    endpoint: Option<String>,
    write_key: Option<String>,
    write_key_in_body: bool,
    labels: Labels,
    anonymous_id: Option<String>,
    test_id: Option<String>,
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
    pii_key: Option<PublicKey>,
    pii_in_clear: bool,
    pii_marks: MarksBySchema,
    pii_schemas: Vec<PathBuf>,
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
            test_id: None,
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
            pii_key: None,
            pii_in_clear: false,
            pii_marks: MarksBySchema::new(),
            pii_schemas: Vec::new(),
        }
    }
}

impl Tracker {
    /// A builder with every setting at its default.
    pub fn builder() -> TrackerBuilder {
        TrackerBuilder::default()
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

    /// Marks every event with `context.test_id` (1 to
    /// [`crate::protocol::MAX_TEST_ID_CHARS`] characters; [`TrackerBuilder::build`] fails
    /// with [`BuildError::InvalidConfig`] otherwise). For an app's tests: a dev collector
    /// (`eventwire collect --dev`) filters its views and `/v1/events/wait` by it, so tests
    /// running in parallel against one collector see only their own events (see
    /// `eventwire::testing`).
    pub fn test_id(mut self, id: impl Into<String>) -> Self {
        self.test_id = Some(id.into());
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
    /// tracker per directory: a second one gets [`SpoolError::Locked`](crate::spool::SpoolError::Locked) from `build()`.
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
    /// [`DropReason::SpoolFull`](crate::DropReason::SpoolFull).
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

    /// Seals personal data to `key`, the backend's public key (`ewpk1.…`, made by
    /// `eventwire pii keygen`; read it with [`PublicKey::parse`]): each value a schema
    /// marks `"x-pii": true` leaves the app as `ew1.<key id>.<enc>.<ciphertext>`, which only
    /// the private key opens (`eventwire pii open`). Sealing happens on the tracker's own
    /// thread (the spool thread, or the worker), not in `track()`; until then the plaintext
    /// is only in the tracker's memory queue. The marks come from generated types, from
    /// [`TrackerBuilder::pii_marks`] and from [`TrackerBuilder::pii_schemas`].
    pub fn pii_public_key(mut self, key: PublicKey) -> Self {
        self.pii_key = Some(key);
        self
    }

    /// The personal-data marks of schemas, as generated code lists them in `PII_MARKS`:
    /// `(schema URI, JSON pointers into its data)`, `*` for every item of an array. Needed
    /// for events tracked as JSON and for entities (a generated event type carries its own
    /// marks). A schema given again replaces its earlier marks; marks read with
    /// [`TrackerBuilder::pii_schemas`] replace the table's for the same schema.
    pub fn pii_marks(mut self, table: &[(&str, &[&str])]) -> Self {
        for (schema, pointers) in table {
            if !pointers.is_empty() {
                self.pii_marks
                    .insert((*schema).to_owned(), Marks::from_pointers(pointers));
            }
        }
        self
    }

    /// Reads the personal-data marks of every schema under `dir` (Iglu layout, as the
    /// collector and `eventwire codegen` read it) when the tracker is built.
    /// [`TrackerBuilder::build`] fails with [`BuildError::Pii`] when a file cannot be
    /// used or a mark is not honoured (see `eventwire lint`).
    pub fn pii_schemas(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pii_schemas.push(dir.into());
        self
    }

    /// Sends values marked as personal data in clear, unsealed (default: `false`, and
    /// without a key `track()` refuses such events with [`TrackError::PiiWithoutKey`]).
    /// A collector that knows the marks dead-letters them as `pii_unsealed`.
    pub fn send_pii_in_clear(mut self, yes: bool) -> Self {
        self.pii_in_clear = yes;
        self
    }

    /// The marks given, with those read from the schema directories.
    fn pii_policy(&mut self) -> Result<Arc<PiiPolicy>, BuildError> {
        let mut marks = std::mem::take(&mut self.pii_marks);
        for dir in &self.pii_schemas {
            let loaded = eventwire_schema::registry::load_dir(dir);
            if let Some(e) = loaded.errors.first() {
                return Err(BuildError::Pii(e.to_string()));
            }
            for file in loaded.schemas {
                let found = Marks::of(&file.schema)
                    .map_err(|e| BuildError::Pii(format!("{}: {e}", file.path.display())))?;
                if !found.is_empty() {
                    marks.insert(file.key.to_string(), found);
                }
            }
        }
        Ok(Arc::new(PiiPolicy {
            key: self.pii_key.take(),
            in_clear: self.pii_in_clear,
            marks: Arc::new(marks),
        }))
    }

    /// Validates the settings and starts the worker thread.
    pub fn build(mut self) -> Result<Tracker, BuildError> {
        let write_key_json = self.check()?;
        let pii = self.pii_policy()?;
        let transport = self.make_transport()?;
        let library = Library {
            name: LIBRARY_NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let context = StaticContext {
            labels: serde_json::value::to_raw_value(&self.labels)?,
            library: serde_json::value::to_raw_value(&library)?,
            test_id: self.test_id.take(),
        };
        let anonymous_id = self
            .anonymous_id
            .take()
            .unwrap_or_else(|| Uuid::new_v4().to_string());
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
        let (data_tx, spool) = match self.spool.take() {
            None => (queue_tx, None),
            Some(dir) => {
                let fs = self
                    .spool_fs
                    .take()
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
                    (pii.clone(), self.max_event_bytes),
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
            write_key: self.write_key.take().map(Into::into),
            on_failure: self.on_failure.take(),
            spool,
            origin: Instant::now(),
            pii: pii.clone(),
            max_event_bytes: self.max_event_bytes,
            problems: crate::problem::Reports::default(),
        };
        let handle = start_worker(worker)?;
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
                pii,
            }),
        })
    }

    /// Checks every setting; returns the write key as a JSON string when it travels in the
    /// body.
    fn check(&self) -> Result<Option<String>, BuildError> {
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
        if self.max_in_flight == 0 {
            return invalid("max_in_flight must be at least 1");
        }
        if self.spool_commit_interval.is_zero() {
            return invalid("spool_commit_interval must be above zero");
        }
        if let Some(id) = &self.test_id {
            let chars = id.chars().count();
            if chars == 0 || chars > crate::protocol::MAX_TEST_ID_CHARS {
                return invalid(&format!(
                    "test_id must be 1 to {} characters, not {chars}",
                    crate::protocol::MAX_TEST_ID_CHARS
                ));
            }
        }
        let write_key_json = match (&self.write_key, self.write_key_in_body) {
            (Some(k), true) => Some(serde_json::to_string(k)?),
            _ => None,
        };
        let overhead = crate::batch::body_overhead(write_key_json.as_deref().map(str::len));
        let largest = self.limits.max_bytes.saturating_sub(overhead);
        if self.max_event_bytes == 0 || self.max_event_bytes > largest {
            return invalid(&format!(
                "max_event_bytes must be between 1 and {largest} (max_batch_bytes minus the body's own {overhead} bytes)"
            ));
        }
        Ok(write_key_json)
    }

    /// The transport given, or HTTP to the endpoint.
    fn make_transport(&mut self) -> Result<Arc<dyn Transport>, BuildError> {
        match (self.transport.take(), &self.endpoint) {
            (Some(t), _) => Ok(t),
            (None, None) => Err(BuildError::NoEndpoint),
            #[cfg(feature = "reqwest")]
            (None, Some(endpoint)) => {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                    || endpoint.len() <= "https://".len()
                {
                    return Err(BuildError::InvalidEndpoint(endpoint.clone()));
                }
                Ok(Arc::new(
                    crate::transport::HttpTransport::new(endpoint, self.request_timeout)
                        .map_err(|e| BuildError::Transport(e.to_string()))?,
                ))
            }
            #[cfg(not(feature = "reqwest"))]
            (None, Some(_)) => Err(BuildError::InvalidConfig(
                "no HTTP transport compiled in (feature `reqwest`): pass `.transport(…)`".into(),
            )),
        }
    }
}

/// Starts the worker thread with its own current-thread runtime.
fn start_worker(worker: Worker) -> Result<std::thread::JoinHandle<()>, BuildError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(std::thread::Builder::new()
        .name("eventwire-worker".into())
        .spawn(move || runtime.block_on(worker.run()))?)
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
    (pii, max_event_bytes): (Arc<PiiPolicy>, usize),
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
        pii,
        max_event_bytes,
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
