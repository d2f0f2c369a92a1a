//! For an app's own tests (feature `testing`): wait until a dev collector
//! (`eventwire collect --dev`) holds the events a test expects, without sleeping and
//! polling.
//!
//! [`Expect::events`] asks the collector's `GET /v1/events/wait`, which answers as soon as
//! enough records match. When they do not arrive in time, the error lists what did arrive
//! and each near miss with why it did not match (a dead letter's code and errors, another
//! schema, a missing `test_id`…). Give each test its own id
//! ([`crate::TrackerBuilder::test_id`]) and tests running in parallel against one
//! collector see only their own events.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use eventwire::testing::Expect;
//! let tracker = eventwire::Tracker::builder()
//!     .endpoint("http://127.0.0.1:8080")
//!     .test_id("checkout-flow")
//!     .build()?;
//! tracker.track_json(
//!     "iglu:com.example.web/search/jsonschema/1-0-0",
//!     &serde_json::json!({"query": "x", "results_count": 3}),
//! )?;
//! let events = Expect::at("http://127.0.0.1:8080")
//!     .schema("iglu:com.example.web/search/jsonschema/1-0-0")
//!     .test_id("checkout-flow")
//!     .count(1)
//!     .events()
//!     .await?;
//! assert_eq!(events[0]["data"]["query"], "x");
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// How long [`Expect`] waits by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The collector's wait endpoint, under its base URL.
pub const WAIT_PATH: &str = "/v1/events/wait";

/// Dead letters or good events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Events the collector stored (the default).
    Good,
    /// Events it dead-lettered.
    Bad,
}

/// What a test expects a dev collector to hold: built with [`Expect::at`], then awaited
/// with [`Expect::events`] (or [`Expect::events_blocking`] outside async code).
#[derive(Debug, Clone)]
pub struct Expect {
    collector: String,
    write_key: Option<String>,
    kind: Kind,
    schema: Option<String>,
    test_id: Option<String>,
    event_id: Option<String>,
    label: Option<String>,
    count: usize,
    timeout: Duration,
}

/// Why [`Expect::events`] did not give the events.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExpectError {
    /// Fewer than `wanted` matching records arrived within the timeout.
    Missing {
        /// What was asked, e.g. `3 events (schema=…, test_id=…) within 10s`.
        expected: String,
        /// Good events or dead letters, as asked.
        kind: Kind,
        /// The matching records that did arrive, oldest first.
        arrived: Vec<Value>,
        /// Records that almost matched, closest first.
        near_misses: Vec<NearMiss>,
    },
    /// The collector did not answer as a dev collector does (not started with `--dev`, a
    /// wrong URL, a bad query): the status and its body.
    Collector {
        /// The HTTP status.
        status: u16,
        /// What it said.
        body: String,
    },
    /// The collector could not be reached, or its answer not read.
    Http(String),
    /// The expectation itself is wrong (an empty criterion, which would match anything).
    Invalid(String),
}

/// A record that almost matched, and why it did not.
#[derive(Debug, Clone)]
pub struct NearMiss {
    /// `good` or `bad`.
    pub kind: String,
    /// One reason per criterion it failed.
    pub why: Vec<String>,
    /// The record: the event, or the dead letter (its event under `event`).
    pub record: Value,
}

fn summary(kind: &str, record: &Value) -> String {
    let event = if kind == "bad" {
        record.get("event").unwrap_or(&Value::Null)
    } else {
        record
    };
    let s = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or("?");
    format!("{kind} {} {}", s("event_id"), s("schema"))
}

impl fmt::Display for ExpectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectError::Missing {
                expected,
                kind,
                arrived,
                near_misses,
            } => {
                write!(f, "expected {expected}; {} arrived", arrived.len())?;
                let kind = match kind {
                    Kind::Good => "good",
                    Kind::Bad => "bad",
                };
                for r in arrived {
                    write!(f, "\n  - {}", summary(kind, r))?;
                }
                if near_misses.is_empty() {
                    write!(f, "\nno near misses")?;
                } else {
                    write!(f, "\nnear misses:")?;
                    for m in near_misses {
                        write!(
                            f,
                            "\n  - {}: {}",
                            summary(&m.kind, &m.record),
                            m.why.join("; ")
                        )?;
                    }
                }
                Ok(())
            }
            ExpectError::Collector { status, body } => {
                write!(f, "the collector answered {status}: {}", body.trim())?;
                match status {
                    404 => write!(f, " (is it running with --dev?)"),
                    401 | 403 => write!(f, " (give its write key: Expect::write_key)"),
                    _ => Ok(()),
                }
            }
            ExpectError::Http(e) => write!(f, "the collector could not be asked: {e}"),
            ExpectError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ExpectError {}

