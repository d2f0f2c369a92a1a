//! One loopback HTTP sink for every protocol: accepts any POST on any path, decodes gzip,
//! reads the request as the protocol it is (ours, Segment's and RudderStack's batches,
//! PostHog's batch or single event, Snowplow's `payload_data`), counts its events, notes
//! each event's sequence number to tell deliveries from duplicates, and answers 200 the way
//! each service does. (eventwire's own tracker is measured against `eventwire-testkit`'s
//! collector; this one speaks every peer's protocol.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The marker every benchmark event carries once, followed by its sequence number:
/// `MediaPlay::sample(i)` has `media_id: "b0074dlv-{i}"`.
pub const MARKER: &[u8] = b"b0074dlv-";

/// What the sink has seen.
#[derive(Debug, Default)]
pub struct Counts {
    /// Events in request bodies.
    pub events: AtomicU64,
    /// Events whose sequence number was new.
    pub unique: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Events without a readable sequence number (should stay 0).
    pub unreadable: AtomicU64,
    /// Nanoseconds after `start` when the last new event arrived.
    pub last_new_ns: AtomicU64,
}

/// A running sink.
pub struct Sink {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it counted.
    pub counts: Arc<Counts>,
    start: Instant,
}

impl Sink {
    /// Starts the sink on its own thread and tokio runtime; `capacity` is the largest
    /// sequence number expected.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound (the benchmark cannot run).
    #[must_use]
    pub fn start(capacity: u64) -> Sink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let counts = Arc::new(Counts::default());
        let seen = Arc::new(Mutex::new(vec![
            0u64;
            usize::try_from(capacity / 64 + 1)
                .unwrap_or(0)
        ]));
        let start = Instant::now();
        let state = Arc::new(State {
            counts: counts.clone(),
            seen,
            start,
        });
        std::thread::Builder::new()
            .name("sink".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    while let Ok((stream, _)) = listener.accept().await {
                        let state = state.clone();
                        tokio::spawn(async move {
                            let service =
                                hyper::service::service_fn(move |req| handle(req, state.clone()));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            })
            .expect("spawn sink");
        Sink {
            addr,
            counts,
            start,
        }
    }

    /// `http://127.0.0.1:port`
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Distinct events delivered so far.
    #[must_use]
    pub fn unique(&self) -> u64 {
        self.counts.unique.load(Ordering::Relaxed)
    }

    /// When the last new event arrived, as time since `t` (zero if before `t`).
    #[must_use]
    pub fn last_new_since(&self, t: Instant) -> std::time::Duration {
        let at = self.start
            + std::time::Duration::from_nanos(self.counts.last_new_ns.load(Ordering::Relaxed));
        at.saturating_duration_since(t)
    }
}

struct State {
    counts: Arc<Counts>,
    seen: Arc<Mutex<Vec<u64>>>,
    start: Instant,
}

/// The envelopes of the protocols: each holds its events in one of these arrays; a body
/// with none of them is a single event (PostHog's and RudderStack's single-event calls).
#[derive(Deserialize)]
struct Envelope<'a> {
    /// eventwire: `{"events": [...]}`
    #[serde(borrow, default)]
    events: Option<Vec<&'a RawValue>>,
    /// Segment, RudderStack, PostHog `/batch/`: `{"batch": [...]}`
    #[serde(borrow, default)]
    batch: Option<Vec<&'a RawValue>>,
    /// Snowplow `payload_data`: `{"schema": "...payload_data...", "data": [...]}`
    #[serde(borrow, default)]
    data: Option<Vec<&'a RawValue>>,
}

