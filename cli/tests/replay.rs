//! `eventwire replay`: a schema published late. 1,000 events were dead-lettered as
//! `unknown_schema` (and 10 of them are invalid besides); the schema is added; a dry run says
//! which would now pass; the replay stores the 1,000 with their own ids and creation times,
//! once; a second replay stores nothing again; the 10 stay dead letters with their new
//! reason; a raw dead letter is reported, not guessed at.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::HashSet;
use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventwire, repo};
use serde_json::{json, Value};

const SEARCH: &str = "iglu:com.example.web/search/jsonschema/1-0-0";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A collector on `registry`, writing to `dir`'s good.jsonl and bad.jsonl.
fn collector(dir: &Path, registry: &Path) -> (Child, String) {
    let listen = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let mut child = eventwire()
        .args(["collect", "--listen", &listen, "--schemas"])
        .arg(registry)
        .arg("--good")
        .arg(dir.join("good.jsonl"))
        .arg("--bad")
        .arg(dir.join("bad.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "the collector exited");
        assert!(started.elapsed() < Duration::from_secs(10), "no collector");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, format!("http://{listen}"))
}

fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("stopped:"), "{stderr}");
}

fn replay(args: &[&str]) -> (Option<i32>, String, String) {
    let out = eventwire().arg("replay").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn post(endpoint: &str, body: &[u8]) -> u16 {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    use std::io::Write as _;
    write!(
        s,
        "POST /v1/batch HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_schema_published_late_its_dead_letters_replayed_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The registry before the schema was published.
    let registry = d.join("schemas");
    copy_dir(&repo().join("schemas"), &registry);
    std::fs::remove_dir_all(registry.join("com.example.web/search")).unwrap();

    let (c, endpoint) = collector(d, &registry);
    // 1,000 searches, and 10 more without the required results_count; sent in batches of
    // 101, each event with its own id and creation time.
    let mut sent = Vec::new();
    for b in 0..10 {
        let events: Vec<Value> = (0..101)
            .map(|i| {
                let n = b * 101 + i;
                let mut data = json!({ "query": format!("q{n}"), "results_count": n });
                if i == 100 {
                    data.as_object_mut().unwrap().remove("results_count");
                }
                json!({
                    "event_id": uuid::Uuid::now_v7().to_string(),
                    "schema": SEARCH,
                    "data": data,
                    "created_at": format!("2026-11-30T10:{:02}:{:02}.{:03}Z", n / 60 % 60, n % 60, n % 1000),
                    "context": { "library": { "name": "test", "version": "0" }, "anonymous_id": "a" }
                })
            })
            .collect();
        sent.extend(events.iter().cloned());
        let body = json!({ "sent_at": "2026-11-30T11:00:00.000Z", "events": events });
        assert_eq!(post(&endpoint, body.to_string().as_bytes()), 200);
    }
    // And a body that never parsed: a raw dead letter.
    assert_eq!(post(&endpoint, b"{\"events\": [not json"), 400);
    stop(c);
    let bad = d.join("bad.jsonl");
    let dead = lines(&bad);
    assert_eq!(dead.len(), 1011);
    assert_eq!(
        dead.iter()
            .filter(|l| l["code"] == "unknown_schema")
            .count(),
        1010
    );
    assert!(lines(&d.join("good.jsonl")).is_empty());
    let bad_text = bad.to_str().unwrap();

    // A dry run on the old registry: nothing would pass.
    let (code, out, _) = replay(&[
        "--dry-run",
        "--registry",
        registry.to_str().unwrap(),
        bad_text,
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("still refused: 1010") && out.contains("unknown_schema: 1010"),
        "{out}"
    );

    // The schema is published.
    copy_dir(
        &repo().join("schemas/com.example.web/search"),
        &registry.join("com.example.web/search"),
    );
    let (code, out, _) = replay(&[
        "--dry-run",
        "--registry",
        registry.to_str().unwrap(),
        bad_text,
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("would pass:     1000"), "{out}");
    assert!(out.contains("schema_invalid: 10"), "{out}");
    assert!(
        out.contains("/data (required)"),
        "the reasons are shown: {out}"
    );
    assert!(
        lines(&d.join("good.jsonl")).is_empty(),
        "a dry run sends nothing"
    );

    // Filters: only schema_invalid dead letters (there are none).
    let (code, out, _) = replay(&[
        "--endpoint",
        "http://127.0.0.1:9",
        "--code",
        "schema_invalid",
        bad_text,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("left out by filter: 1010") && out.contains("sent:              0"),
        "{out}"
    );

    let (c, endpoint) = collector(d, &registry);
    let (code, out, err) = replay(&[
        "--endpoint",
        &endpoint,
        "--schema",
        "com.example.web/search",
        bad_text,
    ]);
    assert_eq!(code, Some(1), "10 still refused\n{out}\n{err}");
    assert!(out.contains("raw dead letter (malformed)"), "{out}");
    assert!(out.contains("stored:         1000"), "{out}");
    assert!(out.contains("schema_invalid: 10"), "{out}");
    let good = lines(&d.join("good.jsonl"));
    assert_eq!(good.len(), 1000);
    // Each with its own id and creation time.
    let by_id: std::collections::HashMap<&str, &Value> = sent
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap(), e))
        .collect();
    for e in &good {
        let original = by_id[e["event_id"].as_str().unwrap()];
        assert_eq!(e["created_at"], original["created_at"]);
        assert_eq!(e["data"], original["data"]);
    }

    // Again: nothing is stored twice, the 10 are refused again.
    let (code, out, _) = replay(&["--endpoint", &endpoint, bad_text]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("already stored: 1000"), "{out}");
    stop(c);
    let good = lines(&d.join("good.jsonl"));
    assert_eq!(good.len(), 1000);
    let ids: HashSet<&str> = good
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1000);
    // The 10 are dead letters with their new reason.
    let new_reasons = lines(&bad)
        .into_iter()
        .filter(|l| l["code"] == "schema_invalid")
        .count();
    assert!(new_reasons >= 10, "{new_reasons}");
}

/// What the breaker found: a pipe was read as empty and the run said success; a bad
/// `--endpoint` was retried for minutes; a filter that cannot match selected nothing and
/// exited 0; a missing second file stopped the replay half way.
#[test]
fn pipes_are_read_and_wrong_arguments_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let event = json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "schema": SEARCH,
        "data": { "query": "q", "results_count": 1 },
        "created_at": "2026-11-30T10:00:00.000Z",
        "context": { "library": { "name": "test", "version": "0" }, "anonymous_id": "a" }
    });
    let dead = json!({ "received_at": "2026-11-30T10:00:01.000Z", "code": "unknown_schema", "errors": [], "event": event });
    std::fs::write(&bad, format!("{dead}\n")).unwrap();
    let registry = repo().join("schemas");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat '{}' | '{}' replay --dry-run --registry '{}' /dev/stdin",
            bad.display(),
            env!("CARGO_BIN_EXE_eventwire"),
            registry.display()
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("would pass:     1"), "{stdout}");

    let bad_text = bad.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--endpoint", "collector:8080", bad_text],
            "is not an http(s) URL",
        ),
        (
            vec!["--dry-run", "--code", "unknown-schema", bad_text],
            "is not a dead-letter code",
        ),
        (
            vec![
                "--dry-run",
                "--schema",
                "iglu:com.example.web/search",
                bad_text,
            ],
            "give a whole URI",
        ),
        (
            vec!["--dry-run", "--since", "1h", "--until", "2h", bad_text],
            "--since is not before --until",
        ),
        (
            vec!["--dry-run", bad_text, "/no/such/file.jsonl"],
            "cannot open /no/such/file.jsonl",
        ),
    ] {
        let (code, out, err) = replay(&args);
        assert_eq!(code, Some(2), "{args:?}\n{out}\n{err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!out.contains("would pass"), "nothing was checked: {out}");
    }
}
