//! # eventwire-wasm
//!
//! The tracker core of the npm package `eventwire`, compiled to wasm. The decisions are the
//! Rust core's, shared with the native tracker: Iglu URIs ([`eventwire::SchemaKey`]), event
//! ids (UUID v7) and timestamps, identity and sessions ([`eventwire::session`]), and the
//! delivery engine itself ([`eventwire::outbox`]: batching by count, bytes and time, the
//! window of requests in flight, the retry policy, 413 splits, settling) with the
//! accounting ([`eventwire::stats`]). Only what only a browser can do is JavaScript
//! (`npm/index.js`): `JSON.stringify` of the data, `fetch` (keepalive on page hide),
//! storage and the tab locks.
//!
//! The interface is narrow and string- or byte-based on purpose: every exported function
//! costs glue code in the package, whose whole budget is 18,000 bytes gzipped. Events cross from JavaScript in
//! groups (one string per group, fields separated by NUL, which `JSON.stringify` never
//! emits), not one call per event.

use std::time::Duration;

use eventwire::batch::BatchLimits;
use eventwire::event::UnixMillis;
use eventwire::outbox::{Outbox, Outcome, Settled, Take};
use eventwire::protocol::{BatchResponse, Rejection};
use eventwire::session::{EventIdentity, Identity};
use eventwire::stats::{Counters, DropReason};
use eventwire::RetryPolicy;
use wasm_bindgen::prelude::*;

mod text;
use text::{hyphenated, parse_u64, push_ascii, push_json_str, push_u64, split};

// Talc: a smaller and faster allocator than the default dlmalloc for wasm.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

pub mod defaults;
use defaults::{
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_QUEUE_BYTES, DEFAULT_MAX_QUEUE_EVENTS, RETRY_DEADLINE,
};

/// `n`, or `default` when JavaScript passed nothing (`undefined`: 0 or NaN here).
fn or_default(n: f64, default: f64) -> f64 {
    if n > 0.0 {
        n
    } else {
        default
    }
}

/// A time from JavaScript (`performance.now()`, `Date.now()`) in whole milliseconds.
fn ms(t: f64) -> u64 {
    t.max(0.0) as u64
}

/// The browser tracker's state. JavaScript owns one per `init()`.
#[wasm_bindgen]
pub struct Core {
    context_head: String,
    identity: Identity,
    /// `,"context":{…}}` and the identity it was rendered for.
    context_tail: Option<(EventIdentity, String)>,
    max_queue_events: usize,
    max_queue_bytes: usize,
    /// The delivery engine, shared with the Rust tracker: batches, the window in flight, the
    /// retry schedule.
    outbox: Outbox<String>,
    /// The id of the request [`Core::take`] last returned.
    last_batch: u32,
    counters: Counters,
    rng: fastrand::Rng,
}

