//! `eventwire collect`: run the collector.
//!
//! Settings come from flags, then `EVENTWIRE_*` environment variables, then the file given
//! with `--config`, then the defaults: the first that says something wins.

mod file;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use eventwire_collector::registry::Source;
use eventwire_collector::server::{
    Collector, CollectorConfig, DEFAULT_MAX_IN_FLIGHT_BYTES, DEFAULT_MAX_IN_FLIGHT_REQUESTS,
    DEFAULT_SHUTDOWN_TIMEOUT,
};
use eventwire_collector::sink::{OptionValue, SinkSpec};

pub use file::FileSettings;

use crate::kafka_args::KafkaArgs;
use crate::signals::Signals;

/// `--schemas` when nothing sets it.
const DEFAULT_SCHEMAS: &str = "schemas";
/// `--listen` when nothing sets it.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `--good` when nothing sets it.
const DEFAULT_GOOD: &str = "good.jsonl";
/// `--bad` when nothing sets it.
const DEFAULT_BAD: &str = "bad.jsonl";
/// The least time the sinks' flush gets at shutdown, even when the requests took it all.
const MIN_FLUSH: Duration = Duration::from_secs(1);
/// Most batch requests in flight that can be set.
const MAX_IN_FLIGHT_REQUESTS: usize = 1_000_000;
/// Most request bytes in flight that can be set (1 TiB).
const MAX_IN_FLIGHT_BYTES: usize = 1 << 40;
/// Longest shutdown that can be set.
const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3600);
/// The variable of `--write-key`: a comma-separated list.
const WRITE_KEYS_VARIABLE: &str = "EVENTWIRE_WRITE_KEYS";

/// Arguments of `eventwire collect`.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// A TOML file with the settings below (each flag's name with `_` for `-`, and a
    /// `[kafka]` table); flags and `EVENTWIRE_*` variables override it (docs/operations.md).
    #[arg(long, env = "EVENTWIRE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Schema registry: a directory in Iglu layout, or an http(s) base URL serving one
    /// [default: schemas].
    #[arg(long, env = "EVENTWIRE_SCHEMAS")]
    schemas: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "EVENTWIRE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Good events: a file path, `-` for stdout, or `kafka://HOST:PORT/TOPIC`
    /// [default: good.jsonl].
    #[arg(long, env = "EVENTWIRE_GOOD")]
    good: Option<String>,
    /// Dead letters: a file path, `-` for stdout, or `kafka://HOST:PORT/TOPIC`
    /// [default: bad.jsonl].
    #[arg(long, env = "EVENTWIRE_BAD")]
    bad: Option<String>,
    /// Accepted write key (repeat for several; `EVENTWIRE_WRITE_KEYS` takes a
    /// comma-separated list); none means no key is required. An empty key is refused.
    // The variable is read by hand: a key given as a flag is taken whole, commas and all.
    #[arg(long = "write-key")]
    write_keys: Vec<String>,
    /// Browser origin allowed by CORS (repeat; `*` for any).
    #[arg(
        long = "cors-origin",
        env = "EVENTWIRE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Keep recent events in memory: a live dev page at GET /, and GET /v1/events,
    /// /v1/events/wait and /v1/events/stream for app tests (docs/collector.md).
    #[arg(long, env = "EVENTWIRE_DEV")]
    dev: bool,
    /// fsync file sinks after every batch.
    #[arg(long, env = "EVENTWIRE_FSYNC")]
    fsync: bool,
    /// Most batch requests in flight; one more is answered 503 with Retry-After at once,
    /// before its body is read [default: 256].
    #[arg(long, env = "EVENTWIRE_MAX_IN_FLIGHT_REQUESTS", value_parser = within::<1, MAX_IN_FLIGHT_REQUESTS>)]
    max_in_flight_requests: Option<usize>,
    /// Most request bytes in flight (bodies as they arrive, then the lines waiting to be
    /// written); a request that would pass it is answered 503 with Retry-After
    /// [default: 33554432].
    #[arg(long, env = "EVENTWIRE_MAX_IN_FLIGHT_BYTES", value_parser = within::<1024, MAX_IN_FLIGHT_BYTES>)]
    max_in_flight_bytes: Option<usize>,
    /// On SIGTERM or Ctrl-C: how long the requests under way, then the sinks' flush, may
    /// take before they are cut off [default: 30s].
    #[arg(long, env = "EVENTWIRE_SHUTDOWN_TIMEOUT", value_parser = shutdown_timeout)]
    shutdown_timeout: Option<Duration>,
    #[command(flatten)]
    kafka: KafkaArgs,
}

