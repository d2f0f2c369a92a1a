//! Accounting: every event the tracker is given ends in exactly one final count.
//!
//! ```text
//! given to track()     = tracked + refused at track()  (queue_full, too_large, shut_down, spool_full, pii_unsealed)
//! tracked + recovered  = sent + rejected + dropped after enqueue + kept_in_spool + pending
//! ```
//!
//! `too_large` and `pii_unsealed` count both: refusals at `track()` and drops on the tracker's
//! thread (an event over a limit once sealed, a sealing that failed).
//!
//! `recovered` and `kept_in_spool` are zero without a spool: with one, the events a tracker
//! leaves on disk at shutdown (`kept_in_spool`) are the next tracker's `recovered`.
//!
//! Counters are atomics, so the caller's thread, the worker and `stats()` never take a lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[cfg(feature = "native")]
use crate::event::EncodedEvent;
use crate::ledger::Ledger;

/// Why an event was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// The queue was full (or stayed full for the blocking timeout) when `track()` was called.
    QueueFull,
    /// The event was over the per-event size limit (at `track()`, or once its personal data
    /// was sealed), or the collector answered 413 for it alone.
    TooLarge,
    /// The collector answered 401/403: the write key is missing or unknown.
    Unauthorized,
    /// The collector answered 415: it does not accept the request's encoding.
    Unsupported,
    /// The collector answered another status that retrying will not change (404, 422, …).
    HttpStatus,
    /// The retry deadline passed while the collector kept failing (never with a spool: the
    /// events wait on disk instead).
    RetryExpired,
    /// The tracker shut down (or its shutdown timed out) before the event was delivered.
    /// With a spool, only events that were not on disk: the others are counted in
    /// [`Stats::kept_in_spool`].
    ShutDown,
    /// The spool held its byte cap of undelivered events when `track()` was called (the
    /// collector has been unreachable for long).
    SpoolFull,
    /// The disk refused to store an event that the memory queue had no room for either, or
    /// an event waiting on disk could not be read back (its bytes were damaged).
    SpoolError,
    /// The user opted out (browser package): the queue was cleared.
    OptedOut,
    /// The endpoint did not answer as an eventwire collector: a redirect, a 2xx other than
    /// 200, or a 200 that is not a batch answer for the events sent (a mistyped URL landing
    /// on a web site, a proxy). Logged at error level with the endpoint.
    NotACollector,
    /// The event has personal data (fields its schema marks `"x-pii": true`) that could not
    /// be sealed: no public key is configured (`track()` refused it), or sealing failed.
    /// Nothing of it was sent.
    PiiUnsealed,
}

impl DropReason {
    /// Every reason, in a stable order.
    pub const ALL: [DropReason; 12] = [
        DropReason::QueueFull,
        DropReason::TooLarge,
        DropReason::Unauthorized,
        DropReason::Unsupported,
        DropReason::HttpStatus,
        DropReason::RetryExpired,
        DropReason::ShutDown,
        DropReason::SpoolFull,
        DropReason::SpoolError,
        DropReason::OptedOut,
        DropReason::NotACollector,
        DropReason::PiiUnsealed,
    ];

    /// A short snake_case name, for logs and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::TooLarge => "too_large",
            DropReason::Unauthorized => "unauthorized",
            DropReason::Unsupported => "unsupported_encoding",
            DropReason::HttpStatus => "http_status",
            DropReason::RetryExpired => "retry_expired",
            DropReason::ShutDown => "shut_down",
            DropReason::SpoolFull => "spool_full",
            DropReason::SpoolError => "spool_error",
            DropReason::OptedOut => "opted_out",
            DropReason::NotACollector => "not_a_collector",
            DropReason::PiiUnsealed => "pii_unsealed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the failure callback is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The tracker gave the events up; see [`DropReason`].
    Dropped(DropReason),
    /// The collector dead-lettered the events with this code (`schema_invalid`, …, or
    /// `malformed` for a 400). They are in its dead-letter sink; resending would not help.
    Rejected(String),
}

