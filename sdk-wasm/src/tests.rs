#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use super::*;
use serde_json::Value;

const PLAY: &str = "iglu:com.example.media/play/jsonschema/1-0-0";

fn core() -> Core {
    Core::new(
        "\"labels\":{\"environment\":\"test\"},\"library\":{\"name\":\"eventwire-js\",\"version\":\"0.1.0\"}\0key-1\0anon-1\0\u{0}12648430",
        0.0,
        1_800_000.0,
        3,
        1_048_576,
        1_000.0,
        100,
        1_000_000, 0)
}

fn group(events: &[(&str, &str, &str, u64)]) -> String {
    let mut out = String::new();
    for (schema, data, entities, t) in events {
        if !out.is_empty() {
            out.push('\0');
        }
        out.push_str(&format!("{schema}\0{data}\0{entities}\0{t}"));
    }
    out
}

fn body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Tracks `n` empty play events at times 1, 2, …; returns how many were queued.
fn add_plays(core: &mut Core, n: u64) -> u32 {
    let events: Vec<(&str, &str, &str, u64)> = (1..=n).map(|t| (PLAY, "{}", "", t)).collect();
    core.add(&group(&events), 0.0)
}

/// The names of `core.stats()`'s values, in order.
fn stat_names() -> Vec<String> {
    STATS
        .iter()
        .map(|n| (*n).to_owned())
        .chain(
            DropReason::ALL
                .iter()
                .map(|r| format!("dropped_{}", r.as_str())),
        )
        .collect()
}

/// The named counters of `core.stats()`.
fn stats(core: &Core, names: &[&str]) -> Vec<u64> {
    let values: Vec<u64> = core
        .stats()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let all = stat_names();
    assert_eq!(values.len(), all.len());
    names
        .iter()
        .map(|n| values[all.iter().position(|a| a == n).unwrap()])
        .collect()
}

#[test]
fn events_become_envelopes_in_batches_by_count_and_time() {
    let mut c = core();
    let t = 1_764_000_000_000;
    let n = c.add(
        &group(&[
            (PLAY, r#"{"media_id":"b0074dlv"}"#, "", t),
            (
                PLAY,
                "{}",
                r#"[{"schema":"iglu:a/b/jsonschema/1-0-0","data":{}}]"#,
                t + 1,
            ),
        ]),
        0.0,
    );
    assert_eq!(n, 2);
    // Two of three: not due until the delay has passed.
    assert_eq!(c.due(0.0, 0), 1_000.0);
    assert!(c.take(10.0, 0.0, 0, 0).is_empty());
    let text = c.take(1_000.0, t as f64 + 5.0, 0, 0);
    let b = body(&text);
    assert_eq!(b["write_key"], "key-1");
    assert_eq!(b["sent_at"], "2025-11-24T16:00:00.005Z");
    let events = b["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["schema"], PLAY);
    assert_eq!(events[0]["data"]["media_id"], "b0074dlv");
    assert_eq!(events[0]["created_at"], "2025-11-24T16:00:00.000Z");
    assert!(events[0].get("entities").is_none());
    assert_eq!(
        events[1]["entities"][0]["schema"],
        "iglu:a/b/jsonschema/1-0-0"
    );
    let ctx = &events[0]["context"];
    assert_eq!(ctx["labels"]["environment"], "test");
    assert_eq!(ctx["anonymous_id"], "anon-1");
    assert_eq!(ctx["session_id"], events[1]["context"]["session_id"]);
    let id0 = uuid::Uuid::parse_str(events[0]["event_id"].as_str().unwrap()).unwrap();
    assert_eq!(id0.get_version_num(), 7);
    assert_ne!(events[0]["event_id"], events[1]["event_id"]);
    // Three make a full batch: due at once.
    c.add(
        &group(&[
            (PLAY, "{}", "", t),
            (PLAY, "{}", "", t),
            (PLAY, "{}", "", t),
        ]),
        2_000.0,
    );
    assert_eq!(c.due(2_000.0, 0), 0.0);
    let id = c.batch();
    assert_eq!(c.settle(id, 200, "", 2.0, "", 0.0, 2_001.0, 0.0, 0.5), -1.0);
    assert_eq!(stats(&c, &["tracked", "sent", "pending"]), [5, 2, 3]);
}

#[test]
fn failures_retry_with_backoff_and_keep_their_events() {
    let mut c = core();
    add_plays(&mut c, 3);
    let first = c.take(0.0, 0.0, 0, 0);
    let ids: Vec<Value> = body(&first)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].clone())
        .collect();
    let wait = c.settle(c.batch(), 503, "2", -1.0, "", 0.0, 10.0, 0.0, 0.5);
    assert_eq!(wait, 2_000.0, "Retry-After is obeyed");
    assert!(c.take(500.0, 0.0, 0, 0).is_empty(), "not before the wait");
    let again = c.take(2_010.0, 99_000.0, 0, 0);
    let b = body(&again);
    let same: Vec<Value> = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].clone())
        .collect();
    assert_eq!(same, ids);
    assert_eq!(b["sent_at"], "1970-01-01T00:01:39.000Z", "fresh sent_at");
    assert!(
        c.settle(c.batch(), 0, "", -1.0, "", 0.0, 2_020.0, 0.0, 0.5) > 0.0,
        "network error: retry"
    );
    let _ = c.take(10_000.0, 0.0, 0, 0);
    assert_eq!(
        c.settle(c.batch(), 200, "", 2.0, "1", 0.0, 10_001.0, 0.0, 0.5),
        -1.0
    );
    assert_eq!(stats(&c, &["sent", "rejected"]), [2, 1]);
    assert_eq!(stats(&c, &["requests", "retries", "throttled"]), [3, 2, 1]);
}

