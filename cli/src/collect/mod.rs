//! `eventwire collect`: run the collector.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use eventwire_collector::registry::Source;
use eventwire_collector::server::{
    Collector, CollectorConfig, DEFAULT_MAX_IN_FLIGHT_BYTES, DEFAULT_MAX_IN_FLIGHT_REQUESTS,
};
use eventwire_collector::sink::SinkSpec;

/// Arguments of `eventwire collect`.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Schema registry: a directory in Iglu layout, or an http(s) base URL serving one.
    #[arg(long, default_value = "schemas")]
    schemas: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Good events: a file path, `-` for stdout, or `kafka://HOST:PORT/TOPIC`.
    #[arg(long, default_value = "good.jsonl")]
    good: String,
    /// Dead letters: a file path, `-` for stdout, or `kafka://HOST:PORT/TOPIC`.
    #[arg(long, default_value = "bad.jsonl")]
    bad: String,
    /// Accepted write key (repeat for several); none means no key is required.
    #[arg(long = "write-key")]
    write_keys: Vec<String>,
    /// Browser origin allowed by CORS (repeat; `*` for any).
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// Keep recent events in memory: a live dev page at GET /, and GET /v1/events,
    /// /v1/events/wait and /v1/events/stream for app tests (docs/collector.md).
    #[arg(long)]
    dev: bool,
    /// fsync file sinks after every batch.
    #[arg(long)]
    fsync: bool,
    /// Most batch requests in flight; one more is answered 503 with Retry-After at once,
    /// before its body is read.
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT_REQUESTS, value_parser = at_least::<1>)]
    max_in_flight_requests: usize,
    /// Most request bytes in flight (bodies as they arrive, then the lines waiting to be
    /// written); a request that would pass it is answered 503 with Retry-After.
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT_BYTES, value_parser = at_least::<1024>)]
    max_in_flight_bytes: usize,
}

/// A whole number no smaller than `MIN`.
fn at_least<const MIN: usize>(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= MIN => Ok(n),
        Ok(_) => Err(format!("must be at least {MIN}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the collector until Ctrl-C.
pub fn run(args: CollectArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let mut config = CollectorConfig::new(Source::parse(&args.schemas))
            .good(SinkSpec::parse(&args.good))
            .bad(SinkSpec::parse(&args.bad))
            .write_keys(args.write_keys)
            .cors_origins(args.cors_origins)
            .dev(args.dev)
            .max_in_flight(args.max_in_flight_requests, args.max_in_flight_bytes);
        config.fsync = args.fsync;
        let collector = Collector::new(config)
            .await
            .context("cannot start the collector")?;
        let server = collector
            .serve(args.listen)
            .await
            .context("cannot listen")?;
        eprintln!(
            "eventwire collector on {} (schemas: {}, good: {}, bad: {}{})",
            server.endpoint(),
            args.schemas,
            args.good,
            args.bad,
            if args.dev {
                format!(", dev page: {}/", server.endpoint().trim_end_matches('/'))
            } else {
                String::new()
            }
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        server.shutdown().await;
        let t = collector.totals();
        eprintln!(
            "stopped: {} requests, {} accepted, {} dead-lettered, {} duplicates",
            t.requests, t.accepted, t.rejected, t.duplicates
        );
        Ok(ExitCode::SUCCESS)
    })
}
