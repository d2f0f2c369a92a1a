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

fn at<'v>(event: Option<&'v Value>, pointer: &str) -> Option<&'v Value> {
    event?.pointer(pointer)
}

/// A member's value as a reason shows it: a string quoted, anything else as JSON.
fn shown(v: Option<&Value>) -> String {
    match v {
        None => "absent".to_owned(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

/// The four standard labels, which a bare `label=value` looks in.
const LABELS: [&str; 4] = ["environment", "service", "team", "version"];

/// One criterion of a [`Filter`].
#[derive(Debug, Clone, Copy)]
enum Criterion {
    Kind,
    Schema,
    EventId,
    TestId,
    Label,
}

const CRITERIA: [Criterion; 5] = [
    Criterion::Kind,
    Criterion::Schema,
    Criterion::EventId,
    Criterion::TestId,
    Criterion::Label,
];

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
    /// Whether `record` (of `kind`) passes `c`: no allocation, as waits run it on every
    /// record stored.
    fn passes(&self, c: Criterion, kind: Kind, record: &Value) -> bool {
        let event = || event_of(kind, record);
        let is = |want: &Option<String>, pointer: &str| {
            want.as_deref()
                .is_none_or(|w| at(event(), pointer).and_then(Value::as_str) == Some(w))
        };
        match c {
            Criterion::Kind => self.kind.is_none_or(|k| k == kind),
            Criterion::Schema => is(&self.schema, "/schema"),
            Criterion::EventId => is(&self.event_id, "/event_id"),
            Criterion::TestId => is(&self.test_id, "/context/test_id"),
            Criterion::Label => self.label.as_deref().is_none_or(|label| {
                let labels = at(event(), "/context/labels");
                let value_of =
                    |name: &str| labels.and_then(|l| l.get(name)).and_then(Value::as_str);
                match label.split_once('=') {
                    Some((name, value)) => value_of(name) == Some(value),
                    None => LABELS.iter().any(|name| value_of(name) == Some(label)),
                }
            }),
        }
    }

    /// Why `record` (of `kind`) fails `c`, for a person.
    fn why(&self, c: Criterion, kind: Kind, record: &Value) -> String {
        let event = event_of(kind, record);
        let differs = |name: &str, want: &Option<String>, pointer: &str| {
            format!(
                "{name} is {}, not {:?}",
                shown(at(event, pointer)),
                want.as_deref().unwrap_or_default()
            )
        };
        match c {
            Criterion::Kind => match kind {
                Kind::Bad => refusal(record),
                Kind::Good => "stored as a good event, not dead-lettered".to_owned(),
            },
            Criterion::Schema => differs("schema", &self.schema, "/schema"),
            Criterion::EventId => differs("event_id", &self.event_id, "/event_id"),
            Criterion::TestId => differs("test_id", &self.test_id, "/context/test_id"),
            Criterion::Label => {
                let all = at(event, "/context/labels")
                    .map_or_else(|| "none".to_owned(), Value::to_string);
                format!(
                    "labels are {all}, none is {:?}",
                    self.label.as_deref().unwrap_or_default()
                )
            }
        }
    }

    /// The reasons `record` (of `kind`) does not match, one per criterion it fails; empty
    /// when it matches.
    pub(crate) fn mismatches(&self, kind: Kind, record: &Value) -> Vec<String> {
        CRITERIA
            .iter()
            .filter(|c| !self.passes(**c, kind, record))
            .map(|c| self.why(*c, kind, record))
            .collect()
    }

    /// Whether `record` (of `kind`) matches every criterion.
    pub(crate) fn matches(&self, kind: Kind, record: &Value) -> bool {
        CRITERIA.iter().all(|c| self.passes(*c, kind, record))
    }

    /// Whether a test id is asked and `record` (of `kind`) carries it.
    pub(crate) fn same_test(&self, kind: Kind, record: &Value) -> bool {
        self.test_id.is_some() && self.passes(Criterion::TestId, kind, record)
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