#[test]
fn a_413_splits_and_a_lone_event_over_the_limit_is_dropped() {
    let mut c = core();
    add_plays(&mut c, 3);
    let _ = c.take(0.0, 0.0, 0, 0);
    assert_eq!(
        c.settle(c.batch(), 413, "", -1.0, "", 0.0, 1.0, 0.0, 0.5),
        0.0
    );
    let one = body(&c.take(1.0, 0.0, 0, 0));
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        c.settle(c.batch(), 413, "", -1.0, "", 0.0, 2.0, 0.0, 0.5),
        -1.0
    );
    let two = body(&c.take(2.0, 0.0, 0, 0));
    assert_eq!(two["events"].as_array().unwrap().len(), 2);
    c.settle(c.batch(), 200, "", 2.0, "", 0.0, 3.0, 0.0, 0.5);
    assert_eq!(
        stats(&c, &["sent", "dropped_too_large", "pending"]),
        [2, 1, 0]
    );
}

#[test]
fn pending_events_restore_and_page_hide_bodies_respect_the_cap() {
    let mut c = core();
    add_plays(&mut c, 2);
    let kept = c.pending();
    assert_eq!(kept.lines().count(), 2);
    let mut next = core();
    assert_eq!(next.restore(&kept, 0.0), 2);
    assert_eq!(next.pending(), kept, "the same bytes, in order");
    // A 600-byte cap fits one envelope (≈ 300 bytes) per body.
    let one = next.take(0.0, 0.0, 2, 600);
    assert_eq!(body(&one)["events"].as_array().unwrap().len(), 1);
    assert!(one.len() <= 600);
    assert_eq!(
        next.pending().lines().count(),
        2,
        "an event leaves storage only when answered for: the page-hide batch is kept"
    );
    assert_eq!(stats(&next, &["recovered"]), [2]);
}

/// The context's fixed members come as one piece from the page: with a test id it is in
/// every envelope, beside the identity the core adds, and the envelope is the protocol's.
#[test]
fn the_fixed_context_members_reach_every_envelope() {
    let mut c = Core::new(
        "\"labels\":{\"service\":\"web\"},\"library\":{\"name\":\"eventwire-js\",\"version\":\"0.1.0\"},\"test_id\":\"checkout-1\"\0\0a\0\u{0}1",
        0.0,
        1_000.0,
        1,
        1_048_576,
        1_000.0,
        100,
        1_000_000,
        0,
    );
    c.set_user("u-1");
    assert_eq!(add_plays(&mut c, 1), 1);
    let text = c.take(1_000.0, 1_764_000_000_000.0, 0, 0);
    let event = body(&text)["events"][0].clone();
    let typed: eventwire::protocol::Event = serde_json::from_value(event.clone()).unwrap();
    assert_eq!(typed.context.test_id.as_deref(), Some("checkout-1"));
    assert_eq!(typed.context.labels.service.as_deref(), Some("web"));
    assert_eq!(typed.context.user_id.as_deref(), Some("u-1"));
    assert_eq!(typed.context.anonymous_id, "a");
    assert_eq!(serde_json::to_value(&typed).unwrap(), event);
}

