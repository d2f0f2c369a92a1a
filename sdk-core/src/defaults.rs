//! Every default of the Rust tracker, in one place.
//!
//! Each knob of [`TrackerBuilder`](crate::TrackerBuilder) (and of [`RetryPolicy`](crate::RetryPolicy),
//! [`BatchLimits`](crate::batch::BatchLimits), the HTTP transport and the spool) starts at
//! the constant here; the modules that use one re-export it under its old path. The browser
//! package keeps its own table (`eventwire-wasm`'s `defaults`), and a test there checks each
//! of its values equals the one here or differs for a reason written beside it.

use std::time::Duration;

use crate::protocol::{MAX_BODY_BYTES, MAX_EVENT_BYTES};

/// Most events in one batch.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 500;
/// Most bytes of one request body before compression: the collector's body limit.
pub const DEFAULT_MAX_BATCH_BYTES: usize = MAX_BODY_BYTES;
/// Longest an event waits in a batch that is not yet full.
pub const DEFAULT_MAX_BATCH_DELAY: Duration = Duration::from_millis(1000);
/// Most requests in flight at once. 16 batches of the default 500 events keep a collector
/// 50 ms away at about 100,000 events/s (docs/benchmarks.md); 1 sends one batch per round
/// trip.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// Most events waiting in the queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Most bytes of events waiting in the queue.
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Largest accepted event (its whole envelope, serialised): the collector's event limit.
pub const DEFAULT_MAX_EVENT_BYTES: usize = MAX_EVENT_BYTES;
/// Time the last handle's drop waits for pending events to be delivered.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Inactivity after which the next event starts a new session (as in Snowplow and GA).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Delay before the first retry (before jitter).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Ceiling of one backoff delay (before jitter).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Total time a batch may spend being retried before its events are given up (never with
/// a spool or in the browser: there the events wait).
pub const DEFAULT_RETRY_DEADLINE: Duration = Duration::from_secs(300);
/// Ceiling on a server's `Retry-After`, so a wrong header cannot stall the pipeline.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Body size from which requests are gzipped.
pub const DEFAULT_GZIP_MIN_BYTES: usize = 2048;
/// Time allowed for one HTTP request (connect, send, answer).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes of undelivered events kept in the spool.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Size at which the spool starts a new segment file.
pub const DEFAULT_SPOOL_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Longest time between `track()` and the start of the group commit (fsync) that makes the
/// event durable.
pub const DEFAULT_SPOOL_COMMIT_INTERVAL: Duration = Duration::from_millis(50);
