//! The checked-in envelope schemas (`schemas/dev.eventwire/{event,batch}/jsonschema/1-0-0`)
//! must equal what the Rust types derive, and what the tracker sends must validate against
//! them (draft 4, as the collector validates). Run with `EVENTWIRE_BLESS=1` to rewrite the
//! files after a deliberate change of the wire types.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::PathBuf;
use std::time::Duration;

use eventwire::protocol::{iglu_schemas, IGLU_URI_PATTERN};
use eventwire::{Entity, MemoryTransport, Tracker};
use serde_json::{json, Value};

fn schema_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/dev.eventwire")
        .join(name)
        .join("jsonschema/1-0-0")
}

fn checked_in(name: &str) -> Value {
    let path = schema_path(name);
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
            let path = schema_path(name);
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
            "schemas/dev.eventwire/{name}/jsonschema/1-0-0 drifted from the Rust types; \
             if the change is deliberate, rerun with EVENTWIRE_BLESS=1 and bump the version"
        );
        assert_eq!(derived["self"]["name"], name);
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
