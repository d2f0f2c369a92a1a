//! # eventwire-schema
//!
//! What every part of [eventwire](https://github.com/eventwire/eventwire) agrees on about
//! schemas and the wire, with no runtime, no HTTP client and no threads:
//!
//! - [`iglu`]: Iglu schema keys (`iglu:vendor/name/format/M-R-A`) and SchemaVer;
//! - [`registry`]: reading a schema registry directory in Iglu layout (each file's path and
//!   `self` block must agree);
//! - `draft4` (feature `draft4`): the one recipe that compiles an Iglu schema as JSON
//!   Schema draft 4, used by the collector, the linter and the fidelity tests;
//! - [`pii`]: the `"x-pii": true` mark, where it applies in an event, and the shape of a
//!   sealed value (the cryptography is `eventwire-pii`'s);
//! - [`pointer`](mod@pointer): JSON Pointer reference tokens;
//! - [`protocol`]: the wire types of `POST /v1/batch` and their limits;
//! - [`check`]: the runtime of the checks generated from schemas (formats, patterns,
//!   numbers), shared by the generated types and the collector.
//!
//! The tracker (`eventwire`) re-exports [`iglu`], [`protocol`] and [`check`] under the same
//! names, so `eventwire::protocol::Batch` and friends keep working; the collector and the
//! code generator depend on this crate alone for them.

pub mod check;
pub mod dimension;
#[cfg(feature = "draft4")]
pub mod draft4;
pub mod iglu;
pub mod pii;
pub mod pointer;
pub mod protocol;
pub mod registry;

pub use iglu::{IgluUriError, SchemaKey, SchemaVer};
