#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::protocol::Rejection;

/// An envelope numbered `n`, `pad` bytes of padding.
fn event(n: u64, pad: usize) -> String {
    format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(pad))
}

fn number(e: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(e).unwrap();
    v["n"].as_u64().unwrap()
}

fn limits(max_events: usize, max_bytes: usize) -> BatchLimits {
    BatchLimits {
        max_events,
        max_bytes,
        max_delay: Duration::from_millis(1000),
    }
}

fn outbox(max_events: usize, window: usize) -> Outbox<String> {
    Outbox::new(
        limits(max_events, 1 << 20),
        RetryPolicy::default(),
        window,
        Some("\"key\"".into()),
    )
}

fn status(code: u16) -> Outcome<'static> {
    Outcome::Answered {
        status: code,
        retry_after: None,
        answer: None,
    }
}

fn ok(accepted: u64, duplicates: u64, rejected: &[usize]) -> Outcome<'static> {
    Outcome::Answered {
        status: 200,
        retry_after: None,
        answer: Some(BatchResponse {
            accepted,
            duplicates,
            rejected: rejected
                .iter()
                .map(|&index| Rejection {
                    index,
                    event_id: None,
                    code: "schema_invalid".into(),
                })
                .collect(),
        }),
    }
}

/// The numbers of the events in a request body.
fn numbers(body: &[u8]) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["n"].as_u64().unwrap())
        .collect()
}

/// The numbers of the events not yet settled, in the outbox's order.
fn pending(o: &Outbox<String>) -> Vec<u64> {
    let mut out = Vec::new();
    o.for_each_pending(|e| out.push(number(e)));
    out
}

fn push(o: &mut Outbox<String>, range: std::ops::Range<u64>, now: u64) {
    for n in range {
        o.push(event(n, 10), now);
    }
}

#[test]
fn a_batch_is_due_when_full_or_when_its_oldest_event_waited_the_delay() {
    let mut o = outbox(3, 1);
    assert_eq!(o.due(0, Take::Due), None, "nothing queued");
    push(&mut o, 0..2, 100);
    assert_eq!(o.due(100, Take::Due), Some(1000));
    assert_eq!(o.due(600, Take::Due), Some(500));
    assert!(o.take(600, 0, Take::Due, 0).is_none());
    let r = o.take(1100, 0, Take::Due, 0).unwrap();
    assert_eq!(numbers(&r.body), [0, 1]);
    assert!(!r.retry);
    push(&mut o, 2..5, 1200);
    assert_eq!(o.due(1200, Take::Due), None, "window of one is full");
    o.settle(r.id, ok(2, 0, &[]), 1200, 0, 0.5).unwrap();
    assert_eq!(o.due(1200, Take::Due), Some(0), "three make a full batch");
}

#[test]
fn flush_ignores_the_delay_but_not_the_pause_or_the_window_and_now_ignores_all() {
    let mut o = outbox(10, 1);
    push(&mut o, 0..1, 0);
    let r = o.take(0, 0, Take::Flush, 0).unwrap();
    push(&mut o, 1..2, 0);
    assert!(o.take(0, 0, Take::Flush, 0).is_none(), "window full");
    let now = o.take(0, 0, Take::Now, 0).unwrap();
    assert_eq!(numbers(&now.body), [1]);
    assert_eq!(o.in_flight(), 2);
    let Some(Settled::Again { wait_ms, throttled }) = o.settle(
        r.id,
        Outcome::Answered {
            status: 503,
            retry_after: Some("3"),
            answer: None,
        },
        10,
        0,
        0.5,
    ) else {
        panic!("a 503 is sent again")
    };
    assert_eq!((wait_ms, throttled), (3000, true));
    o.settle(now.id, ok(1, 0, &[]), 10, 0, 0.5).unwrap();
    assert!(o.take(20, 0, Take::Flush, 0).is_none(), "paused");
    assert_eq!(o.due(20, Take::Due), Some(2990));
    let again = o.take(3010, 0, Take::Flush, 0).unwrap();
    assert_eq!(numbers(&again.body), [0]);
    assert!(again.retry);
}

