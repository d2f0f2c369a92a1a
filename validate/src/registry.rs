//! Where schemas come from: a directory in Iglu layout or an HTTP base URL serving the same
//! layout. Schemas are fetched on first use and their compiled validators cached; unknown
//! schemas are remembered for a short while (negative cache), so a new event type reaches
//! the collector without a restart.
//!
//! A schema URI can never make the collector read outside the registry: URIs are parsed with
//! the strict grammar of [`eventwire_schema::iglu`] (no `/`, `\`, `%`, `..` or empty parts), joined
//! part by part, and, for a directory, the resolved file must still lie under the root after
//! symlinks are followed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use eventwire_schema::draft4::tape::TapeJson;
use eventwire_schema::iglu::SchemaKey;
use eventwire_schema::pii::{sealed_schema, Marks};
use serde_json::Value;

pub use crate::defaults::{DEFAULT_MAX_CACHED, DEFAULT_NEGATIVE_TTL};
/// Schema documents larger than this are refused.
pub const MAX_SCHEMA_BYTES: usize = 1024 * 1024;
/// Time allowed to fetch one schema over HTTP.
pub const HTTP_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A compiled schema: for `serde_json::Value` instances (whose errors dead letters name) and
/// for tapes (the fast check of events read without a `Value` tree).
pub struct CompiledSchema {
    /// Which schema.
    pub key: SchemaKey,
    validator: jsonschema::Validator,
    tape: jsonschema::Validator<TapeJson>,
    /// Its personal-data marks: the validators check those places as sealed values.
    marks: Marks,
    /// Why its events cannot be judged (a mark that cannot be honoured): each is
    /// dead-lettered as `unknown_schema` with this reason, its marked values removed.
    unusable: Option<String>,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Compiles a self-describing schema document as JSON Schema draft 4 (formats checked).
    /// A schema with personal-data marks (`"x-pii": true`) is compiled as the collector
    /// sees its events: each marked place a sealed value
    /// ([`eventwire_schema::pii::sealed_schema`]); a mark that would seal nothing makes the
    /// schema unusable, as `eventwire lint` says.
    pub fn compile(key: SchemaKey, document: Value) -> Result<Self, String> {
        Self::compile_as(key, document, View::Sealed)
    }

    /// Compiles as [`CompiledSchema::compile`] does, for events as `view` has them.
    pub fn compile_as(key: SchemaKey, document: Value, view: View) -> Result<Self, String> {
        if !document.is_object() {
            return Err("schema is not a JSON object".into());
        }
        // A schema whose marks cannot be honoured is unusable (every event of it is
        // dead-lettered), but the marks it does have still say what to keep out of the
        // dead letters.
        let (marks, unusable) = match Marks::of(&document) {
            Ok(marks) => (marks, None),
            Err(e) => (
                Marks::lenient(&document),
                Some(format!("schema {key}: personal-data mark: {e}")),
            ),
        };
        let document = if marks.is_empty() || view == View::Opened || unusable.is_some() {
            document
        } else {
            sealed_schema(&document).map_err(|e| format!("personal-data mark: {e}"))?
        };
        let validator = eventwire_schema::draft4::compile(&document)
            .map_err(|e| format!("schema does not compile: {e}"))?;
        let tape = eventwire_schema::draft4::compile_for::<TapeJson>(&document)
            .map_err(|e| format!("schema does not compile: {e}"))?;
        Ok(CompiledSchema {
            key,
            validator,
            tape,
            unusable,
            marks: if view == View::Opened {
                Marks::default()
            } else {
                marks
            },
        })
    }

    /// Its personal-data marks (empty for most schemas).
    pub fn marks(&self) -> &Marks {
        &self.marks
    }

    /// Why events of this schema cannot be judged (`None`: they can).
    pub fn unusable(&self) -> Option<&str> {
        self.unusable.as_deref()
    }

    /// The validator of `serde_json::Value` instances.
    pub fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }

    /// The validator of tapes (the same schema, the same verdicts).
    pub fn tape_validator(&self) -> &jsonschema::Validator<TapeJson> {
        &self.tape
    }
}

/// Which events a registry's schemas check: personal data sealed (as a collector receives
/// it) or opened (as `eventwire pii open` writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Marked places hold sealed values ([`eventwire_schema::pii::sealed_schema`]).
    #[default]
    Sealed,
    /// Marked places hold the values as their schema describes them (and no value is
    /// refused as `pii_unsealed`).
    Opened,
}

