//! Personal data sealed by the tracker: marked values leave (and reach the spool) only
//! sealed, each opens at its own place with the private key, a schema with marks and no key
//! is refused at `track()`, and sealing's growth never upsets the queue's and the spool's
//! byte accounting.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::Path;
use std::time::Duration;

use eventwire::pii::{open, Keyring, PrivateKey};
use eventwire::{
    BuildError, DropReason, Entity, MemoryTransport, SelfDescribing, TrackError, Tracker,
    TrackerBuilder,
};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);
const SIGNUP: &str = "iglu:com.example/signup/jsonschema/1-0-0";
const CUSTOMER: &str = "iglu:com.example/customer/jsonschema/1-0-0";
const PLAIN: &str = "iglu:com.example/plain/jsonschema/1-0-0";
/// As generated code lists marks (`PII_MARKS`).
const MARKS: &[(&str, &[&str])] = &[
    (SIGNUP, &["/email", "/phones/*"]),
    (CUSTOMER, &["/name"]),
    (PLAIN, &[]),
];

/// A generated type's marks travel with it.
#[derive(serde::Serialize)]
struct Profile {
    nickname: String,
    birth: Value,
    city: String,
}

impl SelfDescribing for Profile {
    const SCHEMA: &'static str = "iglu:com.example/profile/jsonschema/1-0-0";
    const PII: &'static [&'static str] = &["/birth", "/nickname"];
}

fn builder(transport: &MemoryTransport) -> TrackerBuilder {
    Tracker::builder()
        .transport(transport.clone())
        .max_batch_delay(Duration::from_millis(10))
}

