//! The tracker with a spool: events survive a restart with their ids and `created_at`, a full
//! memory queue waits on disk instead of dropping, answered events never come back, the cap
//! and damaged files are counted, one tracker per directory.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventwire::protocol::{BatchResponse, Rejection};
use eventwire::spool::{OsFs, SegmentFile, SpoolError, SpoolFs};
use eventwire::transport::Response;
use eventwire::{
    BuildError, DropReason, MemoryTransport, RetryPolicy, TrackError, Tracker, TrackerBuilder, Uuid,
};
use serde_json::json;

const T: Duration = Duration::from_secs(20);
const SCHEMA: &str = "iglu:com.example.media/play/jsonschema/1-0-0";

/// A collector that is down (503) until `up` is set, then accepts everything.
fn switchable() -> (MemoryTransport, Arc<AtomicBool>) {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let transport = MemoryTransport::respond_with(move |batch| {
        if flag.load(Ordering::SeqCst) {
            let answer = BatchResponse {
                accepted: batch.events.len() as u64,
                ..BatchResponse::default()
            };
            Ok(Response::json(200, &answer))
        } else {
            Ok(Response::status(503))
        }
    });
    (transport, up)
}

fn builder(transport: &MemoryTransport, dir: &std::path::Path) -> TrackerBuilder {
    Tracker::builder()
        .transport(transport.clone())
        .spool(dir)
        .max_batch_delay(Duration::from_millis(10))
        .retry(RetryPolicy {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            deadline: Duration::from_secs(3600),
            ..RetryPolicy::default()
        })
}

fn track(tracker: &Tracker, i: usize) -> Uuid {
    tracker
        .track_json(
            SCHEMA,
            &json!({ "media_id": format!("m{i}"), "position_s": i }),
        )
        .unwrap()
}

/// Accepted arrivals per id: `(id → times)`, counting only attempts that were answered 200.
fn arrivals(transport: &MemoryTransport, accepted_from: usize) -> HashMap<Uuid, usize> {
    let mut seen = HashMap::new();
    for batch in transport.batches().into_iter().skip(accepted_from) {
        for e in batch.events {
            *seen.entry(e.event_id).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn undelivered_events_survive_a_restart_with_their_ids_and_created_at() {
    let dir = tempfile::tempdir().unwrap();
    let (down, _) = switchable();
    let tracker = builder(&down, dir.path()).build().unwrap();
    let ids: Vec<Uuid> = (0..50).map(|i| track(&tracker, i)).collect();
    // Let a few attempts fail, so the events are in flight when the tracker stops.
    std::thread::sleep(Duration::from_millis(100));
    let first_attempts = down.batches();
    assert!(!first_attempts.is_empty());
    tracker.shutdown(Duration::from_millis(100)).unwrap();
    let s = tracker.stats();
    assert_eq!((s.tracked, s.sent, s.kept_in_spool), (50, 0, 50));
    assert_eq!((s.dropped_total(), s.pending), (0, 0));
    let created: HashMap<Uuid, String> = first_attempts
        .iter()
        .flat_map(|b| b.events.iter())
        .map(|e| (e.event_id, e.created_at.clone()))
        .collect();
    drop(tracker);

    let restarted_at = eventwire::event::UnixMillis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    )
    .to_string();
    let up = MemoryTransport::new();
    let tracker = builder(&up, dir.path()).build().unwrap();
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.recovered, s.tracked, s.sent, s.pending), (50, 0, 50, 0));
    let batches = up.batches();
    let replayed: Vec<Uuid> = batches
        .iter()
        .flat_map(|b| b.events.iter().map(|e| e.event_id))
        .collect();
    assert_eq!(replayed, ids, "every event once, in tracking order");
    for b in &batches {
        assert!(b.sent_at >= restarted_at, "fresh sent_at: {}", b.sent_at);
        for e in &b.events {
            if let Some(original) = created.get(&e.event_id) {
                assert_eq!(&e.created_at, original, "created_at kept");
            }
            assert_eq!(e.schema, SCHEMA);
        }
    }
    assert!(!created.is_empty());
    tracker.shutdown(T).unwrap();
    drop(tracker);

    // Delivered means gone: a third tracker has nothing to replay.
    let third = MemoryTransport::new();
    let tracker = builder(&third, dir.path()).build().unwrap();
    tracker.flush(T).unwrap();
    assert_eq!(tracker.stats().recovered, 0);
    assert!(third.batches().is_empty());
}

