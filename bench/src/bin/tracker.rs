//! Tracker benchmark: caller-side cost of `track()` against one `serde_json::to_vec` of the
//! same event, end-to-end events per second into a loopback HTTP sink, and the same through
//! a delay line (the game days' proxy) at 0, 20 and 50 ms of added round trip, one request
//! in flight (the tracker before the outbox's window) against the default window.
//!
//! Run: `cargo run --release -p eventwire-bench --bin tracker`

#![allow(clippy::unwrap_used)] // benchmark harness: fail loudly

use std::hint::black_box;
use std::time::{Duration, Instant};

use eventwire::{NoopTransport, Tracker, WhenFull};
use eventwire_bench::{player_entity, MediaPlay};
use eventwire_testkit::Collector;

const CALLS: u64 = 100_000;
const ROUND: u64 = 1_000;
const E2E_EVENTS: u64 = 200_000;
/// Events per cell of the delay-line table.
const LATENCY_EVENTS: u64 = 40_000;

/// Per-call nanoseconds of each round of `ROUND` calls, for several methods measured in
/// turn round after round, so that the machine's noise falls on all of them alike.
fn interleaved<const N: usize>(methods: &mut [&mut dyn FnMut(u64); N]) -> [Vec<f64>; N] {
    let mut out: [Vec<f64>; N] =
        std::array::from_fn(|_| Vec::with_capacity((CALLS / ROUND) as usize));
    let mut i = 0;
    while i < CALLS {
        for (m, f) in methods.iter_mut().enumerate() {
            let start = Instant::now();
            for k in 0..ROUND {
                f(i + k);
            }
            out[m].push(start.elapsed().as_nanos() as f64 / ROUND as f64);
        }
        i += ROUND;
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

#[derive(serde::Serialize)]
struct Envelope<'a> {
    event_id: eventwire::Uuid,
    schema: &'a str,
    data: &'a MediaPlay,
    created_at: &'a str,
    context: EnvelopeContext<'a>,
}

#[derive(serde::Serialize)]
struct EnvelopeContext<'a> {
    labels: &'a eventwire::Labels,
    library: &'a serde_json::Value,
    anonymous_id: &'a str,
    session_id: &'a str,
}

