//! Tracker behaviour on the in-memory transport: nothing lost, nothing duplicated, every
//! drop counted with its reason, hooks and callbacks fire, lifecycle works in every context.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventwire::protocol::{BatchResponse, Rejection};
use eventwire::transport::Response;
use eventwire::{
    DropReason, Entity, FailureReason, FlushError, MemoryTransport, RetryPolicy, SelfDescribing,
    ShutdownError, TrackError, Tracker, TrackerBuilder, Uuid, WhenFull,
};
use serde_json::json;

const T: Duration = Duration::from_secs(10);

#[derive(serde::Serialize)]
struct PlayStarted {
    media_id: String,
    position_s: f64,
}

impl SelfDescribing for PlayStarted {
    const SCHEMA: &'static str = "iglu:com.example.media/play/jsonschema/1-0-0";
}

fn play(i: usize) -> PlayStarted {
    PlayStarted {
        media_id: format!("m{i}"),
        position_s: i as f64,
    }
}

fn builder(transport: &MemoryTransport) -> TrackerBuilder {
    Tracker::builder()
        .transport(transport.clone())
        .environment("test")
        .service("unit")
        .team("sdk")
        .version("abc123")
        .max_batch_delay(Duration::from_millis(20))
}

/// Counts how often each id arrived.
fn arrivals(transport: &MemoryTransport) -> HashMap<Uuid, usize> {
    let mut seen = HashMap::new();
    for id in transport.event_ids() {
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

type Failures = Arc<Mutex<Vec<(FailureReason, Vec<Uuid>)>>>;

fn record_failures(b: TrackerBuilder) -> (TrackerBuilder, Failures) {
    let failures: Failures = Arc::default();
    let sink = failures.clone();
    let b = b.on_failure(move |reason, events| {
        sink.lock().unwrap().push((
            reason.clone(),
            events.iter().map(|e| e.event_id()).collect(),
        ));
    });
    (b, failures)
}

#[test]
fn every_event_arrives_exactly_once_across_threads_flush_and_shutdown() {
    let transport = MemoryTransport::new();
    let tracker = builder(&transport).max_batch_events(64).build().unwrap();
    let mut handles = Vec::new();
    for t in 0..4 {
        let tracker = tracker.clone();
        handles.push(std::thread::spawn(move || {
            (0..500)
                .map(|i| tracker.track(play(t * 1000 + i)).unwrap())
                .collect::<Vec<_>>()
        }));
    }
    let mut ids: Vec<Uuid> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    tracker.flush(T).unwrap();
    // More after the flush, delivered by shutdown.
    for i in 0..100 {
        ids.push(tracker.track(play(i)).unwrap());
    }
    tracker.shutdown(T).unwrap();

    let seen = arrivals(&transport);
    assert_eq!(seen.len(), 2100);
    for id in &ids {
        assert_eq!(seen.get(id), Some(&1), "{id} must arrive exactly once");
    }
    let s = tracker.stats();
    assert_eq!(
        (s.tracked, s.sent, s.rejected, s.pending),
        (2100, 2100, 0, 0)
    );
    assert_eq!(s.dropped_total(), 0);
    assert_eq!(s.retries, 0);
    // Batches respect the count limit, and every batch carries a fresh sent_at.
    for batch in transport.batches() {
        assert!(batch.events.len() <= 64);
        assert_eq!(batch.sent_at.len(), 24);
    }
}

#[test]
fn envelope_carries_labels_library_identity_and_entities() {
    let transport = MemoryTransport::new();
    let tracker = builder(&transport).anonymous_id("anon-7").build().unwrap();
    tracker.set_user_id(Some("user-1".into()));
    let player = Entity {
        schema: "iglu:com.example.media/player/jsonschema/1-0-0".into(),
        data: json!({"kind": "video"}),
    };
    let id = tracker
        .track_with(play(1), std::slice::from_ref(&player))
        .unwrap();
    let id2 = tracker
        .track_json(
            "iglu:com.example/search/jsonschema/1-0-0",
            &json!({"q": "x"}),
        )
        .unwrap();
    tracker.flush(T).unwrap();
    let events: Vec<_> = transport
        .batches()
        .into_iter()
        .flat_map(|b| b.events)
        .collect();
    assert_eq!(events.len(), 2);
    let e = &events[0];
    assert_eq!(e.event_id, id);
    assert_eq!(e.event_id.get_version_num(), 7, "event ids are UUID v7");
    assert_eq!(e.schema, PlayStarted::SCHEMA);
    assert_eq!(e.data, json!({"media_id": "m1", "position_s": 1.0}));
    assert_eq!(e.entities, vec![player]);
    assert_eq!(e.context.labels.environment.as_deref(), Some("test"));
    assert_eq!(e.context.labels.service.as_deref(), Some("unit"));
    assert_eq!(e.context.labels.team.as_deref(), Some("sdk"));
    assert_eq!(e.context.labels.version.as_deref(), Some("abc123"));
    assert_eq!(e.context.library.name, "eventwire-rust");
    assert_eq!(e.context.anonymous_id, "anon-7");
    assert_eq!(e.context.user_id.as_deref(), Some("user-1"));
    assert!(e.context.session_id.is_some());
    assert_eq!(events[1].event_id, id2);
    assert_eq!(events[1].context.session_id, e.context.session_id);
    assert!(events[1].entities.is_empty());
    assert!(events[0].created_at <= events[1].created_at);
    tracker.reset();
    assert_ne!(tracker.anonymous_id(), "anon-7");
}

#[test]
fn refuses_bad_uris_and_oversized_events_with_counts() {
    let transport = MemoryTransport::new();
    let tracker = builder(&transport).max_event_bytes(1024).build().unwrap();
    let err = tracker
        .track_json("iglu:com.example/../jsonschema/1-0-0", &json!({}))
        .unwrap_err();
    assert!(matches!(err, TrackError::InvalidSchema { .. }), "{err}");
    assert!(err.to_string().contains("invalid schema URI"));
    let bad_entity = Entity {
        schema: "not-a-uri".into(),
        data: json!({}),
    };
    assert!(matches!(
        tracker.track_with(play(1), &[bad_entity]),
        Err(TrackError::InvalidSchema { .. })
    ));
    let big = json!({"blob": "x".repeat(2000)});
    let err = tracker
        .track_json("iglu:com.example/blob/jsonschema/1-0-0", &big)
        .unwrap_err();
    assert!(
        matches!(err, TrackError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
    // Non-string map keys cannot be JSON.
    let mut weird = std::collections::BTreeMap::new();
    weird.insert(vec![1u8], 1);
    #[derive(serde::Serialize)]
    struct Weird(std::collections::BTreeMap<Vec<u8>, i32>);
    impl SelfDescribing for Weird {
        const SCHEMA: &'static str = "iglu:com.example/weird/jsonschema/1-0-0";
    }
    assert!(matches!(
        tracker.track(Weird(weird)),
        Err(TrackError::Serialize(_))
    ));
    // A typed event whose constant URI is wrong is refused at run time too.
    #[derive(serde::Serialize)]
    struct Misnamed;
    impl SelfDescribing for Misnamed {
        const SCHEMA: &'static str = "iglu:com.example/misnamed/jsonschema/1.0.0";
    }
    assert!(matches!(
        tracker.track(Misnamed),
        Err(TrackError::InvalidSchema { .. })
    ));
    // A good event still goes through.
    tracker.track(play(1)).unwrap();
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!(s.dropped(DropReason::TooLarge), 1);
    assert_eq!((s.tracked, s.sent), (1, 1));
    assert_eq!(transport.event_ids().len(), 1);
}

#[test]
fn a_full_queue_drops_new_events_and_counts_them() {
    // The first request blocks the worker for a while, so the queue (8 slots) fills up.
    let mut first = true;
    let transport = MemoryTransport::respond_with(move |batch| {
        if std::mem::take(&mut first) {
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(Response::json(
            200,
            &BatchResponse {
                accepted: batch.events.len() as u64,
                ..Default::default()
            },
        ))
    });
    let (b, failures) = record_failures(builder(&transport).queue_capacity(8).max_batch_events(1));
    let tracker = b.build().unwrap();
    let mut accepted = Vec::new();
    let mut full = 0;
    for i in 0..200 {
        match tracker.track(play(i)) {
            Ok(id) => accepted.push(id),
            Err(TrackError::QueueFull) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full > 0, "the queue must have filled");
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!(s.dropped(DropReason::QueueFull), full);
    assert_eq!(s.tracked, accepted.len() as u64);
    assert_eq!(s.tracked + full, 200);
    assert_eq!(s.sent, s.tracked);
    let seen = arrivals(&transport);
    assert_eq!(seen.len(), accepted.len());
    assert!(accepted.iter().all(|id| seen[id] == 1));
    // Synchronous refusals are returned to the caller, not passed to the callback.
    assert!(failures.lock().unwrap().is_empty());
}

#[test]
fn blocking_when_full_waits_for_room_instead_of_dropping() {
    let transport = MemoryTransport::respond_with(|batch| {
        std::thread::sleep(Duration::from_millis(5));
        Ok(Response::json(
            200,
            &BatchResponse {
                accepted: batch.events.len() as u64,
                ..Default::default()
            },
        ))
    });
    let tracker = builder(&transport)
        .queue_capacity(4)
        .max_batch_events(2)
        .when_full(WhenFull::Block(Duration::from_secs(5)))
        .build()
        .unwrap();
    for i in 0..100 {
        tracker.track(play(i)).unwrap();
    }
    tracker.shutdown(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.tracked, s.sent, s.dropped_total()), (100, 100, 0));
}

#[test]
fn before_send_can_scrub_and_drop() {
    let transport = MemoryTransport::new();
    let tracker = builder(&transport)
        .before_send(|mut event| {
            if event.schema.contains("/consent_denied/") {
                return None;
            }
            if let Some(obj) = event.data.as_object_mut() {
                obj.remove("email");
            }
            Some(event)
        })
        .build()
        .unwrap();
    let kept = tracker
        .track_json(
            "iglu:com.example/signup/jsonschema/1-0-0",
            &json!({"plan": "pro", "email": "a@b.c"}),
        )
        .unwrap();
    let err = tracker
        .track_json(
            "iglu:com.example/consent_denied/jsonschema/1-0-0",
            &json!({}),
        )
        .unwrap_err();
    assert!(matches!(err, TrackError::Filtered));
    tracker.flush(T).unwrap();
    let events: Vec<_> = transport
        .batches()
        .into_iter()
        .flat_map(|b| b.events)
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_id, kept);
    assert_eq!(events[0].data, json!({"plan": "pro"}));
    let s = tracker.stats();
    assert_eq!((s.filtered, s.sent, s.dropped_total()), (1, 1, 0));
}

#[test]
fn per_event_rejections_are_reported_and_not_resent() {
    let transport = MemoryTransport::respond_with(|batch| {
        // Reject every event whose position is odd.
        let rejected: Vec<Rejection> = batch
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.data["position_s"].as_f64().unwrap() as u64 % 2 == 1)
            .map(|(index, e)| Rejection {
                index,
                event_id: Some(e.event_id.to_string()),
                code: "schema_invalid".into(),
            })
            .collect();
        Ok(Response::json(
            200,
            &BatchResponse {
                accepted: (batch.events.len() - rejected.len()) as u64,
                duplicates: 0,
                rejected,
            },
        ))
    });
    let (b, failures) = record_failures(builder(&transport));
    let tracker = b.build().unwrap();
    let ids: Vec<Uuid> = (0..10).map(|i| tracker.track(play(i)).unwrap()).collect();
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.sent, s.rejected, s.retries), (5, 5, 0));
    let failures = failures.lock().unwrap();
    let rejected: Vec<Uuid> = failures
        .iter()
        .filter(|(r, _)| *r == FailureReason::Rejected("schema_invalid".into()))
        .flat_map(|(_, ids)| ids.clone())
        .collect();
    let odd: Vec<Uuid> = ids.iter().copied().skip(1).step_by(2).collect();
    assert_eq!(rejected, odd);
    assert_eq!(
        arrivals(&transport).values().max(),
        Some(&1),
        "nothing resent"
    );
}

#[test]
fn split_on_413_delivers_each_event_once_and_refuses_a_lone_giant() {
    // The "collector" takes at most 3 events per request.
    let transport = MemoryTransport::respond_with(|batch| {
        let too_big =
            batch.events.len() > 3 || batch.events.iter().any(|e| e.data.get("huge").is_some());
        if too_big {
            return Ok(Response::status(413));
        }
        Ok(Response::json(
            200,
            &BatchResponse {
                accepted: batch.events.len() as u64,
                ..Default::default()
            },
        ))
    });
    let (b, failures) = record_failures(builder(&transport).max_batch_events(10));
    let tracker = b.build().unwrap();
    let mut ids: Vec<Uuid> = (0..9).map(|i| tracker.track(play(i)).unwrap()).collect();
    let giant = tracker
        .track_json(
            "iglu:com.example/blob/jsonschema/1-0-0",
            &json!({"huge": true}),
        )
        .unwrap();
    ids.push(tracker.track(play(99)).unwrap());
    tracker.flush(T).unwrap();
    let accepted: Vec<Uuid> = transport
        .batches()
        .into_iter()
        .filter(|b| b.events.len() <= 3 && b.events.iter().all(|e| e.data.get("huge").is_none()))
        .flat_map(|b| b.events.into_iter().map(|e| e.event_id))
        .collect();
    let mut sorted = accepted.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), accepted.len(), "no event accepted twice");
    assert_eq!(accepted.len(), 10);
    assert!(ids.iter().all(|id| accepted.contains(id)));
    let s = tracker.stats();
    assert_eq!((s.sent, s.dropped(DropReason::TooLarge)), (10, 1));
    assert_eq!(
        *failures.lock().unwrap(),
        vec![(FailureReason::Dropped(DropReason::TooLarge), vec![giant])]
    );
}

