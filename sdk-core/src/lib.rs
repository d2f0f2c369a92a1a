//! # eventwire
//!
//! The event tracker of [eventwire](https://github.com/eventwire/eventwire): typed analytics
//! events, batched and delivered to an eventwire collector without blocking the caller and
//! without losing anything quietly.
//!
//! ## Overview
//!
//! Events are defined once as JSON Schemas in Iglu layout (`schemas/<vendor>/<name>/jsonschema/1-0-0`).
//! `eventwire-codegen` turns them into Rust types that implement [`SelfDescribing`]; a
//! [`Tracker`] wraps each event in the wire envelope (event id, timestamps, labels, identity),
//! serialises it once on the caller's thread and hands it to a bounded queue. A worker thread
//! batches events by count, bytes and time, gzips, sends them to the collector's
//! `POST /v1/batch` and retries what failed.
//!
//! ## Quickstart
//!
//! ```no_run
//! use std::time::Duration;
//! use eventwire::{SelfDescribing, Tracker};
//!
//! #[derive(serde::Serialize)]
//! struct PlayStarted { media_id: String, position_s: f64 }
//! impl SelfDescribing for PlayStarted {
//!     const SCHEMA: &'static str = "iglu:com.example.media/play/jsonschema/1-0-0";
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tracker = Tracker::builder()
//!     .endpoint("http://127.0.0.1:8080")
//!     .environment("prod").service("web").team("media").version("3f2c1aa")
//!     .build()?;
//! let _guard = tracker.shutdown_guard(Duration::from_secs(5)); // delivers what is left on drop
//!
//! tracker.track(PlayStarted { media_id: "b0074dlv".into(), position_s: 0.0 })?;
//! tracker.track_json(
//!     "iglu:com.example/search/jsonschema/1-0-0",
//!     &serde_json::json!({ "query": "weather" }),
//! )?;
//! tracker.flush(Duration::from_secs(2))?;
//! println!("{:?}", tracker.stats());
//! # Ok(()) }
//! ```
//!
//! ## Delivery guarantees
//!
//! At least once: an event leaves the tracker only when the collector has answered for it
//! (accepted, or rejected into its dead-letter sink) — the collector's own batch answer, not a
//! redirect or another service's 2xx ([`DropReason::NotACollector`]). Its `event_id` never
//! changes across retries, so the collector deduplicates resends. Every event that is not
//! delivered is counted in [`Stats`] with a [`DropReason`] and passed to the
//! [`on_failure`](TrackerBuilder::on_failure) callback: a full queue, an event over the size
//! limit, a refused write key, a retry deadline passed (never with a spool), a shutdown that
//! timed out. [`Tracker::flush`] returns `Ok` only once every event tracked before it is
//! settled. `track()`
//! never waits for the network; with [`WhenFull::Block`] it may wait for queue room, up to a
//! timeout. The full account is in `docs/delivery.md`.
//!
//! ## Durable spool
//!
//! With [`TrackerBuilder::spool`], every event is also written to a log in a directory
//! (durable at the next group commit, started at most [`DEFAULT_SPOOL_COMMIT_INTERVAL`]
//! after `track()` returned) and removed
//! only once the collector has answered for it. Events left undelivered by a crash, a kill
//! or a shutdown that timed out are sent by the next tracker on the same directory, with
//! their original `event_id` and `created_at`; while the collector is unreachable, a full
//! memory queue overflows to disk instead of dropping. See [`spool`] for the format.
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `native` | yes | the [`Tracker`] and its worker thread (tokio current-thread runtime) |
//! | `reqwest` | yes | [`HttpTransport`](transport::HttpTransport): HTTP delivery with reqwest + rustls |
//! | `gzip` | yes | gzip request bodies above a threshold |
//! | `schemars` | no | JSON Schemas of the wire types (`protocol::iglu_schemas`) |
//!
//! With `--no-default-features` the crate builds for `wasm32-unknown-unknown`: the wire
//! types, Iglu URIs, batching, retry policy, identity, accounting and the delivery routine,
//! with no threads and no clock of their own, for the browser package to drive.

pub mod batch;
pub mod check;
pub mod delivery;
pub mod event;
pub mod iglu;
mod ledger;
pub mod policy;
pub mod protocol;
pub mod session;
pub mod stats;
pub mod transport;

#[cfg(feature = "native")]
pub mod spool;
#[cfg(feature = "native")]
mod spooler;
#[cfg(feature = "native")]
mod tracker;
#[cfg(feature = "native")]
mod worker;

pub use event::{EncodedEvent, SelfDescribing};
pub use iglu::{IgluUriError, SchemaKey, SchemaVer};
pub use policy::RetryPolicy;
pub use protocol::{Entity, Event, Labels};
#[cfg(feature = "native")]
pub use spooler::DEFAULT_SPOOL_COMMIT_INTERVAL;
pub use stats::{DropReason, FailureReason, Stats};
#[cfg(feature = "native")]
pub use tracker::{
    BeforeSend, BuildError, FlushError, ShutdownError, ShutdownGuard, TrackError, Tracker,
    TrackerBuilder, WhenFull, DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_SPOOL_MAX_BYTES, LIBRARY_NAME,
};
pub use transport::{MemoryTransport, NoopTransport, Transport};

/// Re-exported so generated code and users name the same `Uuid`.
pub use uuid::Uuid;

/// The crates that code generated by `eventwire-codegen` uses, reached through this crate
/// (as prost's output reaches `::prost`), so a crate with generated types depends on
/// `eventwire` and `serde` only, whatever its schemas use. Not an API: what is here and its
/// versions follow the generator's needs.
#[doc(hidden)]
pub mod __codegen {
    #[cfg(feature = "codegen")]
    pub use ::chrono;
    #[cfg(feature = "codegen")]
    pub use ::regress;
    pub use ::serde_json;
    pub use ::uuid;
}

/// `User-Agent` of the HTTP transport.
pub const USER_AGENT: &str = concat!("eventwire-rust/", env!("CARGO_PKG_VERSION"));