/// A snapshot of the tracker's counters. See the module docs for how they add up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events accepted by `track()` into the queue.
    pub tracked: u64,
    /// Events the collector answered for as accepted (including duplicates).
    pub sent: u64,
    /// Of `sent`, events the collector had already seen (a retry after a lost answer).
    pub duplicates: u64,
    /// Events the collector dead-lettered (per-event rejections, or a 400 for the batch).
    pub rejected: u64,
    /// Events not delivered, by reason: `(reason, count)` for every reason, in
    /// [`DropReason::ALL`] order.
    pub dropped: Vec<(DropReason, u64)>,
    /// Events dropped on purpose by the `before_send` hook (not a failure).
    pub filtered: u64,
    /// Tracked events not yet answered for: queued, batching, or in flight.
    pub pending: u64,
    /// Requests sent, including retries.
    pub requests: u64,
    /// Requests that were retries of an earlier failed request.
    pub retries: u64,
    /// Times the collector asked the tracker to slow down (429/503).
    pub throttled: u64,
    /// Body bytes put on the wire (after compression).
    pub bytes_sent: u64,
    /// Events found undelivered in the spool when the tracker started, and queued again.
    pub recovered: u64,
    /// Events still undelivered at shutdown and left in the spool for the next tracker.
    pub kept_in_spool: u64,
    /// Spool records skipped at start because their checksum did not match.
    pub spool_corrupt_records: u64,
    /// Spool bytes cut at start after a torn or damaged record header.
    pub spool_corrupt_bytes: u64,
    /// Events the disk refused to store (still delivered from memory, but not durable).
    pub spool_write_errors: u64,
    /// Group commits the disk refused (a failed write or fsync): the events they covered are
    /// still pending and delivered from memory, but were not durable at that commit.
    pub spool_commit_errors: u64,
}

impl Stats {
    /// Events dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// All drops, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub struct Counters {
    /// Events handed to the queue, numbered *before* the hand-off so that a flush never misses
    /// one (each is later settled exactly once), and which of them are settled.
    pub(crate) ledger: Ledger,
    /// Admitted events that reached a final state.
    pub(crate) settled: AtomicU64,
    tracked: AtomicU64,
    sent: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    filtered: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    bytes_sent: AtomicU64,
    recovered: AtomicU64,
    kept_in_spool: AtomicU64,
    spool_corrupt_records: AtomicU64,
    spool_corrupt_bytes: AtomicU64,
    spool_write_errors: AtomicU64,
    spool_commit_errors: AtomicU64,
}

impl Counters {
    /// A snapshot.
    pub fn snapshot(&self) -> Stats {
        let admitted = self.ledger.admitted();
        let settled = self.settled.load(Relaxed);
        Stats {
            tracked: self.tracked.load(Relaxed),
            sent: self.sent.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            dropped: DropReason::ALL
                .iter()
                .map(|r| (*r, self.dropped[r.index()].load(Relaxed)))
                .collect(),
            filtered: self.filtered.load(Relaxed),
            pending: admitted.saturating_sub(settled),
            requests: self.requests.load(Relaxed),
            retries: self.retries.load(Relaxed),
            throttled: self.throttled.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            recovered: self.recovered.load(Relaxed),
            kept_in_spool: self.kept_in_spool.load(Relaxed),
            spool_corrupt_records: self.spool_corrupt_records.load(Relaxed),
            spool_corrupt_bytes: self.spool_corrupt_bytes.load(Relaxed),
            spool_write_errors: self.spool_write_errors.load(Relaxed),
            spool_commit_errors: self.spool_commit_errors.load(Relaxed),
        }
    }

    /// Calls `f` with each counter of [`Stats`] in a fixed order — `tracked`, `sent`,
    /// `duplicates`, `rejected`, `filtered`, `pending`, `requests`, `retries`, `throttled`,
    /// `bytes_sent`, `recovered`, then the drops in [`DropReason::ALL`] order — without
    /// building a snapshot (the browser package names them in JavaScript).
    pub fn each(&self, mut f: impl FnMut(u64)) {
        let counters = [
            &self.tracked,
            &self.sent,
            &self.duplicates,
            &self.rejected,
            &self.filtered,
        ];
        for c in counters {
            f(c.load(Relaxed));
        }
        f(self.pending());
        for c in [
            &self.requests,
            &self.retries,
            &self.throttled,
            &self.bytes_sent,
            &self.recovered,
        ] {
            f(c.load(Relaxed));
        }
        for c in &self.dropped {
            f(c.load(Relaxed));
        }
    }

    /// Counts an event refused by `track()` before it was admitted.
    pub fn refused(&self, reason: DropReason) {
        self.dropped[reason.index()].fetch_add(1, Relaxed);
    }

    /// Counts an event dropped by the `before_send` hook.
    pub fn filtered(&self) {
        self.filtered.fetch_add(1, Relaxed);
    }

    /// Counts an event admitted to the queue; pair with [`Counters::enqueued`] or
    /// [`Counters::dropped`]. Returns its admission sequence number.
    pub fn admit(&self) -> u64 {
        self.ledger.admit()
    }

    /// Marks these admitted events settled (after counting them with [`Counters::sent`],
    /// [`Counters::rejected`], [`Counters::dropped`] or [`Counters::kept_in_spool`]), so
    /// that a flush waiting for them can answer.
    #[cfg(feature = "native")]
    pub(crate) fn mark_settled(&self, events: &[EncodedEvent]) {
        self.ledger.settle(events.iter().map(|e| e.seq));
    }

    /// The admitted event is in the queue.
    pub fn enqueued(&self) {
        self.tracked.fetch_add(1, Relaxed);
    }

