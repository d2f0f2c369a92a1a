//! Group commit: one task owns the deduplication windows, decides which records are new in
//! the order requests arrive, and writes the new records of every request waiting at that
//! moment with one write to each sink. Requests hold no lock while sinks write: they wait
//! for their own answer ([`Committed`]), which comes once their own lines are written (or
//! the write failed).
//!
//! Exactness: only this task reads or changes the windows, and it decides a group only after
//! the previous group's writes have finished, so a record counted as stored was stored, and
//! a second copy of an event (a retry racing its original, in the same group or a later
//! one) is not written again. A request is answered 200 only when every record it relies
//! on is stored: its own new ones, and the first copies (in other requests of its group) of
//! those it was told are duplicates; otherwise 503, and its resend finds out again.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::dedup::DedupWindow;
use crate::sink::{Sink, SinkRecord};

/// A record for the good sink, with the key its event id is remembered by
/// ([`crate::dedup::key`]).
#[derive(Debug)]
pub(crate) struct Good {
    pub(crate) key: u128,
    pub(crate) record: SinkRecord,
}

/// A record for the dead-letter sink, with the key the same refusal of the same event is
/// remembered by (`None`: no reliable identity, always written).
#[derive(Debug)]
pub(crate) struct Dead {
    pub(crate) key: Option<u128>,
    pub(crate) record: SinkRecord,
}

/// One request's records, in batch order, and where to send what became of them.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) good: Vec<Good>,
    pub(crate) bad: Vec<Dead>,
    pub(crate) reply: oneshot::Sender<Committed>,
}

/// What became of one request's records. Indices are into the job's `good` and `bad`.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    /// Good records written (all the new ones, unless a write failed).
    pub(crate) written: Vec<usize>,
    /// Good records not written: their event was already stored. Empty when a write failed.
    pub(crate) duplicates: Vec<usize>,
    /// Dead letters written.
    pub(crate) dead_written: Vec<usize>,
    /// Dead letters not written: the same refusal of the same event was already stored.
    /// Empty when a write failed.
    pub(crate) dead_repeated: Vec<usize>,
    /// The lines written, good then dead letters, when the dev view keeps them.
    pub(crate) good_lines: Vec<SinkRecord>,
    /// See `good_lines`.
    pub(crate) bad_lines: Vec<SinkRecord>,
    /// Why a sink refused the group's records: the request is answered 503 and resent (what
    /// a sink did take is in `written` and remembered, so the resend does not write it
    /// again).
    pub(crate) failure: Option<String>,
}

/// The task's state: the sinks and the windows it alone changes.
pub(crate) struct Committer {
    pub(crate) good: Arc<dyn Sink>,
    pub(crate) bad: Arc<dyn Sink>,
    /// Ids of good events stored.
    pub(crate) window: DedupWindow,
    /// Keys of dead letters stored (a resend of a refused event is refused again, but not
    /// written to the dead-letter sink twice).
    pub(crate) dead_window: DedupWindow,
    /// Whether answers carry the lines written (the dev view).
    pub(crate) keep_lines: bool,
    /// Most requests in one group.
    pub(crate) max_group: usize,
    /// When the group being written began to be written (ms since the Unix epoch; 0 when
    /// no write is under way), for `/healthz`.
    pub(crate) busy_since: Arc<AtomicU64>,
    /// Groups a sink refused, by sink (`good`, `bad`): `eventwire_sink_errors_total`.
    pub(crate) sink_errors: prometheus::IntCounterVec,
}

/// Where a record of the group came from: its job and its index there.
#[derive(Clone, Copy)]
struct Origin {
    job: usize,
    index: usize,
    key: Option<u128>,
}

