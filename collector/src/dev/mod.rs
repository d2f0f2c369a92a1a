//! The dev mode (`--dev`): the recent good events and dead letters kept in memory, for
//! people and for an app's tests.
//!
//! - `GET /` — the dev page ([`page.html`](page.html), embedded): a live list of what
//!   arrives, with filters, each dead letter's errors beside its fields, copy and reset.
//! - `GET /v1/events?kind=&schema=&event_id=&test_id=&label=&limit=` — the records, newest
//!   first, as `{"count", "events"}`.
//! - `GET /v1/events/wait?…&count=N&timeout=10s` — answers 200 as soon as N records match
//!   (`{"count", "events"}`, oldest first), or 408 at the timeout with what did match and
//!   the near misses, each with why it did not match.
//! - `GET /v1/events/stream?…` — server-sent events: the latest matching records (`limit`,
//!   default 500), then each new one as it is stored (`event: record`), and `event: reset`
//!   when the store is emptied.
//! - `DELETE /v1/events` or `POST /v1/events/reset` — empties the store.

mod filter;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::server::Shared;
use crate::sink::SinkRecord;
use filter::Filter;
pub(crate) use filter::Kind;

/// The dev page, served at `GET /` in dev mode.
const PAGE: &str = include_str!("page.html");

/// Longest wait `/v1/events/wait` takes (`timeout=` above it is refused).
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// Wait when `/v1/events/wait` names no `timeout`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Records the live stream sends first when the query names no `limit`.
pub const DEFAULT_STREAM_BACKLOG: usize = 500;

/// Most near misses a timed-out wait lists.
pub const MAX_NEAR_MISSES: usize = 20;

/// One stored record: a good event or a dead letter, numbered in the order stored.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    kind: Kind,
    record: Arc<Value>,
}

#[derive(Debug, Default)]
struct Recent {
    good: VecDeque<Entry>,
    bad: VecDeque<Entry>,
    /// The number of the next record stored.
    next: u64,
    /// Bumped by each reset, so live streams can say so.
    epoch: u64,
}

impl Recent {
    /// Every record, oldest first.
    fn since_start(&self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.good.iter().chain(self.bad.iter()).cloned().collect();
        all.sort_by_key(|e| e.seq);
        all
    }

    /// Every record with a number above `after`, oldest first.
    fn since(&self, after: u64) -> Vec<Entry> {
        let tail = |q: &VecDeque<Entry>| {
            let from = q.partition_point(|e| e.seq <= after);
            q.range(from..).cloned().collect::<Vec<_>>()
        };
        let mut all = tail(&self.good);
        all.extend(tail(&self.bad));
        all.sort_by_key(|e| e.seq);
        all
    }
}

/// The dev store: bounded lists of good and bad records, and a signal for waiters.
#[derive(Debug)]
pub(crate) struct DevStore {
    recent: Mutex<Recent>,
    capacity: usize,
    /// Sends the newest record number (or a reset); waiters and streams watch it.
    changed: tokio::sync::watch::Sender<(u64, u64)>,
    /// Set when the collector shuts down: waits answer and streams end.
    closed: std::sync::atomic::AtomicBool,
}

