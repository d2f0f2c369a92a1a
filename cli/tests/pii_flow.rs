//! Personal data end to end, as a user runs it: `pii keygen`; `send --schemas
//! --pii-public-key` to collectors writing to files (dev mode, trace-level logs) and to Kafka;
//! the same events sent by a tracker that does not know the marks (so in clear, and
//! dead-lettered as `pii_unsealed`); `pii open` on the good events. Then every byte the
//! collectors wrote or served — sinks, topics, logs, `/metrics`, the dev view — is searched
//! for the marker strings of the marked fields: none may be there.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eventwire_testkit::broker::Broker;
use eventwire_testkit::probe::http_get;
use serde_json::Value;

mod common;
use common::eventwire;

struct Collector {
    child: Child,
    listen: String,
}

impl Collector {
    fn start(good: &str, bad: &str, log: &Path) -> Collector {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = eventwire()
            .args(["collect", "--listen", &listen, "--dev", "--log", "trace"])
            .args(["--good", good, "--bad", bad])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "collector did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Collector { child, listen }
    }

    /// Sends `events`; `seal`: with the registry's marks and the public key.
    fn send(&self, events: &Path, seal: Option<&Path>) -> String {
        let mut c = eventwire();
        c.args(["send", "--endpoint", &format!("http://{}", self.listen)]);
        if let Some(key) = seal {
            c.args(["--schemas", "schemas", "--pii-public-key"])
                .arg(key);
        }
        let out = c.arg(events).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn served(&self) -> String {
        let addr = self.listen.parse().unwrap();
        let (_, metrics, _) = http_get(addr, "/metrics");
        let (_, dev, _) = http_get(addr, "/v1/events");
        format!("{metrics}\n{dev}")
    }

    fn stop(mut self) {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

fn marker(what: &str) -> String {
    format!("PIIMARK{}{what}", std::process::id())
}

/// Customer entities and events: email and name are marked in
/// `schemas/com.example.shop/customer`.
fn events(dir: &Path) -> PathBuf {
    let customer = |i: usize| {
        serde_json::json!({
            "customer_id": format!("C-{:04}", 1000 + i),
            "email": marker(&format!("email{i}@example.com")),
            "name": marker(&format!("name{i}")),
            "tier": "gold",
        })
    };
    let mut lines = String::new();
    for i in 0..20 {
        let line = if i % 2 == 0 {
            serde_json::json!({"schema": "iglu:com.example.shop/customer/jsonschema/1-0-0", "data": customer(i)})
        } else {
            serde_json::json!({
                "schema": "iglu:com.example.web/page_view/jsonschema/1-0-0",
                "data": {"url": "https://example.com/account", "title": "Account"},
                "entities": [{"schema": "iglu:com.example.shop/customer/jsonschema/1-0-0", "data": customer(i)}],
            })
        };
        lines.push_str(&format!("{line}\n"));
    }
    let path = dir.join("events.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

fn no_markers(what: &str, bytes: &[u8]) {
    let needle = marker("");
    let hits = bytes
        .windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count();
    assert_eq!(hits, 0, "{hits} marked values in clear in {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marked_fields_are_sealed_end_to_end_and_stored_nowhere_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (public, private) = (d.join("pii.pub"), d.join("pii.key"));
    let keygen = eventwire()
        .args(["pii", "keygen", "--public"])
        .arg(&public)
        .arg("--private")
        .arg(&private)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let events = events(d);

    // Files, dev mode, logs at trace level.
    let (good, bad, log) = (
        d.join("good.jsonl"),
        d.join("bad.jsonl"),
        d.join("collector.log"),
    );
    let files = Collector::start(good.to_str().unwrap(), bad.to_str().unwrap(), &log);
    let sealed = files.send(&events, Some(&public));
    assert!(sealed.contains("sent:         20 "), "{sealed}");
    // A tracker that does not know the marks sends them in clear: all refused.
    let clear = files.send(&events, None);
    assert!(clear.contains("pii_unsealed: 20"), "{clear}");
    let served = files.served();
    assert!(
        served.contains("pii_unsealed"),
        "the dev view shows the dead letters"
    );
    files.stop();

    // Kafka: good and bad topics.
    let broker = Broker::start();
    for topic in ["pii-good", "pii-bad"] {
        eventwire_testkit::kafka::create_topic(&broker.address, topic, 1).await;
    }
    let kafka_log = d.join("collector-kafka.log");
    let kafka = Collector::start(
        &format!("kafka://{}/pii-good", broker.address),
        &format!("kafka://{}/pii-bad", broker.address),
        &kafka_log,
    );
    assert!(kafka
        .send(&events, Some(&public))
        .contains("sent:         20 "));
    assert!(kafka.send(&events, None).contains("pii_unsealed: 20"));
    let kafka_served = kafka.served();
    kafka.stop();
    let address = broker.address.clone();
    let topics = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        for topic in ["pii-good", "pii-bad"] {
            let (records, _) = eventwire_testkit::kafka::read_to_end(&address, topic, 1);
            assert_eq!(records.len(), 20, "{topic}");
            for r in records {
                bytes.extend(r.payload);
                bytes.extend(r.key.into_bytes());
            }
        }
        bytes
    })
    .await
    .unwrap();

    // Not one marked value in clear anywhere.
    no_markers("the good file", &std::fs::read(&good).unwrap());
    no_markers("the dead letters", &std::fs::read(&bad).unwrap());
    no_markers("the logs (trace)", &std::fs::read(&log).unwrap());
    no_markers("/metrics and the dev view", served.as_bytes());
    no_markers("the Kafka topics", &topics);
    no_markers(
        "the Kafka collector's logs",
        &std::fs::read(&kafka_log).unwrap(),
    );
    no_markers(
        "the Kafka collector's /metrics and dev view",
        kafka_served.as_bytes(),
    );
    // The logs were written (at trace level: everything), and the dead letters are the
    // events'.
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("collector listening"));
    let dead: Vec<Value> = std::fs::read_to_string(&bad)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 20);
    assert!(dead.iter().all(|d| d["code"] == "pii_unsealed"));

    // The private key opens every sealed field, and the opened events are valid.
    let opened = eventwire()
        .args(["pii", "open", "--private-key"])
        .arg(&private)
        .arg(&good)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&opened.stderr);
    assert!(opened.status.success(), "{stderr}");
    let text = String::from_utf8_lossy(&opened.stdout);
    for i in 0..20 {
        assert!(
            text.contains(&marker(&format!("email{i}@example.com"))),
            "email {i}"
        );
        assert!(text.contains(&marker(&format!("name{i}"))), "name {i}");
    }
}