fn main() {
    let events: Vec<MediaPlay> = (0..CALLS).map(MediaPlay::sample).collect();
    let json_len = serde_json::to_vec(&events[0]).unwrap().len();
    // Baseline 2 serialises the whole envelope as it travels (id, timestamps, labels,
    // identity around the same event), with every field prepared in advance.
    let labels = eventwire::Labels {
        environment: Some("bench".into()),
        service: Some("tracker-bench".into()),
        team: None,
        version: None,
    };
    let library = serde_json::json!({"name": eventwire::LIBRARY_NAME, "version": "0.1.0"});
    let id = eventwire::Uuid::now_v7();
    let envelope_of = |event: &'_ MediaPlay| -> Vec<u8> {
        let e = Envelope {
            event_id: id,
            schema: "iglu:com.example.media/play/jsonschema/1-0-0",
            data: event,
            created_at: "2026-11-26T03:10:25.001Z",
            context: EnvelopeContext {
                labels: &labels,
                library: &library,
                anonymous_id: "6f1c7e9a-3b2d-4c5e-8f90-1a2b3c4d5e6f",
                session_id: "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
            },
        };
        serde_json::to_vec(black_box(&e)).unwrap()
    };
    let envelope_len = envelope_of(&events[0]).len();

    // track(): the worker drains into a no-op transport, so the queue never fills. The
    // caller's clone of the event is measured alone too, to subtract it.
    let tracker = Tracker::builder()
        .transport(NoopTransport)
        .environment("bench")
        .service("tracker-bench")
        .queue_capacity(CALLS as usize)
        .max_queue_bytes(usize::MAX / 2)
        .build()
        .unwrap();
    // The same with a spool: every event also appended to disk by the spool thread, with a
    // group commit (fsync) every 50 ms.
    let spool_dir = tempfile::tempdir().unwrap();
    let spooled = Tracker::builder()
        .transport(NoopTransport)
        .environment("bench")
        .service("tracker-bench")
        .queue_capacity(CALLS as usize)
        .max_queue_bytes(usize::MAX / 2)
        .spool(spool_dir.path())
        .build()
        .unwrap();
    let [to_vec, envelope, track, clone, track_spooled] = interleaved(&mut [
        &mut |i| {
            black_box(serde_json::to_vec(black_box(&events[i as usize])).unwrap());
        },
        &mut |i| {
            black_box(envelope_of(&events[i as usize]));
        },
        &mut |i| {
            black_box(tracker.track(events[i as usize].clone()).unwrap());
        },
        &mut |i| {
            black_box(events[i as usize].clone());
        },
        &mut |i| {
            black_box(spooled.track(events[i as usize].clone()).unwrap());
        },
    ]);
    let (to_vec, envelope, track, clone, track_spooled) = (
        summary(to_vec),
        summary(envelope),
        summary(track),
        summary(clone),
        summary(track_spooled),
    );
    tracker.flush(Duration::from_secs(30)).unwrap();
    let s = tracker.stats();
    assert_eq!(s.sent, CALLS, "every event delivered");
    spooled.flush(Duration::from_secs(60)).unwrap();
    let s = spooled.stats();
    assert_eq!(
        (s.sent, s.dropped_total()),
        (CALLS, 0),
        "spool: every event delivered"
    );
    spooled.shutdown(Duration::from_secs(30)).unwrap();

    let entity = [player_entity()];
    let [track_with] = interleaved(&mut [&mut |i| {
        black_box(
            tracker
                .track_with(events[i as usize].clone(), &entity)
                .unwrap(),
        );
    }]);
    let track_with = summary(track_with);
    tracker.shutdown(Duration::from_secs(30)).unwrap();

    // End to end into a loopback HTTP sink, without and with a spool.
    let (e2e, counted, stats) = end_to_end(None);
    let spool_dir = tempfile::tempdir().unwrap();
    let (e2e_spooled, counted_spooled, _) = end_to_end(Some(spool_dir.path()));

    let track_net = track.0 - clone.0;
    println!("eventwire tracker benchmark ({CALLS} calls, rounds of {ROUND}; event JSON {json_len} bytes)");
    println!();
    println!("| measure | median ns/event | p99 ns/event | ratio to serde_json::to_vec |");
    println!("|---|---:|---:|---:|");
    println!(
        "| serde_json::to_vec(&event) | {:.0} | {:.0} | 1.00 |",
        to_vec.0, to_vec.1
    );
    println!(
        "| serde_json::to_vec(&envelope) (what travels, {} bytes) | {:.0} | {:.0} | {:.2} |",
        envelope_len,
        envelope.0,
        envelope.1,
        envelope.0 / to_vec.0
    );
    println!(
        "| tracker.track(event) | {:.0} | {:.0} | {:.2} |",
        track.0,
        track.1,
        track.0 / to_vec.0
    );
    println!(
        "| tracker.track(event) minus the caller's clone | {:.0} | | {:.2} |",
        track_net,
        track_net / to_vec.0
    );
    println!(
        "| tracker.track_with(event, [player]) | {:.0} | {:.0} | {:.2} |",
        track_with.0,
        track_with.1,
        track_with.0 / to_vec.0
    );
    println!(
        "| tracker.track(event) with a spool | {:.0} | {:.0} | {:.2} |",
        track_spooled.0,
        track_spooled.1,
        track_spooled.0 / to_vec.0
    );
    println!(
        "track() with a spool vs without, same run: {:.2}x",
        track_spooled.0 / track.0
    );
    println!(
        "track() vs one to_vec of the envelope: {:.2}x (clone excluded: {:.2}x)",
        track.0 / envelope.0,
        track_net / envelope.0
    );
    println!();
    println!("| end to end, loopback HTTP sink | value |");
    println!("|---|---:|");
    println!("| events tracked | {E2E_EVENTS} |");
    println!("| events counted by the sink | {counted} |");
    println!(
        "| requests | {} (gzip, {} bytes on the wire) |",
        stats.requests, stats.bytes_sent
    );
    println!("| elapsed | {:.2} s |", e2e.as_secs_f64());
    println!(
        "| events per second | {:.0} |",
        E2E_EVENTS as f64 / e2e.as_secs_f64()
    );
    println!(
        "| events per second with a spool | {:.0} ({:.2}x of without) |",
        E2E_EVENTS as f64 / e2e_spooled.as_secs_f64(),
        e2e.as_secs_f64() / e2e_spooled.as_secs_f64()
    );
    assert_eq!(counted, E2E_EVENTS, "the sink counted every event");

    // Through a delay line: each request held `rtt` by the proxy before it goes on.
    println!();
    println!(
        "| added round trip | events/s, 1 request in flight | events/s, window of {} (default) | ratio |",
        eventwire::outbox::DEFAULT_MAX_IN_FLIGHT
    );
    println!("|---:|---:|---:|---:|");
    for rtt_ms in [0, 20, 50] {
        let one = through_delay_line(Duration::from_millis(rtt_ms), 1);
        let window = through_delay_line(
            Duration::from_millis(rtt_ms),
            eventwire::outbox::DEFAULT_MAX_IN_FLIGHT,
        );
        println!(
            "| {rtt_ms} ms | {one:.0} | {window:.0} | {:.1}x |",
            window / one
        );
    }
    assert!(
        counted_spooled >= E2E_EVENTS,
        "the sink counted every event (spool)"
    );
}

