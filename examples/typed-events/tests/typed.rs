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

#[test]
fn the_generated_check_enforces_what_rust_types_cannot() {
    use com_example_media::Play;
    // Deserialising: `position_s` has `maximum: 86400`, which no Rust type says.
    let too_far =
        serde_json::from_value::<Play>(json!({"media_id": "b0074dlv", "position_s": 86400.5}));
    let message = too_far.unwrap_err().to_string();
    assert!(
        message.contains("/position_s") && message.contains("maximum"),
        "{message}"
    );
    // An explicit null where the schema does not allow one (typify's `Option` would take it).
    let null = serde_json::from_value::<Play>(
        json!({"media_id": "b0074dlv", "position_s": 1, "autoplay": null}),
    );
    assert!(null.unwrap_err().to_string().contains("/autoplay"));
    // At the bound is fine.
    assert!(
        serde_json::from_value::<Play>(json!({"media_id": "b0074dlv", "position_s": 86400}))
            .is_ok()
    );

    // The builder runs the same check on what it built.
    let built: Result<Play, _> = Play::builder()
        .media_id(
            "b0074dlv"
                .parse::<com_example_media::play::v1_0_0::PlayMediaId>()
                .unwrap(),
        )
        .position_s(1.0)
        .playback_rate(Some(8.0))
        .try_into();
    let message = built.unwrap_err().to_string();
    assert!(
        message.contains("/playback_rate") && message.contains("maximum"),
        "{message}"
    );

    // A struct literal cannot be stopped, but `validate()` says what is wrong with it.
    let literal = Play {
        media_id: "b0074dlv".parse().unwrap(),
        position_s: -1.0,
        playback_rate: None,
        autoplay: None,
    };
    let invalid = literal.validate().unwrap_err();
    assert_eq!(
        (invalid.pointer.as_str(), invalid.keyword),
        ("/position_s", "minimum")
    );
    // And `validate_json` checks dynamic data against the type's schema.
    assert!(Play::validate_json(&json!({"media_id": "b0074dlv", "position_s": 0})).is_ok());
}

/// A schema's personal-data marks reach its generated type and the `PII_MARKS` table: the
/// tracker seals a typed entity's and a typed event's marked fields, and the private key
/// opens them at their place.
#[test]
fn marked_fields_of_generated_types_are_sealed() {
    use eventwire::pii::{open, Keyring, PrivateKey};
    use eventwire_example_typed::events::PII_MARKS;
    assert_eq!(com_example_shop::Customer::PII, ["/email", "/name"]);
    assert!(com_example_media::Play::PII.is_empty());
    let customer = com_example_shop::Customer::SCHEMA;
    assert!(PII_MARKS.contains(&(customer, &["/email", "/name"][..])));

    let private = PrivateKey::generate();
    let transport = MemoryTransport::new();
    let tracker = Tracker::builder()
        .transport(transport.clone())
        .pii_public_key(private.public_key().clone())
        .pii_marks(PII_MARKS)
        .build()
        .unwrap();
    let data: com_example_shop::Customer = serde_json::from_value(json!({
        "customer_id": "C-1234", "email": "ada@example.com", "name": "Ada L.", "tier": "gold"
    }))
    .unwrap();
    // As an event (its type's own marks), and as an entity (the table's).
    let entity = eventwire::Entity::typed(&data).unwrap();
    let as_event = tracker.track(data).unwrap();
    let as_entity = tracker
        .track_json_with(
            "iglu:com.example.web/page_view/jsonschema/1-0-0",
            &json!({"url": "https://example.com/", "title": "Home"}),
            &[entity],
        )
        .unwrap();
    tracker.flush(Duration::from_secs(10)).unwrap();
    let mut keys = Keyring::new();
    keys.add(private);
    let events: Vec<serde_json::Value> = transport
        .batches()
        .into_iter()
        .flat_map(|b| b.events)
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    for (id, at) in [(as_event, "/data"), (as_entity, "/entities/0/data")] {
        let e = events
            .iter()
            .find(|e| e["event_id"] == id.to_string())
            .unwrap();
        let text = e.to_string();
        assert!(
            !text.contains("ada@example.com") && !text.contains("Ada L."),
            "{text}"
        );
        assert_eq!(e.pointer(&format!("{at}/customer_id")).unwrap(), "C-1234");
        let sealed = e.pointer(&format!("{at}/email")).unwrap().as_str().unwrap();
        let opened = open(
            &keys,
            &id.to_string(),
            customer,
            &format!("{at}/email"),
            sealed,
        );
        assert_eq!(opened.unwrap(), "ada@example.com");
    }
}

/// An entity made from a generated type carries its marks to the tracker
/// (`Entity::typed`): sealed without the `PII_MARKS` table, refused without a key.
#[test]
fn a_typed_entity_is_sealed_without_the_table_and_refused_without_a_key() {
    let customer: com_example_shop::Customer = serde_json::from_value(json!({
        "customer_id": "C-4321", "email": "grace@example.com"
    }))
    .unwrap();
    let entity = eventwire::Entity::typed(&customer).unwrap();
    let page = json!({"url": "https://example.com/", "title": "Home"});
    let uri = "iglu:com.example.web/page_view/jsonschema/1-0-0";

    let transport = MemoryTransport::new();
    let key = eventwire::pii::PrivateKey::generate();
    let tracker = Tracker::builder()
        .transport(transport.clone())
        .pii_public_key(key.public_key().clone())
        .build()
        .unwrap();
    tracker
        .track_json_with(uri, &page, std::slice::from_ref(&entity))
        .unwrap();
    tracker.flush(Duration::from_secs(10)).unwrap();
    let sent = serde_json::to_string(&transport.batches()[0].events[0]).unwrap();
    assert!(!sent.contains("grace@example.com"), "{sent}");
    assert!(sent.contains("C-4321"));

    let keyless = Tracker::builder()
        .transport(MemoryTransport::new())
        .build()
        .unwrap();
    assert!(matches!(
        keyless.track_json_with(uri, &page, &[entity]),
        Err(eventwire::TrackError::PiiWithoutKey { .. })
    ));
}

/// Once a type taught its marks (`Entity::typed`), an event of its schema tracked as JSON
/// is sealed too (the second breaker: it was planned as marked and sent in clear).
#[test]
fn json_data_of_a_taught_schema_is_sealed() {
    let customer: com_example_shop::Customer =
        serde_json::from_value(json!({"customer_id": "C-7777"})).unwrap();
    let _ = eventwire::Entity::typed(&customer).unwrap();
    let transport = MemoryTransport::new();
    let tracker = Tracker::builder()
        .transport(transport.clone())
        .pii_public_key(eventwire::pii::PrivateKey::generate().public_key().clone())
        .build()
        .unwrap();
    tracker
        .track_json(
            com_example_shop::Customer::SCHEMA,
            &json!({"customer_id": "C-7777", "email": "taught@example.com"}),
        )
        .unwrap();
    tracker.flush(Duration::from_secs(10)).unwrap();
    let sent = serde_json::to_string(&transport.batches()[0].events[0]).unwrap();
    assert!(!sent.contains("taught@example.com"), "{sent}");
    assert!(sent.contains("C-7777"));
}