#[test]
fn shutdown_timeout_gives_up_pending_events_with_a_reason() {
    let transport = MemoryTransport::respond_with(|_| Ok(Response::status(500)));
    let (b, failures) = record_failures(builder(&transport).retry(RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        deadline: Duration::from_secs(3600),
        ..RetryPolicy::default()
    }));
    let tracker = b.build().unwrap();
    let ids: Vec<Uuid> = (0..5).map(|i| tracker.track(play(i)).unwrap()).collect();
    assert_eq!(
        tracker.flush(Duration::from_millis(200)),
        Err(FlushError::Timeout { pending: 5 })
    );
    assert_eq!(
        tracker.shutdown(Duration::from_millis(200)),
        Err(ShutdownError::Timeout { dropped: 5 })
    );
    let s = tracker.stats();
    assert_eq!(
        (s.sent, s.dropped(DropReason::ShutDown), s.pending),
        (0, 5, 0)
    );
    assert!(s.retries >= 2);
    let failures = failures.lock().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, FailureReason::Dropped(DropReason::ShutDown));
    assert_eq!(failures[0].1, ids);
    // After shutdown: clear errors, counted.
    assert!(matches!(tracker.track(play(9)), Err(TrackError::ShutDown)));
    assert_eq!(tracker.flush(T), Err(FlushError::AlreadyShutdown));
    assert_eq!(tracker.shutdown(T), Err(ShutdownError::AlreadyShutdown));
    assert_eq!(tracker.stats().dropped(DropReason::ShutDown), 6);
}