#[test]
fn bounds_are_counted_and_opt_out_clears() {
    let mut c = Core::new(
        "\"labels\":{},\"library\":{}\0\0a\0\u{0}1",
        0.0,
        1_000.0,
        500,
        1_048_576,
        1_000.0,
        2,
        1_000_000,
        0,
    );
    let n = add_plays(&mut c, 3);
    assert_eq!(n, 2);
    c.clear();
    assert_eq!(
        stats(&c, &["dropped_queue_full", "dropped_opted_out", "pending"]),
        [1, 2, 0]
    );
}

/// An opt-out while a request is in flight, then an opt-in before it fails: its events are
/// not stored and not sent again (a flaky Chromium test found this path).
#[test]
fn a_request_in_flight_at_an_opt_out_is_dropped_when_it_fails() {
    let mut c = Core::new(
        "\"labels\":{},\"library\":{}\0\0a\0\u{0}1",
        0.0,
        1_000.0,
        500,
        1_048_576,
        1_000.0,
        10,
        1_000_000,
        0,
    );
    assert_eq!(add_plays(&mut c, 3), 3);
    assert!(!c.take(0.0, 0.0, 1, 0).is_empty());
    let id = c.batch();
    c.clear();
    assert_eq!(
        c.pending(),
        "",
        "what is in flight at an opt-out is not stored"
    );
    assert_eq!(c.settle(id, 0, "", -1.0, "", 0.0, 10.0, 0.0, 0.5), -1.0);
    assert!(
        c.take(60_000.0, 0.0, 3, 0).is_empty(),
        "nothing to send again"
    );
    assert_eq!(stats(&c, &["dropped_opted_out", "pending"]), [3, 0]);
}

#[test]
fn sessions_continue_across_pages_and_users_are_named() {
    let mut c = Core::new(
        "\"labels\":{},\"library\":{}\0\0a\0kept-session\u{0}1",
        1_000.0,
        60_000.0,
        500,
        1_048_576,
        1_000.0,
        10,
        1_000_000,
        0,
    );
    c.set_user("u \"42\"");
    c.add(&group(&[(PLAY, "{}", "", 30_000)]), 0.0);
    let b = body(&c.take(0.0, 0.0, 2, 0));
    assert_eq!(b["events"][0]["context"]["session_id"], "kept-session");
    assert_eq!(b["events"][0]["context"]["user_id"], "u \"42\"");
    assert_eq!(c.session(), "kept-session\u{0}30000");
    c.reset("b");
    c.add(&group(&[(PLAY, "{}", "", 31_000)]), 0.0);
    let b = body(&c.take(0.0, 0.0, 2, 0));
    assert_eq!(b["events"][0]["context"]["anonymous_id"], "b");
    assert!(b["events"][0]["context"].get("user_id").is_none());
    assert_ne!(b["events"][0]["context"]["session_id"], "kept-session");
}

#[test]
fn ids_are_hyphenated_like_uuid_does_it() {
    for seed in 0..50u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes);
        let ours = text::hyphenated(&bytes);
        let theirs = uuid::Uuid::from_bytes(bytes).hyphenated().to_string();
        assert_eq!(std::str::from_utf8(&ours).unwrap(), theirs);
    }
}

/// Only a batch answer that accounts for every event settles them as sent: a redirect
/// (3xx, or the browser's opaque redirect passed as 300), another 2xx, a 200 whose body is
/// not an answer, or one whose counts do not add up is `not_a_collector`.
#[test]
fn only_a_collectors_answer_is_delivery() {
    let cases: &[(u16, f64, &str, f64, &str)] = &[
        (200, 3.0, "", 0.0, "sent"),
        (200, 1.0, "0", 1.0, "sent"),
        (200, -1.0, "", 0.0, "dropped_not_a_collector"),
        (200, 2.0, "", 0.0, "dropped_not_a_collector"),
        (200, 2.0, "5", 0.0, "dropped_not_a_collector"),
        (200, 1.0, "0,0", 0.0, "dropped_not_a_collector"),
        (200, 2.5, "", 0.0, "dropped_not_a_collector"),
        (204, -1.0, "", 0.0, "dropped_not_a_collector"),
        (300, -1.0, "", 0.0, "dropped_not_a_collector"),
        (301, -1.0, "", 0.0, "dropped_not_a_collector"),
        (308, -1.0, "", 0.0, "dropped_not_a_collector"),
        // Numbers only, whole and not negative (JavaScript passes -1 for anything else).
        (200, 3.0, "", -1.0, "dropped_not_a_collector"),
        (200, 2.0, "", 1.5, "dropped_not_a_collector"),
        (200, 1.0, "-1", 1.0, "dropped_not_a_collector"),
        (200, 2.0, "", 4_294_967_297.0, "dropped_not_a_collector"),
    ];
    for &(status, accepted, rejected, duplicates, counter) in cases {
        let mut c = core();
        add_plays(&mut c, 3);
        let _ = c.take(0.0, 0.0, 2, 0);
        let wait = c.settle(
            c.batch(),
            status,
            "",
            accepted,
            rejected,
            duplicates,
            1.0,
            0.0,
            0.5,
        );
        assert_eq!(wait, -1.0, "{status} {accepted}: settled, not retried");
        let settled = stats(&c, &[counter, "rejected", "pending"]);
        let expect = if counter == "sent" {
            let bad = rejected.split(',').filter(|i| !i.is_empty()).count() as u64;
            [3 - bad, bad, 0]
        } else {
            [3, 0, 0]
        };
        assert_eq!(
            settled, expect,
            "{status} {accepted} {rejected:?} {duplicates}"
        );
    }
}

