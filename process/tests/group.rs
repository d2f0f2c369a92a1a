//! `eventwire process` against a real Kafka-protocol broker on loopback (the one
//! `scripts/test.sh` installs): workers of one group in this process, good lines produced
//! as the collectors produce them.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::HashMap;
use std::time::{Duration, Instant};

use eventwire_process::uniques::UniquesSpec;
use eventwire_process::{Process, ProcessConfig, Running};
use eventwire_testkit::broker::Broker;
use eventwire_testkit::kafka;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 4;

fn good_line(id: &str, user: &str, article: &str) -> String {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::json!({
        "event_id": id,
        "schema": "iglu:com.example.web/article_view/jsonschema/1-0-0",
        "data": {"article_id": article, "headline": "h", "section": "news", "authors": [{"name": "a"}]},
        "context": {"labels": {"service": "web", "version": "1"}, "library": {"name": "t", "version": "0"}, "anonymous_id": user},
        "created_at": now, "sent_at": now, "received_at": now, "event_time": now,
    })
    .to_string()
}

/// Produces `lines` keyed by their ids with the collectors' partitioner.
async fn produce(brokers: &str, topic: &str, lines: &[(String, Vec<u8>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let sends = lines.iter().map(|(key, line)| {
        producer.send(
            FutureRecord::to(topic).key(key.as_str()).payload(&line[..]),
            Duration::from_secs(30),
        )
    });
    for r in futures_util::future::join_all(sends).await {
        r.unwrap();
    }
}

/// Records of `topic`: `(partition, key, payload)` (see [`kafka::read_topic`]).
fn read_all(
    brokers: &str,
    topic: &str,
    expect: usize,
    quiet: Duration,
) -> Vec<(i32, String, Vec<u8>)> {
    kafka::read_topic(brokers, topic, PARTITIONS, expect, quiet)
        .into_iter()
        .map(|r| (r.partition, r.key, r.payload))
        .collect()
}

fn config(brokers: &str, commit_interval: Duration) -> ProcessConfig {
    let mut c = ProcessConfig::new(brokers, "events")
        .uniques(UniquesSpec::parse("com.example.web/article_view:/data/article_id").unwrap());
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.commit_interval = commit_interval;
    c.session_timeout = Duration::from_secs(6);
    c
}

async fn get_json(running: &Running, path: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("http://{}{path}", running.addr()))
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn metrics(running: &Running) -> String {
    reqwest::get(format!("http://{}/metrics", running.addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `f` holds (at most `limit`).
async fn until(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn owned(running: &Running) -> Vec<i64> {
    let (_, health) = get_json(running, "/healthz").await;
    health["partitions"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_i64).collect())
        .unwrap_or_default()
}

/// Waits until the group's committed offsets reach the end of every input partition (at
/// most `limit`); panics with the worker's health and metrics otherwise.
async fn committed_to_the_end(b: &str, worker: &Running, limit: Duration) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("group.id", "eventwire-process")
        .create()
        .unwrap();
    let ends = {
        let mut ends = vec![0i64; PARTITIONS as usize];
        for (p, end) in ends.iter_mut().enumerate() {
            *end = consumer
                .fetch_watermarks("events", p as i32, Duration::from_secs(10))
                .unwrap()
                .1;
        }
        ends
    };
    let deadline = Instant::now() + limit;
    loop {
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition("events", p);
        }
        let got = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        let committed: Vec<i64> = (0..PARTITIONS)
            .map(
                |p| match got.find_partition("events", p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => -1,
                },
            )
            .collect();
        if committed == ends {
            break;
        }
        if Instant::now() > deadline {
            let (_, health) = get_json(worker, "/healthz").await;
            panic!(
                "the input was not committed to its end: committed {committed:?}, ends {ends:?}; /healthz {health}; metrics:\n{}",
                metrics(worker).await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_moves_is_read_back_so_its_replay_is_not_written_twice() {
    let broker = Broker::start();
    let b = broker.address.clone();
    kafka::create_topic(&b, "events", PARTITIONS).await;
    // 2,000 events, 200 of them twice, and one record that is not a good line.
    let ids: Vec<String> = (0..2_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let mut lines: Vec<(String, Vec<u8>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let line = good_line(
                id,
                &format!("user-{}", i % 700),
                &format!("article-{}", i % 5),
            );
            (id.clone(), line.into_bytes())
        })
        .collect();
    lines.extend(ids[..200].iter().map(|id| {
        (
            id.clone(),
            good_line(id, "user-x", "article-0").into_bytes(),
        )
    }));
    lines.push(("junk".into(), b"{not json".to_vec()));
    // Not a good line either, and its error quotes a 200 KB value (each DEL 7 bytes once
    // escaped): its dead letter must still be small enough to store.
    let del = "\u{7f}".repeat(200_000);
    let huge = format!(
        "{{\"event_id\":\"e\",\"schema\":\"iglu:a/b/jsonschema/1-0-0\",\"received_at\":\"{del}\"}}"
    );
    lines.push(("junk-2".into(), huge.into_bytes()));
    // A good line whose dimension value is 600 KB: written, but not a sketch (a state
    // record that size would be refused by the broker, and nothing would be committed).
    let big_id = uuid::Uuid::new_v4().to_string();
    let big = good_line(&big_id, "user-0", &"x".repeat(600_000));
    lines.push((big_id.clone(), big.into_bytes()));
    produce(&b, "events", &lines).await;

    // A commit interval longer than the test: nothing is committed before the rebalance,
    // so the partitions that move are replayed from their start by their new owner.
    let first = Process::start(config(&b, Duration::from_secs(600)))
        .await
        .unwrap();
    let out = read_all(&b, "events-unique", ids.len() + 1, Duration::from_secs(20));
    assert_eq!(
        out.len(),
        ids.len() + 1,
        "the first worker wrote each event once"
    );
    let second = Process::start(config(&b, Duration::from_secs(600)))
        .await
        .unwrap();
    until(
        Duration::from_secs(60),
        "the second worker to own partitions",
        async || !owned(&second).await.is_empty(),
    )
    .await;
    // The second worker read back what its partitions wrote, then replayed their input:
    // every record it handled was a duplicate.
    until(
        Duration::from_secs(30),
        "the replay to be handled",
        async || {
            metric(
                &metrics(&second).await,
                "eventwire_process_records_total{outcome=\"duplicate\"}",
            ) > 0.0
        },
    )
    .await;
    let text = metrics(&second).await;
    assert!(
        metric(&text, "eventwire_process_rebuilds_total") >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "eventwire_process_rebuild_records_total") > 0.0,
        "{text}"
    );
    let out = read_all(&b, "events-unique", ids.len() + 2, Duration::from_secs(8));
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, key, _) in &out {
        *count.entry(key.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "written twice after the rebalance: {} ids, e.g. {:?}",
        twice.len(),
        twice.first()
    );
    assert_eq!(count.len(), ids.len() + 1);
    // The records that are not good lines are dead letters with their reason and position.
    let dead = read_all(&b, "events-dead-letters", 2, Duration::from_secs(5));
    assert_eq!(dead.len(), 2, "two dead letters");
    let mut codes = Vec::new();
    for (_, _, bytes) in &dead {
        assert!(
            bytes.len() < 64 * 1024,
            "a dead letter of {} bytes",
            bytes.len()
        );
        let letter: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let path = letter["errors"][0]["path"].as_str().unwrap();
        assert!(path.starts_with("kafka:events/"), "{letter}");
        codes.push(letter["code"].as_str().unwrap().to_owned());
    }
    codes.sort();
    assert_eq!(codes, ["invalid_envelope", "malformed"]);

    // Either worker answers for all partitions: 701 users, 140 per article (141 for the
    // article user-x read).
    until(
        Duration::from_secs(30),
        "both workers to see every partition's sketches",
        async || {
            let mut ok = true;
            for w in [&first, &second] {
                let (_, a) = get_json(
                    w,
                    "/v1/uniques?schema=com.example.web/article_view&window=60m",
                )
                .await;
                ok &= a["uniques"] == 701
                    && a["partitions"].as_array().map_or(0, Vec::len) == PARTITIONS as usize;
            }
            ok
        },
    )
    .await;
    let (status, top) = get_json(
        &second,
        "/v1/uniques?schema=com.example.web/article_view&by=article_id&top=2&window=60m",
    )
    .await;
    assert_eq!(status, 200, "{top}");
    let rows = top["top"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["value"], "article-0", "{top}");
    assert_eq!(rows[0]["uniques"], 141, "{top}");
    assert_eq!(rows[1]["uniques"], 140, "{top}");
    let (status, one) = get_json(
        &first,
        "/v1/uniques?schema=com.example.web/article_view&by=article_id&value=article-3&window=5m",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["uniques"], 140, "{one}");
    assert!(
        one["lower_bound"].as_u64().unwrap() <= 140 && one["upper_bound"].as_u64().unwrap() >= 140,
        "{one}"
    );
    assert_eq!(one["window"]["seconds"], 300);
    let (status, bad) = get_json(
        &first,
        "/v1/uniques?schema=com.example.web/article_view&by=article_id&window=5m",
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = get_json(&first, "/v1/uniques?schema=x/y&window=2d").await;
    assert_eq!(status, 400, "{bad}");
    first
        .stopper()
        .store(true, std::sync::atomic::Ordering::Relaxed);
    second
        .stopper()
        .store(true, std::sync::atomic::Ordering::Relaxed);
    first.wait().await.unwrap();
    second.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_cannot_write_its_output_stops_committing_and_says_why() {
    let broker = Broker::start();
    let b = broker.address.clone();
    kafka::create_topic(&b, "events", PARTITIONS).await;
    let ids: Vec<String> = (0..200).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let lines: Vec<(String, Vec<u8>)> = ids
        .iter()
        .map(|id| (id.clone(), good_line(id, "u", "article-1").into_bytes()))
        .collect();
    produce(&b, "events", &lines).await;
    // /dev/full takes the open and refuses every write (ENOSPC).
    let mut c = config(&b, Duration::from_millis(200));
    c.output = Some("/dev/full".into());
    let worker = Process::start(c).await.unwrap();
    until(Duration::from_secs(60), "/healthz to say why", async || {
        let (status, h) = get_json(&worker, "/healthz").await;
        status == 503
            && h["status"] == "failing"
            && h["reason"].as_str().unwrap_or("").contains("/dev/full")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Nothing committed: the group would start from the beginning.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "eventwire-process")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition("events", p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    for e in committed.elements() {
        assert!(
            !matches!(e.offset(), Offset::Offset(o) if o > 0),
            "partition {} committed {:?} while its output failed",
            e.partition(),
            e.offset()
        );
    }
    let text = metrics(&worker).await;
    assert!(
        metric(
            &text,
            "eventwire_process_write_failures_total{sink=\"output\"}"
        ) >= 1.0,
        "{text}"
    );
    worker
        .stopper()
        .store(true, std::sync::atomic::Ordering::Relaxed);
    worker.wait().await.unwrap();
}

/// The broker stops answering (SIGSTOP) while a worker writes, long enough for its writes
/// to time out and its session to lapse, then comes back: the worker reads back what its
/// timed-out writes stored anyway, resumes the partitions it paused, and the output holds
/// each event once with the input fully committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stops_answering_mid_write_loses_and_doubles_nothing() {
    let broker = Broker::start();
    let b = broker.address.clone();
    kafka::create_topic(&b, "events", PARTITIONS).await;
    let ids: Vec<String> = (0..120_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let lines: Vec<(String, Vec<u8>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                id.clone(),
                good_line(id, &format!("u{}", i % 50), "article-1").into_bytes(),
            )
        })
        .collect();
    // A steady stream (≈ 10,000 events/s for 12 s), so the worker is writing when the
    // broker stops.
    let stream = {
        let (b, lines) = (b.clone(), lines.clone());
        tokio::spawn(async move {
            for chunk in lines.chunks(1_000) {
                produce(&b, "events", chunk).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut c = config(&b, Duration::from_millis(500));
    c.session_timeout = Duration::from_secs(3);
    c.kafka_options = [("message.timeout.ms".to_owned(), "2000".to_owned())]
        .into_iter()
        .collect();
    let worker = Process::start(c).await.unwrap();
    until(
        Duration::from_secs(60),
        "the worker to be writing",
        async || {
            metric(
                &metrics(&worker).await,
                "eventwire_process_records_total{outcome=\"written\"}",
            ) > 0.0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &broker.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    tokio::time::sleep(Duration::from_secs(8)).await;
    signal("-CONT");
    stream.await.unwrap();
    // The stop caught the worker: a write failed (output or state), or its session lapsed
    // and its partitions were given again (more rebuilds than partitions).
    let text = metrics(&worker).await;
    assert!(
        metric(&text, "eventwire_process_write_failures_total") >= 1.0
            || metric(&text, "eventwire_process_rebuilds_total") > f64::from(PARTITIONS),
        "the stop did not catch the worker: {text}"
    );
    committed_to_the_end(&b, &worker, Duration::from_secs(120)).await;
    let out = read_all(&b, "events-unique", ids.len(), Duration::from_secs(10));
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, key, _) in &out {
        *count.entry(key.as_str()).or_default() += 1;
    }
    let twice = count.values().filter(|n| **n > 1).count();
    assert_eq!(
        (count.len(), twice),
        (ids.len(), 0),
        "(ids in the output, written twice)"
    );
    worker
        .stopper()
        .store(true, std::sync::atomic::Ordering::Relaxed);
    worker.wait().await.unwrap();
}

/// A broker that stores batches as objects (nisshi, like other object-store brokers) gives
/// a batch its offsets before it stores it, so a fetch racing two producers can return the
/// next batch and skip one still being stored: a reader that trusts the offsets it is given
/// commits past records it never saw. The worker takes every offset in order; a gap is
/// read again until it fills (or, past `input_gap_wait`, taken as records that do not
/// exist, counted and logged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_fetch_skips_while_two_producers_write_are_read_again() {
    use rdkafka::Message as _;
    let broker = Broker::start();
    let b = broker.address.clone();
    kafka::create_topic(&b, "events", PARTITIONS).await;
    let worker = Process::start(config(&b, Duration::from_millis(500)))
        .await
        .unwrap();
    // A plain reader tailing the input beside the worker: the records its fetches skipped
    // are the evidence that the race happened in this run.
    let tail = {
        let b = b.clone();
        std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &b)
                .set("group.id", "tail")
                .set("fetch.wait.max.ms", "100")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            for p in 0..PARTITIONS {
                tpl.add_partition_offset("events", p, Offset::Beginning)
                    .unwrap();
            }
            consumer.assign(&tpl).unwrap();
            let mut next = vec![0i64; PARTITIONS as usize];
            let mut skipped = 0i64;
            let mut last = Instant::now();
            while last.elapsed() < Duration::from_secs(5) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    let p = usize::try_from(m.partition()).unwrap();
                    skipped += (m.offset() - next[p]).max(0);
                    next[p] = next[p].max(m.offset() + 1);
                    last = Instant::now();
                }
            }
            skipped
        })
    };
    // Two producers (two collectors), each ≈ 4,000 records/s for 15 s.
    let mut ids = Vec::new();
    let mut streams = Vec::new();
    for w in 0..2 {
        let lines: Vec<(String, Vec<u8>)> = (0..60_000)
            .map(|i| {
                let id = uuid::Uuid::new_v4().to_string();
                let line = good_line(&id, &format!("u{}", i % 100), "article-1");
                (id, line.into_bytes())
            })
            .collect();
        ids.extend(lines.iter().map(|(id, _)| id.clone()));
        let b = b.clone();
        streams.push(tokio::spawn(async move {
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &b)
                .set("partitioner", "murmur2_random")
                .set("linger.ms", "5")
                .set("client.id", format!("collector-{w}"))
                .create()
                .unwrap();
            // Records enqueued at a steady rate, without waiting for earlier ones: several
            // produce requests of each producer in flight, as a busy collector has.
            let started = Instant::now();
            let mut deliveries = Vec::with_capacity(lines.len());
            for (i, (key, line)) in lines.iter().enumerate() {
                loop {
                    let record = FutureRecord::to("events")
                        .key(key.as_str())
                        .payload(&line[..]);
                    match producer.send_result(record) {
                        Ok(delivery) => break deliveries.push(delivery),
                        Err((e, _)) => {
                            assert!(format!("{e}").contains("QueueFull"), "{e}");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                if i % 40 == 0 {
                    let due = started + Duration::from_micros(250 * i as u64);
                    tokio::time::sleep_until(due.into()).await;
                }
            }
            for d in deliveries {
                d.await.unwrap().unwrap();
            }
        }));
    }
    for s in streams {
        s.await.unwrap();
    }
    committed_to_the_end(&b, &worker, Duration::from_secs(60)).await;
    let skipped_by_a_plain_reader = tail.join().unwrap();
    let (out, _) = kafka::read_to_end(&b, "events-unique", PARTITIONS);
    let mut count: HashMap<&str, usize> = HashMap::new();
    for r in &out {
        *count.entry(r.key.as_str()).or_default() += 1;
    }
    let missing = ids
        .iter()
        .filter(|id| !count.contains_key(id.as_str()))
        .count();
    let twice = count.values().filter(|n| **n > 1).count();
    let text = metrics(&worker).await;
    let gaps = text
        .lines()
        .filter(|l| l.starts_with("eventwire_process_input_gaps"))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        (missing, twice),
        (0, 0),
        "(missing from the output, written twice); a plain reader skipped {skipped_by_a_plain_reader} records; worker: {gaps}"
    );
    println!("a plain reader skipped {skipped_by_a_plain_reader} records; worker: {gaps}");
    worker
        .stopper()
        .store(true, std::sync::atomic::Ordering::Relaxed);
    worker.wait().await.unwrap();
}
