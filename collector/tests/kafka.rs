//! Kafka sinks against a real Kafka-protocol broker (in-memory storage) on loopback:
//! events produced through the collector are consumed back with the right keys and payloads,
//! spread over partitions by their event id.
//!
//! The broker binary comes from `scripts/test.sh` (nisshi, see docs/decisions.md); each test
//! starts its own broker on a free port ([`eventwire_testkit::broker`]) and stops it when
//! done.

#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use eventwire_collector::sink::SinkSpec;
use eventwire_testkit::broker::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use serde_json::{json, Value};

fn start_broker() -> Broker {
    Broker::start()
}

async fn create_topics(brokers: &str, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, 3, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap();
    for r in results {
        r.unwrap();
    }
}

/// The partition Kafka's Java client gives `key` among `partitions`:
/// `toPositive(murmur2(key)) % partitions` (`org.apache.kafka.common.utils.Utils.murmur2`,
/// seed 0x9747b28c), written out here as the oracle the collector must agree with.
fn java_partition(key: &[u8], partitions: i32) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ (key.len() as u32);
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    ((h & 0x7fff_ffff) % partitions as u32) as i32
}

/// Consumes `topic` until `n` messages arrived (bounded by a timeout).
async fn consume(brokers: &str, topic: &str, n: usize) -> Vec<(Option<String>, Value, i32)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::now_v7()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {n} messages consumed from {topic}",
            out.len()
        );
        let Ok(Ok(message)) = tokio::time::timeout(left, consumer.recv()).await else {
            continue;
        };
        let key = message
            .key()
            .map(|k| String::from_utf8(k.to_vec()).unwrap());
        let payload: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        out.push((key, payload, message.partition()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_to_kafka_keyed_by_event_id() {
    let broker = start_broker();
    let brokers = broker.address.clone();
    create_topics(&brokers, &["eventwire-good", "eventwire-bad"]).await;
    let c = start(|c| {
        c.good(SinkSpec::parse(&format!(
            "kafka://{brokers}/eventwire-good"
        )))
        .bad(SinkSpec::parse(&format!("kafka://{brokers}/eventwire-bad")))
    })
    .await;

    let mut events: Vec<Value> = (0..30).map(|i| play(i as f64)).collect();
    events.push(play(-1.0)); // schema_invalid
    events.push(envelope(
        "iglu:com.example.nope/x/jsonschema/1-0-0",
        json!({}),
    )); // unknown_schema
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    let (status, answer) = post_json(&c.url("/v1/batch"), &batch(events)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 30);

    let good = consume(&brokers, "eventwire-good", 30).await;
    let keys: HashSet<&str> = good.iter().map(|(k, _, _)| k.as_deref().unwrap()).collect();
    assert_eq!(
        keys,
        ids[..30].iter().map(String::as_str).collect::<HashSet<_>>()
    );
    for (key, payload, _) in &good {
        assert_eq!(
            payload["event_id"].as_str(),
            key.as_deref(),
            "key = event_id"
        );
        assert_eq!(
            payload["schema"],
            "iglu:com.example.media/play/jsonschema/1-0-0"
        );
        assert!(payload["received_at"].is_string() && payload["event_time"].is_string());
    }
    let partitions: HashMap<i32, usize> = good.iter().fold(HashMap::new(), |mut m, (_, _, p)| {
        *m.entry(*p).or_default() += 1;
        m
    });
    assert!(
        partitions.len() > 1,
        "keys spread over partitions: {partitions:?}"
    );
    // Each id is on the partition the Java client's partitioner gives it, so every
    // collector (and any producer set the same way) agrees where an id lives.
    for (key, _, partition) in &good {
        let key = key.as_deref().unwrap();
        assert_eq!(
            *partition,
            java_partition(key.as_bytes(), 3),
            "{key} is not on its murmur2 partition"
        );
    }

    let bad = consume(&brokers, "eventwire-bad", 2).await;
    let mut codes: Vec<&str> = bad
        .iter()
        .map(|(_, p, _)| p["code"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, ["schema_invalid", "unknown_schema"]);
    for (key, payload, _) in &bad {
        assert_eq!(payload["event"]["event_id"].as_str(), key.as_deref());
    }
    // Nothing went to the file sinks of the fixture.
    assert!(c.good().is_empty() && c.bad().is_empty());
}

/// The broker frozen mid-stream (SIGSTOP: it answers nothing, connections hang) for longer
/// than the tracker's request timeout, then thawed: the collector's commits wait for the
/// broker while the tracker resends; every event ends in the topic exactly once.
///
/// A freeze, not a kill: the broker's in-memory storage loses the topic with the process, so a
/// restart could only lose what the broker had acknowledged — a broker fault, not ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_loses_and_doubles_nothing() {
    let broker = start_broker();
    let brokers = broker.address.clone();
    create_topics(&brokers, &["frozen-good", "frozen-bad"]).await;
    let c = start(|c| {
        c.good(SinkSpec::parse(&format!("kafka://{brokers}/frozen-good")))
            .bad(SinkSpec::parse(&format!("kafka://{brokers}/frozen-bad")))
    })
    .await;
    let tracker = eventwire::Tracker::builder()
        .endpoint(c.endpoint())
        .max_batch_delay(Duration::from_millis(50))
        .max_batch_events(100)
        .request_timeout(Duration::from_secs(1))
        .retry(eventwire::RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            ..eventwire::RetryPolicy::default()
        })
        .build()
        .unwrap();
    let pid = broker.pid().to_string();
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    let mut ids = HashSet::new();
    for round in 0..30 {
        if round == 10 {
            signal("-STOP");
        }
        if round == 20 {
            signal("-CONT");
        }
        for i in 0..100 {
            let id = tracker
                .track_json(
                    "iglu:com.example.media/play/jsonschema/1-0-0",
                    &json!({ "media_id": format!("r{round:03}i{i:03}"), "position_s": i }),
                )
                .unwrap();
            ids.insert(id.to_string());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let flushed = tokio::task::spawn_blocking(move || {
        let r = tracker.flush(Duration::from_secs(90));
        (r, tracker.stats())
    })
    .await
    .unwrap();
    assert!(flushed.0.is_ok(), "{:?}", flushed.1);
    let stats = flushed.1;
    assert!(stats.retries > 0, "the freeze was never felt: {stats:?}");
    assert_eq!((stats.sent, stats.dropped_total()), (3000, 0), "{stats:?}");
    let good = consume(&brokers, "frozen-good", 3000).await;
    // A little longer: anything written twice would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (key, _, _) in &good {
        *seen.entry(key.clone().unwrap()).or_default() += 1;
    }
    assert_eq!(seen.len(), 3000);
    assert!(
        seen.values().all(|n| *n == 1),
        "an event is in the topic twice"
    );
    assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), ids);
}

