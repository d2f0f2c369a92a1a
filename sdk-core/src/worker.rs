//! The native worker: one named thread that owns a current-thread tokio runtime and runs the
//! drain loop. It never touches the caller's runtime, so `flush` and `shutdown` work the same
//! from `fn main`, a multi-thread runtime or a current-thread runtime.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::time::Instant as TokioInstant;

use crate::batch::Batcher;
use crate::delivery::{notify, Delivery, FailureCallback, InFlight, Platform};
use crate::event::EncodedEvent;
use crate::policy::RetryPolicy;
use crate::spooler::{SpoolCtl, SpoolLink};
use crate::stats::{Counters, DropReason, FailureReason};
use crate::tracker::{FlushError, ShutdownError};
use crate::transport::{LocalBoxFuture, Transport};

/// How long the worker keeps draining stragglers after shutdown (events admitted just before
/// the tracker closed and still on their way into the queue).
const STRAGGLER_GRACE: Duration = Duration::from_millis(500);

/// State shared by the tracker handles and the worker.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub counters: Counters,
    /// Bytes of events not yet handed to delivery: in the queue or the open batch (bounded
    /// by the builder's `max_queue_bytes`).
    pub queued_bytes: AtomicUsize,
    /// Events not yet handed to delivery.
    pub unsent: AtomicUsize,
    /// With a spool: bytes of the undelivered events it keeps (its cap is checked by
    /// `track()`, and acknowledgements give room back).
    pub spool_live_bytes: std::sync::atomic::AtomicU64,
    /// Wakes the worker. `track()` uses it only when a batch opens or fills, not per event:
    /// a wake-up is a syscall, and most events need none.
    pub wake: tokio::sync::Notify,
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
                    deadline: Instant::now() + crate::tracker::DEFAULT_SHUTDOWN_TIMEOUT,
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

pub(crate) struct NativePlatform {
    origin: Instant,
}

impl Platform for NativePlatform {
    fn now_unix_ms(&self) -> u64 {
        unix_ms_now()
    }

    fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn jitter(&self) -> f64 {
        fastrand::f64()
    }
}

/// The wall clock in Unix milliseconds.
pub(crate) fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) struct Worker {
    pub shared: Arc<Shared>,
    pub data_rx: flume::Receiver<EncodedEvent>,
    pub control_rx: flume::Receiver<Control>,
    pub batcher: Batcher<EncodedEvent>,
    pub transport: Arc<dyn Transport>,
    pub retry: RetryPolicy,
    pub gzip_min_bytes: Option<usize>,
    pub write_key: Option<Arc<str>>,
    pub write_key_in_body: Option<String>,
    pub on_failure: Option<Arc<FailureCallback>>,
    pub spool: Option<SpoolLink>,
}

impl Worker {
    /// Runs the drain loop until shutdown (or until every tracker handle is gone).
    pub async fn run(mut self) {
        let platform = NativePlatform {
            origin: Instant::now(),
        };
        let mut waiters = Waiters::default();
        let mut inflight = InFlight::default();
        loop {
            waiters.resolve_flushes(&self.shared.counters);
            if waiters.shutdown_expired() {
                break;
            }
            // Move queued events into the batcher until a batch is ready (one at a time, so
            // the queue's bounds also bound what the worker holds).
            let now = platform.monotonic_ms();
            let ready = self.pull(now).or_else(|| {
                let flush_now = waiters.draining() && !self.batcher.is_empty();
                (flush_now || self.batcher.is_due(now)).then(|| self.batcher.take())
            });
            if let Some(batch) = ready {
                self.hand_off(&batch);
                inflight.stack.push(batch);
                if self.deliver(&platform, &mut inflight, &mut waiters).await {
                    break;
                }
                continue;
            }
            if let Some(shutdown) = &waiters.shutdown {
                let ledger = &self.shared.counters.ledger;
                if ledger.settled_up_to(shutdown.target) && self.batcher.is_empty() {
                    break;
                }
            }
            let batch_due = self
                .batcher
                .deadline_ms()
                .map(|d| TokioInstant::now() + Duration::from_millis(d.saturating_sub(now)));
            let waiter_due = waiters.next_deadline();
            tokio::select! {
                biased;
                control = self.control_rx.recv_async(), if waiters.control_open => {
                    waiters.on_control(control.ok(), &self.shared.counters);
                }
                () = self.shared.wake.notified() => {}
                () = sleep_until(batch_due), if batch_due.is_some() => {}
                () = sleep_until(waiter_due), if waiter_due.is_some() => {}
            }
        }
        self.finish(&mut inflight, waiters).await;
    }

    /// Moves queued events into the batcher until a batch is ready: full, or cut because the
    /// next event did not fit (that event then opens the next batch).
    fn pull(&mut self, now_ms: u64) -> Option<Vec<EncodedEvent>> {
        loop {
            if self.batcher.is_full() {
                return Some(self.batcher.take());
            }
            let event = self.data_rx.try_recv().ok()?;
            let size = event.len();
            if let Some(cut) = self.batcher.push(event, size, now_ms) {
                return Some(cut);
            }
        }
    }

    /// Accounts for a batch leaving the queue's bounds for delivery.
    fn hand_off(&self, batch: &[EncodedEvent]) {
        let bytes: usize = batch.iter().map(EncodedEvent::len).sum();
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.shared.unsent.fetch_sub(batch.len(), Ordering::AcqRel);
    }

    /// Delivers `inflight` while still answering flush and shutdown requests. Returns true when
    /// the shutdown deadline passed mid-delivery (the delivery is then abandoned; what it had
    /// not settled is still in `inflight`).
    async fn deliver(
        &self,
        platform: &NativePlatform,
        inflight: &mut InFlight,
        waiters: &mut Waiters,
    ) -> bool {
        let ack = |events: &[EncodedEvent]| {
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
        };
        let delivery = Delivery {
            on_settled: if self.spool.is_some() {
                Some(&ack)
            } else {
                None
            },
            transport: &*self.transport,
            platform,
            retry: self.retry,
            gzip_min_bytes: self.gzip_min_bytes,
            write_key: self.write_key.clone(),
            write_key_in_body: self.write_key_in_body.as_deref(),
            counters: &self.shared.counters,
            on_failure: self.on_failure.as_deref(),
        };
        let mut run = pin!(delivery.run(inflight));
        loop {
            let due = waiters.next_deadline();
            tokio::select! {
                biased;
                () = &mut run => return false,
                control = self.control_rx.recv_async(), if waiters.control_open => {
                    waiters.on_control(control.ok(), &self.shared.counters);
                }
                () = sleep_until(due), if due.is_some() => {
                    waiters.resolve_flushes(&self.shared.counters);
                    if waiters.shutdown_expired() {
                        return true;
                    }
                }
            }
        }
    }

    /// Settles whatever is left as shut down, answers the shutdown request and exits.
    async fn finish(mut self, inflight: &mut InFlight, mut waiters: Waiters) {
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
        let mut abandoned = inflight.drain();
        let open = self.batcher.take();
        self.hand_off(&open);
        abandoned.extend(open);
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

async fn sleep_until(deadline: Option<TokioInstant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