    /// `n` admitted events were answered for as accepted, `duplicates` of them as duplicates.
    pub fn sent(&self, n: u64, duplicates: u64) {
        self.sent.fetch_add(n, Relaxed);
        self.duplicates.fetch_add(duplicates.min(n), Relaxed);
        self.settled.fetch_add(n, Relaxed);
    }

    /// `n` admitted events were dead-lettered by the collector.
    pub fn rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Relaxed);
        self.settled.fetch_add(n, Relaxed);
    }

    /// `n` admitted events were given up for `reason`.
    pub fn dropped(&self, reason: DropReason, n: u64) {
        self.dropped[reason.index()].fetch_add(n, Relaxed);
        self.settled.fetch_add(n, Relaxed);
    }

    /// A request of `bytes` body bytes was sent; `retry` when it repeats a failed one.
    pub fn request(&self, bytes: usize, retry: bool) {
        self.requests.fetch_add(1, Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Relaxed);
        if retry {
            self.retries.fetch_add(1, Relaxed);
        }
    }

    /// `n` events came back from the spool at start (admitted, like tracked ones), with what
    /// the recovery skipped. Returns the first of their admission sequence numbers.
    pub fn recovered(&self, n: u64, corrupt_records: u64, corrupt_bytes: u64) -> u64 {
        self.recovered.fetch_add(n, Relaxed);
        let first = self.ledger.admit_many(n);
        self.spool_corrupt_records
            .fetch_add(corrupt_records, Relaxed);
        self.spool_corrupt_bytes.fetch_add(corrupt_bytes, Relaxed);
        first
    }

    /// `n` admitted events are left in the spool at shutdown, for the next tracker.
    pub fn kept_in_spool(&self, n: u64) {
        self.kept_in_spool.fetch_add(n, Relaxed);
        self.settled.fetch_add(n, Relaxed);
    }

    /// The disk refused to store an event.
    pub fn spool_write_error(&self) {
        self.spool_write_errors.fetch_add(1, Relaxed);
    }

    /// A group commit of the spool failed.
    pub fn spool_commit_error(&self) {
        self.spool_commit_errors.fetch_add(1, Relaxed);
    }

    /// The collector asked to slow down.
    pub fn throttled(&self) {
        self.throttled.fetch_add(1, Relaxed);
    }

    /// Admitted events not yet settled.
    pub fn pending(&self) -> u64 {
        self.ledger
            .admitted()
            .saturating_sub(self.settled.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let c = Counters::default();
        for _ in 0..10 {
            c.admit();
            c.enqueued();
        }
        c.admit(); // admitted, then the queue turned out to be full
        c.dropped(DropReason::QueueFull, 1);
        c.refused(DropReason::TooLarge);
        c.sent(6, 2);
        c.rejected(1);
        c.dropped(DropReason::RetryExpired, 1);
        c.recovered(3, 1, 10); // three from a spool: admitted, not tracked
        c.kept_in_spool(2);
        let s = c.snapshot();
        assert_eq!((s.recovered, s.kept_in_spool), (3, 2));
        assert_eq!((s.spool_corrupt_records, s.spool_corrupt_bytes), (1, 10));
        assert_eq!(s.tracked, 10);
        assert_eq!(s.sent, 6);
        assert_eq!(s.duplicates, 2);
        assert_eq!(s.rejected, 1);
        assert_eq!(s.dropped(DropReason::QueueFull), 1);
        assert_eq!(s.dropped(DropReason::TooLarge), 1);
        assert_eq!(s.dropped(DropReason::RetryExpired), 1);
        assert_eq!(s.dropped_total(), 3);
        assert_eq!(s.pending, 3); // 10 + 1 + 3 admitted, 6 + 1 + 2 + 2 settled
        assert_eq!(s.dropped.len(), DropReason::ALL.len());
    }

    #[test]
    fn each_walks_the_snapshot_in_its_documented_order() {
        let c = Counters::default();
        for _ in 0..7 {
            c.admit();
            c.enqueued();
        }
        c.sent(3, 1);
        c.rejected(1);
        c.filtered();
        c.request(100, true);
        c.throttled();
        c.recovered(2, 0, 0);
        c.dropped(DropReason::NotACollector, 1);
        c.refused(DropReason::QueueFull);
        let s = c.snapshot();
        let mut seen = Vec::new();
        c.each(|n| seen.push(n));
        let mut expected = vec![
            s.tracked,
            s.sent,
            s.duplicates,
            s.rejected,
            s.filtered,
            s.pending,
            s.requests,
            s.retries,
            s.throttled,
            s.bytes_sent,
            s.recovered,
        ];
        expected.extend(s.dropped.iter().map(|(_, n)| *n));
        assert_eq!(seen, expected);
        assert_eq!(
            seen,
            [7, 3, 1, 1, 1, 4, 1, 1, 1, 100, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
        );
    }

    #[test]
    fn reasons_index_their_slots() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
