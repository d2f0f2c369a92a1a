//! The spool thread: between `track()` and the worker when the tracker has a spool.
//!
//! ```text
//! track() ──inbox──▶ spool thread ──queue──▶ worker ──▶ collector
//!                      │  append, group commit (fsync)     │
//!                      │  ◀──────────── acks ──────────────┘
//!                      └─ queue full: the event stays on disk only (spilled) and is read
//!                         back when the queue has room; so are the events recovered at start
//! ```
//!
//! Every event is appended before the worker can see it, so an acknowledgement always follows
//! its append. The thread owns the [`Spool`]; nothing else touches the files.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::event::EncodedEvent;
use crate::seal::{PiiPolicy, Resized, Seal};
use crate::shared::{notify, FailureCallback, Shared};
use crate::spool::{Commit, Spool, SpoolError, Synced};
use crate::stats::{DropReason, FailureReason};

pub use crate::defaults::DEFAULT_SPOOL_COMMIT_INTERVAL;
/// How often spilled events are offered to the queue while they wait for room.
const FEED_TICK: Duration = Duration::from_millis(5);
/// Events taken from the inbox per turn before the thread looks at acknowledgements again.
const INBOX_TURN: usize = 4096;
/// How long reads of one event may keep failing with an I/O error (not damage: a lack of file
/// descriptors, a transient `EIO`) before it is given up as `spool_error`.
const READ_RETRY_FOR: Duration = Duration::from_secs(30);
/// A failure that repeats (a full disk refuses every append) is logged at most this often,
/// with how many were not logged; the counters in `Stats` count every one.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Rate limit for the log lines of a failure that repeats.
#[derive(Debug, Default)]
pub(crate) struct Repeats {
    next: Option<Instant>,
    quiet: u64,
}

impl Repeats {
    /// `Some(n)` when this occurrence should be logged (`n`: occurrences not logged since the
    /// last line), `None` to stay quiet.
    fn log(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.next {
            Some(next) if now < next => {
                self.quiet += 1;
                None
            }
            _ => {
                self.next = Some(now + LOG_EVERY);
                Some(std::mem::take(&mut self.quiet))
            }
        }
    }
}

/// What the worker tells the spool thread.
pub(crate) enum SpoolCtl {
    /// The collector answered for these events (accepted, duplicate, or rejected), or they
    /// were dropped with a reason: they must not come back.
    Ack(Vec<u128>),
    /// Shutdown begins: stop feeding the worker; events only on disk, and any that still
    /// arrive, stay there (counted at `Finish`).
    Close(flume::Sender<()>),
    /// Shutdown ends: the spool is written and fsynced whole; which of these events the
    /// worker gave up are durable in it (each `true` is kept for the next tracker); the
    /// spool thread settles the events only it holds the same way (kept if durable, else
    /// `spool_error`, reported), then exits.
    Finish {
        abandoned: Vec<u128>,
        reply: flume::Sender<Vec<bool>>,
    },
}

/// The worker's end of the link.
pub(crate) struct SpoolLink {
    pub ctl: flume::Sender<SpoolCtl>,
    pub thread: std::thread::JoinHandle<()>,
}

pub(crate) struct Spooler {
    pub spool: Spool,
    pub inbox: flume::Receiver<EncodedEvent>,
    pub ctl: flume::Receiver<SpoolCtl>,
    pub queue: flume::Sender<EncodedEvent>,
    pub queue_capacity: usize,
    pub max_queue_bytes: usize,
    pub shared: Arc<Shared>,
    pub commit_interval: Duration,
    pub on_failure: Option<Arc<FailureCallback>>,
    /// On disk and not in memory, oldest first, with their admission numbers: read back
    /// when the queue has room.
    pub spilled: VecDeque<(u128, u64)>,
    /// Log rate limits: appends refused, commits failed, events unreadable.
    pub quiet: [Repeats; 3],
    /// Events stored while closing (they go no further): settled at `Finish`.
    pub left: Vec<EncodedEvent>,
    /// The spilled event at the front whose read keeps failing with an I/O error, and since
    /// when: retried until [`READ_RETRY_FOR`], then dropped.
    pub read_failing: Option<(u128, Instant)>,
    /// Seals personal data before an event is written.
    pub pii: Arc<PiiPolicy>,
    /// The per-event limit, checked again after sealing.
    pub max_event_bytes: usize,
}

