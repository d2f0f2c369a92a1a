//! The accounting identity and the flush promise, over random interleavings.
//!
//! Each scenario draws a tracker (queue size, batch size, retry deadline, with or without a
//! spool, dropping or blocking when full) and a collector that answers every attempt at
//! random: a batch answer with rejections and duplicates, 400, 401, 413, 429/503 with
//! `Retry-After`, 500, redirects, a 204, a 200 that is not a batch answer, a timeout, a
//! broken connection. Three threads track and flush at random while it answers; a fourth
//! shuts the tracker down in the middle of it all. Checked:
//!
//! - **a flush's `Ok` means every event tracked before the call is settled**: the collector
//!   gave its final answer for it, or it reached the failure callback;
//! - **the identity** `track() calls + recovered = sent + rejected + dropped (every
//!   reason) + kept_in_spool + pending`, whenever the tracker is quiet, and `pending = 0`
//!   after the shutdown;
//! - **every event ends exactly once**: accepted by a batch answer, in the failure callback,
//!   or left in the spool (and then sent by the next tracker on it).
//!
//! The seed of a failing scenario is in the message: `ACCOUNTING_SEED=<n>` replays it;
//! `ACCOUNTING_SEEDS=<n>` runs seeds 1 to n (40 by default).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventwire::protocol::{Batch, BatchResponse, Rejection};
use eventwire::transport::{Response, TransportError};
use eventwire::{
    FailureReason, FlushError, MemoryTransport, RetryPolicy, TrackError, Tracker, Uuid, WhenFull,
};
use serde_json::json;

const SCHEMA: &str = "iglu:com.example/click/jsonschema/1-0-0";

/// A small xorshift generator: scenarios replay from their seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// What the collector did with the events it saw.
#[derive(Default)]
struct Ledger {
    /// Accepted (or duplicate) by a batch answer.
    accepted: HashSet<Uuid>,
    /// Rejected by a batch answer (these also reach the failure callback).
    rejected: HashSet<Uuid>,
}

/// A collector answering at random (from its own seed), recording its final answers.
fn random_collector(seed: u64, ledger: Arc<Mutex<Ledger>>) -> MemoryTransport {
    let mut rng = Rng(seed | 1);
    MemoryTransport::respond_with(move |batch: &Batch| {
        if rng.below(4) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(2_000)));
        }
        let n = batch.events.len();
        let answer = match rng.below(100) {
            0..=54 => {
                // A batch answer: some rejected, some duplicates, the rest accepted.
                let mut rejected = Vec::new();
                for (index, e) in batch.events.iter().enumerate() {
                    if rng.below(10) == 0 {
                        rejected.push(Rejection {
                            index,
                            event_id: Some(e.event_id.to_string()),
                            code: "schema_invalid".into(),
                        });
                    }
                }
                let rest = (n - rejected.len()) as u64;
                let duplicates = rng.below(rest + 1).min(1);
                let mut ledger = ledger.lock().unwrap();
                let bad: HashSet<usize> = rejected.iter().map(|r| r.index).collect();
                for (i, e) in batch.events.iter().enumerate() {
                    if bad.contains(&i) {
                        ledger.rejected.insert(e.event_id);
                    } else {
                        ledger.accepted.insert(e.event_id);
                    }
                }
                Ok(Response::json(
                    200,
                    &BatchResponse {
                        accepted: rest - duplicates,
                        duplicates,
                        rejected,
                    },
                ))
            }
            55..=59 => Ok(Response::status(400)),
            60..=61 => Ok(Response::status(401)),
            62..=67 => Ok(Response::status(413)),
            68..=72 => Ok(Response::status(429).with_retry_after("0")),
            73..=76 => Ok(Response::status(503).with_retry_after("0")),
            77..=81 => Ok(Response::status(500)),
            82..=83 => Ok(Response::status(301).with_location("https://example.com/")),
            84 => Ok(Response::status(307).with_location("/elsewhere")),
            85 => Ok(Response::status(204)),
            86 => Ok(Response::raw(200, "<html>Welcome</html>")),
            87 => Ok(Response::json(200, &BatchResponse::default())),
            88..=93 => Err(TransportError::Timeout),
            _ => Err(TransportError::Network("connection reset".into())),
        };
        // 400 rejects the whole batch: those events are settled as rejected.
        if matches!(&answer, Ok(r) if r.status == 400) {
            let mut ledger = ledger.lock().unwrap();
            ledger
                .rejected
                .extend(batch.events.iter().map(|e| e.event_id));
        }
        answer
    })
}

type Failed = Arc<Mutex<HashMap<Uuid, (FailureReason, u32)>>>;

struct Scenario {
    spool: Option<tempfile::TempDir>,
}

/// Every event tracked, with the ticket taken when `track()` returned.
#[derive(Default)]
struct Tracked {
    ids: Vec<(u64, Uuid)>,
    calls: u64,
}

