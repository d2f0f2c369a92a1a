//! # eventwire-codegen
//!
//! Typed event types from Iglu schemas, for Rust (with typify) and TypeScript.
//!
//! ## Overview
//!
//! Event schemas live in a directory in Iglu layout:
//! `<root>/<vendor>/<name>/jsonschema/<MODEL>-<REVISION>-<ADDITION>` (no file extension), each a
//! self-describing JSON Schema whose `self` block matches its path. [`registry::load_dir`]
//! reads such a directory; [`rust::generate`] turns the schemas into one Rust module per
//! vendor, one type per schema version, each implementing `eventwire::SelfDescribing` (see
//! [`rust`] for the naming rules).
//!
//! ## Quickstart: `build.rs`
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     eventwire_codegen::Builder::new().schemas("schemas").compile()?;
//!     Ok(())
//! }
//! ```
//!
//! ```text
//! // src/main.rs
//! mod events {
//!     include!(concat!(env!("OUT_DIR"), "/eventwire_events.rs"));
//! }
//! tracker.track(events::com_example_media::Play { media_id: "b0074dlv".parse()?, position_s: 0.0, ..Default::default() })?;
//! ```
//!
//! The crate that includes the generated code depends on `eventwire` (with its `codegen`
//! feature, on by default) and `serde` with `derive`, nothing else: what the code uses for
//! JSON, patterns, date-times and uuids it reaches through `::eventwire::__codegen` (as
//! prost's output reaches `::prost`).

use std::path::{Path, PathBuf};

pub mod check;
mod fields;
pub mod lint;
pub mod names;
pub mod normalize;
mod plain;
mod refs;
/// Reading a schema registry directory in Iglu layout (from [`eventwire_schema`]).
pub use eventwire_schema::registry;
pub mod rust;
pub mod ts;

/// Why code could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodegenError {
    /// A schema that cannot be turned into types; the message says where and why.
    #[error("{schema}{}: {message}", if path.is_empty() { String::new() } else { format!(" at {path}") })]
    Schema {
        /// The schema's Iglu URI.
        schema: String,
        /// JSON pointer into the schema, when known.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A file in the schema directory is not a usable schema.
    #[error("{0}")]
    Load(String),
    /// Writing the output failed.
    #[error("{0}")]
    Io(String),
}

/// Errors of one [`Builder::compile`] run, all of them.
#[derive(Debug, thiserror::Error)]
#[error("eventwire-codegen: {} error(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct BuildErrors(pub Vec<CodegenError>);

/// Generates Rust types from schema directories, for `build.rs` (the way prost-build works).
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct Builder {
    schemas: Vec<PathBuf>,
    out_file: Option<PathBuf>,
    rerun_if_changed: bool,
}

/// File name written in `OUT_DIR` by default.
pub const DEFAULT_OUT_FILE: &str = "eventwire_events.rs";

impl Builder {
    /// A builder that prints `cargo:rerun-if-changed` lines (as `build.rs` needs).
    pub fn new() -> Self {
        Builder {
            rerun_if_changed: true,
            ..Builder::default()
        }
    }

    /// Adds a schema directory in Iglu layout.
    pub fn schemas(mut self, dir: impl Into<PathBuf>) -> Self {
        self.schemas.push(dir.into());
        self
    }

    /// Writes to this file instead of `$OUT_DIR/eventwire_events.rs`.
    pub fn out_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.out_file = Some(path.into());
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines.
    pub fn rerun_if_changed(mut self, yes: bool) -> Self {
        self.rerun_if_changed = yes;
        self
    }

    /// Loads the schemas and generates the Rust code, without writing it. Schemas that
    /// cannot be turned into types are in [`rust::RustOutput::skipped`].
    pub fn generate(&self) -> Result<rust::RustOutput, BuildErrors> {
        let files = self.load()?;
        rust::generate(&files).map_err(BuildErrors)
    }

    fn load(&self) -> Result<Vec<registry::SchemaFile>, BuildErrors> {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for dir in &self.schemas {
            if self.rerun_if_changed {
                println!("cargo:rerun-if-changed={}", dir.display());
            }
            let loaded = registry::load_dir(dir);
            errors.extend(
                loaded
                    .errors
                    .iter()
                    .map(|e| CodegenError::Load(e.to_string())),
            );
            for f in &loaded.schemas {
                if self.rerun_if_changed {
                    println!("cargo:rerun-if-changed={}", f.path.display());
                }
            }
            files.extend(loaded.schemas);
        }
        if !errors.is_empty() {
            return Err(BuildErrors(errors));
        }
        Ok(files)
    }

    /// Loads the schemas and generates the TypeScript module (see [`ts`]).
    ///
    /// # Errors
    /// A schema directory that cannot be read, a file that is not a schema, or a
    /// personal-data mark that would seal nothing: every one is listed.
    pub fn generate_typescript(&self) -> Result<String, BuildErrors> {
        let files = self.load()?;
        ts::generate(&files).map_err(BuildErrors)
    }

    /// Generates and writes the file; returns its path. The file is rewritten only when its
    /// content changes, so unchanged schemas do not trigger a rebuild.
    ///
    /// # Errors
    /// A schema directory that cannot be read, a file that is not a schema, or a schema that
    /// cannot be turned into types: every one is listed. In the last case the file is still
    /// written with the other schemas' types (so an IDE keeps working), and the build fails
    /// naming the schema, never with a type silently missing.
    pub fn compile(&self) -> Result<PathBuf, BuildErrors> {
        let output = self.generate()?;
        let path = match &self.out_file {
            Some(p) => p.clone(),
            None => {
                let dir = std::env::var_os("OUT_DIR").ok_or_else(|| {
                    BuildErrors(vec![CodegenError::Io(
                        "OUT_DIR is not set: call compile() from build.rs, or set out_file()"
                            .into(),
                    )])
                })?;
                Path::new(&dir).join(DEFAULT_OUT_FILE)
            }
        };
        write_if_changed(&path, &output.code).map_err(|e| BuildErrors(vec![e]))?;
        if !output.skipped.is_empty() {
            return Err(BuildErrors(output.skipped));
        }
        Ok(path)
    }
}

/// Writes `text` to `path` unless the file already holds exactly that.
pub fn write_if_changed(path: &Path, text: &str) -> Result<(), CodegenError> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| CodegenError::Io(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(|e| CodegenError::Io(format!("{}: {e}", path.display())))
}
