//! Generated types in use: they implement `SelfDescribing` with the right URI, track through
//! the tracker, serialise to what the schema expects, and refuse what their types encode.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::time::Duration;

use eventwire::{MemoryTransport, SelfDescribing, Tracker};
use eventwire_example_typed::events::{com_example_media, com_example_shop, com_example_web};
use serde_json::json;

#[test]
fn generated_types_carry_their_uris_and_track() {
    assert_eq!(
        com_example_media::Play::SCHEMA,
        "iglu:com.example.media/play/jsonschema/1-0-0"
    );
    // The unversioned name is the latest version of MODEL 1; older versions stay reachable.
    assert_eq!(
        com_example_shop::Checkout::SCHEMA,
        "iglu:com.example.shop/checkout/jsonschema/1-0-1"
    );
    assert_eq!(
        com_example_shop::checkout::v1_0_0::Checkout::SCHEMA,
        "iglu:com.example.shop/checkout/jsonschema/1-0-0"
    );

    let transport = MemoryTransport::new();
    let tracker = Tracker::builder()
        .transport(transport.clone())
        .build()
        .unwrap();
    let id = tracker
        .track(com_example_media::Play {
            media_id: "b0074dlv".parse().unwrap(),
            position_s: 12.5,
            playback_rate: None,
            autoplay: Some(true),
        })
        .unwrap();
    tracker.flush(Duration::from_secs(5)).unwrap();
    let event = transport.batches()[0].events[0].clone();
    assert_eq!(event.event_id, id);
    assert_eq!(event.schema, com_example_media::Play::SCHEMA);
    assert_eq!(
        event.data,
        json!({"media_id": "b0074dlv", "position_s": 12.5, "autoplay": true})
    );
}

#[test]
fn patterns_enums_and_required_fields_are_enforced_by_the_types() {
    // Pattern ^[a-z0-9]{8}$.
    assert!("B0074DLV"
        .parse::<com_example_media::play::v1_0_0::PlayMediaId>()
        .is_err());
    // Deserialising checks too.
    let bad: Result<com_example_media::Play, _> =
        serde_json::from_value(json!({"media_id": "nope", "position_s": 1}));
    assert!(bad.is_err());
    let missing: Result<com_example_media::Play, _> =
        serde_json::from_value(json!({"media_id": "b0074dlv"}));
    assert!(missing.is_err(), "position_s is required");
    let unknown: Result<com_example_web::Search, _> =
        serde_json::from_value(json!({"query": "x", "results_count": 1, "extra": 1}));
    assert!(unknown.is_err(), "additionalProperties: false");
    // Builders name the failing field.
    let built: Result<com_example_web::Search, _> =
        com_example_web::Search::builder().query("x").try_into();
    let message = built.unwrap_err().to_string();
    assert!(message.contains("results_count"), "{message}");
    // Nullable enums round-trip null.
    let pause: com_example_media::Pause =
        serde_json::from_value(json!({"media_id": "b0074dlv", "position_s": 3, "reason": null}))
            .unwrap();
    assert!(pause.reason.is_none());
}

#[test]
fn round_trip_checks_dynamic_json_against_the_generated_types() {
    use eventwire_example_typed::events::round_trip;
    let play = "iglu:com.example.media/play/jsonschema/1-0-0";
    let good = json!({"media_id": "b0074dlv", "position_s": 3.5});
    assert_eq!(round_trip(play, &good), Some(Ok(good.clone())));
    assert!(matches!(
        round_trip(play, &json!({"media_id": "X", "position_s": 1})),
        Some(Err(_))
    ));
    assert_eq!(
        round_trip("iglu:com.example.media/rewind/jsonschema/1-0-0", &good),
        None
    );
}
