//! Reading a schema registry directory in Iglu layout.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::iglu::{IgluUriError, SchemaKey};
use serde_json::Value;

/// One schema file.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFile {
    /// Its key, from its path (and equal to its `self` block).
    pub key: SchemaKey,
    /// Where it was read from.
    pub path: PathBuf,
    /// The schema document.
    pub schema: Value,
}

/// What was read from a directory: the good schemas (sorted by key) and every problem.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Schemas whose path and `self` block agree, sorted by key.
    pub schemas: Vec<SchemaFile>,
    /// Files that could not be used, with the reason.
    pub errors: Vec<LoadError>,
}

/// A file that could not be used.
#[derive(Debug)]
pub struct LoadError {
    /// The file (or directory).
    pub path: PathBuf,
    /// What is wrong.
    pub kind: LoadErrorKind,
}

/// What is wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum LoadErrorKind {
    /// It could not be read.
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    /// It is not in `<vendor>/<name>/<format>/<M-R-A>` layout.
    #[error("not in Iglu layout <vendor>/<name>/<format>/<M-R-A>: {0}")]
    Layout(IgluUriError),
    /// It is not JSON.
    #[error("not valid JSON: {0}")]
    Json(serde_json::Error),
    /// Its `self` block is missing or incomplete.
    #[error("missing or incomplete `self` block (vendor, name, format, version)")]
    NoSelf,
    /// Its `self` block names another schema than its path.
    #[error("`self` block says {in_self} but the path says {in_path}")]
    SelfMismatch {
        /// What the `self` block says.
        in_self: String,
        /// What the path says.
        in_path: String,
    },
}

// The cause is part of the message, so it is not also a `source()`: printed with its chain
// (`{:#}`), it would show twice.
impl From<std::io::Error> for LoadErrorKind {
    fn from(e: std::io::Error) -> Self {
        LoadErrorKind::Io(e)
    }
}

impl From<serde_json::Error> for LoadErrorKind {
    fn from(e: serde_json::Error) -> Self {
        LoadErrorKind::Json(e)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// Parses one schema file whose registry-relative path is `rel` (`vendor/name/format/M-R-A`).
pub fn load_file(path: &Path, rel: &str) -> Result<SchemaFile, LoadErrorKind> {
    let key = SchemaKey::from_path(rel).map_err(LoadErrorKind::Layout)?;
    let text = std::fs::read_to_string(path)?;
    let schema: Value = serde_json::from_str(&text)?;
    let in_self = match SchemaKey::from_self_block(&schema) {
        Some(Ok(k)) => k,
        Some(Err(_)) | None => return Err(LoadErrorKind::NoSelf),
    };
    if in_self != key {
        return Err(LoadErrorKind::SelfMismatch {
            in_self: in_self.to_string(),
            in_path: key.to_string(),
        });
    }
    Ok(SchemaFile {
        key,
        path: path.to_owned(),
        schema,
    })
}

/// Reads every schema under `root`. Files directly in `root` (README, LICENSE) and hidden
/// entries are ignored; anything else that is not a schema in Iglu layout is an error.
pub fn load_dir(root: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    walk(root, root, 0, &mut loaded);
    loaded.schemas.sort_by(|a, b| a.key.cmp(&b.key));
    loaded.errors.sort_by(|a, b| a.path.cmp(&b.path));
    loaded
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Loaded) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.errors.push(LoadError {
                path: dir.to_owned(),
                kind: e.into(),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && depth < 3 {
            walk(root, &path, depth + 1, out);
            continue;
        }
        if depth == 0 {
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        match load_file(&path, &rel) {
            Ok(schema) => out.schemas.push(schema),
            Err(kind) => out.errors.push(LoadError { path, kind }),
        }
    }
}
