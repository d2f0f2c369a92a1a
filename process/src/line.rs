//! Reading one input record: a good-sink line as the collector writes it (DESIGN §4).
//!
//! A worker needs little of it: the event id (the deduplication key), the schema, the
//! collector's `received_at` (the clock of windows), the user (`context.user_id`, else
//! `context.anonymous_id`) and the values of the configured dimensions. Anything that is not
//! such a line is refused with a [`LineError`], which becomes a dead letter.

use serde_json::Value;

use crate::uniques::UniquesSpec;

/// What a worker reads from one good line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The event id as a 128-bit key ([`eventwire_collector::dedup::key`]).
    pub key: u128,
    /// The event id as written.
    pub event_id: String,
    /// `vendor/name` of the event's schema (every version counts as one schema).
    pub schema: String,
    /// The collector's `received_at`, in milliseconds since the Unix epoch.
    pub received_ms: i64,
    /// `context.user_id`, else `context.anonymous_id`; `None` when neither is a string.
    pub user: Option<String>,
    /// For each configured dimension of this schema (index into the specs), its value:
    /// strings as they are, other JSON values as their JSON text; absent or null values are
    /// left out.
    pub dimensions: Vec<(usize, String)>,
}

/// Why a record is not a good line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The bytes are not one JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// A member every good line has is missing or of the wrong type.
    #[error("not a good-sink line: {0}")]
    NotGoodLine(String),
}

impl LineError {
    /// The dead letter's code: `malformed` for bytes that are not JSON, `invalid_envelope`
    /// for JSON that is not a good line.
    pub fn code(&self) -> eventwire_schema::protocol::ErrorCode {
        use eventwire_schema::protocol::ErrorCode;
        match self {
            LineError::NotJson(_) => ErrorCode::Malformed,
            LineError::NotGoodLine(_) => ErrorCode::InvalidEnvelope,
        }
    }
}

/// `vendor/name` of an Iglu URI (`iglu:vendor/name/jsonschema/1-0-0`), or `None`.
pub fn schema_name(uri: &str) -> Option<&str> {
    let path = uri.strip_prefix("iglu:")?;
    let mut parts = path.splitn(4, '/');
    let vendor = parts.next().filter(|s| !s.is_empty())?;
    let name = parts.next().filter(|s| !s.is_empty())?;
    parts.next()?;
    parts.next()?;
    Some(&path[..vendor.len() + 1 + name.len()])
}

/// Longest piece of an offending value quoted in an error (dead letters carry the whole
/// record, base64, anyway).
pub const MAX_QUOTED_CHARS: usize = 64;

/// `value` as quoted in an error: Debug-escaped, cut to [`MAX_QUOTED_CHARS`] characters, so
/// a dead letter stays small whatever the record holds.
fn shown(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{:?}… ({} bytes)", &value[..end], value.len()),
        None => format!("{value:?}"),
    }
}

