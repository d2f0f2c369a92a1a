//! Shared pieces of eventwire's benchmarks: a realistic event. (The loopback collector and
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
