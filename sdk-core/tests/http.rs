//! The tracker against a scripted HTTP server on loopback: real sockets, real reqwest.
//!
//! Each scenario scripts the server's answers per request and then asserts exactly which event
//! ids arrived, how often, and what `stats()` says.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventwire::protocol::{BatchResponse, Rejection};
use eventwire::{
    DropReason, FailureReason, RetryPolicy, SelfDescribing, Tracker, TrackerBuilder, Uuid,
};
use eventwire_testkit::{ok, status, Collector as Server, Step};

const T: Duration = Duration::from_secs(20);

#[derive(serde::Serialize)]
struct Click {
    target: String,
}

impl SelfDescribing for Click {
    const SCHEMA: &'static str = "iglu:com.example/click/jsonschema/1-0-0";
}

type Failures = Arc<Mutex<Vec<(FailureReason, Vec<Uuid>)>>>;

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        deadline: Duration::from_secs(30),
        max_retry_after: Duration::from_secs(5),
    }
}

fn tracker_for(endpoint: &str) -> TrackerBuilder {
    Tracker::builder()
        .endpoint(endpoint)
        .retry(fast_retries())
        .max_batch_delay(Duration::from_millis(20))
        .request_timeout(Duration::from_millis(500))
}

fn track_n(tracker: &Tracker, n: usize) -> Vec<Uuid> {
    (0..n)
        .map(|i| {
            tracker
                .track(Click {
                    target: format!("button-{i}"),
                })
                .unwrap()
        })
        .collect()
}

fn assert_each_once(map: &HashMap<Uuid, usize>, ids: &[Uuid]) {
    assert_eq!(map.len(), ids.len(), "exactly these ids");
    for id in ids {
        assert_eq!(map.get(id), Some(&1), "{id}");
    }
}

#[test]
fn server_error_then_success() {
    let server = Server::scripted(|n, _| if n == 0 { status(500) } else { ok() });
    let tracker = tracker_for(&server.endpoint()).build().unwrap();
    let ids = track_n(&tracker, 20);
    tracker.flush(T).unwrap();
    // Every id was sent twice (the 500 attempt and the retry) and accepted once.
    let arrivals = server.arrivals();
    assert!(ids.iter().all(|id| arrivals[id] == 2));
    assert_each_once(&server.accepted(), &ids);
    let s = tracker.stats();
    assert_eq!((s.sent, s.requests, s.retries, s.pending), (20, 2, 1, 0));
    // sent_at is stamped on every attempt.
    let seen = server.seen();
    assert!(seen[0].batch.sent_at <= seen[1].batch.sent_at);
}

#[test]
fn too_many_requests_with_retry_after_seconds_pauses_the_pipeline() {
    let server = Server::scripted(|n, _| {
        if n == 0 {
            Step::Answer(429, vec![("retry-after", "1".into())], None)
        } else {
            ok()
        }
    });
    let tracker = tracker_for(&server.endpoint()).build().unwrap();
    let ids = track_n(&tracker, 5);
    tracker.flush(T).unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let pause = seen[1].at - seen[0].at;
    assert!(pause >= Duration::from_millis(950), "paused only {pause:?}");
    assert_each_once(&server.accepted(), &ids);
    let s = tracker.stats();
    assert_eq!((s.sent, s.throttled, s.retries), (5, 1, 1));
}

#[test]
fn unavailable_with_retry_after_http_date() {
    let when = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    let server = Server::scripted(move |n, _| {
        if n == 0 {
            Step::Answer(503, vec![("retry-after", when.clone())], None)
        } else {
            ok()
        }
    });
    let tracker = tracker_for(&server.endpoint()).build().unwrap();
    let ids = track_n(&tracker, 3);
    tracker.flush(T).unwrap();
    let seen = server.seen();
    let pause = seen[1].at - seen[0].at;
    // The date has one-second resolution: at least ~1 s, at most the 5 s cap.
    assert!(
        pause >= Duration::from_millis(900) && pause < Duration::from_secs(5),
        "{pause:?}"
    );
    assert_each_once(&server.accepted(), &ids);
    assert_eq!(tracker.stats().throttled, 1);
}