/// A batch sent again is capped like a new one: on page hide, only the part of a failed
/// batch that fits the keepalive budget goes; the rest stays first in line.
#[test]
fn a_batch_sent_again_respects_the_cap() {
    let mut c = core();
    add_plays(&mut c, 3);
    let all = c.take(0.0, 0.0, 2, 0);
    assert_eq!(body(&all)["events"].as_array().unwrap().len(), 3);
    assert!(c.settle(c.batch(), 0, "", -1.0, "", 0.0, 1.0, 0.0, 0.5) >= 0.0);
    let cap = (all.len() / 2) as u32;
    let part = c.take(10_000.0, 0.0, 2, cap);
    let n = body(&part)["events"].as_array().unwrap().len();
    assert!(
        (1..3).contains(&n),
        "{n} events in {} bytes (cap {cap})",
        part.len()
    );
    assert!(part.len() as u32 <= cap);
    let rest = c.take(10_000.0, 0.0, 2, 0);
    assert_eq!(body(&rest)["events"].as_array().unwrap().len(), 3 - n);
    // An event that does not fit at all is left for the next body.
    assert!(c.take(10_000.0, 0.0, 2, 50).is_empty());
}

/// The package checks schema URIs in JavaScript, before the core is loaded: with the same
/// pattern as the Rust core (`IGLU_URI_PATTERN`), written shorter in index.js as a regex
/// literal (`\w` for `a-zA-Z0-9_`, `\d` for `0-9`).
#[test]
fn the_package_checks_uris_with_the_cores_pattern() {
    let js = include_str!("../npm/index.js");
    let pattern = eventwire::protocol::IGLU_URI_PATTERN
        .replace("a-zA-Z0-9_", "\\w")
        .replace("[0-9]", "\\d")
        .replace('/', "\\/");
    let literal = format!("const IGLU = /{pattern}/;");
    assert!(js.contains(&literal), "index.js must hold {literal}");
}

/// JavaScript names the core's `stats()` values with its `COUNTERS` line: the same names in
/// the same order.
#[test]
fn the_package_names_the_cores_counters() {
    let js = include_str!("../npm/index.js");
    let line = js
        .lines()
        .find(|l| l.starts_with("const COUNTERS = "))
        .expect("COUNTERS in index.js");
    let reasons: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    let expected = format!(
        "const COUNTERS = \"{} | {}\";",
        STATS.join(" "),
        reasons.join(" ")
    );
    assert_eq!(line, expected);
    assert_eq!(core().stats().split(',').count(), stat_names().len());
}

/// Limits left out by JavaScript (`undefined` arrives as 0 or NaN) take the defaults.
#[test]
fn limits_left_out_take_the_defaults() {
    let mut c = Core::new(
        "\"labels\":{},\"library\":{}\0\0a\0\u{0}1",
        0.0,
        f64::NAN,
        0,
        0,
        f64::NAN,
        0,
        0,
        0,
    );
    add_plays(&mut c, 3);
    // Not due before the default 1 s batch delay; everything queued (default bounds).
    assert_eq!(c.due(0.0, 0), 1_000.0);
    assert_eq!(stats(&c, &["tracked", "dropped_queue_full"]), [3, 0]);
}

