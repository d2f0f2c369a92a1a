//! # eventwire-codegen
//!
//! Build-time tooling for eventwire's event schemas.
//!
//! ## Overview
//!
//! Event schemas live in a directory in Iglu layout:
//! `<root>/<vendor>/<name>/jsonschema/<MODEL>-<REVISION>-<ADDITION>` (no file extension), each a
//! self-describing JSON Schema whose `self` block matches its path. [`registry::load_dir`]
//! reads such a directory and reports every file that breaks the layout, so that code
//! generation, `eventwire lint` and the collector all see the same schemas.
//!
//! ## Quickstart
//!
//! ```no_run
//! let loaded = eventwire_codegen::registry::load_dir("schemas".as_ref());
//! for problem in &loaded.errors {
//!     eprintln!("{problem}");
//! }
//! for schema in &loaded.schemas {
//!     println!("{} ({})", schema.key, schema.path.display());
//! }
//! ```

pub mod registry;
