//! Why an operation of the tracker did not succeed: one error enum per operation (`track`,
//! `flush`, `shutdown`, `build`).

use crate::iglu::IgluUriError;
use crate::spool::SpoolError;
#[allow(unused_imports)] // for the docs' links
use crate::stats::Stats;

/// Why `track` refused an event. Every refusal is also counted in [`Stats`].
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// The event's (or an entity's) schema URI is malformed: fix the URI.
    #[error("invalid schema URI `{uri}`: {cause}")]
    InvalidSchema {
        /// The URI as given.
        uri: String,
        /// What is wrong with it (in the message, so not also a `source()`).
        cause: IgluUriError,
    },
    /// The event's data could not be serialised to JSON (e.g. a map with non-string keys).
    #[error("event data is not serialisable to JSON: {0}")]
    Serialize(serde_json::Error),
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
    /// The event's schema (or an entity's) marks personal data (`"x-pii": true`) and no
    /// public key is configured to seal it: set
    /// [`TrackerBuilder::pii_public_key`](crate::TrackerBuilder::pii_public_key), or
    /// choose [`TrackerBuilder::send_pii_in_clear`](crate::TrackerBuilder::send_pii_in_clear).
    /// Counted as [`DropReason::PiiUnsealed`](crate::DropReason::PiiUnsealed).
    #[error("{schema} has personal data (fields marked \"x-pii\") and no public key is configured to seal it: set pii_public_key, or send_pii_in_clear to send it in clear")]
    PiiWithoutKey {
        /// The marked schema.
        schema: String,
    },
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
    Spawn(std::io::Error),
    /// The spool directory could not be opened: in use by another tracker
    /// ([`SpoolError::Locked`]), or not readable and writable.
    #[error("spool: {0}")]
    Spool(SpoolError),
    /// The schemas given to read personal-data marks from could not be used (unreadable, or
    /// a mark that is not honoured); the message names the file and the mark.
    #[error("personal-data marks: {0}")]
    Pii(String),
}

impl From<serde_json::Error> for BuildError {
    fn from(e: serde_json::Error) -> Self {
        BuildError::InvalidConfig(e.to_string())
    }
}

// Each cause is part of its error's message, so it is not also a `source()`: printed with
// its chain (`{:#}`), it would show twice.
impl From<serde_json::Error> for TrackError {
    fn from(e: serde_json::Error) -> Self {
        TrackError::Serialize(e)
    }
}

impl From<std::io::Error> for BuildError {
    fn from(e: std::io::Error) -> Self {
        BuildError::Spawn(e)
    }
}

impl From<SpoolError> for BuildError {
    fn from(e: SpoolError) -> Self {
        BuildError::Spool(e)
    }
}
