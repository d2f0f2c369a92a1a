//! # eventwire-process
//!
//! The stage after the collectors when one machine is not enough: `eventwire process`, a
//! Kafka consumer group reading the collectors' good topic.
//!
//! ## The shape
//!
//! Collectors are stateless producers: each writes good lines to one topic, keyed by the
//! event id with librdkafka's `murmur2_random` partitioner (the Java client's), so every
//! copy of an event — resent through another collector after a failover — lands on the same
//! partition. Workers join one consumer group (cooperative-sticky assignment), and for each
//! partition they own they
//!
//! - drop duplicates exactly within a window ([`dedup`], default 24 h of `received_at`);
//! - write first occurrences to the output ([`output`]) and only then commit the input
//!   offset, with where the partition's window starts in the output;
//! - count unique users per schema and per configured dimension value in one-minute
//!   HyperLogLog sketches ([`uniques`]) and publish them to a state topic ([`state`]),
//!   from which any worker answers `GET /v1/uniques`.
//!
//! A partition's new owner — after a rebalance or a crash — first reads back what the
//! partition wrote to the output from the committed window start, so input replayed since
//! the last commit is dropped instead of written twice. No Kafka transactions are needed
//! (docs/decisions.md says why this is exact, and where it is not).
//!
//! ## Quickstart
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use eventwire_process::{Process, ProcessConfig, uniques::UniquesSpec};
//! let config = ProcessConfig::new("127.0.0.1:9092", "events")
//!     .output("kafka://127.0.0.1:9092/events-unique")
//!     .uniques(UniquesSpec::parse("com.example.web/article_view:/data/article_id")?);
//! let running = Process::start(config).await?;
//! println!("queries on http://{}/v1/uniques", running.addr());
//! running.wait().await?;
//! # Ok(()) }
//! ```

pub mod dedup;
pub mod defaults;
pub mod line;
pub mod metrics;
pub mod order;
pub mod output;
pub mod state;
pub mod uniques;

mod server;
mod topics;
mod worker;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventwire_collector::sink::SinkSpec;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::defaults::*;
use crate::metrics::Metrics;
use crate::output::{KafkaOutput, Output};
use crate::state::StateView;
use crate::uniques::UniquesSpec;

/// Everything a worker is told. Start from [`ProcessConfig::new`]; every other field has
/// a default from [`defaults`].
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The collectors' good topic.
    pub input: String,
    /// Where first occurrences go: `kafka://brokers/topic`, a file path, or `-` (stdout).
    /// Default: `kafka://BROKERS/INPUT-unique`.
    pub output: Option<String>,
    /// Where records that are not good lines go (a collector sink spec). Default:
    /// `kafka://BROKERS/INPUT-dead-letters`.
    pub dead_letters: Option<String>,
    /// The state topic (sketches and progress). Default: `INPUT-uniques`.
    pub state_topic: Option<String>,
    /// The consumer group.
    pub group: String,
    /// Dimensions to count unique users by.
    pub uniques: Vec<UniquesSpec>,
    /// How long an id is remembered, in `received_at` time.
    pub dedup_window: Duration,
    /// Most ids remembered per partition.
    pub dedup_max_ids: usize,
    /// How often offsets are committed (sketches are published first).
    pub commit_interval: Duration,
    /// How often the sketches that changed are published between commits.
    pub publish_interval: Duration,
    /// Most records per step.
    pub max_batch: usize,
    /// Longest wait for a step to fill.
    pub linger: Duration,
    /// The group's session timeout.
    pub session_timeout: Duration,
    /// How long a gap in the input's offsets is read again before the missing offsets are
    /// taken as absent ([`order`]); zero takes gaps at once.
    pub input_gap_wait: Duration,
    /// Where the HTTP API listens (port 0: any free port).
    pub listen: SocketAddr,
    /// librdkafka properties for every client (`security.protocol`, `sasl.*`…), applied last.
    pub kafka_options: eventwire_collector::sink::ResolvedKafkaOptions,
}