enum Msg {
    Event(EncodedEvent),
    Ctl(SpoolCtl),
    Idle,
}

impl Spooler {
    /// Runs until [`SpoolCtl::Finish`] (or until both channels are closed).
    pub fn run(mut self) {
        // The fsyncs run on their own thread, so appends never wait for the disk.
        let (sync_tx, sync_rx) = flume::bounded::<Commit>(1);
        // What each commit that succeeded made durable comes back here.
        let (synced_tx, synced_rx) = flume::unbounded::<Synced>();
        let shared = self.shared.clone();
        let syncer = std::thread::Builder::new()
            .name("eventwire-fsync".into())
            .spawn(move || {
                let mut quiet = Repeats::default();
                for commit in sync_rx {
                    match commit.sync() {
                        Ok(synced) => {
                            let _ = synced_tx.send(synced);
                        }
                        Err(e) => {
                            shared.counters.spool_commit_error();
                            if let Some(unlogged) = quiet.log() {
                                tracing::error!(error = %e, unlogged, "spool: fsync failed; the events of this commit are still delivered from memory but may not survive a crash (the next commit syncs them again)");
                            }
                        }
                    }
                }
            });
        let (mut syncer, sync_tx) = match syncer {
            Ok(handle) => (Some(handle), Some(sync_tx)),
            Err(e) => {
                tracing::warn!(error = %e, "spool: no fsync thread; committing inline");
                (None, None)
            }
        };
        let mut closing = false;
        let mut dirty = false;
        let mut last_commit = Instant::now();
        loop {
            for synced in synced_rx.try_iter() {
                self.spool.mark_synced(&synced);
            }
            if self.ctl.is_disconnected() {
                // The worker is gone (it always says Finish first; this is a safety net).
                self.commit_now();
                return;
            }
            // Wake for the next commit, and every few ms while spilled events wait for room.
            let wait = if self.spilled.is_empty() || closing {
                self.commit_interval
            } else {
                FEED_TICK
            };
            let mut deadline = Instant::now() + wait;
            if dirty {
                deadline = deadline.min(last_commit + self.commit_interval);
            }
            let mut select =
                flume::Selector::new().recv(&self.ctl, |m| m.map_or(Msg::Idle, Msg::Ctl));
            if !self.inbox.is_disconnected() {
                select = select.recv(&self.inbox, |m| m.map_or(Msg::Idle, Msg::Event));
            }
            let msg = select.wait_deadline(deadline).unwrap_or(Msg::Idle);
            let mut forwarded = 0;
            match msg {
                Msg::Idle => {}
                Msg::Ctl(SpoolCtl::Ack(ids)) => {
                    let _ = self.ack(&ids);
                    dirty = true;
                }
                Msg::Ctl(SpoolCtl::Close(reply)) => {
                    closing = true;
                    let _ = reply.send(());
                }
                Msg::Ctl(SpoolCtl::Finish { abandoned, reply }) => {
                    while let Ok(event) = self.inbox.try_recv() {
                        self.take(event, true);
                    }
                    // The fsync thread's last answer: a commit it is still syncing either
                    // reports here or is covered by `finish`'s own sync.
                    drop(sync_tx);
                    if let Some(syncer) = syncer.take() {
                        let _ = syncer.join();
                    }
                    for synced in synced_rx.drain() {
                        self.spool.mark_synced(&synced);
                    }
                    self.finish();
                    let flags = abandoned.iter().map(|id| self.spool.is_durable(*id));
                    let _ = reply.send(flags.collect());
                    return;
                }
                Msg::Event(event) => {
                    dirty = true;
                    forwarded += self.take(event, closing);
                    for _ in 1..INBOX_TURN {
                        let Ok(event) = self.inbox.try_recv() else {
                            break;
                        };
                        forwarded += self.take(event, closing);
                    }
                }
            }
            if !closing {
                forwarded += self.feed();
            }
            if forwarded > 0 {
                self.shared.unsent.fetch_add(forwarded, Ordering::AcqRel);
                self.shared.wake.notify_one();
            }
            if dirty
                && last_commit.elapsed() >= self.commit_interval
                && self.start_commit(sync_tx.as_ref())
            {
                dirty = false;
                last_commit = Instant::now();
            }
        }
    }

