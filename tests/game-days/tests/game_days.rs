//! Game days. Each scenario runs a real collector process and a real tracker process with a
//! fault-injecting proxy between them (the tracker with a spool, as a deployment that must
//! not lose events runs it; scenario 8 without, where drops are allowed but counted), then
//! checks that every event the tracker accepted is
//! in the good sink exactly once (after the collector's deduplication), that nothing else
//! is, and that the tracker's `stats()` agree. Prints a table at the end.
//!
//! `GAMEDAY_OUTAGE_S` sets how long the collector stays dead in the memory scenarios
//! (default 120 s with a spool, half of it without); `GAMEDAY_ONLY=name,name` runs some.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a test harness: fail loudly, print a table

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eventwire_game_days::proxy::{Fault, Proxy};
use eventwire_game_days::{CollectorProc, Report, TrackerProc, WorkerProc};
use eventwire_testkit::kafka;
use eventwire_testkit::probe::{http_get, metric_sum};

const TRACKER: &str = env!("CARGO_BIN_EXE_gameday-tracker");
const COLLECTOR: &str = env!("CARGO_BIN_EXE_gameday-collector");
const WORKER: &str = env!("CARGO_BIN_EXE_gameday-process");

type Scenario = Box<dyn Fn() -> Row>;

struct Row {
    scenario: &'static str,
    sent: u64,
    delivered: u64,
    duplicates: u64,
    lost: u64,
    dropped: u64,
    retries: u64,
    drain: Duration,
    note: String,
}

/// One scenario's world: a scratch directory, a collector (not started), a proxy in front.
struct World {
    dir: PathBuf,
    collector: CollectorProc,
    proxy: Proxy,
}

