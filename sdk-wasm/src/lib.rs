//! # eventwire-wasm
//!
//! The tracker core of the npm package `eventwire`, compiled to wasm. The decisions are the
//! Rust core's, shared with the native tracker: Iglu URIs ([`eventwire::SchemaKey`]), event
//! ids (UUID v7) and timestamps, identity and sessions ([`eventwire::session`]), batching by
//! count, bytes and time ([`eventwire::batch`]), the retry policy
//! ([`eventwire::RetryPolicy`]) and the accounting ([`eventwire::stats`]). Only what only a
//! browser can do is JavaScript (`npm/src/index.js`): `JSON.stringify` of the data, `fetch`
//! and `sendBeacon`, page-hide events, storage and the tab locks.
//!
//! The interface is narrow and string-based on purpose: every exported function costs glue
//! code in the package, whose whole budget is 18 KB gzipped. Events cross from JavaScript in
//! groups (one string per group, fields separated by NUL, which `JSON.stringify` never
//! emits), not one call per event.

use std::collections::VecDeque;
use std::time::Duration;

use eventwire::batch::{body_overhead, BatchLimits};
use eventwire::event::UnixMillis;
use eventwire::policy::{Attempt, Refusal, RetryPolicy, Verdict};
use eventwire::session::{EventIdentity, Identity};
use eventwire::stats::{Counters, DropReason};
use wasm_bindgen::prelude::*;

mod text;
use text::{hyphenated, parse_u64, push_ascii, push_json_str, push_u64, split, Fields};

// Talc: a smaller and faster allocator than the default dlmalloc for wasm.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// Default most events waiting in a page's memory. Higher than the Rust tracker's (10,000):
/// a page cannot spill to disk, and a tab left open offline must hold its visit.
pub const DEFAULT_MAX_QUEUE_EVENTS: usize = 100_000;
/// Default most bytes of events waiting in a page's memory (the Rust tracker's 64 MiB is
/// more than a phone's tab should hold).
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 50_000_000;

/// `n`, or `default` when JavaScript passed nothing (`undefined`: 0 or NaN here).
fn or_default(n: f64, default: f64) -> f64 {
    if n > 0.0 {
        n
    } else {
        default
    }
}

/// An event waiting for delivery: its envelope.
struct Queued {
    json: String,
}

/// A batch handed to JavaScript to send, waiting for its answer.
struct Sending {
    id: u32,
    events: Vec<Queued>,
    attempt: u32,
    first_ms: f64,
}

/// The browser tracker's state. JavaScript owns one per `init()`.
#[wasm_bindgen]
pub struct Core {
    context_head: String,
    write_key_json: Option<String>,
    identity: Identity,
    /// `,"context":{…}}` and the identity it was rendered for.
    context_tail: Option<(EventIdentity, String)>,
    limits: BatchLimits,
    overhead: usize,
    max_queue_events: usize,
    max_queue_bytes: usize,
    max_event_bytes: usize,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    /// When the oldest queued event arrived (monotonic ms), for the batch delay.
    oldest_ms: Option<f64>,
    sending: Vec<Sending>,
    /// Batches to send again (after a failure, a `Retry-After` or a 413 split), first first.
    again: VecDeque<Sending>,
    /// Not before this time (monotonic ms): the backoff or the collector's `Retry-After`.
    retry_at: f64,
    next_batch_id: u32,
    retry: RetryPolicy,
    counters: Counters,
    rng: fastrand::Rng,
}

