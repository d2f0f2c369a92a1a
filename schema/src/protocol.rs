//! Wire protocol v1: the types of `POST /v1/batch` and its answer.
//!
//! These owned types describe the envelope as it travels. The tracker does not build them on
//! its hot path (it writes the same JSON straight from borrowed data, see `eventwire::Tracker`);
//! they exist for readers of the protocol (the collector, tests, the `before_send` hook) and
//! to derive the checked-in JSON Schemas `iglu:dev.eventwire/event/jsonschema/1-1-0` and
//! `iglu:dev.eventwire/batch/jsonschema/1-1-0` (feature `schemars`). Version 1-1-0 added
//! the optional `context.test_id`; the 1-0-0 files stay as they were published.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Path of the batch endpoint, appended to the collector's base URL.
pub const BATCH_PATH: &str = "/v1/batch";

/// Largest request body a collector takes by default, after decompression, in bytes (1 MiB):
/// the tracker's default batch size and the collector's default body limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Largest event (its envelope's JSON) a collector takes by default, in bytes (256 KiB): the
/// tracker's default event limit and the collector's.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Longest string (or object key) inside an event, in bytes, that a collector takes by
/// default: a tracker drops a sealed value over it rather than send what would be refused.
pub const MAX_STRING_BYTES: usize = 64 * 1024;

/// SchemaVer of the envelope and batch schemas: 1-1-0 added the optional `context.test_id`,
/// a REVISION (1-0-0's `context` let any member through, so an envelope that carried a
/// `test_id` other than a string of 1 to 256 characters was valid under it and is not now;
/// every envelope a tracker of ours sent is valid under both).
pub const ENVELOPE_SCHEMA_VERSION: &str = "1-1-0";

/// Iglu URI of the envelope schema.
pub const EVENT_SCHEMA: &str = "iglu:dev.eventwire/event/jsonschema/1-1-0";

/// Iglu URI of the batch body schema.
pub const BATCH_SCHEMA: &str = "iglu:dev.eventwire/batch/jsonschema/1-1-0";

/// Longest `context.test_id`, in characters (as the envelope schema's `maxLength` counts).
pub const MAX_TEST_ID_CHARS: usize = 256;

/// Regex that an Iglu URI matches (the same rules as [`crate::iglu::SchemaKey::parse`]).
pub const IGLU_URI_PATTERN: &str = "^iglu:[a-zA-Z0-9_-]+(\\.[a-zA-Z0-9_-]+)*/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/[1-9][0-9]{0,8}-(0|[1-9][0-9]{0,8})-(0|[1-9][0-9]{0,8})$";

/// One event as it travels: the envelope of DESIGN §3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schemars", schemars(deny_unknown_fields))]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Chosen when the event is tracked (UUID v7) and never changed by retries: the
    /// deduplication key.
    pub event_id: Uuid,
    /// Iglu URI of the schema that `data` conforms to.
    #[cfg_attr(feature = "schemars", schemars(regex = "IGLU_URI_PATTERN"))]
    pub schema: String,
    /// The event's own properties, valid against `schema`.
    pub data: Value,
    /// The client's clock when the event was tracked (RFC 3339).
    #[cfg_attr(feature = "schemars", schemars(schema_with = "date_time"))]
    pub created_at: String,
    /// Self-describing objects attached to the event, each valid against its own schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "schemars", schemars(length(max = 100)))]
    pub entities: Vec<Entity>,
    /// Who sent it, from where.
    pub context: Context,
}

/// A self-describing object attached to an event (e.g. the media player).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schemars", schemars(deny_unknown_fields))]
#[serde(deny_unknown_fields)]
pub struct Entity {
    /// Iglu URI of the schema that `data` conforms to.
    #[cfg_attr(feature = "schemars", schemars(regex = "IGLU_URI_PATTERN"))]
    pub schema: String,
    /// The entity's properties.
    pub data: Value,
}