impl ProcessConfig {
    /// A worker of [`DEFAULT_GROUP`] reading `input` on `brokers`, with every default.
    pub fn new(brokers: impl Into<String>, input: impl Into<String>) -> Self {
        ProcessConfig {
            brokers: brokers.into(),
            input: input.into(),
            output: None,
            dead_letters: None,
            state_topic: None,
            group: DEFAULT_GROUP.into(),
            uniques: Vec::new(),
            dedup_window: DEFAULT_DEDUP_WINDOW,
            dedup_max_ids: DEFAULT_DEDUP_MAX_IDS,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            publish_interval: DEFAULT_PUBLISH_INTERVAL,
            max_batch: DEFAULT_MAX_BATCH,
            linger: DEFAULT_LINGER,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            input_gap_wait: DEFAULT_INPUT_GAP_WAIT,
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9091))),
            kafka_options: eventwire_collector::sink::ResolvedKafkaOptions::default(),
        }
    }

    /// Sets the output.
    pub fn output(mut self, spec: impl Into<String>) -> Self {
        self.output = Some(spec.into());
        self
    }

    /// Sets the dead-letter sink.
    pub fn dead_letters(mut self, spec: impl Into<String>) -> Self {
        self.dead_letters = Some(spec.into());
        self
    }

    /// Adds a dimension to count unique users by.
    pub fn uniques(mut self, spec: UniquesSpec) -> Self {
        self.uniques.push(spec);
        self
    }

    /// The output spec, defaulted.
    pub fn output_spec(&self) -> String {
        self.output
            .clone()
            .unwrap_or_else(|| format!("kafka://{}/{}-unique", self.brokers, self.input))
    }

    /// The dead-letter spec, defaulted.
    pub fn dead_letter_spec(&self) -> String {
        self.dead_letters
            .clone()
            .unwrap_or_else(|| format!("kafka://{}/{}-dead-letters", self.brokers, self.input))
    }

    /// The state topic, defaulted.
    pub fn state_topic_name(&self) -> String {
        self.state_topic
            .clone()
            .unwrap_or_else(|| format!("{}-uniques", self.input))
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in self.kafka_options.pairs() {
            c.set(k, v);
        }
        c
    }
}

/// Why a worker could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// The broker refused or did not answer.
    #[error("kafka: {0}")]
    Kafka(String),
    /// A sink could not be opened.
    #[error("{0}")]
    Sink(String),
    /// The HTTP API could not listen.
    #[error("listening on {addr}: {cause}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why (in the message, so not also a `source()`).
        cause: std::io::Error,
    },
    /// The worker thread ended abnormally.
    #[error("the worker stopped: {0}")]
    Worker(String),
}

/// What the worker thread, the state reader and the HTTP API share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) metrics: Metrics,
    pub(crate) view: Mutex<StateView>,
    /// This run's id: names the sketches it publishes.
    pub(crate) writer: String,
    owned: Mutex<Vec<i32>>,
    failing: Mutex<Option<String>>,
    stopped: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn set_owned(&self, partitions: Vec<i32>) {
        *self
            .owned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = partitions;
    }
    pub(crate) fn owned(&self) -> Vec<i32> {
        self.owned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
    pub(crate) fn set_failing(&self, reason: Option<String>) {
        *self
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }
    pub(crate) fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
    fn set_stopped(&self, reason: String) {
        *self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
    }
    pub(crate) fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A starter of workers.
#[derive(Debug)]
pub struct Process;

/// A running worker.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    worker: std::thread::JoinHandle<Result<(), ProcessError>>,
    reader: std::thread::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Process {
    /// Checks the topics (creating the output and state topics when missing), opens the
    /// sinks, starts the HTTP API, the state reader and the worker thread, which joins the
    /// group. Call from a multi-threaded Tokio runtime.
    pub async fn start(config: ProcessConfig) -> Result<Running, ProcessError> {
        let config = Arc::new(config);
        let partitions = topics::prepare(&config).await?;
        let output = match SinkSpec::parse(&config.output_spec()) {
            SinkSpec::Kafka { brokers, topic } => Output::Kafka(
                KafkaOutput::new(
                    &brokers,
                    &topic,
                    &config.input,
                    config.kafka_options.pairs(),
                )
                .map_err(|e| ProcessError::Kafka(format!("output producer: {e}")))?,
            ),
            spec => Output::Sink(
                spec.open(false, &config.kafka_options)
                    .await
                    .map_err(|e| ProcessError::Sink(e.to_string()))?,
            ),
        };
        let seed: HashSet<u128> = match &output {
            Output::Sink(sink) => sink
                .recent_keys()
                .iter()
                .map(|id| eventwire_collector::dedup::key(id))
                .collect(),
            Output::Kafka(_) => HashSet::new(),
        };
        let dead: Arc<dyn eventwire_collector::sink::Sink> =
            match SinkSpec::parse(&config.dead_letter_spec()) {
                SinkSpec::Kafka { brokers, topic } => Arc::new(
                    eventwire_collector::sink::KafkaSink::with_options(
                        &brokers,
                        &topic,
                        config.kafka_options.pairs(),
                    )
                    .map_err(|e| ProcessError::Sink(e.to_string()))?,
                ),
                spec => spec
                    .open(false, &config.kafka_options)
                    .await
                    .map_err(|e| ProcessError::Sink(e.to_string()))?,
            };
        let metrics = Metrics::new().map_err(|e| ProcessError::Config(e.to_string()))?;
        let shared = Arc::new(Shared {
            metrics,
            view: Mutex::default(),
            writer: uuid::Uuid::now_v7().to_string(),
            owned: Mutex::default(),
            failing: Mutex::default(),
            stopped: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|cause| ProcessError::Bind {
                addr: config.listen,
                cause,
            })?;
        let addr = listener.local_addr().map_err(|cause| ProcessError::Bind {
            addr: config.listen,
            cause,
        })?;
        let router = server::router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "HTTP API stopped");
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (config, shared, stop) = (config.clone(), shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("eventwire-state".into())
                .spawn(move || read_state(&config, &shared, &stop))
                .map_err(|e| ProcessError::Worker(e.to_string()))?
        };
        let mut consumer_config = config.client();
        consumer_config
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "session.timeout.ms",
                config.session_timeout.as_millis().to_string(),
            )
            // A fetch answers at once when records are there; when there are none, the
            // broker holds it this long (librdkafka's 500 ms default made a quiet
            // partition's records wait up to half a second).
            .set("fetch.wait.max.ms", FETCH_WAIT_MAX.as_millis().to_string())
            // Records prefetched while a step runs (librdkafka's default, 64 MiB, made most
            // of a worker's memory; a step takes at most 5,000 records).
            .set("queued.max.messages.kbytes", PREFETCH_KIB.to_string())
            .set(
                "heartbeat.interval.ms",
                (config.session_timeout.as_millis() / 5)
                    .max(100)
                    .to_string(),
            );
        for (k, v) in config.kafka_options.pairs() {
            consumer_config.set(k, v);
        }
        let consumer: BaseConsumer<worker::GroupContext> = consumer_config
            .create_with_context(worker::GroupContext::default())
            .map_err(|e| ProcessError::Kafka(format!("consumer: {e}")))?;
        let state: FutureProducer = eventwire_collector::sink::producer_config(
            &config.brokers,
            config.kafka_options.pairs(),
        )
        .create()
        .map_err(|e| ProcessError::Kafka(format!("state producer: {e}")))?;
        let worker = {
            let w = worker::Worker::new(
                consumer,
                config.clone(),
                output,
                dead,
                state,
                shared.clone(),
                tokio::runtime::Handle::current(),
                seed,
            );
            let mut w = w;
            w.input_partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
            let (stop, shared) = (stop.clone(), shared.clone());
            std::thread::Builder::new()
                .name("eventwire-worker".into())
                .spawn(move || {
                    let result = w.run(&stop);
                    match &result {
                        Err(e) => shared.set_stopped(e.to_string()),
                        Ok(()) => shared.set_stopped("stopped".into()),
                    }
                    result
                })
                .map_err(|e| ProcessError::Worker(e.to_string()))?
        };
        tracing::info!(%addr, partitions, input = %config.input, group = %config.group, "worker started");
        Ok(Running {
            addr,
            stop,
            worker,
            reader,
            server,
        })
    }
}

