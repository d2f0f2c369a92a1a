//! The checked-in envelope schemas (`schemas/dev.eventwire/{event,batch}/jsonschema/1-1-0`)
//! must equal what the Rust types derive, and what the tracker sends must validate against
//! them (draft 4, as the collector validates). Run with `EVENTWIRE_BLESS=1` to rewrite the
//! files after a deliberate change of the wire types.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::PathBuf;
use std::time::Duration;

use eventwire::protocol::{iglu_schemas, ENVELOPE_SCHEMA_VERSION, IGLU_URI_PATTERN};
use eventwire::{Entity, MemoryTransport, Tracker};
use serde_json::{json, Value};

fn schema_path(name: &str, version: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/dev.eventwire")
        .join(name)
        .join("jsonschema")
        .join(version)
}

fn checked_in(name: &str) -> Value {
    checked_in_at(name, ENVELOPE_SCHEMA_VERSION)
}

fn checked_in_at(name: &str, version: &str) -> Value {
    let path = schema_path(name, version);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with EVENTWIRE_BLESS=1 to create it)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

#[test]
fn checked_in_schemas_match_the_rust_types() {
    let bless = std::env::var_os("EVENTWIRE_BLESS").is_some();
    for (name, derived) in iglu_schemas() {
        if bless {
            let path = schema_path(name, ENVELOPE_SCHEMA_VERSION);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&derived).unwrap() + "\n",
            )
            .unwrap();
        }
        assert_eq!(
            checked_in(name),
            derived,
            "schemas/dev.eventwire/{name}/jsonschema/{ENVELOPE_SCHEMA_VERSION} drifted from \
             the Rust types; if the change is deliberate, bump ENVELOPE_SCHEMA_VERSION (a \
             published version never changes) and rerun with EVENTWIRE_BLESS=1"
        );
        assert_eq!(derived["self"]["name"], name);
        assert_eq!(derived["self"]["version"], ENVELOPE_SCHEMA_VERSION);
    }
    // The URI pattern in the schema is the one the parser documents.
    let event = checked_in("event");
    assert_eq!(event["properties"]["schema"]["pattern"], IGLU_URI_PATTERN);
}

fn draft4(schema: &Value) -> eventwire_schema::draft4::Validator {
    eventwire_schema::draft4::compile(schema).unwrap()
}

#[test]
fn what_the_tracker_sends_validates_against_the_checked_in_schemas() {
    let transport = MemoryTransport::new();
    let tracker = Tracker::builder()
        .transport(transport.clone())
        .environment("prod")
        .service("web")
        .write_key("key")
        .write_key_in_body(true)
        .build()
        .unwrap();
    tracker.set_user_id(Some("u-1".into()));
    tracker
        .track_json_with(
            "iglu:com.example.media/play/jsonschema/1-0-0",
            &json!({"media_id": "b0074dlv", "position_s": 12.5}),
            &[Entity {
                schema: "iglu:com.example.media/player/jsonschema/1-0-0".into(),
                data: json!({"kind": "video"}),
            }],
        )
        .unwrap();
    tracker
        .track_json(
            "iglu:com.example/search/jsonschema/2-1-3",
            &json!({"q": "x"}),
        )
        .unwrap();
    tracker.flush(Duration::from_secs(5)).unwrap();
    let body: Value = serde_json::from_slice(&transport.requests()[0].body).unwrap();
    let batch = draft4(&checked_in("batch"));
    let event = draft4(&checked_in("event"));
    let errors: Vec<String> = batch.iter_errors(&body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    for e in body["events"].as_array().unwrap() {
        assert!(event.is_valid(e), "{e}");
    }
    // And the schemas do reject what they should.
    let mut bad = body["events"][0].clone();
    bad["schema"] = json!("iglu:../../etc/passwd/jsonschema/1-0-0");
    assert!(!event.is_valid(&bad));
    let mut bad = body["events"][0].clone();
    bad.as_object_mut().unwrap().remove("event_id");
    assert!(!event.is_valid(&bad));
    let mut bad = body["events"][0].clone();
    bad["created_at"] = json!("yesterday");
    assert!(!event.is_valid(&bad));
    let mut bad = body["events"][0].clone();
    bad["surprise"] = json!(1);
    assert!(!event.is_valid(&bad));
}

/// 1-1-0 added `context.test_id` and nothing else: what a tracker sends without one is
/// valid under both versions, what it sends with one is valid under 1-1-0, and the
/// published 1-0-0 files are still there for the envelopes sent before. A REVISION, not an
/// ADDITION: an envelope with a `test_id` that is not a string was valid under 1-0-0.
#[test]
fn the_test_id_is_a_revision_of_the_published_1_0_0() {
    let send = |test_id: Option<&str>| -> Value {
        let transport = MemoryTransport::new();
        let mut builder = Tracker::builder().transport(transport.clone());
        if let Some(id) = test_id {
            builder = builder.test_id(id);
        }
        let tracker = builder.build().unwrap();
        tracker
            .track_json(
                "iglu:com.example/search/jsonschema/1-0-0",
                &json!({"q": "x"}),
            )
            .unwrap();
        tracker.flush(Duration::from_secs(5)).unwrap();
        serde_json::from_slice(&transport.requests()[0].body).unwrap()
    };
    let (old, new) = (
        draft4(&checked_in_at("event", "1-0-0")),
        draft4(&checked_in("event")),
    );
    let (old_batch, new_batch) = (
        draft4(&checked_in_at("batch", "1-0-0")),
        draft4(&checked_in("batch")),
    );
    let plain = send(None);
    assert!(plain["events"][0]["context"].get("test_id").is_none());
    assert!(old.is_valid(&plain["events"][0]) && new.is_valid(&plain["events"][0]));
    assert!(old_batch.is_valid(&plain) && new_batch.is_valid(&plain));
    let marked = send(Some("checkout-test-7"));
    assert_eq!(marked["events"][0]["context"]["test_id"], "checkout-test-7");
    assert!(new.is_valid(&marked["events"][0]) && new_batch.is_valid(&marked));
    for bad in [json!(""), json!(7), json!("x".repeat(257))] {
        let mut e = marked["events"][0].clone();
        e["context"]["test_id"] = bad.clone();
        assert!(!new.is_valid(&e), "test_id {bad} passed");
        // Valid under 1-0-0, whose context let any member through: why 1-1-0 is a REVISION.
        assert!(old.is_valid(&e), "test_id {bad} was refused by 1-0-0");
    }
}

#[test]
fn a_test_id_out_of_bounds_is_refused_at_build() {
    for (id, ok) in [
        ("", false),
        ("a", true),
        (&*"é".repeat(256), true),
        (&*"é".repeat(257), false),
    ] {
        let built = Tracker::builder()
            .transport(MemoryTransport::new())
            .test_id(id)
            .build();
        match (built, ok) {
            (Ok(t), true) => drop(t),
            (Err(e), false) => assert!(e.to_string().contains("test_id"), "{e}"),
            (r, _) => panic!("test_id of {} chars: {:?}", id.chars().count(), r.err()),
        }
    }
}
