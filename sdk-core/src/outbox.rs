//! The delivery engine: queue → batches → in flight → settled, with the retry schedule.
//!
//! Sans-IO: an [`Outbox`] holds the events and decides, and its driver does the I/O. The
//! native worker drives it with tokio and a [`Transport`](crate::transport::Transport); the
//! browser package drives it with `fetch`. The driver
//!
//! 1. [`push`](Outbox::push)es each event it queues,
//! 2. asks [`due`](Outbox::due) when the next request may leave, and
//!    [`take`](Outbox::take)s it (a request body and an id),
//! 3. sends it and hands the answer to [`settle`](Outbox::settle), which says what became of
//!    the batch's events: answered for ([`Settled::Answered`]), dead-lettered as a whole
//!    ([`Settled::Rejected`]), given up with a reason ([`Settled::Dropped`]), or queued
//!    again ([`Settled::Again`], [`Settled::Split`]).
//!
//! Every pushed event is, at any time, in exactly one place: the queue, a batch to send
//! again, a batch in flight, or returned by `settle`, [`drain`](Outbox::drain) or
//! [`clear`](Outbox::clear) — once. The
//! model test in this module checks that over random sequences.
//!
//! Up to `max_in_flight` requests are in flight at once (the window); a retry or a
//! collector's 429/503 pauses new requests for the whole outbox, and a batch sent again goes
//! before newer ones. After such a failure the outbox probes: one request at a time until
//! the collector gives a final answer again, so a collector coming back from an outage or
//! an overload is not met by the whole window at once. With a window above 1 batches may reach the collector out of order; each
//! event still keeps its id, and its `created_at` orders it.
//!
//! The outbox reads no clock (the driver passes monotonic and wall-clock milliseconds), draws
//! no random number (the driver passes the jitter), logs nothing and formats nothing, so the
//! browser build pays only for the decisions.

use std::collections::VecDeque;
use std::mem;
use std::time::Duration;

use crate::batch::{encode_body, BatchLimits, TIMESTAMP_LEN};
use crate::event::UnixMillis;
use crate::policy::{duration_ms, Attempt, Refusal, RetryPolicy, Verdict};
use crate::protocol::BatchResponse;
use crate::stats::DropReason;

pub use crate::defaults::DEFAULT_MAX_IN_FLIGHT;

/// An event as the outbox holds it: its envelope, already serialised.
pub trait Envelope {
    /// The envelope's JSON bytes, as they go into a request body.
    fn json(&self) -> &[u8];
}

impl Envelope for crate::event::EncodedEvent {
    fn json(&self) -> &[u8] {
        crate::event::EncodedEvent::json(self)
    }
}

impl Envelope for String {
    fn json(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// How eagerly [`Outbox::take`] cuts a batch.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Only a batch that is due: full, or its oldest event waited the batch delay; never
    /// during a pause or with the window full.
    Due,
    /// What is queued now, not waiting for the batch delay (a flush); still within the pause
    /// and the window.
    Flush,
    /// What is queued now, whatever the pause and the window (the page is going away, or the
    /// network came back).
    Now,
}

/// A request to send: the body of `POST /v1/batch` and its id for [`Outbox::settle`].
pub struct Request {
    /// Identifies the batch in [`Outbox::settle`].
    pub id: u32,
    /// The uncompressed body: `{"sent_at":…,"write_key":…,"events":[…]}`.
    pub body: Vec<u8>,
    /// Events in the body.
    pub events: usize,
    /// True when these events were sent before (after a failure or a 413 split).
    pub retry: bool,
}

/// How a request ended, as the driver saw it.
pub enum Outcome<'a> {
    /// The collector (or something in its place) answered.
    Answered {
        /// HTTP status.
        status: u16,
        /// The `Retry-After` header, when present (seconds or an HTTP date).
        retry_after: Option<&'a str>,
        /// The body read as a batch answer, when it is one (whether it accounts for the
        /// batch's events is checked here).
        answer: Option<BatchResponse>,
    },
    /// The answer came from another URL than the batch endpoint (a followed redirect).
    Redirected,
    /// No answer within the request timeout.
    Timeout,
    /// No connection, or it broke before an answer.
    Network,
}

