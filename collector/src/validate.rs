//! Validation: from the bytes of a request body to good events and dead letters.
//!
//! 1. The body must be a batch: a JSON object with an RFC 3339 `sent_at` and an `events`
//!    array (else the whole request is `malformed`).
//! 2. Each event, on its own: size, nesting depth and string length limits (`too_large`),
//!    the envelope schema `iglu:dev.eventwire/event/jsonschema/1-0-0` (`invalid_envelope`),
//!    its schema in the registry (`unknown_schema`), `data` against it (`schema_invalid`),
//!    each entity against its own (`entity_invalid`).
//!
//! Registry lookups are the only I/O; they happen once per distinct schema of a batch,
//! between parsing and checking. The same checks serve `eventwire validate`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use eventwire_schema::iglu::SchemaKey;
use eventwire_schema::protocol::ErrorCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::record::{DeadLetter, ErrorDetail, MAX_ERRORS};
use crate::registry::{Lookup, Registry};
use crate::time::{event_time, format_timestamp, parse_timestamp};

pub use crate::defaults::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DEPTH, DEFAULT_MAX_EVENTS, DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_STRING_BYTES,
};

/// The envelope schema, as checked in (derived from the tracker's Rust types).
pub const ENVELOPE_SCHEMA: &str =
    include_str!("../../schemas/dev.eventwire/event/jsonschema/1-0-0");

/// Size and shape limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body after decompression.
    pub max_body_bytes: usize,
    /// Most events per batch.
    pub max_events: usize,
    /// Largest event.
    pub max_event_bytes: usize,
    /// Deepest nesting inside an event.
    pub max_depth: usize,
    /// Longest string inside an event.
    pub max_string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_events: DEFAULT_MAX_EVENTS,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            max_string_bytes: DEFAULT_MAX_STRING_BYTES,
        }
    }
}

/// Why a whole request is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    /// Not a batch: answered 400, the raw bytes dead-lettered as `malformed`.
    #[error("not a batch: {0}")]
    Malformed(String),
    /// More events than allowed: answered 413 (the tracker splits and resends).
    #[error("{count} events in one batch, over the limit of {limit}")]
    TooManyEvents {
        /// Events in the batch.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The registry could not be asked: answered 503, nothing stored; the tracker resends.
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
}

/// A valid event, ready for the good sink.
#[derive(Debug, Clone, PartialEq)]
pub struct GoodEvent {
    /// Position in the batch.
    pub index: usize,
    /// The event id.
    pub event_id: String,
    /// The event as received.
    pub event: Value,
    /// Skew-corrected event time.
    pub event_time: String,
    /// Whether `event_time` was clamped, and which way.
    pub clamped: Option<crate::time::Clamped>,
}

impl GoodEvent {
    /// The event's schema URI.
    pub fn schema(&self) -> &str {
        self.event
            .get("schema")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// A string from `context`, e.g. `user_id`.
    pub fn context_str(&self, field: &str) -> Option<&str> {
        self.event.get("context")?.get(field)?.as_str()
    }

    /// A label from `context.labels`, e.g. `service`.
    pub fn label(&self, label: &str) -> Option<&str> {
        self.event
            .get("context")?
            .get("labels")?
            .get(label)?
            .as_str()
    }
}

/// A dead-lettered event, with its position in the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BadEvent {
    /// Position in the batch.
    pub index: usize,
    /// The dead letter to write.
    pub dead: DeadLetter,
}

/// What became of a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Checked {
    /// The batch's `sent_at`, as sent.
    pub sent_at: String,
    /// The `write_key` in the body, if any.
    pub write_key: Option<String>,
    /// Valid events, in batch order.
    pub good: Vec<GoodEvent>,
    /// Dead-lettered events, in batch order.
    pub bad: Vec<BadEvent>,
}

#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(default)]
    sent_at: Option<Value>,
    #[serde(default)]
    write_key: Option<Value>,
    #[serde(borrow, default)]
    events: Option<Vec<&'a RawValue>>,
}

/// The validation pipeline: limits and the compiled envelope schema.
pub struct Pipeline {
    limits: Limits,
    envelope: crate::registry::CompiledSchema,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A batch whose events were parsed and their envelopes checked, waiting for the schemas
/// they name ([`Pipeline::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    received: String,
    received_at: DateTime<Utc>,
    sent_at: DateTime<Utc>,
    checked: Checked,
    candidates: Vec<Candidate>,
}

impl Prepared {
    /// Every schema URI its events name (their own and their entities'), each once.
    pub fn schema_uris(&self) -> HashSet<&str> {
        self.candidates
            .iter()
            .flat_map(|c| schema_uris(&c.event))
            .collect()
    }
}

