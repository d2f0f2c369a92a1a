//! A Kafka sink (librdkafka): each record is produced with the event id as its key, so load
//! spreads over partitions and the same event always lands on the same partition (where a
//! downstream consumer — `eventwire process` — can deduplicate across collectors). A batch
//! is accepted only when the broker acknowledged every record (`acks=all`, idempotent
//! producer).
//!
//! The partitioner is fixed: [`PARTITIONER`], the Java client's (murmur2 of the key,
//! modulo the partition count; random for records without a key), so every collector — and
//! any Java or librdkafka producer set the same way — puts an id on the same partition.

use std::time::Duration;

use futures_util::future::{join_all, BoxFuture};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use super::{KafkaOptionError, ResolvedKafkaOptions, Sink, SinkError, SinkRecord};

/// librdkafka's name of the partitioner every collector uses: murmur2 of the key, as the
/// Java client's default partitioner (librdkafka's own default, CRC32, would place ids
/// differently from Java producers).
pub const PARTITIONER: &str = "murmur2_random";

/// How long one record may wait for the broker's acknowledgement.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The settings of every eventwire producer: `acks=all`, idempotent, [`PARTITIONER`], lz4,
/// `linger.ms=5`, a 30 s delivery timeout; then `options` (librdkafka properties) over them.
pub fn producer_config(brokers: &str, options: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", PARTITIONER)
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        );
    for (k, v) in options {
        config.set(k, v);
    }
    config
}

/// Checks `options` the way librdkafka will take them, without making a client: a property
/// it does not know, or a value it refuses, is an error at start even when no sink is Kafka
/// (a misspelt `securty.protocol` would otherwise wait for the day a Kafka sink is added).
///
/// # Errors
/// [`KafkaOptionError::Refused`], naming the property, with secrets taken out.
pub fn check_options(options: &ResolvedKafkaOptions) -> Result<(), KafkaOptionError> {
    if options.pairs().is_empty() {
        return Ok(());
    }
    match producer_config("127.0.0.1:9092", options.pairs()).create_native_config() {
        Ok(_) => Ok(()),
        Err(KafkaError::ClientConfig(_, description, key, value)) => {
            Err(KafkaOptionError::Refused {
                // librdkafka's words quote the value: a secret's are not shown at all.
                why: if options.is_secret(&value) {
                    "librdkafka refuses its value (a secret, not shown)".to_owned()
                } else {
                    options.redact(&description)
                },
                key,
            })
        }
        Err(e) => Err(KafkaOptionError::Refused {
            key: String::new(),
            why: options.redact(&e.to_string()),
        }),
    }
}

/// Produces records to one topic.
pub struct KafkaSink {
    producer: FutureProducer,
    brokers: String,
    topic: String,
}

impl KafkaSink {
    /// A producer for `topic` on `brokers` (`host:port[,host:port…]`).
    pub fn new(brokers: &str, topic: &str) -> Result<Self, SinkError> {
        Self::with_options(brokers, topic, &[])
    }

    /// The same, with librdkafka properties (`security.protocol`, `sasl.*`…) applied last.
    pub fn with_options(
        brokers: &str,
        topic: &str,
        options: &[(String, String)],
    ) -> Result<Self, SinkError> {
        let producer: FutureProducer =
            producer_config(brokers, options)
                .create()
                .map_err(|e| SinkError::Broker {
                    sink: format!("kafka://{brokers}/{topic}"),
                    message: match e {
                        // librdkafka's words name the property; its value is left out
                        // (it may be a secret).
                        KafkaError::ClientConfig(_, description, key, _) => {
                            format!("kafka option {key}: {description}")
                        }
                        other => other.to_string(),
                    },
                    written: Vec::new(),
                })?;
        Ok(KafkaSink {
            producer,
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
        })
    }
}

impl Sink for KafkaSink {
    fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let sends = records.iter().map(|r| {
                let mut record = FutureRecord::<str, [u8]>::to(&self.topic).payload(&r.line[..]);
                if let Some(key) = &r.key {
                    record = record.key(key.as_str());
                }
                self.producer.send(record, DELIVERY_TIMEOUT)
            });
            // Each record's acknowledgement on its own: when some fail, the ones the broker
            // took are reported, so the collector does not write them again on the resend
            // (the idempotent producer already keeps its own retries from duplicating).
            let mut written = Vec::with_capacity(records.len());
            let mut failed = None;
            for (i, result) in join_all(sends).await.into_iter().enumerate() {
                match result {
                    Ok(_) => written.push(i),
                    Err((e, _)) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            match failed {
                None => Ok(()),
                Some(e) => Err(SinkError::Broker {
                    sink: self.describe(),
                    message: e.to_string(),
                    written,
                }),
            }
        })
    }

    fn describe(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }

    fn close(&self, timeout: Duration) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            // Every batch answered 200 was acknowledged already; this waits for what a
            // request cut off at shutdown left in the producer's queue.
            let producer = self.producer.clone();
            let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
            match flushed {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(SinkError::Broker {
                    sink: self.describe(),
                    message: format!("outstanding deliveries not acknowledged: {e}"),
                    written: Vec::new(),
                }),
                Err(e) => Err(SinkError::Broker {
                    sink: self.describe(),
                    message: format!("flush: {e}"),
                    written: Vec::new(),
                }),
            }
        })
    }
}