impl DevStore {
    /// A store keeping at most `capacity` good and `capacity` bad records.
    pub(crate) fn new(capacity: usize) -> DevStore {
        DevStore {
            recent: Mutex::default(),
            capacity: capacity.max(1),
            changed: tokio::sync::watch::channel((0, 0)).0,
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Ends every wait (answered 503) and stream, now and later: the collector is stopping.
    pub(crate) fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.changed.send_modify(|_| {});
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Recent> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `lines` (JSON records of `kind`, as the sinks took them; a line that does
    /// not parse is skipped) and wakes waiters.
    pub(crate) fn remember<'l>(&self, kind: Kind, lines: impl Iterator<Item = &'l [u8]>) {
        let mut recent = self.lock();
        let mut stored = false;
        for line in lines {
            let Ok(record) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let seq = recent.next;
            recent.next += 1;
            let capacity = self.capacity;
            let queue = match kind {
                Kind::Good => &mut recent.good,
                Kind::Bad => &mut recent.bad,
            };
            if queue.len() >= capacity {
                queue.pop_front();
            }
            queue.push_back(Entry {
                seq,
                kind,
                record: Arc::new(record),
            });
            stored = true;
        }
        if stored {
            let mark = (recent.next, recent.epoch);
            drop(recent);
            self.changed.send_replace(mark);
        }
    }

    fn reset(&self) {
        let mut recent = self.lock();
        recent.good.clear();
        recent.bad.clear();
        recent.epoch += 1;
        let mark = (recent.next, recent.epoch);
        drop(recent);
        self.changed.send_replace(mark);
    }
}

impl Shared {
    /// Keeps `records` of `kind` in the dev store, when dev mode is on.
    pub(crate) fn remember_recent<'r>(
        &self,
        kind: Kind,
        records: impl Iterator<Item = &'r SinkRecord>,
    ) {
        if let Some(dev) = &self.dev {
            dev.remember(kind, records.map(|r| &r.line[..]));
        }
    }
}

/// The query of every dev endpoint (each uses the members it needs).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DevQuery {
    kind: Option<String>,
    schema: Option<String>,
    event_id: Option<String>,
    test_id: Option<String>,
    label: Option<String>,
    limit: Option<usize>,
    count: Option<usize>,
    timeout: Option<String>,
}

/// The store and the query's filter, or the answer when there is none: dev mode off (404)
/// or a bad query (400).
fn open_store<'s>(
    shared: &'s Shared,
    q: &DevQuery,
    default_kind: Option<Kind>,
) -> Result<(&'s DevStore, Filter), Unusable> {
    let dev = shared.dev.as_ref().ok_or(Unusable::Off)?;
    let filter = q.filter(default_kind).map_err(Unusable::Query)?;
    Ok((dev, filter))
}

/// Why a dev endpoint cannot answer with records.
pub(crate) enum Unusable {
    Off,
    Query(String),
    /// The collector is shutting down.
    Stopping,
}

impl IntoResponse for Unusable {
    fn into_response(self) -> Response {
        match self {
            Unusable::Off => dev_off(),
            Unusable::Query(e) => bad_request(e),
            Unusable::Stopping => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the collector is shutting down\n",
            )
                .into_response(),
        }
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message + "\n").into_response()
}

fn dev_off() -> Response {
    (
        StatusCode::NOT_FOUND,
        "dev mode is off (start the collector with --dev)\n",
    )
        .into_response()
}

impl DevQuery {
    /// The filter; `default_kind` applies when the query names none (`kind=all`: both).
    fn filter(&self, default_kind: Option<Kind>) -> Result<Filter, String> {
        let kind = match self.kind.as_deref() {
            None | Some("") => default_kind,
            Some("good") => Some(Kind::Good),
            Some("bad") => Some(Kind::Bad),
            Some("all") => None,
            Some(other) => return Err(format!("kind must be good, bad or all, not {other:?}")),
        };
        let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Ok(Filter {
            kind,
            schema: given(&self.schema),
            event_id: given(&self.event_id),
            test_id: given(&self.test_id),
            label: given(&self.label),
        })
    }
}

/// A `timeout=` value: a duration with its unit (`500ms`, `10s`, `2m`) or bare
/// milliseconds, at most [`MAX_WAIT`].
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = match text.parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("timeout {text:?} is not a duration (e.g. 500ms, 10s): {e}"))?,
    };
    if d > MAX_WAIT {
        return Err(format!(
            "timeout {text:?} is over the longest wait, {}",
            humantime::format_duration(MAX_WAIT)
        ));
    }
    Ok(d)
}

pub(crate) async fn dev_page(State(shared): State<Arc<Shared>>) -> Response {
    if shared.dev.is_none() {
        return dev_off();
    }
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE)).into_response()
}

