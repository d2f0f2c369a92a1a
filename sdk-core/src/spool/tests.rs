//! The storage engine's tests: every failure path of the disk (refused writes, short
//! writes, failed fsyncs, damaged and torn records, a full disk, deletions refused) against
//! one fault-injecting file system. Over 600 lines on purpose: the cases share their fixture
//! and read best side by side.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use super::*;

fn cfg() -> SpoolConfig {
    SpoolConfig {
        max_bytes: 1 << 20,
        segment_bytes: 4 * 1024,
    }
}

fn event(i: u128) -> Vec<u8> {
    format!(
        r#"{{"event_id":"{i}","data":{{"n":{i},"pad":"{}"}}}}"#,
        "x".repeat((i % 50) as usize)
    )
    .into_bytes()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// A closed spool of ten committed events, and its one segment.
fn ten_committed_events() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    for i in 0..10 {
        s.append(i, &event(i)).unwrap();
    }
    s.commit().unwrap();
    drop(s);
    let seg = segments(dir.path()).pop().unwrap();
    (dir, seg)
}

impl Spool {
    /// A crash: the lock goes, the buffered bytes reach the disk only up to `keep` of them.
    fn crash(mut self, keep: usize) {
        let keep = keep.min(self.buffer.len());
        let _ = self.file.write_at(&self.buffer[..keep], self.flushed);
        self.buffer.clear();
        self.dirty_tail = false;
    }
}

#[test]
fn events_come_back_until_acknowledged_in_order_with_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, r) = Spool::open(dir.path(), cfg()).unwrap();
    assert!(r.pending.is_empty());
    for i in 0..100 {
        s.append(i, &event(i)).unwrap();
    }
    s.commit().unwrap();
    assert!(s.ack(&(0..40).collect::<Vec<_>>()).error.is_none());
    s.commit().unwrap();
    drop(s);
    let (mut s, r) = Spool::open(dir.path(), cfg()).unwrap();
    assert_eq!(r.pending, (40..100).collect::<Vec<_>>());
    assert!(r
        .pending
        .iter()
        .all(|id| s.read(*id).unwrap() == event(*id)));
    let bytes: usize = (40..100).map(|i| event(i).len()).sum();
    assert_eq!(r.pending_bytes, bytes as u64);
    assert_eq!((r.corrupt_records, r.corrupt_bytes), (0, 0));
    assert_eq!(s.pending(), 60);
}

#[test]
fn a_second_tracker_on_the_same_directory_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, _) = Spool::open(dir.path(), cfg()).unwrap();
    let err = Spool::open(dir.path(), cfg()).unwrap_err();
    assert!(matches!(err, SpoolError::Locked(_)), "{err}");
    assert!(err.to_string().contains("in use"));
}

#[test]
fn a_torn_tail_is_cut_and_counted_and_the_records_before_it_kept() {
    let (dir, seg) = ten_committed_events();
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let (mut s, r) = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(
        r.pending.len(),
        9,
        "the torn 10th record is gone, the 9 before it stay"
    );
    assert!(r.corrupt_bytes > 0);
    // Appends continue after the last good record: nothing follows garbage.
    s.append(100, &event(100)).unwrap();
    s.commit().unwrap();
    drop(s);
    let (_s, r) = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(r.pending.len(), 10);
    assert_eq!((r.corrupt_records, r.corrupt_bytes), (0, 0));
}