impl Committer {
    /// Commits groups until every sender is gone.
    pub(crate) async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut group = Vec::with_capacity(self.max_group);
        while jobs.recv_many(&mut group, self.max_group.max(1)).await > 0 {
            self.commit_group(std::mem::take(&mut group)).await;
        }
    }

    /// Decides, writes and answers one group.
    async fn commit_group(&mut self, jobs: Vec<Job>) {
        let mut answers: Vec<Committed> = jobs.iter().map(|_| Committed::default()).collect();
        let mut replies = Vec::with_capacity(jobs.len());
        let mut good_records = Vec::new();
        let mut good_origins = Vec::new();
        let mut bad_records = Vec::new();
        let mut bad_origins = Vec::new();
        // A copy of an event whose first copy is in this group stands or falls with it:
        // the key → the first copy's place among the group's records.
        let mut in_group: HashMap<u128, usize> = HashMap::new();
        let mut dead_in_group: HashMap<u128, usize> = HashMap::new();
        // (job, good or dead letter, the record it depends on)
        let mut depends: Vec<(usize, bool, usize)> = Vec::new();
        // Decided in arrival order: the first new copy of an event is written, the others
        // are duplicates.
        for (j, job) in jobs.into_iter().enumerate() {
            for (index, g) in job.good.into_iter().enumerate() {
                if self.window.contains_key(g.key) {
                    answers[j].duplicates.push(index);
                } else if let Some(&first) = in_group.get(&g.key) {
                    answers[j].duplicates.push(index);
                    depends.push((j, true, first));
                } else {
                    in_group.insert(g.key, good_records.len());
                    good_records.push(g.record);
                    good_origins.push(Origin {
                        job: j,
                        index,
                        key: Some(g.key),
                    });
                }
            }
            for (index, d) in job.bad.into_iter().enumerate() {
                match d.key {
                    Some(k) if self.dead_window.contains_key(k) => {
                        answers[j].dead_repeated.push(index);
                    }
                    Some(k) if dead_in_group.contains_key(&k) => {
                        answers[j].dead_repeated.push(index);
                        depends.push((j, false, dead_in_group[&k]));
                    }
                    key => {
                        if let Some(k) = key {
                            dead_in_group.insert(k, bad_records.len());
                        }
                        bad_records.push(d.record);
                        bad_origins.push(Origin { job: j, index, key });
                    }
                }
            }
            replies.push(job.reply);
        }

        self.busy_since.store(unix_ms(), Ordering::Relaxed);
        let good_failure = write(&*self.good, &good_records, |i| {
            if let Some(k) = good_origins[i].key {
                self.window.insert_key(k);
            }
        })
        .await;
        let (good_taken, bad_taken, failure) = match good_failure {
            // The dead letters wait for the resend: nothing of them is written now.
            Err((taken, why)) => {
                self.sink_errors.with_label_values(&["good"]).inc();
                (taken, BTreeSet::new(), Some(why))
            }
            Ok(()) => {
                let all = (0..good_records.len()).collect();
                match write(&*self.bad, &bad_records, |i| {
                    if let Some(k) = bad_origins[i].key {
                        self.dead_window.insert_key(k);
                    }
                })
                .await
                {
                    Ok(()) => (all, (0..bad_records.len()).collect(), None),
                    Err((taken, why)) => {
                        self.sink_errors.with_label_values(&["bad"]).inc();
                        (all, taken, Some(why))
                    }
                }
            }
        };

        self.busy_since.store(0, Ordering::Relaxed);
        // Each request's share of the group. A request is answered 200 only when every new
        // record of its own was stored; the others are resent, and find what was stored
        // duplicates.
        let mut missing = vec![0usize; answers.len()];
        for &(job, good, first) in &depends {
            let taken = if good { &good_taken } else { &bad_taken };
            if !taken.contains(&first) {
                missing[job] += 1;
            }
        }
        for (records, origins, taken, good) in [
            (good_records, &good_origins, &good_taken, true),
            (bad_records, &bad_origins, &bad_taken, false),
        ] {
            for (i, record) in records.into_iter().enumerate() {
                let o = origins[i];
                if !taken.contains(&i) {
                    missing[o.job] += 1;
                    continue;
                }
                let answer = &mut answers[o.job];
                let (indices, kept) = if good {
                    (&mut answer.written, &mut answer.good_lines)
                } else {
                    (&mut answer.dead_written, &mut answer.bad_lines)
                };
                indices.push(o.index);
                if self.keep_lines {
                    kept.push(record);
                }
            }
        }
        for ((mut answer, reply), missing) in answers.into_iter().zip(replies).zip(missing) {
            if missing > 0 {
                answer.failure = Some(failure.clone().unwrap_or_default());
                answer.duplicates.clear();
                answer.dead_repeated.clear();
            }
            // A request whose client left is still committed; nobody hears of it but the
            // counters, which its handler keeps (it runs to its end).
            let _ = reply.send(answer);
        }
    }
}

/// Now, in milliseconds since the Unix epoch (at least 1, so that 0 means "idle").
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        })
}