/// Tracks `E2E_EVENTS` into a fresh loopback sink; returns the time to deliver them all, what
/// the sink counted and the tracker's stats.
fn end_to_end(spool: Option<&std::path::Path>) -> (Duration, u64, eventwire::Stats) {
    let sink = Collector::accept_all();
    let mut builder = Tracker::builder()
        .endpoint(sink.endpoint())
        .environment("bench")
        .service("tracker-bench")
        .when_full(WhenFull::Block(Duration::from_secs(30)));
    if let Some(dir) = spool {
        builder = builder.spool(dir);
    }
    let tracker = builder.build().unwrap();
    let entity = [player_entity()];
    let start = Instant::now();
    for i in 0..E2E_EVENTS {
        tracker.track_with(MediaPlay::sample(i), &entity).unwrap();
    }
    tracker.flush(Duration::from_secs(120)).unwrap();
    let elapsed = start.elapsed();
    let counted = sink.events();
    let stats = tracker.stats();
    tracker.shutdown(Duration::from_secs(10)).unwrap();
    (elapsed, counted, stats)
}

/// Events per second of `LATENCY_EVENTS` tracked into a loopback sink behind a proxy that
/// holds each request `rtt`, with `window` requests in flight at most. Every event must
/// reach the sink.
fn through_delay_line(rtt: Duration, window: usize) -> f64 {
    use eventwire_testkit::proxy::{Fault, Proxy};
    let sink = Collector::accept_all();
    let proxy = Proxy::start(sink.addr);
    proxy.set(Fault::Delay(rtt));
    let tracker = Tracker::builder()
        .endpoint(proxy.endpoint())
        .environment("bench")
        .service("tracker-bench")
        .max_in_flight(window)
        .when_full(WhenFull::Block(Duration::from_secs(60)))
        .build()
        .unwrap();
    let entity = [player_entity()];
    let start = Instant::now();
    for i in 0..LATENCY_EVENTS {
        tracker.track_with(MediaPlay::sample(i), &entity).unwrap();
    }
    tracker.flush(Duration::from_secs(300)).unwrap();
    let elapsed = start.elapsed();
    tracker.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(
        sink.events(),
        LATENCY_EVENTS,
        "the sink counted every event ({rtt:?}, window {window})"
    );
    LATENCY_EVENTS as f64 / elapsed.as_secs_f64()
}