impl Expect {
    /// Expects one good event at the collector whose base URL is `collector` (as given to
    /// the tracker's `endpoint`), within [`DEFAULT_TIMEOUT`].
    pub fn at(collector: impl Into<String>) -> Expect {
        Expect {
            collector: collector.into(),
            write_key: None,
            kind: Kind::Good,
            schema: None,
            test_id: None,
            event_id: None,
            label: None,
            count: 1,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The collector's write key, when it has some (`eventwire collect --write-key`): its
    /// dev endpoints answer key holders only.
    pub fn write_key(mut self, key: impl Into<String>) -> Self {
        self.write_key = Some(key.into());
        self
    }

    /// Only events of this Iglu URI.
    pub fn schema(mut self, uri: impl Into<String>) -> Self {
        self.schema = Some(uri.into());
        self
    }

    /// Only events whose `context.test_id` is this.
    pub fn test_id(mut self, id: impl Into<String>) -> Self {
        self.test_id = Some(id.into());
        self
    }

    /// Only the event with this id.
    pub fn event_id(mut self, id: impl Into<String>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    /// Only events with this label: `name=value` (e.g. `service=web`), or a value any of
    /// the four labels holds.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Dead letters instead of good events (a test that bad input is refused).
    pub fn dead_letters(mut self) -> Self {
        self.kind = Kind::Bad;
        self
    }

    /// At least this many (default 1; 0 counts as 1).
    pub fn count(mut self, n: usize) -> Self {
        self.count = n.max(1);
        self
    }

    /// Wait at most this long (default [`DEFAULT_TIMEOUT`], at most 5 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The criteria given, by their names in the wait endpoint's query.
    fn criteria(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("schema", &self.schema),
            ("test_id", &self.test_id),
            ("event_id", &self.event_id),
            ("label", &self.label),
        ]
    }

    fn described(&self) -> String {
        let mut criteria = Vec::new();
        for (name, v) in self.criteria() {
            if let Some(v) = v {
                criteria.push(format!("{name}={v}"));
            }
        }
        let what = match (self.kind, self.count) {
            (Kind::Good, 1) => "1 event".to_owned(),
            (Kind::Good, n) => format!("{n} events"),
            (Kind::Bad, 1) => "1 dead letter".to_owned(),
            (Kind::Bad, n) => format!("{n} dead letters"),
        };
        format!(
            "{what} ({}) within {}",
            if criteria.is_empty() {
                "any".to_owned()
            } else {
                criteria.join(", ")
            },
            humantime_ms(self.timeout)
        )
    }

    fn url(&self) -> Result<reqwest::Url, ExpectError> {
        for (name, v) in self.criteria() {
            if v.as_deref() == Some("") {
                return Err(ExpectError::Invalid(format!(
                    "Expect::{name}(\"\") would match any event: give a value, or leave it out"
                )));
            }
        }
        // The wait endpoint under the collector's base URL; a query it has (a proxy's
        // `?write_key=`) is kept.
        let mut url = reqwest::Url::parse(&self.collector)
            .map_err(|e| ExpectError::Http(format!("{}: {e}", self.collector)))?;
        let path = format!("{}{WAIT_PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        // The base URL's own pairs stay, but not those this expectation sets.
        let ours = [
            "kind", "schema", "test_id", "event_id", "label", "count", "timeout",
        ];
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !ours.contains(&k.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        {
            let mut q = url.query_pairs_mut();
            q.extend_pairs(kept);
            q.append_pair(
                "kind",
                match self.kind {
                    Kind::Good => "good",
                    Kind::Bad => "bad",
                },
            );
            for (name, v) in self.criteria() {
                if let Some(v) = v {
                    q.append_pair(name, v);
                }
            }
            q.append_pair("count", &self.count.to_string());
            q.append_pair("timeout", &format!("{}ms", self.timeout.as_millis()));
        }
        Ok(url)
    }

    /// Waits for the events: `Ok` with every matching record (oldest first, at least
    /// `count`) as soon as they are there, else [`ExpectError::Missing`] at the timeout.
    pub async fn events(&self) -> Result<Vec<Value>, ExpectError> {
        let url = self.url()?;
        let client = reqwest::Client::builder()
            .timeout(self.timeout + Duration::from_secs(10))
            .build()
            .map_err(|e| ExpectError::Http(e.to_string()))?;
        let mut request = client.get(url);
        if let Some(key) = &self.write_key {
            request = request.bearer_auth(key);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| ExpectError::Http(format!("{}: {e}", self.collector)))?;
        let status = answer.status().as_u16();
        let body = answer
            .bytes()
            .await
            .map_err(|e| ExpectError::Http(e.to_string()))?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let events = |v: &Value| -> Vec<Value> {
            v.get("events")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        match (status, parsed) {
            (200, Some(v)) => Ok(events(&v)),
            (408, Some(v)) => Err(ExpectError::Missing {
                expected: self.described(),
                kind: self.kind,
                arrived: events(&v),
                near_misses: v
                    .get("near_misses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|m| NearMiss {
                        kind: m["kind"].as_str().unwrap_or("?").to_owned(),
                        why: m["why"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|w| w.as_str().map(str::to_owned))
                            .collect(),
                        record: m["record"].clone(),
                    })
                    .collect(),
            }),
            _ => Err(ExpectError::Collector {
                status,
                body: String::from_utf8_lossy(&body).chars().take(500).collect(),
            }),
        }
    }

    /// [`Expect::events`] for code outside an async runtime (a plain `#[test]`): runs it on
    /// a runtime of its own. Called inside a runtime, it fails with [`ExpectError::Http`]
    /// rather than block that runtime's thread.
    pub fn events_blocking(&self) -> Result<Vec<Value>, ExpectError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ExpectError::Http(
                "events_blocking() was called inside an async runtime: use .events().await"
                    .to_owned(),
            ));
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ExpectError::Http(e.to_string()))?
            .block_on(self.events())
    }
}

fn humantime_ms(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_query_names_every_criterion_given() {
        let e = Expect::at("http://127.0.0.1:9/")
            .schema("iglu:a/b/jsonschema/1-0-0")
            .test_id("t 1&x")
            .label("service=web")
            .dead_letters()
            .count(0)
            .timeout(Duration::from_millis(1500));
        assert_eq!(
            e.url().unwrap().as_str(),
            "http://127.0.0.1:9/v1/events/wait?kind=bad&schema=iglu%3Aa%2Fb%2Fjsonschema%2F1-0-0&test_id=t+1%26x&label=service%3Dweb&count=1&timeout=1500ms"
        );
        assert_eq!(
            e.described(),
            "1 dead letter (schema=iglu:a/b/jsonschema/1-0-0, test_id=t 1&x, label=service=web) within 1500ms"
        );
        assert_eq!(
            Expect::at("x").count(3).described(),
            "3 events (any) within 10s"
        );
        // Under a path, with a query of its own: both kept.
        assert_eq!(
            Expect::at("https://c.example/collector/?write_key=k&count=9")
                .url()
                .unwrap()
                .as_str(),
            "https://c.example/collector/v1/events/wait?write_key=k&kind=good&count=1&timeout=10000ms"
        );
        assert!(matches!(
            Expect::at("http://127.0.0.1:9").test_id("").url(),
            Err(ExpectError::Invalid(m)) if m.contains("test_id")
        ));
    }

    #[test]
    fn a_missing_event_says_what_arrived_and_why_each_near_miss_missed() {
        let e = ExpectError::Missing {
            expected: "2 events (test_id=t) within 1s".into(),
            kind: Kind::Good,
            arrived: vec![
                serde_json::json!({"event_id": "e-1", "schema": "iglu:a/b/jsonschema/1-0-0"}),
            ],
            near_misses: vec![NearMiss {
                kind: "bad".into(),
                why: vec!["dead-lettered as schema_invalid (/data/q: bad)".into()],
                record: serde_json::json!({"event": {"event_id": "e-2", "schema": "iglu:a/b/jsonschema/1-0-0"}}),
            }],
        };
        assert_eq!(
            e.to_string(),
            "expected 2 events (test_id=t) within 1s; 1 arrived\n  - good e-1 iglu:a/b/jsonschema/1-0-0\nnear misses:\n  - bad e-2 iglu:a/b/jsonschema/1-0-0: dead-lettered as schema_invalid (/data/q: bad)"
        );
    }

    #[test]
    fn dead_letters_that_arrived_are_named_as_dead_letters() {
        let e = ExpectError::Missing {
            expected: "2 dead letters (any) within 1s".into(),
            kind: Kind::Bad,
            arrived: vec![
                serde_json::json!({"code": "schema_invalid", "event": {"event_id": "e-3", "schema": "iglu:a/b/jsonschema/1-0-0"}}),
            ],
            near_misses: vec![],
        };
        assert_eq!(
            e.to_string(),
            "expected 2 dead letters (any) within 1s; 1 arrived\n  - bad e-3 iglu:a/b/jsonschema/1-0-0\nno near misses"
        );
        let e = ExpectError::Collector {
            status: 401,
            body: "unauthorized".into(),
        };
        assert!(e
            .to_string()
            .ends_with("(give its write key: Expect::write_key)"));
        let e = ExpectError::Collector {
            status: 400,
            body: "kind must be…".into(),
        };
        assert_eq!(e.to_string(), "the collector answered 400: kind must be…");
    }
}
