//! Collector → Kafka beside the broker's own ceiling, on the local broker (in-memory storage,
//! started here on a free loopback port):
//!
//! 1. the ceiling: a plain rdkafka producer with the collector's Kafka settings (`acks=all`,
//!    idempotent, lz4, `linger.ms=5`) producing records like the collector's (good lines of
//!    the collector benchmark's mix, keyed by event id), as fast as the broker acknowledges;
//! 2. the product: the Rust tracker → the collector with a Kafka good sink, until `flush`
//!    returns (every event acknowledged by the broker before its request was answered).
//!
//! `cargo run --release -p eventwire-bench --bin collector-kafka` (the broker binary comes
//! from `scripts/test.sh`, or `EVENTWIRE_BROKER=/path/to/broker`).

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)] // a benchmark: fail loudly, print a table

use std::time::{Duration, Instant};

use eventwire::{Tracker, WhenFull};
use eventwire_bench::mix::{envelope, mix, player};
use eventwire_collector::registry::Source;
use eventwire_collector::server::{Collector, CollectorConfig};
use eventwire_collector::sink::SinkSpec;
use eventwire_testkit::kafka::create_topic;
use futures_util::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: usize = 100_000;
const PARTITIONS: i32 = 3;

/// A good line as the collector writes one for event `i` of the mix (the envelope and the
/// collector's timestamps), keyed by its event id.
fn line(i: usize) -> (String, Vec<u8>) {
    let mut record = envelope(i);
    for (field, at) in [
        ("sent_at", "2026-11-26T03:10:25.010Z"),
        ("received_at", "2026-11-26T03:10:25.011Z"),
        ("event_time", "2026-11-26T03:10:25.001Z"),
    ] {
        record[field] = json!(at);
    }
    let id = record["event_id"].as_str().unwrap().to_owned();
    (id, serde_json::to_vec(&record).unwrap())
}

fn main() {
    let broker = eventwire_testkit::broker::Broker::start();
    let brokers = broker.address.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. The broker's ceiling, with a plain producer.
    runtime.block_on(create_topic(&brokers, "ceiling", PARTITIONS));
    let records: Vec<(String, Vec<u8>)> = (0..EVENTS).map(line).collect();
    let bytes_per_record = records.iter().map(|r| r.1.len()).sum::<usize>() / EVENTS;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let ceiling = runtime.block_on(async {
        let start = Instant::now();
        // In slices of 10,000 outstanding records (the producer's queue holds them).
        for chunk in records.chunks(10_000) {
            let sends = chunk.iter().map(|(key, payload)| {
                producer.send(
                    FutureRecord::to("ceiling")
                        .key(key.as_str())
                        .payload(&payload[..]),
                    Duration::from_secs(30),
                )
            });
            for r in join_all(sends).await {
                r.map_err(|(e, _)| e).unwrap();
            }
        }
        start.elapsed()
    });
    drop(producer);

    // 2. Tracker → collector → Kafka.
    runtime.block_on(create_topic(&brokers, "good", PARTITIONS));
    let dir = tempfile::tempdir().unwrap();
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let (collector, server) = runtime.block_on(async {
        let config = CollectorConfig::new(Source::Dir(schemas))
            .good(SinkSpec::Kafka {
                brokers: brokers.clone(),
                topic: "good".into(),
            })
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
    let player = eventwire::Entity {
        schema: "iglu:com.example.media/player/jsonschema/1-0-0".into(),
        data: player()["data"].clone(),
    };
    let start = Instant::now();
    for i in 0..EVENTS {
        let (schema, data, entities) = mix(i);
        let entities: &[eventwire::Entity] = if entities.is_empty() {
            &[]
        } else {
            std::slice::from_ref(&player)
        };
        tracker.track_json_with(schema, &data, entities).unwrap();
    }
    tracker.flush(Duration::from_secs(300)).unwrap();
    let e2e = start.elapsed();
    let stats = tracker.stats();
    tracker.shutdown(Duration::from_secs(10)).unwrap();
    let totals = collector.totals();
    runtime.block_on(server.shutdown());

    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    println!("eventwire collector → Kafka benchmark (local broker, in-memory, {PARTITIONS} partitions, loopback)");
    println!();
    println!("| measure | events per second |");
    println!("|---|---:|");
    println!(
        "| the broker's ceiling: a plain rdkafka producer, {EVENTS} records of {bytes_per_record} bytes, acks=all | {:.0} |",
        rate(ceiling)
    );
    println!(
        "| tracker → collector → Kafka, {EVENTS} events (accepted {}, requests {}, retries {}) | {:.0} |",
        totals.accepted,
        stats.requests,
        stats.retries,
        rate(e2e)
    );
    println!(
        "| collector ÷ ceiling | {:.2} |",
        ceiling.as_secs_f64() / e2e.as_secs_f64()
    );
    assert_eq!(totals.accepted, EVENTS as u64, "every event accepted once");
    assert_eq!(stats.sent, EVENTS as u64);
    drop(broker);
}