fn run(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let scenario = Scenario {
        spool: (rng.below(3) == 0).then(|| tempfile::tempdir().unwrap()),
    };
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let transport = random_collector(rng.below(u64::MAX), ledger.clone());
    let failed: Failed = Arc::default();
    let sink = failed.clone();
    let mut builder = Tracker::builder()
        .transport(transport.clone())
        .queue_capacity(4 + rng.below(60) as usize)
        .max_batch_events(1 + rng.below(20) as usize)
        .max_batch_delay(Duration::from_millis(1 + rng.below(5)))
        .retry(RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            deadline: Duration::from_millis(20 + rng.below(200)),
            max_retry_after: Duration::from_millis(5),
        })
        .when_full(if rng.below(2) == 0 {
            WhenFull::DropNew
        } else {
            WhenFull::Block(Duration::from_millis(rng.below(3)))
        })
        .on_failure(move |reason, events| {
            let mut f = sink.lock().unwrap();
            for e in events {
                f.entry(e.event_id()).or_insert((reason.clone(), 0)).1 += 1;
            }
        });
    if let Some(dir) = &scenario.spool {
        builder = builder
            .spool(dir.path())
            .spool_commit_interval(Duration::from_millis(2));
    }
    let tracker = builder.build().unwrap();
    let ticket = Arc::new(AtomicU64::new(0));
    let tracked: Arc<Mutex<Tracked>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));

    for round in 0..3 {
        let threads: Vec<_> = (0..3u64)
            .map(|t| {
                let tracker = tracker.clone();
                let ticket = ticket.clone();
                let tracked = tracked.clone();
                let refused = refused.clone();
                let ledger = ledger.clone();
                let failed = failed.clone();
                let mut rng = Rng(rng.below(u64::MAX) ^ (t + 1));
                let last_round = round == 2;
                std::thread::spawn(move || {
                    for step in 0..120 {
                        if last_round && t == 0 && step == 60 {
                            // Shut down while the others track.
                            let _ = tracker.shutdown(Duration::from_millis(rng.below(50)));
                            continue;
                        }
                        if rng.below(25) == 0 {
                            let before = ticket.fetch_add(1, Ordering::SeqCst);
                            match tracker.flush(Duration::from_secs(20)) {
                                Ok(()) => {
                                    let tracked = tracked.lock().unwrap();
                                    let ledger = ledger.lock().unwrap();
                                    let failed = failed.lock().unwrap();
                                    for (when, id) in &tracked.ids {
                                        let done = ledger.accepted.contains(id)
                                            || ledger.rejected.contains(id)
                                            || failed.contains_key(id);
                                        assert!(
                                            *when > before || done,
                                            "seed {seed}: flush said Ok with {id} (tracked before it) not settled: {:?}",
                                            tracker.stats()
                                        );
                                    }
                                }
                                Err(FlushError::AlreadyShutdown) => {}
                                Err(e) => panic!("seed {seed}: flush {e}"),
                            }
                            continue;
                        }
                        let result = tracker.track_json(SCHEMA, &json!({ "t": t, "step": step }));
                        let mut tracked = tracked.lock().unwrap();
                        tracked.calls += 1;
                        match result {
                            Ok(id) => {
                                let when = ticket.fetch_add(1, Ordering::SeqCst);
                                tracked.ids.push((when, id));
                            }
                            Err(
                                TrackError::QueueFull | TrackError::ShutDown | TrackError::SpoolFull,
                            ) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => panic!("seed {seed}: {e}"),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every track() call has returned: the identity holds. The worker may still be
        // settling (a snapshot reads its counters one by one), so it is read until it holds;
        // a real miscount never does.
        let calls = tracked.lock().unwrap().calls;
        let holds = |s: &eventwire::Stats| {
            calls + s.recovered
                == s.sent + s.rejected + s.dropped_total() + s.kept_in_spool + s.pending
        };
        let mut s = tracker.stats();
        for _ in 0..200 {
            if holds(&s) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            s = tracker.stats();
        }
        assert!(holds(&s), "seed {seed} round {round}: {calls} calls, {s:?}");
        assert_eq!(
            s.tracked + refused.load(Ordering::SeqCst),
            calls,
            "seed {seed}: {s:?}"
        );
    }
    let _ = tracker.shutdown(Duration::from_secs(20));
    let s = tracker.stats();
    assert_eq!(s.pending, 0, "seed {seed}: {s:?}");
    let tracked = tracked.lock().unwrap();
    assert_eq!(
        tracked.calls,
        s.sent + s.rejected + s.dropped_total() + s.kept_in_spool,
        "seed {seed}: {s:?}"
    );

    // Every event ended exactly once.
    let failed = failed.lock().unwrap();
    assert!(
        failed.values().all(|(_, n)| *n == 1),
        "seed {seed}: an event failed twice"
    );
    let mut unsettled = Vec::new();
    {
        let l = ledger.lock().unwrap();
        for (_, id) in &tracked.ids {
            let accepted = l.accepted.contains(id) && !l.rejected.contains(id);
            let in_callback = failed.contains_key(id);
            assert!(
                !(accepted && in_callback),
                "seed {seed}: {id} accepted and also reported as failed"
            );
            if !accepted && !in_callback {
                unsettled.push(*id);
            }
        }
    }
    drop(failed);
    assert_eq!(
        unsettled.len() as u64,
        s.kept_in_spool,
        "seed {seed}: {s:?}"
    );
    // What was left in the spool is sent by the next tracker on it.
    if let Some(dir) = &scenario.spool {
        let next = MemoryTransport::new();
        let again = Tracker::builder()
            .transport(next.clone())
            .spool(dir.path())
            .build()
            .unwrap();
        again.flush(Duration::from_secs(20)).unwrap();
        let resent: HashSet<Uuid> = next.event_ids().into_iter().collect();
        assert!(
            unsettled.iter().all(|id| resent.contains(id)),
            "seed {seed}: an event kept in the spool did not come back"
        );
        assert_eq!(again.stats().recovered, s.kept_in_spool, "seed {seed}");
    }
}

#[test]
fn the_identity_holds_and_a_flush_waits_for_what_came_before_it() {
    let count: u64 = std::env::var("ACCOUNTING_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let seeds: Vec<u64> = match std::env::var("ACCOUNTING_SEED") {
        Ok(seed) => vec![seed.parse().unwrap()],
        Err(_) => (1..=count).collect(),
    };
    for seed in seeds {
        run(seed);
    }
}