/// Context attached to every event by the tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Context {
    /// The four standard labels.
    #[serde(default)]
    pub labels: Labels,
    /// The library that built the envelope.
    pub library: Library,
    /// Stable identifier of the device or installation.
    #[cfg_attr(feature = "schemars", schemars(length(min = 1, max = 256)))]
    pub anonymous_id: String,
    /// The signed-in user, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schemars", schemars(length(min = 1, max = 256)))]
    pub user_id: Option<String>,
    /// The current session; renewed after a period of inactivity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schemars", schemars(length(min = 1, max = 256)))]
    pub session_id: Option<String>,
    /// Set by a tracker configured for an app's tests (`TrackerBuilder::test_id`, the
    /// browser's `init({ testId })`): a dev collector's views and `/v1/events/wait` filter
    /// by it, so tests running in parallel against one collector see only their own events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schemars", schemars(length(min = 1, max = 256)))]
    pub test_id: Option<String>,
}

/// The four standard labels, set once on the tracker and attached to every event so that
/// volumes and errors can be cut by any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Labels {
    /// Deployment environment, e.g. `prod`, `staging`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schemars", schemars(length(max = 128)))]
    pub environment: Option<String>,
    /// The emitting service or app, e.g. `web`, `ios`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schemars", schemars(length(max = 128)))]
    pub service: Option<String>,
    /// The owning team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schemars", schemars(length(max = 128)))]
    pub team: Option<String>,
    /// Code revision or release of the emitting service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schemars", schemars(length(max = 128)))]
    pub version: Option<String>,
}

/// Name and version of the library that built the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Library {
    /// e.g. `eventwire-rust`, `eventwire-js`.
    #[cfg_attr(feature = "schemars", schemars(length(min = 1, max = 128)))]
    pub name: String,
    /// The library's version.
    #[cfg_attr(feature = "schemars", schemars(length(min = 1, max = 128)))]
    pub version: String,
}

/// The body of `POST /v1/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Batch {
    /// The client's clock when this attempt was sent (RFC 3339); fresh on every attempt.
    #[cfg_attr(feature = "schemars", schemars(schema_with = "date_time"))]
    pub sent_at: String,
    /// The write key, for clients that cannot set an `Authorization` header (beacons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_key: Option<String>,
    /// The events, in tracking order.
    #[cfg_attr(feature = "schemars", schemars(length(min = 1)))]
    pub events: Vec<Event>,
}

/// The collector's answer to a processed batch (HTTP 200).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Events written to the good sink.
    pub accepted: u64,
    /// Events already seen (by `event_id`) and not written again.
    #[serde(default)]
    pub duplicates: u64,
    /// Events written to the dead-letter sink instead; resending them would not help.
    #[serde(default)]
    pub rejected: Vec<Rejection>,
}

impl BatchResponse {
    /// Reads a collector's 200 answer to a batch of `events` events. `None` when the body is
    /// not a batch answer, or one that does not account for exactly these events: `accepted +
    /// duplicates + rejected` must equal `events`, and every rejection must name a distinct
    /// index below `events`. Such an answer did not come from an eventwire collector (a web
    /// page, another service's JSON), so no event of the batch counts as sent.
    #[must_use]
    pub fn for_batch(body: &[u8], events: usize) -> Option<BatchResponse> {
        let answer: BatchResponse = serde_json::from_slice(body).ok()?;
        answer.accounts_for(events).then_some(answer)
    }

    /// True when this answer accounts for exactly `events` events: `accepted + duplicates +
    /// rejected = events`, each rejected index distinct and below `events`.
    pub fn accounts_for(&self, events: usize) -> bool {
        let total = self
            .accepted
            .checked_add(self.duplicates)
            .and_then(|n| n.checked_add(self.rejected.len() as u64));
        if total != Some(events as u64) {
            return false;
        }
        // Quadratic in the rejections, but no allocation: a batch is at most a few
        // hundred events, and the browser build pays for every routine.
        self.rejected
            .iter()
            .enumerate()
            .all(|(i, r)| r.index < events && self.rejected[..i].iter().all(|q| q.index != r.index))
    }
}