/// A parsed event waiting for its schemas.
#[derive(Debug)]
struct Candidate {
    index: usize,
    event: Value,
    created_at: DateTime<Utc>,
}

impl Pipeline {
    /// A pipeline with these limits. Fails only if the embedded envelope schema does not
    /// compile (a build defect, caught by the tests).
    pub fn new(limits: Limits) -> Result<Self, String> {
        let key = SchemaKey::parse(eventwire_schema::protocol::EVENT_SCHEMA)
            .map_err(|e| e.to_string())?;
        let document: Value = serde_json::from_str(ENVELOPE_SCHEMA).map_err(|e| e.to_string())?;
        let envelope = crate::registry::CompiledSchema::compile(key, document)?;
        Ok(Pipeline { limits, envelope })
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Checks a decompressed body. `received_at` is the collector's clock at arrival.
    /// [`Pipeline::prepare`], the registry lookups, then [`Pipeline::finish`].
    pub async fn check_batch(
        &self,
        body: &[u8],
        received_at: DateTime<Utc>,
        registry: &Registry,
    ) -> Result<Checked, BatchError> {
        let prepared = self.prepare(body, received_at)?;
        let lookups = resolve_all(registry, prepared.schema_uris()).await?;
        Ok(self.finish(prepared, &lookups))
    }

    /// The first half of [`Pipeline::check_batch`], without I/O: the batch parsed, each
    /// event's limits and envelope checked.
    pub fn prepare(&self, body: &[u8], received_at: DateTime<Utc>) -> Result<Prepared, BatchError> {
        let received = format_timestamp(received_at);
        let batch: RawBatch<'_> =
            serde_json::from_slice(body).map_err(|e| BatchError::Malformed(e.to_string()))?;
        let events = batch
            .events
            .ok_or_else(|| BatchError::Malformed("missing `events` array".into()))?;
        let sent_at_text = match &batch.sent_at {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(BatchError::Malformed("`sent_at` is not a string".into())),
            None => return Err(BatchError::Malformed("missing `sent_at`".into())),
        };
        let sent_at = parse_timestamp(&sent_at_text).ok_or_else(|| {
            BatchError::Malformed(format!("`sent_at` is not RFC 3339: {sent_at_text:?}"))
        })?;
        if events.len() > self.limits.max_events {
            return Err(BatchError::TooManyEvents {
                count: events.len(),
                limit: self.limits.max_events,
            });
        }
        let write_key = match batch.write_key {
            Some(Value::String(k)) => Some(k),
            _ => None,
        };

        let mut checked = Checked {
            sent_at: sent_at_text,
            write_key,
            ..Checked::default()
        };
        let mut candidates = Vec::with_capacity(events.len());
        for (index, raw) in events.iter().enumerate() {
            match self.parse_event(raw, &received) {
                Ok((event, created_at)) => candidates.push(Candidate {
                    index,
                    event,
                    created_at,
                }),
                Err(dead) => checked.bad.push(BadEvent { index, dead }),
            }
        }
        Ok(Prepared {
            received,
            received_at,
            sent_at,
            checked,
            candidates,
        })
    }

    /// The second half of [`Pipeline::check_batch`], without I/O: each event's `data` and
    /// entities checked against the schemas looked up for `prepared` (by
    /// [`resolve_all`] of its [`Prepared::schema_uris`]).
    pub fn finish(&self, prepared: Prepared, lookups: &HashMap<String, Lookup>) -> Checked {
        let Prepared {
            received,
            received_at,
            sent_at,
            mut checked,
            candidates,
        } = prepared;
        for c in candidates {
            let (schema, data, entities) = parts(&c.event);
            match self.check_data(schema, data, entities, lookups) {
                Ok(()) => {
                    let event_id = c.event["event_id"].as_str().unwrap_or_default().to_owned();
                    let (time, clamped) = event_time(received_at, sent_at, c.created_at);
                    checked.good.push(GoodEvent {
                        index: c.index,
                        event_id,
                        event_time: format_timestamp(time),
                        clamped,
                        event: c.event,
                    });
                }
                Err((code, errors)) => checked.bad.push(BadEvent {
                    index: c.index,
                    dead: DeadLetter::for_event(&received, code, errors, c.event),
                }),
            }
        }
        checked.bad.sort_by_key(|b| b.index);
        checked
    }

    /// The size and depth limits, on an event's text before it is parsed (`too_large`):
    /// `eventwire validate`'s first check of every line. Deeper than the limit is
    /// `too_large` at any depth, before the parser's own limit (128) could call it
    /// malformed. (The collector checks the size on the text and the depth on the parsed
    /// event, with the parser's own limit read as too deep: one pass fewer. The verdicts
    /// differ only for an object naming a key twice — the parsed event keeps the last value,
    /// and that is what is judged and stored — and for text the parser refuses that is also
    /// too deep: `malformed` there, `too_large` here.)
    pub fn text_violation(&self, text: &[u8]) -> Option<ErrorDetail> {
        self.size_violation(text.len())
            .or_else(|| nesting_over(text, self.limits.max_depth).then(|| self.depth_detail()))
    }

    /// An event of `len` bytes over the event size limit.
    fn size_violation(&self, len: usize) -> Option<ErrorDetail> {
        (len > self.limits.max_event_bytes).then(|| {
            ErrorDetail::new(
                "",
                "maxEventBytes",
                format!(
                    "event is {len} bytes, over the limit of {}",
                    self.limits.max_event_bytes
                ),
            )
        })
    }

    fn depth_detail(&self) -> ErrorDetail {
        ErrorDetail::new(
            "",
            "maxDepth",
            format!("nesting deeper than {} levels", self.limits.max_depth),
        )
    }

    /// Parses one event and checks its limits and envelope.
    fn parse_event(
        &self,
        raw: &RawValue,
        received: &str,
    ) -> Result<(Value, DateTime<Utc>), DeadLetter> {
        let text = raw.get();
        let too_large = |detail| {
            DeadLetter::for_raw(received, ErrorCode::TooLarge, vec![detail], text.as_bytes())
        };
        if let Some(detail) = self.size_violation(text.len()) {
            return Err(too_large(detail));
        }
        // Nesting is judged on the parsed event ([`shape_violation`]); deeper than the
        // parser goes (128) is too deep as well, not malformed.
        let event: Value = serde_json::from_str(text).map_err(|e| {
            if is_recursion_limit(&e) {
                return too_large(self.depth_detail());
            }
            DeadLetter::for_raw(
                received,
                ErrorCode::Malformed,
                vec![ErrorDetail::new("", "json", e.to_string())],
                text.as_bytes(),
            )
        })?;
        if let Some(detail) = shape_violation(&event, &self.limits) {
            return Err(DeadLetter::for_raw(
                received,
                ErrorCode::TooLarge,
                vec![detail],
                text.as_bytes(),
            ));
        }
        let errors = collect_errors(self.envelope.validator(), &event, "");
        if !errors.is_empty() {
            return Err(DeadLetter::for_event(
                received,
                ErrorCode::InvalidEnvelope,
                errors,
                event,
            ));
        }
        // The envelope schema checked the format; parse it for the time correction.
        let created_at = event["created_at"]
            .as_str()
            .and_then(parse_timestamp)
            .ok_or_else(|| {
                let detail = ErrorDetail::new("/created_at", "format", "not an RFC 3339 timestamp");
                DeadLetter::for_event(
                    received,
                    ErrorCode::InvalidEnvelope,
                    vec![detail],
                    event.clone(),
                )
            })?;
        Ok((event, created_at))
    }

    /// Checks `data` against `schema` and each entity against its own schema.
    pub fn check_data(
        &self,
        schema: &str,
        data: &Value,
        entities: Option<&Value>,
        lookups: &HashMap<String, Lookup>,
    ) -> Result<(), (ErrorCode, Vec<ErrorDetail>)> {
        let compiled = match resolve_uri(schema, lookups) {
            Ok(c) => c,
            Err(message) => {
                return Err((
                    ErrorCode::UnknownSchema,
                    vec![ErrorDetail::new("/schema", "schema", message)],
                ));
            }
        };
        let errors = collect_errors(compiled.validator(), data, "/data");
        if !errors.is_empty() {
            return Err((ErrorCode::SchemaInvalid, errors));
        }
        let mut errors = Vec::new();
        for (i, entity) in entities
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let uri = entity
                .get("schema")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match resolve_uri(uri, lookups) {
                Ok(c) => {
                    let data = entity.get("data").unwrap_or(&Value::Null);
                    errors.extend(collect_errors(
                        c.validator(),
                        data,
                        &format!("/entities/{i}/data"),
                    ));
                }
                Err(message) => errors.push(ErrorDetail::new(
                    format!("/entities/{i}/schema"),
                    "schema",
                    message,
                )),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            errors.truncate(MAX_ERRORS);
            Err((ErrorCode::EntityInvalid, errors))
        }
    }
}

/// Looks up every schema URI (once each); fails the batch only when the registry itself
/// cannot be asked. URIs that do not parse are left out (events using them are
/// dead-lettered with the parser's reason).
pub async fn resolve_all<'u>(
    registry: &Registry,
    uris: impl IntoIterator<Item = &'u str>,
) -> Result<HashMap<String, Lookup>, BatchError> {
    let mut lookups = HashMap::new();
    for uri in uris {
        if lookups.contains_key(uri) {
            continue;
        }
        let Ok(key) = SchemaKey::parse(uri) else {
            continue;
        };
        let lookup = registry.resolve(&key).await;
        if let Lookup::Unavailable(e) = &lookup {
            return Err(BatchError::RegistryUnavailable(e.clone()));
        }
        lookups.insert(uri.to_owned(), lookup);
    }
    Ok(lookups)
}

