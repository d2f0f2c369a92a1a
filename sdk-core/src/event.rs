//! Typed events and the envelope as bytes.
//!
//! An event is serialised once, on the caller's thread, into the exact JSON that travels in a
//! batch. The worker only concatenates these bytes into bodies, so the per-event size known at
//! `track()` is the size on the wire.

use std::borrow::Cow;

use serde::{Serialize, Serializer};
#[cfg(feature = "native")]
use serde_json::value::RawValue;
use uuid::Uuid;

#[cfg(any(feature = "native", test))]
use crate::protocol::Entity;

pub use eventwire_schema::protocol::SelfDescribing;

/// One event, encoded and waiting for delivery. The failure callback receives these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    pub(crate) id: Uuid,
    pub(crate) schema: Cow<'static, str>,
    pub(crate) json: Vec<u8>,
    /// Admission sequence number (see `ledger`), set when the tracker admits the event.
    pub(crate) seq: u64,
    /// What the sealing thread seals in it (set by `track()`; `No` once sealed).
    #[cfg(feature = "native")]
    pub(crate) seal: crate::seal::Seal,
}

impl EncodedEvent {
    /// Builds an encoded event from its parts; `json` must be the full envelope.
    pub fn new(id: Uuid, schema: impl Into<Cow<'static, str>>, json: Vec<u8>) -> Self {
        EncodedEvent {
            id,
            schema: schema.into(),
            json,
            seq: 0,
            #[cfg(feature = "native")]
            seal: crate::seal::Seal::No,
        }
    }

    /// The event's id (its deduplication key).
    pub fn event_id(&self) -> Uuid {
        self.id
    }

    /// The event's Iglu schema URI.
    pub fn schema(&self) -> &str {
        if self.schema.is_empty() {
            // Read back from a spool: the URI is in the envelope (an Iglu URI has no quote
            // or escape in it), found only when someone asks.
            return schema_in(&self.json).unwrap_or_default();
        }
        &self.schema
    }

    /// The envelope exactly as it travels.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// Size on the wire, in bytes.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Never true for an event built by the tracker.
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }
}

/// The value of the first `"schema":"…"` member of an envelope.
fn schema_in(json: &[u8]) -> Option<&str> {
    const KEY: &[u8] = br#""schema":""#;
    let start = json.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = json[start..].iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&json[start..start + len]).ok()
}

/// A Unix time in milliseconds that serialises as RFC 3339 with milliseconds
/// (`2026-11-26T03:10:25.001Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// `YYYY-MM-DDThh:mm:ss.mmmZ`, formatted without `core::fmt` (the browser build counts
    /// its bytes). Years past 9999 are clamped to 9999-12-31T23:59:59.999Z.
    #[must_use]
    pub fn to_rfc3339(self) -> [u8; 24] {
        const MAX: u64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let ms = self.0.min(MAX);
        let days = ms / 86_400_000;
        let rem = ms % 86_400_000;
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, rem / 3_600_000);
        put(14, 2, rem / 60_000 % 60);
        put(17, 2, rem / 1_000 % 60);
        put(20, 3, rem % 1_000);
        out
    }
}

impl std::fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.to_rfc3339();
        f.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?)
    }
}

impl Serialize for UnixMillis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.to_rfc3339();
        match std::str::from_utf8(&text) {
            Ok(text) => s.serialize_str(text),
            Err(_) => s.collect_str(self),
        }
    }
}

/// The parts of `context` that change rarely, pre-serialised once.
#[cfg(feature = "native")]
#[derive(Debug)]
pub(crate) struct StaticContext {
    pub labels: Box<RawValue>,
    pub library: Box<RawValue>,
    pub test_id: Option<String>,
}

/// The envelope, borrowed; serialises to the same JSON as [`crate::protocol::Event`].
#[cfg(feature = "native")]
#[derive(Serialize)]
pub(crate) struct EnvelopeRef<'a, D: ?Sized + Serialize> {
    pub event_id: Uuid,
    pub schema: &'a str,
    pub data: &'a D,
    pub created_at: UnixMillis,
    #[serde(skip_serializing_if = "<[Entity]>::is_empty")]
    pub entities: &'a [Entity],
    /// The rendered [`ContextRef`].
    pub context: &'a RawValue,
}

