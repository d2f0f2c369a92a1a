//! Tracks a few typed events to a collector.
//!
//! `cargo run -p eventwire-example-typed -- http://127.0.0.1:8080`

use std::time::Duration;

use eventwire::{Entity, Tracker};
use eventwire_example_typed::events::{com_example_media, com_example_web};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let tracker = Tracker::builder()
        .endpoint(endpoint)
        .service("example")
        .build()?;
    // Builders check what the types encode (patterns, lengths) and say which field failed.
    let player: com_example_media::Player = com_example_media::Player::builder()
        .kind(com_example_media::player::v1_0_0::PlayerKind::Video)
        .player_name("html5")
        .try_into()?;
    let player = Entity::typed(&player)?;
    tracker.track_with(
        com_example_media::Play {
            media_id: "b0074dlv".parse()?,
            position_s: 0.0,
            playback_rate: None,
            autoplay: Some(false),
        },
        &[player],
    )?;
    let search: com_example_web::Search = com_example_web::Search::builder()
        .query("weather")
        .results_count(3_u64)
        .try_into()?;
    tracker.track(search)?;
    tracker.flush(Duration::from_secs(5))?;
    println!("{:?}", tracker.stats());
    Ok(())
}