/// The answer for one schema.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Here it is.
    Found(Arc<CompiledSchema>),
    /// Not in the registry (events using it are dead-lettered as `unknown_schema`).
    Unknown,
    /// In the registry but unusable: not JSON, wrong `self` block, does not compile.
    Broken(String),
    /// The registry could not be asked (HTTP error, timeout): try the batch again later.
    Unavailable(String),
}

/// Where schema documents live.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory in Iglu layout.
    Dir(PathBuf),
    /// An HTTP(S) base URL serving the same layout (a static bucket).
    Http(String),
}

impl Source {
    /// `http://` or `https://` → HTTP; anything else is a directory.
    pub fn parse(s: &str) -> Source {
        if s.starts_with("http://") || s.starts_with("https://") {
            Source::Http(s.trim_end_matches('/').to_owned())
        } else {
            Source::Dir(PathBuf::from(s))
        }
    }
}

/// A schema registry with caches.
pub struct Registry {
    source: Source,
    canonical_root: Option<PathBuf>,
    #[cfg(feature = "http")]
    client: reqwest::Client,
    found: RwLock<HashMap<SchemaKey, Lookup>>,
    /// Schemas not found, or found broken, and when: asked again after the negative TTL (a
    /// schema being written, or fixed, reaches the collector without a restart).
    unknown: RwLock<HashMap<SchemaKey, (Instant, Option<String>)>>,
    negative_ttl: Duration,
    max_cached: usize,
    view: View,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Why a registry could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The directory does not exist or cannot be read.
    #[error("schema directory {path}: {cause}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why (in the message, so not also a `source()`).
        cause: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
    /// The source is a URL and this build reads directories only (no feature `http`).
    #[error("{0}: this build reads schema directories only (registries over HTTP are in the native binary)")]
    NoHttp(String),
}

impl Registry {
    /// A registry reading from `source`.
    pub fn new(source: Source) -> Result<Self, RegistryError> {
        let canonical_root = match &source {
            Source::Dir(path) => {
                Some(std::fs::canonicalize(path).map_err(|e| RegistryError::Dir {
                    path: path.clone(),
                    cause: e,
                })?)
            }
            #[cfg(feature = "http")]
            Source::Http(_) => None,
            #[cfg(not(feature = "http"))]
            Source::Http(url) => return Err(RegistryError::NoHttp(url.clone())),
        };
        #[cfg(feature = "http")]
        let client = reqwest::Client::builder()
            .timeout(HTTP_FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RegistryError::Http(e.to_string()))?;
        Ok(Registry {
            source,
            canonical_root,
            #[cfg(feature = "http")]
            client,
            found: RwLock::default(),
            unknown: RwLock::default(),
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            max_cached: DEFAULT_MAX_CACHED,
            view: View::Sealed,
        })
    }

    /// Checks events as `view` has their personal data (default: sealed, as a collector
    /// receives them).
    #[must_use]
    pub fn view(mut self, view: View) -> Self {
        self.view = view;
        self
    }

    /// How long an unknown schema is remembered as unknown.
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Where schemas come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The answer from the caches alone, if they have one.
    pub fn cached(&self, key: &SchemaKey) -> Option<Lookup> {
        if let Some(hit) = read(&self.found).get(key) {
            return Some(hit.clone());
        }
        let unknown = read(&self.unknown);
        match unknown.get(key) {
            Some((at, broken)) if at.elapsed() < self.negative_ttl => Some(match broken {
                None => Lookup::Unknown,
                Some(why) => Lookup::Broken(why.clone()),
            }),
            _ => None,
        }
    }

