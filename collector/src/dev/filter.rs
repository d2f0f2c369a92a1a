//! Which dev-mode records a query asks for, and why a record is not one of them: a pure
//! function over a record's JSON, shared by `GET /v1/events`, `/v1/events/wait` (whose
//! timeout answer lists near misses with their reasons) and the live stream.

use serde::Deserialize;
use serde_json::Value;

/// Good records (events stored) or bad ones (dead letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Good,
    Bad,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Good => "good",
            Kind::Bad => "bad",
        }
    }
}

/// The criteria of a query; `None` matches anything. `label` is `name=value` (one of the
/// four standard labels) or a bare `value` that any label may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub kind: Option<Kind>,
    pub schema: Option<String>,
    pub event_id: Option<String>,
    pub test_id: Option<String>,
    pub label: Option<String>,
}

/// The event inside a record: a good record is the event; a dead letter holds it under
/// `event` (absent for a body that did not parse).
pub(crate) fn event_of(kind: Kind, record: &Value) -> Option<&Value> {
    match kind {
        Kind::Good => Some(record),
        Kind::Bad => record.get("event"),
    }
}

fn str_at<'v>(event: Option<&'v Value>, pointer: &str) -> Option<&'v str> {
    event?.pointer(pointer)?.as_str()
}

fn shown(v: Option<&str>) -> String {
    v.map_or_else(|| "absent".to_owned(), |s| format!("{s:?}"))
}

/// Why a dead letter was refused, in one line: its code and first errors.
pub(crate) fn refusal(record: &Value) -> String {
    let code = record.get("code").and_then(Value::as_str).unwrap_or("?");
    let errors: Vec<String> = record
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(3)
        .map(|e| {
            let path = e.get("path").and_then(Value::as_str).unwrap_or("");
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            if path.is_empty() {
                message.to_owned()
            } else {
                format!("{path}: {message}")
            }
        })
        .collect();
    if errors.is_empty() {
        format!("dead-lettered as {code}")
    } else {
        format!("dead-lettered as {code} ({})", errors.join("; "))
    }
}

impl Filter {
    /// The reasons `record` (of `kind`) does not match, one per criterion it fails; empty
    /// when it matches.
    pub(crate) fn mismatches(&self, kind: Kind, record: &Value) -> Vec<String> {
        let mut why = Vec::new();
        if let Some(want) = self.kind {
            if want != kind {
                why.push(match kind {
                    Kind::Bad => refusal(record),
                    Kind::Good => "stored as a good event, not dead-lettered".to_owned(),
                });
            }
        }
        let event = event_of(kind, record);
        let mut differ = |name: &str, want: &Option<String>, pointer: &str| {
            if let Some(want) = want {
                let got = str_at(event, pointer);
                if got != Some(want.as_str()) {
                    why.push(format!("{name} is {}, not {want:?}", shown(got)));
                }
            }
        };
        differ("schema", &self.schema, "/schema");
        differ("event_id", &self.event_id, "/event_id");
        differ("test_id", &self.test_id, "/context/test_id");
        if let Some(label) = &self.label {
            let labels = event.and_then(|e| e.pointer("/context/labels"));
            let value_of = |name: &str| labels.and_then(|l| l.get(name)).and_then(Value::as_str);
            let found = match label.split_once('=') {
                Some((name, value)) => value_of(name) == Some(value),
                None => ["environment", "service", "team", "version"]
                    .iter()
                    .any(|name| value_of(name) == Some(label.as_str())),
            };
            if !found {
                let all = labels.map_or_else(|| "none".to_owned(), Value::to_string);
                why.push(format!("labels are {all}, none is {label:?}"));
            }
        }
        why
    }

    /// Whether `record` (of `kind`) matches every criterion.
    pub(crate) fn matches(&self, kind: Kind, record: &Value) -> bool {
        self.mismatches(kind, record).is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"event_id": "e-1", "schema": "iglu:a/b/jsonschema/1-0-0", "data": {},
            "context": {"labels": {"service": "web", "version": "v2"}, "test_id": "t-1"}})
    }

    fn bad() -> Value {
        json!({"code": "schema_invalid", "errors": [{"path": "/data/q", "keyword": "type",
            "message": "7 is not of type \"string\""}], "event": good()})
    }

    #[test]
    fn each_criterion_matches_or_says_why_not() {
        let f = |kind, schema: Option<&str>, test_id: Option<&str>, label: Option<&str>| Filter {
            kind,
            schema: schema.map(Into::into),
            event_id: None,
            test_id: test_id.map(Into::into),
            label: label.map(Into::into),
        };
        let table: Vec<(Filter, Kind, Value, Vec<&str>)> = vec![
            (Filter::default(), Kind::Good, good(), vec![]),
            (Filter::default(), Kind::Bad, bad(), vec![]),
            (
                f(Some(Kind::Good), None, None, None),
                Kind::Good,
                good(),
                vec![],
            ),
            (
                f(Some(Kind::Good), None, None, None),
                Kind::Bad,
                bad(),
                vec![r#"dead-lettered as schema_invalid (/data/q: 7 is not of type "string")"#],
            ),
            (
                f(Some(Kind::Bad), None, None, None),
                Kind::Good,
                good(),
                vec!["stored as a good event, not dead-lettered"],
            ),
            (
                f(None, Some("iglu:a/b/jsonschema/1-0-0"), Some("t-1"), None),
                Kind::Bad,
                bad(),
                vec![],
            ),
            (
                f(None, Some("iglu:a/c/jsonschema/1-0-0"), Some("t-2"), None),
                Kind::Good,
                good(),
                vec![
                    r#"schema is "iglu:a/b/jsonschema/1-0-0", not "iglu:a/c/jsonschema/1-0-0""#,
                    r#"test_id is "t-1", not "t-2""#,
                ],
            ),
            (
                f(None, None, Some("t-1"), None),
                Kind::Good,
                json!({"context": {}}),
                vec![r#"test_id is absent, not "t-1""#],
            ),
            (
                f(None, None, Some("t-1"), None),
                Kind::Bad,
                json!({"code": "malformed", "errors": [], "raw": "{"}),
                vec![r#"test_id is absent, not "t-1""#],
            ),
            (
                f(None, None, None, Some("service=web")),
                Kind::Good,
                good(),
                vec![],
            ),
            (f(None, None, None, Some("v2")), Kind::Good, good(), vec![]),
            (
                f(None, None, None, Some("service=v2")),
                Kind::Good,
                good(),
                vec![r#"labels are {"service":"web","version":"v2"}, none is "service=v2""#],
            ),
            (
                f(None, None, None, Some("web")),
                Kind::Good,
                json!({}),
                vec![r#"labels are none, none is "web""#],
            ),
        ];
        for (i, (filter, kind, record, want)) in table.into_iter().enumerate() {
            assert_eq!(filter.mismatches(kind, &record), want, "row {i}");
            assert_eq!(filter.matches(kind, &record), want.is_empty(), "row {i}");
        }
    }
}
