//! Collector benchmark: validated events per second on one core for a realistic schema mix,
//! beside the rate of merely parsing the same bodies into `serde_json::Value` (the floor any
//! validator pays), and end to end tracker → collector → file on loopback.
//!
//! Run: `cargo run --release -p eventwire-bench --bin collector` (from the repository root)

#![allow(clippy::unwrap_used)] // benchmark harness: fail loudly

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eventwire::{Entity, Tracker, WhenFull};
use eventwire_bench::mix::{envelope, mix, player};
use eventwire_collector::registry::{Registry, Source};
use eventwire_collector::server::{Collector, CollectorConfig};
use eventwire_collector::sink::SinkSpec;
use eventwire_collector::validate::{Limits, Pipeline};
use eventwire_testkit::probe::http_get;
use serde_json::{json, Value};

// The allocator of the `eventwire` binary (cli/src/main.rs), so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 500;
const ROUNDS: usize = 200;
const E2E_EVENTS: usize = 200_000;

fn schemas() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // 1. Validation on one core: the whole per-request pipeline minus HTTP and sinks.
    let registry = Registry::new(Source::Dir(schemas())).unwrap();
    let pipeline = Pipeline::new(Limits::default()).unwrap();
    let bodies: Vec<Vec<u8>> = (0..20)
        .map(|b| {
            let events: Vec<Value> = (0..BATCH).map(|i| envelope(b * BATCH + i)).collect();
            serde_json::to_vec(&json!({"sent_at": "2026-11-26T03:10:26.123Z", "events": events}))
                .unwrap()
        })
        .collect();
    let bytes_per_event = bodies[0].len() / BATCH;
    let received = chrono::Utc::now();
    // Warm the schema cache.
    let warm = runtime
        .block_on(pipeline.check_batch(&bodies[0], received, &registry))
        .unwrap();
    assert_eq!(warm.good.len(), BATCH, "every benchmark event is valid");
    let start = Instant::now();
    let mut validated = 0;
    for r in 0..ROUNDS {
        let checked = runtime
            .block_on(pipeline.check_batch(&bodies[r % bodies.len()], received, &registry))
            .unwrap();
        validated += checked.good.len();
    }
    let validation = start.elapsed();
    // The floor any validator pays: parsing the same bodies into `serde_json::Value`.
    let start = Instant::now();
    let mut parsed = 0;
    for r in 0..ROUNDS {
        let body: Value = serde_json::from_slice(&bodies[r % bodies.len()]).unwrap();
        parsed += body["events"].as_array().map_or(0, Vec::len);
    }
    let parsing = start.elapsed();
    drop(runtime);
    if std::env::args().any(|a| a == "--validation-only") {
        // For profiling the per-core pipeline alone.
        println!(
            "validation {:.0} events/s, parsing {:.0} events/s",
            validated as f64 / validation.as_secs_f64(),
            parsed as f64 / parsing.as_secs_f64()
        );
        return;
    }

    // 2. End to end: tracker → collector (file sinks) on loopback.
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (collector, server) = runtime.block_on(async {
        let config = CollectorConfig::new(Source::Dir(schemas()))
            .good(SinkSpec::File(dir.path().join("good.jsonl")))
            .bad(SinkSpec::File(dir.path().join("bad.jsonl")));
        let collector = Collector::new(config).await.unwrap();
        let server = collector
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        (collector, server)
    });
    let tracker = Tracker::builder()
        .endpoint(server.endpoint())
        .environment("bench")
        .service("collector-bench")
        .when_full(WhenFull::Block(Duration::from_secs(60)))
        .build()
        .unwrap();
    let player = Entity {
        schema: "iglu:com.example.media/player/jsonschema/1-0-0".into(),
        data: player()["data"].clone(),
    };
    // `/healthz` probed every 10 ms while both cores are saturated by the run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = std::thread::spawn({
        let (stop, addr) = (stop.clone(), server.addr());
        move || {
            let mut took = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, _, took_now) = http_get(addr, "/healthz");
                assert_eq!(status, 200, "/healthz during the run");
                took.push(took_now);
                std::thread::sleep(Duration::from_millis(10));
            }
            took
        }
    });
    let start = Instant::now();
    for i in 0..E2E_EVENTS {
        let (schema, data, entities) = mix(i);
        let entities: &[Entity] = if entities.is_empty() {
            &[]
        } else {
            std::slice::from_ref(&player)
        };
        tracker.track_json_with(schema, &data, entities).unwrap();
    }
    tracker.flush(Duration::from_secs(120)).unwrap();
    let e2e = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut probes = probe.join().unwrap();
    probes.sort();
    let stats = tracker.stats();
    tracker.shutdown(Duration::from_secs(10)).unwrap();
    let totals = collector.totals();
    runtime.block_on(server.shutdown());
    let lines = std::fs::read_to_string(dir.path().join("good.jsonl"))
        .unwrap()
        .lines()
        .count();

    println!("eventwire collector benchmark");
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| validation, one core: events per second | {:.0} |",
        validated as f64 / validation.as_secs_f64()
    );
    let parse_rate = parsed as f64 / parsing.as_secs_f64();
    println!(
        "| parsing the same bodies into `serde_json::Value`, one core: events per second | {parse_rate:.0} |"
    );
    println!(
        "| validation ÷ parsing (goal ≥ 0.5) | {:.2} |",
        validated as f64 / validation.as_secs_f64() / parse_rate
    );
    println!(
        "| validation, one core: µs per event | {:.2} |",
        validation.as_secs_f64() * 1e6 / validated as f64
    );
    println!(
        "| validation, one core: MB/s of request body | {:.1} |",
        (validated * bytes_per_event) as f64 / validation.as_secs_f64() / 1e6
    );
    println!("| (mix: 2/5 play + player entity, 1/5 page view, search, checkout; {bytes_per_event} bytes/event) | |");
    println!(
        "| end to end tracker → collector → file: events per second | {:.0} |",
        E2E_EVENTS as f64 / e2e.as_secs_f64()
    );
    println!(
        "| end to end: events tracked / accepted / lines in good.jsonl | {} / {} / {} |",
        E2E_EVENTS, totals.accepted, lines
    );
    println!(
        "| end to end: requests, tracker retries | {}, {} |",
        stats.requests, stats.retries
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| end to end: `/healthz` meanwhile, p50 / p99 / max ms ({} probes) | {:.1} / {:.1} / {:.1} |",
        probes.len(),
        ms(probes[probes.len() / 2]),
        ms(probes[probes.len() * 99 / 100]),
        ms(probes[probes.len() - 1])
    );
    assert_eq!(lines, E2E_EVENTS, "every event landed once");
    assert_eq!(stats.sent, E2E_EVENTS as u64);
}
