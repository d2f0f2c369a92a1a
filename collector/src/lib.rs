//! # eventwire-collector
//!
//! The server side of eventwire's wire protocol (`POST /v1/batch`).
//!
//! ## Overview
//!
//! For each request the collector stamps its own receive time, checks the body is a batch,
//! validates every event's envelope, its `data` against the event's Iglu schema and each
//! entity against its own ([`validate`]), corrects the client's clock skew ([`time`]),
//! deduplicates by `event_id` within a bounded window ([`dedup`]), and writes good events and
//! dead letters to sinks ([`sink`]) before answering, so the tracker's at-least-once holds
//! end to end. Schemas come from a [`registry`]: a directory or an HTTP base URL in Iglu
//! layout, fetched on first use and cached.
//!
//! ## Quickstart
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use eventwire_collector::{server::{Collector, CollectorConfig}, registry::Source, sink::SinkSpec};
//! let config = CollectorConfig::new(Source::parse("schemas"))
//!     .good(SinkSpec::parse("good.jsonl"))
//!     .bad(SinkSpec::parse("bad.jsonl"));
//! let collector = Collector::new(config).await?;
//! let server = collector.serve("127.0.0.1:8080".parse()?).await?;
//! println!("listening on {}", server.addr());
//! server.wait().await;
//! # Ok(()) }
//! ```
//!
//! ## Guarantees
//!
//! Nothing the collector receives vanishes: every event ends in the good sink, the
//! dead-letter sink, or the duplicate counter; a request that is not a batch is stored as a
//! dead letter with its raw bytes. It answers 200 only after both sinks accepted the
//! records; if a sink fails it answers 503 and the tracker resends.

pub mod auth;
pub mod dedup;
pub mod defaults;
pub mod metrics;
pub mod server;
pub mod sink;
pub mod uniques;
// The checks, from the crate that also builds for WASI (the npm CLI's `validate`).
pub use eventwire_validate::{record, registry, time, validate};

// The server's parts, each re-exported from `server` where its items are public:
// `config` (CollectorConfig, CollectorError, Totals), `ingest` (the write key, the body, its
// content type and encoding), `refusal` (the refusals of a whole request, one enum),
// `admission` (the bounds of work in flight, shedding), `commit` (`POST /v1/batch`:
// validation, accounting, the answer), `committer` (the group commit: dedup decisions in
// arrival order, several requests' lines in one write per sink) and `dev` (the dev mode's
// recent events).
mod admission;
mod commit;
mod committer;
mod config;
mod dev;
mod ingest;
mod refusal;
