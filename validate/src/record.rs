//! What the collector writes: good events and dead letters, one JSON object per line
//! (DESIGN §4).

use base64::Engine as _;
use eventwire_schema::protocol::ErrorCode;
use serde::Serialize;
use serde_json::Value;

/// Dead letters keep at most this many bytes of an unparseable request, base64-encoded.
pub const MAX_RAW_BYTES: usize = 16 * 1024;
/// A dead letter lists at most this many validation errors.
pub const MAX_ERRORS: usize = 20;

/// A good event as the good sink receives it: the envelope plus the collector's times. (An
/// event validated on its tape is written as its text with these times added, the same
/// members; this struct writes the events judged as a `Value`.)
#[derive(Debug, Serialize)]
pub struct GoodRecord<'a> {
    /// The deduplication key.
    pub event_id: &'a str,
    /// Iglu URI of `data`'s schema.
    pub schema: &'a str,
    /// The event's properties.
    pub data: &'a Value,
    /// Attached entities, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<&'a Value>,
    /// Labels, library, identity.
    pub context: &'a Value,
    /// Client clock at `track()`.
    pub created_at: &'a str,
    /// Client clock at sending.
    pub sent_at: &'a str,
    /// Collector clock at arrival: the authoritative time.
    pub received_at: &'a str,
    /// Skew-corrected event time (see [`crate::time`]).
    pub event_time: String,
    /// Present when `event_time` was clamped: `future` or `too_old` (see [`crate::time`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time_clamped: Option<&'static str>,
}

/// One validation error in a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    /// JSON pointer into the event (`/data/position_s`), or into the request.
    pub path: String,
    /// The JSON Schema keyword that failed (`minimum`, `required`…), or the limit's name.
    pub keyword: String,
    /// A readable message.
    pub message: String,
}

impl ErrorDetail {
    /// An error with these parts.
    pub fn new(
        path: impl Into<String>,
        keyword: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ErrorDetail {
            path: path.into(),
            keyword: keyword.into(),
            message: message.into(),
        }
    }
}

/// A dead letter: something that did not become a good event, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Collector clock at arrival.
    pub received_at: String,
    /// Why (see [`ErrorCode`]).
    pub code: ErrorCode,
    /// Details, most relevant first.
    pub errors: Vec<ErrorDetail>,
    /// The original event, when it parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    /// The original bytes (base64, truncated to [`MAX_RAW_BYTES`]), when they did not parse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl DeadLetter {
    /// A dead letter for a parsed event.
    pub fn for_event(
        received_at: &str,
        code: ErrorCode,
        errors: Vec<ErrorDetail>,
        event: Value,
    ) -> Self {
        DeadLetter {
            received_at: received_at.to_owned(),
            code,
            errors,
            event: Some(event),
            raw: None,
        }
    }

    /// A dead letter for bytes that are not an event or not a batch.
    pub fn for_raw(
        received_at: &str,
        code: ErrorCode,
        errors: Vec<ErrorDetail>,
        raw: &[u8],
    ) -> Self {
        DeadLetter {
            received_at: received_at.to_owned(),
            code,
            errors,
            event: None,
            raw: Some(encode_raw(raw)),
        }
    }

    /// The event's id, when the dead letter holds an event that has a string one.
    pub fn event_id(&self) -> Option<&str> {
        self.event.as_ref()?.get("event_id")?.as_str()
    }

    /// The event's schema URI, when it has one.
    pub fn schema(&self) -> Option<&str> {
        self.event.as_ref()?.get("schema")?.as_str()
    }
}

/// Base64 of at most [`MAX_RAW_BYTES`] of `raw`.
pub fn encode_raw(raw: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(&raw[..raw.len().min(MAX_RAW_BYTES)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_is_truncated_base64() {
        let d = DeadLetter::for_raw("t", ErrorCode::Malformed, vec![], &vec![b'x'; 100_000]);
        let raw = d.raw.unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap();
        assert_eq!(bytes.len(), MAX_RAW_BYTES);
    }

    #[test]
    fn dead_letter_shape() {
        let d = DeadLetter::for_event(
            "2026-11-26T03:10:26.000Z",
            ErrorCode::SchemaInvalid,
            vec![ErrorDetail::new(
                "/data/position_s",
                "minimum",
                "-1 is less than 0",
            )],
            serde_json::json!({"event_id": "e1", "schema": "iglu:a/b/jsonschema/1-0-0"}),
        );
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["code"], "schema_invalid");
        assert_eq!(v["errors"][0]["keyword"], "minimum");
        assert!(v.get("raw").is_none());
        assert_eq!(d.event_id(), Some("e1"));
    }
}