#[cfg(feature = "native")]
#[derive(Serialize)]
pub(crate) struct ContextRef<'a> {
    pub labels: &'a RawValue,
    pub library: &'a RawValue,
    pub anonymous_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_id: Option<&'a str>,
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::protocol::{Context, Event, Labels, Library};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn an_event_read_back_without_its_schema_finds_it_in_its_bytes() {
        let json = br#"{"event_id":"x","schema":"iglu:com.example/a_b-c/jsonschema/1-0-0","data":{"schema":"no"}}"#;
        let e = EncodedEvent::new(Uuid::nil(), "", json.to_vec());
        assert_eq!(e.schema(), "iglu:com.example/a_b-c/jsonschema/1-0-0");
        let named = EncodedEvent::new(Uuid::nil(), "iglu:x/y/jsonschema/1-0-0", json.to_vec());
        assert_eq!(named.schema(), "iglu:x/y/jsonschema/1-0-0");
        assert_eq!(
            EncodedEvent::new(Uuid::nil(), "", b"{}".to_vec()).schema(),
            ""
        );
    }

    #[test]
    fn the_formatter_agrees_with_humantime_across_four_centuries() {
        let mut ms: u64 = 0;
        while ms < 13_000_000_000_000 {
            let ours = UnixMillis(ms).to_string();
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(
                ours,
                humantime::format_rfc3339_millis(t).to_string(),
                "{ms}"
            );
            ms += 86_400_000 * 37 + 3_600_000 * 5 + 61_001;
        }
        for ms in [0, 951_782_400_000, 4_107_542_399_999, 253_402_300_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(
                UnixMillis(ms).to_string(),
                humantime::format_rfc3339_millis(t).to_string()
            );
        }
        assert_eq!(
            &UnixMillis(u64::MAX).to_rfc3339(),
            b"9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_millis() {
        assert_eq!(UnixMillis(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            UnixMillis(1_795_662_625_001).to_string(),
            "2026-11-26T03:10:25.001Z"
        );
        assert_eq!(
            serde_json::to_string(&UnixMillis(1_795_662_625_001)).unwrap(),
            "\"2026-11-26T03:10:25.001Z\""
        );
        assert_eq!(
            UnixMillis(1_795_662_625_001).to_string().len(),
            crate::batch::TIMESTAMP_LEN
        );
    }

    #[test]
    fn borrowed_envelope_matches_owned_event() {
        let labels = Labels {
            environment: Some("prod".into()),
            service: Some("web".into()),
            team: None,
            version: Some("3f2c1aa".into()),
        };
        let library = Library {
            name: "eventwire-rust".into(),
            version: "0.1.0".into(),
        };
        let ctx = StaticContext {
            labels: serde_json::value::to_raw_value(&labels).unwrap(),
            library: serde_json::value::to_raw_value(&library).unwrap(),
            test_id: None,
        };
        let id = Uuid::now_v7();
        let data = serde_json::json!({"media_id": "b0074dlv", "position_s": 12.5});
        let entities = [Entity {
            schema: "iglu:com.example.media/player/jsonschema/1-0-0".into(),
            data: serde_json::json!({"kind": "video"}),
        }];
        for (entities, user_id, test_id) in [
            (&entities[..], Some("u-1"), Some("t-1")),
            (&[][..], None, None),
        ] {
            let envelope = EnvelopeRef {
                event_id: id,
                schema: "iglu:com.example.media/play/jsonschema/1-0-0",
                data: &data,
                created_at: UnixMillis(1_795_662_625_001),
                entities,
                context: &serde_json::value::to_raw_value(&ContextRef {
                    labels: &ctx.labels,
                    library: &ctx.library,
                    anonymous_id: "anon",
                    user_id,
                    session_id: Some("s-1"),
                    test_id,
                })
                .unwrap(),
            };
            let bytes = serde_json::to_vec(&envelope).unwrap();
            let owned = Event {
                event_id: id,
                schema: "iglu:com.example.media/play/jsonschema/1-0-0".into(),
                data: data.clone(),
                created_at: "2026-11-26T03:10:25.001Z".into(),
                entities: entities.to_vec(),
                context: Context {
                    labels: labels.clone(),
                    library: library.clone(),
                    anonymous_id: "anon".into(),
                    user_id: user_id.map(Into::into),
                    session_id: Some("s-1".into()),
                    test_id: test_id.map(Into::into),
                },
            };
            assert_eq!(bytes, serde_json::to_vec(&owned).unwrap());
            let back: Event = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(back, owned);
        }
    }
}
