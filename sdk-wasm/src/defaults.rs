//! Every default of the browser package, in one place, beside the Rust tracker's
//! ([`eventwire::defaults`]).
//!
//! A browser default is the Rust one unless [`DEFAULTS`] names a reason for it to differ;
//! a test checks that, and that `npm/index.js` uses these values where it holds a default
//! itself (`requestTimeoutMs`, the calls kept before the core is loaded).

use std::time::Duration;

use eventwire::defaults as rust;
use eventwire::policy::duration_ms as ms;

/// Most events waiting in a page's memory.
pub const DEFAULT_MAX_QUEUE_EVENTS: usize = 100_000;
/// Most bytes of events waiting in a page's memory.
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 50_000_000;
/// Most requests in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;
/// How long a batch may be retried: for ever (`Duration::MAX`).
pub const RETRY_DEADLINE: Duration = Duration::MAX;
/// Time allowed for one request, ms (`requestTimeoutMs`; `index.js` holds it).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;

/// A default of the browser package and the Rust tracker's, in one unit.
pub struct Default {
    /// The option's name (the browser's, when it has one).
    pub name: &'static str,
    /// The browser package's value.
    pub browser: u64,
    /// The Rust tracker's value.
    pub rust: u64,
    /// Why they differ; `None` when they must not.
    pub differs_because: Option<&'static str>,
}

/// Every default the two trackers share, with the reason where they differ.
pub const DEFAULTS: &[Default] = &[
    Default {
        name: "maxBatchEvents",
        browser: rust::DEFAULT_MAX_BATCH_EVENTS as u64,
        rust: rust::DEFAULT_MAX_BATCH_EVENTS as u64,
        differs_because: None,
    },
    Default {
        name: "maxBatchBytes",
        browser: rust::DEFAULT_MAX_BATCH_BYTES as u64,
        rust: rust::DEFAULT_MAX_BATCH_BYTES as u64,
        differs_because: None,
    },
    Default {
        name: "maxBatchDelayMs",
        browser: ms(rust::DEFAULT_MAX_BATCH_DELAY),
        rust: ms(rust::DEFAULT_MAX_BATCH_DELAY),
        differs_because: None,
    },
    Default {
        name: "sessionTimeoutMs",
        browser: ms(rust::DEFAULT_SESSION_TIMEOUT),
        rust: ms(rust::DEFAULT_SESSION_TIMEOUT),
        differs_because: None,
    },
    Default {
        name: "requestTimeoutMs",
        browser: DEFAULT_REQUEST_TIMEOUT_MS,
        rust: ms(rust::DEFAULT_REQUEST_TIMEOUT),
        differs_because: None,
    },
    Default {
        name: "maxQueueEvents",
        browser: DEFAULT_MAX_QUEUE_EVENTS as u64,
        rust: rust::DEFAULT_QUEUE_CAPACITY as u64,
        differs_because: Some(
            "a page cannot spill to disk as the Rust tracker's spool does, and a tab left open offline must hold its visit",
        ),
    },
    Default {
        name: "maxQueueBytes",
        browser: DEFAULT_MAX_QUEUE_BYTES as u64,
        rust: rust::DEFAULT_MAX_QUEUE_BYTES as u64,
        differs_because: Some("64 MiB is more than a phone's tab should hold"),
    },
    Default {
        name: "maxInFlight",
        browser: DEFAULT_MAX_IN_FLIGHT as u64,
        rust: rust::DEFAULT_MAX_IN_FLIGHT as u64,
        differs_because: Some(
            "a page shares the browser's six connections per origin (HTTP/1.1) with its own requests, and a request waiting for a connection spends its timeout there",
        ),
    },
    Default {
        name: "retry deadline (ms)",
        browser: ms(RETRY_DEADLINE),
        rust: ms(rust::DEFAULT_RETRY_DEADLINE),
        differs_because: Some(
            "an event leaves a page's storage only when a collector answered for it (as with the Rust tracker's spool, which has no deadline either); the queue's bounds limit the backlog",
        ),
    },
    Default {
        name: "gzip from (bytes; 0: never)",
        browser: 0,
        rust: rust::DEFAULT_GZIP_MIN_BYTES as u64,
        differs_because: Some(
            "a gzipped body needs a Content-Encoding header, which makes every request a CORS preflight",
        ),
    },
    Default {
        name: "initial backoff (ms)",
        browser: ms(rust::DEFAULT_INITIAL_BACKOFF),
        rust: ms(rust::DEFAULT_INITIAL_BACKOFF),
        differs_because: None,
    },
    Default {
        name: "max backoff (ms)",
        browser: ms(rust::DEFAULT_MAX_BACKOFF),
        rust: ms(rust::DEFAULT_MAX_BACKOFF),
        differs_because: None,
    },
];