/// A whole number from `MIN` to `MAX`.
fn within<const MIN: usize, const MAX: usize>(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (MIN..=MAX).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be from {MIN} to {MAX}")),
        Err(e) => Err(e.to_string()),
    }
}

/// A duration up to [`MAX_SHUTDOWN_TIMEOUT`].
fn shutdown_timeout(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d > MAX_SHUTDOWN_TIMEOUT {
        return Err(format!(
            "at most {}",
            humantime::format_duration(MAX_SHUTDOWN_TIMEOUT)
        ));
    }
    Ok(d)
}

impl CollectArgs {
    /// The `--config` file's settings (none without one).
    ///
    /// # Errors
    /// The file cannot be read, or a key or value in it is wrong (with its line).
    pub fn file(&self) -> anyhow::Result<FileSettings> {
        match &self.config {
            None => Ok(FileSettings::default()),
            Some(path) => Ok(FileSettings::load(path)?),
        }
    }
}

/// What the collector runs with, once flags, variables, the file and defaults are merged.
struct Settings {
    schemas: String,
    listen: SocketAddr,
    good: String,
    bad: String,
    shutdown_timeout: Duration,
    config: CollectorConfig,
}

fn settings(args: CollectArgs, file: FileSettings) -> anyhow::Result<Settings> {
    let kafka = args.kafka.over(file.kafka_options())?;
    let schemas = args
        .schemas
        .or(file.schemas)
        .unwrap_or_else(|| DEFAULT_SCHEMAS.to_owned());
    let listen = match args.listen.or(file.listen) {
        Some(addr) => addr,
        None => DEFAULT_LISTEN.parse().context("the default address")?,
    };
    let good = args
        .good
        .or(file.good)
        .unwrap_or_else(|| DEFAULT_GOOD.into());
    let bad = args.bad.or(file.bad).unwrap_or_else(|| DEFAULT_BAD.into());
    let write_keys = if !args.write_keys.is_empty() {
        args.write_keys
    } else if let Some(list) = std::env::var_os(WRITE_KEYS_VARIABLE) {
        let list = list
            .into_string()
            .map_err(|_| anyhow::anyhow!("{WRITE_KEYS_VARIABLE} is not UTF-8"))?;
        list.split(',').map(str::to_owned).collect()
    } else {
        file.write_keys
            .unwrap_or_default()
            .into_iter()
            .map(|file::Source(value)| read_write_key(value))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    // An empty key would let anyone in: `EVENTWIRE_WRITE_KEYS=` from an unset template
    // variable, or a stray comma.
    anyhow::ensure!(
        write_keys.iter().all(|k| !k.trim().is_empty()),
        "a write key is empty (from --write-key, {WRITE_KEYS_VARIABLE} (a stray comma?) or the file): refused, as it would let anyone send"
    );
    let cors_origins = if args.cors_origins.is_empty() {
        file.cors_origins.unwrap_or_default()
    } else {
        args.cors_origins
    };
    let mut config = CollectorConfig::new(Source::parse(&schemas))
        .good(SinkSpec::parse(&good))
        .bad(SinkSpec::parse(&bad))
        .write_keys(write_keys)
        .cors_origins(cors_origins)
        .dev(args.dev || file.dev.unwrap_or(false))
        .kafka_options(kafka)
        .max_in_flight(
            args.max_in_flight_requests
                .or(file.max_in_flight_requests)
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT_REQUESTS),
            args.max_in_flight_bytes
                .or(file.max_in_flight_bytes)
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT_BYTES),
        );
    config.fsync = args.fsync || file.fsync.unwrap_or(false);
    Ok(Settings {
        schemas,
        listen,
        good,
        bad,
        shutdown_timeout: args
            .shutdown_timeout
            .or(file.shutdown_timeout)
            .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
        config,
    })
}