#[test]
fn the_window_bounds_requests_in_flight() {
    let mut o = outbox(2, 3);
    push(&mut o, 0..10, 0);
    let taken: Vec<Request> = (0..5).filter_map(|_| o.take(0, 0, Take::Due, 0)).collect();
    assert_eq!(taken.len(), 3);
    assert_eq!(o.due(0, Take::Due), None);
    o.settle(taken[1].id, ok(2, 0, &[]), 1, 0, 0.5).unwrap();
    assert_eq!(o.due(1, Take::Due), Some(0));
    assert_eq!(numbers(&o.take(1, 0, Take::Due, 0).unwrap().body), [6, 7]);
}

#[test]
fn every_answer_settles_by_the_table() {
    // (outcome, what the batch of two becomes)
    let table: Vec<(Outcome<'static>, &str)> = vec![
        (ok(2, 0, &[]), "answered"),
        (ok(1, 1, &[]), "answered"),
        (ok(1, 0, &[1]), "answered"),
        (ok(3, 0, &[]), "dropped not_a_collector"),
        (ok(1, 0, &[1, 1]), "dropped not_a_collector"),
        (ok(1, 0, &[2]), "dropped not_a_collector"),
        (status(200), "dropped not_a_collector"),
        (status(202), "dropped not_a_collector"),
        (status(302), "dropped not_a_collector"),
        (Outcome::Redirected, "dropped not_a_collector"),
        (status(400), "rejected malformed"),
        (status(401), "dropped unauthorized"),
        (status(403), "dropped unauthorized"),
        (status(404), "dropped http_status"),
        (status(415), "dropped unsupported_encoding"),
        (status(413), "split"),
        (status(408), "again"),
        (status(500), "again"),
        (status(429), "throttled"),
        (status(503), "throttled"),
        (Outcome::Timeout, "again"),
        (Outcome::Network, "again"),
    ];
    for (outcome, want) in table {
        let mut o = outbox(2, 1);
        push(&mut o, 0..2, 0);
        let r = o.take(0, 0, Take::Due, 0).unwrap();
        let got = match o.settle(r.id, outcome, 1, 0, 0.5).unwrap() {
            Settled::Answered { events, .. } => {
                assert_eq!(events.len(), 2);
                "answered".to_owned()
            }
            Settled::Rejected { events } => {
                assert_eq!(events.len(), 2);
                "rejected malformed".to_owned()
            }
            Settled::Dropped { reason, events, .. } => {
                assert_eq!(events.len(), 2);
                format!("dropped {}", reason.as_str())
            }
            Settled::Again { throttled, .. } => {
                if throttled { "throttled" } else { "again" }.to_owned()
            }
            Settled::Split => "split".to_owned(),
        };
        assert_eq!(got, want);
        let kept = pending(&o).len();
        let resent = matches!(want, "split" | "again" | "throttled");
        assert_eq!(kept, if resent { 2 } else { 0 }, "{want}");
    }
}

#[test]
fn a_413_sends_both_halves_first_and_drops_a_lone_event_as_too_large() {
    let mut o = outbox(4, 1);
    push(&mut o, 0..7, 0);
    let r = o.take(0, 0, Take::Due, 0).unwrap();
    assert!(matches!(
        o.settle(r.id, status(413), 1, 0, 0.5),
        Some(Settled::Split)
    ));
    let first = o.take(1, 0, Take::Due, 0).unwrap();
    assert_eq!(numbers(&first.body), [0, 1]);
    assert!(!first.retry, "a half is a new request, not a failure");
    o.settle(first.id, status(413), 2, 0, 0.5).unwrap();
    let zero = o.take(2, 0, Take::Due, 0).unwrap();
    assert_eq!(numbers(&zero.body), [0]);
    let Some(Settled::Dropped { reason, events, .. }) = o.settle(zero.id, status(413), 3, 0, 0.5)
    else {
        panic!("a lone event answered 413 is given up")
    };
    assert_eq!(reason, DropReason::TooLarge);
    assert_eq!(events, [event(0, 10)]);
    let order: Vec<u64> = pending(&o).into_iter().collect();
    assert_eq!(order, [1, 2, 3, 4, 5, 6], "halves before newer events");
}

