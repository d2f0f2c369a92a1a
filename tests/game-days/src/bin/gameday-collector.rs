//! The collector side of a game day, as its own process (so it can be killed with SIGKILL):
//! `gameday-collector LISTEN SCHEMAS GOOD BAD`, file sinks, runs until killed.
//!
//! `GAMEDAY_SINK_DELAY_MS`: the good sink takes this long to say it stored a batch (after
//! storing it): a slow sink, for clients that give up mid-commit. `GAMEDAY_WRITE_KEY`: the
//! one write key required.

#![allow(clippy::unwrap_used)] // a test harness: fail loudly

use std::sync::Arc;
use std::time::Duration;

use eventwire_collector::registry::Source;
use eventwire_collector::server::{Collector, CollectorConfig};
use eventwire_collector::sink::{Sink, SinkError, SinkRecord, SinkSpec};
use futures_util::future::BoxFuture;

/// A sink that stores, then takes its time to say so.
struct Slow {
    inner: Arc<dyn Sink>,
    delay: Duration,
}

impl Sink for Slow {
    fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.inner.write(records).await?;
            tokio::time::sleep(self.delay).await;
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
    let mut good_sink = SinkSpec::parse(good).open(false).await.unwrap();
    if let Some(ms) = std::env::var("GAMEDAY_SINK_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        good_sink = Arc::new(Slow {
            inner: good_sink,
            delay: Duration::from_millis(ms),
        });
    }
    let bad_sink = SinkSpec::parse(bad).open(false).await.unwrap();
    let collector = Collector::with_sinks(config, good_sink, bad_sink).unwrap();
    let server = collector.serve(listen.parse().unwrap()).await.unwrap();
    server.wait().await;
}