/// librdkafka properties for a client of a TLS broker whose CA is `ca`.
fn tls_options(ca: &std::path::Path) -> eventwire_collector::sink::KafkaOptions {
    use eventwire_collector::sink::{KafkaOptions, OptionValue};
    let mut options = KafkaOptions::new();
    options.push("security.protocol", OptionValue::Literal("ssl".into()));
    options.push(
        "ssl.ca.location",
        OptionValue::Literal(ca.display().to_string()),
    );
    options
}

/// A broker whose listener takes only TLS: the collector reaches it through the
/// `security.protocol` and `ssl.ca.location` options (they reach the producer), and every
/// event is read back over TLS; without them, the same collector cannot store anything and
/// answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_options_reach_the_producer_and_tls_works() {
    let tls = eventwire_testkit::broker::Tls::generate();
    let broker = Broker::start_tls(&tls);
    let brokers = broker.address.clone();
    let client = |config: &mut ClientConfig| {
        config
            .set("bootstrap.servers", &brokers)
            .set("security.protocol", "ssl")
            .set("ssl.ca.location", tls.ca().display().to_string());
    };
    let mut admin_config = ClientConfig::new();
    client(&mut admin_config);
    let admin: AdminClient<DefaultClientContext> = admin_config.create().unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new("tls-good", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }

    let sink = format!("kafka://{brokers}/tls-good");
    let c = start(|c| {
        c.good(SinkSpec::parse(&sink))
            .kafka_options(tls_options(&tls.ca()))
    })
    .await;
    let events: Vec<Value> = (0..5).map(|i| play(f64::from(i))).collect();
    let (status, answer) = post_json(&c.url("/v1/batch"), &batch(events.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 5);

    let mut consumer_config = ClientConfig::new();
    client(&mut consumer_config);
    let consumer: StreamConsumer = consumer_config
        .set("group.id", "tls-test")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["tls-good"]).unwrap();
    let mut ids = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of 5 read back over TLS",
            ids.len()
        );
        if let Ok(Ok(m)) = tokio::time::timeout(left, consumer.recv()).await {
            ids.insert(String::from_utf8(m.key().unwrap().to_vec()).unwrap());
        }
    }
    let sent: HashSet<String> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, sent);

    // The same collector without the TLS options: the broker is unreachable to it.
    let plain = start(|c| {
        let mut options = eventwire_collector::sink::KafkaOptions::new();
        options.push(
            "message.timeout.ms",
            eventwire_collector::sink::OptionValue::Literal("2000".into()),
        );
        c.good(SinkSpec::parse(&sink)).kafka_options(options)
    })
    .await;
    let (status, answer) = post_json(&plain.url("/v1/batch"), &batch(vec![play(9.0)])).await;
    assert_eq!(status, 503, "{answer}");
}

/// A property librdkafka does not know, or a value it refuses, stops the collector from
/// starting, naming the property; a secret's value is never in the message.
#[tokio::test]
async fn a_bad_kafka_option_is_an_error_at_start() {
    use eventwire_collector::server::{Collector, CollectorConfig};
    use eventwire_collector::sink::{KafkaOptions, OptionValue};
    for (key, value, named) in [
        ("no.such.property", "1", "no.such.property"),
        ("compression.type", "zip", "compression.type"),
        ("sasl.password", "", "sasl.password"),
        ("security.protocol", "hunter2-secret", "security.protocol"),
        ("acks", "1", "acks"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut options = KafkaOptions::new();
        options.push(key, OptionValue::Literal(value.into()));
        if key == "sasl.password" {
            // A secret whose variable is missing.
            options = KafkaOptions::new();
            options.push(
                key,
                OptionValue::Env("EVENTWIRE_TEST_NO_SUCH_VARIABLE".into()),
            );
        }
        if value.starts_with("hunter2") {
            // A value read as a secret, which librdkafka refuses: its words quote it.
            let file = dir.path().join("secret");
            std::fs::write(&file, value).unwrap();
            options = KafkaOptions::new();
            options.push(key, OptionValue::File(file));
        }
        let config = CollectorConfig::new(eventwire_collector::registry::Source::Dir(
            dir.path().to_owned(),
        ))
        .good(SinkSpec::parse("kafka://127.0.0.1:1/t"))
        .bad(SinkSpec::File(dir.path().join("bad.jsonl")))
        .kafka_options(options);
        let started = Instant::now();
        let e = Collector::new(config).await.unwrap_err().to_string();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{key}: not at once"
        );
        assert!(e.contains(named), "{key}={value}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