    /// Appends a tracked event, then hands it to the worker, or leaves it on disk when the
    /// queue is full (or the tracker is closing). Returns how many events the worker got.
    fn take(&mut self, mut event: EncodedEvent, closing: bool) -> usize {
        if !self.sealed(&mut event) {
            return 0;
        }
        let id = event.event_id().as_u128();
        let size = event.len();
        let stored = match self.spool.append(id, event.json()) {
            Ok(()) => true,
            Err(e) => {
                // Its room under the cap stays taken until it is settled, like any event
                // not yet delivered.
                self.shared.counters.spool_write_error();
                if let Some(unlogged) = self.quiet[0].log() {
                    tracing::error!(error = %e, unlogged, "spool: could not store an event; it is delivered from memory but would not survive a crash");
                }
                false
            }
        };
        if closing {
            self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            if stored {
                self.left.push(event);
            } else {
                self.give_up(DropReason::ShutDown, &event);
            }
            return 0;
        }
        // Spilled events go first: while some wait, newer ones wait behind them on disk.
        if stored && !self.spilled.is_empty() {
            self.spill(id, event.seq, size);
            return 0;
        }
        match self.queue.try_send(event) {
            Ok(()) => 1,
            Err(flume::TrySendError::Full(event) | flume::TrySendError::Disconnected(event)) => {
                if stored {
                    self.spill(id, event.seq, size);
                } else {
                    self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                    self.give_up(DropReason::SpoolError, &event);
                }
                0
            }
        }
    }

    /// Seals what `track()` planned before anything is written, accounting for the new size
    /// (in the queue's bytes and the spool's); false when the event was given up instead
    /// (over the per-event limit once sealed, or sealing failed).
    fn sealed(&self, event: &mut EncodedEvent) -> bool {
        if event.seal == Seal::No {
            return true; // nearly every event: no work, no counter touched
        }
        let (resized, verdict) = self.pii.seal_within(event, self.max_event_bytes);
        let (queued, live) = (&self.shared.queued_bytes, &self.shared.spool_live_bytes);
        match resized {
            Resized::Grew(n) => {
                queued.fetch_add(n, Ordering::Relaxed);
                live.fetch_add(n as u64, Ordering::Relaxed);
            }
            Resized::Shrank(n) => {
                queued.fetch_sub(n, Ordering::Relaxed);
                live.fetch_sub(n as u64, Ordering::Relaxed);
            }
        }
        let Err(reason) = verdict else {
            return true;
        };
        self.shared
            .queued_bytes
            .fetch_sub(event.len(), Ordering::Relaxed);
        self.give_up(reason, event);
        false
    }

    /// The event leaves memory: it waits on disk for queue room.
    fn spill(&mut self, id: u128, seq: u64, size: usize) {
        self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
        self.spilled.push_back((id, seq));
    }

    /// Reads spilled events back into the queue while it has room. Returns how many.
    fn feed(&mut self) -> usize {
        let mut fed = 0;
        while let Some(&(id, seq)) = self.spilled.front() {
            if self.queue.len() >= self.queue_capacity {
                break;
            }
            let json = match self.spool.read(id) {
                Ok(json) => {
                    self.read_failing = None;
                    json
                }
                Err(e) => {
                    // An I/O error may pass (no file descriptor, a transient EIO) and the
                    // bytes may be intact: the event stays on disk and is tried again, for a
                    // while. Damage (checksum, length, id) does not pass.
                    let since = match self.read_failing {
                        Some((failing, since)) if failing == id => since,
                        _ => self.read_failing.insert((id, Instant::now())).1,
                    };
                    if matches!(e, SpoolError::Io(_)) && since.elapsed() < READ_RETRY_FOR {
                        if let Some(unlogged) = self.quiet[2].log() {
                            tracing::warn!(error = %e, unlogged, "spool: could not read an event back; retrying");
                        }
                        break;
                    }
                    self.read_failing = None;
                    // It cannot be delivered. It is settled like any other loss — counted,
                    // reported, and acknowledged, so that its segment (and the ones after it)
                    // can go.
                    if let Some(unlogged) = self.quiet[2].log() {
                        tracing::error!(error = %e, unlogged, "spool: could not read an event back; dropped (spool_error)");
                    }
                    self.spilled.pop_front();
                    let freed = self.ack(&[id]);
                    self.shared
                        .spool_live_bytes
                        .fetch_sub(freed, Ordering::Relaxed);
                    let mut lost = EncodedEvent::new(Uuid::from_u128(id), "", Vec::new());
                    lost.seq = seq;
                    self.give_up(DropReason::SpoolError, &lost);
                    continue;
                }
            };
            let size = json.len();
            let queued = self.shared.queued_bytes.load(Ordering::Relaxed);
            if queued + size > self.max_queue_bytes && queued > 0 {
                break;
            }
            // The schema stays in the bytes until someone asks (`EncodedEvent::schema`).
            let mut event = EncodedEvent::new(Uuid::from_u128(id), "", json);
            event.seq = seq;
            self.shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
            if self.queue.try_send(event).is_err() {
                self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                break;
            }
            self.spilled.pop_front();
            fed += 1;
        }
        fed
    }

