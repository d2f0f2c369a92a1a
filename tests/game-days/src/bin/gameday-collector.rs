//! The collector side of a game day, as its own process (so it can be killed with SIGKILL):
//! `gameday-collector LISTEN SCHEMAS GOOD BAD`, file sinks, runs until killed.
//!
//! `GAMEDAY_SINK_DELAY_MS`: the good sink takes this long to say it stored a batch (after
//! storing it): a slow sink, for clients that give up mid-commit.
//! `GAMEDAY_SINK_MS_PER_RECORD`: the good sink takes this long per record, while the file
//! `GAMEDAY_SLOW_WHILE` exists (a sink whose throughput drops during an incident).
//! `GAMEDAY_MAX_IN_FLIGHT`: the collector's bound of requests in flight.
//! `GAMEDAY_WRITE_KEY`: the one write key required.

#![allow(clippy::unwrap_used)] // a test harness: fail loudly

use std::sync::Arc;
use std::time::Duration;

use eventwire_collector::registry::Source;
use eventwire_collector::server::{Collector, CollectorConfig};
use eventwire_collector::sink::{Sink, SinkError, SinkRecord, SinkSpec};
use futures_util::future::BoxFuture;

/// A sink that stores, then takes its time to say so: `delay` per write and `per_record`
/// per record (while `while_exists` exists, if set).
struct Slow {
    inner: Arc<dyn Sink>,
    delay: Duration,
    per_record: Duration,
    while_exists: Option<std::path::PathBuf>,
}

impl Sink for Slow {
    fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.inner.write(records).await?;
            if self.while_exists.as_ref().is_none_or(|p| p.exists()) {
                let n = u32::try_from(records.len()).unwrap_or(u32::MAX);
                tokio::time::sleep(self.delay + self.per_record * n).await;
            }
            Ok(())
        })
    }

    fn describe(&self) -> String {
        format!("slow {}", self.inner.describe())
    }

    fn recent_keys(&self) -> Vec<String> {
        self.inner.recent_keys()
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, schemas, good, bad] = &args[..] else {
        panic!("usage: gameday-collector LISTEN SCHEMAS GOOD BAD");
    };
    let mut config = CollectorConfig::new(Source::Dir(schemas.into()));
    if let Ok(key) = std::env::var("GAMEDAY_WRITE_KEY") {
        config = config.write_keys(vec![key]);
    }
    let ms = |name: &str| -> Option<u64> { std::env::var(name).ok()?.parse().ok() };
    if let Some(n) = ms("GAMEDAY_MAX_IN_FLIGHT") {
        config.max_in_flight_requests = usize::try_from(n).unwrap();
    }
    let mut good_sink = SinkSpec::parse(good)
        .open(false, &Default::default())
        .await
        .unwrap();
    let (delay, per_record) = (
        ms("GAMEDAY_SINK_DELAY_MS"),
        ms("GAMEDAY_SINK_MS_PER_RECORD"),
    );
    if delay.is_some() || per_record.is_some() {
        good_sink = Arc::new(Slow {
            inner: good_sink,
            delay: Duration::from_millis(delay.unwrap_or(0)),
            per_record: Duration::from_millis(per_record.unwrap_or(0)),
            while_exists: std::env::var_os("GAMEDAY_SLOW_WHILE").map(Into::into),
        });
    }
    let bad_sink = SinkSpec::parse(bad)
        .open(false, &Default::default())
        .await
        .unwrap();
    let collector = Collector::with_sinks(config, good_sink, bad_sink).unwrap();
    let server = collector.serve(listen.parse().unwrap()).await.unwrap();
    server.wait().await;
}