#[test]
fn a_damaged_record_is_skipped_and_counted_and_the_others_kept() {
    let (dir, seg) = ten_committed_events();
    let mut data = std::fs::read(&seg).unwrap();
    // Flip a byte inside the 5th record's body.
    let mut at = 0;
    for _ in 0..4 {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        at += HEADER + len;
    }
    data[at + HEADER + 20] ^= 0xff;
    std::fs::write(&seg, &data).unwrap();
    let (_s, r) = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    let ids = r.pending;
    assert_eq!(ids, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
    assert_eq!((r.corrupt_records, r.corrupt_bytes), (1, 0));
}

#[test]
fn a_full_spool_refuses_without_writing_and_acknowledged_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        max_bytes: 10 * 1024,
        segment_bytes: 2 * 1024,
    };
    let (mut s, _) = Spool::open(dir.path(), config).unwrap();
    let mut accepted = Vec::new();
    for i in 0..1000 {
        match s.append(i, &event(i)) {
            Ok(()) => accepted.push(i),
            Err(SpoolError::Full { used, max }) => {
                assert!(used <= max);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        accepted.len() > 20 && accepted.len() < 1000,
        "{}",
        accepted.len()
    );
    assert!(segments(dir.path()).len() > 2);
    assert!(s.ack(&accepted).error.is_none());
    s.commit().unwrap();
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "only the fresh active segment is left"
    );
    assert!(s.used_bytes() < 1024, "{}", s.used_bytes());
    s.append(5000, &event(5000)).unwrap();
}

#[test]
fn the_reader_never_panics_on_garbage() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..2000 {
        let mut data = Vec::with_capacity(n);
        for _ in 0..n % 300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push(x as u8);
        }
        let s = scan(&data);
        assert!(s.good_len as usize <= data.len());
        assert_eq!(s.corrupt_bytes as usize, data.len() - s.good_len as usize);
    }
}

/// Appended events not acknowledged, in order.
fn unacked(order: &[u128], acks: &std::collections::HashSet<u128>) -> Vec<u128> {
    order
        .iter()
        .copied()
        .filter(|id| !acks.contains(id))
        .collect()
}

/// The storage-engine test: random appends, acknowledgements, commits, clean reopens and
/// crashes (buffered bytes reaching the disk only in part), checked against an in-memory
/// reference after every reopen.
#[test]
fn matches_a_reference_model_through_crashes() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for _scenario in 0..60 {
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig {
            max_bytes: 1 << 20,
            segment_bytes: 512 + rand(4096),
        };
        let (mut s, _) = Spool::open(dir.path(), config).unwrap();
        let mut next: u128 = 0;
        // Reference: every event ever appended (in order); acknowledgements made durable;
        // acknowledgements made but perhaps not durable; events durable.
        let mut order: Vec<u128> = Vec::new();
        let mut durable_acks = std::collections::HashSet::new();
        let mut acks = std::collections::HashSet::new();
        let mut durable: std::collections::HashSet<u128> = std::collections::HashSet::new();
        let mut appended_since_commit: Vec<u128> = Vec::new();
        let mut acked_since_commit: Vec<u128> = Vec::new();
        for _op in 0..200 {
            match rand(100) {
                0..=49 => {
                    s.append(next, &event(next)).unwrap();
                    order.push(next);
                    appended_since_commit.push(next);
                    next += 1;
                }
                50..=64 => {
                    let candidates = unacked(&order, &acks);
                    if !candidates.is_empty() {
                        let k = 1 + rand(candidates.len() as u64) as usize;
                        let chosen: Vec<u128> = candidates.into_iter().take(k).collect();
                        assert!(s.ack(&chosen).error.is_none());
                        acks.extend(chosen.iter().copied());
                        acked_since_commit.extend(chosen);
                    }
                }
                65..=69 => {
                    // Reads see what was appended, committed or not.
                    let candidates = unacked(&order, &acks);
                    if let Some(id) = candidates.get(rand(candidates.len().max(1) as u64) as usize)
                    {
                        assert_eq!(s.read(*id).unwrap(), event(*id));
                    }
                    if let Some(id) = acks.iter().next() {
                        assert!(matches!(s.read(*id), Err(SpoolError::Unknown(_))));
                    }
                }
                70..=84 => {
                    s.commit().unwrap();
                    durable.extend(appended_since_commit.drain(..));
                    durable_acks.extend(acked_since_commit.drain(..));
                }
                _ => {
                    let crash = rand(2) == 0;
                    if crash {
                        s.crash(rand(4096) as usize);
                    } else {
                        drop(s); // a clean close writes the buffer, not fsyncs: as a process exit
                        durable.extend(appended_since_commit.drain(..));
                        durable_acks.extend(acked_since_commit.drain(..));
                    }
                    let (reopened, r) = Spool::open(dir.path(), config).unwrap();
                    s = reopened;
                    let pending = r.pending.clone();
                    // Nothing durable and unacknowledged is lost.
                    for id in &durable {
                        if !acks.contains(id) {
                            assert!(pending.contains(id), "lost durable event {id}");
                        }
                    }
                    // A durable acknowledgement is respected.
                    assert!(pending.iter().all(|id| !durable_acks.contains(id)));
                    // Nothing invented, order kept, bytes intact.
                    let positions: Vec<usize> = pending
                        .iter()
                        .map(|id| order.iter().position(|o| o == id).expect("known id"))
                        .collect();
                    assert!(positions.windows(2).all(|w| w[0] < w[1]), "order");
                    assert!(pending.iter().all(|id| s.read(*id).unwrap() == event(*id)));
                    // What came back is the new truth: events not back are gone for good,
                    // events back are pending again (an acknowledgement lost in the crash
                    // means a resend, which the collector deduplicates).
                    order.retain(|id| pending.contains(id));
                    acks.retain(|id| !pending.contains(id));
                    durable = pending.iter().copied().collect();
                    durable_acks = acks.clone();
                    appended_since_commit.clear();
                    acked_since_commit.clear();
                    if crash {
                        // The crash may have left a torn record: counted, never a panic.
                        let _ = (r.corrupt_records, r.corrupt_bytes);
                    }
                }
            }
        }
    }
}

