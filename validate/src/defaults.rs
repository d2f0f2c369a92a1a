//! The defaults of validation and of the schema registry, in one place; the collector's
//! `defaults` re-exports them beside its own.

use std::time::Duration;

/// Largest request body, after decompression (the protocol's 1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = eventwire_schema::protocol::MAX_BODY_BYTES;
/// Most events in one batch.
pub const DEFAULT_MAX_EVENTS: usize = 10_000;
/// Largest event, its JSON (the protocol's 256 KiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = eventwire_schema::protocol::MAX_EVENT_BYTES;
/// Deepest nesting of arrays and objects inside an event.
pub const DEFAULT_MAX_DEPTH: usize = 32;
/// Longest string (or object key) inside an event, in bytes.
pub const DEFAULT_MAX_STRING_BYTES: usize = eventwire_schema::protocol::MAX_STRING_BYTES;

/// Time an unknown schema is remembered as unknown.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Compiled schemas kept.
pub const DEFAULT_MAX_CACHED: usize = 10_000;