#[test]
fn retry_deadline_drops_with_a_reason() {
    let transport = MemoryTransport::respond_with(|_| Ok(Response::status(502)));
    let (b, failures) = record_failures(builder(&transport).retry(RetryPolicy {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        deadline: Duration::from_millis(150),
        ..RetryPolicy::default()
    }));
    let tracker = b.build().unwrap();
    let id = tracker.track(play(1)).unwrap();
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.sent, s.dropped(DropReason::RetryExpired)), (0, 1));
    assert!(s.requests >= 2 && s.retries == s.requests - 1);
    assert_eq!(
        *failures.lock().unwrap(),
        vec![(FailureReason::Dropped(DropReason::RetryExpired), vec![id])]
    );
}

#[test]
fn a_panicking_failure_callback_does_not_stop_delivery() {
    let transport = MemoryTransport::respond_with(|batch| {
        if batch.events.iter().any(|e| e.schema.contains("/bad/")) {
            Ok(Response::status(422))
        } else {
            Ok(Response::json(
                200,
                &BatchResponse {
                    accepted: batch.events.len() as u64,
                    ..Default::default()
                },
            ))
        }
    });
    let tracker = builder(&transport)
        .max_batch_events(1)
        .on_failure(|_, _| panic!("user bug"))
        .build()
        .unwrap();
    tracker
        .track_json("iglu:com.example/bad/jsonschema/1-0-0", &json!({}))
        .unwrap();
    tracker.track(play(2)).unwrap();
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.sent, s.dropped(DropReason::HttpStatus)), (1, 1));
}

