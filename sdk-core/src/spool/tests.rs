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
    fn crash(self, keep: usize) {
        let (file, buffered) = self.writer.into_parts();
        let buffered = buffered.unwrap_or_default();
        let mut file = file;
        file.write_all(&buffered[..keep.min(buffered.len())])
            .unwrap();
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
    s.ack(&(0..40).collect::<Vec<_>>()).unwrap();
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
    s.ack(&accepted).unwrap();
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
                        s.ack(&chosen).unwrap();
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
                        drop(s); // a clean close flushes (BufWriter), not fsyncs: as a process exit
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
