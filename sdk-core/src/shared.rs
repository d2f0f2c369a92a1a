//! What the tracker handles, the worker and the spool thread share: the counters and queue
//! gauges, the worker's wake-up, the control messages, and the failure callback. Nothing
//! here depends on the handle, the builder or the worker; the handle, the worker and the
//! spool thread import this, not each other (the builder, above them, imports all three).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::errors::{FlushError, ShutdownError};
use crate::event::EncodedEvent;
use crate::stats::{Counters, FailureReason};

/// Called with events that were not delivered, and why. Runs on the tracker's worker; keep it
/// short. A panic inside it is caught and logged.
pub type FailureCallback = dyn Fn(&FailureReason, &[EncodedEvent]) + Send + Sync;

/// State shared by the tracker handles and the worker.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub counters: Counters,
    /// Bytes of events not yet in a batch: in the queue or the outbox's queue (the batch
    /// filling), bounded by the builder's `max_queue_bytes`.
    pub queued_bytes: AtomicUsize,
    /// Events not yet handed to delivery.
    pub unsent: AtomicUsize,
    /// With a spool: bytes of the undelivered events it keeps (its cap is checked by
    /// `track()`, and acknowledgements give room back).
    pub spool_live_bytes: std::sync::atomic::AtomicU64,
    /// Wakes the worker. `track()` uses it only when a batch opens or fills, not per event:
    /// a wake-up is a syscall, and most events need none.
    pub wake: tokio::sync::Notify,
    /// Wakes sent by `track()` (tests: a wake per batch, not per event).
    #[cfg(test)]
    pub wakes: std::sync::atomic::AtomicU64,
}

pub(crate) enum Control {
    Flush {
        target: u64,
        deadline: Instant,
        reply: flume::Sender<Result<(), FlushError>>,
    },
    Shutdown {
        target: u64,
        deadline: Instant,
        reply: flume::Sender<Result<(), ShutdownError>>,
    },
}

/// The wall clock in Unix milliseconds.
pub(crate) fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Calls the failure callback, containing a panic inside it.
pub(crate) fn notify(
    callback: Option<&FailureCallback>,
    reason: &FailureReason,
    events: &[EncodedEvent],
) {
    if let Some(callback) = callback {
        if catch_unwind(AssertUnwindSafe(|| callback(reason, events))).is_err() {
            tracing::error!("the failure callback panicked; continuing");
        }
    }
}
