//! The native worker: one named thread that owns a current-thread tokio runtime and runs the
//! drain loop. It never touches the caller's runtime, so `flush` and `shutdown` work the same
//! from `fn main`, a multi-thread runtime or a current-thread runtime.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant as TokioInstant;

use crate::errors::{FlushError, ShutdownError};
use crate::event::EncodedEvent;
use crate::outbox::{self, Outbox, Outcome, Settled, Take};
use crate::protocol::BatchResponse;
use crate::seal::{PiiPolicy, Resized, Seal};
use crate::shared::{notify, unix_ms_now, Control, FailureCallback, Shared};
use crate::spooler::{SpoolCtl, SpoolLink};
use crate::stats::{Counters, DropReason, FailureReason};
use crate::transport::{LocalBoxFuture, Request, Response, Transport, TransportError};

/// How long the worker keeps draining stragglers after shutdown (events admitted just before
/// the tracker closed and still on their way into the queue).
const STRAGGLER_GRACE: Duration = Duration::from_millis(500);

struct FlushWaiter {
    target: u64,
    deadline: TokioInstant,
    reply: flume::Sender<Result<(), FlushError>>,
}

struct ShutdownWaiter {
    target: u64,
    deadline: TokioInstant,
    reply: flume::Sender<Result<(), ShutdownError>>,
}

/// Flush and shutdown requests waiting for the queue to drain.
struct Waiters {
    flushes: Vec<FlushWaiter>,
    shutdown: Option<ShutdownWaiter>,
    /// False once every tracker handle is gone: the control channel is then not polled again.
    control_open: bool,
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters {
            flushes: Vec::new(),
            shutdown: None,
            control_open: true,
        }
    }
}

impl Waiters {
    fn register(&mut self, control: Control) {
        match control {
            Control::Flush {
                target,
                deadline,
                reply,
            } => self.flushes.push(FlushWaiter {
                target,
                deadline: deadline.into(),
                reply,
            }),
            Control::Shutdown {
                target,
                deadline,
                reply,
            } => {
                if self.shutdown.is_none() {
                    self.shutdown = Some(ShutdownWaiter {
                        target,
                        deadline: deadline.into(),
                        reply,
                    });
                } else {
                    let _ = reply.send(Err(ShutdownError::AlreadyShutdown));
                }
            }
        }
    }

    /// Takes a control message; `None` means every tracker handle is gone without a shutdown
    /// (the public API shuts down on the last drop, so this is a safety net): shut down then.
    fn on_control(&mut self, control: Option<Control>, counters: &Counters) {
        match control {
            Some(control) => self.register(control),
            None => {
                self.control_open = false;
                let (reply, _) = flume::bounded(1);
                self.register(Control::Shutdown {
                    target: counters.ledger.admitted(),
                    deadline: Instant::now() + crate::defaults::DEFAULT_SHUTDOWN_TIMEOUT,
                    reply,
                });
            }
        }
    }

    fn draining(&self) -> bool {
        !self.flushes.is_empty() || self.shutdown.is_some()
    }

    fn next_deadline(&self) -> Option<TokioInstant> {
        self.flushes
            .iter()
            .map(|w| w.deadline)
            .chain(self.shutdown.as_ref().map(|w| w.deadline))
            .min()
    }

    /// Answers the flushes whose events are all settled, and those past their deadline.
    fn resolve_flushes(&mut self, counters: &Counters) {
        // The low-water mark, not a count: events settle out of order (see `ledger`).
        let low = counters.ledger.low_water();
        let now = TokioInstant::now();
        self.flushes.retain(|w| {
            if low >= w.target {
                let _ = w.reply.send(Ok(()));
                false
            } else if now >= w.deadline {
                let pending = counters.pending();
                let _ = w.reply.send(Err(FlushError::Timeout { pending }));
                false
            } else {
                true
            }
        });
    }

    fn shutdown_expired(&self) -> bool {
        self.shutdown
            .as_ref()
            .is_some_and(|w| TokioInstant::now() >= w.deadline)
    }
}

/// A request on its way: the batch's id and how it ended.
type Sending = LocalBoxFuture<'static, (u32, Result<Response, TransportError>)>;