impl World {
    fn new(name: &str) -> World {
        let dir =
            std::env::temp_dir().join(format!("eventwire-gameday-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let collector = CollectorProc::new(Path::new(COLLECTOR), &schemas, &dir);
        let proxy = Proxy::start(collector.addr);
        World {
            dir,
            collector,
            proxy,
        }
    }

    /// A tracker with a spool in this world's directory (the same one for every tracker of
    /// the world, as a restarted process would use).
    fn spooled_tracker(&self, events: u64, rate: u64, extra: &[&str]) -> TrackerProc {
        let spool = self.dir.join("spool").display().to_string();
        let mut args = vec!["--spool", spool.as_str()];
        args.extend_from_slice(extra);
        self.tracker(events, rate, &args)
    }

    fn tracker(&self, events: u64, rate: u64, extra: &[&str]) -> TrackerProc {
        let mut args = vec![
            "--endpoint".to_owned(),
            self.proxy.endpoint(),
            "--events".into(),
            events.to_string(),
            "--rate".into(),
            rate.to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        TrackerProc::start(Path::new(TRACKER), &args)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.collector.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The end-of-scenario check: every id in `expected` is in the good sink exactly once; ids
/// in `maybe` (tracked, but not yet durable when their process was killed) at most once;
/// nothing else is there. Returns (delivered, lost).
fn check(world: &World, expected: &HashSet<String>, maybe: &HashSet<String>) -> (u64, u64) {
    let good = world.collector.good_ids();
    for (id, n) in &good {
        assert_eq!(*n, 1, "event {id} is in the good sink {n} times");
        assert!(
            expected.contains(id) || maybe.contains(id),
            "event {id} in the good sink was never tracked"
        );
    }
    let lost: Vec<&String> = expected
        .iter()
        .filter(|id| !good.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(3)]
    );
    assert_eq!(
        world.collector.bad_lines(),
        0,
        "dead letters in a scenario without bad input"
    );
    (expected.len() as u64, lost.len() as u64)
}

/// The tracker's own account must agree: everything it took in was sent, nothing dropped,
/// nothing pending.
fn check_stats(r: &Report) {
    let s = r.stats.as_ref().unwrap();
    assert_eq!(s["flushed"], true, "flush timed out: {s}");
    assert_eq!(r.stat("pending"), 0, "{s}");
    assert_eq!(r.stat("dropped"), 0, "{s}");
    assert_eq!(r.stat("rejected"), 0, "{s}");
    assert_eq!(
        r.stat("sent"),
        r.stat("tracked") + r.stat("recovered"),
        "{s}"
    );
    assert_eq!(r.stat("tracked"), r.tracked.len() as u64, "{s}");
}

fn ids(r: &Report) -> HashSet<String> {
    r.tracked.iter().map(|(_, id)| id.clone()).collect()
}

/// Runs a fault timeline against a tracker sending `events` at `rate`; returns the row.
fn timeline(
    name: &'static str,
    events: u64,
    rate: u64,
    tracker_args: &[&str],
    steps: &[(Fault, Duration)],
) -> Row {
    let mut world = World::new(name);
    world.collector.start();
    let mut tracker = world.spooled_tracker(events, rate, tracker_args);
    std::thread::sleep(Duration::from_millis(300));
    for (fault, hold) in steps {
        world.proxy.set(fault.clone());
        std::thread::sleep(*hold);
    }
    world.proxy.set(Fault::Pass);
    let fault_end = Instant::now();
    let faulted = || {
        world
            .proxy
            .counts
            .faulted
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let (row, _) = settle(name, &world, &mut tracker, fault_end, String::new());
    assert!(faulted() > 0, "the faults never met a request");
    Row {
        note: format!("{} requests met a fault", faulted()),
        ..row
    }
}

/// Waits for the tracker to deliver everything, checks the sink and the tracker's account,
/// and makes the scenario's row; `fault_end` starts the drain time.
fn settle(
    scenario: &'static str,
    world: &World,
    tracker: &mut TrackerProc,
    fault_end: Instant,
    note: String,
) -> (Row, Report) {
    let r = tracker.finish(Duration::from_secs(180));
    check_stats(&r);
    let (delivered, lost) = check(world, &ids(&r), &HashSet::new());
    let row = Row {
        scenario,
        sent: r.tracked.len() as u64,
        delivered,
        duplicates: r.stat("duplicates"),
        lost,
        dropped: r.stat("dropped"),
        retries: r.stat("retries"),
        drain: drain_time(&r, fault_end),
        note,
    };
    (row, r)
}

/// From the later of the fault's end and the end of tracking, to everything answered for.
fn drain_time(r: &Report, fault_end: Instant) -> Duration {
    let from = r.tracking_done.unwrap().max(fault_end);
    r.done.unwrap().saturating_duration_since(from)
}

fn collector_down_then_up() -> Row {
    let name = "1. collector down 5 s, then up";
    let mut world = World::new("down");
    let mut tracker = world.spooled_tracker(12_000, 2_000, &[]);
    std::thread::sleep(Duration::from_secs(5));
    world.collector.start();
    let up = Instant::now();
    let note = "connections refused while down".to_owned();
    let (row, r) = settle(name, &world, &mut tracker, up, note);
    assert!(r.stat("retries") > 0, "the outage was never seen");
    row
}

fn slow_collector() -> Row {
    timeline(
        "2. collector slow (3 s/request, timeout 1 s)",
        10_000,
        2_000,
        &["--request-timeout-ms", "1000"],
        &[(Fault::Delay(Duration::from_secs(3)), Duration::from_secs(5))],
    )
}

fn error_storms() -> Row {
    let s = |code, retry_after| Fault::Status { code, retry_after };
    let ms = Duration::from_millis;
    timeline(
        "3. 500 bursts, 429 and 503 storms with Retry-After",
        12_000,
        2_000,
        &[],
        &[
            (s(500, None), ms(1_500)),
            (Fault::Pass, ms(300)),
            (s(500, None), ms(1_500)),
            (s(429, Some(1)), ms(2_000)),
            (Fault::Pass, ms(300)),
            (s(503, Some(1)), ms(2_000)),
        ],
    )
}

fn resets_and_lost_answers() -> Row {
    let ms = Duration::from_millis;
    let row = timeline(
        "4. resets mid-body, answers lost after storing",
        12_000,
        2_000,
        &[],
        &[
            (Fault::ResetMidBody, ms(2_000)),
            (Fault::Pass, ms(300)),
            (Fault::LoseResponse, ms(2_000)),
        ],
    );
    // Answers lost after the collector stored the batch: the resends were duplicates.
    assert!(row.duplicates > 0, "no resend of a stored batch was seen");
    row
}

fn tracker_sigkill() -> Row {
    let name = "5. tracker SIGKILLed mid-stream, restarted on its spool";
    let mut world = World::new("kill-tracker");
    world.collector.start();
    // The collector is unreachable for part of the run, so that the spool holds a backlog
    // when the process dies.
    let mut first = world.spooled_tracker(40_000, 4_000, &[]);
    std::thread::sleep(Duration::from_millis(1_500));
    world.proxy.set(Fault::Refuse);
    std::thread::sleep(Duration::from_millis(1_500));
    let killed = first.kill();
    world.proxy.set(Fault::Pass);
    let durable = killed
        .durable
        .expect("some events were durable before the kill");
    let (expected, maybe): (Vec<_>, Vec<_>) =
        killed.tracked.iter().partition(|(seq, _)| *seq <= durable);
    let mut expected: HashSet<String> = expected.into_iter().map(|(_, id)| id.clone()).collect();
    let mut maybe: HashSet<String> = maybe.into_iter().map(|(_, id)| id.clone()).collect();
    let first_seq = killed.tracked.last().map_or(0, |(s, _)| s + 1);
    let restart = Instant::now();
    let mut second = world.spooled_tracker(4_000, 4_000, &["--first", &first_seq.to_string()]);
    let r = second.finish(Duration::from_secs(180));
    check_stats(&r);
    assert!(r.stat("recovered") > 0, "nothing came back from the spool");
    expected.extend(ids(&r));
    // The killed tracker prints what it tracked once per 10 ms tick (40 events at 4,000/s):
    // the kill can land after an event reached the spool and before its line was printed.
    // Such an event comes back from the spool; it is known by its sequence number (in its
    // data), one of the last tick's, and may be there once like the other `maybe`s.
    let unprinted = first_seq..first_seq + 4_000 / 100;
    let good =
        std::fs::read_to_string(world.collector.dir().join("good.jsonl")).unwrap_or_default();
    for line in good.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let id = v["event_id"].as_str().unwrap_or_default();
        let seq = v["data"]["media_id"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok());
        if !expected.contains(id) && seq.is_some_and(|s| unprinted.contains(&s)) {
            maybe.insert(id.to_owned());
        }
    }
    let (delivered, lost) = check(&world, &expected, &maybe);
    Row {
        scenario: name,
        sent: (killed.tracked.len() + r.tracked.len()) as u64,
        delivered,
        duplicates: r.stat("duplicates"),
        lost,
        dropped: r.stat("dropped"),
        retries: r.stat("retries"),
        drain: r.done.unwrap().saturating_duration_since(restart),
        note: format!(
            "killed after {} tracked ({} durable); {} replayed",
            killed.tracked.len(),
            expected.len() - r.tracked.len(),
            r.stat("recovered")
        ),
    }
}

fn collector_sigkill() -> Row {
    let name = "6. collector SIGKILLed mid-stream, restarted";
    let mut world = World::new("kill-collector");
    world.collector.start();
    let mut tracker = world.spooled_tracker(16_000, 4_000, &[]);
    std::thread::sleep(Duration::from_millis(1_500));
    world.collector.kill();
    std::thread::sleep(Duration::from_secs(1));
    world.collector.start();
    let up = Instant::now();
    std::thread::sleep(Duration::from_millis(1_000));
    world.collector.kill();
    world.collector.start();
    let note = "killed twice; good.jsonl parsed line by line".to_owned();
    settle(name, &world, &mut tracker, up, note).0
}

/// The collector dead for `outage` under steady tracking: memory must stay flat.
fn memory(spooled: bool, outage: Duration) -> Row {
    let scenario = if spooled {
        "7. collector dead for minutes, with a spool"
    } else {
        "8. collector dead for minutes, memory only"
    };
    let mut world = World::new(if spooled { "memory-spool" } else { "memory" });
    let rate = 1_000;
    let events = rate * outage.as_secs();
    let mut tracker = if spooled {
        world.spooled_tracker(events, rate, &[])
    } else {
        world.tracker(events, rate, &[])
    };
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < outage {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(kb) = tracker.rss_kb() {
            samples.push((start.elapsed(), kb));
        }
    }
    world.collector.start();
    let up = Instant::now();
    let r = tracker.finish(Duration::from_secs(300));
    let peak = samples.iter().map(|(_, kb)| *kb).max().unwrap();
    let quarter = samples[samples.len() / 4].1;
    let last = samples.last().unwrap().1;
    // After the first quarter the memory queue is full: what comes later waits on disk or is
    // dropped, and memory stays level (the spool's index grows by tens of bytes an event).
    let growth = last.saturating_sub(quarter);
    assert!(peak < 200 * 1024, "peak RSS {peak} kB");
    assert!(
        growth < 24 * 1024,
        "RSS grew {growth} kB after the first quarter"
    );
    let s = r.stats.as_ref().unwrap();
    assert_eq!(s["flushed"], true, "{s}");
    assert_eq!(r.stat("pending"), 0, "{s}");
    if spooled {
        check_stats(&r);
    } else {
        // Drops are allowed without a spool, each counted with its reason.
        assert_eq!(r.stat("dropped"), r.stat("dropped_queue_full"), "{s}");
        assert_eq!(r.stat("dropped"), r.refused, "{s}");
        assert_eq!(r.stat("sent"), r.tracked.len() as u64, "{s}");
    }
    let (delivered, lost) = check(&world, &ids(&r), &HashSet::new());
    Row {
        scenario,
        sent: r.tracked.len() as u64 + r.refused,
        delivered,
        duplicates: r.stat("duplicates"),
        lost,
        dropped: r.stat("dropped"),
        retries: r.stat("retries"),
        drain: drain_time(&r, up),
        note: format!(
            "{} s dead; RSS {} MB at 1/4, {} MB at end, peak {} MB",
            outage.as_secs(),
            quarter / 1024,
            last / 1024,
            peak / 1024
        ),
    }
}

/// The collector dead for 20 s while a batch's retry deadline is 3 s: with a spool nothing
/// expires — the backlog waits on disk and is delivered when the collector is back.
fn outage_past_the_retry_deadline() -> Row {
    let name = "9. collector dead 20 s, retry deadline 3 s, spool";
    let mut world = World::new("past-deadline");
    let mut tracker = world.spooled_tracker(12_000, 1_000, &["--retry-deadline-ms", "3000"]);
    std::thread::sleep(Duration::from_secs(20));
    world.collector.start();
    let up = Instant::now();
    let (row, r) = settle(name, &world, &mut tracker, up, String::new());
    assert_eq!(r.stat("dropped_retry_expired"), 0);
    assert!(r.stat("retries") > 20, "the outage was seen");
    Row {
        note: "no event expired; 0 dropped".into(),
        ..row
    }
}

/// A tmpfs of `bytes` mounted at `dir` for the life of the value (a real full disk: ENOSPC
/// from the kernel). Needs root, as CI runs.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, bytes: u64) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "the full-disk game day mounts a small tmpfs at {} and needs root (CI runs as root)",
            dir.display()
        );
        SmallDisk { dir: dir.into() }
    }

    fn used(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// The spool on a 2 MiB disk that fills while the collector is away: appends fail with
/// ENOSPC. First a tracker shuts down with the collector still away and the disk full: what
/// it counts as kept in the spool must be exactly what the next one recovers (an event the
/// disk would not take is dropped and reported, never "kept"). Then a second tracker on the
/// same spool runs through another outage. Nothing is lost uncounted: every event `track()`
/// accepted is in the good sink exactly once, or was given to the failure callback with its
/// reason (and is not in the sink); once everything is delivered the spool gives its space
/// back.
fn full_disk() -> Row {
    let name = "10. spool on a 2 MiB disk that fills; a shutdown on it; collector away";
    let mut world = World::new("full-disk");
    let disk = SmallDisk::mount(&world.dir.join("spool"), 2 * 1024 * 1024);
    // 1. The collector never answers; the tracker gives up after 1 s of flushing.
    let mut first = world.spooled_tracker(10_000, 5_000, &["--flush-s", "1"]);
    let a = first.finish(Duration::from_secs(60));
    let sa = a.stats.as_ref().unwrap();
    assert!(
        a.stat("spool_write_errors") > 0,
        "the disk never filled: {sa}"
    );
    assert_eq!((a.stat("sent"), a.stat("pending")), (0, 0), "{sa}");
    assert_eq!(
        a.stat("dropped") + a.stat("kept_in_spool"),
        a.stat("tracked") + a.refused,
        "{sa}"
    );
    let failed_a: HashSet<String> = a.failed.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        failed_a.len() as u64 + a.stat("kept_in_spool"),
        a.stat("tracked"),
        "every event not kept was reported: {sa}"
    );
    // 2. A second tracker on the spool: the collector away 6 s more, then back.
    let mut tracker = world.spooled_tracker(24_000, 3_000, &["--first", "10000"]);
    std::thread::sleep(Duration::from_secs(6));
    world.collector.start();
    let up = Instant::now();
    let r = tracker.finish(Duration::from_secs(180));
    let s = r.stats.as_ref().unwrap();
    assert_eq!(
        r.stat("recovered"),
        a.stat("kept_in_spool"),
        "kept by the first tracker = recovered by the second: {sa} {s}"
    );
    assert_eq!(s["flushed"], true, "{s}");
    assert_eq!(r.stat("pending"), 0, "{s}");
    assert!(
        r.stat("spool_write_errors") > 0,
        "the disk never filled: {s}"
    );
    assert_eq!(r.stat("rejected"), 0, "{s}");
    // Refusals at `track()` (a full queue) are drops too, each returned as an error.
    assert_eq!(
        r.stat("sent") + r.stat("dropped"),
        r.stat("tracked") + r.stat("recovered") + r.refused,
        "{s}"
    );
    assert_eq!(
        r.stat("dropped"),
        r.stat("dropped_spool_error") + r.stat("dropped_queue_full"),
        "only the disk and the full queue drop: {s}"
    );
    // Each drop after `track()` accepted the event reached the callback with its reason.
    let failed: HashSet<String> = r.failed.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(failed.len() as u64, r.stat("dropped_spool_error"), "{s}");
    assert!(r.failed.iter().all(|(_, why)| why.contains("SpoolError")));
    let failed: HashSet<String> = failed.union(&failed_a).cloned().collect();
    let tracked: HashSet<String> = ids(&a).union(&ids(&r)).cloned().collect();
    let expected: HashSet<String> = tracked.difference(&failed).cloned().collect();
    let good = world.collector.good_ids();
    assert!(
        failed.iter().all(|id| !good.contains_key(id)),
        "an event reported as dropped was delivered"
    );
    let (delivered, lost) = check(&world, &expected, &HashSet::new());
    let used = disk.used();
    assert!(
        used < 512 * 1024,
        "the spool kept {used} bytes after delivering everything"
    );
    Row {
        scenario: name,
        sent: (a.tracked.len() + r.tracked.len()) as u64 + a.refused + r.refused,
        delivered,
        duplicates: r.stat("duplicates"),
        lost,
        dropped: a.stat("dropped") + r.stat("dropped"),
        retries: a.stat("retries") + r.stat("retries"),
        drain: drain_time(&r, up),
        note: format!(
            "{} appends refused (ENOSPC); 1st tracker: {} kept in the spool = {} recovered by the 2nd, {} dropped; 2nd: {} spool_error, {} queue_full; each drop reported; spool {} KB after",
            a.stat("spool_write_errors") + r.stat("spool_write_errors"),
            a.stat("kept_in_spool"),
            r.stat("recovered"),
            a.stat("dropped"),
            r.stat("dropped_spool_error"),
            r.stat("dropped_queue_full"),
            used / 1024
        ),
    }
}

/// The collector's good file on a small disk that fills up mid-run (a filler file takes the
/// room), then has room again: while full, batches are answered 503 and nothing of them
/// stays in the file (no line twice, no torn line); the tracker resends; all arrive once.
fn collector_disk_fills() -> Row {
    let name = "11. the collector's disk fills for 2 s mid-run";
    let mut world = World::new("collector-disk");
    let disk = SmallDisk::mount(&world.dir.join("collector"), 16 * 1024 * 1024);
    world.collector = CollectorProc::new(
        Path::new(COLLECTOR),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas"),
        &disk.dir,
    );
    world.proxy = Proxy::start(world.collector.addr);
    world.collector.start();
    let mut tracker = world.spooled_tracker(8_000, 2_000, &[]);
    std::thread::sleep(Duration::from_millis(1_000));
    // Take every byte left (the collector goes on writing meanwhile).
    let filler = disk.dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    while std::io::Write::write_all(&mut file, &[b'x'; 64 * 1024]).is_ok() {}
    while std::io::Write::write_all(&mut file, &[b'x'; 512]).is_ok() {}
    drop(file);
    std::thread::sleep(Duration::from_millis(2_000));
    std::fs::remove_file(&filler).unwrap();
    let room = Instant::now();
    let (row, r) = settle(name, &world, &mut tracker, room, String::new());
    assert!(r.stat("retries") > 0, "the full disk was never felt");
    Row {
        note: format!(
            "{} retries of refused batches; good.jsonl parsed line by line",
            r.stat("retries")
        ),
        ..row
    }
}

/// Clients that give up while the collector is still committing (the proxy hangs up 100 ms
/// after forwarding; the good sink takes 400 ms to say it stored): the commits run to their
/// end and remember their ids, so every resend is a duplicate, never a second line.
fn clients_hang_up_mid_commit() -> Row {
    let name = "12. clients hang up mid-commit (slow sink)";
    let mut world = World::new("hang-up");
    world
        .collector
        .env
        .push(("GAMEDAY_SINK_DELAY_MS".into(), "400".into()));
    world.collector.start();
    let mut tracker = world.spooled_tracker(8_000, 2_000, &[]);
    std::thread::sleep(Duration::from_millis(500));
    world.proxy.set(Fault::HangUp(Duration::from_millis(100)));
    std::thread::sleep(Duration::from_millis(2_500));
    world.proxy.set(Fault::Pass);
    let end = Instant::now();
    let (row, r) = settle(name, &world, &mut tracker, end, String::new());
    assert!(r.stat("duplicates") > 0, "no commit outlived its client");
    Row {
        note: format!(
            "{} events resent after a hang-up were duplicates",
            r.stat("duplicates")
        ),
        ..row
    }
}

/// Trackers offer 20× what the collector can take for 30 s: its good sink slows to 15 ms a
/// record (a disk or broker in trouble), it takes 8 requests at a time and sheds the rest
/// with 503 and `Retry-After`. Its memory stays bounded, `/healthz` and `/metrics` answer
/// within milliseconds throughout, shed requests are counted, the trackers pause as told
/// (they do not hammer), and once the sink recovers every event is stored exactly once.
fn overload() -> Row {
    let name = "14. overload: 20× what the collector takes, 30 s";
    let mut world = World::new("overload");
    let slow = world.dir.join("sink-is-slow");
    std::fs::write(&slow, b"").unwrap();
    let (trackers, rate, incident, window) = (4u64, 500u64, Duration::from_secs(30), 4u64);
    world.collector.env.extend([
        ("GAMEDAY_SINK_MS_PER_RECORD".into(), "15".into()),
        ("GAMEDAY_SLOW_WHILE".into(), slow.display().to_string()),
        ("GAMEDAY_MAX_IN_FLIGHT".into(), "8".into()),
    ]);
    world.collector.start();
    let addr = world.collector.addr;
    let endpoint = format!("http://{addr}");
    let window_arg = window.to_string();
    let mut procs: Vec<TrackerProc> = (0..trackers)
        .map(|i| {
            let spool = world.dir.join(format!("spool-{i}")).display().to_string();
            let events = (rate * incident.as_secs()).to_string();
            let first = (i * 1_000_000).to_string();
            let args: Vec<String> = [
                "--endpoint",
                &endpoint,
                "--events",
                &events,
                "--rate",
                &rate.to_string(),
                "--first",
                &first,
                "--spool",
                &spool,
                "--batch-size",
                "50",
                "--max-in-flight",
                &window_arg,
                "--request-timeout-ms",
                "30000",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            TrackerProc::start(Path::new(TRACKER), &args)
        })
        .collect();
    let start = Instant::now();
    let (mut rss, mut probes) = (Vec::new(), Vec::new());
    while start.elapsed() < incident {
        std::thread::sleep(Duration::from_millis(100));
        rss.push(world.collector.rss_kb().unwrap());
        for path in ["/healthz", "/metrics"] {
            let (status, _, took) = http_get(addr, path);
            assert_eq!(status, 200, "{path} during the overload");
            probes.push(took);
        }
    }
    let stored_in_incident = world.collector.good_ids().len() as u64;
    let (_, scrape, _) = http_get(addr, "/metrics");
    let shed = metric_sum(&scrape, "eventwire_requests_shed_total");
    std::fs::remove_file(&slow).unwrap();
    let recovered = Instant::now();
    let reports: Vec<Report> = procs
        .iter_mut()
        .map(|t| t.finish(Duration::from_secs(300)))
        .collect();
    let mut expected = HashSet::new();
    for r in &reports {
        check_stats(r);
        expected.extend(ids(r));
    }
    let (delivered, lost) = check(&world, &expected, &HashSet::new());

    let offered = expected.len() as f64 / incident.as_secs_f64();
    let taken = stored_in_incident as f64 / incident.as_secs_f64();
    assert!(
        offered >= 20.0 * taken,
        "offered {offered:.0} events/s, the collector took {taken:.0}: not a 20× overload"
    );
    // A tracker told to retry after 1 s sends nothing meanwhile: at most its window (and a
    // probe) is shed per second of the incident. One ignoring it would retry within 50 ms.
    let bound = (trackers * (window + 1)) as f64 * (incident.as_secs_f64() + 2.0);
    assert!(shed > 0.0, "nothing was shed: {scrape}");
    assert!(
        shed <= bound,
        "{shed} requests shed, over {bound}: trackers did not back off"
    );
    let peak = *rss.iter().max().unwrap();
    assert!(peak < 150 * 1024, "collector peak RSS {peak} kB");
    probes.sort();
    let slowest = *probes.last().unwrap();
    let p99 = probes[probes.len() * 99 / 100];
    assert!(
        slowest < Duration::from_millis(250),
        "a health or metrics probe took {slowest:?}"
    );
    Row {
        scenario: name,
        sent: expected.len() as u64,
        delivered,
        duplicates: reports.iter().map(|r| r.stat("duplicates")).sum(),
        lost,
        dropped: reports.iter().map(|r| r.stat("dropped")).sum(),
        retries: reports.iter().map(|r| r.stat("retries")).sum(),
        drain: recovered.elapsed(),
        note: format!(
            "offered {offered:.0} events/s, taken {taken:.0}/s ({:.0}×); {shed:.0} requests shed; \
             collector peak RSS {} MB; /healthz and /metrics p99 {:.1} ms, max {:.1} ms",
            offered / taken.max(1.0),
            peak / 1024,
            p99.as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3
        ),
    }
}

/// 10,000 requests without a write key at a collector that requires one: each is 401,
/// nothing reaches either sink, and the tracker with the key is served all along.
fn strangers() -> Row {
    let name = "13. 10,000 requests without a write key";
    let mut world = World::new("strangers");
    world
        .collector
        .env
        .push(("GAMEDAY_WRITE_KEY".into(), "sesame".into()));
    world.collector.start();
    let mut tracker = world.spooled_tracker(4_000, 2_000, &["--write-key", "sesame"]);
    let url = format!("http://{}/v1/batch", world.collector.addr);
    let started = Instant::now();
    let statuses = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let client = reqwest::Client::new();
            let body = r#"{"sent_at":"2026-11-26T03:10:26.123Z","events":[{"event_id":"x","schema":"iglu:com.example.media/play/jsonschema/1-0-0","data":{}}]}"#;
            let mut counts = std::collections::HashMap::new();
            for wave in 0..500 {
                let sends = (0..20).map(|i| {
                    let request = client.post(&url).header("content-type", "application/json");
                    // Some with a wrong key, some with none, some not even a batch.
                    let request = match (wave + i) % 3 {
                        0 => request.body(body),
                        1 => request.bearer_auth("nope").body(body),
                        _ => request.body("not json at all"),
                    };
                    request.send()
                });
                for r in futures_util::future::join_all(sends).await {
                    *counts.entry(r.map_or(0, |r| r.status().as_u16())).or_insert(0u32) += 1;
                }
            }
            counts
        });
    let took = started.elapsed();
    assert_eq!(statuses.get(&401), Some(&10_000), "{statuses:?}");
    let (row, _) = settle(name, &world, &mut tracker, Instant::now(), String::new());
    assert_eq!(
        world.collector.bad_lines(),
        0,
        "strangers reached the dead-letter sink"
    );
    Row {
        note: format!(
            "10,000 × 401 in {:.1} s; nothing dead-lettered; the keyed tracker delivered all",
            took.as_secs_f64()
        ),
        ..row
    }
}

fn worker_json(w: &WorkerProc, path: &str) -> serde_json::Value {
    let (status, body, _) = http_get(w.addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Events a worker wrote to the output (its share of the events, replays not counted).
fn handled(w: &WorkerProc) -> f64 {
    let (_, body, _) = http_get(w.addr, "/metrics");
    metric_sum(
        &body,
        "eventwire_process_records_total{outcome=\"written\"}",
    )
}

/// Past one machine: two collectors producing to Kafka behind two trackers (1 % of events
/// also resent through the other collector, same id), three `process` workers in a group;
/// one collector SIGKILLed and restarted, one worker SIGKILLed, a fourth started (three live
/// again). Every tracked id in the output exactly once, lag 0, even shares among the three
/// live workers on a 90 %-skewed stream, unique readers per article within the stated bound.
///
/// Six partitions, not four: shares can only be even when the live workers divide the
/// partitions (four over three workers is 2:1:1 whatever the assignor does).
/// For a failing game day 15: where the ids missing from the output (or written twice) are
/// in the input topic, the group's committed offsets, each tracker's final stats, and the
/// workers' logs (the run's directory is left in place).
fn where_they_went(
    brokers: &str,
    partitions: i32,
    reports: &[Report],
    tracked: &HashSet<String>,
    given_up: &std::collections::HashMap<String, String>,
    output: &[kafka::Record],
    dir: &Path,
) -> String {
    use std::collections::HashMap;
    use std::fmt::Write as _;
    let (input, input_ends) = kafka::read_to_end(brokers, "events", partitions);
    let mut copies: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
    for r in &input {
        copies
            .entry(r.key.as_str())
            .or_default()
            .push((r.partition, r.offset));
    }
    let mut written: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
    for r in output {
        written
            .entry(r.key.as_str())
            .or_default()
            .push((r.partition, r.offset));
    }
    let mut missing: Vec<(&str, &[(i32, i64)])> = tracked
        .iter()
        .filter(|id| !written.contains_key(id.as_str()) && !given_up.contains_key(*id))
        .map(|id| {
            (
                id.as_str(),
                copies.get(id.as_str()).map_or(&[][..], Vec::as_slice),
            )
        })
        .collect();
    missing.sort_by_key(|(_, at)| at.first().copied());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "missing: {} ({} not in the input topic); input ends {input_ends:?}; committed {:?}",
        missing.len(),
        missing.iter().filter(|(_, at)| at.is_empty()).count(),
        kafka::committed(brokers, "eventwire-process", "events", partitions),
    );
    for (id, at) in missing.iter().take(40) {
        let _ = writeln!(
            out,
            "  missing {id}: input copies (partition, offset) {at:?}"
        );
    }
    for (id, at) in written.iter().filter(|(_, at)| at.len() > 1).take(20) {
        let _ = writeln!(
            out,
            "  twice {id}: output {at:?}, input {:?}",
            copies.get(id)
        );
    }
    for (i, r) in reports.iter().enumerate() {
        let _ = writeln!(out, "tracker {i}: {}", r.stats.clone().unwrap_or_default());
    }
    let _ = write!(out, "worker logs: {}/worker-*.log", dir.display());
    out
}

fn scale_out() -> Row {
    const PARTITIONS: i32 = 6;
    const UNIQUES: &str = "com.example.web/article_view:/data/article_id";
    let broker = eventwire_testkit::broker::Broker::start();
    let brokers = broker.address.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(kafka::create_topic(&brokers, "events", PARTITIONS));
    let dir = std::env::temp_dir().join(format!(
        "eventwire-gameday-{}-scale-out",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let mut collectors: Vec<CollectorProc> = (0..2)
        .map(|i| {
            let d = dir.join(format!("collector-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let mut c = CollectorProc::new(Path::new(COLLECTOR), &schemas, &d);
            c.good = Some(format!("kafka://{brokers}/events"));
            c.start();
            c
        })
        .collect();
    let env = [("GAMEDAY_COMMIT_MS", "1000")];
    // Each worker logs to the run's directory, which a failing run leaves in place.
    let started_workers = std::cell::Cell::new(0usize);
    let start_worker = || {
        let n = started_workers.replace(started_workers.get() + 1);
        let log = dir.join(format!("worker-{n}.log"));
        WorkerProc::start(
            Path::new(WORKER),
            &brokers,
            "events",
            &[UNIQUES],
            &env,
            &log,
        )
    };
    let mut workers: Vec<WorkerProc> = (0..3).map(|_| start_worker()).collect();
    let (events, rate) = (16_000u64, 400u64);
    let endpoint = |i: usize| format!("http://{}", collectors[i].addr);
    let trackers: Vec<TrackerProc> = (0..2)
        .map(|i| {
            let args: Vec<String> = [
                "--endpoint",
                &endpoint(i),
                "--events",
                &events.to_string(),
                "--rate",
                &rate.to_string(),
                "--first",
                &(i as u64 * 1_000_000).to_string(),
                "--articles",
                "20",
                "--users",
                "3000",
                "--skew",
                "0.9",
                "--failover",
                &endpoint(1 - i),
                "--failover-every",
                "100",
                "--request-timeout-ms",
                "1000",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            TrackerProc::start(Path::new(TRACKER), &args)
        })
        .collect();
    let started = Instant::now();
    let at = |s: u64| {
        let t = started + Duration::from_secs(s);
        if let Some(wait) = t.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    };
    at(5);
    collectors[0].kill();
    at(7);
    collectors[0].start();
    at(10);
    workers[0].kill();
    at(16);
    workers.push(start_worker());
    // The last phase: from when each of the three live workers owns two partitions.
    let live: Vec<usize> = vec![1, 2, 3];
    let phase_deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let owned: Vec<usize> = live
            .iter()
            .map(|&i| {
                worker_json(&workers[i], "/healthz")["partitions"]
                    .as_array()
                    .map_or(0, Vec::len)
            })
            .collect();
        if owned.iter().all(|&n| n == 2) {
            break;
        }
        assert!(
            Instant::now() < phase_deadline,
            "the group did not settle on two partitions each: {owned:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // … and has caught up with the backlog of the partitions that moved (each worker's lag,
    // updated at its commits, under a second of input).
    loop {
        let lags: Vec<f64> = live
            .iter()
            .map(|&i| {
                metric_sum(
                    &http_get(workers[i].addr, "/metrics").1,
                    "eventwire_process_lag",
                )
            })
            .collect();
        if lags.iter().all(|&l| l < 200.0) {
            break;
        }
        assert!(
            Instant::now() < phase_deadline,
            "the workers did not catch up: lags {lags:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let phase_start: Vec<f64> = live.iter().map(|&i| handled(&workers[i])).collect();
    let phase_began = Instant::now();
    let mut reports: Vec<Report> = trackers
        .into_iter()
        .map(|mut t| t.finish(Duration::from_secs(120)))
        .collect();
    let phase_end: Vec<f64> = live.iter().map(|&i| handled(&workers[i])).collect();
    let phase_secs = phase_began.elapsed().as_secs_f64();

    // Lag 0: the group's committed offsets reach the end of every partition.
    let ends = kafka::ends(&brokers, "events", PARTITIONS);
    let lag_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = kafka::committed(&brokers, "eventwire-process", "events", PARTITIONS);
        if got == ends {
            break;
        }
        assert!(
            Instant::now() < lag_deadline,
            "lag did not reach 0: committed {got:?}, ends {ends:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every tracked id in the output exactly once, nothing else.
    let tracked: HashSet<String> = reports
        .iter()
        .flat_map(|r| r.tracked.iter().map(|(_, id)| id.clone()))
        .collect();
    let sent: u64 = reports.iter().map(|r| r.tracked.len() as u64).sum();
    let (output, _) = kafka::read_to_end(&brokers, "events-unique", PARTITIONS);
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for record in &output {
        *seen.entry(record.key.as_str()).or_default() += 1;
    }
    let twice = seen.values().filter(|n| **n > 1).count();
    // What the trackers gave up on (each counted and passed to the failure callback, with
    // its reason) may be missing; nothing else may.
    let given_up: std::collections::HashMap<String, String> = reports
        .iter()
        .flat_map(|r| r.failed.iter().cloned())
        .collect();
    let missing = tracked
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()) && !given_up.contains_key(*id))
        .count();
    let strangers = seen.keys().filter(|id| !tracked.contains(**id)).count();
    let verdict = (twice, missing, strangers);
    assert_eq!(
        verdict,
        (0, 0, 0),
        "output: (written twice, missing and not given up by a tracker, not tracked); given up: {given_up:?}\n{}",
        if verdict == (0, 0, 0) {
            String::new()
        } else {
            where_they_went(&brokers, PARTITIONS, &reports, &tracked, &given_up, &output, &dir)
        }
    );
    let copies_in = ends.iter().sum::<i64>() as u64;
    let failovers: usize = reports
        .iter()
        .map(|r| r.failovers.iter().filter(|(_, s)| s == "200").count())
        .sum();
    assert!(
        failovers as u64 >= sent / 100 - 10,
        "about 1 % resent through the other collector: {failovers}"
    );
    assert!(
        copies_in > sent,
        "the input holds the failover copies and resends: {copies_in} for {sent}"
    );

    // Even shares with four workers, although 90 % of the events are on one article.
    let shares: Vec<f64> = phase_start
        .iter()
        .zip(&phase_end)
        .map(|(a, b)| b - a)
        .collect();
    let mean = shares.iter().sum::<f64>() / shares.len() as f64;
    for s in &shares {
        assert!(
            (s - mean).abs() <= 0.25 * mean,
            "uneven shares {shares:?} (mean {mean})"
        );
    }

    // Unique readers per article, from the state topic through any worker.
    let mut exact: std::collections::HashMap<String, HashSet<String>> =
        std::collections::HashMap::new();
    for r in &mut reports {
        for (_, reader, article) in r.views.drain(..) {
            exact.entry(article).or_default().insert(reader);
        }
    }
    let answer_deadline = Instant::now() + Duration::from_secs(30);
    let (answer, worst) = loop {
        let answer = worker_json(
            &workers[1],
            "/v1/uniques?schema=com.example.web/article_view&by=article_id&top=100&window=60m",
        );
        let rows = answer["top"].as_array().cloned().unwrap_or_default();
        let mut worst = 0f64;
        let mut all_within = rows.len() == exact.len();
        for row in &rows {
            let want = exact
                .get(row["value"].as_str().unwrap())
                .map_or(0, HashSet::len) as f64;
            let got = row["uniques"].as_f64().unwrap();
            let (lo, hi) = (
                row["lower_bound"].as_f64().unwrap(),
                row["upper_bound"].as_f64().unwrap(),
            );
            worst = worst.max((got - want).abs() / want.max(1.0));
            all_within &= lo <= want && want <= hi;
        }
        if all_within {
            break (answer, worst);
        }
        assert!(
            Instant::now() < answer_deadline,
            "uniques outside the stated bounds: {answer} vs exact {:?}",
            exact.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let viral = exact.get("article-0").map_or(0, HashSet::len);
    let rss: Vec<u64> = workers.iter().filter_map(WorkerProc::rss_kb).collect();
    drop(workers);
    let _ = std::fs::remove_dir_all(&dir);
    Row {
        scenario: "15 past one machine: 2 collectors → Kafka (6 partitions) → 3 workers, a collector and a worker SIGKILLed, a 4th started",
        sent,
        delivered: seen.len() as u64,
        duplicates: copies_in - seen.len() as u64,
        lost: missing as u64,
        dropped: reports.iter().map(|r| r.stat("dropped")).sum(),
        retries: reports.iter().map(|r| r.stat("retries")).sum(),
        drain: Duration::ZERO,
        note: format!(
            "{copies_in} records in for {sent} events ({failovers} failover copies); {} given up by the trackers (counted, with reasons); lag 0; shares over the last {phase_secs:.0} s (3 live workers) {:?} (±{:.0} % of the mean); article-0: {viral} readers, answer {}; worst error of 21 articles {:.2} % (bound: {}); worker RSS {:?} MB",
            given_up.len(),
            shares.iter().map(|s| *s as u64).collect::<Vec<_>>(),
            shares.iter().map(|s| (s - mean).abs() / mean * 100.0).fold(0.0, f64::max),
            answer["top"][0]["uniques"],
            worst * 100.0,
            answer["estimator"]["bounds"],
            rss.iter().map(|k| k / 1024).collect::<Vec<_>>(),
        ),
    }
}

fn main() {
    let outage = Duration::from_secs(
        std::env::var("GAMEDAY_OUTAGE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120),
    );
    let only = std::env::var("GAMEDAY_ONLY").unwrap_or_default();
    let scenarios: Vec<(&str, Scenario)> = vec![
        ("down", Box::new(collector_down_then_up)),
        ("slow", Box::new(slow_collector)),
        ("storms", Box::new(error_storms)),
        ("resets", Box::new(resets_and_lost_answers)),
        ("kill-tracker", Box::new(tracker_sigkill)),
        ("kill-collector", Box::new(collector_sigkill)),
        ("memory-spool", Box::new(move || memory(true, outage))),
        ("memory", Box::new(move || memory(false, outage / 2))),
        ("past-deadline", Box::new(outage_past_the_retry_deadline)),
        ("full-disk", Box::new(full_disk)),
        ("collector-disk", Box::new(collector_disk_fills)),
        ("hang-up", Box::new(clients_hang_up_mid_commit)),
        ("strangers", Box::new(strangers)),
        ("overload", Box::new(overload)),
        ("scale-out", Box::new(scale_out)),
    ];
    let mut rows = Vec::new();
    for (key, run) in &scenarios {
        if !only.is_empty() && !only.split(',').any(|k| k == *key) {
            continue;
        }
        let started = Instant::now();
        println!("game day {key} …");
        let row = run();
        println!(
            "game day {key}: ok in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    println!();
    println!("| scenario | events sent | delivered | duplicates removed | lost | dropped (counted) | retries | time to drain | notes |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} s | {} |",
            r.scenario,
            r.sent,
            r.delivered,
            r.duplicates,
            r.lost,
            r.dropped,
            r.retries,
            r.drain.as_secs_f64(),
            r.note
        );
    }
    // In the form of libtest's summary, so that scripts/test.sh counts these too.
    println!();
    println!(
        "test result: ok. {} passed; 0 failed (game days)",
        rows.len()
    );
}
