//! Delivering batches: send, read the answer, retry, throttle, split, settle.
//!
//! One async routine shared by the native worker and the browser package. It owns no clock,
//! timer or randomness: those come from a [`Platform`]. It settles every event exactly once
//! into the [`Counters`] and reports failures to the callback.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::batch::encode_body;
use crate::event::{EncodedEvent, UnixMillis};
use crate::policy::{Attempt, Refusal, RetryPolicy, Verdict};
use crate::protocol::BatchResponse;
use crate::stats::{Counters, DropReason, FailureReason};
use crate::transport::{LocalBoxFuture, Request, Transport, TransportError};

/// Default body size from which requests are gzipped.
pub const DEFAULT_GZIP_MIN_BYTES: usize = 2048;

/// Called with events that were not delivered, and why. Runs on the tracker's worker; keep it
/// short. A panic inside it is caught and logged.
#[cfg(not(target_arch = "wasm32"))]
pub type FailureCallback = dyn Fn(&FailureReason, &[EncodedEvent]) + Send + Sync;
/// Called with events that were not delivered, and why (wasm: no threads, no `Send`).
#[cfg(target_arch = "wasm32")]
pub type FailureCallback = dyn Fn(&FailureReason, &[EncodedEvent]);

/// Told about events once they are answered for (see [`Delivery::on_settled`]).
pub type SettledCallback<'a> = dyn Fn(&[EncodedEvent]) + 'a;

/// What the delivery loop needs from its environment.
pub trait Platform {
    /// Wall clock, Unix milliseconds (for `sent_at` and HTTP-date `Retry-After`).
    fn now_unix_ms(&self) -> u64;
    /// A monotonic clock in milliseconds from any origin (for deadlines).
    fn monotonic_ms(&self) -> u64;
    /// Resolves after `duration`.
    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()>;
    /// A uniform sample in `[0, 1)` for backoff jitter.
    fn jitter(&self) -> f64;
}

/// Batches being delivered, owned by the caller so that nothing is lost if the delivery future
/// is dropped (e.g. when a shutdown times out): whatever is still here was not answered for.
#[derive(Debug, Default)]
pub struct InFlight {
    /// Batches to send, last first. A 413 replaces a batch with its two halves.
    pub stack: Vec<Vec<EncodedEvent>>,
}

impl InFlight {
    /// Takes every event still waiting.
    pub fn drain(&mut self) -> Vec<EncodedEvent> {
        self.stack.drain(..).rev().flatten().collect()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.stack.iter().all(Vec::is_empty)
    }
}

/// The settings and collaborators of one delivery loop.
pub struct Delivery<'a> {
    /// Where requests go.
    pub transport: &'a dyn Transport,
    /// Clock, timer and jitter.
    pub platform: &'a dyn Platform,
    /// Retry settings.
    pub retry: RetryPolicy,
    /// Gzip bodies of at least this many bytes (`None`: never).
    pub gzip_min_bytes: Option<usize>,
    /// Write key sent in the `Authorization` header.
    pub write_key: Option<Arc<str>>,
    /// Write key as a JSON string literal, when it travels in the body.
    pub write_key_in_body: Option<&'a str>,
    /// Where every event is settled.
    pub counters: &'a Counters,
    /// Told about every event that is not delivered.
    pub on_failure: Option<&'a FailureCallback>,
    /// Told about every event once it is answered for (delivered, rejected or dropped), so
    /// that a spool can forget it.
    pub on_settled: Option<&'a SettledCallback<'a>>,
}