/// What [`Outbox::settle`] did with a batch.
pub enum Settled<E> {
    /// The collector answered for every event: those at `answer.rejected`'s indices were
    /// dead-lettered, the others accepted (`answer.duplicates` of them seen before).
    Answered {
        /// The batch's events, in the order sent.
        events: Vec<E>,
        /// The collector's answer; it accounts for exactly these events.
        answer: BatchResponse,
    },
    /// A 400: the collector dead-lettered the whole body as `malformed`; not sent again.
    Rejected {
        /// The batch's events.
        events: Vec<E>,
    },
    /// Given up, not sent again.
    Dropped {
        /// Why.
        reason: DropReason,
        /// The batch's events.
        events: Vec<E>,
    },
    /// Queued to be sent again, first, after `wait_ms`; new requests pause that long too.
    Again {
        /// Milliseconds before the batch (and anything else) is sent again.
        wait_ms: u64,
        /// The collector asked for the pause (429 or 503), rather than a failure backing off.
        throttled: bool,
    },
    /// A 413: the batch was cut in two halves, queued to be sent first, at once.
    Split,
}

/// A batch sent at least once.
struct Batch<E> {
    id: u32,
    /// Cut order: batches to send again go out oldest first.
    order: u64,
    events: Vec<E>,
    /// Failed attempts so far.
    attempt: u32,
    /// When it was first sent (monotonic ms), for the retry deadline.
    first_ms: u64,
    /// Cleared while in flight ([`Outbox::clear`]): settled as it ends, never sent again
    /// nor handed out to be stored.
    forgotten: bool,
}

/// The delivery engine's state. See the module docs.
pub struct Outbox<E> {
    limits: BatchLimits,
    write_key_json: Option<String>,
    overhead: usize,
    retry: RetryPolicy,
    max_in_flight: usize,
    /// Events not yet in a batch, with when each arrived (monotonic ms).
    queue: VecDeque<(E, u64)>,
    /// Sum over `queue` of each envelope's length plus one (its separator).
    queued_bytes: usize,
    /// Batches to send again, oldest **last** (the next one is popped).
    again: Vec<Batch<E>>,
    /// Batches in flight, in no particular order.
    in_flight: Vec<Batch<E>>,
    /// No new request before this (monotonic ms): a backoff or the collector's `Retry-After`.
    paused_until: u64,
    /// The part of the pause the collector asked for (429/503 `Retry-After`): a
    /// [`resume`](Outbox::resume) keeps it.
    throttled_until: u64,
    /// A request failed (retry or throttle) and no final answer came since: one request in
    /// flight at a time.
    probing: bool,
    next_id: u32,
    next_order: u64,
}

impl<E: Envelope> Outbox<E> {
    /// An empty outbox. `write_key_json` is the write key as a JSON string literal when it
    /// travels in the body; `max_in_flight` is at least 1.
    pub fn new(
        limits: BatchLimits,
        retry: RetryPolicy,
        max_in_flight: usize,
        write_key_json: Option<String>,
    ) -> Self {
        let overhead = crate::batch::body_overhead(write_key_json.as_ref().map(String::len));
        Outbox {
            limits,
            write_key_json,
            overhead,
            retry,
            max_in_flight: max_in_flight.max(1),
            queue: VecDeque::new(),
            queued_bytes: 0,
            again: Vec::new(),
            in_flight: Vec::new(),
            paused_until: 0,
            throttled_until: 0,
            probing: false,
            next_id: 1,
            next_order: 0,
        }
    }

    /// The largest envelope that fits a batch body.
    pub fn max_event_bytes(&self) -> usize {
        self.limits.max_bytes.saturating_sub(self.overhead)
    }

    /// Queues an event that arrived at `now_ms`. The driver bounds the queue (see
    /// [`Outbox::queued`]) and refuses envelopes over [`Outbox::max_event_bytes`]; a larger
    /// one is still sent alone, and a collector's 413 for it drops it as too large.
    pub fn push(&mut self, event: E, now_ms: u64) {
        self.queued_bytes += event.json().len() + 1;
        self.queue.push_back((event, now_ms));
    }