#[test]
fn a_full_memory_queue_waits_on_disk_instead_of_dropping() {
    let dir = tempfile::tempdir().unwrap();
    let (transport, up) = switchable();
    // Twenty events in memory (ten in the spool's inbox, ten in the worker's queue); the
    // caller waits for the inbox, never for the collector.
    let tracker = builder(&transport, dir.path())
        .queue_capacity(20)
        .max_batch_events(10)
        .when_full(eventwire::WhenFull::Block(Duration::from_secs(5)))
        .build()
        .unwrap();
    let ids: Vec<Uuid> = (0..3_000).map(|i| track(&tracker, i)).collect();
    let s = tracker.stats();
    assert_eq!((s.tracked, s.dropped_total()), (3_000, 0));
    let failed_attempts = transport.batches().len();
    up.store(true, Ordering::SeqCst);
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.sent, s.dropped_total(), s.pending), (3_000, 0, 0));
    // Attempts made while the collector was down may have been answered 503 after the flag
    // flipped; count only from the first accepted attempt on.
    let seen = arrivals(&transport, failed_attempts);
    for id in &ids {
        assert!(seen.contains_key(id), "{id} never arrived");
    }
    let extra: usize = seen.values().map(|n| n - 1).sum();
    assert!(
        extra <= 20,
        "{extra} events sent twice after the collector came back"
    );
}

#[test]
fn answered_events_are_not_replayed_rejected_ones_included() {
    let dir = tempfile::tempdir().unwrap();
    // The collector dead-letters every other event.
    let transport = MemoryTransport::respond_with(|batch| {
        let rejected: Vec<Rejection> = (0..batch.events.len())
            .step_by(2)
            .map(|index| Rejection {
                index,
                event_id: Some(batch.events[index].event_id.to_string()),
                code: "schema_invalid".into(),
            })
            .collect();
        let answer = BatchResponse {
            accepted: (batch.events.len() - rejected.len()) as u64,
            rejected,
            ..BatchResponse::default()
        };
        Ok(Response::json(200, &answer))
    });
    let tracker = builder(&transport, dir.path()).build().unwrap();
    for i in 0..100 {
        track(&tracker, i);
    }
    tracker.flush(T).unwrap();
    tracker.shutdown(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.sent + s.rejected, s.kept_in_spool), (100, 0));
    drop(tracker);
    let tracker = builder(&MemoryTransport::new(), dir.path())
        .build()
        .unwrap();
    assert_eq!(tracker.stats().recovered, 0);
}

#[test]
fn a_second_tracker_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let transport = MemoryTransport::new();
    let first = builder(&transport, dir.path()).build().unwrap();
    let err = builder(&transport, dir.path()).build().unwrap_err();
    assert!(
        matches!(err, BuildError::Spool(SpoolError::Locked(_))),
        "{err}"
    );
    assert!(
        err.to_string().contains("in use by another tracker"),
        "{err}"
    );
    // The first one is unaffected.
    track(&first, 1);
    first.flush(T).unwrap();
    assert_eq!(first.stats().sent, 1);
}

