//! Batch assembly: when to cut a batch (count, bytes, delay) and how its body is written.
//!
//! Pure: the caller passes the current time in milliseconds. The byte accounting is exact: the
//! size [`Batcher`] tracks is the length of the body [`encode_body`] writes, so a batch never
//! exceeds the collector's body limit.

use std::time::Duration;

/// Default maximum number of events in one batch.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 500;
/// Default maximum size of one request body before compression (the collector's limit).
pub const DEFAULT_MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Default maximum time an event waits in a batch that is not yet full.
pub const DEFAULT_MAX_BATCH_DELAY: Duration = Duration::from_millis(1000);

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
    sent_at: &str,
    write_key_json: Option<&str>,
    events: impl IntoIterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(br#"{"sent_at":""#);
    out.extend_from_slice(sent_at.as_bytes());
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

/// Accumulates events into batches.
#[derive(Debug)]
pub struct Batcher<T> {
    limits: BatchLimits,
    overhead: usize,
    items: Vec<T>,
    body_bytes: usize,
    opened_at_ms: Option<u64>,
}

impl<T> Batcher<T> {
    /// A batcher whose bodies spend `overhead` bytes besides the events (see [`body_overhead`]).
    pub fn new(limits: BatchLimits, overhead: usize) -> Self {
        Batcher {
            limits,
            overhead,
            items: Vec::new(),
            body_bytes: overhead,
            opened_at_ms: None,
        }
    }

    /// The largest single event that fits in a batch.
    pub fn max_event_bytes(&self) -> usize {
        self.limits.max_bytes.saturating_sub(self.overhead)
    }

    /// Adds an event of `size` encoded bytes, tracked at `now_ms`.
    ///
    /// Returns the batch that had to be cut first because this event would not fit in it.
    /// After pushing, check [`Batcher::is_full`]: a batch that reached its count or byte limit
    /// should be taken and sent.
    pub fn push(&mut self, item: T, size: usize, now_ms: u64) -> Option<Vec<T>> {
        let separator = usize::from(!self.items.is_empty());
        let cut = if !self.items.is_empty()
            && self.body_bytes + separator + size > self.limits.max_bytes
        {
            Some(self.take())
        } else {
            None
        };
        let separator = usize::from(!self.items.is_empty());
        self.body_bytes += separator + size;
        self.items.push(item);
        self.opened_at_ms.get_or_insert(now_ms);
        cut
    }

    /// True when the batch reached its count limit or cannot take even a one-byte event.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.limits.max_events || self.body_bytes + 2 > self.limits.max_bytes
    }

    /// When the current batch must be sent, in the clock of `push`; `None` when empty.
    pub fn deadline_ms(&self) -> Option<u64> {
        let delay = u64::try_from(self.limits.max_delay.as_millis()).unwrap_or(u64::MAX);
        self.opened_at_ms.map(|t| t.saturating_add(delay))
    }

    /// True when the current batch is non-empty and its delay has passed.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.deadline_ms().is_some_and(|d| now_ms >= d)
    }

    /// Takes the current batch, leaving the batcher empty.
    pub fn take(&mut self) -> Vec<T> {
        self.body_bytes = self.overhead;
        self.opened_at_ms = None;
        std::mem::take(&mut self.items)
    }

    /// Number of events waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no event waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Body size of the current batch if sent now.
    pub fn body_bytes(&self) -> usize {
        self.body_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT_AT: &str = "2026-11-26T03:10:26.123Z";

    fn limits(max_events: usize, max_bytes: usize) -> BatchLimits {
        BatchLimits {
            max_events,
            max_bytes,
            max_delay: Duration::from_millis(500),
        }
    }

    fn body_len(events: &[Vec<u8>], key: Option<&str>) -> usize {
        let mut out = Vec::new();
        encode_body(SENT_AT, key, events.iter().map(Vec::as_slice), &mut out);
        out.len()
    }

    #[test]
    fn overhead_matches_encoded_body() {
        assert_eq!(body_overhead(None), body_len(&[], None));
        assert_eq!(body_overhead(Some(5)), body_len(&[], Some("\"k3y\"")));
        let mut out = Vec::new();
        encode_body(SENT_AT, Some("\"k\""), [&b"{}"[..], b"[1]"], &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"sent_at": SENT_AT, "write_key": "k", "events": [{}, [1]]})
        );
    }

    #[test]
    fn cuts_by_count() {
        let mut b = Batcher::new(limits(3, 10_000), body_overhead(None));
        for i in 0..3 {
            assert!(b.push(i, 10, 0).is_none());
        }
        assert!(b.is_full());
        assert_eq!(b.take(), vec![0, 1, 2]);
        assert!(b.is_empty() && !b.is_full());
    }

    #[test]
    fn cuts_by_bytes_exactly_at_the_limit() {
        let overhead = body_overhead(None);
        // Two 10-byte events and a comma: exactly at the limit.
        let max = overhead + 10 + 1 + 10;
        let mut b = Batcher::new(limits(100, max), overhead);
        assert!(b.push("a", 10, 0).is_none());
        assert!(b.push("b", 10, 0).is_none());
        assert_eq!(b.body_bytes(), max);
        assert!(b.is_full(), "no room for another event");
        // A third does not fit: the first two are cut, the third opens a batch.
        assert_eq!(b.push("c", 10, 5), Some(vec!["a", "b"]));
        assert_eq!(b.len(), 1);
        assert_eq!(b.deadline_ms(), Some(505));
        // One byte over: cut before.
        let mut b = Batcher::new(limits(100, max - 1), overhead);
        assert!(b.push("a", 10, 0).is_none());
        assert_eq!(b.push("b", 10, 0), Some(vec!["a"]));
    }

    #[test]
    fn an_event_at_the_single_event_limit_fits_alone() {
        let overhead = body_overhead(None);
        let mut b = Batcher::new(limits(100, overhead + 50), overhead);
        assert_eq!(b.max_event_bytes(), 50);
        assert!(b.push(1, 50, 0).is_none());
        assert_eq!(b.body_bytes(), overhead + 50);
        assert!(b.is_full());
    }

    #[test]
    fn byte_accounting_equals_encoded_length() {
        let key = Some("\"secret\"");
        let overhead = body_overhead(key.map(str::len));
        let mut b = Batcher::new(limits(1000, 4096), overhead);
        let mut sent = Vec::new();
        let mut seed = 7u64;
        for i in 0..500 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = 2 + (seed >> 33) as usize % 300;
            let event = format!("[{}]", "7".repeat(len - 2)).into_bytes();
            let expected = b.body_bytes() + usize::from(!b.is_empty()) + len;
            if let Some(batch) = b.push(event.clone(), len, i) {
                sent.push(batch);
            } else {
                assert_eq!(b.body_bytes(), expected);
            }
        }
        sent.push(b.take());
        for batch in &sent {
            let n = body_len(batch, key);
            assert!(n <= 4096, "{n}");
        }
        let total: usize = sent.iter().map(Vec::len).sum();
        assert_eq!(total, 500);
    }

    #[test]
    fn delay_deadline() {
        let mut b = Batcher::new(limits(10, 10_000), body_overhead(None));
        assert_eq!(b.deadline_ms(), None);
        assert!(!b.is_due(u64::MAX));
        b.push((), 3, 1_000);
        b.push((), 3, 1_400);
        assert_eq!(b.deadline_ms(), Some(1_500));
        assert!(!b.is_due(1_499));
        assert!(b.is_due(1_500));
        b.take();
        assert_eq!(b.deadline_ms(), None);
    }
}