/// Which file operation a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    ReadAt,
    SetLen,
    Sync,
    Clone,
    Open,
    Remove,
    SyncDir,
}

/// The fault plan shared by a [`FaultyFs`] and its files: every call draws, and one in
/// `one_in` fails (while `armed`). A failed write may first write part of its bytes for
/// real (a torn write), or write fewer bytes and report it (a short write, which is no
/// error).
#[derive(Debug)]
struct Plan {
    armed: bool,
    one_in: u64,
    x: u64,
    /// Faults injected so far, by operation.
    injected: Vec<Op>,
}

impl Plan {
    fn draw(&mut self, n: u64) -> u64 {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x % n
    }

    /// Whether this call of `op` fails.
    fn fails(&mut self, op: Op) -> bool {
        if self.armed && self.draw(self.one_in) == 0 {
            self.injected.push(op);
            true
        } else {
            false
        }
    }
}

type SharedPlan = Arc<std::sync::Mutex<Plan>>;

fn io_error(plan: &SharedPlan) -> std::io::Error {
    let errno = match plan.lock().unwrap().draw(3) {
        0 => 28,  // ENOSPC
        1 => 5,   // EIO
        _ => 122, // EDQUOT
    };
    std::io::Error::from_raw_os_error(errno)
}

/// The OS's file system with faults injected by a [`Plan`].
#[derive(Debug)]
struct FaultyFs {
    plan: SharedPlan,
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn SegmentFile>,
    plan: SharedPlan,
}

impl FaultyFs {
    fn fail(&self, op: Op) -> std::io::Result<()> {
        if self.plan.lock().unwrap().fails(op) {
            Err(io_error(&self.plan))
        } else {
            Ok(())
        }
    }
}

