//! Each SDK driven the way its documentation suggests, on the same event: the media play
//! event of `eventwire-bench` (~600 bytes: a dozen properties, a nested object) with the
//! player entity. The app holds a `MediaPlay`; what each SDK needs to turn it into its own
//! event (property maps, `serde_json::Value`s, builders) is part of the caller's cost.

use std::time::Duration;

use eventwire::{Tracker, WhenFull};
use eventwire_bench::{player_entity, MediaPlay};
use serde_json::Value;

/// Every bounded queue holds 10,000 events: eventwire's, posthog-rs's and snowplow_tracker's
/// default alike. A deeper queue only trades memory for fewer drops in a burst.
const QUEUE: usize = 10_000;

/// The SDKs measured.
pub const ALL: &[&str] = &[
    "eventwire",
    "eventwire-block",
    "eventwire-block-q1k",
    "eventwire-spool",
    "eventwire-spool-block",
    "posthog-rs",
    "segment",
    "rudderanalytics",
    "snowplow_tracker",
    "sink-only",
];

/// How an SDK is configured for the run, for the table.
#[must_use]
pub fn configuration(name: &str) -> &'static str {
    match name {
        "eventwire" => "defaults (queue 10,000 events, drop and count when full; batches of 500 / 1 MiB / 200 ms; gzip)",
        "eventwire-block" => "defaults + `when_full(Block(30 s))`: the caller waits for room instead of dropping",
        "eventwire-block-q1k" => "as `eventwire-block` with `queue_capacity(1_000)`: memory traded for back-pressure sooner",
        "eventwire-spool" => "defaults + `spool(dir)`: every event written to disk (group commit every 50 ms) and kept until answered; a full queue waits on disk instead of dropping; a burst faster than the spool thread appends is dropped and counted (`queue_full`)",
        "eventwire-spool-block" => "as `eventwire-spool` with `when_full(Block(30 s))`: the caller waits for the spool thread instead of dropping",
        "posthog-rs" => "background batching on; `flush_at` and `max_batch_size` 1,000 (default 100); queue 10,000 events (its default, as ours), drops when full; gzip",
        "segment" => "`AutoBatcher` (its batching: 500 KB batches, sent by `push` when full, awaited by the caller)",
        "rudderanalytics" => "no batching (its batcher is private): `send` is one blocking HTTP request per event, as its docs show",
        "snowplow_tracker" => "`BatchEmitter` with an `InMemoryEventStore` of 10,000 events (its default, as ours), batches of 500 (default 50); refuses events when full",
        "sink-only" => "no SDK: the sink and the event loop alone (baseline memory)",
        _ => "",
    }
}

/// One SDK, ready to take events.
pub trait Driver {
    /// Tracks `event` as the SDK's docs suggest.
    fn track(&mut self, event: MediaPlay);
    /// Asks the SDK to send what it holds (where it can).
    fn flush(&mut self);
    /// Events the SDK itself says it dropped, where it counts them.
    fn counted_drops(&self) -> Option<u64> {
        None
    }
}

/// Builds the driver for `name`, pointed at `url`.
///
/// # Panics
///
/// For an unknown name or an SDK that cannot start (the benchmark cannot run).
#[must_use]
pub fn driver(name: &str, url: &str) -> Box<dyn Driver> {
    match name {
        "eventwire"
        | "eventwire-block"
        | "eventwire-block-q1k"
        | "eventwire-spool"
        | "eventwire-spool-block" => {
            let mut b = Tracker::builder().endpoint(url).write_key("bench");
            if name.ends_with("-block") || name == "eventwire-block-q1k" {
                b = b.when_full(WhenFull::Block(Duration::from_secs(30)));
            }
            if name == "eventwire-block-q1k" {
                b = b.queue_capacity(1_000);
            }
            let spool = name.starts_with("eventwire-spool").then(|| {
                // A fresh spool per run (the process is this SDK's alone).
                std::env::temp_dir().join(format!("eventwire-bench-spool-{}", std::process::id()))
            });
            if let Some(dir) = &spool {
                let _ = std::fs::remove_dir_all(dir);
                b = b.spool(dir);
            }
            Box::new(Ours {
                tracker: b.build().expect("tracker"),
                entity: [player_entity()],
                spool,
            })
        }
        "posthog-rs" => Box::new(PostHog::new(url)),
        "segment" => Box::new(Segment::new(url)),
        "rudderanalytics" => Box::new(Rudder::new(url)),
        "snowplow_tracker" => Box::new(Snowplow::new(url)),
        "sink-only" => Box::new(Nothing),
        other => panic!("unknown SDK {other}"),
    }
}

struct Ours {
    tracker: Tracker,
    entity: [eventwire::Entity; 1],
    spool: Option<std::path::PathBuf>,
}

