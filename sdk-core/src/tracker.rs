//! The tracker handle: `track()` on the caller's thread (envelope, identity, admission to the
//! queue), `flush`, `shutdown` and `stats`. The builder (`builder`) makes it and starts the
//! worker (`worker`); the handle and the worker share only `shared`.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

pub use crate::defaults::{
    DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_QUEUE_BYTES, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_SPOOL_MAX_BYTES,
};
pub use crate::errors::{BuildError, FlushError, ShutdownError, TrackError};
use crate::event::{
    ContextRef, EncodedEvent, EnvelopeRef, SelfDescribing, StaticContext, UnixMillis,
};
use crate::iglu::SchemaKey;
use crate::protocol::{Entity, Event, Labels, Library};
use crate::seal::{NoKey, PiiPolicy, Seal};
use crate::session::{EventIdentity, Identity};
use crate::shared::{unix_ms_now, Control, Shared};
use crate::stats::{DropReason, Stats};

/// The library name sent in `context.library.name`.
pub const LIBRARY_NAME: &str = "eventwire-rust";
/// Extra time a blocking `flush`/`shutdown` waits past its timeout for the worker's answer.
const REPLY_GRACE: Duration = Duration::from_millis(250);

/// A hook that sees every event before it is queued and may change it (except its
/// `event_id`) or drop it (`None`). Runs on the caller's thread.
pub type BeforeSend = dyn Fn(Event) -> Option<Event> + Send + Sync;

/// What `track` does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Drop the new event and count it (`DropReason::QueueFull`). Never blocks.
    #[default]
    DropNew,
    /// Wait up to this long for room, then drop and count.
    Block(Duration),
}

/// The event tracker: cheap to clone, `Send + Sync`, never blocks on I/O.
///
/// See the [crate docs](crate) for a quickstart and the delivery guarantees.
#[derive(Clone)]
pub struct Tracker {
    pub(crate) inner: Arc<Inner>,
}

/// The handle's state, shared by its clones (built by the builder).
pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) data_tx: flume::Sender<EncodedEvent>,
    pub(crate) control_tx: flume::Sender<Control>,
    pub(crate) worker: Mutex<Option<JoinHandle<()>>>,
    pub(crate) closed: AtomicBool,
    pub(crate) identity: Mutex<IdentityState>,
    pub(crate) context: StaticContext,
    pub(crate) labels: Labels,
    pub(crate) library: Library,
    pub(crate) max_event_bytes: usize,
    pub(crate) max_queue_bytes: usize,
    /// Wake the worker every this many queued events…
    pub(crate) wake_events: usize,
    /// …or every this many queued bytes.
    pub(crate) wake_bytes: usize,
    pub(crate) when_full: WhenFull,
    pub(crate) before_send: Option<Arc<BeforeSend>>,
    /// Last envelope size, to allocate the next one's buffer once.
    pub(crate) size_hint: AtomicUsize,
    /// With a spool: the cap on bytes of undelivered events it keeps.
    pub(crate) spool_max_bytes: Option<u64>,
    /// Personal data: the key, the marks, and whether marked fields may go in clear.
    pub(crate) pii: Arc<PiiPolicy>,
}

/// The identity and its last rendered `context` object.
pub(crate) struct IdentityState {
    pub(crate) identity: Identity,
    pub(crate) rendered: Option<(EventIdentity, Arc<RawValue>)>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("labels", &self.inner.labels)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// Tracks a typed event. Returns its `event_id`.
    pub fn track<E: SelfDescribing>(&self, event: E) -> Result<Uuid, TrackError> {
        self.track_with(event, &[])
    }

    /// Tracks a typed event with entities attached.
    pub fn track_with<E: SelfDescribing>(
        &self,
        event: E,
        entities: &[Entity],
    ) -> Result<Uuid, TrackError> {
        // The schema is a constant: checked once, at compile time.
        if !const { crate::iglu::is_valid_uri(E::SCHEMA) } {
            check_uri(E::SCHEMA)?;
        }
        self.track_data(Cow::Borrowed(E::SCHEMA), E::PII, &event, entities)
    }

