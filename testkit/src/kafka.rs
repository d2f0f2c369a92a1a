//! Kafka helpers for tests and benchmarks against the local broker ([`crate::broker`]):
//! make a topic, read a topic back, read a group's committed offsets.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Creates `topic` with `partitions` partitions (panics if the broker refuses).
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let topics = [NewTopic::new(topic, partitions, TopicReplication::Fixed(1))];
    for r in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key, as text (empty when none).
    pub key: String,
    /// Its value.
    pub payload: Vec<u8>,
}

/// A consumer of no group reading every partition of `topic` from its beginning.
fn from_the_start(brokers: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "eventwire-testkit-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

/// The records of `topic`, read from the start until `expect` arrived (and 2 s more, for
/// any extra one) or `quiet` passed without a new one; 90 s at most.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    expect: usize,
    quiet: Duration,
) -> Vec<Record> {
    let consumer = from_the_start(brokers, topic, partitions);
    let mut out = Vec::new();
    let mut last = Instant::now();
    let mut full_since: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    while last.elapsed() < quiet && Instant::now() < deadline {
        if full_since.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                payload: m.payload().unwrap_or_default().to_vec(),
            });
            last = Instant::now();
            if out.len() >= expect && full_since.is_none() {
                full_since = Some(Instant::now());
            }
        }
    }
    out
}

/// Every record of `topic`, read from the start up to each partition's high watermark as
/// the broker reports it when the call starts, and those watermarks. Panics, naming the
/// partitions short of their end, when they are not all read within 90 s: a reader that
/// stops when no record came for a while can stop early, and a test would then report
/// records missing that are not.
pub fn read_to_end(brokers: &str, topic: &str, partitions: i32) -> (Vec<Record>, Vec<i64>) {
    let consumer = from_the_start(brokers, topic, partitions);
    let highs: Vec<i64> = (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect();
    let mut next = vec![0i64; highs.len()];
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while next.iter().zip(&highs).any(|(n, h)| n < h) {
        assert!(
            Instant::now() < deadline,
            "{topic}: read up to {next:?} of {highs:?} in 90 s"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let i = usize::try_from(m.partition()).unwrap();
            next[i] = next[i].max(m.offset() + 1);
            if m.offset() < highs[i] {
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                });
            }
        }
    }
    (out, highs)
}

/// The end offset of each partition of `topic` (one past its last record), read from the
/// records themselves rather than asked of the broker.
pub fn ends(brokers: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer = from_the_start(brokers, topic, partitions);
    let mut ends = vec![0i64; usize::try_from(partitions).unwrap_or(0)];
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let end = &mut ends[usize::try_from(m.partition()).unwrap()];
            *end = (*end).max(m.offset() + 1);
            last = Instant::now();
        }
    }
    ends
}

/// The offsets `group` committed for each partition of `topic` (0 where none).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        })
        .collect()
}
