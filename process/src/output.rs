//! Where first occurrences go: a Kafka topic (exact across crashes: a partition's new owner
//! reads back what was written), a JSONL file or stdout (through the collector's sinks).
//!
//! A Kafka output keeps the input's partitioning: the record from input partition `p` goes
//! to output partition `p`, keyed by its event id, with headers naming its source
//! (`eventwire-source: TOPIC/PARTITION/OFFSET`) and its `received_at`
//! (`eventwire-received-at-ms`). So one output partition is written by one owner at a time,
//! and its new owner rebuilds the partition's dedup window by reading it back
//! ([`KafkaOutput::read_back`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventwire_collector::sink::{Sink, SinkRecord};
use futures_util::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::defaults::{DELIVERY_TIMEOUT, OUTPUT_GAP_WAIT, REBUILD_READ_TIMEOUT};
use crate::order::{InputOrder, Intake};

/// Header naming an output record's source: `TOPIC/PARTITION/OFFSET`.
pub const SOURCE_HEADER: &str = "eventwire-source";
/// Header carrying an output record's `received_at`, Unix milliseconds, as decimal text.
pub const RECEIVED_HEADER: &str = "eventwire-received-at-ms";

/// One first occurrence to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// Input partition (and output partition, for a Kafka output).
    pub partition: i32,
    /// Input offset.
    pub source_offset: i64,
    /// The event id's dedup key.
    pub key: u128,
    /// The event id, as the key.
    pub event_id: String,
    /// The collector's `received_at`, Unix milliseconds.
    pub received_ms: i64,
    /// The good line, as read.
    pub line: Vec<u8>,
}

/// One id read back from an output partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenId {
    /// The id's dedup key.
    pub key: u128,
    /// Its `received_at`, Unix milliseconds.
    pub received_ms: i64,
    /// Its offset in the output partition.
    pub offset: i64,
}

/// Why reading an output partition back failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    /// The broker did not answer.
    #[error("reading back {topic}/{partition}: {message}")]
    Broker {
        /// Output topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Why.
        message: String,
    },
}

/// What became of one record given to [`Output::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored, at this offset (`None` for outputs without offsets).
    Written(Option<i64>),
    /// Refused for good: larger than the output takes. It becomes a dead letter.
    TooLarge(String),
    /// Not acknowledged (it may have been stored anyway: a timed-out record).
    Failed(String),
}

/// The output.
pub enum Output {
    /// A Kafka topic with the input's partitions.
    Kafka(KafkaOutput),
    /// A collector sink (file, stdout).
    Sink(Arc<dyn Sink>),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Output {
    /// Writes `records`; what became of each, in order.
    pub async fn write(&self, records: &[OutRecord]) -> Vec<Outcome> {
        match self {
            Output::Kafka(k) => k.write(records).await,
            Output::Sink(sink) => {
                let lines: Vec<SinkRecord> = records
                    .iter()
                    .map(|r| SinkRecord {
                        key: Some(r.event_id.clone()),
                        line: r.line.clone(),
                    })
                    .collect();
                match sink.write(&lines).await {
                    Ok(()) => vec![Outcome::Written(None); records.len()],
                    Err(e) => {
                        let mut done = vec![Outcome::Failed(e.to_string()); records.len()];
                        for &i in e.written() {
                            if let Some(slot) = done.get_mut(i) {
                                *slot = Outcome::Written(None);
                            }
                        }
                        done
                    }
                }
            }
        }
    }

    /// A short description (`kafka://host:port/topic`, `file:good.jsonl`).
    pub fn describe(&self) -> String {
        match self {
            Output::Kafka(k) => format!("kafka://{}/{}", k.brokers, k.topic),
            Output::Sink(s) => s.describe(),
        }
    }
}

/// A Kafka output topic.
pub struct KafkaOutput {
    producer: FutureProducer,
    brokers: String,
    topic: String,
    source_topic: String,
    options: Vec<(String, String)>,
}

impl KafkaOutput {
    /// A producer for `topic` on `brokers`, writing records read from `source_topic`;
    /// `options` are librdkafka properties applied last.
    pub fn new(
        brokers: &str,
        topic: &str,
        source_topic: &str,
        options: &[(String, String)],
    ) -> Result<Self, rdkafka::error::KafkaError> {
        // The collectors' producer settings; the partition is set on each record.
        let config = eventwire_collector::sink::producer_config(brokers, options);
        Ok(KafkaOutput {
            producer: config.create()?,
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            source_topic: source_topic.to_owned(),
            options: options.to_vec(),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    async fn write(&self, records: &[OutRecord]) -> Vec<Outcome> {
        let sends = records.iter().map(|r| {
            let source = format!("{}/{}/{}", self.source_topic, r.partition, r.source_offset);
            let received = r.received_ms.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: SOURCE_HEADER,
                    value: Some(source.as_bytes()),
                })
                .insert(Header {
                    key: RECEIVED_HEADER,
                    value: Some(received.as_bytes()),
                });
            let record = FutureRecord::to(&self.topic)
                .partition(r.partition)
                .key(r.event_id.as_str())
                .payload(&r.line[..])
                .headers(headers);
            self.producer.send(record, DELIVERY_TIMEOUT)
        });
        join_all(sends)
            .await
            .into_iter()
            .map(|result| match result {
                Ok(delivery) => Outcome::Written(Some(delivery.offset)),
                Err((e, _))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge) =>
                {
                    Outcome::TooLarge(e.to_string())
                }
                Err((e, _)) => Outcome::Failed(e.to_string()),
            })
            .collect()
    }