#[test]
fn the_spool_cap_drops_new_events_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (transport, up) = switchable();
    let tracker = builder(&transport, dir.path())
        .spool_max_bytes(20_000)
        .build()
        .unwrap();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        match tracker.track_json(
            SCHEMA,
            &json!({ "media_id": format!("m{i}"), "pad": "x".repeat(300) }),
        ) {
            Ok(id) => accepted.push(id),
            Err(TrackError::SpoolFull) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(refused > 100 && !accepted.is_empty(), "refused {refused}");
    let s = tracker.stats();
    assert_eq!(s.dropped(DropReason::SpoolFull), refused);
    assert_eq!(s.tracked, accepted.len() as u64);
    // Room comes back as events are delivered (once the spool has read the answers).
    up.store(true, Ordering::SeqCst);
    tracker.flush(T).unwrap();
    assert_eq!(tracker.stats().sent, accepted.len() as u64);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while tracker.track_json(SCHEMA, &json!({})).is_err() {
        assert!(std::time::Instant::now() < deadline, "no room came back");
        std::thread::sleep(Duration::from_millis(5));
    }
    tracker.flush(T).unwrap();
    assert_eq!(tracker.stats().sent, accepted.len() as u64 + 1);
}

#[test]
fn a_torn_tail_is_counted_and_the_events_before_it_are_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (down, _) = switchable();
    let tracker = builder(&down, dir.path()).build().unwrap();
    let ids: Vec<Uuid> = (0..20).map(|i| track(&tracker, i)).collect();
    tracker.shutdown(Duration::from_millis(50)).unwrap();
    drop(tracker);
    // Power loss mid-write: half a record at the end of the active segment.
    let mut segments: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let last = segments.pop().unwrap();
    let mut data = std::fs::read(&last).unwrap();
    data.extend_from_slice(&[200, 1, 0, 0, 1, 2, 3, 4, b'{', b'"']);
    std::fs::write(&last, data).unwrap();

    let up = MemoryTransport::new();
    let tracker = builder(&up, dir.path()).build().unwrap();
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.recovered, s.sent), (20, 20));
    assert_eq!(s.spool_corrupt_bytes, 10);
    assert_eq!(up.event_ids(), ids);
}

/// With a spool, a collector that keeps failing past the retry deadline does not expire any
/// event: the backlog waits on disk and is delivered once the collector is back.
#[test]
fn an_outage_longer_than_the_retry_deadline_expires_nothing_with_a_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (transport, up) = switchable();
    let tracker = builder(&transport, dir.path())
        .retry(RetryPolicy {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            deadline: Duration::from_millis(200),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    let ids: Vec<Uuid> = (0..300).map(|i| track(&tracker, i)).collect();
    // Five deadlines' worth of outage.
    std::thread::sleep(Duration::from_secs(1));
    let s = tracker.stats();
    assert_eq!(s.dropped(DropReason::RetryExpired), 0, "{s:?}");
    assert_eq!(s.pending, 300, "{s:?}");
    let failed_attempts = transport.batches().len();
    assert!(failed_attempts > 10, "the outage was seen");
    up.store(true, Ordering::SeqCst);
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.sent, s.dropped_total(), s.pending), (300, 0, 0), "{s:?}");
    let seen = arrivals(&transport, failed_attempts);
    assert!(ids.iter().all(|id| seen.contains_key(id)));
}

/// Spool segment files, oldest first.
fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// Events waiting on disk whose bytes are damaged under the spool (the file cut short) are
/// settled like any other loss: counted `spool_error`, passed to the failure callback, and
/// acknowledged — so their segment can be deleted and nothing stays pending for ever.
#[test]
fn spilled_events_that_cannot_be_read_back_are_reported_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (transport, up) = switchable();
    let failures: Arc<std::sync::Mutex<Vec<(eventwire::FailureReason, Uuid)>>> = Arc::default();
    let sink = failures.clone();
    let tracker = builder(&transport, dir.path())
        .queue_capacity(20)
        .max_batch_events(10)
        .when_full(eventwire::WhenFull::Block(T))
        .spool_commit_interval(Duration::from_millis(5))
        .on_failure(move |reason, events| {
            let mut f = sink.lock().unwrap();
            f.extend(events.iter().map(|e| (reason.clone(), e.event_id())));
        })
        .build()
        .unwrap();
    let ids: Vec<Uuid> = (0..2_000).map(|i| track(&tracker, i)).collect();
    // Let every event reach the file (commits every 5 ms), then cut the file to a tenth.
    std::thread::sleep(Duration::from_millis(300));
    let segment = segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len / 10)
        .unwrap();
    up.store(true, Ordering::SeqCst);
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    let lost = s.dropped(DropReason::SpoolError);
    assert!(lost > 1_000, "most spilled events were cut: {s:?}");
    assert_eq!(s.sent + lost, 2_000, "{s:?}");
    assert_eq!(s.pending, 0);
    // Each loss reached the callback, with its id.
    let failures = failures.lock().unwrap();
    assert_eq!(failures.len() as u64, lost);
    assert!(failures.iter().all(|(r, id)| *r
        == eventwire::FailureReason::Dropped(DropReason::SpoolError)
        && ids.contains(id)));
    drop(failures);
    tracker.shutdown(T).unwrap();
    drop(tracker);
    // Everything was acknowledged: nothing comes back, and the damaged segment is gone.
    let tracker = builder(&MemoryTransport::new(), dir.path())
        .build()
        .unwrap();
    assert_eq!(tracker.stats().recovered, 0);
    assert!(!segment.exists(), "the damaged segment was not deleted");
}