/// An event kept by a page with larger batches is refused when adopted by one whose batches
/// cannot hold it (counted `too_large`), instead of blocking every later event.
#[test]
fn an_adopted_event_too_large_for_this_page_is_counted_not_stuck() {
    let mut big = core();
    big.add(
        &group(&[(
            PLAY,
            &format!("{{\"pad\":\"{}\"}}", "x".repeat(5_000)),
            "",
            1,
        )]),
        0.0,
    );
    add_plays(&mut big, 1);
    let kept = big.pending();
    let mut small = Core::new(
        "\"labels\":{},\"library\":{}\0\0a\0\u{0}1",
        0.0,
        60_000.0,
        10,
        2_048,
        1.0,
        100,
        1_000_000,
        0,
    );
    assert_eq!(small.restore(&kept, 0.0), 1);
    assert_eq!(
        stats(&small, &["recovered", "dropped_too_large", "pending"]),
        [2, 1, 1]
    );
    let body = small.take(10.0, 0.0, 2, 0);
    assert_eq!(body_events(&body), 1);
}

fn body_events(text: &[u8]) -> usize {
    body(text)["events"].as_array().unwrap().len()
}

/// Each browser default equals the Rust tracker's or says why not, and `index.js` holds the
/// values of the table where it keeps a default itself.
#[test]
fn the_browsers_defaults_are_the_rust_ones_or_say_why_not() {
    for d in defaults::DEFAULTS {
        match d.differs_because {
            None => assert_eq!(d.browser, d.rust, "{}: differs without a reason", d.name),
            Some(reason) => {
                assert_ne!(d.browser, d.rust, "{}: a reason for no difference", d.name);
                assert!(reason.len() > 20, "{}: name the reason", d.name);
            }
        }
    }
    let js = include_str!("../npm/index.js");
    let timeout = format!(
        "this.o.requestTimeoutMs || {}",
        defaults::DEFAULT_REQUEST_TIMEOUT_MS
    );
    assert!(js.contains(&timeout), "index.js must hold `{timeout}`");
    // Calls kept before the core is loaded are bounded like the core's queue.
    let early = format!(
        "this.o.maxQueueEvents || {:e}",
        defaults::DEFAULT_MAX_QUEUE_EVENTS as f64
    );
    assert!(js.contains(&early), "index.js must hold `{early}`");
    // A limit left out takes the table's value in the core.
    let mut c = Core::new(
        "\"labels\":{},\"library\":{}\0\0a\0\u{0}1",
        0.0,
        f64::NAN,
        0,
        0,
        f64::NAN,
        0,
        0,
        0,
    );
    for i in 0..defaults::DEFAULT_MAX_IN_FLIGHT {
        c.add(&group(&[(PLAY, "{}", "", i as u64)]), 0.0);
        assert!(
            !c.take(0.0, 0.0, 1, 0).is_empty(),
            "request {i} within the window"
        );
    }
    add_plays(&mut c, 1);
    assert!(c.take(0.0, 0.0, 1, 0).is_empty(), "the window is full");
}

#[test]
fn an_id_chosen_in_javascript_is_the_events_id_and_gives_its_time() {
    let mut c = core();
    // A UUID v7 whose first 48 bits say 5 ms after the epoch.
    let given = "00000000-0005-774b-bcce-b302099a8057";
    let times = [
        given,
        // Not 36 lowercase hex digits and hyphens: a time (0 when it is not one either).
        "00000000-0006-774B-BCCE-B302099A8057",
        "00000000-0007-774b-bcce-b302099a805\"",
        "0000000000007774bbcceb302099a8057",
        "8",
    ];
    let events: Vec<(&str, &str, &str, &str)> =
        times.iter().map(|t| (PLAY, "{}", "", *t)).collect();
    let mut text = String::new();
    for (schema, data, entities, t) in &events {
        if !text.is_empty() {
            text.push('\0');
        }
        text.push_str(&format!("{schema}\0{data}\0{entities}\0{t}"));
    }
    assert_eq!(c.add(&text, 0.0), 5);
    let mut events = Vec::new();
    for _ in 0..2 {
        let sent = body(&c.take(0.0, 0.0, 2, 0));
        events.extend(sent["events"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["event_id"], given);
    assert_eq!(events[0]["created_at"], "1970-01-01T00:00:00.005Z");
    for (e, t) in events[1..].iter().zip(["000", "000", "000", "008"]) {
        let id = e["event_id"].as_str().unwrap();
        assert_ne!(id, given);
        assert!(uuid::Uuid::try_parse(id).is_ok(), "{id}");
        assert_eq!(e["created_at"], format!("1970-01-01T00:00:00.{t}Z"));
    }
}
