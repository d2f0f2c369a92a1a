//! Every default of the collector, in one place. The modules that use one re-export it
//! under its old path; the CLI's `eventwire collect` flags start from these.

use std::time::Duration;

// Validation's and the registry's, from the crate that runs them.
pub use eventwire_validate::defaults::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CACHED, DEFAULT_MAX_DEPTH, DEFAULT_MAX_EVENTS,
    DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_STRING_BYTES, DEFAULT_NEGATIVE_TTL,
};

/// Time allowed to receive a whole request body (a trickling body is cut off).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to receive a request's headers.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shutdown waits for the requests under way (and then for the sinks'
/// flush) before it cuts them off.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Recent events kept per kind in dev mode.
pub const DEFAULT_DEV_CAPACITY: usize = 10_000;

/// Event ids per deduplication generation (the window is at least this many events).
pub const DEFAULT_DEDUP_GENERATION: usize = 1_000_000;

/// Most batch requests in flight (read, validated or being committed); one more is shed with
/// 503 and `Retry-After` before its body is read.
pub const DEFAULT_MAX_IN_FLIGHT_REQUESTS: usize = 256;
/// Most request bytes in flight (32 MiB): bodies as they arrive, then the lines waiting to
/// be written (each request holds the larger). Parsed events come on top, on the
/// validation threads only (one request per core; docs/collector.md).
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 32 * 1024 * 1024;
/// Most requests whose records are written together (one write and one flush per sink).
pub const DEFAULT_MAX_GROUP_REQUESTS: usize = 64;
/// `/healthz` answers 503 once a sink write has been under way this long (a stuck disk, a
/// broker that does not acknowledge): every request waits behind it.
pub const HEALTH_MAX_WRITE: Duration = Duration::from_secs(60);
/// `Retry-After` of a request shed because the collector is busy: soon, as the work in
/// flight ends within milliseconds (a sink or registry outage says [`RETRY_AFTER_SECONDS`]).
///
/// [`RETRY_AFTER_SECONDS`]: crate::server::RETRY_AFTER_SECONDS
pub const SHED_RETRY_AFTER_SECONDS: u64 = 1;