pub(crate) struct Worker {
    pub shared: Arc<Shared>,
    pub data_rx: flume::Receiver<EncodedEvent>,
    pub control_rx: flume::Receiver<Control>,
    /// The delivery engine: batches, the window in flight, the retry schedule.
    pub outbox: Outbox<EncodedEvent>,
    pub transport: Arc<dyn Transport>,
    pub gzip_min_bytes: Option<usize>,
    pub write_key: Option<Arc<str>>,
    pub on_failure: Option<Arc<FailureCallback>>,
    pub spool: Option<SpoolLink>,
    /// The origin of the outbox's monotonic milliseconds.
    pub origin: Instant,
    /// Seals personal data of the events it pulls (without a spool; with one, the spool
    /// thread has sealed them).
    pub pii: Arc<PiiPolicy>,
    /// The per-event limit, checked again after sealing.
    pub max_event_bytes: usize,
    /// What was said about failing deliveries, to say it again only at a sane rate.
    pub problems: crate::problem::Reports,
}

impl Worker {
    /// Runs the drain loop until shutdown (or until every tracker handle is gone).
    pub async fn run(mut self) {
        let mut waiters = Waiters::default();
        let mut sending: FuturesUnordered<Sending> = FuturesUnordered::new();
        loop {
            waiters.resolve_flushes(&self.shared.counters);
            if waiters.shutdown_expired() {
                break;
            }
            // Queued events move into the outbox a batch at a time, so the queue's bounds
            // also bound what the worker holds; requests leave while the window has room.
            let now = self.now_ms();
            let mode = if waiters.draining() {
                Take::Flush
            } else {
                Take::Due
            };
            self.pull(now);
            while let Some(request) = self.take(now, mode) {
                sending.push(self.send(request));
                self.pull(now);
            }
            if let Some(shutdown) = &waiters.shutdown {
                let ledger = &self.shared.counters.ledger;
                if ledger.settled_up_to(shutdown.target) && self.outbox.is_empty() {
                    break;
                }
            }
            let due = self
                .outbox
                .due(now, mode)
                .map(|ms| TokioInstant::now() + Duration::from_millis(ms));
            let waiter_due = waiters.next_deadline();
            tokio::select! {
                biased;
                Some((id, result)) = sending.next(), if !sending.is_empty() => {
                    self.settle(id, &result);
                }
                control = self.control_rx.recv_async(), if waiters.control_open => {
                    waiters.on_control(control.ok(), &self.shared.counters);
                }
                () = self.shared.wake.notified() => {}
                () = sleep_until(due), if due.is_some() => {}
                () = sleep_until(waiter_due), if waiter_due.is_some() => {}
            }
        }
        // Requests still on their way are abandoned: their events are in the outbox, and
        // `finish` settles them.
        drop(sending);
        self.finish(waiters).await;
    }

    /// Monotonic milliseconds since the worker started.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Moves queued events into the outbox while a request could leave and it holds less than
    /// a full batch.
    fn pull(&mut self, now_ms: u64) {
        while self.outbox.wants_events(now_ms) {
            let Ok(mut event) = self.data_rx.try_recv() else {
                return;
            };
            if self.sealed(&mut event) {
                self.outbox.push(event, now_ms);
            }
        }
    }

    /// Seals what `track()` planned, accounting for the new size; false when the event was
    /// given up instead (over the per-event limit once sealed, or sealing failed).
    fn sealed(&self, event: &mut EncodedEvent) -> bool {
        if event.seal == Seal::No {
            return true; // nearly every event: no work, no counter touched
        }
        let (resized, verdict) = self.pii.seal_within(event, self.max_event_bytes);
        let queued = &self.shared.queued_bytes;
        match resized {
            Resized::Grew(n) => queued.fetch_add(n, Ordering::Relaxed),
            Resized::Shrank(n) => queued.fetch_sub(n, Ordering::Relaxed),
        };
        let Err(reason) = verdict else {
            return true;
        };
        let event = std::slice::from_ref(event);
        self.hand_off(event);
        self.fail(FailureReason::Dropped(reason), event);
        false
    }

    /// The outbox's next request, accounting for the events it cut from its queue into a
    /// new batch as handed off (the outbox's queue counts as the queue, as the open batch
    /// did: `track()` wakes the worker when a batch opens or fills, not per event).
    fn take(&mut self, now_ms: u64, mode: Take) -> Option<outbox::Request> {
        let before = self.outbox.queued();
        let request = self.outbox.take(now_ms, unix_ms_now(), mode, 0);
        let after = self.outbox.queued();
        let events = before.0 - after.0;
        // The outbox counts each envelope plus one.
        self.hand_off_counts(events, before.1 - after.1 - events);
        request
    }

