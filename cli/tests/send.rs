//! `eventwire send` as a user runs it: a JSONL file with good and bad lines, a collector on
//! loopback that dead-letters one event. Bad lines are reported with their line numbers and
//! do not stop the rest; the summary and the exit status tell what happened.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::process::Command;

use eventwire::protocol::{BatchResponse, Rejection};
use eventwire_testkit::{Collector, Step};
use serde_json::{json, Value};

/// A loopback collector stand-in: records events, rejects those whose data has `"bad": true`.
fn start_collector() -> Collector {
    Collector::scripted(|_, batch| {
        let rejected: Vec<Rejection> = batch
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.data["bad"] == json!(true))
            .map(|(index, e)| Rejection {
                index,
                event_id: Some(e.event_id.to_string()),
                code: "schema_invalid".into(),
            })
            .collect();
        let answer = BatchResponse {
            accepted: (batch.events.len() - rejected.len()) as u64,
            duplicates: 0,
            rejected,
        };
        Step::Answer(200, vec![], Some(answer))
    })
}

/// Every event the collector received, as JSON.
fn received(collector: &Collector) -> Vec<Value> {
    collector
        .seen()
        .iter()
        .flat_map(|s| &s.batch.events)
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

#[test]
fn sends_good_lines_reports_bad_ones_and_summarises() {
    let collector = start_collector();
    let endpoint = collector.endpoint();
    let dir = std::env::temp_dir().join(format!("eventwire-send-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    let mut text = String::new();
    for i in 0..25 {
        text.push_str(
            &json!({"schema": "iglu:com.example/click/jsonschema/1-0-0", "data": {"n": i}})
                .to_string(),
        );
        text.push('\n');
    }
    text.push_str("{not json\n"); // line 26
    text.push_str(r#"{"data": {}}"#); // line 27: no schema
    text.push('\n');
    text.push_str(r#"{"schema": "iglu:../x/jsonschema/1-0-0", "data": {}}"#); // line 28
    text.push('\n');
    text.push('\n'); // line 29: blank, ignored
    text.push_str(
        &json!({"schema": "iglu:com.example/click/jsonschema/1-0-0", "data": {"bad": true},
        "entities": [{"schema": "iglu:com.example/ctx/jsonschema/1-0-0", "data": {"k": 1}}]})
        .to_string(),
    ); // line 30
    text.push('\n');
    std::fs::write(&file, text).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_eventwire"))
        .args(["send", "--endpoint", &endpoint, "--environment", "test"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad lines make the exit status 1\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("line 26: "), "{stderr}");
    assert!(
        stderr.contains("line 27: ") && stderr.contains("missing field `schema`"),
        "{stderr}"
    );
    assert!(stderr.contains("line 28: invalid schema URI"), "{stderr}");
    assert!(!stderr.contains("line 29"), "{stderr}");
    assert!(stdout.contains("lines read:   30"), "{stdout}");
    assert!(stdout.contains("bad lines:    3"), "{stdout}");
    assert!(stdout.contains("tracked:      26"), "{stdout}");
    assert!(stdout.contains("sent:         25 "), "{stdout}");
    assert!(
        stdout.contains("rejected:     1\n  schema_invalid: 1"),
        "{stdout}"
    );
    assert!(stdout.contains("dropped:      0"), "{stdout}");

    let events = received(&collector);
    assert_eq!(events.len(), 26);
    assert!(events
        .iter()
        .all(|e| e["context"]["labels"]["environment"] == "test"));
    assert_eq!(events[25]["entities"][0]["data"]["k"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_file_is_a_clear_error_with_status_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_eventwire"))
        .args([
            "send",
            "--endpoint",
            "http://127.0.0.1:9",
            "/nonexistent/events.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/events.jsonl"));
}

/// A web server where the collector should be: `/v1/batch` answers `status` with a
/// `Location` to `/welcome`, which (like anything else) answers 200 with a page.
fn start_redirector(status: u16) -> Collector {
    Collector::scripted(move |_, _| Step::Raw(status, vec![("location", "/welcome".into())], ""))
}

/// An endpoint that redirects (an `http://` URL behind an https redirect, a mistyped URL
/// landing on a web site) is not a collector: nothing counts as sent, every event is
/// reported dropped as `not_a_collector`, the endpoint is named, and the exit status is 1.
#[test]
fn a_redirecting_endpoint_is_not_delivery() {
    let dir = std::env::temp_dir().join(format!("eventwire-send-redirect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    let line = json!({"schema": "iglu:com.example/click/jsonschema/1-0-0", "data": {"n": 1}});
    std::fs::write(&file, format!("{line}\n{line}\n{line}\n")).unwrap();
    for status in [301u16, 302, 307, 308] {
        let redirector = start_redirector(status);
        let endpoint = redirector.endpoint();
        let out = Command::new(env!("CARGO_BIN_EXE_eventwire"))
            .args(["send", "--endpoint", &endpoint])
            .arg(&file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{status}\n{stdout}\n{stderr}");
        assert!(stdout.contains("sent:         0 "), "{status}: {stdout}");
        assert!(
            stdout.contains("dropped:      3\n  not_a_collector: 3"),
            "{status}: {stdout}"
        );
        assert!(
            stderr.contains(&format!("{endpoint}/v1/batch"))
                && stderr.contains("did not answer as an eventwire collector"),
            "{status}: the endpoint is named: {stderr}"
        );
        assert_eq!(
            redirector.strays(),
            vec![],
            "{status}: the redirect was followed"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A marked event with the marks known (`--schemas`) and no key: refused at its line, in the
/// command's own terms (the flag to give), nothing sent, status 1.
#[test]
fn a_marked_event_without_a_key_names_the_flag() {
    let dir = std::env::temp_dir().join(format!("eventwire-send-pii-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    std::fs::write(
        &events,
        r#"{"schema": "iglu:com.example.shop/customer/jsonschema/1-0-0", "data": {"customer_id": "C-1234", "email": "nokey@example.com"}}"#,
    )
    .unwrap();
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let out = Command::new(env!("CARGO_BIN_EXE_eventwire"))
        .args(["send", "--endpoint", "http://127.0.0.1:9", "--schemas"])
        .arg(&schemas)
        .arg(&events)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("line 1: iglu:com.example.shop/customer/jsonschema/1-0-0 has personal data")
            && stderr.contains("--pii-public-key FILE")
            && !stderr.contains("nokey@example.com"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