    /// Tracks an event given as a schema URI and JSON data (no generated type needed).
    pub fn track_json(&self, schema: &str, data: &Value) -> Result<Uuid, TrackError> {
        self.track_data(Cow::Owned(schema.to_owned()), &[], data, &[])
    }

    /// Tracks a dynamic event with entities attached.
    pub fn track_json_with(
        &self,
        schema: &str,
        data: &Value,
        entities: &[Entity],
    ) -> Result<Uuid, TrackError> {
        self.track_data(Cow::Owned(schema.to_owned()), &[], data, entities)
    }

    /// `pii`: the personal-data marks of a generated type (empty for JSON data).
    fn track_data<D: Serialize + ?Sized>(
        &self,
        schema: Cow<'static, str>,
        pii: &'static [&'static str],
        data: &D,
        entities: &[Entity],
    ) -> Result<Uuid, TrackError> {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Relaxed) {
            inner.shared.counters.refused(DropReason::ShutDown);
            return Err(TrackError::ShutDown);
        }
        if let Cow::Owned(uri) = &schema {
            check_uri(uri)?;
        }
        for entity in entities {
            check_uri(&entity.schema)?;
        }
        let event_id = Uuid::now_v7();
        // `created_at` is the id's own timestamp: one clock read, and the two always agree.
        let now = event_id
            .get_timestamp()
            .map(|t| {
                let (secs, nanos) = t.to_unix();
                secs * 1000 + u64::from(nanos) / 1_000_000
            })
            .unwrap_or_else(unix_ms_now);
        let context = self.context_at(now)?;
        let envelope = EnvelopeRef {
            event_id,
            schema: &schema,
            data,
            created_at: UnixMillis(now),
            entities,
            context: &context,
        };
        let event = match &inner.before_send {
            None => {
                let seal = self.seal_plan(&schema, pii, entities)?;
                let mut json = Vec::with_capacity(inner.size_hint.load(Ordering::Relaxed));
                serde_json::to_writer(&mut json, &envelope)?;
                inner.size_hint.store(json.len() + 64, Ordering::Relaxed);
                let mut event = EncodedEvent::new(event_id, schema, json);
                event.seal = seal;
                event
            }
            Some(hook) => {
                let event: Event = serde_json::from_slice(&serde_json::to_vec(&envelope)?)?;
                let Some(mut event) = hook(event) else {
                    inner.shared.counters.filtered();
                    return Err(TrackError::Filtered);
                };
                // The id is the tracker's: the deduplication key, and the spool's index.
                event.event_id = event_id;
                check_uri(&event.schema)?;
                // The hook may have changed the schema: a type's marks are its schema's.
                let pii = if event.schema == *schema { pii } else { &[] };
                let seal = self.seal_plan(&event.schema, pii, &event.entities)?;
                let json = serde_json::to_vec(&event)?;
                let mut encoded = EncodedEvent::new(event.event_id, event.schema, json);
                encoded.seal = seal;
                encoded
            }
        };
        if event.len() > inner.max_event_bytes {
            inner.shared.counters.refused(DropReason::TooLarge);
            return Err(TrackError::TooLarge {
                size: event.len(),
                limit: inner.max_event_bytes,
            });
        }
        self.enqueue(event)
    }

    /// What the sealing thread does with an event of `schema` (a generated type's marks:
    /// `pii`) with `entities`; refuses (counted) when it has marks and no key is configured.
    fn seal_plan(
        &self,
        schema: &str,
        pii: &'static [&'static str],
        entities: &[Entity],
    ) -> Result<Seal, TrackError> {
        self.inner
            .pii
            .plan(schema, pii, entities)
            .map_err(|NoKey(schema)| {
                self.inner.shared.counters.refused(DropReason::PiiUnsealed);
                TrackError::PiiWithoutKey { schema }
            })
    }

    /// The `context` object for an event at `now_ms`, rendered once per identity: it changes
    /// only when the session, the user or the anonymous id does.
    fn context_at(&self, now_ms: u64) -> Result<Arc<RawValue>, serde_json::Error> {
        let mut state = self.identity_state();
        let who = state.identity.touch(now_ms, || Uuid::new_v4().to_string());
        if let Some((rendered_for, raw)) = &state.rendered {
            if *rendered_for == who {
                return Ok(raw.clone());
            }
        }
        let context = &self.inner.context;
        let raw: Arc<RawValue> = serde_json::value::to_raw_value(&ContextRef {
            labels: &context.labels,
            library: &context.library,
            anonymous_id: &who.anonymous_id,
            user_id: who.user_id.as_deref(),
            session_id: Some(&who.session_id),
            test_id: context.test_id.as_deref(),
        })?
        .into();
        state.rendered = Some((who, raw.clone()));
        Ok(raw)
    }

    fn enqueue(&self, mut event: EncodedEvent) -> Result<Uuid, TrackError> {
        let inner = &*self.inner;
        let counters = &inner.shared.counters;
        let id = event.event_id();
        let size = event.len();
        if let Some(max) = inner.spool_max_bytes {
            let live = &inner.shared.spool_live_bytes;
            let before = live.fetch_add(size as u64, Ordering::Relaxed);
            if before.saturating_add(size as u64) > max {
                live.fetch_sub(size as u64, Ordering::Relaxed);
                counters.refused(DropReason::SpoolFull);
                return Err(TrackError::SpoolFull);
            }
        }
        let queued = inner.shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if queued + size > inner.max_queue_bytes {
            inner.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.release_spool_bytes(size);
            counters.refused(DropReason::QueueFull);
            return Err(TrackError::QueueFull);
        }
        // Admit before the closed check and before the hand-off: a flush or shutdown that
        // starts now counts this event and waits for it (see `shutdown`).
        let seq = counters.admit();
        event.seq = seq;
        let result = if inner.closed.load(Ordering::SeqCst) {
            Err(DropReason::ShutDown)
        } else {
            match inner.when_full {
                WhenFull::DropNew => inner.data_tx.try_send(event).map_err(|e| match e {
                    flume::TrySendError::Full(_) => DropReason::QueueFull,
                    flume::TrySendError::Disconnected(_) => DropReason::ShutDown,
                }),
                WhenFull::Block(timeout) => {
                    inner
                        .data_tx
                        .send_timeout(event, timeout)
                        .map_err(|e| match e {
                            flume::SendTimeoutError::Timeout(_) => DropReason::QueueFull,
                            flume::SendTimeoutError::Disconnected(_) => DropReason::ShutDown,
                        })
                }
            }
        };
        match result {
            Ok(()) if inner.spool_max_bytes.is_some() => {
                // The spool thread passes it on to the worker, and wakes it.
                counters.enqueued();
                Ok(id)
            }
            Ok(()) => {
                counters.enqueued();
                // Wake the worker only when a batch opens (it must start the batch's timer) or
                // a batch's worth is waiting; otherwise its timer or a later wake covers it.
                // The worker may have taken (and uncounted) the event already: the counter
                // can be below zero for a moment, so wrap rather than overflow.
                let unsent = inner
                    .shared
                    .unsent
                    .fetch_add(1, Ordering::AcqRel)
                    .wrapping_add(1);
                let crossed = queued / inner.wake_bytes != (queued + size) / inner.wake_bytes;
                if unsent == 1 || unsent.is_multiple_of(inner.wake_events) || crossed {
                    inner.shared.wake.notify_one();
                    #[cfg(test)]
                    inner.shared.wakes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(id)
            }
            Err(reason) => {
                inner.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                self.release_spool_bytes(size);
                counters.dropped(reason, 1);
                // Settled out of order (older events may be in flight): a flush waiting for
                // the older ones is not answered by this one (see `ledger`), but one waiting
                // for this very event is, and the worker may be asleep.
                counters.ledger.settle([seq]);
                inner.shared.wake.notify_one();
                Err(match reason {
                    DropReason::QueueFull => TrackError::QueueFull,
                    _ => TrackError::ShutDown,
                })
            }
        }
    }

    /// Gives back the spool room reserved for an event that did not get in.
    fn release_spool_bytes(&self, size: usize) {
        if self.inner.spool_max_bytes.is_some() {
            self.inner
                .shared
                .spool_live_bytes
                .fetch_sub(size as u64, Ordering::Relaxed);
        }
    }

    /// Sets (or clears, with `None`) the signed-in user for the next events.
    pub fn set_user_id(&self, user_id: Option<String>) {
        self.identity_state().identity.set_user_id(user_id);
    }

    /// Forgets the user (sign-out): a new anonymous id, no user id, a new session.
    pub fn reset(&self) {
        self.identity_state()
            .identity
            .reset(Uuid::new_v4().to_string());
    }

    /// The anonymous id currently attached to events (persist it to keep it across runs).
    pub fn anonymous_id(&self) -> String {
        self.identity_state().identity.anonymous_id().to_owned()
    }

    fn identity_state(&self) -> std::sync::MutexGuard<'_, IdentityState> {
        self.inner
            .identity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The labels attached to every event.
    pub fn labels(&self) -> &Labels {
        &self.inner.labels
    }

    /// The library name and version sent in `context.library`.
    pub fn library(&self) -> &Library {
        &self.inner.library
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.shared.counters.snapshot()
    }

    /// Waits until every event tracked before this call is answered for (sent, rejected or
    /// dropped with a reason), or until `timeout`. Blocks the calling thread only; safe inside
    /// any async runtime (use [`Tracker::flush_async`] there to avoid blocking it).
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let reply = self.request_flush(timeout)?;
        wait_reply(&reply, timeout).unwrap_or_else(|| Err(self.flush_timeout()))
    }

    /// [`Tracker::flush`] for async callers: awaits without blocking the runtime; works on
    /// any executor (the worker enforces the timeout).
    pub async fn flush_async(&self, timeout: Duration) -> Result<(), FlushError> {
        let reply = self.request_flush(timeout)?;
        match reply.recv_async().await {
            Ok(result) => result,
            Err(_) => Err(self.flush_timeout()),
        }
    }

    fn request_flush(
        &self,
        timeout: Duration,
    ) -> Result<flume::Receiver<Result<(), FlushError>>, FlushError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(FlushError::AlreadyShutdown);
        }
        let (reply, rx) = flume::bounded(1);
        let target = self.inner.shared.counters.ledger.admitted();
        let control = Control::Flush {
            target,
            deadline: Instant::now() + timeout,
            reply,
        };
        self.inner
            .control_tx
            .send(control)
            .map_err(|_| FlushError::AlreadyShutdown)?;
        Ok(rx)
    }

    fn flush_timeout(&self) -> FlushError {
        FlushError::Timeout {
            pending: self.inner.shared.counters.pending(),
        }
    }

    /// Delivers what is pending (up to `timeout`), then stops the worker. Events still
    /// pending at the timeout are counted as `DropReason::ShutDown` and passed to the failure
    /// callback. Later `track` calls return [`TrackError::ShutDown`].
    pub fn shutdown(&self, timeout: Duration) -> Result<(), ShutdownError> {
        let reply = self.inner.request_shutdown(timeout)?;
        let result = wait_reply(&reply, timeout).unwrap_or(Err(ShutdownError::Timeout {
            dropped: self.inner.shared.counters.pending(),
        }));
        self.inner.join_worker();
        result
    }

    /// [`Tracker::shutdown`] for async callers (does not join the worker thread, which exits
    /// right after answering).
    pub async fn shutdown_async(&self, timeout: Duration) -> Result<(), ShutdownError> {
        let reply = self.inner.request_shutdown(timeout)?;
        match reply.recv_async().await {
            Ok(result) => result,
            Err(_) => Err(ShutdownError::Timeout {
                dropped: self.inner.shared.counters.pending(),
            }),
        }
    }

    /// A guard that shuts the tracker down (delivering what is pending, up to `timeout`) when
    /// it is dropped. Keep it alive for as long as the program tracks events:
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let tracker = eventwire::Tracker::builder().endpoint("http://127.0.0.1:8080").build()?;
    /// let _guard = tracker.shutdown_guard(std::time::Duration::from_secs(5));
    /// // … track events …
    /// # Ok(()) }
    /// ```
    pub fn shutdown_guard(&self, timeout: Duration) -> ShutdownGuard {
        ShutdownGuard {
            tracker: self.clone(),
            timeout,
        }
    }
}

