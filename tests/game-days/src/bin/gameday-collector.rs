//! The collector side of a game day, as its own process (so it can be killed with SIGKILL):
//! `gameday-collector LISTEN SCHEMAS GOOD BAD`, file sinks, runs until killed.

#![allow(clippy::unwrap_used)] // a test harness: fail loudly

use eventwire_collector::registry::Source;
use eventwire_collector::server::{Collector, CollectorConfig};
use eventwire_collector::sink::SinkSpec;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, schemas, good, bad] = &args[..] else {
        panic!("usage: gameday-collector LISTEN SCHEMAS GOOD BAD");
    };
    let config = CollectorConfig::new(Source::Dir(schemas.into()))
        .good(SinkSpec::parse(good))
        .bad(SinkSpec::parse(bad));
    let collector = Collector::new(config).await.unwrap();
    let server = collector.serve(listen.parse().unwrap()).await.unwrap();
    server.wait().await;
}
