//! `eventwire collect` as operators run it: a settings file with flags and variables over
//! it, Kafka options checked at start, secrets never printed, and a clean stop on SIGTERM
//! or SIGINT under load (a second signal stops at once).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::eventwire;
use serde_json::{json, Value};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded) until something listens on `addr`.
fn wait_listening(addr: &str, child: &mut Child) {
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .as_mut()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("the collector exited ({status}): {stderr}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the collector did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    assert!(Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// Waits for `child` to exit, at most `limit`; its status and stderr.
fn exit_within(child: &mut Child, limit: Duration) -> (Option<i32>, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the collector did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .as_mut()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

fn collect(dir: &Path, args: &[&str]) -> Command {
    let mut c = eventwire();
    c.arg("collect")
        .arg("--good")
        .arg(dir.join("good.jsonl"))
        .arg("--bad")
        .arg(dir.join("bad.jsonl"))
        .args(args)
        .env_remove("EVENTWIRE_LISTEN")
        .env_remove("EVENTWIRE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn search(i: usize) -> Value {
    json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "schema": "iglu:com.example.web/search/jsonschema/1-0-0",
        "data": { "query": format!("q{i}"), "results_count": i },
        "created_at": "2026-12-01T03:10:25.001Z",
        "context": { "library": { "name": "test", "version": "0" }, "anonymous_id": "a" }
    })
}

fn ids_in(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}"));
            v["event_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Errors in the settings file name the file, the line and the key, before anything
/// starts; the variables override the file and the flags override the variables.
#[test]
fn the_settings_file_is_checked_and_flags_and_variables_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("collector.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\n\n# a typo\nmax_in_flight_request = 5\n",
    )
    .unwrap();
    let out = collect(dir.path(), &["--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("collector.toml:4:1: unknown field `max_in_flight_request`"),
        "{stderr}"
    );
    std::fs::write(&file, "[kafka]\n\"linger.ms\" = [5]\n").unwrap();
    let out = collect(dir.path(), &["--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("collector.toml:2:15: kafka.linger.ms: invalid type: sequence"),
        "{stderr}"
    );

    // The file says one port, the variable another: the variable wins; a flag beats both.
    let (from_file, from_env, from_flag) = (free_port(), free_port(), free_port());
    std::fs::write(
        &file,
        format!("listen = \"127.0.0.1:{from_file}\"\nschemas = \"schemas\"\n"),
    )
    .unwrap();
    for (flag, env, want) in [
        (None, None, from_file),
        (None, Some(from_env), from_env),
        (Some(from_flag), Some(from_env), from_flag),
    ] {
        let mut c = collect(dir.path(), &["--config"]);
        c.arg(&file);
        if let Some(port) = env {
            c.env("EVENTWIRE_LISTEN", format!("127.0.0.1:{port}"));
        }
        if let Some(port) = flag {
            c.args(["--listen", &format!("127.0.0.1:{port}")]);
        }
        let mut child = c.spawn().unwrap();
        let addr = format!("127.0.0.1:{want}");
        wait_listening(&addr, &mut child);
        signal(&child, "TERM");
        let (code, stderr) = exit_within(&mut child, Duration::from_secs(10));
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains(&format!("eventwire collector on http://{addr}")),
            "{stderr}"
        );
    }
}

/// A property librdkafka does not know stops the collector at start, naming it; a secret
/// read from the environment is never printed, not even in debug logs.
#[test]
fn kafka_options_are_checked_at_start_and_secrets_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = eventwire()
        .args(["collect", "--good", "kafka://127.0.0.1:1/events"])
        .arg("--bad")
        .arg(dir.path().join("bad.jsonl"))
        .args(["--kafka-option", "securty.protocol=ssl"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        stderr.contains("kafka option securty.protocol: No such configuration property"),
        "{stderr}"
    );

    // A literal secret on the command line is refused (it would show in `ps`).
    let out = eventwire()
        .args(["collect", "--kafka-secret", "sasl.password=hunter2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("hunter2") && stderr.contains("env:"),
        "{stderr}"
    );

    // A secret from the environment, a broker that never answers, debug logs: the secret
    // is nowhere on stderr.
    let secret = "pw-7f3a9c-never-printed";
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = eventwire()
        .args(["collect", "--listen", &listen, "--log", "debug"])
        .args(["--good", "kafka://127.0.0.1:1/events"])
        .arg("--bad")
        .arg(dir.path().join("bad.jsonl"))
        .args(["--kafka-option", "security.protocol=sasl_plaintext"])
        .args(["--kafka-option", "sasl.mechanism=PLAIN"])
        .args(["--kafka-option", "sasl.username=collector"])
        .args(["--kafka-option", "message.timeout.ms=1000"])
        .args(["--kafka-secret", "sasl.password=env:TEST_KAFKA_PASSWORD"])
        .env("TEST_KAFKA_PASSWORD", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(&listen, &mut child);
    let body = json!({ "sent_at": "2026-12-01T03:10:26.123Z", "events": [search(1)] });
    let (status, _) = post(&listen, &body.to_string(), true).unwrap();
    assert_eq!(status, 503, "the broker is unreachable");
    signal(&child, "TERM");
    let (code, stderr) = exit_within(&mut child, Duration::from_secs(40));
    assert!(!stderr.contains(secret), "{stderr}");
    // The options are logged, the secret as ***.
    assert!(
        stderr.contains(r#""sasl.password": "***""#)
            && stderr.contains(r#""sasl.username": "collector""#),
        "{stderr}"
    );
    assert_eq!(code, Some(0), "{stderr}");
}

/// One HTTP/1.1 POST of `body` to `/v1/batch` on a fresh connection: the status and body,
/// or the I/O error (refused, reset) when there was no answer.
fn post(addr: &str, body: &str, close: bool) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST /v1/batch HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "connection: close\r\n" } else { "" }
    )?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no answer: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// What a client saw of one request.
struct Sent {
    ids: Vec<String>,
    started: Instant,
    ended: Instant,
    outcome: Result<(u16, String), String>,
}

/// SIGTERM while 12 clients post batches as fast as they can: the collector stops taking
/// connections, answers what it had, and exits 0. Every event of a request answered 200 is
/// in the sink, once, whole; a request answered otherwise or not at all was not
/// acknowledged; the clients' later requests are refused at once, none hangs.
#[test]
fn sigterm_under_load_answers_what_is_in_flight_and_loses_nothing_answered() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = collect(
        dir.path(),
        &["--listen", &listen, "--shutdown-timeout", "20s"],
    )
    .spawn()
    .unwrap();
    wait_listening(&listen, &mut child);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..12)
        .map(|c| {
            let (listen, stop) = (listen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut sent = Vec::new();
                let until = Instant::now() + Duration::from_secs(30);
                for round in 0.. {
                    let events: Vec<Value> =
                        (0..20).map(|i| search(c * 1000 + round + i)).collect();
                    let ids = events
                        .iter()
                        .map(|e| e["event_id"].as_str().unwrap().to_owned())
                        .collect();
                    let body = json!({ "sent_at": "2026-12-01T03:10:26.123Z", "events": events });
                    let started = Instant::now();
                    // Half on keep-alive-capable requests, half closing: both kinds of
                    // connection meet the shutdown.
                    let outcome =
                        post(&listen, &body.to_string(), round % 2 == 0).map_err(|e| e.to_string());
                    let refused = outcome.is_err();
                    sent.push(Sent {
                        ids,
                        started,
                        ended: Instant::now(),
                        outcome,
                    });
                    if (refused && stop.load(Ordering::SeqCst)) || Instant::now() > until {
                        break;
                    }
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    let signalled = Instant::now();
    signal(&child, "TERM");
    let (code, stderr) = exit_within(&mut child, Duration::from_secs(25));
    let exited = Instant::now();
    let sent: Vec<Sent> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM: stopping"), "{stderr}");

    let stored = ids_in(&dir.path().join("good.jsonl"));
    let unique: std::collections::HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "an event stored twice");
    let mut answered = 0;
    let mut answered_across_the_signal = 0;
    let mut unanswered = 0;
    for s in &sent {
        match &s.outcome {
            Ok((200, body)) => {
                let answer: Value = serde_json::from_str(body).unwrap();
                assert_eq!(answer["accepted"], 20, "{body}");
                for id in &s.ids {
                    assert!(unique.contains(id), "answered 200 but not stored: {id}");
                }
                answered += 1;
                if s.started < signalled && s.ended > signalled {
                    answered_across_the_signal += 1;
                }
            }
            Ok((status, body)) => panic!("answered {status}, not 200: {body}"),
            Err(_) => {
                // Refused (the port was closed) or cut: not acknowledged. A request must not
                // end this way before the signal.
                assert!(s.ended > signalled, "a request failed before the signal");
                unanswered += 1;
            }
        }
    }
    let sent_ids: std::collections::HashSet<&String> = sent.iter().flat_map(|s| &s.ids).collect();
    assert!(stored.iter().all(|id| sent_ids.contains(id)));
    assert!(answered > 50, "too little load: {answered} answered");
    assert!(
        answered_across_the_signal > 0,
        "no request was in flight at the signal ({answered} answered)"
    );
    assert!(unanswered >= 12, "every client ends refused: {unanswered}");
    // Refusals come at once: no client waited for a timeout.
    for s in &sent {
        assert!(s.ended <= exited + Duration::from_secs(2));
    }
    eprintln!(
        "{answered} requests answered ({answered_across_the_signal} across the signal), {unanswered} refused; stopped in {:?}",
        exited - signalled
    );
}

/// A request whose body trickles in holds the shutdown; a second SIGINT stops at once
/// (status 130), and a shutdown that runs out of time cuts the request and says so.
#[test]
fn a_second_signal_stops_at_once_and_a_late_request_is_cut_at_the_timeout() {
    for (second_signal, timeout) in [(true, "20s"), (false, "1s")] {
        let dir = tempfile::tempdir().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let mut child = collect(
            dir.path(),
            &["--listen", &listen, "--shutdown-timeout", timeout],
        )
        .spawn()
        .unwrap();
        wait_listening(&listen, &mut child);
        let mut slow = TcpStream::connect(&listen).unwrap();
        write!(
            slow,
            "POST /v1/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"events\":["
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        signal(&child, "INT");
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "it waits for the request under way"
        );
        let signalled = Instant::now();
        if second_signal {
            signal(&child, "INT");
        }
        let (code, stderr) = exit_within(&mut child, Duration::from_secs(5));
        if second_signal {
            assert_eq!(code, Some(130), "{stderr}");
            assert!(
                stderr.contains("SIGINT, a second signal: stopping at once"),
                "{stderr}"
            );
            assert!(signalled.elapsed() < Duration::from_secs(2));
        } else {
            assert_eq!(code, Some(2), "{stderr}");
            assert!(
                stderr.contains("1 connections still had requests under way after 1 s"),
                "{stderr}"
            );
        }
        // The cut request was not answered 200.
        let mut answer = String::new();
        let _ = slow.read_to_string(&mut answer);
        assert!(!answer.contains(" 200 "), "{answer}");
    }
}

/// A test waiting on the dev store does not hold the shutdown: it is answered 503 at once.
#[test]
fn dev_waits_end_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = collect(dir.path(), &["--listen", &listen, "--dev"])
        .spawn()
        .unwrap();
    wait_listening(&listen, &mut child);
    let waiter = {
        let listen = listen.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&listen).unwrap();
            write!(
                s,
                "GET /v1/events/wait?schema=iglu:x/y/jsonschema/1-0-0&timeout=60s HTTP/1.1\r\nhost: x\r\n\r\n"
            )
            .unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    signal(&child, "TERM");
    let (code, stderr) = exit_within(&mut child, Duration::from_secs(5));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(signalled.elapsed() < Duration::from_secs(3));
    let answer = waiter.join().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("shutting down"),
        "{answer}"
    );
}

/// What the breaker found: an empty write key (a stray comma, an empty variable) let
/// anyone in; a key with a comma given as a flag was split; process printed a Kafka secret
/// librdkafka refused; a secret given without `KEY=` was echoed; a misspelt Kafka property
/// passed when no sink was Kafka; a device as a sink failed every clean stop; a huge bound
/// panicked.
#[test]
fn refusals_at_start_say_what_and_never_echo_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |c: &mut Command, says: &str, never: &str| {
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "says {says:?}: {stderr}");
        assert!(never.is_empty() || !stderr.contains(never), "{stderr}");
    };
    refused(
        collect(dir.path(), &[]).env("EVENTWIRE_WRITE_KEYS", "k1,"),
        "a write key is empty",
        "",
    );
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "write_keys = [\"file-key\"]\n").unwrap();
    refused(
        collect(dir.path(), &["--config"])
            .arg(&file)
            .env("EVENTWIRE_WRITE_KEYS", ""),
        "a write key is empty",
        "",
    );
    refused(
        eventwire().args(["collect", "--kafka-secret", "hunter2-alone"]),
        "expected KEY=VALUE",
        "hunter2",
    );
    refused(
        &mut collect(dir.path(), &["--kafka-option", "securty.protocol=ssl"]),
        "kafka option securty.protocol: No such configuration property",
        "",
    );
    refused(
        &mut collect(
            dir.path(),
            &["--kafka-option", "topic.partitioner=consistent_random"],
        ),
        "kafka option topic.partitioner=consistent_random",
        "",
    );
    refused(
        &mut collect(
            dir.path(),
            &["--max-in-flight-requests", "9223372036854775807"],
        ),
        "must be from 1 to 1000000",
        "",
    );
    refused(
        collect(dir.path(), &["--kafka-secret", "acks=env:TEST_WEAK_ACKS"])
            .env("TEST_WEAK_ACKS", "1-secret"),
        "kafka option acks=***",
        "1-secret",
    );
    let out = eventwire()
        .args(["process", "--brokers", "127.0.0.1:1", "--input", "events"])
        .args(["--kafka-secret", "sasl.jaas.config=env:TEST_JAAS"])
        .env("TEST_JAAS", "jaas-7c1e-never-printed")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("sasl.jaas.config"), "{stderr}");
    assert!(!stderr.contains("jaas-7c1e-never-printed"), "{stderr}");

    // A key given as a flag is taken whole, commas and all.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = collect(dir.path(), &["--listen", &listen, "--write-key", "a,b"])
        .spawn()
        .unwrap();
    wait_listening(&listen, &mut child);
    let body = json!({ "sent_at": "2026-12-01T03:10:26.123Z", "events": [search(1)] }).to_string();
    let status = |key: &str| {
        let mut s = TcpStream::connect(&listen).unwrap();
        write!(
            s,
            "POST /v1/batch HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer.split(' ').nth(1).unwrap().to_owned()
    };
    assert_eq!(status("a"), "401");
    assert_eq!(status("a,b"), "200");
    signal(&child, "TERM");
    let (code, stderr) = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");

    // A device as the dead-letter sink: nothing to sync, a clean stop.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = eventwire()
        .args([
            "collect",
            "--listen",
            &listen,
            "--bad",
            "/dev/null",
            "--good",
        ])
        .arg(dir.path().join("good2.jsonl"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(&listen, &mut child);
    signal(&child, "TERM");
    let (code, stderr) = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
}
