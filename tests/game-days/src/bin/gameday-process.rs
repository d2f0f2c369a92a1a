//! A worker of `eventwire process` as its own process (so it can be killed with SIGKILL):
//! `gameday-process BROKERS INPUT LISTEN [UNIQUES…]`, output `kafka://BROKERS/INPUT-unique`,
//! runs until SIGTERM or killed, logging to stderr (`RUST_LOG`, default `info`).
//! `GAMEDAY_COMMIT_MS`: the commit interval.

#![allow(clippy::unwrap_used)] // a test harness: fail loudly

use std::time::Duration;

use eventwire_process::uniques::UniquesSpec;
use eventwire_process::{Process, ProcessConfig};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, input, listen, uniques @ ..] = &args[..] else {
        panic!("usage: gameday-process BROKERS INPUT LISTEN [UNIQUES…]");
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let mut config = ProcessConfig::new(brokers, input);
    config.listen = listen.parse().unwrap();
    config.session_timeout = Duration::from_secs(6);
    if let Some(ms) = std::env::var("GAMEDAY_COMMIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.commit_interval = Duration::from_millis(ms);
    }
    for spec in uniques {
        config = config.uniques(UniquesSpec::parse(spec).unwrap());
    }
    let running = Process::start(config).await.unwrap();
    let stop = running.stopper();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        term.recv().await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    running.wait().await.unwrap();
}