/// Reads `bytes` as a good line, with the values of `specs`' dimensions.
pub fn read(bytes: &[u8], specs: &[UniquesSpec]) -> Result<Line, LineError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| LineError::NotJson(e.to_string()))?;
    let Value::Object(ref members) = value else {
        return Err(LineError::NotJson("the value is not an object".into()));
    };
    let text = |name: &str| -> Result<&str, LineError> {
        members
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| LineError::NotGoodLine(format!("no string `{name}`")))
    };
    let event_id = text("event_id")?;
    if event_id.is_empty() {
        return Err(LineError::NotGoodLine("`event_id` is empty".into()));
    }
    let uri = text("schema")?;
    let schema = schema_name(uri).ok_or_else(|| {
        LineError::NotGoodLine(format!("`schema` is not an Iglu URI: {}", shown(uri)))
    })?;
    let received = text("received_at")?;
    let received_ms = chrono::DateTime::parse_from_rfc3339(received)
        .map_err(|e| LineError::NotGoodLine(format!("`received_at` {}: {e}", shown(received))))?
        .timestamp_millis();
    let context = members.get("context");
    let user = ["user_id", "anonymous_id"]
        .iter()
        .find_map(|k| context?.get(*k)?.as_str().filter(|u| !u.is_empty()))
        .map(str::to_owned);
    let dimensions = specs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.schema == schema)
        .filter_map(|(i, s)| match value.pointer(&s.pointer)? {
            Value::Null => None,
            Value::String(v) => Some((i, v.clone())),
            other => Some((i, other.to_string())),
        })
        .collect();
    Ok(Line {
        key: eventwire_collector::dedup::key(event_id),
        event_id: event_id.to_owned(),
        schema: schema.to_owned(),
        received_ms,
        user,
        dimensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> UniquesSpec {
        UniquesSpec::parse(s).unwrap()
    }

    const LINE: &str = r#"{"event_id":"018f4e2a-0000-7000-8000-000000000002","schema":"iglu:com.example.web/article_view/jsonschema/1-0-2","data":{"article_id":"a-17","words":900,"tag":null},"context":{"labels":{},"library":{"name":"x","version":"1"},"anonymous_id":"anon-1"},"created_at":"2026-11-30T10:00:00.000Z","sent_at":"2026-11-30T10:00:00.100Z","received_at":"2026-11-30T10:00:00.250Z","event_time":"2026-11-30T10:00:00.150Z"}"#;

    #[test]
    fn reads_what_a_worker_needs_from_a_good_line() {
        let specs = [
            spec("com.example.web/article_view:/data/article_id"),
            spec("com.example.web/other:/data/article_id"),
            spec("com.example.web/article_view:length=/data/words"),
            spec("com.example.web/article_view:/data/tag"),
            spec("com.example.web/article_view:/data/missing"),
        ];
        let line = read(LINE.as_bytes(), &specs).unwrap();
        assert_eq!(line.event_id, "018f4e2a-0000-7000-8000-000000000002");
        assert_eq!(line.key, 0x018f4e2a_0000_7000_8000_000000000002);
        assert_eq!(line.schema, "com.example.web/article_view");
        assert_eq!(line.received_ms, 1_796_032_800_250);
        assert_eq!(line.user.as_deref(), Some("anon-1"));
        assert_eq!(
            line.dimensions,
            vec![(0, "a-17".to_owned()), (2, "900".to_owned())]
        );
        // An empty user_id is no user id.
        let empty = LINE.replace(
            "\"anonymous_id\":\"anon-1\"",
            "\"anonymous_id\":\"anon-1\",\"user_id\":\"\"",
        );
        let user = read(empty.as_bytes(), &specs).unwrap().user;
        assert_eq!(user.as_deref(), Some("anon-1"));
        // user_id wins over anonymous_id.
        let signed_in = LINE.replace(
            r#""anonymous_id":"anon-1""#,
            r#""anonymous_id":"anon-1","user_id":"u-9""#,
        );
        assert_eq!(
            read(signed_in.as_bytes(), &specs).unwrap().user.as_deref(),
            Some("u-9")
        );
    }

    #[test]
    fn what_is_not_a_good_line_is_refused_with_its_reason() {
        use eventwire_schema::protocol::ErrorCode;
        let cases: &[(&[u8], ErrorCode, &str)] = &[
            (b"", ErrorCode::Malformed, "not a JSON object"),
            (b"\xff\xfe", ErrorCode::Malformed, "not a JSON object"),
            (b"[1,2]", ErrorCode::Malformed, "not an object"),
            (b"{\"event_id\":1}", ErrorCode::InvalidEnvelope, "`event_id`"),
            (b"{\"event_id\":\"\",\"schema\":\"iglu:a/b/jsonschema/1-0-0\"}", ErrorCode::InvalidEnvelope, "empty"),
            (b"{\"event_id\":\"e\",\"schema\":\"a/b\",\"received_at\":\"2026-11-30T10:00:00Z\"}", ErrorCode::InvalidEnvelope, "Iglu URI"),
            (b"{\"event_id\":\"e\",\"schema\":\"iglu:a/b/jsonschema/1-0-0\"}", ErrorCode::InvalidEnvelope, "`received_at`"),
            (b"{\"event_id\":\"e\",\"schema\":\"iglu:a/b/jsonschema/1-0-0\",\"received_at\":\"yesterday\"}", ErrorCode::InvalidEnvelope, "yesterday"),
        ];
        for (bytes, code, says) in cases {
            let err = read(bytes, &[]).unwrap_err();
            assert_eq!(err.code(), *code, "{}", String::from_utf8_lossy(bytes));
            assert!(err.to_string().contains(says), "{err} should say {says}");
        }
    }

    #[test]
    fn errors_quote_at_most_a_few_characters_of_what_they_refuse() {
        // 200,000 DEL characters: Debug writes each as 6 bytes, JSON escapes them again.
        let huge = "\u{7f}".repeat(200_000);
        let line = format!(
            "{{\"event_id\":\"e\",\"schema\":\"iglu:a/b/jsonschema/1-0-0\",\"received_at\":\"{huge}\"}}"
        );
        let err = read(line.as_bytes(), &[]).unwrap_err().to_string();
        assert!(err.len() < 1_000, "{} bytes", err.len());
        assert!(err.contains("(200000 bytes)"), "{err}");
        let long = "s".repeat(100_000);
        let line = format!("{{\"event_id\":\"e\",\"schema\":\"{long}\",\"received_at\":\"x\"}}");
        assert!(read(line.as_bytes(), &[]).unwrap_err().to_string().len() < 1_000);
    }

    #[test]
    fn schema_names_are_vendor_and_name() {
        assert_eq!(
            schema_name("iglu:com.a/b/jsonschema/1-0-0"),
            Some("com.a/b")
        );
        assert_eq!(schema_name("iglu:com.a/b"), None);
        assert_eq!(schema_name("iglu:/b/jsonschema/1-0-0"), None);
        assert_eq!(schema_name("com.a/b/jsonschema/1-0-0"), None);
    }
}