/// A write key from the file: as written, or read from a variable or a file.
fn read_write_key(value: OptionValue) -> anyhow::Result<String> {
    let key = match value {
        OptionValue::Literal(key) => key,
        OptionValue::Env(var) => std::env::var(&var)
            .map_err(|_| anyhow::anyhow!("write key: the environment variable {var} is not set"))?,
        OptionValue::File(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("write key: cannot read {}", path.display()))?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    anyhow::ensure!(!key.is_empty(), "a write key is empty");
    Ok(key)
}

/// Runs the collector until SIGTERM or Ctrl-C, then stops cleanly: no new connections,
/// the requests under way answered, the sinks flushed. A second signal exits at once.
pub fn run(args: CollectArgs, file: FileSettings) -> anyhow::Result<ExitCode> {
    let Settings {
        schemas,
        listen,
        good,
        bad,
        shutdown_timeout,
        config,
    } = settings(args, file)?;
    let dev = config.dev;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async move {
        // Watched before the port opens: a signal that comes as soon as it is open stops
        // the collector cleanly, not by the default action.
        let mut signals = Signals::new()?;
        let collector = Collector::new(config)
            .await
            .context("cannot start the collector")?;
        let server = collector
            .serve(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!(
            "eventwire collector on {} (schemas: {}, good: {good}, bad: {bad}{})",
            server.endpoint(),
            eventwire_validate::registry::without_password(&schemas),
            if dev {
                format!(", dev page: {}/", server.endpoint().trim_end_matches('/'))
            } else {
                String::new()
            }
        );
        let signal = signals.next().await;
        eprintln!(
            "{signal}: stopping (requests under way are answered, then the sinks flushed, within {}; another signal stops at once)",
            humantime::format_duration(shutdown_timeout)
        );
        tokio::spawn(async move {
            let signal = signals.next().await;
            eprintln!("{signal}, a second signal: stopping at once");
            std::process::exit(130);
        });
        // One budget for both steps; the flush gets what the requests left, and at least
        // a second.
        let deadline = std::time::Instant::now() + shutdown_timeout;
        let drained = server.shutdown_within(shutdown_timeout).await;
        let left = deadline
            .saturating_duration_since(std::time::Instant::now())
            .max(MIN_FLUSH);
        let closed = collector.close(left).await;
        let t = collector.totals();
        eprintln!(
            "stopped: {} requests, {} accepted, {} dead-lettered, {} duplicates",
            t.requests, t.accepted, t.rejected, t.duplicates
        );
        match (drained, closed) {
            (Ok(()), Ok(())) => {}
            (Err(d), Ok(())) => return Err(d.into()),
            (Ok(()), Err(c)) => return Err(anyhow::Error::new(c).context("closing the sinks")),
            (Err(d), Err(c)) => anyhow::bail!("{d}; and closing the sinks: {c}"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: CollectArgs,
    }

    fn merged(flags: &[&str], file: &str) -> Settings {
        let args = Cli::try_parse_from(std::iter::once("collect").chain(flags.iter().copied()))
            .unwrap()
            .args;
        let file = FileSettings::parse(file, std::path::Path::new("c.toml")).unwrap();
        settings(args, file).unwrap()
    }

    /// Flags win over the file, the file over the defaults.
    #[test]
    fn flags_override_the_file_and_the_file_the_defaults() {
        let file = r#"
listen = "127.0.0.1:9000"
good = "from-file.jsonl"
write_keys = ["file-key"]
max_in_flight_requests = 7
shutdown_timeout = "5s"
[kafka]
"linger.ms" = 50
"#;
        let s = merged(&[], file);
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.good, "from-file.jsonl");
        assert_eq!(s.bad, DEFAULT_BAD);
        assert_eq!(s.schemas, DEFAULT_SCHEMAS);
        assert_eq!(s.config.write_keys, ["file-key"]);
        assert_eq!(s.config.max_in_flight_requests, 7);
        assert_eq!(s.config.max_in_flight_bytes, DEFAULT_MAX_IN_FLIGHT_BYTES);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(5));
        let s = merged(
            &[
                "--listen",
                "127.0.0.1:9001",
                "--good",
                "flag.jsonl",
                "--write-key",
                "flag-key",
                "--max-in-flight-requests",
                "9",
                "--shutdown-timeout",
                "1s",
                "--kafka-option",
                "linger.ms=5",
            ],
            file,
        );
        assert_eq!(s.listen.port(), 9001);
        assert_eq!(s.good, "flag.jsonl");
        assert_eq!(s.config.write_keys, ["flag-key"]);
        assert_eq!(s.config.max_in_flight_requests, 9);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(1));
        let resolved = s.config.kafka_options.resolve().unwrap();
        // The later (the flag's) wins in librdkafka, which applies them in order.
        assert_eq!(
            resolved.pairs(),
            [
                ("linger.ms".to_owned(), "50".to_owned()),
                ("linger.ms".to_owned(), "5".to_owned())
            ]
        );
        let s = merged(&[], "");
        assert_eq!(s.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(s.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
        assert_eq!(
            s.config.max_in_flight_requests,
            DEFAULT_MAX_IN_FLIGHT_REQUESTS
        );
    }
}