/// One event the collector dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Position of the event in the request's `events` array.
    pub index: usize,
    /// The event's id, when it had a readable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The dead-letter code (see [`ErrorCode`]).
    pub code: String,
}

/// The dead-letter codes of DESIGN §4, and the codes of the collector's refusals (DESIGN
/// §8: each refusal has its own; `malformed` only for bodies that are not batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not a batch.
    Malformed,
    /// A missing or ill-typed envelope field.
    InvalidEnvelope,
    /// The event's schema is not in the registry.
    UnknownSchema,
    /// `data` does not validate against the event's schema.
    SchemaInvalid,
    /// An entity does not validate against its schema (or its schema is unknown).
    EntityInvalid,
    /// Over a size limit.
    TooLarge,
    /// Refusal: the write key is missing or unknown (401; nothing stored).
    Unauthorized,
    /// Refusal: the body did not arrive within the time allowed (408; dead-lettered).
    Timeout,
    /// Refusal: a content type or content encoding the collector does not take (415;
    /// dead-lettered).
    UnsupportedEncoding,
    /// Refusal: a sink or the schema registry cannot take the request now (503 with
    /// `Retry-After`; nothing stored, the sender retries).
    Unavailable,
    /// A field its schema marks as personal data (`"x-pii": true`) arrived unsealed (not
    /// `ew1.<key id>.<enc>.<ciphertext>`): dead-lettered with every such value removed,
    /// so the plaintext is stored nowhere.
    PiiUnsealed,
}

impl ErrorCode {
    /// Every code, in a stable order.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Malformed,
        ErrorCode::InvalidEnvelope,
        ErrorCode::UnknownSchema,
        ErrorCode::SchemaInvalid,
        ErrorCode::EntityInvalid,
        ErrorCode::TooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::Timeout,
        ErrorCode::UnsupportedEncoding,
        ErrorCode::Unavailable,
        ErrorCode::PiiUnsealed,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::InvalidEnvelope => "invalid_envelope",
            ErrorCode::UnknownSchema => "unknown_schema",
            ErrorCode::SchemaInvalid => "schema_invalid",
            ErrorCode::EntityInvalid => "entity_invalid",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Timeout => "timeout",
            ErrorCode::UnsupportedEncoding => "unsupported_encoding",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::PiiUnsealed => "pii_unsealed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "schemars")]
fn date_time(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    use schemars::schema::{InstanceType, SchemaObject};
    SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        format: Some("date-time".to_owned()),
        ..Default::default()
    }
    .into()
}