    /// Forgets these events in the spool; returns the envelope bytes it no longer holds.
    /// (The worker gives their room under the cap back when it settles them.)
    fn ack(&mut self, ids: &[u128]) -> u64 {
        let acked = self.spool.ack(ids);
        if let Some(e) = acked.error {
            // Deleting a finished segment, or starting a fresh one, failed: retried at the
            // next acknowledgement; the spool's index and files still agree.
            tracing::warn!(error = %e, "spool: file operation after an acknowledgement failed; will retry");
        }
        acked.freed
    }

    /// Hands a group commit to the fsync thread; false while the previous one still runs
    /// (this one then waits for the next turn, gathering more).
    fn start_commit(&mut self, sync: Option<&flume::Sender<Commit>>) -> bool {
        let Some(sync) = sync else {
            self.commit_now();
            return true;
        };
        if sync.is_full() {
            return false;
        }
        match self.spool.prepare_commit() {
            Ok(commit) => {
                let _ = sync.try_send(commit);
            }
            Err(e) => self.commit_failed(&e),
        }
        true
    }

    /// Commits on this thread (at the end).
    fn commit_now(&mut self) {
        if let Err(e) = self.spool.commit() {
            self.commit_failed(&e);
        }
    }

    fn commit_failed(&mut self, e: &crate::spool::SpoolError) {
        self.shared.counters.spool_commit_error();
        if let Some(unlogged) = self.quiet[1].log() {
            tracing::error!(error = %e, unlogged, "spool: commit failed; what it covers stays pending (delivered from memory, written again at the next commit) but is not durable yet");
        }
    }

    /// At shutdown: writes and fsyncs the whole spool, then settles what only this thread
    /// holds (events still spilled, events stored while closing): kept in the spool if
    /// durable, else `spool_error` and reported.
    fn finish(&mut self) {
        if let Err(e) = self.spool.sync_all() {
            tracing::error!(error = %e, "spool: could not make it durable at shutdown; undelivered events that no earlier commit made durable are counted as lost (spool_error), though some may still come back at the next start");
            self.shared.counters.spool_commit_error();
        }
        let spilled: Vec<(u128, u64)> = self.spilled.drain(..).collect();
        let mut left = std::mem::take(&mut self.left);
        for (id, seq) in spilled {
            let bytes = if self.spool.is_durable(id) {
                None
            } else {
                Some(self.spool.read(id).unwrap_or_default())
            };
            let mut event = EncodedEvent::new(Uuid::from_u128(id), "", bytes.unwrap_or_default());
            event.seq = seq;
            left.push(event);
        }
        let (kept, lost): (Vec<EncodedEvent>, Vec<EncodedEvent>) = left
            .into_iter()
            .partition(|e| self.spool.is_durable(e.event_id().as_u128()));
        let counters = &self.shared.counters;
        counters.kept_in_spool(kept.len() as u64);
        counters.mark_settled(&kept);
        for event in &lost {
            self.give_up(DropReason::SpoolError, event);
        }
    }

    fn give_up(&self, reason: DropReason, event: &EncodedEvent) {
        self.shared
            .spool_live_bytes
            .fetch_sub(event.len() as u64, Ordering::Relaxed);
        self.shared.counters.dropped(reason, 1);
        // Reported before it counts as settled: a flush that returns has seen its callbacks.
        notify(
            self.on_failure.as_deref(),
            &FailureReason::Dropped(reason),
            std::slice::from_ref(event),
        );
        self.shared
            .counters
            .mark_settled(std::slice::from_ref(event));
        // A flush may be waiting for exactly this event.
        self.shared.wake.notify_one();
    }
}