/// The schema URIs an event refers to: its own and its entities'.
pub fn schema_uris(event: &Value) -> impl Iterator<Item = &str> + '_ {
    let (schema, _, entities) = parts(event);
    std::iter::once(schema).chain(
        entities
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("schema").and_then(Value::as_str)),
    )
}

fn parts(event: &Value) -> (&str, &Value, Option<&Value>) {
    (
        event
            .get("schema")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        event.get("data").unwrap_or(&Value::Null),
        event.get("entities"),
    )
}

fn resolve_uri<'a>(
    uri: &str,
    lookups: &'a HashMap<String, Lookup>,
) -> Result<&'a crate::registry::CompiledSchema, String> {
    match lookups.get(uri) {
        Some(Lookup::Found(c)) => Ok(c),
        Some(Lookup::Broken(why)) | Some(Lookup::Unavailable(why)) => Err(why.clone()),
        Some(Lookup::Unknown) => Err(format!("schema {uri} is not in the registry")),
        None => match SchemaKey::parse(uri) {
            Err(e) => Err(format!("invalid schema URI {uri:?}: {e}")),
            Ok(key) => Err(format!("schema {key} is not in the registry")),
        },
    }
}

/// Validation errors as dead-letter details, paths prefixed with `prefix`.
pub fn collect_errors(
    validator: &jsonschema::Validator,
    instance: &Value,
    prefix: &str,
) -> Vec<ErrorDetail> {
    // Most events are valid: the check that stops at the first error and builds none first.
    if validator.is_valid(instance) {
        return Vec::new();
    }
    validator
        .iter_errors(instance)
        .take(MAX_ERRORS)
        .map(|e| {
            ErrorDetail::new(
                format!("{prefix}{}", e.instance_path()),
                e.kind().keyword().to_owned(),
                e.to_string(),
            )
        })
        .collect()
}