    /// Looks a schema up, fetching and compiling it on first use.
    pub async fn resolve(&self, key: &SchemaKey) -> Lookup {
        if let Some(hit) = self.cached(key) {
            return hit;
        }
        let fetched = match &self.source {
            Source::Dir(_) => self.read_file(key),
            #[cfg(feature = "http")]
            Source::Http(base) => self.fetch(base, key).await,
            // `new` refuses HTTP sources in this build.
            #[cfg(not(feature = "http"))]
            Source::Http(base) => Fetched::Failed(format!("{base}: no HTTP in this build")),
        };
        let lookup = match fetched {
            Fetched::Document(text) => compile(key, &text, self.view),
            Fetched::Missing => Lookup::Unknown,
            Fetched::Failed(e) => return Lookup::Unavailable(e),
        };
        match &lookup {
            Lookup::Unknown | Lookup::Broken(_) => {
                let broken = match &lookup {
                    Lookup::Broken(why) => Some(why.clone()),
                    _ => None,
                };
                let mut unknown = write(&self.unknown);
                if unknown.len() >= self.max_cached {
                    unknown.clear();
                }
                unknown.insert(key.clone(), (Instant::now(), broken));
            }
            Lookup::Found(_) => {
                let mut found = write(&self.found);
                if found.len() >= self.max_cached {
                    found.clear();
                }
                found.insert(key.clone(), lookup.clone());
                write(&self.unknown).remove(key);
            }
            Lookup::Unavailable(_) => {}
        }
        lookup
    }

    fn read_file(&self, key: &SchemaKey) -> Fetched {
        let (Source::Dir(root), Some(canonical_root)) = (&self.source, &self.canonical_root) else {
            return Fetched::Failed("not a directory registry".into());
        };
        let path = root
            .join(&key.vendor)
            .join(&key.name)
            .join(&key.format)
            .join(key.version.to_string());
        match std::fs::canonicalize(&path) {
            Ok(real) if real.starts_with(canonical_root) && real.is_file() => read_limited(&real),
            Ok(real) => {
                tracing::warn!(schema = %key, path = %real.display(), "schema path leaves the registry; refused");
                Fetched::Missing
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Fetched::Missing,
            Err(e) => Fetched::Failed(format!("{}: {e}", path.display())),
        }
    }

    #[cfg(feature = "http")]
    async fn fetch(&self, base: &str, key: &SchemaKey) -> Fetched {
        // The key's parts are plain identifiers, so this URL stays under `base`.
        let url = format!("{base}/{}", key.path());
        // Messages reach clients (a 503's body) and logs: never the URL's password.
        let shown = without_password(&url);
        let response = match self.client.get(&url).send().await {
            Ok(r) => r,
            Err(e) => return Fetched::Failed(format!("GET {shown}: {}", e.without_url())),
        };
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Fetched::Missing;
        }
        if !status.is_success() {
            return Fetched::Failed(format!("GET {shown}: HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_SCHEMA_BYTES as u64)
        {
            return Fetched::Failed(format!("GET {shown}: schema over {MAX_SCHEMA_BYTES} bytes"));
        }
        match response.bytes().await {
            Ok(b) if b.len() <= MAX_SCHEMA_BYTES => {
                Fetched::Document(String::from_utf8_lossy(&b).into_owned())
            }
            Ok(_) => Fetched::Failed(format!("GET {shown}: schema over {MAX_SCHEMA_BYTES} bytes")),
            Err(e) => Fetched::Failed(format!("GET {shown}: {}", e.without_url())),
        }
    }
}

enum Fetched {
    Document(String),
    Missing,
    Failed(String),
}

fn read_limited(path: &Path) -> Fetched {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_SCHEMA_BYTES as u64 => {
            return Fetched::Failed(format!(
                "{}: schema over {MAX_SCHEMA_BYTES} bytes",
                path.display()
            ))
        }
        Err(e) => return Fetched::Failed(format!("{}: {e}", path.display())),
        Ok(_) => {}
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Fetched::Document(text),
        Err(e) => Fetched::Failed(format!("{}: {e}", path.display())),
    }
}

fn compile(key: &SchemaKey, text: &str, view: View) -> Lookup {
    let document: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Lookup::Broken(format!("schema {key} is not JSON: {e}")),
    };
    match SchemaKey::from_self_block(&document) {
        Some(Ok(k)) if k == *key => {}
        Some(Ok(k)) => return Lookup::Broken(format!("schema {key} has a `self` block for {k}")),
        _ => return Lookup::Broken(format!("schema {key} has no valid `self` block")),
    }
    match CompiledSchema::compile_as(key.clone(), document, view) {
        Ok(c) => Lookup::Found(Arc::new(c)),
        Err(e) => Lookup::Broken(format!("schema {key}: {e}")),
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `url` with its password, if any, shown as `***`.
#[cfg(feature = "http")]
pub fn without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
