//! `eventwire process`: a worker of the consumer group after the collectors.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use eventwire_process::defaults::{DEFAULT_DEDUP_MAX_IDS, DEFAULT_GROUP, DEFAULT_LISTEN};
use eventwire_process::uniques::UniquesSpec;
use eventwire_process::{Process, ProcessConfig};

// The library's defaults, spelled for clap (a test checks they agree).
const DEDUP_WINDOW: &str = "24h";
const COMMIT_INTERVAL: &str = "2s";
const SESSION_TIMEOUT: &str = "10s";
const INPUT_GAP_WAIT: &str = "2s";

/// Arguments of `eventwire process`.
#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    /// Kafka bootstrap servers, `HOST:PORT[,HOST:PORT…]`.
    #[arg(long, env = "EVENTWIRE_KAFKA_BROKERS")]
    brokers: String,
    /// The collectors' good topic (`collect --good kafka://…/TOPIC`).
    #[arg(long)]
    input: String,
    /// First occurrences: `kafka://HOST:PORT/TOPIC` (default `kafka://BROKERS/INPUT-unique`;
    /// exact across crashes), a file path or `-` (stdout; exact within one worker's run).
    #[arg(long)]
    output: Option<String>,
    /// Records that are not good lines: `kafka://HOST:PORT/TOPIC` (default
    /// `kafka://BROKERS/INPUT-dead-letters`), a file path or `-`.
    #[arg(long)]
    dead_letters: Option<String>,
    /// The state topic of unique-user sketches (default `INPUT-uniques`, compacted).
    #[arg(long)]
    state_topic: Option<String>,
    /// The consumer group; every worker of one pipeline uses the same.
    #[arg(long, default_value = DEFAULT_GROUP)]
    group: String,
    /// Count unique users by a dimension: `SCHEMA:POINTER` or `SCHEMA:NAME=POINTER`, e.g.
    /// `com.example.web/article_view:/data/article_id` (repeat for several). Every schema
    /// is also counted as a whole.
    #[arg(long = "uniques", value_parser = parse_spec)]
    uniques: Vec<UniquesSpec>,
    /// How long an event id is remembered, in `received_at` time (`24h`, `90m`).
    #[arg(long, default_value = DEDUP_WINDOW, value_parser = humantime::parse_duration)]
    dedup_window: Duration,
    /// Most event ids remembered per partition (≈ 48 bytes each).
    #[arg(long, default_value_t = DEFAULT_DEDUP_MAX_IDS)]
    dedup_max_ids: usize,
    /// How often sketches are published and offsets committed.
    #[arg(long, default_value = COMMIT_INTERVAL, value_parser = humantime::parse_duration)]
    commit_interval: Duration,
    /// After this long without a heartbeat a worker is out of the group.
    #[arg(long, default_value = SESSION_TIMEOUT, value_parser = humantime::parse_duration)]
    session_timeout: Duration,
    /// How long a gap in the input's offsets is read again before its offsets are taken
    /// as absent (a broker that stores batches as objects can skip one still being stored;
    /// `0s` for an input that is compacted or written in transactions). The output's
    /// read-back always waits 2 s.
    #[arg(long, default_value = INPUT_GAP_WAIT, value_parser = humantime::parse_duration)]
    input_gap_wait: Duration,
    /// Where the query API (`GET /v1/uniques`, `/healthz`, `/metrics`) listens.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    #[command(flatten)]
    kafka: crate::kafka_args::KafkaArgs,
}

fn parse_spec(text: &str) -> Result<UniquesSpec, String> {
    UniquesSpec::parse(text).map_err(|e| e.to_string())
}

/// Runs one worker until Ctrl-C or SIGTERM.
pub fn run(args: ProcessArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async move {
        // Watched before anything starts: an early SIGTERM still stops the worker cleanly.
        let mut signals = crate::signals::Signals::new()?;
        let mut config = ProcessConfig::new(args.brokers, args.input);
        config.output = args.output;
        config.dead_letters = args.dead_letters;
        config.state_topic = args.state_topic;
        config.group = args.group;
        config.uniques = args.uniques;
        config.dedup_window = args.dedup_window;
        config.dedup_max_ids = args.dedup_max_ids.max(1);
        config.commit_interval = args.commit_interval;
        config.session_timeout = args.session_timeout;
        config.input_gap_wait = args.input_gap_wait;
        config.listen = args.listen;
        config.kafka_options = args
            .kafka
            .over(eventwire_collector::sink::KafkaOptions::new())
            .and_then(|options| options.resolve())
            .context("cannot start the worker")?;
        // librdkafka's errors quote the values they refuse: secrets are taken out.
        let secrets = config.kafka_options.clone();
        let redacted = move |e: eventwire_process::ProcessError| {
            anyhow::anyhow!("{}", secrets.redact(&e.to_string()))
        };
        let (output, group, input) = (config.output_spec(), config.group.clone(), config.input.clone());
        let running = Process::start(config)
            .await
            .map_err(redacted.clone())
            .context("cannot start the worker")?;
        eprintln!(
            "eventwire process: group {group}, input {input}, output {output}; queries on http://{}/v1/uniques",
            running.addr()
        );
        let stop = running.stopper();
        tokio::spawn(async move {
            signals.next().await;
            stop.store(true, Ordering::Relaxed);
        });
        running
            .wait()
            .await
            .map_err(redacted)
            .context("the worker stopped")?;
        eprintln!("stopped: offsets committed, group left");
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventwire_process::defaults::{
        DEFAULT_COMMIT_INTERVAL, DEFAULT_DEDUP_WINDOW, DEFAULT_INPUT_GAP_WAIT,
        DEFAULT_SESSION_TIMEOUT,
    };

    #[test]
    fn flag_defaults_are_the_librarys() {
        let parse = |s| humantime::parse_duration(s).unwrap();
        assert_eq!(parse(DEDUP_WINDOW), DEFAULT_DEDUP_WINDOW);
        assert_eq!(parse(COMMIT_INTERVAL), DEFAULT_COMMIT_INTERVAL);
        assert_eq!(parse(SESSION_TIMEOUT), DEFAULT_SESSION_TIMEOUT);
        assert_eq!(parse(INPUT_GAP_WAIT), DEFAULT_INPUT_GAP_WAIT);
    }
}
