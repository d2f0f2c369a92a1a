//! Personal-data sealing benchmark: the caller-side cost of `track()` for an event with two
//! marked fields (sealed, with a key) against the same event unmarked, in the same run; and
//! end-to-end events per second into a loopback HTTP sink, sealing on and off, without and
//! with a spool. Sealing runs on the tracker's thread (worker or spool thread), so `track()`
//! should barely change while throughput pays for one P-256 key agreement per value.
//!
//! Run: `cargo run --release -p eventwire-bench --bin pii`

#![allow(clippy::unwrap_used)] // benchmark harness: fail loudly

use std::hint::black_box;
use std::time::{Duration, Instant};

use eventwire::pii::PrivateKey;
use eventwire::{NoopTransport, SelfDescribing, Tracker, WhenFull};
use eventwire_testkit::Collector;

const CALLS: u64 = 20_000;
const ROUND: u64 = 500;
const E2E_EVENTS: u64 = 20_000;

/// A sign-up with two personal fields.
#[derive(serde::Serialize, Clone)]
struct Signup {
    email: String,
    name: String,
    plan: &'static str,
    referrer: &'static str,
}

impl SelfDescribing for Signup {
    const SCHEMA: &'static str = "iglu:com.example/signup/jsonschema/1-0-0";
    const PII: &'static [&'static str] = &["/email", "/name"];
}

/// The same event, its schema without marks.
#[derive(serde::Serialize, Clone)]
#[serde(transparent)]
struct Unmarked(Signup);

impl SelfDescribing for Unmarked {
    const SCHEMA: &'static str = "iglu:com.example/signup/jsonschema/1-0-0";
}

fn signup(i: u64) -> Signup {
    Signup {
        email: format!("user{i}@example.com"),
        name: format!("User Number {i}"),
        plan: "pro",
        referrer: "newsletter",
    }
}

fn median_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let key = PrivateKey::generate().public_key().clone();
    let tracker = |seal: bool| {
        let mut b = Tracker::builder()
            .transport(NoopTransport)
            .queue_capacity(CALLS as usize)
            .max_queue_bytes(usize::MAX / 2);
        if seal {
            b = b.pii_public_key(key.clone());
        }
        b.build().unwrap()
    };
    let (sealing, plain) = (tracker(true), tracker(false));
    let events: Vec<Signup> = (0..CALLS).map(signup).collect();
    // Interleaved rounds: the machine's noise falls on both alike.
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < CALLS {
        let start = Instant::now();
        for k in i..i + ROUND {
            black_box(sealing.track(events[k as usize].clone()).unwrap());
        }
        on.push(start.elapsed().as_nanos() as f64 / ROUND as f64);
        let start = Instant::now();
        for k in i..i + ROUND {
            black_box(plain.track(Unmarked(events[k as usize].clone())).unwrap());
        }
        off.push(start.elapsed().as_nanos() as f64 / ROUND as f64);
        i += ROUND;
    }
    let (on, off) = (median_p99(on), median_p99(off));
    sealing.flush(Duration::from_secs(120)).unwrap();
    plain.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(sealing.stats().sent, CALLS, "every sealed event delivered");
    sealing.shutdown(Duration::from_secs(10)).unwrap();
    plain.shutdown(Duration::from_secs(10)).unwrap();

    // One value sealed, alone: what the tracker's thread pays per marked value.
    let value = serde_json::json!("user1@example.com");
    let id = "018f4e2a-0000-7000-8000-000000000001";
    let seal_us = median_p99(
        (0..20)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..20 {
                    black_box(
                        eventwire::pii::seal(&key, id, Signup::SCHEMA, "/data/email", &value)
                            .unwrap(),
                    );
                }
                start.elapsed().as_nanos() as f64 / 20.0 / 1000.0
            })
            .collect(),
    );

    let e2e_off = end_to_end(None, false);
    let e2e_on = end_to_end(None, true);
    let dir = tempfile::tempdir().unwrap();
    let spool_off = end_to_end(Some(dir.path()), false);
    let dir = tempfile::tempdir().unwrap();
    let spool_on = end_to_end(Some(dir.path()), true);

    println!("eventwire personal-data sealing benchmark ({CALLS} calls in rounds of {ROUND}; 2 marked fields per event)");
    println!();
    println!("| track() on the caller's thread | median ns/event | p99 ns/event |");
    println!("|---|---:|---:|");
    println!("| unmarked | {:.0} | {:.0} |", off.0, off.1);
    println!(
        "| marked, sealing on (sealed later, on the tracker's thread) | {:.0} | {:.0} |",
        on.0, on.1
    );
    println!("track() sealing on vs off, same run: {:.2}x", on.0 / off.0);
    println!(
        "one value sealed (eventwire::pii::seal, on the tracker's thread): median {:.0} µs, p99 {:.0} µs",
        seal_us.0, seal_us.1
    );
    println!();
    println!("| end to end, loopback HTTP sink ({E2E_EVENTS} events) | sealing off, events/s | sealing on, events/s | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| memory queue | {e2e_off:.0} | {e2e_on:.0} | {:.2}x |",
        e2e_on / e2e_off
    );
    println!(
        "| with a spool | {spool_off:.0} | {spool_on:.0} | {:.2}x |",
        spool_on / spool_off
    );
}

/// Events per second of `E2E_EVENTS` sign-ups into a fresh loopback sink, sealed or not.
fn end_to_end(spool: Option<&std::path::Path>, seal: bool) -> f64 {
    let sink = Collector::accept_all();
    let mut b = Tracker::builder()
        .endpoint(sink.endpoint())
        .when_full(WhenFull::Block(Duration::from_secs(60)));
    if let Some(dir) = spool {
        b = b.spool(dir);
    }
    if seal {
        b = b.pii_public_key(PrivateKey::generate().public_key().clone());
    }
    let tracker = b.build().unwrap();
    let start = Instant::now();
    for i in 0..E2E_EVENTS {
        if seal {
            tracker.track(signup(i)).unwrap();
        } else {
            tracker.track(Unmarked(signup(i))).unwrap();
        }
    }
    tracker.flush(Duration::from_secs(300)).unwrap();
    let elapsed = start.elapsed();
    assert!(sink.events() >= E2E_EVENTS, "the sink counted every event");
    tracker.shutdown(Duration::from_secs(10)).unwrap();
    E2E_EVENTS as f64 / elapsed.as_secs_f64()
}