/// Whether the parser gave up because the text nests deeper than it goes.
fn is_recursion_limit(e: &serde_json::Error) -> bool {
    e.classify() == serde_json::error::Category::Syntax
        && e.to_string().starts_with("recursion limit exceeded")
}

/// The first nesting-depth or string-length violation inside `value`.
pub fn shape_violation(value: &Value, limits: &Limits) -> Option<ErrorDetail> {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::String(s) if s.len() > limits.max_string_bytes => {
                return Some(ErrorDetail::new(
                    "",
                    "maxStringBytes",
                    format!(
                        "a string of {} bytes is over the limit of {}",
                        s.len(),
                        limits.max_string_bytes
                    ),
                ));
            }
            Value::Array(_) | Value::Object(_) if depth > limits.max_depth => {
                return Some(ErrorDetail::new(
                    "",
                    "maxDepth",
                    format!("nesting deeper than {} levels", limits.max_depth),
                ));
            }
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => {
                for (k, item) in map {
                    if k.len() > limits.max_string_bytes {
                        return Some(ErrorDetail::new(
                            "",
                            "maxStringBytes",
                            format!(
                                "a key of {} bytes is over the limit of {}",
                                k.len(),
                                limits.max_string_bytes
                            ),
                        ));
                    }
                    stack.push((item, depth + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether the JSON text nests arrays and objects deeper than `max` (the outermost value is
/// level 1), counting brackets outside strings: the same rule as [`shape_violation`], read
/// from the bytes, so that no depth is too deep to be judged.
pub fn nesting_over(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        let table: &[(&str, usize, bool)] = &[
            ("{}", 1, false),
            ("{}", 0, true),
            (r#"{"a":[1,[2]]}"#, 3, false),
            (r#"{"a":[1,[2]]}"#, 2, true),
            (r#"{"a":"[[[[[["}"#, 1, false),
            (r#"{"a":"\"[[[["}"#, 1, false),
            ("[[[]],[[]]]", 3, false),
            ("[[[]],[[]]]", 2, true),
        ];
        for (json, max, over) in table {
            assert_eq!(nesting_over(json.as_bytes(), *max), *over, "{json} {max}");
        }
    }
}