fn sequence(event: &[u8]) -> Option<u64> {
    let at = event.windows(MARKER.len()).position(|w| w == MARKER)? + MARKER.len();
    let digits = event[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&event[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn record(state: &State, body: &[u8]) -> u64 {
    let events: Vec<&[u8]> = match serde_json::from_slice::<Envelope<'_>>(body) {
        Ok(Envelope {
            events: Some(e), ..
        })
        | Ok(Envelope { batch: Some(e), .. })
        | Ok(Envelope { data: Some(e), .. }) => e.iter().map(|r| r.get().as_bytes()).collect(),
        _ => vec![body],
    };
    let c = &state.counts;
    let mut seen = state
        .seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut new = 0;
    for event in &events {
        let Some(seq) = sequence(event) else {
            c.unreadable.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (word, bit) = (
            usize::try_from(seq / 64).unwrap_or(usize::MAX),
            1u64 << (seq % 64),
        );
        if let Some(w) = seen.get_mut(word) {
            if *w & bit == 0 {
                *w |= bit;
                new += 1;
            }
        }
    }
    drop(seen);
    c.events.fetch_add(events.len() as u64, Ordering::Relaxed);
    if new > 0 {
        c.unique.fetch_add(new, Ordering::Relaxed);
        let ns = u64::try_from(state.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        c.last_new_ns.fetch_max(ns, Ordering::Relaxed);
    }
    events.len() as u64
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip")
        || req
            .uri()
            .query()
            .is_some_and(|q| q.contains("compression=gzip"));
    let path = req.uri().path().to_owned();
    let plain = eventwire_testkit::read_body(req.into_body(), gzip).await;
    let n = record(&state, &plain);
    state.counts.requests.fetch_add(1, Ordering::Relaxed);
    // Each service's success answer.
    let answer = if path.starts_with("/v1/batch") && path.len() == 9 {
        // eventwire and Segment/RudderStack share the path; ours reads the JSON body, the
        // others ignore it.
        format!(r#"{{"accepted":{n},"duplicates":0,"rejected":[],"success":true}}"#)
    } else if path.contains("/batch") || path.starts_with("/i/") || path.starts_with("/capture") {
        r#"{"status":"Ok"}"#.to_owned()
    } else if path.contains("tp2") {
        "ok".to_owned()
    } else {
        "OK".to_owned()
    };
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer)))
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(capacity: u64) -> State {
        State {
            counts: Arc::new(Counts::default()),
            seen: Arc::new(Mutex::new(vec![
                0;
                usize::try_from(capacity / 64 + 1)
                    .unwrap_or(0)
            ])),
            start: Instant::now(),
        }
    }

    #[test]
    fn every_protocol_is_counted_and_duplicates_told_apart() {
        let s = state(100);
        let ours = br#"{"sent_at":"x","events":[{"data":{"media_id":"b0074dlv-1"}},{"data":{"media_id":"b0074dlv-2"}}]}"#;
        let segment =
            br#"{"batch":[{"type":"track","properties":{"media_id":"b0074dlv-3"}}],"context":{}}"#;
        let snowplow = br#"{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"ue","ue_pr":"{\"data\":{\"data\":{\"media_id\":\"b0074dlv-4\"}}}"}]}"#;
        let posthog_single =
            br#"{"api_key":"k","event":"play","properties":{"media_id":"b0074dlv-5"}}"#;
        let again = br#"{"batch":[{"properties":{"media_id":"b0074dlv-3"}}]}"#;
        assert_eq!(record(&s, ours), 2);
        assert_eq!(record(&s, segment), 1);
        assert_eq!(record(&s, snowplow), 1);
        assert_eq!(record(&s, posthog_single), 1);
        assert_eq!(record(&s, again), 1);
        assert_eq!(s.counts.events.load(Ordering::Relaxed), 6);
        assert_eq!(
            s.counts.unique.load(Ordering::Relaxed),
            5,
            "seq 3 came twice"
        );
        assert_eq!(s.counts.unreadable.load(Ordering::Relaxed), 0);
        assert_eq!(record(&s, br#"{"batch":[{"no":"marker"}]}"#), 1);
        assert_eq!(s.counts.unreadable.load(Ordering::Relaxed), 1);
    }
}