#[test]
fn payload_too_large_splits_the_batch() {
    // The server takes at most 4 events per request.
    let server = Server::scripted(|_, batch| {
        if batch.events.len() > 4 {
            status(413)
        } else {
            ok()
        }
    });
    let tracker = tracker_for(&server.endpoint())
        .max_batch_delay(Duration::from_secs(3600))
        .build()
        .unwrap();
    let ids = track_n(&tracker, 20);
    tracker.flush(T).unwrap();
    assert_each_once(&server.accepted(), &ids);
    let seen = server.seen();
    assert_eq!(seen[0].status, 413);
    assert_eq!(seen[0].batch.events.len(), 20);
    assert!(seen
        .iter()
        .filter(|s| s.status == 200)
        .all(|s| s.batch.events.len() <= 4));
    let s = tracker.stats();
    assert_eq!((s.sent, s.dropped_total(), s.pending), (20, 0, 0));
}

#[test]
fn hanging_server_times_out_and_the_retry_succeeds() {
    // The first request hangs past the client's 500 ms timeout; then the server answers.
    let server = Server::scripted(|n, _| {
        if n == 0 {
            Step::Hang(Duration::from_secs(2))
        } else {
            ok()
        }
    });
    let tracker = tracker_for(&server.endpoint()).build().unwrap();
    let ids = track_n(&tracker, 7);
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.sent, s.pending), (7, 0));
    assert!(s.retries >= 1);
    // The ids reached the server twice (the hung attempt and the retry) and were answered
    // once: a collector that stored the hung attempt relies on dedup by event id.
    let arrivals = server.arrivals();
    assert!(ids.iter().all(|id| arrivals[id] == 2), "{arrivals:?}");
    assert_each_once(&server.accepted(), &ids);
}

#[test]
fn connection_refused_then_the_server_appears() {
    // Reserve a port, release it, and point the tracker there while nothing listens.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let tracker = tracker_for(&endpoint).build().unwrap();
    let ids = track_n(&tracker, 10);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        tracker.stats().requests >= 2,
        "retried while the server was down"
    );
    assert_eq!(tracker.stats().sent, 0);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let server = Server::scripted_on(listener, |_, _| ok());
    tracker.flush(T).unwrap();
    assert_each_once(&server.arrivals(), &ids);
    let s = tracker.stats();
    assert_eq!((s.sent, s.pending, s.dropped_total()), (10, 0, 0));
}

#[test]
fn per_event_rejections_in_a_200_are_counted_and_not_resent() {
    let server = Server::scripted(|_, batch| {
        let rejected = vec![
            Rejection {
                index: 1,
                event_id: Some(batch.events[1].event_id.to_string()),
                code: "schema_invalid".into(),
            },
            Rejection {
                index: 3,
                event_id: Some(batch.events[3].event_id.to_string()),
                code: "unknown_schema".into(),
            },
        ];
        Step::Answer(
            200,
            vec![],
            Some(BatchResponse {
                accepted: batch.events.len() as u64 - 3,
                duplicates: 1,
                rejected,
            }),
        )
    });
    let failures: Failures = Arc::default();
    let sink = failures.clone();
    let tracker = tracker_for(&server.endpoint())
        .max_batch_delay(Duration::from_secs(3600))
        .on_failure(move |r, events| {
            sink.lock()
                .unwrap()
                .push((r.clone(), events.iter().map(|e| e.event_id()).collect()))
        })
        .build()
        .unwrap();
    let ids = track_n(&tracker, 6);
    tracker.flush(T).unwrap();
    assert_each_once(&server.arrivals(), &ids);
    let s = tracker.stats();
    assert_eq!((s.sent, s.duplicates, s.rejected, s.requests), (4, 1, 2, 1));
    let mut failures = failures.lock().unwrap().clone();
    failures.sort_by_key(|(r, _)| format!("{r:?}"));
    assert_eq!(
        failures,
        vec![
            (
                FailureReason::Rejected("schema_invalid".into()),
                vec![ids[1]]
            ),
            (
                FailureReason::Rejected("unknown_schema".into()),
                vec![ids[3]]
            ),
        ]
    );
}

