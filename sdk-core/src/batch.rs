//! Batch limits (count, bytes, delay) and how a batch body is written.
//!
//! The byte accounting is exact: [`body_overhead`] plus each envelope and its separator is the
//! length of the body [`encode_body`] writes, so the outbox (`crate::outbox`), which cuts
//! batches by it, never exceeds the collector's body limit.

use std::time::Duration;

pub use crate::defaults::{
    DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_DELAY, DEFAULT_MAX_BATCH_EVENTS,
};

/// Length of the `sent_at` timestamp: `2026-11-26T03:10:26.123Z`.
pub const TIMESTAMP_LEN: usize = 24;

/// Limits that cut a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// A batch holds at most this many events.
    pub max_events: usize,
    /// A batch body (uncompressed) is at most this many bytes.
    pub max_bytes: usize,
    /// An event waits at most this long for its batch to fill.
    pub max_delay: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_events: DEFAULT_MAX_BATCH_EVENTS,
            max_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_delay: DEFAULT_MAX_BATCH_DELAY,
        }
    }
}

/// Bytes a body spends on everything but the events themselves (with no events).
///
/// `{"sent_at":"<24>","write_key":<json string>,"events":[]}`
pub fn body_overhead(write_key_json_len: Option<usize>) -> usize {
    const FIXED: usize = r#"{"sent_at":"","events":[]}"#.len() + TIMESTAMP_LEN;
    FIXED + write_key_json_len.map_or(0, |n| r#","write_key":"#.len() + n)
}

/// Writes a batch body around already-encoded events.
///
/// `write_key_json` is the write key as a JSON string literal (quotes included), when it
/// travels in the body.
pub fn encode_body<'a>(
    sent_at: &[u8],
    write_key_json: Option<&str>,
    events: impl IntoIterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(br#"{"sent_at":""#);
    out.extend_from_slice(sent_at);
    out.push(b'"');
    if let Some(key) = write_key_json {
        out.extend_from_slice(br#","write_key":"#);
        out.extend_from_slice(key.as_bytes());
    }
    out.extend_from_slice(br#","events":["#);
    for (i, event) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(event);
    }
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT_AT: &str = "2026-11-26T03:10:26.123Z";

    fn body_len(events: &[Vec<u8>], key: Option<&str>) -> usize {
        let mut out = Vec::new();
        encode_body(
            SENT_AT.as_bytes(),
            key,
            events.iter().map(Vec::as_slice),
            &mut out,
        );
        out.len()
    }

    #[test]
    fn overhead_matches_encoded_body() {
        assert_eq!(body_overhead(None), body_len(&[], None));
        assert_eq!(body_overhead(Some(5)), body_len(&[], Some("\"k3y\"")));
        let mut out = Vec::new();
        encode_body(
            SENT_AT.as_bytes(),
            Some("\"k\""),
            [&b"{}"[..], b"[1]"],
            &mut out,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"sent_at": SENT_AT, "write_key": "k", "events": [{}, [1]]})
        );
    }
}