/// Every byte under `dir`, for a marker grep.
fn bytes_under(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(bytes_under(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn marked_values_leave_sealed_and_open_at_their_place_with_or_without_a_spool() {
    let private = PrivateKey::generate();
    let mut keys = Keyring::new();
    keys.add(PrivateKey::parse(&private.to_text()).unwrap());
    for spooled in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let sealing = |transport: &MemoryTransport| {
            let b = builder(transport)
                .pii_public_key(private.public_key().clone())
                .pii_marks(MARKS);
            if spooled {
                b.spool(dir.path())
            } else {
                b
            }
        };
        // With a spool, the collector is down first: the events wait on disk.
        let transport = if spooled {
            MemoryTransport::respond_with(|_| Ok(eventwire::transport::Response::status(503)))
        } else {
            MemoryTransport::new()
        };
        let tracker = sealing(&transport).build().unwrap();
        let m = |what: &str| format!("MARKER-{spooled}-{what}");
        let signup =
            json!({"email": m("email"), "phones": [m("phone0"), m("phone1")], "plan": "pro"});
        let customer = Entity {
            schema: CUSTOMER.into(),
            data: json!({"name": {"given": m("name")}, "tier": 3}),
        };
        let plain = Entity {
            schema: PLAIN.into(),
            data: json!({"note": m("note-in-clear")}),
        };
        let first = tracker
            .track_json_with(SIGNUP, &signup, &[plain.clone(), customer.clone()])
            .unwrap();
        let second = tracker
            .track(Profile {
                nickname: m("nick"),
                birth: json!({"year": 1990}),
                city: m("city-in-clear"),
            })
            .unwrap();
        let transport = if spooled {
            let _ = tracker.shutdown(Duration::from_millis(300));
            assert_eq!(tracker.stats().kept_in_spool, 2);
            let on_disk = bytes_under(dir.path());
            assert!(
                contains(&on_disk, &m("note-in-clear")),
                "the events are on disk"
            );
            for marked in ["email", "phone0", "phone1", "name", "nick"] {
                assert!(
                    !contains(&on_disk, &m(marked)),
                    "{marked} in clear in the spool"
                );
            }
            // The next start delivers them as stored (not sealed again).
            let transport = MemoryTransport::new();
            let next = sealing(&transport).build().unwrap();
            next.flush(T).unwrap();
            let s = next.stats();
            assert_eq!((s.recovered, s.sent, s.dropped_total()), (2, 2, 0), "{s:?}");
            transport
        } else {
            tracker.flush(T).unwrap();
            let s = tracker.stats();
            assert_eq!((s.tracked, s.sent, s.dropped_total()), (2, 2, 0), "{s:?}");
            transport
        };

        let bodies: Vec<u8> = transport
            .requests()
            .iter()
            .flat_map(|r| eventwire::transport::decode_request(r).unwrap().events)
            .flat_map(|e| serde_json::to_vec(&e).unwrap())
            .collect();
        for marked in ["email", "phone0", "phone1", "name", "nick"] {
            assert!(!contains(&bodies, &m(marked)), "{marked} left in clear");
        }
        assert!(contains(&bodies, &m("note-in-clear")) && contains(&bodies, &m("city-in-clear")));

        let events: Vec<Value> = transport
            .batches()
            .into_iter()
            .flat_map(|b| b.events)
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        let get = |id: eventwire::Uuid| {
            events
                .iter()
                .find(|e| e["event_id"] == id.to_string())
                .unwrap()
                .clone()
        };
        let opened = |event: &Value, schema: &str, at: &str| {
            let id = event["event_id"].as_str().unwrap();
            let sealed = event.pointer(at).unwrap().as_str().unwrap();
            open(&keys, id, schema, at, sealed).unwrap()
        };
        let e = get(first);
        assert_eq!(opened(&e, SIGNUP, "/data/email"), json!(m("email")));
        assert_eq!(opened(&e, SIGNUP, "/data/phones/1"), json!(m("phone1")));
        assert_eq!(e["data"]["plan"], "pro");
        assert_eq!(
            opened(&e, CUSTOMER, "/entities/1/data/name"),
            json!({"given": m("name")})
        );
        assert_eq!(e["entities"][1]["data"]["tier"], 3);
        let e = get(second);
        let profile = Profile::SCHEMA;
        assert_eq!(opened(&e, profile, "/data/nickname"), json!(m("nick")));
        assert_eq!(opened(&e, profile, "/data/birth"), json!({"year": 1990}));
        // Moved to the other marked field of the same event: does not open.
        let nick = e["data"]["nickname"].as_str().unwrap();
        let id = e["event_id"].as_str().unwrap();
        assert!(open(&keys, id, profile, "/data/birth", nick).is_err());
    }
}

#[test]
fn without_a_key_marked_schemas_are_refused_at_track_unless_sent_in_clear() {
    let transport = MemoryTransport::new();
    let tracker = builder(&transport).pii_marks(MARKS).build().unwrap();
    let customer = Entity {
        schema: CUSTOMER.into(),
        data: json!({"name": "Ada"}),
    };
    let refused = [
        tracker.track_json(SIGNUP, &json!({"email": "a@b.c"})),
        tracker.track_json_with(PLAIN, &json!({}), std::slice::from_ref(&customer)),
        tracker.track(Profile {
            nickname: "ada".into(),
            birth: json!(null),
            city: "x".into(),
        }),
    ];
    for (r, schema) in refused.into_iter().zip([SIGNUP, CUSTOMER, Profile::SCHEMA]) {
        match r {
            Err(TrackError::PiiWithoutKey { schema: s }) => assert_eq!(s, schema),
            other => panic!("expected PiiWithoutKey for {schema}, got {other:?}"),
        }
    }
    // A schema with no marks goes.
    tracker.track_json(PLAIN, &json!({"note": "x"})).unwrap();
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!(s.dropped(DropReason::PiiUnsealed), 3);
    assert_eq!((s.tracked, s.sent), (1, 1));
    assert_eq!(transport.event_ids().len(), 1);

    // Chosen explicitly: in clear.
    let transport = MemoryTransport::new();
    let tracker = builder(&transport)
        .pii_marks(MARKS)
        .send_pii_in_clear(true)
        .build()
        .unwrap();
    tracker
        .track_json(SIGNUP, &json!({"email": "clear@example.com"}))
        .unwrap();
    tracker.flush(T).unwrap();
    let body = serde_json::to_string(&transport.batches()[0].events[0]).unwrap();
    assert!(body.contains("clear@example.com"));
}

/// The growth of sealing is accounted in the queue's and the spool's bytes: thousands of
/// sealed events (some over the per-event limit once sealed) through a small queue and a
/// small spool cap never refuse for lack of room that is not really taken, and every event
/// is settled exactly once, counted.
#[test]
fn sealing_growth_never_leaks_queue_or_spool_room_and_oversized_ones_are_counted() {
    let key = PrivateKey::generate().public_key().clone();
    for spooled in [false, true] {
        let transport = MemoryTransport::new();
        let dir = tempfile::tempdir().unwrap();
        let (failures_tx, failures) = std::sync::mpsc::channel();
        let mut b = builder(&transport)
            .pii_public_key(key.clone())
            .pii_marks(MARKS)
            .max_event_bytes(2_000)
            .max_queue_bytes(64 * 1024)
            .on_failure(move |reason, events| {
                let _ = failures_tx.send((reason.clone(), events.len()));
            });
        if spooled {
            b = b.spool(dir.path()).spool_max_bytes(64 * 1024);
        }
        let tracker = b.build().unwrap();
        let mut tracked = 0u64;
        let mut oversized = 0u64;
        for i in 0..3_000u64 {
            // Every 100th: 1,400 bytes of email, under the limit in clear, over it sealed.
            let email = if i % 100 == 99 {
                oversized += 1;
                "e".repeat(1_400)
            } else {
                format!("user{i}@example.com")
            };
            match tracker.track_json(SIGNUP, &json!({"email": email, "phones": ["+1 555"]})) {
                Ok(_) => tracked += 1,
                Err(e) => panic!("event {i} (spool: {spooled}) refused: {e}"),
            }
            if i % 40 == 39 {
                tracker.flush(T).unwrap();
            }
        }
        tracker.flush(T).unwrap();
        let s = tracker.stats();
        assert_eq!(s.tracked, tracked);
        assert_eq!(s.dropped(DropReason::TooLarge), oversized, "{s:?}");
        assert_eq!(s.sent, tracked - oversized, "{s:?}");
        assert_eq!(s.pending, 0);
        let told: usize = failures
            .try_iter()
            .map(|(reason, n)| {
                assert_eq!(
                    reason,
                    eventwire::FailureReason::Dropped(DropReason::TooLarge)
                );
                n
            })
            .sum();
        assert_eq!(told as u64, oversized);
        tracker.shutdown(T).unwrap();
    }
}

#[test]
fn marks_read_from_schemas_and_a_mark_that_would_seal_nothing_fails_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, properties: Value| {
        let path = dir.path().join(format!("com.example/{name}/jsonschema"));
        std::fs::create_dir_all(&path).unwrap();
        let schema = json!({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": {"vendor": "com.example", "name": name, "format": "jsonschema", "version": "1-0-0"},
            "type": "object",
            "properties": properties,
        });
        std::fs::write(path.join("1-0-0"), schema.to_string()).unwrap();
    };
    write(
        "signup",
        json!({"email": {"type": "string", "x-pii": true}}),
    );
    let transport = MemoryTransport::new();
    let tracker = builder(&transport).pii_schemas(dir.path()).build().unwrap();
    assert!(matches!(
        tracker.track_json(SIGNUP, &json!({"email": "a@b.c"})),
        Err(TrackError::PiiWithoutKey { .. })
    ));
    write("bad", json!({"email": {"type": "string", "x-pii": "yes"}}));
    match builder(&transport).pii_schemas(dir.path()).build() {
        Err(BuildError::Pii(message)) => assert!(message.contains("bad"), "{message}"),
        other => panic!("expected a build error, got {other:?}"),
    }
    match builder(&transport)
        .pii_schemas(dir.path().join("missing"))
        .build()
    {
        Err(BuildError::Pii(_)) => {}
        other => panic!("expected a build error, got {other:?}"),
    }
}

/// Sealing grows a value by about a third: one that a collector would refuse as a string
/// over its limit once sealed is dropped as `too_large` (counted, reported), not sent.
#[test]
fn a_value_over_the_string_limit_once_sealed_is_dropped_as_too_large() {
    let transport = MemoryTransport::new();
    let (told_tx, told) = std::sync::mpsc::channel();
    let tracker = builder(&transport)
        .pii_public_key(PrivateKey::generate().public_key().clone())
        .pii_marks(MARKS)
        .on_failure(move |reason, events| {
            let _ = told_tx.send((reason.clone(), events.len()));
        })
        .build()
        .unwrap();
    let long = "e".repeat(50_000);
    tracker.track_json(SIGNUP, &json!({"email": long})).unwrap();
    tracker
        .track_json(SIGNUP, &json!({"email": "short@example.com"}))
        .unwrap();
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.sent, s.dropped(DropReason::TooLarge)), (1, 1), "{s:?}");
    assert_eq!(
        told.try_iter().collect::<Vec<_>>(),
        [(eventwire::FailureReason::Dropped(DropReason::TooLarge), 1)]
    );
}