    /// Events in the queue (not yet in a batch) and their bytes (each envelope plus one).
    pub fn queued(&self) -> (usize, usize) {
        (self.queue.len(), self.queued_bytes)
    }

    /// True while a request could leave now (the window has room, no pause) and the queue
    /// holds less than a full batch: a driver that keeps its own bounded queue (the native
    /// tracker's channel) moves events in only then, so that while the collector is slow or
    /// away its bounds (and a spool's overflow) apply, not the outbox's.
    pub fn wants_events(&self, now_ms: u64) -> bool {
        !self.batch_full() && self.window_open() && now_ms >= self.paused_until
    }

    /// Ends a backoff now (the network came back: waiting it out would only delay). A pause
    /// the collector asked for (`Retry-After` on a 429/503) still holds.
    pub fn resume(&mut self) {
        self.paused_until = self.throttled_until;
    }

    /// True while the window has room: `max_in_flight` requests, or one while probing.
    fn window_open(&self) -> bool {
        let window = if self.probing { 1 } else { self.max_in_flight };
        self.in_flight.len() < window
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// True when no event is here at all.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.again.is_empty() && self.in_flight.is_empty()
    }

    fn batch_full(&self) -> bool {
        self.queue.len() >= self.limits.max_events
            || self.queued_bytes + self.overhead >= self.limits.max_bytes
    }

    /// Milliseconds until [`Outbox::take`] in this `mode` has a request (0: now), or `None`
    /// when nothing will be due before an event is pushed or an answer settled (nothing
    /// waits, or the window is full).
    pub fn due(&self, now_ms: u64, mode: Take) -> Option<u64> {
        if !self.window_open() && mode != Take::Now {
            return None;
        }
        let oldest = match (self.again.is_empty(), self.queue.front()) {
            (true, None) => return None,
            _ if mode == Take::Now => return Some(0),
            (_, front) => front.map_or(0, |(_, arrived)| *arrived),
        };
        let ready = if !self.again.is_empty() || self.batch_full() || mode == Take::Flush {
            0
        } else {
            let delay = duration_ms(self.limits.max_delay);
            oldest.saturating_add(delay).saturating_sub(now_ms)
        };
        Some(ready.max(self.paused_until.saturating_sub(now_ms)))
    }

    /// The next request, or `None` when `mode` allows none now. `max_bytes` caps its body
    /// (0: the batch limit; a page going away passes what its keepalive quota leaves). A
    /// batch sent again that is over the cap is cut: what does not fit waits, first.
    /// `unix_ms` is the wall clock, for `sent_at`.
    pub fn take(
        &mut self,
        now_ms: u64,
        unix_ms: u64,
        mode: Take,
        max_bytes: usize,
    ) -> Option<Request> {
        match mode {
            Take::Due if self.due(now_ms, mode) != Some(0) => return None,
            Take::Flush if !self.window_open() || now_ms < self.paused_until => return None,
            _ => {}
        }
        let cap = match max_bytes {
            0 => self.limits.max_bytes,
            n => n.min(self.limits.max_bytes),
        };
        let batch = match self.again.pop() {
            Some(mut batch) => {
                // The longest prefix that fits; the rest waits, first in line.
                let mut bytes = self.overhead;
                let fits = batch
                    .events
                    .iter()
                    .take_while(|e| {
                        bytes += e.json().len() + 1;
                        bytes <= cap + 1
                    })
                    .count();
                // An envelope over the batch limit (kept by a tracker with larger batches)
                // still goes alone; over a page-hide cap it waits for the next page.
                let fits = if fits == 0 && max_bytes == 0 { 1 } else { fits };
                if fits == 0 {
                    self.again.push(batch);
                    return None;
                }
                if fits < batch.events.len() {
                    let rest = batch.events.split_off(fits);
                    self.again.push(Batch {
                        id: 0,
                        order: batch.order,
                        events: rest,
                        attempt: batch.attempt,
                        first_ms: batch.first_ms,
                        forgotten: false,
                    });
                }
                batch
            }
            None => {
                let mut events = Vec::new();
                let mut bytes = self.overhead;
                while let Some((next, _)) = self.queue.front() {
                    let size = next.json().len() + usize::from(!events.is_empty());
                    // An event over a page-hide cap is left for the next page; one over the
                    // batch limit goes alone (the collector's 413 settles it).
                    if events.len() >= self.limits.max_events
                        || (bytes + size > cap && !(events.is_empty() && max_bytes == 0))
                    {
                        break;
                    }
                    bytes += size;
                    let Some((event, _)) = self.queue.pop_front() else {
                        break;
                    };
                    self.queued_bytes -= event.json().len() + 1;
                    events.push(event);
                }
                if events.is_empty() {
                    return None;
                }
                let order = self.next_order;
                self.next_order += 1;
                Batch {
                    id: 0,
                    order,
                    events,
                    attempt: 0,
                    first_ms: now_ms,
                    forgotten: false,
                }
            }
        };
        let mut batch = batch;
        batch.id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let body = self.body(&batch.events, unix_ms);
        let request = Request {
            id: batch.id,
            body,
            events: batch.events.len(),
            retry: batch.attempt > 0,
        };
        self.in_flight.push(batch);
        Some(request)
    }