    /// Accounts for events leaving the queue's bounds.
    fn hand_off(&self, events: &[EncodedEvent]) {
        let bytes: usize = events.iter().map(EncodedEvent::len).sum();
        self.hand_off_counts(events.len(), bytes);
    }

    fn hand_off_counts(&self, events: usize, bytes: usize) {
        if events > 0 {
            self.shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.shared.unsent.fetch_sub(events, Ordering::AcqRel);
        }
    }

    /// Gzips a request when it is large enough, counts it and starts sending it.
    fn send(&self, request: outbox::Request) -> Sending {
        let (body, gzip) = maybe_gzip(request.body, self.gzip_min_bytes);
        self.shared.counters.request(body.len(), request.retry);
        let transport = Arc::clone(&self.transport);
        let request_id = request.id;
        let request = Request {
            body,
            gzip,
            write_key: self.write_key.clone(),
            events: request.events,
        };
        Box::pin(async move { (request_id, transport.send(request).await) })
    }

    /// Settles the answer to request `id` in the outbox, then counts, logs and reports what
    /// became of its events.
    fn settle(&mut self, id: u32, result: &Result<Response, TransportError>) {
        let outcome = match result {
            Ok(r) if r.location.is_some() && !(300..400).contains(&r.status) => Outcome::Redirected,
            Ok(r) => Outcome::Answered {
                status: r.status,
                retry_after: r.retry_after.as_deref(),
                answer: (r.status == 200 && !r.truncated)
                    .then(|| serde_json::from_slice(&r.body).ok())
                    .flatten(),
            },
            Err(TransportError::Timeout) => Outcome::Timeout,
            Err(TransportError::Network(_)) => Outcome::Network,
        };
        let (now, unix) = (self.now_ms(), unix_ms_now());
        self.say_problem(result, now);
        let Some(settled) = self.outbox.settle(id, outcome, now, unix, fastrand::f64()) else {
            return;
        };
        match settled {
            Settled::Answered { events, answer } => self.settle_answer(events, &answer),
            Settled::Rejected { events } => {
                tracing::warn!(
                    events = events.len(),
                    "collector answered 400 (malformed): it dead-lettered the whole batch"
                );
                self.fail(FailureReason::Rejected("malformed".into()), &events);
            }
            Settled::Dropped { reason, events } => {
                self.log_drop(reason, result, events.len());
                self.fail(FailureReason::Dropped(reason), &events);
            }
            Settled::Again { wait_ms, throttled } => {
                let wait = Duration::from_millis(wait_ms);
                if throttled {
                    self.shared.counters.throttled();
                    tracing::info!(?wait, "collector asked to slow down; pausing delivery");
                } else {
                    match result {
                        Ok(r) => {
                            tracing::debug!(status = r.status, ?wait, "collector failed; retrying")
                        }
                        Err(e) => tracing::debug!(error = %e, ?wait, "send failed; retrying"),
                    }
                }
            }
            Settled::Split => {
                tracing::debug!("collector answered 413: splitting the batch");
            }
        }
    }

    /// Says what keeps batches from being delivered (at the first failure, when it changes,
    /// and at most every 30 s while it lasts), and when delivery works again.
    fn say_problem(&mut self, result: &Result<Response, TransportError>, now: u64) {
        let endpoint = self.transport.endpoint().unwrap_or("the collector");
        let said = match (result, crate::problem::describe(endpoint, result)) {
            (_, Some(problem)) => {
                let waiting = self.shared.counters.pending();
                self.problems.failed(&problem, now, waiting)
            }
            (Ok(r), None) if r.status == 200 && r.location.is_none() => self.problems.answered(now),
            _ => None,
        };
        match said {
            Some(crate::problem::Say::Failing(text)) => {
                tracing::warn!("cannot deliver events: {text}");
            }
            Some(crate::problem::Say::Recovered(text)) => tracing::info!("{text}"),
            None => {}
        }
    }