impl Delivery<'_> {
    /// Delivers every batch in `inflight`, settling each event once.
    pub async fn run(&self, inflight: &mut InFlight) {
        while let Some(batch) = inflight.stack.last() {
            if batch.is_empty() {
                inflight.stack.pop();
                continue;
            }
            let verdict = self.attempt_until_final(batch).await;
            let Some(batch) = inflight.stack.pop() else {
                break;
            };
            match verdict {
                Final::Answered(answer) => self.settle_answer(batch, &answer),
                Final::Split if batch.len() > 1 => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    tracing::debug!(
                        first = first.len(),
                        second = second.len(),
                        "collector answered 413: splitting the batch"
                    );
                    inflight.stack.push(second);
                    inflight.stack.push(first);
                }
                Final::Split => self.fail(FailureReason::Dropped(DropReason::TooLarge), &batch),
                Final::Refused(refusal, answer) => {
                    let reason = match refusal {
                        Refusal::Malformed => FailureReason::Rejected("malformed".into()),
                        Refusal::Unauthorized => {
                            tracing::error!(
                                events = batch.len(),
                                "collector refused the write key (401/403): events dropped; check the tracker's write key"
                            );
                            FailureReason::Dropped(DropReason::Unauthorized)
                        }
                        Refusal::Unsupported => FailureReason::Dropped(DropReason::Unsupported),
                        Refusal::NotACollector => {
                            tracing::error!(
                                endpoint = self.transport.endpoint().unwrap_or("(custom transport)"),
                                answer = %answer,
                                events = batch.len(),
                                "the endpoint did not answer as an eventwire collector: events dropped (not_a_collector); check the tracker's endpoint (the collector's base URL, no redirect)"
                            );
                            FailureReason::Dropped(DropReason::NotACollector)
                        }
                        Refusal::Status(code) => {
                            tracing::error!(status = code, events = batch.len(), "collector answered with a status that retrying cannot fix: events dropped");
                            FailureReason::Dropped(DropReason::HttpStatus)
                        }
                    };
                    self.fail(reason, &batch);
                }
                Final::GaveUp => {
                    tracing::warn!(
                        events = batch.len(),
                        "retry deadline passed: events dropped"
                    );
                    self.fail(FailureReason::Dropped(DropReason::RetryExpired), &batch);
                }
            }
        }
    }

    /// Sends `batch` until the collector gives a final answer or the deadline passes.
    async fn attempt_until_final(&self, batch: &[EncodedEvent]) -> Final {
        let started = self.platform.monotonic_ms();
        let mut attempt = 0u32;
        loop {
            let request = self.request(batch);
            self.counters.request(request.body.len(), attempt > 0);
            let result = self.transport.send(request).await;
            let now = self.platform.now_unix_ms();
            let elapsed =
                Duration::from_millis(self.platform.monotonic_ms().saturating_sub(started));
            let outcome = match &result {
                Ok(r) if r.location.is_some() && !(300..400).contains(&r.status) => {
                    Attempt::Redirected
                }
                Ok(r) => Attempt::Status {
                    code: r.status,
                    retry_after: r.retry_after.as_deref(),
                },
                Err(TransportError::Timeout) => Attempt::Timeout,
                Err(TransportError::Network(_)) => Attempt::Network,
            };
            let verdict = self
                .retry
                .decide(outcome, attempt, elapsed, now, self.platform.jitter());
            let wait = match verdict {
                Verdict::Delivered => {
                    let (body, truncated) =
                        result.map(|r| (r.body, r.truncated)).unwrap_or_default();
                    let answer = (!truncated)
                        .then(|| BatchResponse::for_batch(&body, batch.len()))
                        .flatten();
                    return match answer {
                        Some(answer) => Final::Answered(answer),
                        None => Final::Refused(
                            Refusal::NotACollector,
                            format!(
                                "200 with a body that is not a batch answer for {} events: {}",
                                batch.len(),
                                excerpt(&body)
                            ),
                        ),
                    };
                }
                Verdict::Split => return Final::Split,
                Verdict::Refuse(r) => {
                    let answer = match &result {
                        Ok(r) => match &r.location {
                            Some(to) if (300..400).contains(&r.status) => {
                                format!("{} redirect to {to:?}", r.status)
                            }
                            Some(from) => format!("{} from {from:?} after a redirect", r.status),
                            None => format!("{}: {}", r.status, excerpt(&r.body)),
                        },
                        Err(e) => e.to_string(),
                    };
                    return Final::Refused(r, answer);
                }
                Verdict::GiveUp => return Final::GaveUp,
                Verdict::Retry(wait) => {
                    match &result {
                        Ok(r) => tracing::debug!(
                            status = r.status,
                            ?wait,
                            attempt,
                            "collector failed; retrying"
                        ),
                        Err(e) => {
                            tracing::debug!(error = %e, ?wait, attempt, "send failed; retrying")
                        }
                    }
                    wait
                }
                Verdict::Throttle(wait) => {
                    self.counters.throttled();
                    tracing::info!(?wait, "collector asked to slow down; pausing delivery");
                    wait
                }
            };
            self.platform.sleep(wait).await;
            attempt = attempt.saturating_add(1);
        }
    }

    fn request(&self, batch: &[EncodedEvent]) -> Request {
        let bytes: usize = batch.iter().map(|e| e.len() + 1).sum();
        let mut body = Vec::with_capacity(bytes + 96);
        let sent_at = UnixMillis(self.platform.now_unix_ms()).to_string();
        encode_body(
            &sent_at,
            self.write_key_in_body,
            batch.iter().map(EncodedEvent::json),
            &mut body,
        );
        let (body, gzip) = self.maybe_gzip(body);
        Request {
            body,
            gzip,
            write_key: self.write_key.clone(),
            events: batch.len(),
        }
    }

    #[cfg(feature = "gzip")]
    fn maybe_gzip(&self, body: Vec<u8>) -> (Vec<u8>, bool) {
        use std::io::Write;
        match self.gzip_min_bytes {
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
    fn maybe_gzip(&self, body: Vec<u8>) -> (Vec<u8>, bool) {
        (body, false)
    }

    /// Settles a batch by the collector's answer: rejected events are reported, the rest sent.
    fn settle_answer(&self, batch: Vec<EncodedEvent>, answer: &BatchResponse) {
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
        if let Some(settled) = self.on_settled {
            settled(&accepted);
        }
        self.counters.sent(accepted.len() as u64, answer.duplicates);
        for (code, events) in rejected {
            tracing::warn!(
                code,
                events = events.len(),
                "collector dead-lettered events"
            );
            self.fail(FailureReason::Rejected(code.to_owned()), &events);
        }
        self.counters.ledger.settle(seqs);
    }

    /// Settles `events` as not delivered and tells the callback.
    pub fn fail(&self, reason: FailureReason, events: &[EncodedEvent]) {
        if events.is_empty() {
            return;
        }
        if let Some(settled) = self.on_settled {
            settled(events);
        }
        let n = events.len() as u64;
        match &reason {
            FailureReason::Dropped(r) => self.counters.dropped(*r, n),
            FailureReason::Rejected(_) => self.counters.rejected(n),
        }
        // Reported before it counts as settled: a flush that returns has seen its callbacks.
        notify(self.on_failure, &reason, events);
        self.counters.mark_settled(events);
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

/// Calls the failure callback, containing a panic inside it.
pub fn notify(callback: Option<&FailureCallback>, reason: &FailureReason, events: &[EncodedEvent]) {
    if let Some(callback) = callback {
        if catch_unwind(AssertUnwindSafe(|| callback(reason, events))).is_err() {
            tracing::error!("the failure callback panicked; continuing");
        }
    }
}

enum Final {
    Answered(BatchResponse),
    Split,
    /// Refused, with what the answer was (for the log).
    Refused(Refusal, String),
    GaveUp,
}