    /// The request body: `{"sent_at":"…","write_key":…,"events":[…]}` (the size the
    /// overhead counts exactly).
    fn body(&self, events: &[E], unix_ms: u64) -> Vec<u8> {
        let size = self.overhead + events.iter().map(|e| e.json().len() + 1).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        let sent_at: [u8; TIMESTAMP_LEN] = UnixMillis(unix_ms).to_rfc3339();
        encode_body(
            &sent_at,
            self.write_key_json.as_deref(),
            events.iter().map(Envelope::json),
            &mut out,
        );
        out
    }

    /// Settles request `id` by how it ended, at `now_ms` (monotonic) and `unix_ms` (wall
    /// clock, for a `Retry-After` date), with `jitter` a uniform sample in `[0, 1)`. `None`
    /// when `id` is not in flight (already settled, or drained).
    pub fn settle(
        &mut self,
        id: u32,
        outcome: Outcome<'_>,
        now_ms: u64,
        unix_ms: u64,
        jitter: f64,
    ) -> Option<Settled<E>> {
        let at = self.in_flight.iter().position(|b| b.id == id)?;
        let mut batch = self.in_flight.swap_remove(at);
        let (attempt, answer) = match outcome {
            Outcome::Answered {
                status,
                retry_after,
                answer,
            } => (
                Attempt::Status {
                    code: status,
                    retry_after,
                },
                answer,
            ),
            Outcome::Redirected => (Attempt::Redirected, None),
            Outcome::Timeout => (Attempt::Timeout, None),
            Outcome::Network => (Attempt::Network, None),
        };
        let elapsed = Duration::from_millis(now_ms.saturating_sub(batch.first_ms));
        let verdict = self
            .retry
            .decide(attempt, batch.attempt, elapsed, unix_ms, jitter);
        let dropped = |reason, events| Settled::Dropped { reason, events };
        // A final answer from the endpoint ends probing; a failure starts it.
        self.probing = matches!(
            verdict,
            Verdict::Retry(_) | Verdict::Throttle(_) | Verdict::GiveUp
        );
        // Cleared while in flight: what did not arrive is not sent again.
        if batch.forgotten
            && matches!(
                verdict,
                Verdict::Retry(_) | Verdict::Throttle(_) | Verdict::Split
            )
        {
            return Some(dropped(DropReason::OptedOut, batch.events));
        }
        Some(match verdict {
            Verdict::Delivered => match answer {
                Some(answer) if answer.accounts_for(batch.events.len()) => Settled::Answered {
                    events: batch.events,
                    answer,
                },
                _ => dropped(DropReason::NotACollector, batch.events),
            },
            Verdict::Refuse(Refusal::Malformed) => Settled::Rejected {
                events: batch.events,
            },
            Verdict::Refuse(refusal) => dropped(refusal.reason(), batch.events),
            Verdict::GiveUp => dropped(DropReason::RetryExpired, batch.events),
            Verdict::Split if batch.events.len() <= 1 => {
                dropped(DropReason::TooLarge, batch.events)
            }
            Verdict::Split => {
                let second = batch.events.split_off(batch.events.len() / 2);
                let at = self.again_position(batch.order);
                let second = Batch {
                    id: 0,
                    order: batch.order,
                    events: second,
                    attempt: batch.attempt,
                    first_ms: batch.first_ms,
                    forgotten: false,
                };
                // Popped from the end: the first half goes first.
                self.again.insert(at, second);
                self.again.insert(at + 1, batch);
                Settled::Split
            }
            Verdict::Retry(wait) | Verdict::Throttle(wait) => {
                let wait_ms = duration_ms(wait);
                let until = now_ms.saturating_add(wait_ms);
                self.paused_until = self.paused_until.max(until);
                if matches!(verdict, Verdict::Throttle(_)) {
                    self.throttled_until = self.throttled_until.max(until);
                }
                batch.attempt = batch.attempt.saturating_add(1);
                let at = self.again_position(batch.order);
                self.again.insert(at, batch);
                Settled::Again {
                    wait_ms,
                    throttled: matches!(verdict, Verdict::Throttle(_)),
                }
            }
        })
    }