#[wasm_bindgen]
impl Core {
    /// A tracker core. `strings` holds, separated by NUL (one string: less glue than six):
    /// the labels and the library as JSON objects (from `JSON.stringify`), the write key,
    /// the anonymous id, the session id kept from before (empty: none), and a decimal seed
    /// from `crypto.getRandomValues` for the event ids' random bits. A limit left out (0 or
    /// `undefined`) takes its default: the Rust tracker's `DEFAULT_*` for batches and
    /// sessions, [`DEFAULT_MAX_QUEUE_EVENTS`] and [`DEFAULT_MAX_QUEUE_BYTES`] for the queue.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)] // one call at init; strings and numbers cost no glue
    pub fn new(
        strings: &str,
        last_activity_ms: f64,
        session_timeout_ms: f64,
        max_batch_events: u32,
        max_batch_bytes: u32,
        max_batch_delay_ms: f64,
        max_queue_events: u32,
        max_queue_bytes: u32,
    ) -> Core {
        use eventwire::batch::{
            DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_DELAY, DEFAULT_MAX_BATCH_EVENTS,
        };
        let ms = |d: Duration| d.as_millis() as f64;
        let session_timeout_ms = or_default(
            session_timeout_ms,
            ms(eventwire::session::DEFAULT_SESSION_TIMEOUT),
        );
        let count = |n: u32, default: usize| if n == 0 { default } else { n as usize };
        let max_batch_events = count(max_batch_events, DEFAULT_MAX_BATCH_EVENTS);
        let max_batch_bytes = count(max_batch_bytes, DEFAULT_MAX_BATCH_BYTES);
        let max_batch_delay_ms = or_default(max_batch_delay_ms, ms(DEFAULT_MAX_BATCH_DELAY));
        let max_queue_events = count(max_queue_events, DEFAULT_MAX_QUEUE_EVENTS);
        let max_queue_bytes = count(max_queue_bytes, DEFAULT_MAX_QUEUE_BYTES);
        let mut parts = Fields::new(strings);
        let mut next = || parts.next().unwrap_or_default();
        let (labels, library, write_key, anonymous_id, session_id, seed) =
            (next(), next(), next(), next(), next(), next());
        let mut context_head = String::with_capacity(labels.len() + library.len() + 32);
        context_head.push_str(r#","context":{"labels":"#);
        context_head.push_str(labels);
        context_head.push_str(r#","library":"#);
        context_head.push_str(library);
        let write_key_json = (!write_key.is_empty()).then(|| {
            let mut s = String::new();
            push_json_str(&mut s, write_key);
            s
        });
        let mut identity = Identity::new(
            anonymous_id,
            Duration::from_millis(session_timeout_ms.max(1.0) as u64),
        );
        if !session_id.is_empty() {
            identity.resume(session_id, last_activity_ms.max(0.0) as u64);
        }
        let limits = BatchLimits {
            max_events: max_batch_events,
            max_bytes: max_batch_bytes.max(1024),
            max_delay: Duration::from_millis(max_batch_delay_ms.max(1.0) as u64),
        };
        let overhead = body_overhead(write_key_json.as_ref().map(String::len));
        Core {
            context_head,
            write_key_json,
            identity,
            context_tail: None,
            limits,
            overhead,
            max_queue_events,
            max_queue_bytes: max_queue_bytes.max(1024),
            max_event_bytes: limits.max_bytes - overhead,
            queue: VecDeque::new(),
            queued_bytes: 0,
            oldest_ms: None,
            sending: Vec::new(),
            again: VecDeque::new(),
            retry_at: 0.0,
            next_batch_id: 1,
            // No retry deadline: an event leaves the page's storage only when a collector
            // answered for it (as with the Rust tracker's spool); the queue's bounds are
            // what limit the backlog.
            retry: RetryPolicy {
                deadline: Duration::MAX,
                ..RetryPolicy::default()
            },
            counters: Counters::default(),
            rng: fastrand::Rng::with_seed(parse_u64(seed).unwrap_or(0x5eed)),
        }
    }

    /// Takes a group of tracked events: `schema NUL data NUL entities NUL time NUL …` (data
    /// and entities as JSON text, entities empty when none, time in Unix ms). Returns how many
    /// were queued; the others were counted as dropped (queue full, too large).
    pub fn add(&mut self, group: &str, now_ms: f64) -> u32 {
        let mut fields = Fields::new(group);
        let mut queued = 0;
        while let (Some(schema), Some(data), Some(entities), Some(time)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        {
            let created = parse_u64(time).unwrap_or(0);
            if self.push(schema, data, entities, created, now_ms) {
                queued += 1;
            }
        }
        queued
    }

    fn push(
        &mut self,
        schema: &str,
        data: &str,
        entities: &str,
        created: u64,
        now_ms: f64,
    ) -> bool {
        self.counters.admit();
        if self.queue.len() >= self.max_queue_events {
            self.counters.dropped(DropReason::QueueFull, 1);
            return false;
        }
        let id = self.event_id(created);
        let rng = &mut self.rng;
        let who = self.identity.touch(created, || new_v4(rng));
        if !matches!(&self.context_tail, Some((rendered, _)) if *rendered == who) {
            {
                let mut tail = self.context_head.clone();
                tail.push_str(r#","anonymous_id":"#);
                push_json_str(&mut tail, &who.anonymous_id);
                if let Some(user) = &who.user_id {
                    tail.push_str(r#","user_id":"#);
                    push_json_str(&mut tail, user);
                }
                tail.push_str(r#","session_id":"#);
                push_json_str(&mut tail, &who.session_id);
                tail.push_str("}}");
                self.context_tail = Some((who, tail));
            }
        }
        // Rendered once per identity, spliced into every envelope.
        let tail = self.context_tail.as_ref().map_or("", |(_, t)| t.as_str());
        let mut json =
            String::with_capacity(120 + schema.len() + data.len() + entities.len() + tail.len());
        json.push_str(r#"{"event_id":""#);
        push_ascii(&mut json, &id);
        json.push_str(r#"","schema":""#);
        json.push_str(schema);
        json.push_str(r#"","data":"#);
        json.push_str(data);
        json.push_str(r#","created_at":""#);
        push_ascii(&mut json, &UnixMillis(created).to_rfc3339());
        json.push('"');
        if !entities.is_empty() && entities != "[]" {
            json.push_str(r#","entities":"#);
            json.push_str(entities);
        }
        json.push_str(tail);
        if json.len() > self.max_event_bytes {
            self.counters.dropped(DropReason::TooLarge, 1);
            return false;
        }
        if self.queued_bytes + json.len() > self.max_queue_bytes {
            self.counters.dropped(DropReason::QueueFull, 1);
            return false;
        }
        self.counters.enqueued();
        self.enqueue(Queued { json }, now_ms);
        true
    }

    fn enqueue(&mut self, event: Queued, now_ms: f64) {
        self.queued_bytes += event.json.len() + 1;
        self.oldest_ms.get_or_insert(now_ms);
        self.queue.push_back(event);
    }

    fn event_id(&mut self, unix_ms: u64) -> [u8; 36] {
        let mut random = [0u8; 10];
        self.rng.fill(&mut random);
        let id = uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid();
        hyphenated(id.as_bytes())
    }

    /// Queues events kept by a page that is gone (newline-separated envelopes, as
    /// [`Core::pending`] gave them). Each stored slot is adopted once, under its tab's lock,
    /// so its events cannot already be here. Returns how many.
    pub fn restore(&mut self, kept: &str, now_ms: f64) -> u32 {
        let mut n = 0;
        for json in split(kept, b'\n') {
            // Only lines this package wrote (a damaged or foreign value is skipped).
            if envelope_id(json).is_none() {
                continue;
            }
            if self.queue.len() >= self.max_queue_events {
                self.counters.recovered(1, 0, 0);
                self.counters.dropped(DropReason::QueueFull, 1);
                continue;
            }
            // Kept by a page with larger batches: it could never be sent from this one.
            if json.len() > self.max_event_bytes {
                self.counters.recovered(1, 0, 0);
                self.counters.dropped(DropReason::TooLarge, 1);
                continue;
            }
            self.counters.recovered(1, 0, 0);
            self.enqueue(
                Queued {
                    json: json.to_owned(),
                },
                now_ms,
            );
            n += 1;
        }
        n
    }

    /// Milliseconds until [`Core::take`] has something to send (0: now), or -1 for nothing.
    pub fn due(&self, now_ms: f64) -> f64 {
        let due = if !self.again.is_empty() {
            0.0
        } else if self.queue.is_empty() {
            return -1.0;
        } else if self.queue.len() >= self.limits.max_events
            || self.queued_bytes + self.overhead >= self.limits.max_bytes
        {
            0.0
        } else {
            let oldest = self.oldest_ms.unwrap_or(now_ms);
            oldest + self.limits.max_delay.as_secs_f64() * 1000.0 - now_ms
        };
        due.max(self.retry_at - now_ms).max(0.0)
    }

    /// The next request body to send, or empty when none is due. `force` sends what is
    /// queued now (flush); `max_bytes` caps the body in UTF-8 bytes (0: the batch limit;
    /// page hide passes what the keepalive quota allows). A batch sent again (after a
    /// failure or a 413 split) is capped too: what does not fit stays for the next body.
    pub fn take(&mut self, now_ms: f64, unix_ms: f64, force: bool, max_bytes: u32) -> String {
        if !force && self.due(now_ms) != 0.0 {
            return String::new();
        }
        let id = self.next_batch_id;
        let cap = match max_bytes as usize {
            0 => self.limits.max_bytes,
            n => n.min(self.limits.max_bytes),
        };
        let batch = match self.again.pop_front() {
            Some(mut batch) => {
                // Keep the longest prefix that fits; the rest waits, first in line.
                let mut bytes = self.overhead;
                let fits = batch
                    .events
                    .iter()
                    .take_while(|e| {
                        bytes += e.json.len() + 1;
                        bytes <= cap + 1
                    })
                    .count();
                // (Every event fits a whole batch: `add` and `restore` refuse larger ones.)
                if fits == 0 {
                    self.again.push_front(batch);
                    return String::new();
                }
                if fits < batch.events.len() {
                    let rest = batch.events.split_off(fits);
                    self.again.push_front(Sending {
                        id: 0,
                        events: rest,
                        attempt: batch.attempt,
                        first_ms: batch.first_ms,
                    });
                }
                batch.attempt += 1;
                batch.id = id;
                batch
            }
            None => {
                let mut events = Vec::new();
                let mut bytes = self.overhead;
                while let Some(next) = self.queue.front() {
                    // An event over a page-hide cap is left for the next page.
                    if events.len() >= self.limits.max_events
                        || bytes + next.json.len() + usize::from(!events.is_empty()) > cap
                    {
                        break;
                    }
                    bytes += next.json.len() + usize::from(!events.is_empty());
                    let Some(event) = self.queue.pop_front() else {
                        break;
                    };
                    self.queued_bytes -= event.json.len() + 1;
                    events.push(event);
                }
                if events.is_empty() {
                    return String::new();
                }
                self.oldest_ms = (!self.queue.is_empty()).then_some(now_ms);
                Sending {
                    id,
                    events,
                    attempt: 0,
                    first_ms: now_ms,
                }
            }
        };
        self.next_batch_id = id.wrapping_add(1).max(1);
        let body = self.body(&batch.events, unix_ms);
        self.counters.request(body.len(), batch.attempt > 0);
        self.sending.push(batch);
        body
    }

    /// The id of the batch [`Core::take`] last returned.
    pub fn batch(&self) -> u32 {
        self.next_batch_id.wrapping_sub(1)
    }

    /// The request body: `batch::encode_body`'s format, written as a `String` (a test
    /// checks the two agree byte for byte).
    fn body(&self, events: &[Queued], unix_ms: f64) -> String {
        let size = self.overhead + events.iter().map(|e| e.json.len() + 1).sum::<usize>();
        let mut body = String::with_capacity(size);
        body.push_str(r#"{"sent_at":""#);
        push_ascii(&mut body, &UnixMillis(unix_ms.max(0.0) as u64).to_rfc3339());
        body.push('"');
        if let Some(key) = &self.write_key_json {
            body.push_str(r#","write_key":"#);
            body.push_str(key);
        }
        body.push_str(r#","events":["#);
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&e.json);
        }
        body.push_str("]}");
        body
    }

    /// Settles the answer to batch `id`: `status` (0 when the request failed without one; a
    /// 3xx for a redirect, which the browser may hide), the `Retry-After` header, and from a
    /// 200's body: `accepted` (-1 when the body is not a batch answer), the indices the
    /// collector dead-lettered (comma-separated) and its `duplicates` count. Only a batch
    /// answer that accounts for every event of the batch settles events as sent; any other
    /// 200, 2xx or 3xx drops them as `not_a_collector`. Returns milliseconds after which to
    /// send again (the batch is queued again, first), or -1 when the batch is settled.
    #[allow(clippy::too_many_arguments)]
    pub fn settle(
        &mut self,
        id: u32,
        status: u16,
        retry_after: &str,
        accepted: f64,
        rejected: &str,
        duplicates: u32,
        now_ms: f64,
        unix_ms: f64,
        jitter: f64,
    ) -> f64 {
        let Some(at) = self.sending.iter().position(|s| s.id == id) else {
            return -1.0;
        };
        let batch = self.sending.swap_remove(at);
        let outcome = if status == 0 {
            Attempt::Network
        } else {
            Attempt::Status {
                code: status,
                retry_after: (!retry_after.is_empty()).then_some(retry_after),
            }
        };
        let elapsed = Duration::from_millis((now_ms - batch.first_ms).max(0.0) as u64);
        let verdict = self.retry.decide(
            outcome,
            batch.attempt,
            elapsed,
            unix_ms.max(0.0) as u64,
            jitter,
        );
        let n = batch.events.len() as u64;
        match verdict {
            Verdict::Delivered => {
                match answer_for(batch.events.len(), accepted, rejected, duplicates) {
                    Some(bad) => {
                        self.counters.sent(n - bad, u64::from(duplicates));
                        self.counters.rejected(bad);
                    }
                    None => self.counters.dropped(DropReason::NotACollector, n),
                }
                -1.0
            }
            Verdict::Refuse(_) if status == 400 => {
                self.counters.rejected(n);
                -1.0
            }
            Verdict::Refuse(refusal) => {
                let reason = match refusal {
                    Refusal::Unauthorized => DropReason::Unauthorized,
                    Refusal::Unsupported => DropReason::Unsupported,
                    Refusal::NotACollector => DropReason::NotACollector,
                    Refusal::Malformed | Refusal::Status(_) => DropReason::HttpStatus,
                };
                self.counters.dropped(reason, n);
                -1.0
            }
            Verdict::GiveUp => {
                self.counters.dropped(DropReason::RetryExpired, n);
                -1.0
            }
            Verdict::Split if batch.events.len() == 1 => {
                self.counters.dropped(DropReason::TooLarge, n);
                -1.0
            }
            Verdict::Split => {
                // Both halves go first, each on its own.
                let mut first = batch;
                let second = first.events.split_off(first.events.len() / 2);
                let second = Sending {
                    id: 0,
                    events: second,
                    attempt: first.attempt,
                    first_ms: first.first_ms,
                };
                self.again.push_front(second);
                self.again.push_front(first);
                0.0
            }
            Verdict::Retry(wait) | Verdict::Throttle(wait) => {
                if matches!(verdict, Verdict::Throttle(_)) {
                    self.counters.throttled();
                }
                let wait = wait.as_secs_f64() * 1000.0;
                self.retry_at = now_ms + wait;
                self.again.push_front(batch);
                wait
            }
        }
    }

    /// Every event not yet answered for, newline-separated envelopes, oldest first (being
    /// sent — page-hide requests included: an event leaves storage only when a collector
    /// answered for it —, then to send again, then queued), for storage.
    pub fn pending(&self) -> String {
        let mut out = String::new();
        let sending = self.sending.iter().flat_map(|s| &s.events);
        for e in sending
            .chain(self.again.iter().flat_map(|s| &s.events))
            .chain(&self.queue)
        {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&e.json);
        }
        out
    }

    /// Drops everything queued (opt-out), counted as `dropped_opted_out`.
    pub fn clear(&mut self) {
        let n =
            (self.queue.len() + self.again.iter().map(|s| s.events.len()).sum::<usize>()) as u64;
        self.queue.clear();
        self.again.clear();
        self.queued_bytes = 0;
        self.oldest_ms = None;
        self.counters.dropped(DropReason::OptedOut, n);
    }

    /// Sets the signed-in user (empty: none).
    #[wasm_bindgen(js_name = setUser)]
    pub fn set_user(&mut self, user_id: &str) {
        self.identity
            .set_user_id((!user_id.is_empty()).then(|| user_id.to_owned()));
    }

    /// Forgets the user: this anonymous id from now on, no user, a new session.
    pub fn reset(&mut self, anonymous_id: &str) {
        self.identity.reset(anonymous_id);
    }

    /// The session to keep for the other tabs and the next page: `id NUL last activity ms`.
    pub fn session(&self) -> String {
        let mut out = String::new();
        if let Some((id, last)) = self.identity.session() {
            out.push_str(id);
            out.push('\0');
            push_u64(&mut out, last);
        }
        out
    }

    /// The counters as a JSON object (the same names as the Rust tracker's `Stats`).
    pub fn stats(&self) -> String {
        let s = self.counters.snapshot();
        let mut out = String::from("{");
        let mut field = |name: &str, v: u64| {
            if out.len() > 1 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            push_u64(&mut out, v);
        };
        field("tracked", s.tracked);
        field("sent", s.sent);
        field("duplicates", s.duplicates);
        field("rejected", s.rejected);
        field("filtered", s.filtered);
        field("pending", s.pending);
        field("requests", s.requests);
        field("retries", s.retries);
        field("throttled", s.throttled);
        field("bytes_sent", s.bytes_sent);
        field("recovered", s.recovered);
        for (reason, n) in &s.dropped {
            let mut name = String::from("dropped_");
            name.push_str(reason.as_str());
            field(&name, *n);
        }
        out.push('}');
        out
    }
}

fn new_v4(rng: &mut fastrand::Rng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    let out = hyphenated(
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .as_bytes(),
    );
    let mut id = String::with_capacity(36);
    push_ascii(&mut id, &out);
    id
}

/// How many events of a batch of `n` a collector's answer dead-lettered, if it is a batch
/// answer for exactly these events: `accepted + duplicates + rejected = n`, each rejected
/// index distinct and below `n` (as `eventwire::protocol::BatchResponse::for_batch`).
fn answer_for(n: usize, accepted: f64, rejected: &str, duplicates: u32) -> Option<u64> {
    if !(accepted >= 0.0 && accepted.fract() == 0.0) {
        return None;
    }
    let mut seen = vec![false; n];
    let mut bad = 0u64;
    for index in split(rejected, b',').filter(|i| !i.is_empty()) {
        let slot = seen.get_mut(usize::try_from(parse_u64(index)?).ok()?)?;
        if std::mem::replace(slot, true) {
            return None;
        }
        bad += 1;
    }
    (accepted + f64::from(duplicates) + bad as f64 == n as f64).then_some(bad)
}

/// The `event_id` at the start of an envelope this package wrote.
fn envelope_id(json: &str) -> Option<[u8; 36]> {
    let rest = json.strip_prefix(r#"{"event_id":""#)?;
    rest.as_bytes().get(..36)?.try_into().ok()
}

#[cfg(test)]
mod tests;