#[test]
fn unauthorized_is_dropped_loudly_not_retried_and_write_key_is_sent() {
    let server = Server::scripted(|_, _| status(401));
    let tracker = tracker_for(&server.endpoint())
        .write_key("wrong-key")
        .build()
        .unwrap();
    track_n(&tracker, 3);
    tracker.flush(T).unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "401 is not retried");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer wrong-key"));
    let s = tracker.stats();
    assert_eq!((s.sent, s.dropped(DropReason::Unauthorized)), (0, 3));
}

#[test]
fn malformed_400_counts_as_rejected() {
    let server = Server::scripted(|_, _| status(400));
    let tracker = tracker_for(&server.endpoint()).build().unwrap();
    track_n(&tracker, 2);
    tracker.flush(T).unwrap();
    assert_eq!(server.seen().len(), 1);
    let s = tracker.stats();
    assert_eq!((s.rejected, s.sent), (2, 0));
}

#[test]
fn large_bodies_are_gzipped_small_ones_are_not() {
    let server = Server::scripted(|_, _| ok());
    let tracker = tracker_for(&server.endpoint())
        .gzip_min_bytes(Some(4096))
        .max_batch_events(200)
        .max_batch_delay(Duration::from_secs(3600))
        .write_key("k")
        .write_key_in_body(true)
        .build()
        .unwrap();
    track_n(&tracker, 1);
    tracker.flush(T).unwrap();
    track_n(&tracker, 200);
    tracker.flush(T).unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(!seen[0].gzip);
    assert!(seen[1].gzip);
    assert_eq!(seen[1].batch.events.len(), 200);
    assert_eq!(seen[1].batch.write_key.as_deref(), Some("k"));
    let s = tracker.stats();
    assert_eq!(s.sent, 201);
    assert!(
        s.bytes_sent < 200 * 100,
        "compressed: {} bytes",
        s.bytes_sent
    );
}