    /// Where a batch cut `order`-th goes among those to send again: popped after every
    /// older one and before every other (a part of the same batch sent again goes first).
    fn again_position(&self, order: u64) -> usize {
        self.again.partition_point(|b| b.order >= order)
    }

    /// Every event not yet settled: in flight (in no particular order), then to send again
    /// (oldest first), then queued. The requests in flight are forgotten (their answers will
    /// not be settled).
    pub fn drain(&mut self) -> Vec<E> {
        let mut out: Vec<E> = mem::take(&mut self.in_flight)
            .into_iter()
            .chain(mem::take(&mut self.again).into_iter().rev())
            .flat_map(|b| b.events)
            .collect();
        out.extend(mem::take(&mut self.queue).into_iter().map(|(e, _)| e));
        self.queued_bytes = 0;
        out
    }

    /// Calls `f` with every event not yet settled and not cleared, in the order of
    /// [`Outbox::drain`], left in place (for a page to store what it has not delivered).
    pub fn for_each_pending(&self, mut f: impl FnMut(&E)) {
        let kept = self.in_flight.iter().filter(|b| !b.forgotten);
        for batch in kept.chain(self.again.iter().rev()) {
            for e in &batch.events {
                f(e);
            }
        }
        for (e, _) in &self.queue {
            f(e);
        }
    }

    /// The user opted out: forgets every event not in flight (queued, or to send again) and
    /// returns how many. Requests in flight still settle, but only as they end: what the
    /// collector answered for is settled so, and what would be sent again is dropped as
    /// [`DropReason::OptedOut`] (even if the user opts in again first); meanwhile
    /// [`Outbox::for_each_pending`] leaves them out, so they are not stored.
    pub fn clear(&mut self) -> usize {
        for batch in &mut self.in_flight {
            batch.forgotten = true;
        }
        let n = self.queue.len() + self.again.iter().map(|b| b.events.len()).sum::<usize>();
        self.queue = VecDeque::new();
        self.again = Vec::new();
        self.queued_bytes = 0;
        n
    }
}

impl Refusal {
    /// The drop reason of events refused so. (A 400, [`Refusal::Malformed`], is the
    /// collector's dead letter of the whole body: [`Settled::Rejected`], not a drop; it maps
    /// to [`DropReason::HttpStatus`] here only for completeness.)
    pub fn reason(self) -> DropReason {
        match self {
            Refusal::Unauthorized => DropReason::Unauthorized,
            Refusal::Unsupported => DropReason::Unsupported,
            Refusal::NotACollector => DropReason::NotACollector,
            Refusal::Malformed | Refusal::Status(_) => DropReason::HttpStatus,
        }
    }
}

#[cfg(test)]
mod tests;