#[test]
fn batches_leave_after_the_delay_without_a_flush() {
    let transport = MemoryTransport::new();
    let tracker = builder(&transport).build().unwrap();
    tracker.track(play(1)).unwrap();
    // The delay is 20 ms; give it plenty (bounded) of time.
    for _ in 0..200 {
        if transport.event_ids().len() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(transport.event_ids().len(), 1);
}

#[test]
fn dropping_the_last_handle_delivers_pending_events() {
    let transport = MemoryTransport::new();
    {
        let tracker = builder(&transport)
            .max_batch_delay(Duration::from_secs(3600))
            .build()
            .unwrap();
        for i in 0..10 {
            tracker.track(play(i)).unwrap();
        }
    }
    assert_eq!(transport.event_ids().len(), 10);
}

#[test]
fn the_guard_shuts_down_on_drop() {
    let transport = MemoryTransport::new();
    let tracker = builder(&transport)
        .max_batch_delay(Duration::from_secs(3600))
        .build()
        .unwrap();
    {
        let _guard = tracker.shutdown_guard(T);
        for i in 0..10 {
            tracker.track(play(i)).unwrap();
        }
    }
    assert_eq!(transport.event_ids().len(), 10);
    assert!(matches!(tracker.track(play(1)), Err(TrackError::ShutDown)));
}

#[test]
fn builder_rejects_bad_settings() {
    let t = MemoryTransport::new();
    assert!(Tracker::builder().build().is_err());
    assert!(Tracker::builder().endpoint("ftp://x").build().is_err());
    assert!(builder(&t).max_batch_events(0).build().is_err());
    assert!(builder(&t).queue_capacity(0).build().is_err());
    assert!(builder(&t)
        .max_event_bytes(2 * 1024 * 1024)
        .build()
        .is_err());
    assert!(builder(&t).max_batch_delay(Duration::ZERO).build().is_err());
}

// Lifecycle from every kind of caller: no deadlock, nothing lost.

fn lifecycle_round(tracker: &Tracker, transport: &MemoryTransport, n: usize) {
    for i in 0..n {
        tracker.track(play(i)).unwrap();
    }
    tracker.flush(T).unwrap();
    assert_eq!(transport.event_ids().len(), n);
}

#[test]
fn lifecycle_from_plain_main() {
    let transport = MemoryTransport::new();
    let tracker = builder(&transport).build().unwrap();
    lifecycle_round(&tracker, &transport, 50);
    tracker.shutdown(T).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_inside_a_multi_thread_runtime() {
    let transport = MemoryTransport::new();
    let tracker = builder(&transport).build().unwrap();
    lifecycle_round(&tracker, &transport, 50);
    for i in 0..50 {
        tracker.track(play(i)).unwrap();
    }
    tracker.flush_async(T).await.unwrap();
    assert_eq!(transport.event_ids().len(), 100);
    tracker.track(play(1)).unwrap();
    tracker.shutdown_async(T).await.unwrap();
    assert_eq!(transport.event_ids().len(), 101);
}

#[tokio::test(flavor = "current_thread")]
async fn lifecycle_inside_a_current_thread_runtime() {
    let transport = MemoryTransport::new();
    let tracker = builder(&transport).build().unwrap();
    // A blocking flush on the runtime's only thread: the worker does not need this runtime.
    lifecycle_round(&tracker, &transport, 50);
    for i in 0..50 {
        tracker.track(play(i)).unwrap();
    }
    tracker.flush_async(T).await.unwrap();
    tracker.track(play(1)).unwrap();
    tracker.shutdown(T).unwrap();
    assert_eq!(transport.event_ids().len(), 101);
}

#[tokio::test(flavor = "current_thread")]
async fn async_flush_timeout_is_enforced_without_the_callers_timer() {
    let transport =
        MemoryTransport::respond_with(|_| Ok(Response::status(503).with_retry_after("30")));
    let tracker = builder(&transport).build().unwrap();
    tracker.track(play(1)).unwrap();
    let r = tracker.flush_async(Duration::from_millis(200)).await;
    assert_eq!(r, Err(FlushError::Timeout { pending: 1 }));
    let r = tracker.shutdown_async(Duration::from_millis(200)).await;
    assert_eq!(r, Err(ShutdownError::Timeout { dropped: 1 }));
    assert_eq!(tracker.stats().throttled, 1);
}

/// A flush waits for the events tracked before it, whatever happens to events tracked after
/// it: here the first batch is held by a 503 with `Retry-After` while a second batch waits in
/// the queue, and ten `track()` calls made while the flush waits are refused (`queue_full`).
/// Those refusals settle later events, not the waiting ones, so the flush must not answer
/// `Ok` before both batches tracked before it are answered.
#[test]
fn a_flush_waits_for_earlier_events_while_later_ones_are_refused() {
    type Answered = Arc<Mutex<HashMap<Uuid, std::time::Instant>>>;
    let answered: Answered = Arc::default();
    let mark = answered.clone();
    let mut attempts = 0;
    let transport = MemoryTransport::respond_with(move |batch| {
        attempts += 1;
        if attempts == 1 {
            return Ok(Response::status(503).with_retry_after("1"));
        }
        let now = std::time::Instant::now();
        let mut answered = mark.lock().unwrap();
        for e in &batch.events {
            answered.insert(e.event_id, now);
        }
        Ok(Response::json(
            200,
            &BatchResponse {
                accepted: batch.events.len() as u64,
                ..Default::default()
            },
        ))
    });
    let tracker = builder(&transport)
        .queue_capacity(5)
        .max_batch_events(5)
        .build()
        .unwrap();
    let held: Vec<Uuid> = (0..5).map(|i| tracker.track(play(i)).unwrap()).collect();
    // The first batch leaves the queue and meets the 503; five more fill the queue.
    while transport.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let queued: Vec<Uuid> = (5..10).map(|i| tracker.track(play(i)).unwrap()).collect();
    let flusher = {
        let tracker = tracker.clone();
        std::thread::spawn(move || {
            let result = tracker.flush(T);
            (result, std::time::Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    for i in 0..10 {
        match tracker.track(play(100 + i)) {
            Err(TrackError::QueueFull) => {}
            other => panic!("the queue (5 slots) is full: {other:?}"),
        }
    }
    let (result, flushed_at) = flusher.join().unwrap();
    result.unwrap();
    let answered = answered.lock().unwrap();
    for id in held.iter().chain(&queued) {
        let at = answered
            .get(id)
            .unwrap_or_else(|| panic!("flush returned Ok before {id} was answered"));
        assert!(*at <= flushed_at, "flush returned before {id} was answered");
    }
}

/// A transport that answers every batch after `delay`, counting the requests in flight at
/// once and every event id it was given.
#[derive(Default)]
struct SlowCollector {
    delay: Duration,
    now: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
    ids: Mutex<Vec<Uuid>>,
}

impl eventwire::Transport for SlowCollector {
    fn send(
        &self,
        request: eventwire::transport::Request,
    ) -> eventwire::transport::LocalBoxFuture<
        '_,
        Result<Response, eventwire::transport::TransportError>,
    > {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let now = self.now.fetch_add(1, SeqCst) + 1;
            self.max.fetch_max(now, SeqCst);
            let batch: eventwire::protocol::Batch = serde_json::from_slice(&request.body).unwrap();
            self.ids
                .lock()
                .unwrap()
                .extend(batch.events.iter().map(|e| e.event_id));
            std::thread::sleep(Duration::from_millis(1)); // a little work per request
            tokio::time::sleep(self.delay).await;
            self.now.fetch_sub(1, SeqCst);
            Ok(Response::json(
                200,
                &BatchResponse {
                    accepted: batch.events.len() as u64,
                    ..Default::default()
                },
            ))
        })
    }
}

/// The window: with a slow collector, up to `max_in_flight` requests are in flight at once
/// (the default, or 1 for one at a time), and every event still arrives once and is counted
/// sent once.
#[test]
fn up_to_max_in_flight_requests_are_in_flight_at_once() {
    for (window, want) in [
        (None, eventwire::outbox::DEFAULT_MAX_IN_FLIGHT),
        (Some(3), 3),
        (Some(1), 1),
    ] {
        let collector = Arc::new(SlowCollector {
            delay: Duration::from_millis(60),
            ..SlowCollector::default()
        });
        let mut b = Tracker::builder()
            .transport(collector.clone())
            .gzip_min_bytes(None)
            .max_batch_events(10)
            .max_batch_delay(Duration::from_millis(5));
        if let Some(n) = window {
            b = b.max_in_flight(n);
        }
        let tracker = b.build().unwrap();
        let n = 10 * want * 3;
        let ids: Vec<Uuid> = (0..n).map(|i| tracker.track(play(i)).unwrap()).collect();
        tracker.flush(T).unwrap();
        let s = tracker.stats();
        assert_eq!((s.sent, s.pending, s.dropped_total()), (n as u64, 0, 0));
        let got = collector.ids.lock().unwrap().clone();
        let mut sorted = got.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!((got.len(), sorted.len()), (n, n), "each event once");
        assert!(ids.iter().all(|id| sorted.binary_search(id).is_ok()));
        let max = collector.max.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(max, want, "requests in flight at once, window {window:?}");
    }
}