impl SegmentFile for FaultyFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
        let (fails, kind, cut) = {
            let mut plan = self.plan.lock().unwrap();
            let fails = plan.fails(Op::Write);
            let kind = plan.draw(3);
            let cut = plan.draw(buf.len() as u64 + 1) as usize;
            (fails, kind, cut)
        };
        if !fails {
            return self.inner.write_at(buf, offset);
        }
        match kind {
            // Nothing written.
            0 => Err(io_error(&self.plan)),
            // Torn: part of it reaches the file, then the error.
            1 => {
                let _ = self.inner.write_at(&buf[..cut], offset);
                Err(io_error(&self.plan))
            }
            // Short: part of it, reported as such.
            _ => self.inner.write_at(&buf[..cut], offset),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        if self.plan.lock().unwrap().fails(Op::ReadAt) {
            return Err(io_error(&self.plan));
        }
        self.inner.read_exact_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        if self.plan.lock().unwrap().fails(Op::SetLen) {
            return Err(io_error(&self.plan));
        }
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        if self.plan.lock().unwrap().fails(Op::Sync) {
            return Err(io_error(&self.plan));
        }
        self.inner.sync_data()
    }

    fn try_clone(&self) -> std::io::Result<Box<dyn SegmentFile>> {
        if self.plan.lock().unwrap().fails(Op::Clone) {
            return Err(io_error(&self.plan));
        }
        Ok(Box::new(FaultyFile {
            inner: self.inner.try_clone()?,
            plan: self.plan.clone(),
        }))
    }
}

impl SpoolFs for FaultyFs {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        OsFs.create_dir_all(dir)
    }

    fn segments(&self, dir: &Path) -> std::io::Result<Vec<u64>> {
        OsFs.segments(dir)
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        OsFs.read(path)
    }

    fn open_segment(&self, path: &Path, create: bool) -> std::io::Result<Box<dyn SegmentFile>> {
        self.fail(Op::Open)?;
        Ok(Box::new(FaultyFile {
            inner: OsFs.open_segment(path, create)?,
            plan: self.plan.clone(),
        }))
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.fail(Op::Remove)?;
        OsFs.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.fail(Op::SyncDir)?;
        OsFs.sync_dir(dir)
    }
}