fn check_uri(uri: &str) -> Result<(), TrackError> {
    SchemaKey::validate(uri).map_err(|cause| TrackError::InvalidSchema {
        uri: uri.to_owned(),
        cause,
    })
}

fn wait_reply<T>(reply: &flume::Receiver<T>, timeout: Duration) -> Option<T> {
    reply.recv_timeout(timeout.saturating_add(REPLY_GRACE)).ok()
}

impl Inner {
    /// Closes the tracker and asks the worker to deliver what is pending by `timeout`, then
    /// stop. The receiver gets the outcome.
    fn request_shutdown(
        &self,
        timeout: Duration,
    ) -> Result<flume::Receiver<Result<(), ShutdownError>>, ShutdownError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Err(ShutdownError::AlreadyShutdown);
        }
        let (reply, rx) = flume::bounded(1);
        // SeqCst with `enqueue`: every event that saw `closed == false` was admitted before
        // this load, so the target covers it.
        let target = self.shared.counters.ledger.admitted();
        let control = Control::Shutdown {
            target,
            deadline: Instant::now() + timeout,
            reply,
        };
        self.control_tx
            .send(control)
            .map_err(|_| ShutdownError::AlreadyShutdown)?;
        Ok(rx)
    }

    /// Waits for the worker thread to end (it ends right after answering a shutdown).
    fn join_worker(&self) {
        let handle = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("the eventwire worker thread panicked");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: deliver what is pending rather than lose it quietly.
        if let Ok(reply) = self.request_shutdown(DEFAULT_SHUTDOWN_TIMEOUT) {
            if let Some(Err(e)) = wait_reply(&reply, DEFAULT_SHUTDOWN_TIMEOUT) {
                tracing::warn!(error = %e, "tracker dropped");
            }
        }
        self.join_worker();
    }
}