#[test]
fn batches_sent_again_go_out_oldest_first() {
    let mut o = outbox(1, 3);
    push(&mut o, 0..5, 0);
    let r: Vec<Request> = (0..3)
        .map(|_| o.take(0, 0, Take::Due, 0).unwrap())
        .collect();
    o.settle(r[2].id, Outcome::Network, 1, 0, 0.0).unwrap();
    o.settle(r[0].id, Outcome::Network, 1, 0, 0.0).unwrap();
    o.settle(r[1].id, ok(1, 0, &[]), 1, 0, 0.0).unwrap();
    let order: Vec<u64> = pending(&o).into_iter().collect();
    assert_eq!(order, [0, 2, 3, 4]);
    let next = o.take(1000, 0, Take::Due, 0).unwrap();
    assert_eq!(numbers(&next.body), [0]);
    assert!(next.retry);
}

#[test]
fn a_batch_past_the_retry_deadline_is_given_up() {
    let mut o = Outbox::new(
        limits(10, 1 << 20),
        RetryPolicy {
            deadline: Duration::from_secs(5),
            ..RetryPolicy::default()
        },
        1,
        None,
    );
    o.push(event(0, 1), 0);
    let r = o.take(0, 0, Take::Flush, 0).unwrap();
    assert!(matches!(
        o.settle(r.id, Outcome::Timeout, 1000, 0, 0.5),
        Some(Settled::Again { .. })
    ));
    let r = o.take(10_000, 0, Take::Flush, 0).unwrap();
    let Some(Settled::Dropped { reason, .. }) = o.settle(r.id, Outcome::Timeout, 10_000, 0, 0.5)
    else {
        panic!("past the deadline")
    };
    assert_eq!(reason, DropReason::RetryExpired);
    assert!(o.is_empty());
}

#[test]
fn a_capped_take_sends_what_fits_and_keeps_the_rest_first() {
    let mut o = outbox(100, 1);
    push(&mut o, 0..4, 0);
    let all = o.take(0, 0, Take::Now, 0).unwrap();
    o.settle(all.id, Outcome::Network, 0, 0, 0.0).unwrap();
    let one_len = event(0, 10).len();
    let cap = o.overhead + 2 * one_len + 1;
    let part = o.take(0, 0, Take::Now, cap).unwrap();
    assert_eq!(numbers(&part.body), [0, 1]);
    assert!(part.body.len() <= cap);
    let order: Vec<u64> = pending(&o).into_iter().collect();
    assert_eq!(order, [0, 1, 2, 3]);
    // A queued event over the cap waits for a later body.
    let mut o = outbox(100, 1);
    o.push(event(9, 500), 0);
    assert!(o.take(0, 0, Take::Now, 300).is_none());
    assert_eq!(o.queued().0, 1);
}

#[test]
fn an_envelope_over_the_batch_limit_goes_alone() {
    let mut o: Outbox<String> = Outbox::new(limits(10, 300), RetryPolicy::default(), 1, None);
    o.push(event(0, 400), 0);
    o.push(event(1, 10), 0);
    let big = o.take(0, 0, Take::Now, 0).unwrap();
    assert_eq!(numbers(&big.body), [0]);
    o.settle(big.id, Outcome::Network, 0, 0, 0.0).unwrap();
    let again = o.take(0, 0, Take::Now, 0).unwrap();
    assert_eq!(numbers(&again.body), [0], "sent again, not stuck");
}

#[test]
fn after_a_failure_one_request_probes_until_a_final_answer_reopens_the_window() {
    let mut o = outbox(1, 3);
    push(&mut o, 0..6, 0);
    let r: Vec<Request> = (0..3)
        .map(|_| o.take(0, 0, Take::Due, 0).unwrap())
        .collect();
    for x in &r {
        o.settle(x.id, status(503), 1, 0, 0.0).unwrap();
    }
    // After the pause: one request at a time, not the whole window.
    let probe = o.take(10_000, 0, Take::Due, 0).unwrap();
    assert_eq!(numbers(&probe.body), [0]);
    assert!(o.take(10_000, 0, Take::Due, 0).is_none(), "probing");
    assert!(o.take(10_000, 0, Take::Flush, 0).is_none(), "probing");
    assert_eq!(o.due(10_000, Take::Due), None);
    assert!(!o.wants_events(10_000));
    o.settle(probe.id, ok(1, 0, &[]), 10_001, 0, 0.0).unwrap();
    let reopened: Vec<Request> = (0..3)
        .filter_map(|_| o.take(10_001, 0, Take::Due, 0))
        .collect();
    assert_eq!(reopened.len(), 3, "a final answer reopens the window");
    assert_eq!(numbers(&reopened[0].body), [1], "oldest first");
}