/// The storage-engine test under a failing disk: the model test's random appends, acks,
/// reads, commits, closes and crashes, with every file operation failing one time in
/// `one_in` (no space, I/O error, torn and short writes, failed opens, deletes, truncations
/// and fsyncs). After every operation:
///
/// - an event the spool holds reads back with its exact bytes, or, only when that read
///   itself was failed, with an error — never other bytes;
/// - a failed append stores nothing; a successful one is readable at once;
/// - an acknowledgement frees exactly the bytes of the events it names;
///
/// and after every reopen: every event made durable by a commit that succeeded, and not
/// acknowledged, comes back (nothing live was deleted), nothing comes back that was never
/// appended, an acknowledgement made durable is respected, and order and bytes are kept.
#[test]
fn keeps_its_index_true_through_disk_faults_and_crashes() {
    use std::collections::HashSet;
    let mut injected_total: Vec<Op> = Vec::new();
    let scenarios: u64 = std::env::var("SPOOL_FAULT_SCENARIOS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(80);
    for scenario in 0..scenarios {
        let plan: SharedPlan = Arc::new(std::sync::Mutex::new(Plan {
            armed: true,
            one_in: 4 + scenario % 12,
            x: 0x2545_f491_4f6c_dd1d ^ (scenario.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            injected: Vec::new(),
        }));
        let fs: Arc<dyn SpoolFs> = Arc::new(FaultyFs { plan: plan.clone() });
        let rand = |n: u64| plan.lock().unwrap().draw(n);
        let arm = |on: bool| plan.lock().unwrap().armed = on;
        let injected = || plan.lock().unwrap().injected.len();
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig {
            max_bytes: 1 << 20,
            segment_bytes: 512 + rand(4096),
        };
        let open = |fs: &Arc<dyn SpoolFs>| {
            // A fault at open is a clear error; the next start (disk healthy) opens.
            match Spool::open_on(fs.clone(), dir.path(), config) {
                Ok(opened) => opened,
                Err(e) => {
                    assert!(matches!(e, SpoolError::Io(_)), "{e}");
                    arm(false);
                    let opened = Spool::open_on(fs.clone(), dir.path(), config).unwrap();
                    arm(true);
                    opened
                }
            }
        };
        let (mut s, _) = open(&fs);
        let mut next: u128 = 0;
        let mut order: Vec<u128> = Vec::new();
        let mut acks: HashSet<u128> = HashSet::new();
        let mut durable: HashSet<u128> = HashSet::new();
        let mut durable_acks: HashSet<u128> = HashSet::new();
        let mut since_commit: Vec<u128> = Vec::new();
        let mut acked_since_commit: Vec<u128> = Vec::new();
        for op in 0..300 {
            match rand(100) {
                0..=44 => {
                    let before = injected();
                    match s.append(next, &event(next)) {
                        Ok(()) => {
                            order.push(next);
                            since_commit.push(next);
                            assert!(s.contains(next));
                        }
                        Err(e) => {
                            assert!(injected() > before, "append failed without a fault: {e}");
                            assert!(!s.contains(next), "a failed append left the event in");
                        }
                    }
                    next += 1;
                }
                45..=59 => {
                    let candidates = unacked(&order, &acks);
                    if !candidates.is_empty() {
                        let k = 1 + rand(candidates.len() as u64) as usize;
                        let chosen: Vec<u128> = candidates.into_iter().take(k).collect();
                        let expected: u64 = chosen.iter().map(|id| event(*id).len() as u64).sum();
                        // Unknown ids (and ones acked before) are ignored.
                        let mut with_noise = chosen.clone();
                        with_noise.push(u128::MAX);
                        let acked = s.ack(&with_noise);
                        assert_eq!(acked.freed, expected, "an ack frees exactly its events");
                        assert!(chosen.iter().all(|id| !s.contains(*id)));
                        acks.extend(chosen.iter().copied());
                        acked_since_commit.extend(chosen);
                    }
                }
                60..=69 => {
                    let candidates = unacked(&order, &acks);
                    if let Some(id) = candidates.get(rand(candidates.len().max(1) as u64) as usize)
                    {
                        let before = injected();
                        match s.read(*id) {
                            Ok(bytes) => assert_eq!(bytes, event(*id), "wrong bytes for {id}"),
                            Err(e) => {
                                assert!(
                                    injected() > before,
                                    "read of {id} failed without a fault: {e}"
                                )
                            }
                        }
                    }
                }
                70..=84 => {
                    let committed = s.prepare_commit().and_then(|c| Ok(c.sync()?));
                    if let Ok(synced) = &committed {
                        s.mark_synced(synced);
                        // Durable means durable: every event not acknowledged, of this
                        // commit and of the ones before it.
                        for id in unacked(&order, &acks) {
                            assert!(
                                s.is_durable(id),
                                "scenario {scenario} op {op}: {id} not durable after a commit"
                            );
                        }
                    }
                    if committed.is_ok() {
                        durable.extend(since_commit.drain(..));
                        durable_acks.extend(acked_since_commit.drain(..));
                    }
                }
                _ => {
                    if rand(2) == 0 {
                        s.crash(rand(4096) as usize);
                    } else {
                        // A clean close writes the buffer (or tries to): not a durability point.
                        drop(s);
                    }
                    let (reopened, r) = open(&fs);
                    s = reopened;
                    let pending: HashSet<u128> = r.pending.iter().copied().collect();
                    for id in &durable {
                        if !acks.contains(id) {
                            assert!(
                                pending.contains(id),
                                "scenario {scenario} op {op}: lost durable event {id}"
                            );
                        }
                    }
                    let back: Vec<&u128> = r
                        .pending
                        .iter()
                        .filter(|id| durable_acks.contains(id))
                        .collect();
                    assert!(
                        back.is_empty(),
                        "scenario {scenario} op {op}: a durable acknowledgement was not respected: {back:?} of {:?}; files {:?}", r.pending,
                        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>()
                    );
                    let positions: Vec<usize> = r
                        .pending
                        .iter()
                        .map(|id| order.iter().position(|o| o == id).expect("never appended"))
                        .collect();
                    assert!(positions.windows(2).all(|w| w[0] < w[1]), "order");
                    order.retain(|id| pending.contains(id));
                    acks.retain(|id| !pending.contains(id));
                    durable = pending;
                    durable_acks = acks.clone();
                    since_commit.clear();
                    acked_since_commit.clear();
                }
            }
            // Nothing live was lost from the index or its files: with the disk quiet for a
            // moment, every unacknowledged event reads back exactly.
            if op % 10 == 0 {
                arm(false);
                for id in unacked(&order, &acks) {
                    assert_eq!(
                        s.read(id).unwrap(),
                        event(id),
                        "scenario {scenario} op {op}: {id}"
                    );
                }
                arm(true);
            }
        }
        injected_total.extend(plan.lock().unwrap().injected.iter().copied());
    }
    // The faults reached every kind of operation.
    for op in [
        Op::Write,
        Op::ReadAt,
        Op::SetLen,
        Op::Sync,
        Op::Clone,
        Op::Open,
        Op::Remove,
        Op::SyncDir,
    ] {
        assert!(injected_total.contains(&op), "no {op:?} fault was injected");
    }
}

/// `is_durable` follows the fsyncs: an appended event is not durable until a commit's sync
/// succeeded; a failed sync leaves it not durable, and the next commit syncs it again.
#[test]
fn an_event_is_durable_once_an_fsync_covered_it() {
    let plan: SharedPlan = Arc::new(std::sync::Mutex::new(Plan {
        armed: false,
        one_in: 1,
        x: 7,
        injected: Vec::new(),
    }));
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        max_bytes: 1 << 20,
        segment_bytes: 1024,
    };
    let fs = Arc::new(FaultyFs { plan: plan.clone() });
    let (mut s, _) = Spool::open_on(fs, dir.path(), config).unwrap();
    for i in 0..30 {
        s.append(i, &event(i)).unwrap();
    }
    assert!((0..30).all(|i| !s.is_durable(i)), "nothing synced yet");
    // The commit's fsync fails: still not durable.
    let commit = s.prepare_commit().unwrap();
    plan.lock().unwrap().armed = true;
    assert!(commit.sync().is_err());
    plan.lock().unwrap().armed = false;
    assert!((0..30).all(|i| !s.is_durable(i)));
    // The next commit syncs every segment again, closed ones included.
    s.commit().unwrap();
    assert!((0..30).all(|i| s.is_durable(i)));
    assert!(
        segments(dir.path()).len() > 1,
        "several segments were involved"
    );
    s.append(30, &event(30)).unwrap();
    assert!(!s.is_durable(30));
    s.sync_all().unwrap();
    assert!(s.is_durable(30));
}

/// Acknowledging many events at once (more than one ack record holds) keeps them all
/// acknowledged across a reopen.
#[test]
fn a_large_acknowledgement_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        max_bytes: 64 << 20,
        ..SpoolConfig::default()
    };
    let (mut s, _) = Spool::open(dir.path(), config).unwrap();
    let ids: Vec<u128> = (0..40_000).collect();
    for &i in &ids {
        s.append(i, b"{}").unwrap();
    }
    s.append(u128::MAX, b"{}").unwrap();
    assert!(s.ack(&ids).error.is_none());
    s.commit().unwrap();
    drop(s);
    let (_s, r) = Spool::open(dir.path(), config).unwrap();
    assert_eq!(r.pending, vec![u128::MAX]);
}

/// A file named like the last possible segment (left by someone else) is no reason to
/// panic: starting a new segment fails cleanly, appends go on in the current one.
#[test]
fn the_last_segment_number_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{:020}.log", u64::MAX)), b"").unwrap();
    let (mut s, r) = Spool::open(dir.path(), cfg()).unwrap();
    assert!(r.pending.is_empty());
    for i in 0..200 {
        s.append(i, &event(i)).unwrap();
    }
    let acked = s.ack(&(0..200).collect::<Vec<_>>());
    assert!(acked.error.is_some(), "no new segment can be numbered");
    s.append(500, &event(500)).unwrap();
    assert_eq!(s.read(500).unwrap(), event(500));
}