/// Shuts the tracker down when dropped; see [`Tracker::shutdown_guard`].
#[must_use = "the guard shuts the tracker down when dropped; bind it: `let _guard = …`"]
#[derive(Debug)]
pub struct ShutdownGuard {
    tracker: Tracker,
    timeout: Duration,
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        match self.tracker.shutdown(self.timeout) {
            Ok(()) | Err(ShutdownError::AlreadyShutdown) => {}
            Err(e) => tracing::warn!(error = %e, "eventwire shutdown"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly on purpose

    use super::*;

    /// `track()` wakes the worker when a batch opens or fills, not per event: events the
    /// worker has moved into its outbox still count as queued until a batch is cut.
    #[test]
    fn track_wakes_the_worker_per_batch_not_per_event() {
        let tracker = Tracker::builder()
            .transport(crate::NoopTransport)
            .max_batch_events(100)
            .max_batch_delay(Duration::from_millis(20))
            .queue_capacity(100_000)
            .build()
            .unwrap();
        let n = 20_000;
        for i in 0..n {
            tracker
                .track_json(
                    "iglu:com.example/e/jsonschema/1-0-0",
                    &serde_json::json!({ "i": i }),
                )
                .unwrap();
        }
        tracker.flush(Duration::from_secs(20)).unwrap();
        let wakes = tracker.inner.shared.wakes.load(Ordering::Relaxed);
        // A batch opening and a batch filling: about two per 100 events, not one per event.
        assert!(wakes <= n / 100 * 3, "{wakes} wakes for {n} events");
        assert_eq!(tracker.stats().sent, n);
    }
}