#[wasm_bindgen]
impl Core {
    /// A tracker core. `strings` holds, separated by NUL (one string: less glue than five):
    /// the context's fixed members as the inside of a JSON object (`labels`, `library` and,
    /// for an app's tests, `test_id`: `JSON.stringify({…}).slice(1, -1)`), the write key,
    /// the anonymous id, the session id kept from before (empty: none), and a decimal seed
    /// from `crypto.getRandomValues` for the event ids' random bits. A limit left out (0 or
    /// `undefined`) takes its default: the Rust tracker's `DEFAULT_*` for batches and
    /// sessions, [`DEFAULT_MAX_QUEUE_EVENTS`], [`DEFAULT_MAX_QUEUE_BYTES`] and
    /// [`DEFAULT_MAX_IN_FLIGHT`] for the queue and the window.
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
        max_in_flight: u32,
    ) -> Core {
        use eventwire::batch::{
            DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_DELAY, DEFAULT_MAX_BATCH_EVENTS,
        };
        let in_ms = |d: Duration| eventwire::policy::duration_ms(d) as f64;
        let session_timeout_ms = or_default(
            session_timeout_ms,
            in_ms(eventwire::session::DEFAULT_SESSION_TIMEOUT),
        );
        let count = |n: u32, default: usize| if n == 0 { default } else { n as usize };
        let max_batch_delay_ms = or_default(max_batch_delay_ms, in_ms(DEFAULT_MAX_BATCH_DELAY));
        let mut parts = split(strings, 0);
        let mut next = || parts.next().unwrap_or_default();
        let (fixed, write_key, anonymous_id, session_id, seed) =
            (next(), next(), next(), next(), next());
        let mut context_head = String::with_capacity(fixed.len() + 16);
        context_head.push_str(r#","context":{"#);
        context_head.push_str(fixed);
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
            identity.resume(session_id, ms(last_activity_ms));
        }
        let limits = BatchLimits {
            max_events: count(max_batch_events, DEFAULT_MAX_BATCH_EVENTS),
            max_bytes: count(max_batch_bytes, DEFAULT_MAX_BATCH_BYTES).max(1024),
            max_delay: Duration::from_millis(max_batch_delay_ms.max(1.0) as u64),
        };
        // No retry deadline: an event leaves the page's storage only when a collector
        // answered for it (as with the Rust tracker's spool); the queue's bounds are what
        // limit the backlog.
        let retry = RetryPolicy {
            deadline: RETRY_DEADLINE,
            ..RetryPolicy::default()
        };
        Core {
            context_head,
            identity,
            context_tail: None,
            max_queue_events: count(max_queue_events, DEFAULT_MAX_QUEUE_EVENTS),
            max_queue_bytes: count(max_queue_bytes, DEFAULT_MAX_QUEUE_BYTES).max(1024),
            outbox: Outbox::new(
                limits,
                retry,
                count(max_in_flight, DEFAULT_MAX_IN_FLIGHT),
                write_key_json,
            ),
            last_batch: 0,
            counters: Counters::default(),
            rng: fastrand::Rng::with_seed(parse_u64(seed).unwrap_or(0x5eed)),
        }
    }

    /// Takes a group of tracked events: `schema NUL data NUL entities NUL time NUL …` (data
    /// and entities as JSON text, entities empty when none, time in Unix ms). In place of
    /// the time, an event id chosen in JavaScript: a UUID v7 of the time (`eventwire/pii`
    /// binds sealed values to it; see `given_id`); otherwise the core makes the id. Returns
    /// how many were queued; the others were counted as dropped (queue full, too large).
    pub fn add(&mut self, group: &str, now_ms: f64) -> u32 {
        // Fields separated by NUL (an empty group: one empty field, no event).
        let mut fields = split(group, 0);
        let mut queued = 0;
        while let (Some(schema), Some(data), Some(entities), Some(time)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        {
            let (created, id) = match given_id(time) {
                Some(ms) => (ms, Some(time)),
                None => (parse_u64(time).unwrap_or(0), None),
            };
            if self.push(schema, data, entities, created, id, ms(now_ms)) {
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
        id: Option<&str>,
        now: u64,
    ) -> bool {
        self.counters.admit();
        if self.outbox.queued().0 >= self.max_queue_events {
            self.counters.dropped(DropReason::QueueFull, 1);
            return false;
        }
        let made;
        let id = match id {
            Some(id) => id.as_bytes(),
            None => {
                made = self.event_id(created);
                &made[..]
            }
        };
        let rng = &mut self.rng;
        let who = self.identity.touch(created, || new_v4(rng));
        if !matches!(&self.context_tail, Some((rendered, _)) if *rendered == who) {
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
        // Rendered once per identity, spliced into every envelope.
        let tail = self.context_tail.as_ref().map_or("", |(_, t)| t.as_str());
        let mut json =
            String::with_capacity(120 + schema.len() + data.len() + entities.len() + tail.len());
        json.push_str(r#"{"event_id":""#);
        push_ascii(&mut json, id);
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
        if json.len() > self.outbox.max_event_bytes() {
            self.counters.dropped(DropReason::TooLarge, 1);
            return false;
        }
        if self.outbox.queued().1 + json.len() > self.max_queue_bytes {
            self.counters.dropped(DropReason::QueueFull, 1);
            return false;
        }
        self.counters.enqueued();
        self.outbox.push(json, now);
        true
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
            self.counters.recovered(1, 0, 0);
            if self.outbox.queued().0 >= self.max_queue_events {
                self.counters.dropped(DropReason::QueueFull, 1);
                continue;
            }
            // Kept by a page with larger batches: it could never be sent from this one.
            if json.len() > self.outbox.max_event_bytes() {
                self.counters.dropped(DropReason::TooLarge, 1);
                continue;
            }
            self.outbox.push(json.to_owned(), ms(now_ms));
            n += 1;
        }
        n
    }

    /// Milliseconds until [`Core::take`] in `mode` has something to send (0: now), or -1 when
    /// nothing will be before an answer or a new event (nothing waits, or the window of
    /// requests in flight is full).
    pub fn due(&self, now_ms: f64, mode: u8) -> f64 {
        match self.outbox.due(ms(now_ms), take_mode(mode)) {
            Some(wait) => wait as f64,
            None => -1.0,
        }
    }

    /// The next request body to send (UTF-8 bytes), or an empty one when none may leave.
    /// `mode`: 0 a due batch only; 1 what is queued now (flush), within the pause and the
    /// window; 2 what is queued now, whatever the pause and the window (page hide); 3 as 1,
    /// after ending a backoff in progress (the network came back).
    /// `max_bytes` caps the body (0: the batch limit; page hide passes what the keepalive
    /// quota allows); a batch sent again is capped too: what does not fit stays first.
    pub fn take(&mut self, now_ms: f64, unix_ms: f64, mode: u8, max_bytes: u32) -> Vec<u8> {
        if mode == 3 {
            self.outbox.resume();
        }
        let Some(request) =
            self.outbox
                .take(ms(now_ms), ms(unix_ms), take_mode(mode), max_bytes as usize)
        else {
            return Vec::new();
        };
        self.counters.request(request.body.len(), request.retry);
        self.last_batch = request.id;
        request.body
    }

    /// The id of the batch [`Core::take`] last returned.
    pub fn batch(&self) -> u32 {
        self.last_batch
    }

    /// Settles the answer to batch `id`: `status` (0 when the request failed without one; a
    /// 3xx for a redirect, which the browser may hide), the `Retry-After` header in seconds,
    /// and from a 200's body: `accepted` (-1 when the body is not a batch answer), the
    /// indices the collector dead-lettered (comma-separated) and its `duplicates` count.
    /// Only a batch answer that accounts for every event of the batch settles events as
    /// sent; any other 200, 2xx or 3xx drops them as `not_a_collector`. Returns
    /// milliseconds after which the batch is sent again (it waits first in line), or -1 when
    /// it is settled.
    #[allow(clippy::too_many_arguments)]
    pub fn settle(
        &mut self,
        id: u32,
        status: u16,
        retry_after: &str,
        accepted: f64,
        rejected: &str,
        duplicates: f64,
        now_ms: f64,
        unix_ms: f64,
        jitter: f64,
    ) -> f64 {
        let outcome = if status == 0 {
            Outcome::Network
        } else {
            Outcome::Answered {
                status,
                retry_after: (!retry_after.is_empty()).then_some(retry_after),
                answer: answer(accepted, rejected, duplicates),
            }
        };
        let settled = self
            .outbox
            .settle(id, outcome, ms(now_ms), ms(unix_ms), jitter);
        let c = &self.counters;
        match settled {
            Some(Settled::Answered { events, answer }) => {
                let bad = answer.rejected.len() as u64;
                c.sent(events.len() as u64 - bad, answer.duplicates);
                c.rejected(bad);
            }
            Some(Settled::Rejected { events }) => c.rejected(events.len() as u64),
            Some(Settled::Dropped { reason, events, .. }) => {
                c.dropped(reason, events.len() as u64);
            }
            Some(Settled::Again { wait_ms, throttled }) => {
                if throttled {
                    c.throttled();
                }
                return wait_ms as f64;
            }
            Some(Settled::Split) => return 0.0,
            None => {}
        }
        -1.0
    }

    /// Every event not yet answered for, newline-separated envelopes, oldest first (being
    /// sent — page-hide requests included: an event leaves storage only when a collector
    /// answered for it —, then to send again, then queued), for storage.
    pub fn pending(&self) -> String {
        let mut out = String::new();
        self.outbox.for_each_pending(|e| {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(e);
        });
        out
    }

    /// Drops everything queued (opt-out), counted as `dropped_opted_out`. Requests in flight
    /// settle as they end; what they would send again is dropped so too, even after an
    /// opt-in, and [`Core::pending`] leaves them out.
    pub fn clear(&mut self) {
        let n = self.outbox.clear() as u64;
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

    /// The counters, comma-separated, in the order of [`STATS`] then the drops (the names
    /// of the Rust tracker's `Stats`; JavaScript names them: fewer bytes than JSON here).
    pub fn stats(&self) -> String {
        let mut out = String::new();
        self.counters.each(|n| {
            if !out.is_empty() {
                out.push(',');
            }
            push_u64(&mut out, n);
        });
        out
    }
}

/// The names of [`Core::stats`]'s values: counters, then `dropped_<reason>` for each
/// reason of `DropReason::ALL`.
pub const STATS: [&str; 11] = [
    "tracked",
    "sent",
    "duplicates",
    "rejected",
    "filtered",
    "pending",
    "requests",
    "retries",
    "throttled",
    "bytes_sent",
    "recovered",
];

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

/// The take mode of JavaScript's number: 0 due, 1 flush, 2 now, 3 flush (after a resume).
fn take_mode(mode: u8) -> Take {
    match mode {
        0 => Take::Due,
        2 => Take::Now,
        _ => Take::Flush,
    }
}

/// A collector's batch answer from what JavaScript read of a 200's body: `accepted` (-1, or
/// not a whole number, when the body is not an answer), the rejected indices
/// (comma-separated) and `duplicates`. Whether it accounts for the batch is the outbox's
/// check.
fn answer(accepted: f64, rejected: &str, duplicates: f64) -> Option<BatchResponse> {
    let whole = |n: f64| n >= 0.0 && n.fract() == 0.0;
    if !(whole(accepted) && whole(duplicates)) {
        return None;
    }
    let mut list = Vec::new();
    for index in split(rejected, b',').filter(|i| !i.is_empty()) {
        list.push(Rejection {
            index: usize::try_from(parse_u64(index)?).ok()?,
            event_id: None,
            code: String::new(),
        });
    }
    Some(BatchResponse {
        accepted: accepted as u64,
        duplicates: duplicates as u64,
        rejected: list,
    })
}

/// The Unix time in ms of an event id JavaScript chose in place of the time
/// (`eventwire/pii`: a UUID v7, whose first 48 bits are that time), when it is 36 lowercase
/// hex digits and hyphens: nothing in it can break the envelope's JSON, and one that is not
/// a UUID gets its own event dead-lettered by the collector, no other.
fn given_id(id: &str) -> Option<u64> {
    if id.len() != 36 {
        return None;
    }
    let mut ms = 0;
    for (i, c) in id.bytes().enumerate() {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'-' => continue,
            _ => return None,
        };
        if i < 13 {
            ms = ms << 4 | u64::from(digit);
        }
    }
    Some(ms)
}

/// The `event_id` at the start of an envelope this package wrote.
fn envelope_id(json: &str) -> Option<[u8; 36]> {
    let rest = json.strip_prefix(r#"{"event_id":""#)?;
    rest.as_bytes().get(..36)?.try_into().ok()
}

#[cfg(test)]
mod tests;