    /// The ids written to output `partition` from offset `from` up to its end now: what a
    /// new owner of the partition must not write again. Blocking; call it off the async
    /// threads.
    pub fn read_back(&self, partition: i32, from: i64) -> Result<Vec<WrittenId>, ReadBackError> {
        let fail = |message: String| ReadBackError::Broker {
            topic: self.topic.clone(),
            partition,
            message,
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "eventwire-process-read-back")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        for (k, v) in &self.options {
            config.set(k, v);
        }
        let consumer: BaseConsumer = config.create().map_err(|e| fail(e.to_string()))?;
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, partition, REBUILD_READ_TIMEOUT)
            .map_err(|e| fail(e.to_string()))?;
        let start = from.max(low);
        let mut ids = Vec::new();
        if start >= high {
            return Ok(ids);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(start))
            .map_err(|e| fail(e.to_string()))?;
        consumer.assign(&tpl).map_err(|e| fail(e.to_string()))?;
        let mut last_progress = Instant::now();
        // In offset order: a record a fetch skipped is read again ([`crate::order`]), or
        // the rebuilt window would miss its id and the replay would write it twice.
        let mut order = InputOrder::new(Some(start), OUTPUT_GAP_WAIT);
        while order.expected().is_some_and(|next| next < high) {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    match order.offer(m.offset(), last_progress).intake {
                        Intake::Take => {}
                        Intake::TakeSkipping(n) => tracing::warn!(
                            topic = self.topic,
                            partition,
                            from = m.offset() - n,
                            to = m.offset(),
                            "offsets missing from the output after the gap wait; taken as absent"
                        ),
                        Intake::ReadAgain(at) => {
                            consumer
                                .seek(&self.topic, partition, Offset::Offset(at), Duration::ZERO)
                                .map_err(|e| fail(e.to_string()))?;
                            continue;
                        }
                    }
                    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        continue;
                    };
                    let received_ms = m
                        .headers()
                        .and_then(|h| {
                            h.iter()
                                .find(|h| h.key == RECEIVED_HEADER)
                                .and_then(|h| h.value)
                        })
                        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                        .unwrap_or(i64::MIN);
                    ids.push(WrittenId {
                        key: eventwire_collector::dedup::key(key),
                        received_ms,
                        offset: m.offset(),
                    });
                }
                Some(Err(e)) => return Err(fail(e.to_string())),
                None if last_progress.elapsed() > REBUILD_READ_TIMEOUT => {
                    return Err(fail(format!(
                        "no record for {REBUILD_READ_TIMEOUT:?} at offset {}, before the end {high}",
                        order.expected().unwrap_or(start)
                    )))
                }
                None => {}
            }
        }
        Ok(ids)
    }
}