    /// Logs why events are given up, with what the endpoint answered.
    fn log_drop(
        &self,
        reason: DropReason,
        result: &Result<Response, TransportError>,
        events: usize,
    ) {
        let status = result.as_ref().map_or(0, |r| r.status);
        match reason {
            DropReason::Unauthorized => tracing::error!(
                events,
                "collector refused the write key (401/403): events dropped; check the tracker's write key"
            ),
            DropReason::NotACollector => tracing::error!(
                endpoint = self.transport.endpoint().unwrap_or("(custom transport)"),
                answer = %answer_summary(result, events),
                events,
                "the endpoint did not answer as an eventwire collector: events dropped (not_a_collector); check the tracker's endpoint (the collector's base URL, no redirect)"
            ),
            DropReason::HttpStatus | DropReason::Unsupported => tracing::error!(
                status,
                events,
                "collector answered with a status that retrying cannot fix: events dropped"
            ),
            DropReason::TooLarge => tracing::warn!(
                events,
                "collector answered 413 for a single event: dropped as too large"
            ),
            DropReason::RetryExpired => {
                tracing::warn!(events, "retry deadline passed: events dropped");
            }
            _ => {}
        }
    }

    /// Settles a batch by the collector's answer: rejected events are reported, the rest sent.
    fn settle_answer(&self, batch: Vec<EncodedEvent>, answer: &BatchResponse) {
        let counters = &self.shared.counters;
        let seqs: Vec<u64> = batch.iter().map(|e| e.seq).collect();
        let mut codes: Vec<Option<&str>> = vec![None; batch.len()];
        for r in &answer.rejected {
            if let Some(slot) = codes.get_mut(r.index) {
                *slot = Some(&r.code);
            }
        }
        let mut rejected: BTreeMap<&str, Vec<EncodedEvent>> = BTreeMap::new();
        let mut accepted = Vec::with_capacity(batch.len());
        for (event, code) in batch.into_iter().zip(codes) {
            match code {
                Some(code) => rejected.entry(code).or_default().push(event),
                None => accepted.push(event),
            }
        }
        // Each event is told settled once: the accepted here, the rejected by `fail`.
        self.forget(&accepted);
        counters.sent(accepted.len() as u64, answer.duplicates);
        for (code, events) in rejected {
            tracing::warn!(
                code,
                events = events.len(),
                "collector dead-lettered events"
            );
            self.fail(FailureReason::Rejected(code.to_owned()), &events);
        }
        counters.ledger.settle(seqs);
    }

    /// Settles `events` as not delivered and tells the callback.
    fn fail(&self, reason: FailureReason, events: &[EncodedEvent]) {
        if events.is_empty() {
            return;
        }
        let counters = &self.shared.counters;
        self.forget(events);
        let n = events.len() as u64;
        match &reason {
            FailureReason::Dropped(r) => counters.dropped(*r, n),
            FailureReason::Rejected(_) => counters.rejected(n),
        }
        // Reported before it counts as settled: a flush that returns has seen its callbacks.
        notify(self.on_failure.as_deref(), &reason, events);
        counters.mark_settled(events);
    }

    /// Tells the spool that these events are answered for, so that it forgets them.
    fn forget(&self, events: &[EncodedEvent]) {
        if let Some(link) = &self.spool {
            // Room under the spool's cap comes back now, before the flush that waits for
            // these events can answer (the spool thread forgets them a moment later).
            let bytes: usize = events.iter().map(EncodedEvent::len).sum();
            self.shared
                .spool_live_bytes
                .fetch_sub(bytes as u64, Ordering::Relaxed);
            let ids = events.iter().map(|e| e.event_id().as_u128()).collect();
            let _ = link.ctl.send(SpoolCtl::Ack(ids));
        }
    }

