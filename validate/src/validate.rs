//! Validation: from the bytes of a request body to good events and dead letters.
//!
//! 1. The body must be a batch: a JSON object with an RFC 3339 `sent_at` and an `events`
//!    array (else the whole request is `malformed`).
//! 2. Each event, on its own: size, nesting depth and string length limits (`too_large`),
//!    the envelope schema `iglu:dev.eventwire/event/jsonschema/1-1-0` (`invalid_envelope`),
//!    its schema in the registry (`unknown_schema`), `data` against it (`schema_invalid`),
//!    each entity against its own (`entity_invalid`).
//!
//! Each event is read into a tape ([`eventwire_schema::draft4::tape`]): strings point into
//! the body, numbers stay the text sent, no `serde_json::Value` tree is built; the envelope,
//! `data` and entities are checked on it, and a valid event's good line is its text as
//! received with the collector's members added. An event the tape path leaves alone — one
//! naming a key twice, spread over lines, or failing any check — is read as a `Value` and
//! judged as before, so dead letters name their errors as they always have (the
//! fidelity suite checks that tape and `Value` validation agree on every instance it
//! derives: 20,471 from Iglu Central, the project's, codegen's golden and 64 generated
//! schemas).
//!
//! Registry lookups are the only I/O: a pass takes the schemas from the registry's caches
//! and, when one is missing, ends naming every schema of the batch ([`Pass::Missing`]);
//! they are looked up (once per distinct schema) and the batch is checked again with them. The `Value` checks serve
//! `eventwire validate`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use eventwire_schema::iglu::SchemaKey;
use eventwire_schema::pii::{is_sealed, MARK};
use eventwire_schema::protocol::ErrorCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use eventwire_schema::draft4::tape::{Item, Tape, TapeNode};

use crate::record::{DeadLetter, ErrorDetail, GoodRecord, MAX_ERRORS};
use crate::registry::{Lookup, Registry};
use crate::time::{event_time, format_timestamp, parse_timestamp};

pub use crate::defaults::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DEPTH, DEFAULT_MAX_EVENTS, DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_STRING_BYTES,
};

/// The envelope schema, as checked in (derived from the tracker's Rust types).
pub const ENVELOPE_SCHEMA: &str = include_str!("../envelope/1-1-0");

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

/// A valid event, ready for the good sink: its line, and what the counters need of it.
#[derive(Debug, Clone, PartialEq)]
pub struct GoodEvent {
    /// Position in the batch.
    pub index: usize,
    /// The event id.
    pub event_id: String,
    /// The event's schema URI.
    pub schema: String,
    /// `context.labels.service`, when a string.
    pub service: Option<String>,
    /// `context.labels.version`, when a string.
    pub version: Option<String>,
    /// `context.user_id`, else `context.anonymous_id`, when a string.
    pub user: Option<String>,
    /// The good line: a [`crate::record::GoodRecord`], one JSON object without a newline.
    pub line: Vec<u8>,
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

/// One pass of [`Pipeline::check_with`]: the batch checked, or the schemas it names that
/// neither the registry's caches nor the lookups given had.
#[derive(Debug)]
pub enum Pass {
    /// Every event judged.
    Checked(Checked),
    /// A schema was in neither: look these up, every schema the batch names
    /// ([`resolve_all`]), and pass again with them.
    Missing(Vec<String>),
}

/// An event read, its envelope checked, waiting for the schemas it names.
enum Candidate<'b> {
    /// Read as a tape (the common case: validated without a `Value` tree).
    Tape {
        index: usize,
        raw: &'b RawValue,
        tape: Tape<'b>,
        fields: Fields,
        created_at: DateTime<Utc>,
    },
    /// Read as a `Value` (an event the tape path leaves to it: one naming a key twice,
    /// spread over lines, or failing a check, whose errors `Value` validation names).
    Value {
        index: usize,
        event: Value,
        created_at: DateTime<Utc>,
    },
}

/// Where an event's envelope fields are in its tape, found in one pass over its members.
#[derive(Debug, Default, Clone, Copy)]
struct Fields {
    event_id: Option<usize>,
    schema: Option<usize>,
    created_at: Option<usize>,
    data: Option<usize>,
    entities: Option<usize>,
    context: Option<usize>,
}

impl Fields {
    fn of(root: TapeNode<'_>) -> Fields {
        let mut f = Fields::default();
        for (name, value) in root.members() {
            let slot = match name {
                "event_id" => &mut f.event_id,
                "schema" => &mut f.schema,
                "created_at" => &mut f.created_at,
                "data" => &mut f.data,
                "entities" => &mut f.entities,
                "context" => &mut f.context,
                _ => continue,
            };
            *slot = Some(value.index());
        }
        f
    }
}

/// The node at `at` of `tape`, if there is one.
fn node<'t>(tape: &'t Tape<'_>, at: Option<usize>) -> Option<TapeNode<'t>> {
    at.map(|at| tape.node(at))
}

/// The string at `at` of `tape`, if there is one.
fn str_at<'t>(tape: &'t Tape<'_>, at: Option<usize>) -> Option<&'t str> {
    node(tape, at).and_then(|n| n.str())
}