/// The JSON Schemas of the envelope and the batch body, as self-describing Iglu schemas
/// (draft 4 compatible), exactly as checked in under `schemas/dev.eventwire/`.
#[cfg(feature = "schemars")]
pub fn iglu_schemas() -> [(&'static str, Value); 2] {
    use schemars::gen::SchemaSettings;
    let settings = SchemaSettings::draft07().with(|s| {
        s.meta_schema = None;
        s.option_nullable = false;
        s.option_add_null_type = true;
    });
    let wrap = |name: &str, description: &str, schema: schemars::schema::RootSchema| {
        let mut value = serde_json::to_value(schema).unwrap_or(Value::Null);
        let object = value.as_object_mut().expect("schemars emits an object");
        object.remove("title");
        let mut out = serde_json::Map::new();
        out.insert("$schema".into(), Value::from(crate::iglu::SELF_DESC_META));
        out.insert("description".into(), Value::from(description));
        out.insert(
            "self".into(),
            serde_json::json!({"vendor": "dev.eventwire", "name": name, "format": "jsonschema", "version": ENVELOPE_SCHEMA_VERSION}),
        );
        out.extend(std::mem::take(object));
        Value::Object(out)
    };
    let event = settings
        .clone()
        .into_generator()
        .into_root_schema_for::<Event>();
    let batch = settings.into_generator().into_root_schema_for::<Batch>();
    [
        (
            "event",
            wrap(
                "event",
                "The eventwire envelope of one event (wire protocol v1).",
                event,
            ),
        ),
        (
            "batch",
            wrap(
                "batch",
                "The body of POST /v1/batch (wire protocol v1).",
                batch,
            ),
        ),
    ]
}

/// An event type with a fixed Iglu schema. Types generated by `eventwire-codegen` implement
/// it; `tracker.track(PlayStarted { .. })` is then all a caller writes.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct PlayStarted { media_id: String, position_s: f64 }
///
/// impl eventwire_schema::protocol::SelfDescribing for PlayStarted {
///     const SCHEMA: &'static str = "iglu:com.example.media/play/jsonschema/1-0-0";
/// }
/// ```
pub trait SelfDescribing: Serialize {
    /// The Iglu URI of the schema this type's JSON is valid against.
    const SCHEMA: &'static str;
    /// The places of the schema's personal data (`"x-pii": true`), as JSON pointers into
    /// the data, `*` standing for every item of an array (`/email`, `/phones/*`), sorted:
    /// what a tracker seals before the event leaves the app (see
    /// [`crate::pii::Marks`]). Empty for a schema without marks; generated code fills it.
    const PII: &'static [&'static str] = &[];
}

impl Entity {
    /// An entity from a typed value.
    /// A type with personal-data marks ([`SelfDescribing::PII`]) teaches them to trackers
    /// ([`crate::pii::learn`]): its entities are sealed as its events are.
    pub fn typed<E: SelfDescribing>(value: &E) -> Result<Entity, serde_json::Error> {
        crate::pii::learn(E::SCHEMA, E::PII);
        Ok(Entity {
            schema: E::SCHEMA.to_owned(),
            data: serde_json::to_value(value)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_documented() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn only_an_answer_that_accounts_for_the_batch_is_a_batch_answer() {
        let rejection = |i| format!(r#"{{"index":{i},"code":"schema_invalid"}}"#);
        let table: &[(String, usize, bool)] = &[
            (r#"{"accepted":3}"#.into(), 3, true),
            (r#"{"accepted":1,"duplicates":2}"#.into(), 3, true),
            (
                format!(r#"{{"accepted":2,"rejected":[{}]}}"#, rejection(2)),
                3,
                true,
            ),
            // A newer collector may add fields.
            (r#"{"accepted":3,"took_ms":2}"#.into(), 3, true),
            (r#"{"accepted":2}"#.into(), 3, false),
            (r#"{"accepted":4}"#.into(), 3, false),
            (
                format!(r#"{{"accepted":2,"rejected":[{}]}}"#, rejection(3)),
                3,
                false,
            ),
            (
                format!(
                    r#"{{"accepted":1,"rejected":[{},{}]}}"#,
                    rejection(0),
                    rejection(0)
                ),
                3,
                false,
            ),
            (
                r#"{"accepted":18446744073709551615,"duplicates":4}"#.into(),
                3,
                false,
            ),
            (r#"{"status":"ok"}"#.into(), 3, false),
            ("".into(), 3, false),
            ("<html>Welcome</html>".into(), 3, false),
            ("[]".into(), 0, false),
        ];
        for (body, events, ok) in table {
            assert_eq!(
                BatchResponse::for_batch(body.as_bytes(), *events).is_some(),
                *ok,
                "{body} for {events}"
            );
        }
    }

    #[test]
    fn response_defaults_missing_fields() {
        let r: BatchResponse = serde_json::from_str(r#"{"accepted":3}"#).unwrap();
        assert_eq!(r.accepted, 3);
        assert_eq!(r.duplicates, 0);
        assert!(r.rejected.is_empty());
    }
}