    /// Settles whatever is left as shut down, answers the shutdown request and exits.
    async fn finish(mut self, mut waiters: Waiters) {
        let counters = &self.shared.counters;
        // Flushes whose events are all answered get `Ok`; the others end with the shutdown
        // (`AlreadyShutdown`, below): what they waited for is left on disk or given up now,
        // and neither is delivery.
        waiters.resolve_flushes(counters);
        if let Some(link) = &self.spool {
            // No more feeding: what is only on disk stays there for the next tracker.
            let (reply, done) = flume::bounded(1);
            if link.ctl.send(SpoolCtl::Close(reply)).is_ok() {
                let _ = done.recv_async().await;
            }
        }
        let (events, bytes) = self.outbox.queued();
        self.hand_off_counts(events, bytes - events);
        let mut abandoned = self.outbox.drain();
        // Stragglers: events admitted before the tracker closed may still be on their way in.
        let grace_end = Instant::now() + STRAGGLER_GRACE;
        loop {
            let stragglers: Vec<EncodedEvent> = self.data_rx.drain().collect();
            self.hand_off(&stragglers);
            abandoned.extend(stragglers);
            // Every admitted event is settled or abandoned (each is exactly one of them).
            let settled = counters.settled.load(Ordering::SeqCst) + abandoned.len() as u64;
            if settled >= counters.ledger.admitted() || Instant::now() >= grace_end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if let Some(link) = self.spool.take() {
            let (reply, answer) = flume::bounded(1);
            let ids = abandoned.iter().map(|e| e.event_id().as_u128()).collect();
            let finish = SpoolCtl::Finish {
                abandoned: ids,
                reply,
            };
            let durable = match link.ctl.send(finish) {
                Ok(()) => answer.recv_async().await.unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            if link.thread.join().is_err() {
                tracing::error!("the eventwire spool thread panicked");
            }
            let mut flags = durable.into_iter();
            let (kept, lost): (Vec<EncodedEvent>, Vec<EncodedEvent>) = abandoned
                .into_iter()
                .partition(|_| flags.next().unwrap_or(false));
            abandoned = lost;
            if !kept.is_empty() {
                tracing::info!(
                    events = kept.len(),
                    "undelivered events left in the spool for the next start"
                );
                counters.kept_in_spool(kept.len() as u64);
                counters.mark_settled(&kept);
            }
        }
        let lost = abandoned.len() as u64;
        if lost > 0 {
            tracing::warn!(
                events = lost,
                "tracker shut down before these events were delivered"
            );
            counters.dropped(DropReason::ShutDown, lost);
            notify(
                self.on_failure.as_deref(),
                &FailureReason::Dropped(DropReason::ShutDown),
                &abandoned,
            );
            counters.mark_settled(&abandoned);
        }
        for w in waiters.flushes.drain(..) {
            let _ = w.reply.send(Err(FlushError::AlreadyShutdown));
        }
        if let Some(w) = waiters.shutdown.take() {
            let result = if lost == 0 {
                Ok(())
            } else {
                Err(ShutdownError::Timeout { dropped: lost })
            };
            let _ = w.reply.send(result);
        }
        // Late control requests get a clear answer rather than a hang.
        for control in self.control_rx.drain() {
            match control {
                Control::Flush { reply, .. } => {
                    let _ = reply.send(Err(FlushError::AlreadyShutdown));
                }
                Control::Shutdown { reply, .. } => {
                    let _ = reply.send(Err(ShutdownError::AlreadyShutdown));
                }
            }
        }
    }
}

/// The body gzipped when it has at least `min` bytes (`None`: never), and whether it is.
#[cfg(feature = "gzip")]
fn maybe_gzip(body: Vec<u8>, min: Option<usize>) -> (Vec<u8>, bool) {
    use std::io::Write;
    match min {
        Some(min) if body.len() >= min => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            match encoder.write_all(&body).and_then(|()| encoder.finish()) {
                Ok(gz) => (gz, true),
                // Writing to a Vec cannot fail; if it did, send uncompressed.
                Err(_) => (body, false),
            }
        }
        _ => (body, false),
    }
}

#[cfg(not(feature = "gzip"))]
fn maybe_gzip(body: Vec<u8>, _min: Option<usize>) -> (Vec<u8>, bool) {
    (body, false)
}

/// What an endpoint answered, for the log line of a `not_a_collector` drop.
fn answer_summary(result: &Result<Response, TransportError>, events: usize) -> String {
    match result {
        Ok(r) => match &r.location {
            Some(to) if (300..400).contains(&r.status) => {
                format!("{} redirect to {to:?}", r.status)
            }
            Some(from) => format!("{} from {from:?} after a redirect", r.status),
            None if r.status == 200 => format!(
                "200 with a body that is not a batch answer for {events} events: {}",
                excerpt(&r.body)
            ),
            None => format!("{}: {}", r.status, excerpt(&r.body)),
        },
        Err(e) => e.to_string(),
    }
}

/// The start of an answer's body, for a log line (a web page can be long).
fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 120;
    if body.is_empty() {
        return "(empty body)".to_owned();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > MAX {
        format!("{text:?}…")
    } else {
        format!("{text:?}")
    }
}

async fn sleep_until(deadline: Option<TokioInstant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