/// The file system refusing to start a new segment (here: something else already has the
/// next segment's name) loses nothing, keeps the spool's index true, and does not leak the
/// room that acknowledgements give back: rounds of fully delivered events never end in
/// `spool_full`, and nothing is replayed after a restart.
#[test]
fn a_failed_rotation_loses_nothing_and_leaks_no_room() {
    let dir = tempfile::tempdir().unwrap();
    let transport = MemoryTransport::new();
    let tracker = builder(&transport, dir.path())
        .spool_max_bytes(64 * 1024)
        .build()
        .unwrap();
    // Directories where segments 2…40 would go: every `open` of a new segment fails (and a
    // later start must not take them for segments).
    for n in 2..=40u64 {
        std::fs::create_dir_all(dir.path().join(format!("{n:020}.log"))).unwrap();
    }
    let mut ids = Vec::new();
    for round in 0..20 {
        for i in 0..50 {
            ids.push(
                tracker
                    .track_json(
                        SCHEMA,
                        &json!({ "round": round, "i": i, "pad": "x".repeat(200) }),
                    )
                    .unwrap_or_else(|e| panic!("round {round}: {e}")),
            );
        }
        tracker.flush(T).unwrap();
    }
    let s = tracker.stats();
    assert_eq!(
        (s.sent, s.dropped_total(), s.pending),
        (1_000, 0, 0),
        "{s:?}"
    );
    tracker.shutdown(T).unwrap();
    drop(tracker);
    let again = MemoryTransport::new();
    let tracker = builder(&again, dir.path()).build().unwrap();
    tracker.flush(T).unwrap();
    assert_eq!(tracker.stats().recovered, 0, "delivered events came back");
    assert!(again.batches().is_empty());
    assert_eq!(transport.event_ids(), ids);
}

/// The OS's file operations, with writes, fsyncs or reads failing while a switch is on.
#[derive(Debug, Default)]
struct Switches {
    writes: AtomicBool,
    reads: AtomicBool,
}

#[derive(Debug)]
struct SwitchedFs(Arc<Switches>);

#[derive(Debug)]
struct SwitchedFile(Box<dyn SegmentFile>, Arc<Switches>);

fn refused() -> std::io::Error {
    std::io::Error::from_raw_os_error(28) // ENOSPC
}

impl SegmentFile for SwitchedFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
        if self.1.writes.load(Ordering::SeqCst) {
            return Err(refused());
        }
        self.0.write_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        if self.1.reads.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(5)); // EIO
        }
        self.0.read_exact_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if self.1.writes.load(Ordering::SeqCst) {
            return Err(refused());
        }
        self.0.sync_data()
    }
    fn try_clone(&self) -> std::io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(SwitchedFile(self.0.try_clone()?, self.1.clone())))
    }
}

