//! The eventwire collector's checks, without its server: what `eventwire collect` runs on
//! every request body, and what `eventwire validate` runs on a file (natively, and compiled
//! to `wasm32-wasip1` for the npm CLI).
//!
//! - [`registry`]: Iglu schemas from a directory (or an HTTP base URL, feature `http`),
//!   compiled once and cached;
//! - [`validate`]: a batch body to good lines and dead letters — limits, the envelope
//!   schema, each event's and entity's schema, personal-data marks;
//! - [`record`]: the good record and the dead letter as written to the sinks;
//! - [`time`]: `event_time`, the client's clock corrected by the collector's.
//!
//! `eventwire-collector` re-exports these modules under its own name.

pub mod defaults;
pub mod record;
pub mod registry;
pub mod time;
pub mod validate;