pub(crate) async fn dev_events(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<DevQuery>,
) -> Result<Response, Unusable> {
    let (dev, filter) = open_store(&shared, &q, Some(Kind::Good))?;
    let all = dev.lock().since_start();
    let matches: Vec<&Value> = all
        .iter()
        .rev()
        .filter(|e| filter.matches(e.kind, &e.record))
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|e| &*e.record)
        .collect();
    Ok(Json(json!({ "count": matches.len(), "events": matches })).into_response())
}

pub(crate) async fn dev_wait(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<DevQuery>,
) -> Result<Response, Unusable> {
    let (dev, filter) = open_store(&shared, &q, Some(Kind::Good))?;
    let wanted = q.count.unwrap_or(1);
    if wanted == 0 {
        return Err(Unusable::Query("count must be at least 1".to_owned()));
    }
    let timeout = match q.timeout.as_deref().map(parse_timeout) {
        None => DEFAULT_WAIT,
        Some(d) => d.map_err(Unusable::Query)?,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changed = dev.changed.subscribe();
    let mut seen = Seen::default();
    loop {
        // Marked seen before reading, so a record stored after the read wakes the wait.
        changed.borrow_and_update();
        seen.absorb(dev, &filter);
        let done = seen.matched.len() >= wanted;
        if !done && dev.is_closed() {
            return Err(Unusable::Stopping);
        }
        if done || tokio::time::Instant::now() >= deadline {
            let events: Vec<&Value> = seen.matched.iter().map(|e| &*e.record).collect();
            if done {
                return Ok(Json(json!({ "count": events.len(), "events": events })).into_response());
            }
            let all = dev.lock().since_start();
            return Ok((
                StatusCode::REQUEST_TIMEOUT,
                Json(json!({
                    "count": events.len(),
                    "wanted": wanted,
                    "timeout_ms": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    "events": events,
                    "near_misses": near_misses(&filter, &all),
                })),
            )
                .into_response());
        }
        // Woken by a record stored (or a reset), or at the deadline: either way the loop
        // reads what is new once more before it answers.
        tokio::select! {
            r = changed.changed() => if r.is_err() { return Err(Unusable::Off) },
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// What a wait has matched so far. Each wake reads only the records stored since the last
/// (and filters them outside the store's lock): a wait costs the records that arrive, not
/// the store's size, however many tests wait at once.
#[derive(Default)]
struct Seen {
    matched: Vec<Entry>,
    /// The number of the last record read (`None`: none yet).
    after: Option<u64>,
    /// The store's reset count when last read (`None`: not read yet).
    epoch: Option<u64>,
}

impl Seen {
    fn absorb(&mut self, dev: &DevStore, filter: &Filter) {
        let fresh = {
            let recent = dev.lock();
            if self.epoch != Some(recent.epoch) {
                // Emptied since (or first read): what matched before is gone.
                self.epoch = Some(recent.epoch);
                self.matched.clear();
                recent.since_start()
            } else {
                match self.after {
                    Some(after) => recent.since(after),
                    None => recent.since_start(),
                }
            }
        };
        if let Some(last) = fresh.last() {
            self.after = Some(last.seq);
        }
        self.matched.extend(
            fresh
                .into_iter()
                .filter(|e| filter.matches(e.kind, &e.record)),
        );
    }
}

/// The records that almost match, newest and closest first: those failing one criterion,
/// and those of the same test failing two. Each with the reasons.
fn near_misses(filter: &Filter, all: &[Entry]) -> Vec<Value> {
    let mut misses: Vec<(usize, u64, Value)> = all
        .iter()
        .filter_map(|e| {
            let why = filter.mismatches(e.kind, &e.record);
            let close = why.len() == 1 || (why.len() == 2 && filter.same_test(e.kind, &e.record));
            close.then(|| {
                (
                    why.len(),
                    u64::MAX - e.seq,
                    json!({ "kind": e.kind.as_str(), "why": why, "record": &*e.record }),
                )
            })
        })
        .collect();
    misses.sort_by_key(|m| (m.0, m.1));
    misses
        .into_iter()
        .take(MAX_NEAR_MISSES)
        .map(|m| m.2)
        .collect()
}

pub(crate) async fn dev_stream(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<DevQuery>,
) -> Result<Response, Unusable> {
    let (dev, filter) = open_store(&shared, &q, None)?;
    let backlog = q.limit.unwrap_or(DEFAULT_STREAM_BACKLOG);
    let changed = dev.changed.subscribe();
    let (first, after, epoch) = {
        let recent = dev.lock();
        let matched: Vec<Entry> = recent
            .since_start()
            .into_iter()
            .filter(|e| filter.matches(e.kind, &e.record))
            .collect();
        let skip = matched.len().saturating_sub(backlog);
        let first: VecDeque<SseEvent> = matched[skip..].iter().map(sse_record).collect();
        (first, recent.next.checked_sub(1), recent.epoch)
    };
    let state = StreamState {
        shared: shared.clone(),
        filter,
        changed,
        pending: first,
        after,
        epoch,
    };
    Ok(Sse::new(records_stream(state))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn sse_record(e: &Entry) -> SseEvent {
    SseEvent::default()
        .event("record")
        .id(e.seq.to_string())
        .data(json!({ "seq": e.seq, "kind": e.kind.as_str(), "record": &*e.record }).to_string())
}

struct StreamState {
    shared: Arc<Shared>,
    filter: Filter,
    changed: tokio::sync::watch::Receiver<(u64, u64)>,
    pending: VecDeque<SseEvent>,
    /// The number of the last record looked at (`None`: none yet).
    after: Option<u64>,
    epoch: u64,
}

fn records_stream(state: StreamState) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(e) = s.pending.pop_front() {
                return Some((Ok(e), s));
            }
            // Ends when the collector stops.
            if s.shared.dev.as_ref().is_none_or(DevStore::is_closed) {
                return None;
            }
            s.changed.changed().await.ok()?;
            let dev = s.shared.dev.as_ref()?;
            if dev.is_closed() {
                return None;
            }
            let recent = dev.lock();
            if recent.epoch != s.epoch {
                s.epoch = recent.epoch;
                s.pending
                    .push_back(SseEvent::default().event("reset").data("{}"));
            }
            let fresh = match s.after {
                Some(after) => recent.since(after),
                None => recent.since_start(),
            };
            drop(recent);
            if let Some(last) = fresh.last() {
                s.after = Some(last.seq);
            }
            s.pending.extend(
                fresh
                    .iter()
                    .filter(|e| s.filter.matches(e.kind, &e.record))
                    .map(sse_record),
            );
        }
    })
}

pub(crate) async fn dev_reset(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(dev) = &shared.dev else {
        return dev_off();
    };
    if !same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "a reset comes from the dev page or a client without an Origin, not from another site\n",
        )
            .into_response();
    }
    dev.reset();
    (StatusCode::OK, Json(json!({ "reset": true }))).into_response()
}