impl Drop for Ours {
    fn drop(&mut self) {
        if let Some(dir) = &self.spool {
            let _ = self.tracker.shutdown(Duration::from_secs(5));
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Driver for Ours {
    fn track(&mut self, event: MediaPlay) {
        // A full queue is counted by the tracker (stats); the benchmark reads it as lost.
        let _ = self.tracker.track_with(event, &self.entity);
    }
    fn flush(&mut self) {
        let _ = self.tracker.flush(Duration::from_secs(60));
    }
    fn counted_drops(&self) -> Option<u64> {
        Some(self.tracker.stats().dropped.iter().map(|(_, n)| n).sum())
    }
}

struct Nothing;

impl Driver for Nothing {
    fn track(&mut self, event: MediaPlay) {
        std::hint::black_box(event);
    }
    fn flush(&mut self) {}
}

fn entity_value() -> Value {
    let e = player_entity();
    serde_json::json!({"schema": e.schema, "data": e.data})
}

struct PostHog {
    rt: tokio::runtime::Runtime,
    client: posthog_rs::Client,
}

impl PostHog {
    fn new(url: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let options = posthog_rs::ClientOptionsBuilder::default()
            .api_key("phc_bench".to_string())
            .host(url.to_string())
            .flush_at(1_000)
            .max_batch_size(1_000)
            .capture_compression(posthog_rs::CaptureCompression::Gzip)
            .build()
            .expect("posthog options");
        let client = rt.block_on(posthog_rs::client(options));
        PostHog { rt, client }
    }
}

impl Driver for PostHog {
    fn track(&mut self, event: MediaPlay) {
        let _guard = self.rt.enter();
        let mut e = posthog_rs::Event::new("media play", "anon-1234");
        let _ = e.insert_prop("media_id", event.media_id);
        let _ = e.insert_prop("title", event.title);
        let _ = e.insert_prop("position_s", event.position_s);
        let _ = e.insert_prop("duration_s", event.duration_s);
        let _ = e.insert_prop("playback_rate", event.playback_rate);
        let _ = e.insert_prop("volume", event.volume);
        let _ = e.insert_prop("muted", event.muted);
        let _ = e.insert_prop("fullscreen", event.fullscreen);
        let _ = e.insert_prop("picture_in_picture", event.picture_in_picture);
        let _ = e.insert_prop("quality", event.quality);
        let _ = e.insert_prop("audio_language", event.audio_language);
        let _ = e.insert_prop("subtitles", event.subtitles);
        let _ = e.insert_prop("page_url", event.page_url);
        let _ = e.insert_prop("referrer", event.referrer);
        let _ = e.insert_prop("programme", event.programme);
        let _ = e.insert_prop("player", entity_value());
        self.client.capture(e);
    }
    fn flush(&mut self) {
        self.rt.block_on(self.client.flush());
    }
}

struct Segment {
    rt: tokio::runtime::Runtime,
    batcher: segment::AutoBatcher,
    context: Value,
}

impl Segment {
    fn new(url: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = segment::HttpClient::new(reqwest_segment(), url.to_string());
        let batcher =
            segment::AutoBatcher::new(client, segment::Batcher::new(None), "bench".into());
        Segment {
            rt,
            batcher,
            context: serde_json::json!({"player": player_entity().data}),
        }
    }
}

fn reqwest_segment() -> segment_reqwest::Client {
    segment_reqwest::Client::new()
}

impl Driver for Segment {
    fn track(&mut self, event: MediaPlay) {
        let msg = segment::message::Track {
            user: segment::message::User::AnonymousId {
                anonymous_id: "anon-1234".into(),
            },
            event: "media play".into(),
            properties: serde_json::to_value(event).unwrap_or_default(),
            context: Some(self.context.clone()),
            ..Default::default()
        };
        let _ = self.rt.block_on(self.batcher.push(msg));
    }
    fn flush(&mut self) {
        let _ = self.rt.block_on(self.batcher.flush());
    }
}

struct Rudder {
    client: rudderanalytics::client::RudderAnalytics,
    context: Value,
}

impl Rudder {
    fn new(url: &str) -> Self {
        Rudder {
            client: rudderanalytics::client::RudderAnalytics::load("bench".into(), url.into()),
            context: serde_json::json!({"player": player_entity().data}),
        }
    }
}

impl Driver for Rudder {
    fn track(&mut self, event: MediaPlay) {
        // The crate's batcher is private: one blocking request per event, as its docs show.
        let msg = rudderanalytics::message::Message::Track(rudderanalytics::message::Track {
            anonymous_id: Some("anon-1234".into()),
            event: "media play".into(),
            properties: serde_json::to_value(event).ok(),
            context: Some(self.context.clone()),
            ..Default::default()
        });
        let _ = self.client.send(&msg);
    }
    fn flush(&mut self) {}
}

struct Snowplow {
    tracker: snowplow_tracker::Tracker,
    context: Vec<snowplow_tracker::SelfDescribingJson>,
}

impl Snowplow {
    fn new(url: &str) -> Self {
        let emitter = snowplow_tracker::BatchEmitter::builder()
            .collector_url(url)
            .event_store(snowplow_tracker::InMemoryEventStore::new(QUEUE, 500))
            .build()
            .expect("snowplow emitter");
        let tracker = snowplow_tracker::Tracker::new("bench", "bench-app", emitter, None);
        let e = player_entity();
        Snowplow {
            tracker,
            context: vec![snowplow_tracker::SelfDescribingJson::new(&e.schema, e.data)],
        }
    }
}

impl Driver for Snowplow {
    fn track(&mut self, event: MediaPlay) {
        let Ok(e) = snowplow_tracker::SelfDescribingEvent::builder()
            .schema(<MediaPlay as eventwire::SelfDescribing>::SCHEMA.to_string())
            .data(serde_json::to_value(event).unwrap_or_default())
            .build()
        else {
            return;
        };
        let _ = self.tracker.track(e, Some(self.context.clone()));
    }
    fn flush(&mut self) {
        let _ = self.tracker.flush();
    }
}