/// The batch as a whole, before its events.
struct Batch<'b> {
    sent_at_text: String,
    sent_at: DateTime<Utc>,
    write_key: Option<String>,
    events: Vec<&'b RawValue>,
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
    /// [`Pipeline::check_with`], then again with the schemas it missed looked up.
    pub async fn check_batch(
        &self,
        body: &[u8],
        received_at: DateTime<Utc>,
        registry: &Registry,
    ) -> Result<Checked, BatchError> {
        let mut resolved = HashMap::new();
        loop {
            match self.check_with(body, received_at, registry, &resolved)? {
                Pass::Checked(checked) => return Ok(checked),
                Pass::Missing(uris) if resolved.is_empty() => {
                    resolved = resolve_all(registry, uris.iter().map(String::as_str)).await?;
                }
                // Everything missed was looked up: not reached.
                Pass::Missing(uris) => {
                    return Err(BatchError::RegistryUnavailable(format!(
                        "schemas not resolved: {uris:?}"
                    )))
                }
            }
        }
    }

    /// One pass over a decompressed body, without I/O: the schemas its events name come
    /// from `resolved`, else from the registry's caches; when one is in neither, the pass
    /// ends with [`Pass::Missing`] (look them up, pass again with them).
    pub fn check_with(
        &self,
        body: &[u8],
        received_at: DateTime<Utc>,
        registry: &Registry,
        resolved: &HashMap<String, Lookup>,
    ) -> Result<Pass, BatchError> {
        let received = format_timestamp(received_at);
        let batch = self.batch(body)?;
        let mut checked = Checked {
            sent_at: batch.sent_at_text.clone(),
            write_key: batch.write_key.clone(),
            ..Checked::default()
        };
        let mut candidates = Vec::with_capacity(batch.events.len());
        let mut scratch = Vec::new();
        for (index, raw) in batch.events.iter().enumerate() {
            match self.read_event(index, raw, &received, &mut scratch) {
                Ok(c) => candidates.push(c),
                Err(dead) => checked.bad.push(BadEvent { index, dead }),
            }
        }

        // Each distinct schema of the batch is looked up once. When one is in neither the
        // lookups given nor the caches, all are asked for, so that the next pass needs
        // nothing from the caches (which may have changed meanwhile).
        let mut uris: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in &candidates {
            uris.extend(candidate_uris(c).into_iter().filter(|u| seen.insert(*u)));
        }
        // Events refused for their envelope keep their data in the dead letter: their
        // schemas say which values to remove first (personal data in clear).
        for b in &checked.bad {
            if let Some(event) = &b.dead.event {
                uris.extend(schema_uris(event).filter(|u| seen.insert(*u)));
            }
        }
        let mut lookups: HashMap<String, Lookup> = HashMap::with_capacity(uris.len());
        let mut complete = true;
        for uri in &uris {
            let Ok(key) = SchemaKey::parse(uri) else {
                continue; // dead-lettered with the parser's reason
            };
            match resolved
                .get(*uri)
                .cloned()
                .or_else(|| registry.cached(&key))
            {
                Some(Lookup::Unavailable(e)) => return Err(BatchError::RegistryUnavailable(e)),
                Some(lookup) => {
                    lookups.insert((*uri).to_owned(), lookup);
                }
                None => complete = false,
            }
        }
        if !complete {
            return Ok(Pass::Missing(uris.into_iter().map(str::to_owned).collect()));
        }

        for b in &mut checked.bad {
            redact_unsealed(&mut b.dead, &lookups);
        }
        for c in candidates {
            match self.judge(c, &lookups, &batch, received_at, &received) {
                Ok(good) => checked.good.push(good),
                Err(bad) => checked.bad.push(bad),
            }
        }
        checked.bad.sort_by_key(|b| b.index);
        Ok(Pass::Checked(checked))
    }

    /// The batch's own fields and its events' texts.
    fn batch<'b>(&self, body: &'b [u8]) -> Result<Batch<'b>, BatchError> {
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
        Ok(Batch {
            sent_at_text,
            sent_at,
            write_key,
            events,
        })
    }

    /// Reads one event and checks its limits and envelope: as a tape when it passes them
    /// that way, else as a `Value` (whose checks name the errors).
    fn read_event<'b>(
        &self,
        index: usize,
        raw: &'b RawValue,
        received: &str,
        scratch: &mut Vec<u32>,
    ) -> Result<Candidate<'b>, DeadLetter> {
        let text = raw.get();
        if self.size_violation(text.len()).is_none() && !text.contains(['\n', '\r']) {
            if let Ok(tape) = Tape::parse(text) {
                let fields = Fields::of(tape.root());
                let created_at = str_at(&tape, fields.created_at).and_then(parse_timestamp);
                if let Some(created_at) = created_at {
                    if tape_shape_ok(&tape, &self.limits, scratch)
                        && self.envelope.tape_validator().is_valid(tape.root())
                    {
                        return Ok(Candidate::Tape {
                            index,
                            raw,
                            tape,
                            fields,
                            created_at,
                        });
                    }
                }
            }
        }
        let (event, created_at) = self.parse_event(raw, received)?;
        Ok(Candidate::Value {
            index,
            event,
            created_at,
        })
    }

    /// Judges a read event against its schemas: a good event with its line, or a dead
    /// letter. A tape that fails is judged again as a `Value`, so that its dead letter names
    /// the errors as it always has.
    fn judge(
        &self,
        candidate: Candidate<'_>,
        lookups: &HashMap<String, Lookup>,
        batch: &Batch<'_>,
        received_at: DateTime<Utc>,
        received: &str,
    ) -> Result<GoodEvent, BadEvent> {
        let (index, event, created_at) = match candidate {
            Candidate::Tape {
                index,
                raw,
                tape,
                fields,
                created_at,
            } => {
                if self.tape_valid(&tape, fields, lookups) {
                    let (time, clamped) = event_time(received_at, batch.sent_at, created_at);
                    let at = (time, clamped);
                    let good = tape_good(index, raw.get(), &tape, fields, batch, received, at);
                    if let Some(good) = good {
                        return Ok(good);
                    }
                }
                // Judged again from the start as a `Value`: its limits, its envelope, then
                // its schemas, as every event was before tapes.
                match self.parse_event(raw, received) {
                    Ok((event, created_at)) => (index, event, created_at),
                    Err(mut dead) => {
                        // An envelope error: its marked values in clear are not kept either.
                        redact_unsealed(&mut dead, lookups);
                        return Err(BadEvent { index, dead });
                    }
                }
            }
            Candidate::Value {
                index,
                event,
                created_at,
            } => (index, event, created_at),
        };
        let (schema, data, entities) = parts(&event);
        match self.check_data(schema, data, entities, lookups) {
            Ok(()) => {
                let (time, clamped) = event_time(received_at, batch.sent_at, created_at);
                Ok(value_good(index, &event, batch, received, time, clamped))
            }
            Err((code, mut errors)) => {
                // Every unsealed value goes, not only those the (truncated) errors name,
                // whatever refused the event (an unknown event schema with a marked entity).
                let places = unsealed_places(schema, data, entities, lookups);
                let mut event = event;
                let removed = redact(&mut event, &places);
                if code != ErrorCode::PiiUnsealed {
                    withhold(&mut errors, &removed);
                }
                Err(BadEvent {
                    index,
                    dead: DeadLetter::for_event(received, code, errors, event),
                })
            }
        }
    }

    /// Whether `data` and every entity of the event are valid against their schemas.
    fn tape_valid(
        &self,
        tape: &Tape<'_>,
        fields: Fields,
        lookups: &HashMap<String, Lookup>,
    ) -> bool {
        let valid = |schema: Option<TapeNode<'_>>, data: Option<TapeNode<'_>>| {
            let uri = schema.and_then(|s| s.str()).unwrap_or_default();
            match (resolve_uri(uri, lookups), data) {
                // A schema with personal-data marks is judged on the `Value`, which finds
                // every marked place as the trackers do (`unsealed_places`).
                (Ok(c), Some(data)) => c.marks().is_empty() && c.tape_validator().is_valid(data),
                _ => false,
            }
        };
        valid(node(tape, fields.schema), node(tape, fields.data))
            && node(tape, fields.entities).is_none_or(|es| {
                es.elements()
                    .all(|e| valid(e.member("schema"), e.member("data")))
            })
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

    /// Checks `data` against `schema` and each entity against its own schema. Marked
    /// personal data that arrived unsealed is found first (`pii_unsealed`, naming each
    /// place, never its value): no other check quotes it.
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
        let unsealed = unsealed_places(schema, data, entities, lookups);
        if !unsealed.is_empty() {
            let mut errors: Vec<ErrorDetail> = unsealed
                .into_iter()
                .map(|at| ErrorDetail::new(at, MARK, UNSEALED_MESSAGE))
                .collect();
            errors.truncate(MAX_ERRORS);
            return Err((ErrorCode::PiiUnsealed, errors));
        }
        let errors = collect_errors(compiled.validator(), data, "/data");
        if !errors.is_empty() {
            return Err((ErrorCode::SchemaInvalid, errors));
        }
        let mut errors = Vec::new();
        for (i, uri, data) in entity_parts(entities) {
            match resolve_uri(uri, lookups) {
                Ok(c) => {
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

/// Each entity of an event's `entities` (when it is an array) with its index, schema URI
/// (empty when missing) and `data` (null when missing).
fn entity_parts(entities: Option<&Value>) -> impl Iterator<Item = (usize, &str, &Value)> {
    entities
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, e)| {
            let uri = e.get("schema").and_then(Value::as_str).unwrap_or_default();
            (i, uri, e.get("data").unwrap_or(&Value::Null))
        })
}

/// What a `pii_unsealed` error says of each place.
const UNSEALED_MESSAGE: &str = "personal data (x-pii) arrived unsealed; the value is not stored: configure the tracker's pii_public_key";
/// What replaces an unsealed marked value in a dead letter.
pub const REDACTED: &str = "[redacted: pii_unsealed]";

/// The places (JSON pointers into the event) of marked values that are not sealed values,
/// in `data` (of `schema`) and in each entity's data (of the entity's schema), for the
/// schemas found.
fn unsealed_places(
    schema: &str,
    data: &Value,
    entities: Option<&Value>,
    lookups: &HashMap<String, Lookup>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |uri: &str, data: &Value, prefix: &str| {
        // Unusable schemas too: their marks still say what must not be kept.
        if let Some(Lookup::Found(compiled)) = lookups.get(uri) {
            for (at, value) in compiled.marks().values(data) {
                if !value.as_str().is_some_and(is_sealed) {
                    out.push(format!("{prefix}{at}"));
                }
            }
        }
    };
    check(schema, data, "/data");
    for (i, uri, data) in entity_parts(entities) {
        check(uri, data, &format!("/entities/{i}/data"));
    }
    out
}

/// Removes the marked values in clear from a dead letter's event (refused for its
/// envelope, whose schemas may still be known), and the messages that could quote them.
fn redact_unsealed(dead: &mut DeadLetter, lookups: &HashMap<String, Lookup>) {
    if let Some(event) = &mut dead.event {
        let (schema, data, entities) = parts(event);
        let places = unsealed_places(schema, data, entities, lookups);
        let removed = redact(event, &places);
        withhold(&mut dead.errors, &removed);
    }
}

/// Removes from a dead letter's `event` the value at each of `places` (each becomes
/// [`REDACTED`]); returns how each removed value could be quoted: its JSON text and, for a
/// string, the text inside the quotes. A place the pointer does not reach (it cannot
/// happen: both read pointers as RFC 6901 does) leaves only the event's id and schema:
/// nothing in clear is kept.
fn redact(event: &mut Value, places: &[String]) -> Vec<String> {
    let mut removed = Vec::new();
    for at in places {
        match event.pointer_mut(at) {
            Some(value) => {
                let text = value.to_string();
                if value.is_string() && text.len() > 2 {
                    removed.push(text[1..text.len() - 1].to_owned());
                }
                removed.push(text);
                *value = Value::String(REDACTED.to_owned());
            }
            None => {
                let keep = |k: &str| event.get(k).cloned().unwrap_or(Value::Null);
                *event =
                    serde_json::json!({"event_id": keep("event_id"), "schema": keep("schema")});
                removed.push(String::new()); // every message goes
                return removed;
            }
        }
    }
    removed
}

/// Replaces the message of each error that quotes one of the `removed` values (a
/// validator's message can quote the instance; path and keyword stay).
fn withhold(errors: &mut [ErrorDetail], removed: &[String]) {
    for e in errors {
        if removed.iter().any(|r| e.message.contains(r.as_str())) {
            e.message = WITHHELD.to_owned();
        }
    }
}

/// What an error's message becomes when it could quote personal data in clear.
const WITHHELD: &str = "message withheld: it quoted personal data (x-pii) that arrived in clear";

/// The schema URIs a read event names.
fn candidate_uris<'c>(c: &'c Candidate<'_>) -> Vec<&'c str> {
    match c {
        Candidate::Value { event, .. } => schema_uris(event).collect(),
        Candidate::Tape { tape, fields, .. } => {
            let entities = node(tape, fields.entities);
            std::iter::once(node(tape, fields.schema))
                .chain(
                    entities
                        .into_iter()
                        .flat_map(|es| es.elements().map(|e| e.member("schema"))),
                )
                .filter_map(|s| s.and_then(|s| s.str()))
                .collect()
        }
    }
}

/// The nesting-depth and string-length limits on a tape (as [`shape_violation`] on a
/// `Value`; a tape over them is judged as a `Value`, which names the violation).
fn tape_shape_ok(tape: &Tape<'_>, limits: &Limits, open: &mut Vec<u32>) -> bool {
    open.clear();
    for (i, item) in tape.items().iter().enumerate() {
        while open.last().is_some_and(|&end| i as u64 >= u64::from(end)) {
            open.pop();
        }
        match item {
            Item::String(s) if s.len() > limits.max_string_bytes => return false,
            Item::Array { end, .. } | Item::Object { end, .. } => {
                if open.len() + 1 > limits.max_depth {
                    return false;
                }
                open.push(*end);
            }
            _ => {}
        }
    }
    true
}

/// A valid tape's good event. Its line is the event's text as received, with the
/// collector's members added before its closing brace: every member of a good record,
/// numbers and strings exactly as sent (`None` if the text is not an object's, which a
/// valid envelope rules out).
fn tape_good(
    index: usize,
    text: &str,
    tape: &Tape<'_>,
    fields: Fields,
    batch: &Batch<'_>,
    received: &str,
    at: (DateTime<Utc>, Option<crate::time::Clamped>),
) -> Option<GoodEvent> {
    let event_id = str_at(tape, fields.event_id)?;
    let schema = str_at(tape, fields.schema)?;
    let (mut labels, mut user_id, mut anonymous_id) = (None, None, None);
    for (name, value) in node(tape, fields.context)
        .into_iter()
        .flat_map(|c| c.members())
    {
        match name {
            "labels" => labels = Some(value),
            "user_id" => user_id = value.str(),
            "anonymous_id" => anonymous_id = value.str(),
            _ => {}
        }
    }
    let label = |name: &str| {
        labels
            .and_then(|l| l.member(name))
            .and_then(|v| v.str())
            .map(str::to_owned)
    };
    Some(GoodEvent {
        index,
        event_id: event_id.to_owned(),
        schema: schema.to_owned(),
        service: label("service"),
        version: label("version"),
        user: user_id.or(anonymous_id).map(str::to_owned),
        line: good_line_from_text(text, &batch.sent_at_text, received, at)?,
    })
}

/// `text` (an envelope's JSON object, valid, on one line) with `sent_at`, `received_at`,
/// `event_time` and, when clamped, `event_time_clamped` added as its last members.
fn good_line_from_text(
    text: &str,
    sent_at: &str,
    received: &str,
    at: (DateTime<Utc>, Option<crate::time::Clamped>),
) -> Option<Vec<u8>> {
    let open = text.strip_suffix('}')?;
    let mut line = Vec::with_capacity(text.len() + 160);
    line.extend_from_slice(open.as_bytes());
    let mut member = |name: &str, value: &str| {
        line.extend_from_slice(b",\"");
        line.extend_from_slice(name.as_bytes());
        line.extend_from_slice(b"\":");
        serde_json::to_writer(&mut line, value).ok()
    };
    member("sent_at", sent_at)?;
    member("received_at", received)?;
    member("event_time", &format_timestamp(at.0))?;
    if let Some(clamped) = at.1 {
        member("event_time_clamped", clamped.as_str())?;
    }
    line.push(b'}');
    Some(line)
}

/// A valid `Value` event's good event (the event re-serialised in its line).
fn value_good(
    index: usize,
    event: &Value,
    batch: &Batch<'_>,
    received: &str,
    time: DateTime<Utc>,
    clamped: Option<crate::time::Clamped>,
) -> GoodEvent {
    let str_at = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    let owned = |s: Option<&str>| s.map(str::to_owned);
    let record = GoodRecord {
        event_id: str_at("/event_id").unwrap_or_default(),
        schema: str_at("/schema").unwrap_or_default(),
        data: event.get("data").unwrap_or(&Value::Null),
        entities: event.get("entities"),
        context: event.get("context").unwrap_or(&Value::Null),
        created_at: str_at("/created_at").unwrap_or_default(),
        sent_at: &batch.sent_at_text,
        received_at: received,
        event_time: format_timestamp(time),
        event_time_clamped: clamped.map(crate::time::Clamped::as_str),
    };
    GoodEvent {
        index,
        event_id: str_at("/event_id").unwrap_or_default().to_owned(),
        schema: str_at("/schema").unwrap_or_default().to_owned(),
        service: owned(str_at("/context/labels/service")),
        version: owned(str_at("/context/labels/version")),
        user: owned(str_at("/context/user_id").or_else(|| str_at("/context/anonymous_id"))),
        line: serde_json::to_vec(&record).unwrap_or_default(),
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
        Some(Lookup::Found(c)) => match c.unusable() {
            None => Ok(c),
            Some(why) => Err(why.to_owned()),
        },
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

    fn pipeline_and_registry() -> (Pipeline, Registry) {
        let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        (
            Pipeline::new(Limits::default()).unwrap(),
            Registry::new(crate::registry::Source::Dir(schemas)).unwrap(),
        )
    }

    const SENT_AT: &str = "2026-11-30T10:00:00.010Z";

    fn body(events: &[&str]) -> Vec<u8> {
        format!(
            r#"{{"sent_at":"{SENT_AT}","events":[{}]}}"#,
            events.join(",")
        )
        .into_bytes()
    }

    /// Events the tape path takes (and some it leaves to `Value`: spread over lines, a key
    /// named twice), with spaces, escapes, exact numbers, entities or none.
    const EVENTS: &[&str] = &[
        r#"{"event_id":"018f4e2a-0000-7000-8000-000000000001","schema":"iglu:com.example.media/play/jsonschema/1-0-0","data":{"media_id":"b0074dlv","position_s":86399.000000000000000000001},"created_at":"2026-11-30T10:00:00.001Z","context":{"labels":{"environment":"t","service":"web","version":"v1"},"library":{"name":"t","version":"0"},"anonymous_id":"a-1"}}"#,
        r#"{ "event_id" : "018f4e2a-0000-7000-8000-000000000002", "schema":"iglu:com.example.media/play/jsonschema/1-0-0", "data":{"media_id":"b0074dlv","position_s":-0}, "entities":[{"schema":"iglu:com.example.media/player/jsonschema/1-0-0","data":{"kind":"video","player_name":"html5","player_version":"4.2.1","volume":80,"quality":"hd"}}], "created_at":"2026-11-30T10:00:00.001Z", "context":{"labels":{"environment":"t","service":"w\u0065b","version":"v1"},"library":{"name":"caf\u00e9 \"x\" \/ é","version":"0"},"user_id":"u-1","anonymous_id":"a-1"} }"#,
        "{\n\"event_id\":\"018f4e2a-0000-7000-8000-000000000003\",\"schema\":\"iglu:com.example.media/play/jsonschema/1-0-0\",\"data\":{\"media_id\":\"b0074dlv\",\"position_s\":1},\"created_at\":\"2026-11-30T10:00:00.001Z\",\"context\":{\"labels\":{\"environment\":\"t\",\"service\":\"web\",\"version\":\"v1\"},\"library\":{\"name\":\"t\",\"version\":\"0\"},\"anonymous_id\":\"a-1\"}\n}",
        r#"{"event_id":"018f4e2a-0000-7000-8000-000000000004","schema":"iglu:com.example.media/play/jsonschema/1-0-0","data":{"media_id":7,"media_id":"b0074dlv","position_s":1},"created_at":"2026-11-30T10:00:00.001Z","context":{"labels":{"environment":"t","service":"web","version":"v1"},"library":{"name":"t","version":"0"},"anonymous_id":"a-1"}}"#,
    ];

    /// Every good line is one line, and means what the event sent means plus the
    /// collector's members, whichever path judged it; what the counters need agrees.
    #[tokio::test]
    async fn good_lines_carry_the_event_as_sent_whichever_path_judged_it() {
        let (pipeline, registry) = pipeline_and_registry();
        let received_at = parse_timestamp("2026-11-30T10:00:00.020Z").unwrap();
        let checked = pipeline
            .check_batch(&body(EVENTS), received_at, &registry)
            .await
            .unwrap();
        assert!(checked.bad.is_empty(), "{:?}", checked.bad);
        assert_eq!(checked.good.len(), EVENTS.len());
        for (good, text) in checked.good.iter().zip(EVENTS) {
            assert!(
                !good.line.contains(&b'\n'),
                "{}",
                String::from_utf8_lossy(&good.line)
            );
            let line: Value = serde_json::from_slice(&good.line).unwrap();
            let mut expected: Value = serde_json::from_str(text).unwrap();
            expected["sent_at"] = SENT_AT.into();
            expected["received_at"] = "2026-11-30T10:00:00.020Z".into();
            expected["event_time"] = "2026-11-30T10:00:00.011Z".into();
            assert_eq!(line, expected);
            assert_eq!(good.event_id, expected["event_id"].as_str().unwrap());
            assert_eq!(good.schema, expected["schema"].as_str().unwrap());
            assert_eq!(good.service.as_deref(), Some("web"));
            assert_eq!(good.version.as_deref(), Some("v1"));
            let user = expected["context"]["user_id"]
                .as_str()
                .or(expected["context"]["anonymous_id"].as_str());
            assert_eq!(good.user.as_deref(), user);
        }
        // Numbers as sent, digit for digit.
        let first = String::from_utf8(checked.good[0].line.clone()).unwrap();
        assert!(first.contains("86399.000000000000000000001"), "{first}");
        // The tape path copies the text as sent, spaces and escapes included…
        let second = String::from_utf8(checked.good[1].line.clone()).unwrap();
        assert!(second.starts_with(r#"{ "event_id" : "#), "{second}");
        assert!(second.contains(r#""w\u0065b""#), "{second}");
        // …and a key named twice is left to `Value`, which keeps one.
        let fourth = String::from_utf8(checked.good[3].line.clone()).unwrap();
        assert!(!fourth.contains(r#""media_id":7"#), "{fourth}");
    }

    /// The whole judgement of one event by the `Value` path alone (as before tapes): its
    /// code and errors, or the event it stores.
    async fn reference(
        pipeline: &Pipeline,
        registry: &Registry,
        text: &str,
    ) -> Result<Value, (ErrorCode, Vec<ErrorDetail>)> {
        let raw = RawValue::from_string(text.to_owned()).unwrap();
        let received = "2026-11-30T10:00:00.020Z";
        let (event, _) = pipeline
            .parse_event(&raw, received)
            .map_err(|d| (d.code, d.errors))?;
        let lookups = resolve_all(registry, schema_uris(&event)).await.unwrap();
        let (schema, data, entities) = parts(&event);
        pipeline.check_data(schema, data, entities, &lookups)?;
        Ok(event)
    }

    fn event_with(data: &str, context_extra: &str, entities: &str) -> String {
        format!(
            r#"{{"event_id":"018f4e2a-0000-7000-8000-0000000000aa","schema":"iglu:com.example.media/play/jsonschema/1-0-0","data":{data},{entities}"created_at":"2026-11-30T10:00:00.001Z","context":{{"labels":{{"environment":"t","service":"web","version":"v1"}},"library":{{"name":"t","version":"0"}},"anonymous_id":"a-1"{context_extra}}}}}"#
        )
    }

    /// Hostile events — serde_json's private keys written in the text, numbers past `f64`,
    /// escaped and repeated keys, limits reached inside `data` — are judged by the tape
    /// pipeline exactly as by the `Value` path alone: the same code and errors, or a good
    /// line meaning the same event.
    #[tokio::test]
    async fn hostile_events_get_the_verdict_of_the_value_path() {
        let (pipeline, registry) = pipeline_and_registry();
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let long = "x".repeat(70 * 1024);
        let huge = format!("2{}.5", "0".repeat(400));
        let player = r#"{\"kind\":\"video\",\"player_name\":\"html5\",\"player_version\":\"4.2.1\",\"volume\":80,\"quality\":\"hd\"}"#;
        let cases: Vec<String> = vec![
            event_with(
                r#"{"media_id":"b0074dlv","position_s":{"$serde_json::private::Number":".5"}}"#,
                "",
                "",
            ),
            event_with(
                r#"{"media_id":"b0074dlv","position_s":{"$serde_json::private::Number":"5"}}"#,
                "",
                "",
            ),
            event_with(
                r#"{"media_id":"b0074dlv","position_s":{"$serde_json::private::Number":"abc"}}"#,
                "",
                "",
            ),
            event_with(
                r#"{"media_id":"b0074dlv","position_s":5}"#,
                r#","labels2":{"$serde_json::private::RawValue":"5"}"#,
                "",
            ),
            event_with(
                r#"{"media_id":"b0074dlv","position_s":{"\u0024serde_json::private::Number":"5"}}"#,
                "",
                "",
            ),
            event_with(
                r#"{"media_id":"b0074dlv","position_s":1}"#,
                "",
                &format!(
                    r#""entities":[{{"schema":"iglu:com.example.media/player/jsonschema/1-0-0","data":{{"$serde_json::private::RawValue":"{player}"}}}}],"#
                ),
            ),
            event_with(
                r#"{"media_id":"\u0062\u0030\u0030\u0037\u0034\u0064\u006c\u0076","position_s":1}"#,
                "",
                "",
            ),
            event_with(r#"{"media_id":"b0074dlv","position_s":1e400}"#, "", ""),
            event_with(
                &format!(r#"{{"media_id":"b0074dlv","position_s":{huge}}}"#),
                "",
                "",
            ),
            event_with(
                r#"{"media_id":"b0074dlv","position_s":86400.0000000000000000000001}"#,
                "",
                "",
            ),
            event_with(
                &format!(r#"{{"media_id":"b0074dlv","position_s":1,"x":{deep}}}"#),
                "",
                "",
            ),
            event_with(
                &format!(r#"{{"media_id":"b0074dlv","position_s":1,"x":"{long}"}}"#),
                "",
                "",
            ),
            event_with(
                r#"{"media_id":"bad","media_id":"b0074dlv","position_s":1}"#,
                "",
                "",
            ),
            event_with(
                r#"{"media_id":"b0074dlv","\u006dedia_id":"bad","position_s":1}"#,
                "",
                "",
            ),
            event_with(
                r#"{"media_id":"b0074dlv","position_s":-0,"playback_rate":1.0}"#,
                "",
                "",
            ),
            event_with("{\"media_id\":\"b0074dlv\",\r\n\"position_s\":1}", "", ""),
            event_with(
                r#"{"media_id":"b0074dlv","position_s":1}"#,
                r#","user_id":{"$serde_json::private::Number":"7"}"#,
                "",
            ),
        ];
        let received_at = parse_timestamp("2026-11-30T10:00:00.020Z").unwrap();
        for text in &cases {
            let expected = reference(&pipeline, &registry, text).await;
            let checked = pipeline
                .check_batch(&body(&[text]), received_at, &registry)
                .await
                .unwrap();
            let shown = &text[..text.len().min(300)];
            match expected {
                Ok(event) => {
                    assert!(checked.bad.is_empty(), "{shown}: {:?}", checked.bad);
                    let mut line: Value = serde_json::from_slice(&checked.good[0].line).unwrap();
                    for member in ["sent_at", "received_at", "event_time", "event_time_clamped"] {
                        line.as_object_mut().unwrap().remove(member);
                    }
                    assert_eq!(line, event, "{shown}");
                }
                Err((code, errors)) => {
                    assert!(
                        checked.good.is_empty(),
                        "{shown}: accepted, {code:?} expected"
                    );
                    let dead = &checked.bad[0].dead;
                    assert_eq!((dead.code, &dead.errors), (code, &errors), "{shown}");
                }
            }
        }
    }

    /// A tape that fails a check is judged again as a `Value`: the dead letter names the
    /// errors exactly as the `Value` path always has.
    /// A sealed value as a tracker writes it (the collector holds no key: only its shape).
    fn sealed(n: usize) -> String {
        format!(
            "ew1.{}.{}.{}",
            "k".repeat(11),
            "e".repeat(87),
            "c".repeat(23 + n)
        )
    }

    fn customer_event(id: u32, data: &str, entities: &str, envelope_extra: &str) -> String {
        format!(
            r#"{{"event_id":"018f4e2a-0000-7000-8000-{id:012}","schema":"iglu:com.example.shop/customer/jsonschema/1-0-0","data":{data},"created_at":"2026-11-30T10:00:00.001Z"{entities},"context":{{"labels":{{"environment":"t","service":"web","version":"v1"}},"library":{{"name":"t","version":"0"}},"anonymous_id":"a-1"}}{envelope_extra}}}"#
        )
    }

    /// Marked fields: sealed values pass whatever the original keyword (a 254-character
    /// limit on the email, shorter than any sealed value of a long one); one in clear is
    /// `pii_unsealed`, found before any other error, and no dead letter keeps it — in data,
    /// in entities, past the 20 errors a dead letter names, or refused for its envelope.
    #[tokio::test]
    async fn marked_fields_must_arrive_sealed_and_dead_letters_never_keep_them_in_clear() {
        let (pipeline, registry) = pipeline_and_registry();
        let good = customer_event(
            1,
            &format!(
                r#"{{"customer_id":"C-1234","email":"{}","name":"{}"}}"#,
                sealed(300),
                sealed(0)
            ),
            "",
            "",
        );
        let clear = customer_event(
            2,
            r#"{"customer_id":"C-1234","email":"MARK-email@example.com","tier":"bogus"}"#,
            "",
            "",
        );
        // 30 entities with a name in clear: more places than the errors listed.
        let many: Vec<String> = (0..30)
            .map(|i| format!(r#"{{"schema":"iglu:com.example.shop/customer/jsonschema/1-0-0","data":{{"customer_id":"C-1234","name":"MARK-name-{i}"}}}}"#))
            .collect();
        let in_entities = customer_event(
            3,
            &format!(r#"{{"customer_id":"C-1234","email":"{}"}}"#, sealed(1)),
            &format!(r#","entities":[{}]"#, many.join(",")),
            "",
        );
        let bad_envelope = customer_event(
            4,
            r#"{"customer_id":"C-1234","email":"MARK-envelope@example.com"}"#,
            "",
            r#","unexpected":1"#,
        );
        let not_a_string = customer_event(
            5,
            r#"{"customer_id":"C-1234","name":{"MARK-object":1}}"#,
            "",
            "",
        );
        // The event's own schema unknown: its known entity's marked values still go.
        let unknown_main = customer_event(6, "{}", &format!(r#","entities":[{}]"#, many[0]), "")
            .replace(
                "shop/customer/jsonschema/1-0-0\",\"data\":{}",
                "shop/nosuch/jsonschema/1-0-0\",\"data\":{}",
            );
        assert!(unknown_main.contains("nosuch"));
        // Over 100 entities: the envelope's error message would quote them all.
        let over_100: Vec<String> = (0..101).map(|i| many[i % 30].clone()).collect();
        let quoted = customer_event(
            7,
            r#"{"customer_id":"C-1234"}"#,
            &format!(r#","entities":[{}]"#, over_100.join(",")),
            "",
        );
        let received_at = parse_timestamp("2026-11-30T10:00:00.020Z").unwrap();
        let checked = pipeline
            .check_batch(
                &body(&[
                    &good,
                    &clear,
                    &in_entities,
                    &bad_envelope,
                    &not_a_string,
                    &unknown_main,
                    &quoted,
                ]),
                received_at,
                &registry,
            )
            .await
            .unwrap();
        assert_eq!(checked.good.len(), 1, "{:?}", checked.bad);
        let bad: Vec<_> = checked.bad.iter().map(|b| (b.index, b.dead.code)).collect();
        assert_eq!(
            bad,
            [
                (1, ErrorCode::PiiUnsealed),
                (2, ErrorCode::PiiUnsealed),
                (3, ErrorCode::InvalidEnvelope),
                (4, ErrorCode::PiiUnsealed),
                (5, ErrorCode::UnknownSchema),
                (6, ErrorCode::InvalidEnvelope)
            ]
        );
        let paths: Vec<&str> = checked.bad[0]
            .dead
            .errors
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(
            paths,
            ["/data/email"],
            "only the unsealed value, before the bad tier"
        );
        assert_eq!(checked.bad[1].dead.errors.len(), MAX_ERRORS);
        for b in &checked.bad {
            let text = serde_json::to_string(&b.dead).unwrap();
            assert!(
                !text.contains("MARK-"),
                "plaintext in a dead letter: {text}"
            );
        }
        // Messages that quote nothing in clear stay; the one that quoted the entities goes.
        assert!(
            checked.bad[4].dead.errors[0]
                .message
                .contains("not in the registry"),
            "{:?}",
            checked.bad[4].dead.errors
        );
        assert_eq!(checked.bad[5].dead.errors[0].message, WITHHELD);
        let kept = checked.bad[1].dead.event.as_ref().unwrap();
        assert_eq!(kept["entities"][29]["data"]["name"], REDACTED);
        assert_eq!(
            kept["entities"][29]["data"]["customer_id"], "C-1234",
            "the rest is kept"
        );
    }

    /// A mark inside a container the schema leaves untyped: the tape path (one line, no
    /// duplicate keys) judged it by the sealed schema alone and took an array's item in clear;
    /// every marked schema is judged on the `Value` now, as trackers find the places.
    #[tokio::test]
    async fn marks_in_untyped_containers_are_found_on_every_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t/untyped/jsonschema");
        std::fs::create_dir_all(&path).unwrap();
        let schema = serde_json::json!({
            "self": {"vendor": "t", "name": "untyped", "format": "jsonschema", "version": "1-0-0"},
            "properties": {"a": {"properties": {"1": {"x-pii": true}}}},
        });
        std::fs::write(path.join("1-0-0"), schema.to_string()).unwrap();
        // A mark the schema cannot honour (an `allOf` also checks it): the schema is
        // unusable, and its marked values still stay out of the dead letters.
        let path = dir.path().join("t/unusable/jsonschema");
        std::fs::create_dir_all(&path).unwrap();
        let schema = serde_json::json!({
            "self": {"vendor": "t", "name": "unusable", "format": "jsonschema", "version": "1-0-0"},
            "properties": {"email": {"x-pii": true}},
            "allOf": [{"properties": {"email": {"format": "email"}}}],
        });
        std::fs::write(path.join("1-0-0"), schema.to_string()).unwrap();
        let pipeline = Pipeline::new(Limits::default()).unwrap();
        let registry = Registry::new(crate::registry::Source::Dir(dir.path().into())).unwrap();
        let event = r#"{"event_id":"018f4e2a-0000-7000-8000-000000000001","schema":"iglu:t/untyped/jsonschema/1-0-0","data":{"a":["x","MARK-in-array"]},"created_at":"2026-11-30T10:00:00.001Z","context":{"labels":{"environment":"t","service":"web","version":"v1"},"library":{"name":"t","version":"0"},"anonymous_id":"a-1"}}"#;
        let received_at = parse_timestamp("2026-11-30T10:00:00.020Z").unwrap();
        let unusable = event
            .replace("t/untyped", "t/unusable")
            .replace(
                r#"{"a":["x","MARK-in-array"]}"#,
                r#"{"email":"MARK-unusable@example.com"}"#,
            )
            .replace("000000000001", "000000000002");
        let checked = pipeline
            .check_batch(&body(&[event, &unusable]), received_at, &registry)
            .await
            .unwrap();
        assert!(checked.good.is_empty());
        assert_eq!(checked.bad[0].dead.code, ErrorCode::PiiUnsealed);
        assert_eq!(checked.bad[1].dead.code, ErrorCode::UnknownSchema);
        assert!(checked.bad[1].dead.errors[0]
            .message
            .contains("personal-data mark"));
        for b in &checked.bad {
            assert!(!serde_json::to_string(&b.dead).unwrap().contains("MARK-"));
        }
    }

    #[tokio::test]
    async fn a_refused_tape_gets_the_dead_letter_of_the_value_path() {
        let (pipeline, registry) = pipeline_and_registry();
        let bad = r#"{"event_id":"018f4e2a-0000-7000-8000-000000000009","schema":"iglu:com.example.media/play/jsonschema/1-0-0","data":{"media_id":"b","position_s":-5},"created_at":"2026-11-30T10:00:00.001Z","context":{"labels":{"environment":"t","service":"web","version":"v1"},"library":{"name":"t","version":"0"},"anonymous_id":"a-1"}}"#;
        let received_at = parse_timestamp("2026-11-30T10:00:00.020Z").unwrap();
        let checked = pipeline
            .check_batch(&body(&[bad]), received_at, &registry)
            .await
            .unwrap();
        assert!(checked.good.is_empty());
        let dead = &checked.bad[0].dead;
        let event: Value = serde_json::from_str(bad).unwrap();
        let lookups = resolve_all(&registry, schema_uris(&event)).await.unwrap();
        let (schema, data, entities) = parts(&event);
        let (code, errors) = pipeline
            .check_data(schema, data, entities, &lookups)
            .unwrap_err();
        assert_eq!((dead.code, &dead.errors), (code, &errors));
        assert_eq!(dead.event.as_ref(), Some(&event));
    }

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