impl SpoolFs for SwitchedFs {
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        OsFs.create_dir_all(dir)
    }
    fn segments(&self, dir: &std::path::Path) -> std::io::Result<Vec<u64>> {
        OsFs.segments(dir)
    }
    fn read(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        OsFs.read(path)
    }
    fn open_segment(
        &self,
        path: &std::path::Path,
        create: bool,
    ) -> std::io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(SwitchedFile(
            OsFs.open_segment(path, create)?,
            self.0.clone(),
        )))
    }
    fn remove(&self, path: &std::path::Path) -> std::io::Result<()> {
        OsFs.remove(path)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        OsFs.sync_dir(dir)
    }
}

/// An event is `kept_in_spool` at shutdown only if it is durable there: with the disk
/// refusing writes, what is pending is given up with a reason (and reported), never counted
/// as kept and then missing at the next start.
#[test]
fn only_durable_events_are_kept_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let switches = Arc::new(Switches::default());
    let (down, _) = switchable();
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = failures.clone();
    let tracker = builder(&down, dir.path())
        .spool_fs(Arc::new(SwitchedFs(switches.clone())))
        .queue_capacity(40)
        .when_full(eventwire::WhenFull::Block(T))
        .on_failure(move |_, events| {
            count.fetch_add(events.len() as u64, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    // Some events reach the disk; then the disk fills up.
    for i in 0..100 {
        track(&tracker, i);
    }
    std::thread::sleep(Duration::from_millis(300));
    switches.writes.store(true, Ordering::SeqCst);
    for i in 100..300 {
        track(&tracker, i);
    }
    let _ = tracker.shutdown(Duration::from_millis(200));
    let s = tracker.stats();
    assert_eq!(s.tracked, 300);
    assert_eq!(s.pending, 0, "{s:?}");
    assert_eq!(s.sent + s.dropped_total() + s.kept_in_spool, 300, "{s:?}");
    assert_eq!(
        failures.load(Ordering::SeqCst),
        s.dropped_total(),
        "each drop reported"
    );
    assert!(
        s.dropped_total() > 0,
        "the disk refused, so not all can be kept: {s:?}"
    );
    drop(tracker);
    // What was counted as kept is exactly what comes back.
    let up = MemoryTransport::new();
    let next = builder(&up, dir.path()).build().unwrap();
    next.flush(T).unwrap();
    assert_eq!(next.stats().recovered, s.kept_in_spool, "{s:?}");
    assert_eq!(next.stats().sent, s.kept_in_spool);
}

/// A read of an event waiting on disk that fails with an I/O error (not damage) is tried
/// again: once the disk answers, the event is delivered, not dropped.
#[test]
fn a_passing_read_error_delays_a_spilled_event_but_does_not_drop_it() {
    let dir = tempfile::tempdir().unwrap();
    let switches = Arc::new(Switches::default());
    let (transport, up) = switchable();
    let tracker = builder(&transport, dir.path())
        .spool_fs(Arc::new(SwitchedFs(switches.clone())))
        .queue_capacity(20)
        .max_batch_events(10)
        .when_full(eventwire::WhenFull::Block(T))
        .spool_commit_interval(Duration::from_millis(5))
        .build()
        .unwrap();
    for i in 0..500 {
        track(&tracker, i);
    }
    std::thread::sleep(Duration::from_millis(200)); // on disk, spilled
    switches.reads.store(true, Ordering::SeqCst);
    up.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    switches.reads.store(false, Ordering::SeqCst);
    tracker.flush(T).unwrap();
    let s = tracker.stats();
    assert_eq!((s.sent, s.dropped_total(), s.pending), (500, 0, 0), "{s:?}");
}

/// A `before_send` hook cannot change the event id (the deduplication key, and the spool's
/// index): two events given the same id by a hook are two events.
#[test]
fn a_hook_cannot_reuse_an_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let transport = MemoryTransport::new();
    let tracker = builder(&transport, dir.path())
        .before_send(|mut e| {
            e.event_id = Uuid::nil();
            Some(e)
        })
        .build()
        .unwrap();
    let a = track(&tracker, 1);
    let b = track(&tracker, 2);
    tracker.flush(T).unwrap();
    assert_ne!(a, Uuid::nil());
    assert_eq!(transport.event_ids(), vec![a, b]);
    assert_eq!(tracker.stats().sent, 2);
}
