//! How to run a collector ([`CollectorConfig`]), why one could not start
//! ([`CollectorError`]), and what it has done since ([`Totals`]).

use std::time::Duration;

use crate::dedup::DEFAULT_DEDUP_GENERATION;
use crate::defaults::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_DEV_CAPACITY, DEFAULT_MAX_IN_FLIGHT_BYTES,
    DEFAULT_MAX_IN_FLIGHT_REQUESTS, HEALTH_MAX_WRITE,
};
use crate::registry::{RegistryError, Source, DEFAULT_NEGATIVE_TTL};
use crate::sink::{KafkaOptionError, KafkaOptions, SinkError, SinkSpec};
use crate::validate::Limits;

/// How to run a collector. Every knob has a `DEFAULT_*` constant.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Where schemas come from.
    pub source: Source,
    /// Good events go here.
    pub good: SinkSpec,
    /// Dead letters go here.
    pub bad: SinkSpec,
    /// librdkafka properties for the Kafka sinks (TLS, SASL…), applied after the
    /// producer's own; secrets are read when the collector starts.
    pub kafka_options: KafkaOptions,
    /// Size and shape limits.
    pub limits: Limits,
    /// Accepted write keys; empty means no key is required.
    pub write_keys: Vec<String>,
    /// Browser origins allowed by CORS (`*` for any); empty means no CORS headers.
    pub cors_origins: Vec<String>,
    /// Keep recent events in memory and serve them at `/v1/events`.
    pub dev: bool,
    /// Events kept per kind in dev mode.
    pub dev_capacity: usize,
    /// Dedup window generation (see [`DedupWindow`](crate::dedup::DedupWindow)).
    pub dedup_generation: usize,
    /// How long an unknown schema is remembered as unknown.
    pub negative_ttl: Duration,
    /// Time allowed to receive a body.
    pub body_timeout: Duration,
    /// `fsync` file sinks after each batch (slower, survives power loss).
    pub fsync: bool,
    /// Most batch requests in flight; one more is shed (503, `Retry-After`) before its body
    /// is read.
    pub max_in_flight_requests: usize,
    /// Most request bytes in flight: bodies as they arrive, then the lines waiting to be
    /// written (each request holds the larger); a request that would pass it is shed (503,
    /// `Retry-After`). A request larger than the bound is taken when it is alone.
    pub max_in_flight_bytes: usize,
    /// `/healthz` answers 503 once a sink write has been under way this long.
    pub health_max_write: Duration,
}

impl CollectorConfig {
    /// Defaults, reading schemas from `source`, writing to `good.jsonl` and `bad.jsonl`.
    pub fn new(source: Source) -> Self {
        CollectorConfig {
            source,
            good: SinkSpec::File("good.jsonl".into()),
            bad: SinkSpec::File("bad.jsonl".into()),
            kafka_options: KafkaOptions::new(),
            limits: Limits::default(),
            write_keys: Vec::new(),
            cors_origins: Vec::new(),
            dev: false,
            dev_capacity: DEFAULT_DEV_CAPACITY,
            dedup_generation: DEFAULT_DEDUP_GENERATION,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            fsync: false,
            max_in_flight_requests: DEFAULT_MAX_IN_FLIGHT_REQUESTS,
            max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
            health_max_write: HEALTH_MAX_WRITE,
        }
    }

    /// Good events go to `sink`.
    pub fn good(mut self, sink: SinkSpec) -> Self {
        self.good = sink;
        self
    }

    /// Dead letters go to `sink`.
    pub fn bad(mut self, sink: SinkSpec) -> Self {
        self.bad = sink;
        self
    }

    /// Gives the Kafka sinks these librdkafka properties.
    pub fn kafka_options(mut self, options: KafkaOptions) -> Self {
        self.kafka_options = options;
        self
    }

    /// Requires one of these write keys.
    pub fn write_keys(mut self, keys: Vec<String>) -> Self {
        self.write_keys = keys;
        self
    }

    /// Allows these browser origins (CORS).
    pub fn cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// Turns the dev mode on or off.
    pub fn dev(mut self, on: bool) -> Self {
        self.dev = on;
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long unknown schemas stay unknown.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// At most `requests` batch requests and `bytes` body bytes in flight; more are shed.
    pub fn max_in_flight(mut self, requests: usize, bytes: usize) -> Self {
        self.max_in_flight_requests = requests;
        self.max_in_flight_bytes = bytes;
        self
    }

    /// Time allowed to receive a body.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }
}

/// Why a collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The registry could not be opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A sink could not be opened.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A Kafka option's secret could not be read, or its value weakens delivery.
    #[error(transparent)]
    KafkaOption(#[from] KafkaOptionError),
    /// Metrics could not be registered, or the envelope schema did not compile.
    #[error("{0}")]
    Internal(String),
    /// The listener could not be bound.
    #[error("{0}")]
    Io(std::io::Error),
    /// A write key is empty: it would let anyone send.
    #[error("a write key is empty: it would let anyone send")]
    EmptyWriteKey,
    /// The good and the dead-letter sink are the same file.
    #[error("the good and the dead-letter sink are the same file ({}): give each its own", .0.display())]
    SharedSinkFile(std::path::PathBuf),
}

// The cause is in the message, so it is not also a `source()` (it would print twice).
impl From<std::io::Error> for CollectorError {
    fn from(e: std::io::Error) -> Self {
        CollectorError::Io(e)
    }
}

/// Totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Events written to the good sink.
    pub accepted: u64,
    /// Events and requests dead-lettered: lines written to the dead-letter sink.
    pub rejected: u64,
    /// Events not written again: good events already stored, and refused events whose dead
    /// letter was already written (a resend; the answer still reports them rejected).
    pub duplicates: u64,
    /// Batch requests answered.
    pub requests: u64,
}