/// Writes `records` to `sink`; calls `remember` with the index of each record stored (all of
/// them, or on failure those the sink names, each once). On failure, the indices stored and
/// why.
async fn write(
    sink: &dyn Sink,
    records: &[SinkRecord],
    mut remember: impl FnMut(usize),
) -> Result<(), (BTreeSet<usize>, String)> {
    if records.is_empty() {
        return Ok(());
    }
    match sink.write(records).await {
        Ok(()) => {
            (0..records.len()).for_each(&mut remember);
            Ok(())
        }
        Err(e) => {
            let taken: BTreeSet<usize> = e
                .written()
                .iter()
                .copied()
                .filter(|&i| i < records.len())
                .collect();
            taken.iter().copied().for_each(&mut remember);
            tracing::error!(error = %e, written = taken.len(), of = records.len(), "a sink refused a group of records; answering 503");
            Err((taken, format!("sink unavailable: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::SinkError;
    use futures_util::future::BoxFuture;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A sink that fails when told to: all or nothing (a file) or some records taken (a
    /// broker). What it holds is the keys of the records it took.
    #[derive(Default)]
    struct Scripted {
        held: Mutex<Vec<u128>>,
        /// The next write's fate: `None` succeeds; `Some(mask)` fails, taking the records
        /// whose bit is set (0: none).
        fate: Mutex<Option<u64>>,
        /// Writes that failed.
        failures: std::sync::atomic::AtomicU64,
    }

    impl Sink for Scripted {
        fn write<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
            let fate = self.fate.lock().unwrap().take();
            let mut held = self.held.lock().unwrap();
            let key =
                |r: &SinkRecord| -> u128 { std::str::from_utf8(&r.line).unwrap().parse().unwrap() };
            let result = match fate {
                None => {
                    held.extend(records.iter().map(key));
                    Ok(())
                }
                Some(mask) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    let written: Vec<usize> = (0..records.len())
                        .filter(|i| mask >> (i % 64) & 1 == 1)
                        .collect();
                    held.extend(written.iter().map(|&i| key(&records[i])));
                    Err(SinkError::Broker {
                        sink: "scripted".into(),
                        message: "scripted failure".into(),
                        written,
                    })
                }
            };
            Box::pin(std::future::ready(result))
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    /// xorshift64*: a reproducible stream of numbers for the model.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// One request as the model knows it: its good keys and its dead letters' keys.
    #[derive(Clone, Debug)]
    struct Request {
        good: Vec<u128>,
        dead: Vec<Option<u128>>,
    }

    fn job(r: &Request) -> (Job, oneshot::Receiver<Committed>) {
        let record = |k: u128| SinkRecord {
            key: None,
            line: k.to_string().into_bytes(),
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            good: r
                .good
                .iter()
                .map(|&k| Good {
                    key: k,
                    record: record(k),
                })
                .collect(),
            // A dead letter without a key is told apart by a key of its own, far from the
            // others, so the sink's count of it can be checked.
            bad: r
                .dead
                .iter()
                .map(|&k| Dead {
                    key: k,
                    record: record(k.unwrap_or(u128::MAX)),
                })
                .collect(),
            reply,
        };
        (job, answer)
    }

    fn counts(keys: &[u128]) -> HashMap<u128, usize> {
        let mut counts = HashMap::new();
        for k in keys {
            *counts.entry(*k).or_default() += 1;
        }
        counts
    }

    /// Groups of requests sharing events (retries racing their originals, events sent
    /// twice in one batch), sinks failing all or nothing or part way, failed requests sent
    /// again, in random orders: a good event is stored at most once, a request answered
    /// without failure has every event of its own stored, what is counted written is what
    /// the sink holds, and once the sinks recover every event is stored exactly once.
    #[tokio::test]
    async fn every_event_is_stored_once_whatever_the_interleaving_and_failures() {
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let good = Arc::new(Scripted::default());
            let bad = Arc::new(Scripted::default());
            let mut committer = Committer {
                good: good.clone(),
                bad: bad.clone(),
                window: DedupWindow::new(1000),
                dead_window: DedupWindow::new(1000),
                keep_lines: rng.below(2) == 0,
                max_group: 8,
                busy_since: Arc::default(),
                sink_errors: prometheus::IntCounterVec::new(
                    prometheus::Opts::new("sink_errors", "test"),
                    &["sink"],
                )
                .unwrap(),
            };
            let mut pending: Vec<Request> = Vec::new();
            let mut offered_good = std::collections::HashSet::new();
            let mut offered_dead = std::collections::HashSet::new();
            let mut keyless_written = 0usize;
            let mut counted_written = 0usize;
            for round in 0..60 {
                let failing = round < 40;
                let mut group: Vec<Request> = Vec::new();
                // Some of the failed requests come back, in any order, with new ones.
                while !pending.is_empty() && rng.below(3) > 0 {
                    let i = rng.below(pending.len() as u64) as usize;
                    group.push(pending.swap_remove(i));
                }
                if round < 40 {
                    for _ in 0..rng.below(4) {
                        let good: Vec<u128> = (0..rng.below(6))
                            .map(|_| u128::from(rng.below(40)))
                            .collect();
                        let dead: Vec<Option<u128>> = (0..rng.below(3))
                            .map(|_| (rng.below(4) > 0).then(|| 1000 + u128::from(rng.below(20))))
                            .collect();
                        offered_good.extend(good.iter().copied());
                        offered_dead.extend(dead.iter().flatten().copied());
                        group.push(Request { good, dead });
                    }
                }
                if round >= 40 {
                    group.append(&mut pending);
                }
                if group.is_empty() {
                    continue;
                }
                for sink in [&good, &bad] {
                    *sink.fate.lock().unwrap() = (failing && rng.below(3) == 0).then(|| {
                        if rng.below(2) == 0 {
                            0
                        } else {
                            rng.next()
                        }
                    });
                }
                let (jobs, answers): (Vec<Job>, Vec<_>) = group.iter().map(job).unzip();
                committer.commit_group(jobs).await;
                let held_good = good.held.lock().unwrap().clone();
                let held_dead = bad.held.lock().unwrap().clone();
                let stored = counts(&held_good);
                assert!(stored.values().all(|&n| n == 1), "seed {seed}: {stored:?}");
                let dead_stored = counts(&held_dead);
                assert!(
                    dead_stored.iter().all(|(k, &n)| n == 1 || *k == u128::MAX),
                    "seed {seed}: {dead_stored:?}"
                );
                for (request, answer) in group.into_iter().zip(answers) {
                    let a = answer.await.unwrap();
                    counted_written += a.written.len();
                    keyless_written += a
                        .dead_written
                        .iter()
                        .filter(|&&i| request.dead[i].is_none())
                        .count();
                    assert_eq!(
                        a.good_lines.len(),
                        if committer.keep_lines {
                            a.written.len()
                        } else {
                            0
                        }
                    );
                    let mut seen: Vec<usize> =
                        a.written.iter().chain(&a.duplicates).copied().collect();
                    seen.sort_unstable();
                    seen.dedup();
                    assert_eq!(
                        seen.len(),
                        a.written.len() + a.duplicates.len(),
                        "seed {seed}"
                    );
                    if a.failure.is_none() {
                        assert_eq!(seen, (0..request.good.len()).collect::<Vec<_>>());
                        assert!(request.good.iter().all(|k| stored.contains_key(k)));
                        assert!(request
                            .dead
                            .iter()
                            .flatten()
                            .all(|k| dead_stored.contains_key(k)));
                        assert_eq!(
                            a.dead_written.len() + a.dead_repeated.len(),
                            request.dead.len()
                        );
                    } else {
                        assert!(failing, "seed {seed}: a failure without a failing sink");
                        assert!(a.duplicates.is_empty() && a.dead_repeated.is_empty());
                        pending.push(request);
                    }
                }
                assert_eq!(counted_written, held_good.len(), "seed {seed}");
                for (name, sink) in [("good", &good), ("bad", &bad)] {
                    assert_eq!(
                        committer.sink_errors.with_label_values(&[name]).get(),
                        sink.failures.load(Ordering::Relaxed),
                        "seed {seed}: the {name} sink's failures counted"
                    );
                }
                assert_eq!(
                    keyless_written,
                    dead_stored.get(&u128::MAX).copied().unwrap_or(0),
                    "seed {seed}"
                );
            }
            assert!(pending.is_empty(), "seed {seed}");
            let stored = counts(&good.held.lock().unwrap());
            assert_eq!(
                stored
                    .keys()
                    .copied()
                    .collect::<std::collections::HashSet<_>>(),
                offered_good,
                "seed {seed}"
            );
            let dead_stored = counts(&bad.held.lock().unwrap());
            assert!(offered_dead.iter().all(|k| dead_stored.get(k) == Some(&1)));
        }
    }
}