/// An endpoint that is not a collector's, or not only: a redirect to a web page (the POST
/// turned into a GET), a redirect that re-posts the body elsewhere, a 2xx that is not a batch
/// answer, a 200 whose answer does not account for the batch. None of them is delivery: each
/// event ends `dropped(not_a_collector)`, through the failure callback, and is not resent.
#[test]
fn an_answer_that_is_not_a_collectors_is_never_counted_as_sent() {
    let location =
        |code: u16, to: &str| Step::Answer(code, vec![("location", to.to_owned())], None);
    let answer = |n: usize| BatchResponse {
        accepted: n as u64,
        ..Default::default()
    };
    type Answer = Box<dyn Fn(usize) -> Step + Send + Sync>;
    let cases: Vec<(&str, Answer)> = vec![
        (
            "301 to a page",
            Box::new(move |_| location(301, "/welcome")),
        ),
        (
            "302 to a page",
            Box::new(move |_| location(302, "/welcome")),
        ),
        (
            "303 to a page",
            Box::new(move |_| location(303, "/welcome")),
        ),
        (
            "307 re-posts elsewhere",
            Box::new(move |_| location(307, "/elsewhere")),
        ),
        (
            "308 re-posts elsewhere",
            Box::new(move |_| location(308, "/elsewhere")),
        ),
        ("204 no content", Box::new(|_| Step::Raw(204, vec![], ""))),
        (
            "202 from a proxy",
            Box::new(|_| Step::Raw(202, vec![], "queued")),
        ),
        (
            "200 web page",
            Box::new(|_| {
                Step::Raw(
                    200,
                    vec![("content-type", "text/html".into())],
                    "<html>hi</html>",
                )
            }),
        ),
        ("200 empty body", Box::new(|_| Step::Raw(200, vec![], ""))),
        (
            "200 other JSON",
            Box::new(|_| Step::Raw(200, vec![], r#"{"status":"ok"}"#)),
        ),
        (
            "200 answer for fewer events",
            Box::new(move |n| Step::Answer(200, vec![], Some(answer(n - 1)))),
        ),
        (
            "200 rejection out of range",
            Box::new(move |n| {
                Step::Answer(
                    200,
                    vec![],
                    Some(BatchResponse {
                        accepted: n as u64 - 1,
                        duplicates: 0,
                        rejected: vec![Rejection {
                            index: n + 5,
                            event_id: None,
                            code: "schema_invalid".into(),
                        }],
                    }),
                )
            }),
        ),
    ];
    for (name, step) in cases {
        let events = 4;
        let server = Server::scripted(move |_, batch| step(batch.events.len()));
        let failures: Failures = Arc::default();
        let sink = failures.clone();
        let tracker = tracker_for(&server.endpoint())
            .max_batch_delay(Duration::from_secs(3600))
            .on_failure(move |r, events| {
                sink.lock()
                    .unwrap()
                    .push((r.clone(), events.iter().map(|e| e.event_id()).collect()))
            })
            .build()
            .unwrap();
        let ids = track_n(&tracker, events);
        tracker.flush(T).unwrap();
        let s = tracker.stats();
        assert_eq!(s.sent, 0, "{name}: counted as sent: {s:?}");
        assert_eq!(
            s.dropped(DropReason::NotACollector),
            events as u64,
            "{name}: {s:?}"
        );
        assert_eq!((s.pending, s.rejected), (0, 0), "{name}");
        assert_eq!(server.seen().len(), 1, "{name}: not resent");
        // The redirects were not followed: nothing reached the page or another path.
        assert_eq!(server.strays(), vec![], "{name}");
        assert_eq!(
            *failures.lock().unwrap(),
            vec![(FailureReason::Dropped(DropReason::NotACollector), ids)],
            "{name}"
        );
    }
}

/// `Retry-After` is honoured on any 5xx that carries it (gateways send it with 500, 502 and
/// 529 too), not only on 503.
#[test]
fn retry_after_on_any_server_error_pauses_the_pipeline() {
    for code in [500u16, 502, 504, 529] {
        let server = Server::scripted(move |n, _| {
            if n == 0 {
                Step::Answer(code, vec![("retry-after", "1".into())], None)
            } else {
                ok()
            }
        });
        let tracker = tracker_for(&server.endpoint()).build().unwrap();
        let ids = track_n(&tracker, 3);
        tracker.flush(T).unwrap();
        let seen = server.seen();
        let pause = seen[1].at - seen[0].at;
        assert!(
            pause >= Duration::from_millis(950),
            "{code}: paused only {pause:?}"
        );
        assert_each_once(&server.accepted(), &ids);
    }
}

/// Credentials or a fragment in the endpoint URL are not a redirect: the client does not
/// send them, so the answer's URL lacks them, and it is still the collector's answer.
#[test]
fn credentials_in_the_endpoint_are_not_taken_for_a_redirect() {
    let server = Server::scripted(|_, _| ok());
    let endpoint = server.endpoint().replace("http://", "http://user:secret@");
    let tracker = tracker_for(&endpoint).build().unwrap();
    let ids = track_n(&tracker, 3);
    tracker.flush(T).unwrap();
    assert_each_once(&server.accepted(), &ids);
    let s = tracker.stats();
    assert_eq!((s.sent, s.dropped_total()), (3, 0), "{s:?}");
}

/// A 200 whose body is longer than the tracker reads (1 MiB) is not a batch answer, even if
/// its first bytes look like one.
#[test]
fn a_body_cut_at_the_read_limit_is_not_a_batch_answer() {
    let body: &'static str = Box::leak(
        format!("{{\"accepted\":2}}{}garbage", " ".repeat(2 * 1024 * 1024)).into_boxed_str(),
    );
    let server = Server::scripted(move |_, _| Step::Raw(200, vec![], body));
    let tracker = tracker_for(&server.endpoint()).build().unwrap();
    track_n(&tracker, 2);
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!(
        (s.sent, s.dropped(DropReason::NotACollector)),
        (0, 2),
        "{s:?}"
    );
}