#[test]
fn resume_ends_a_backoff_but_not_a_pause_the_collector_asked_for() {
    let mut o = outbox(10, 1);
    push(&mut o, 0..1, 0);
    let r = o.take(0, 0, Take::Flush, 0).unwrap();
    o.settle(r.id, Outcome::Network, 0, 0, 1.0).unwrap();
    assert!(o.take(1, 0, Take::Flush, 0).is_none(), "backing off");
    o.resume();
    let r = o.take(1, 0, Take::Flush, 0).expect("resumed");
    let retry_after = Outcome::Answered {
        status: 429,
        retry_after: Some("30"),
        answer: None,
    };
    o.settle(r.id, retry_after, 2, 0, 0.5).unwrap();
    o.resume();
    assert!(o.take(3, 0, Take::Flush, 0).is_none(), "Retry-After holds");
    assert_eq!(o.due(3, Take::Flush), Some(29_999));
    assert!(o.take(30_002, 0, Take::Flush, 0).is_some());
}

#[test]
fn a_batch_is_cut_by_bytes_exactly_at_the_limit() {
    let ten =
        |n: u64| format!(r#"{{"n":{n}}}"#) + &" ".repeat(10 - format!(r#"{{"n":{n}}}"#).len());
    let overhead = crate::batch::body_overhead(None);
    // Two 10-byte envelopes and a comma: exactly at the limit.
    let max = overhead + 10 + 1 + 10;
    for (max_bytes, first) in [(max, 2), (max - 1, 1)] {
        let mut o: Outbox<String> =
            Outbox::new(limits(100, max_bytes), RetryPolicy::default(), 1, None);
        for n in 0..3 {
            o.push(ten(n), 0);
        }
        assert_eq!(o.due(0, Take::Due), Some(0), "full by bytes");
        let r = o.take(0, 0, Take::Due, 0).unwrap();
        assert_eq!(r.events, first, "limit {max_bytes}");
        assert!(r.body.len() <= max_bytes);
        assert_eq!(r.body.len(), overhead + 10 * first + first - 1);
    }
}

#[test]
fn only_a_request_that_could_leave_pulls_events_in() {
    let mut o = outbox(2, 1);
    assert!(o.wants_events(0));
    push(&mut o, 0..2, 0);
    assert!(!o.wants_events(0), "a full batch waits");
    let r = o.take(0, 0, Take::Due, 0).unwrap();
    assert!(!o.wants_events(0), "the window is full");
    o.settle(r.id, status(503), 0, 0, 0.5).unwrap();
    assert!(!o.wants_events(10), "paused");
    assert!(o.wants_events(1_000_000));
    o.resume();
    assert!(!o.wants_events(10), "a 503's pause holds after resume");
}

#[test]
fn bodies_are_exactly_the_size_the_overhead_counts() {
    for key in [None, Some("\"k\\\"ey\"".to_owned())] {
        let mut o: Outbox<String> =
            Outbox::new(limits(10, 1 << 20), RetryPolicy::default(), 1, key);
        let sizes = [1, 20, 300];
        for (n, pad) in sizes.iter().enumerate() {
            o.push(event(n as u64, *pad), 0);
        }
        let events: usize = sizes
            .iter()
            .enumerate()
            .map(|(n, p)| event(n as u64, *p).len())
            .sum();
        let r = o.take(0, 1_764_000_000_123, Take::Now, 0).unwrap();
        assert_eq!(r.body.len(), o.overhead + events + sizes.len() - 1);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["sent_at"], "2025-11-24T16:00:00.123Z");
        assert_eq!(v["events"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn clear_takes_what_is_not_in_flight_and_an_unknown_id_settles_nothing() {
    let mut o = outbox(2, 1);
    push(&mut o, 0..5, 0);
    let r = o.take(0, 0, Take::Due, 0).unwrap();
    assert_eq!(o.clear(), 3);
    assert!(pending(&o).is_empty(), "what is in flight is not stored");
    assert!(o.settle(r.id + 7, ok(2, 0, &[]), 0, 0, 0.0).is_none());
    assert!(o.settle(r.id, ok(2, 0, &[]), 0, 0, 0.0).is_some());
    assert!(o.settle(r.id, ok(2, 0, &[]), 0, 0, 0.0).is_none(), "once");
    assert!(o.is_empty());
}

/// A request in flight when the user opts out is settled by how it ends, never sent again,
/// whatever failure ends it (the page may opt in again before the answer comes).
#[test]
fn a_request_in_flight_at_a_clear_is_never_sent_again() {
    for (outcome, dropped) in [
        (Outcome::Network, Some(DropReason::OptedOut)),
        (Outcome::Timeout, Some(DropReason::OptedOut)),
        (status(503), Some(DropReason::OptedOut)),
        (status(429), Some(DropReason::OptedOut)),
        (status(413), Some(DropReason::OptedOut)),
        (status(401), Some(DropReason::Unauthorized)),
        (ok(2, 0, &[]), None),
    ] {
        let mut o = outbox(2, 1);
        push(&mut o, 0..2, 0);
        let r = o.take(0, 0, Take::Due, 0).unwrap();
        assert_eq!(o.clear(), 0);
        push(&mut o, 2..3, 0); // tracked after an opt-in
        match o.settle(r.id, outcome, 0, 0, 0.0) {
            Some(Settled::Dropped { reason, events }) => {
                assert_eq!(Some(reason), dropped);
                assert_eq!(events.len(), 2);
            }
            Some(Settled::Answered { events, .. }) => {
                assert_eq!(dropped, None);
                assert_eq!(events.len(), 2);
            }
            _ => panic!("sent again after a clear (expected {dropped:?})"),
        }
        assert_eq!(pending(&o), vec![2], "only what was tracked after");
    }
}

/// A small deterministic generator (xorshift), so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random sequences of pushes, takes of every mode and cap, answers of every kind in any
/// order, clears and drains: every event is settled, cleared or drained exactly once; at
/// every step each event not yet out is in the outbox once; the window holds except for
/// `Take::Now`; bodies respect their cap; a request is a retry exactly when an event in it
/// was sent before by a request that failed.
#[test]
fn model_every_event_leaves_exactly_once_over_random_sequences() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let window = 1 + rng.below(4) as usize;
        let max_events = 1 + rng.below(6) as usize;
        let max_bytes = 200 + rng.below(400) as usize;
        let retry = RetryPolicy {
            deadline: Duration::from_millis(rng.below(20_000)),
            ..RetryPolicy::default()
        };
        let mut o: Outbox<String> = Outbox::new(limits(max_events, max_bytes), retry, window, None);
        let mut now = 0u64;
        let mut pushed = 0u64;
        let mut out: BTreeMap<u64, &'static str> = BTreeMap::new();
        let mut flying: Vec<(u32, Vec<u64>)> = Vec::new();
        // Requests in flight at a clear: settled as they end, never again, never stored.
        let mut forgotten: BTreeSet<u32> = BTreeSet::new();
        let mut failed_before: BTreeSet<u64> = BTreeSet::new();
        // A failure since the last final answer: one request at a time.
        let mut probing = false;
        let leave = |n: u64, how: &'static str, out: &mut BTreeMap<u64, &'static str>| {
            if let Some(first) = out.insert(n, how) {
                panic!("seed {seed}: event {n} left twice ({first}, then {how})");
            }
        };
        for _ in 0..200 {
            now += rng.below(700);
            match rng.below(10) {
                0..=2 => {
                    for _ in 0..=rng.below(4) {
                        o.push(event(pushed, rng.below(60) as usize), now);
                        pushed += 1;
                    }
                }
                3..=5 => {
                    let mode = [Take::Due, Take::Flush, Take::Now][rng.below(3) as usize];
                    let cap = [0, 0, 150, 400][rng.below(4) as usize];
                    let before = o.in_flight();
                    if let Some(r) = o.take(now, now, mode, cap) {
                        if mode != Take::Now {
                            assert!(before < window, "seed {seed}: window");
                            assert!(!probing || before == 0, "seed {seed}: probing");
                        }
                        let ns = numbers(&r.body);
                        assert_eq!(ns.len(), r.events);
                        if cap > 0 {
                            assert!(r.body.len() <= cap, "seed {seed}: cap {cap}");
                        } else if ns.len() > 1 {
                            assert!(r.body.len() <= max_bytes, "seed {seed}: batch limit");
                        }
                        assert!(ns.len() <= max_events);
                        let was_retry = ns.iter().any(|n| failed_before.contains(n));
                        assert_eq!(r.retry, was_retry, "seed {seed}: retry flag");
                        flying.push((r.id, ns));
                    }
                }
                6..=8 if !flying.is_empty() => {
                    let (id, ns) = flying.swap_remove(rng.below(flying.len() as u64) as usize);
                    let outcome = match rng.below(8) {
                        0 => {
                            let bad: Vec<usize> =
                                (0..ns.len()).filter(|_| rng.below(3) == 0).collect();
                            ok((ns.len() - bad.len()) as u64, 0, &bad)
                        }
                        1 => ok(ns.len() as u64 + 1, 0, &[]),
                        2 => status([400, 401, 404, 302][rng.below(4) as usize]),
                        3 => status(413),
                        4 => status(503),
                        5 => Outcome::Timeout,
                        6 => Outcome::Network,
                        _ => ok(ns.len() as u64, 0, &[]),
                    };
                    let settled = o.settle(id, outcome, now, now, 0.5).unwrap();
                    if forgotten.remove(&id) {
                        assert!(
                            matches!(
                                settled,
                                Settled::Answered { .. }
                                    | Settled::Rejected { .. }
                                    | Settled::Dropped { .. }
                            ),
                            "seed {seed}: a request cleared in flight goes again"
                        );
                    }
                    probing = match &settled {
                        Settled::Again { .. } => true,
                        Settled::Dropped { reason, .. } => *reason == DropReason::RetryExpired,
                        _ => false,
                    };
                    match settled {
                        Settled::Answered { events, answer } => {
                            assert_eq!(events.iter().map(|e| number(e)).collect::<Vec<_>>(), ns);
                            assert!(answer.accounts_for(ns.len()));
                            for n in ns {
                                leave(n, "answered", &mut out);
                            }
                        }
                        Settled::Rejected { events } | Settled::Dropped { events, .. } => {
                            assert_eq!(events.iter().map(|e| number(e)).collect::<Vec<_>>(), ns);
                            for n in ns {
                                leave(n, "failed", &mut out);
                            }
                        }
                        Settled::Again { .. } => failed_before.extend(ns),
                        Settled::Split => {}
                    }
                }
                9 if rng.below(10) == 0 => {
                    let before: BTreeSet<u64> = pending(&o).into_iter().collect();
                    let n = o.clear();
                    let after: BTreeSet<u64> = pending(&o).into_iter().collect();
                    let flying_ids: BTreeSet<u64> = flying
                        .iter()
                        .flat_map(|(_, ns)| ns.iter().copied())
                        .collect();
                    assert_eq!(
                        before.difference(&flying_ids).count(),
                        n,
                        "seed {seed}: clear counts"
                    );
                    assert!(after.is_empty(), "seed {seed}: clear leaves nothing stored");
                    for gone in before.difference(&flying_ids) {
                        leave(*gone, "cleared", &mut out);
                    }
                    forgotten.extend(flying.iter().map(|(id, _)| *id));
                }
                _ => {}
            }
            // Each event not yet out is in the outbox exactly once (those cleared in flight:
            // in their request only).
            let mut inside: Vec<u64> = pending(&o).into_iter().collect();
            for (id, ns) in &flying {
                if forgotten.contains(id) {
                    inside.extend(ns);
                }
            }
            let distinct: BTreeSet<u64> = inside.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                inside.len(),
                "seed {seed}: an event twice inside"
            );
            assert_eq!(
                inside.len() as u64 + out.len() as u64,
                pushed,
                "seed {seed}: inside + out = pushed"
            );
            assert!(distinct.iter().all(|n| !out.contains_key(n)));
        }
        for e in o.drain() {
            leave(number(&e), "drained", &mut out);
        }
        assert_eq!(out.len() as u64, pushed, "seed {seed}");
        assert!(o.is_empty());
        // Answers of drained requests are not settled again.
        for (id, _) in flying {
            assert!(o.settle(id, ok(1, 0, &[]), now, now, 0.5).is_none());
        }
    }
}