/// Whether a request that changes the store may: one without an `Origin` (curl, a test's
/// HTTP client), or from a page the collector served (its `Origin` is this host). A
/// browser sends `Origin` with every POST, so another site's page cannot empty the store
/// with a form or a no-cors `fetch`.
fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    host.is_some() && origin_host == host
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_requests_without_an_origin_or_from_this_host_may_reset() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = axum::http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        for (pairs, ok) in [
            (&[][..], true),
            (&[("host", "127.0.0.1:8080")][..], true),
            (
                &[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "http://127.0.0.1:8080"),
                ][..],
                true,
            ),
            (
                &[
                    ("host", "dev.example:443"),
                    ("origin", "https://dev.example:443"),
                ][..],
                true,
            ),
            (
                &[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "https://evil.example"),
                ][..],
                false,
            ),
            (&[("host", "127.0.0.1:8080"), ("origin", "null")][..], false),
            (
                &[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "http://127.0.0.1:8081"),
                ][..],
                false,
            ),
            (&[("origin", "http://127.0.0.1:8080")][..], false),
        ] {
            assert_eq!(same_origin(&headers(pairs)), ok, "{pairs:?}");
        }
    }

    /// A wait reads only what is new at each wake; over random stores, evictions and resets
    /// it must hold what reading the whole store at each wake would: every matching record
    /// seen since the last reset, once, in order.
    #[test]
    fn a_wait_read_piece_by_piece_matches_the_whole_store_read_each_time() {
        for seed in 1..=300u64 {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = |n: u64| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state % n
            };
            let store = DevStore::new(1 + next(6) as usize);
            let filter = Filter {
                kind: [None, Some(Kind::Good), Some(Kind::Bad)][next(3) as usize],
                test_id: Some("a".into()),
                ..Filter::default()
            };
            let mut seen = Seen::default();
            let mut model: Vec<u64> = Vec::new();
            let mut epoch = store.lock().epoch;
            for _ in 0..80 {
                match next(10) {
                    0 => store.reset(),
                    1..=6 => {
                        let kind = if next(2) == 0 { Kind::Good } else { Kind::Bad };
                        let lines: Vec<Vec<u8>> = (0..1 + next(4))
                            .map(|_| {
                                let test = ["a", "b"][next(2) as usize];
                                let record = match kind {
                                    Kind::Good => json!({"context": {"test_id": test}}),
                                    Kind::Bad => json!({"event": {"context": {"test_id": test}}}),
                                };
                                record.to_string().into_bytes()
                            })
                            .collect();
                        store.remember(kind, lines.iter().map(|l| &l[..]));
                    }
                    _ => {
                        seen.absorb(&store, &filter);
                        let recent = store.lock();
                        if recent.epoch != epoch {
                            epoch = recent.epoch;
                            model.clear();
                        }
                        for e in recent.since_start() {
                            if filter.matches(e.kind, &e.record) && !model.contains(&e.seq) {
                                model.push(e.seq);
                            }
                        }
                        drop(recent);
                        model.sort_unstable();
                        let got: Vec<u64> = seen.matched.iter().map(|e| e.seq).collect();
                        assert_eq!(got, model, "seed {seed}");
                    }
                }
            }
        }
    }

    #[test]
    fn timeouts_read_as_durations_or_milliseconds_within_the_longest_wait() {
        for (text, want) in [
            ("500", Ok(Duration::from_millis(500))),
            ("500ms", Ok(Duration::from_millis(500))),
            ("10s", Ok(Duration::from_secs(10))),
            ("5m", Ok(MAX_WAIT)),
            ("0", Ok(Duration::ZERO)),
        ] {
            assert_eq!(parse_timeout(text), want, "{text}");
        }
        for text in ["6m", "soon", "-1", ""] {
            assert!(parse_timeout(text).is_err(), "{text}");
        }
    }

    #[test]
    fn the_store_keeps_order_across_kinds_and_bounds_each_kind() {
        let store = DevStore::new(2);
        let line = |n: u32| format!(r#"{{"n":{n}}}"#).into_bytes();
        store.remember(Kind::Good, [line(0), line(1)].iter().map(|l| &l[..]));
        store.remember(Kind::Bad, [line(2)].iter().map(|l| &l[..]));
        store.remember(
            Kind::Good,
            [line(3), b"not json".to_vec()].iter().map(|l| &l[..]),
        );
        let seen: Vec<(u64, &str, u64)> = store
            .lock()
            .since_start()
            .iter()
            .map(|e| (e.seq, e.kind.as_str(), e.record["n"].as_u64().unwrap()))
            .collect();
        assert_eq!(seen, [(1, "good", 1), (2, "bad", 2), (3, "good", 3)]);
        let after: Vec<u64> = store.lock().since(1).iter().map(|e| e.seq).collect();
        assert_eq!(after, [2, 3]);
        assert_eq!(*store.changed.borrow(), (4, 0));
        store.reset();
        assert!(store.lock().since_start().is_empty());
        assert_eq!(*store.changed.borrow(), (4, 1));
    }
}
