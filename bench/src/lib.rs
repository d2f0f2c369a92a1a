//! Shared pieces of eventwire's benchmarks: a realistic event, and the collector benchmarks'
//! mix of events ([`mix`]). (The loopback collector and
//! the delay line are `eventwire-testkit`'s.)

#![allow(clippy::unwrap_used)] // benchmark harness: fail loudly

use serde::Serialize;

/// A media play event of about 600 bytes of JSON: a dozen properties and a nested object.
#[derive(Debug, Clone, Serialize)]
pub struct MediaPlay {
    /// Media id.
    pub media_id: String,
    /// Title.
    pub title: String,
    /// Position in seconds.
    pub position_s: f64,
    /// Duration in seconds.
    pub duration_s: f64,
    /// Playback rate.
    pub playback_rate: f64,
    /// Volume 0-100.
    pub volume: u8,
    /// Muted.
    pub muted: bool,
    /// Full screen.
    pub fullscreen: bool,
    /// Picture in picture.
    pub picture_in_picture: bool,
    /// Quality label.
    pub quality: String,
    /// Audio language.
    pub audio_language: String,
    /// Subtitles language.
    pub subtitles: Option<String>,
    /// Page the player is on.
    pub page_url: String,
    /// Where the viewer came from.
    pub referrer: String,
    /// Programme information.
    pub programme: Programme,
}

/// Nested programme details.
#[derive(Debug, Clone, Serialize)]
pub struct Programme {
    /// Brand.
    pub brand: String,
    /// Series.
    pub series: u32,
    /// Episode.
    pub episode: u32,
    /// Genres.
    pub genres: Vec<String>,
    /// Broadcast channel.
    pub channel: String,
}

impl eventwire::SelfDescribing for MediaPlay {
    const SCHEMA: &'static str = "iglu:com.example.media/play/jsonschema/1-0-0";
}

impl MediaPlay {
    /// The benchmark's event, varied by `i`.
    pub fn sample(i: u64) -> Self {
        MediaPlay {
            media_id: format!("b0074dlv-{i}"),
            title: "Planet Earth III: Coasts — the tidal zone at night".into(),
            position_s: i as f64 * 0.5,
            duration_s: 3540.0,
            playback_rate: 1.0,
            volume: 80,
            muted: false,
            fullscreen: true,
            picture_in_picture: false,
            quality: "1080p-hdr".into(),
            audio_language: "en-GB".into(),
            subtitles: Some("en".into()),
            page_url: format!(
                "https://www.example.com/iplayer/episode/b0074dlv/planet-earth-iii-series-3-{i}"
            ),
            referrer: "https://www.example.com/iplayer/categories/nature-and-science/featured"
                .into(),
            programme: Programme {
                brand: "Planet Earth".into(),
                series: 3,
                episode: 1,
                genres: vec!["factual".into(), "nature".into(), "documentary".into()],
                channel: "bbc-one-hd".into(),
            },
        }
    }
}

/// The player entity attached to the event.
pub fn player_entity() -> eventwire::Entity {
    eventwire::Entity {
        schema: "iglu:com.example.media/player/jsonschema/1-0-0".into(),
        data: serde_json::json!({"kind": "video", "player": "html5", "version": "4.2.1", "autoplay": false}),
    }
}

/// The collector benchmarks' events.
pub mod mix {
    use serde_json::{json, Value};

    /// The media player entity.
    pub fn player() -> Value {
        json!({"schema": "iglu:com.example.media/player/jsonschema/1-0-0",
               "data": {"kind": "video", "player_name": "html5", "player_version": "4.2.1", "volume": 80, "quality": "hd"}})
    }

    /// Event `i` of the mix, its schema, data and entities: 2/5 media play events with the
    /// player entity, 1/5 each page views, searches and checkouts (≈ 564 bytes per event).
    pub fn mix(i: usize) -> (&'static str, Value, Vec<Value>) {
        match i % 5 {
            0 | 1 => (
                "iglu:com.example.media/play/jsonschema/1-0-0",
                json!({"media_id": "b0074dlv", "position_s": (i % 7200) as f64 * 0.5, "playback_rate": 1.0, "autoplay": false}),
                vec![player()],
            ),
            2 => (
                "iglu:com.example.web/page_view/jsonschema/1-0-0",
                json!({"url": format!("https://www.example.com/news/article-{i}"), "title": "Filming the tidal zone at night",
                       "referrer": "https://www.example.com/", "viewport": {"width": 1280, "height": 800}}),
                vec![],
            ),
            3 => (
                "iglu:com.example.web/search/jsonschema/1-0-0",
                json!({"query": "planet earth", "results_count": 12, "page": 1, "filters": {"category": null, "sort": "relevance"}}),
                vec![],
            ),
            _ => (
                "iglu:com.example.shop/checkout/jsonschema/1-0-1",
                json!({"order_id": "ORD-20261126", "currency": "GBP", "total": 24.98, "coupon": null, "payment_method": "card",
                       "items": [{"sku": "DVD-PE3", "quantity": 1, "unit_price": 19.99}, {"sku": "GIFT-WRAP", "quantity": 1, "unit_price": 4.99}]}),
                vec![],
            ),
        }
    }

    /// Event `i` of the mix as a whole envelope (a new event id).
    pub fn envelope(i: usize) -> Value {
        let (schema, data, entities) = mix(i);
        let mut e = json!({
            "event_id": uuid::Uuid::now_v7().to_string(),
            "schema": schema,
            "data": data,
            "created_at": "2026-11-26T03:10:25.001Z",
            "context": {"labels": {"environment": "bench", "service": "web", "version": "abc123"},
                        "library": {"name": "eventwire-rust", "version": "0.1.0"},
                        "anonymous_id": "6f1c7e9a-3b2d-4c5e-8f90-1a2b3c4d5e6f", "session_id": "0b1c2d3e"}
        });
        if !entities.is_empty() {
            e["entities"] = Value::Array(entities);
        }
        e
    }
}