impl Running {
    /// Where the HTTP API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that asks the worker to stop (commit what is stored, leave the group).
    pub fn stopper(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Waits until the worker stops (see [`Running::stopper`]), then stops the rest.
    pub async fn wait(self) -> Result<(), ProcessError> {
        let worker = self.worker;
        let result = tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|e| ProcessError::Worker(e.to_string()))?
            .map_err(|_| ProcessError::Worker("the worker thread panicked".into()))?;
        self.stop.store(true, Ordering::Relaxed);
        let reader = self.reader;
        let _ = tokio::task::spawn_blocking(move || reader.join()).await;
        self.server.abort();
        result
    }
}

/// Reads the state topic from its beginning into the query view, until `stop`.
fn read_state(config: &ProcessConfig, shared: &Shared, stop: &AtomicBool) {
    let topic = config.state_topic_name();
    let consumer: BaseConsumer = match config
        .client()
        .set("group.id", format!("{}-state-reader", config.group))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "state reader");
            return;
        }
    };
    let mut assigned = 0usize;
    while !stop.load(Ordering::Relaxed) {
        // Assign every partition of the state topic (and any added later).
        if let Ok(metadata) = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5)) {
            let count = metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len());
            if count > assigned {
                let mut tpl = TopicPartitionList::new();
                for p in 0..count as i32 {
                    let _ = tpl.add_partition_offset(&topic, p, Offset::Beginning);
                }
                if consumer.assign(&tpl).is_ok() {
                    assigned = count;
                }
            }
        }
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let Some(value) = m.payload() else { continue };
                    let result = shared
                        .view
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .apply(value, chrono::Utc::now().timestamp_millis());
                    let outcome = if result.is_ok() { "applied" } else { "skipped" };
                    shared
                        .metrics
                        .state_records
                        .with_label_values(&[outcome])
                        .inc();
                }
                Some(Err(e)) => tracing::debug!(error = %e, "state reader"),
                None => {}
            }
        }
    }
}
