//! The durable spool: an append-only log of events on disk, so that what was tracked
//! survives a crash or restart until the collector has answered for it.
//!
//! This module is the storage engine; the tracker's worker drives it (append on arrival,
//! [`Spool::commit`] once per group, [`Spool::ack`] when the collector answered).
//!
//! ## Format
//!
//! A directory holds a `LOCK` file (held with an exclusive OS lock while the spool is open:
//! a second process gets [`SpoolError::Locked`], never a shared log) and numbered segment
//! files `00000000000000000001.log`, … Each segment is a sequence of records:
//!
//! ```text
//! len: u32 LE | crc32: u32 LE (of the body) | body: len bytes
//! body = 1 | event_id: 16 bytes | envelope JSON      (an event)
//!      | 2 | event_id: 16 bytes × n                  (acknowledgements)
//! ```
//!
//! Nothing is rewritten in place: acknowledgements are records too, and a segment is
//! deleted once it is no longer the active one and every event in it is acknowledged.
//!
//! ## Recovery
//!
//! [`Spool::open`] reads every segment in order. A record whose checksum does not match is
//! skipped and counted; a header that cannot be right (a length past the end of the file or
//! over [`MAX_RECORD_BYTES`]) ends that segment — the rest of it is counted as corrupt bytes
//! and the records before it are kept. The active segment is truncated after its last good
//! record, so new appends never follow garbage. The events left unacknowledged come back,
//! oldest first, as ids: [`Spool::read`] gives their original bytes (so their original
//! `event_id` and `created_at`) when there is room to send them, so a large spool is never
//! read into memory at once.
//!
//! ## When the disk fails
//!
//! The index never points at bytes the spool cannot vouch for. Appends go to a buffer in
//! memory, written to the active segment with positioned writes at each commit (or when the
//! buffer is full); the spool knows how many bytes of the active segment were written
//! without error (`flushed`), and records past that point are read from the buffer. When a
//! write fails or is short (a full disk, an I/O error), the buffer is kept and the file is
//! cut back to `flushed` before the next write; if it cannot be cut, the buffered records
//! move to a fresh segment. A new segment is made the active one only once its file exists.
//! Every read checks the record's length, checksum and id, so a damaged file gives
//! [`SpoolError::Corrupt`], never wrong bytes. Acknowledgements change the index first and
//! cannot fail; deleting a finished segment that the file system refuses to delete is
//! retried at the next acknowledgement.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod fs;
pub use fs::{OsFs, SegmentFile, SpoolFs};

/// Largest record accepted (a header claiming more is corruption).
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
pub use crate::defaults::{
    DEFAULT_SPOOL_MAX_BYTES as DEFAULT_MAX_BYTES,
    DEFAULT_SPOOL_SEGMENT_BYTES as DEFAULT_SEGMENT_BYTES,
};
/// Appended bytes kept in memory before they are written to the active segment.
const BUFFER_BYTES: usize = 256 * 1024;
/// While the disk refuses writes, appends go on into memory up to this much; past it they
/// are refused (the caller keeps the event in memory only, and counts it).
const MAX_BUFFER_BYTES: usize = 4 * BUFFER_BYTES;

const HEADER: usize = 8;
/// Kind byte and event id, before the envelope in an event record's body.
const EVENT_PREFIX: usize = 17;
const KIND_EVENT: u8 = 1;
const KIND_ACK: u8 = 2;
/// Acknowledgements per ack record: a record (256 KiB) fits the memory buffer's bound even
/// when the disk refuses writes.
const ACKS_PER_RECORD: usize = 16_384;

/// What can go wrong with a spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Another process (or another tracker in this one) has the directory open.
    #[error("spool directory {} is in use by another tracker (its LOCK file is held)", .0.display())]
    Locked(PathBuf),
    /// Appending would take the spool over its size cap.
    #[error("spool is full ({used} of {max} bytes)")]
    Full {
        /// Bytes on disk.
        used: u64,
        /// The cap.
        max: u64,
    },
    /// [`Spool::read`] of an event that is not pending.
    #[error("event {0:032x} is not in the spool")]
    Unknown(u128),
    /// The bytes where an event should be are not its record (the file was damaged or cut
    /// under the spool): the event cannot be read back.
    #[error("event {0:032x} is damaged in the spool (length, checksum or id do not match)")]
    Corrupt(u128),
    /// An event over [`MAX_RECORD_BYTES`].
    #[error("event of {0} bytes is too large for the spool")]
    TooLarge(usize),
    /// The file system refused.
    #[error("spool I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Limits of a spool.
#[derive(Debug, Clone, Copy)]
pub struct SpoolConfig {
    /// Cap on bytes on disk (default [`DEFAULT_MAX_BYTES`]).
    pub max_bytes: u64,
    /// Segment size (default [`DEFAULT_SEGMENT_BYTES`]).
    pub segment_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// What [`Spool::open`] found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Events never acknowledged, oldest first (read each with [`Spool::read`]).
    pub pending: Vec<u128>,
    /// Bytes of their envelopes.
    pub pending_bytes: u64,
    /// Records skipped because their checksum did not match.
    pub corrupt_records: u64,
    /// Bytes skipped after a header that could not be right (a torn or damaged tail).
    pub corrupt_bytes: u64,
}

/// What [`Spool::ack`] did.
#[derive(Debug, Default)]
#[must_use]
pub struct Acked {
    /// Envelope bytes no longer pending (give them back to any cap on undelivered events).
    pub freed: u64,
    /// A file operation that failed on the way (deleting a finished segment, starting a
    /// fresh one): the acknowledgements still count, the spool's files stay consistent, and
    /// the operation is retried later.
    pub error: Option<SpoolError>,
}

#[derive(Debug, Default)]
struct Segment {
    bytes: u64,
    live: u64,
    /// Bytes known durable: covered by an fsync that succeeded.
    synced: u64,
}

/// Where an event's record lies: segment, offset of the record, envelope length.
#[derive(Debug, Clone, Copy)]
struct Loc {
    segment: u64,
    at: u64,
    len: u32,
}

impl Loc {
    fn record_len(self) -> usize {
        HEADER + EVENT_PREFIX + self.len as usize
    }
}

/// An open spool (holds the directory's lock until dropped).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    fs: Arc<dyn SpoolFs>,
    _lock: File,
    active: u64,
    /// The active segment's file.
    file: Box<dyn SegmentFile>,
    /// Bytes of the active segment written to its file without error. The index points into
    /// the file only below this; records past it are in `buffer`.
    flushed: u64,
    /// Records appended after `flushed`, not yet written.
    buffer: Vec<u8>,
    /// A write to the active segment failed part-way: the file may hold bytes past
    /// `flushed` that nothing points to. They are cut before the next write.
    dirty_tail: bool,
    /// A rotation failed: the next is tried once the active segment has grown this big.
    next_rotation: u64,
    segments: BTreeMap<u64, Segment>,
    /// Unacknowledged event → where its record is.
    live: HashMap<u128, Loc, BuildIdHasher>,
    /// Closed segments written to the OS but not yet fsynced, by number (the next commit
    /// syncs them; one whose sync failed is opened again by the next).
    unsynced: Vec<(u64, Box<dyn SegmentFile>)>,
    /// A segment was created since the last commit: the directory needs an fsync too.
    dir_dirty: bool,
    used: u64,
    /// The closed segment last read from, kept open for the next read.
    reader: Option<(u64, Box<dyn SegmentFile>)>,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.log"))
}

/// One segment's records, read as far as they can be trusted.
struct Scan {
    /// Offset and length of each good record's body.
    records: Vec<(usize, usize)>,
    good_len: u64,
    corrupt_records: u64,
    corrupt_bytes: u64,
}

/// Reads the records of one segment's bytes: the reader the recovery (and its fuzz target)
/// relies on. Never panics, whatever the input.
fn scan(data: &[u8]) -> Scan {
    let mut s = Scan {
        records: Vec::new(),
        good_len: 0,
        corrupt_records: 0,
        corrupt_bytes: 0,
    };
    let mut at = 0usize;
    while at < data.len() {
        let Some(header) = data.get(at..at + HEADER) else {
            break;
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let body_at = at + HEADER;
        let Some(body) = (len <= MAX_RECORD_BYTES && len > 0)
            .then(|| data.get(body_at..body_at + len))
            .flatten()
        else {
            break;
        };
        if crc32fast::hash(body) == crc {
            s.records.push((body_at, len));
        } else {
            s.corrupt_records += 1;
        }
        at = body_at + len;
        s.good_len = at as u64;
    }
    s.corrupt_bytes = (data.len() as u64).saturating_sub(s.good_len);
    s
}

/// Reads a whole segment and applies `scan`; fuzzing entry point.
#[doc(hidden)]
#[must_use]
pub fn scan_for_fuzzing(data: &[u8]) -> (usize, u64, u64) {
    let s = scan(data);
    (s.records.len(), s.corrupt_records, s.corrupt_bytes)
}

/// The envelope of event `id` if `record` is exactly its intact record.
fn verified_envelope(record: &[u8], id: u128) -> Option<&[u8]> {
    let header = record.get(..HEADER)?;
    let body = record.get(HEADER..)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let intact = len == body.len()
        && crc32fast::hash(body) == crc
        && body.first() == Some(&KIND_EVENT)
        && body.get(1..EVENT_PREFIX)? == id.to_le_bytes();
    intact.then(|| &body[EVENT_PREFIX..])
}

/// Event ids are UUIDs (v7: 74 random bits) chosen by this process: hashed by folding, not
/// SipHash — the index is on the spool thread's per-event path.
#[derive(Default, Clone, Copy)]
struct BuildIdHasher;

#[derive(Default)]
struct IdHasher(u64);

impl std::hash::BuildHasher for BuildIdHasher {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u128(&mut self, id: u128) {
        let folded = (id as u64) ^ ((id >> 64) as u64);
        self.0 = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl std::fmt::Debug for BuildIdHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuildIdHasher")
    }
}

/// Files to fsync to make what was appended durable; see [`Spool::prepare_commit`].
#[derive(Debug)]
pub struct Commit {
    files: Vec<Box<dyn SegmentFile>>,
    dir: Option<(Arc<dyn SpoolFs>, PathBuf)>,
    synced: Synced,
}

/// What a commit that succeeded made durable: give it back to [`Spool::mark_synced`].
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct Synced(Vec<(u64, u64)>);

impl Commit {
    /// Syncs the files (and the directory, when segments were created): the durability
    /// point. Can run on another thread than the spool's.
    ///
    /// # Errors
    ///
    /// When the file system refuses: what this commit covers may not be durable (the
    /// events are still pending in the spool, and delivered from memory; the next commit
    /// syncs them again).
    pub fn sync(self) -> std::io::Result<Synced> {
        for f in &self.files {
            f.sync_data()?;
        }
        if let Some((fs, dir)) = &self.dir {
            fs.sync_dir(dir)?;
        }
        Ok(self.synced)
    }
}

fn put_record(buffer: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut crc = crc32fast::Hasher::new();
    for p in parts {
        crc.update(p);
    }
    buffer.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    buffer.extend_from_slice(&crc.finalize().to_le_bytes());
    for p in parts {
        buffer.extend_from_slice(p);
    }
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, takes its lock and recovers what it
    /// holds.
    ///
    /// # Errors
    ///
    /// [`SpoolError::Locked`] when another tracker has it open; [`SpoolError::Io`] when the
    /// directory cannot be read or written.
    pub fn open(
        dir: impl AsRef<Path>,
        config: SpoolConfig,
    ) -> Result<(Spool, Recovery), SpoolError> {
        Self::open_on(Arc::new(OsFs), dir, config)
    }

    /// [`Spool::open`] on other file operations than the OS's (tests inject faults here).
    ///
    /// # Errors
    ///
    /// As [`Spool::open`].
    pub fn open_on(
        fs: Arc<dyn SpoolFs>,
        dir: impl AsRef<Path>,
        config: SpoolConfig,
    ) -> Result<(Spool, Recovery), SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked(dir)),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let mut numbers = fs.segments(&dir)?;
        numbers.sort_unstable();

        let mut recovery = Recovery::default();
        let mut events: BTreeMap<u64, Vec<(u128, Loc)>> = BTreeMap::new();
        let mut acked: std::collections::HashSet<u128> = std::collections::HashSet::new();
        let mut segments = BTreeMap::new();
        let mut last_good = 0;
        for &n in &numbers {
            let data = fs.read(&segment_path(&dir, n))?;
            let s = scan(&data);
            recovery.corrupt_records += s.corrupt_records;
            recovery.corrupt_bytes += s.corrupt_bytes;
            last_good = s.good_len;
            let list = events.entry(n).or_default();
            for (at, len) in s.records {
                let body = &data[at..at + len];
                match body.first() {
                    Some(&KIND_EVENT) if body.len() >= EVENT_PREFIX => {
                        let id = u128::from_le_bytes(
                            body[1..EVENT_PREFIX].try_into().unwrap_or([0; 16]),
                        );
                        let loc = Loc {
                            segment: n,
                            at: (at - HEADER) as u64,
                            len: (len - EVENT_PREFIX) as u32,
                        };
                        list.push((id, loc));
                    }
                    Some(&KIND_ACK) => {
                        for chunk in body[1..].chunks_exact(16) {
                            acked.insert(u128::from_le_bytes(chunk.try_into().unwrap_or([0; 16])));
                        }
                    }
                    // A checksummed record of a kind we do not know: a newer format.
                    _ => recovery.corrupt_records += 1,
                }
            }
            segments.insert(
                n,
                Segment {
                    bytes: s.good_len,
                    live: 0,
                    synced: s.good_len,
                },
            );
        }
        let mut live = HashMap::with_hasher(BuildIdHasher);
        for (n, list) in events {
            for (id, loc) in list {
                if acked.contains(&id) || live.contains_key(&id) {
                    continue;
                }
                live.insert(id, loc);
                if let Some(seg) = segments.get_mut(&n) {
                    seg.live += 1;
                }
                recovery.pending.push(id);
                recovery.pending_bytes += u64::from(loc.len);
            }
        }
        // Continue in the last segment, cut after its last good record.
        let active = numbers.last().copied().unwrap_or(1);
        let file = fs.open_segment(&segment_path(&dir, active), numbers.is_empty())?;
        if !numbers.is_empty() {
            file.set_len(last_good)?;
        }
        segments.entry(active).or_default();
        let used = segments.values().map(|s| s.bytes).sum();
        let mut spool = Spool {
            dir,
            config,
            fs,
            _lock: lock,
            active,
            file,
            flushed: last_good,
            buffer: Vec::new(),
            dirty_tail: false,
            next_rotation: 0,
            segments,
            live,
            used,
            reader: None,
            unsynced: Vec::new(),
            dir_dirty: numbers.is_empty(),
        };
        // A finished segment that cannot be deleted now is retried at the next ack.
        let _ = spool.delete_finished();
        Ok((spool, recovery))
    }

    /// Bytes on disk (including what is buffered for the next commit).
    #[must_use]
    pub fn used_bytes(&self) -> u64 {
        self.used
    }

    /// Events written and not yet acknowledged.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.live.len()
    }

    fn active_bytes(&self) -> u64 {
        self.flushed + self.buffer.len() as u64
    }

    /// Appends an event (durable after the next [`commit`](Self::commit)).
    ///
    /// # Errors
    ///
    /// [`SpoolError::Full`] when it would pass the size cap; [`SpoolError::TooLarge`];
    /// [`SpoolError::Io`] when the disk has refused writes for so long that the bytes waiting
    /// for it fill the spool's memory buffer. Nothing is stored on an error.
    pub fn append(&mut self, event_id: u128, envelope: &[u8]) -> Result<(), SpoolError> {
        let body_len = EVENT_PREFIX + envelope.len();
        if body_len > MAX_RECORD_BYTES {
            return Err(SpoolError::TooLarge(envelope.len()));
        }
        let size = (HEADER + body_len) as u64;
        if self.used + size > self.config.max_bytes {
            return Err(SpoolError::Full {
                used: self.used,
                max: self.config.max_bytes,
            });
        }
        let active = self.active_bytes();
        if active > 0
            && active + size > self.config.segment_bytes
            && active >= self.next_rotation
            && self.rotate().is_err()
        {
            // Stay in this segment (it grows past its size); try again a segment later.
            self.next_rotation = active + self.config.segment_bytes;
        }
        if self.buffer.len() + size as usize > BUFFER_BYTES {
            if let Err(e) = self.write_buffer() {
                if self.buffer.len() + size as usize > MAX_BUFFER_BYTES {
                    return Err(e);
                }
            }
        }
        let at = self.active_bytes();
        put_record(
            &mut self.buffer,
            &[&[KIND_EVENT], &event_id.to_le_bytes(), envelope],
        );
        self.used += size;
        let seg = self.segments.entry(self.active).or_default();
        seg.bytes += size;
        seg.live += 1;
        let loc = Loc {
            segment: self.active,
            at,
            len: envelope.len() as u32,
        };
        if let Some(old) = self.live.insert(event_id, loc) {
            // The same id twice (a replayed event appended again): the older copy is dead.
            if let Some(seg) = self.segments.get_mut(&old.segment) {
                seg.live = seg.live.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// Whether `event_id` is appended and not yet acknowledged.
    #[must_use]
    pub fn contains(&self, event_id: u128) -> bool {
        self.live.contains_key(&event_id)
    }

    /// Whether `event_id` is pending and durable: its record was covered by an fsync that
    /// succeeded (a commit whose [`Synced`] came back, or [`Spool::sync_all`]).
    #[must_use]
    pub fn is_durable(&self, event_id: u128) -> bool {
        self.live.get(&event_id).is_some_and(|l| {
            self.segments
                .get(&l.segment)
                .is_some_and(|s| l.at + l.record_len() as u64 <= s.synced)
        })
    }

    /// Records what a commit made durable, once its [`Commit::sync`] succeeded.
    pub fn mark_synced(&mut self, synced: &Synced) {
        for &(n, bytes) in &synced.0 {
            if let Some(seg) = self.segments.get_mut(&n) {
                seg.synced = seg.synced.max(bytes.min(seg.bytes));
            }
        }
    }

    /// Writes what is buffered and fsyncs every segment that holds a pending event (and the
    /// closed ones not yet synced, and the directory), whatever earlier commits did: after
    /// `Ok`, every event pushed before is durable. For shutdown, where an event left
    /// in the spool must really be there.
    ///
    /// # Errors
    ///
    /// When the file system refuses: then nothing can be called durable.
    pub fn sync_all(&mut self) -> Result<(), SpoolError> {
        // What is already in the files first: a disk that refuses the buffer's write may
        // still make those durable.
        self.sync_written()?;
        self.write_buffer()?;
        self.sync_written()
    }

    /// Fsyncs every file byte written so far (the active segment up to `flushed`, closed
    /// segments not known durable, the directory) and marks it durable.
    fn sync_written(&mut self) -> Result<(), SpoolError> {
        self.file.sync_data()?;
        for (_, f) in &self.unsynced {
            f.sync_data()?;
        }
        self.unsynced.clear();
        for (&n, seg) in &self.segments {
            if n != self.active && seg.live > 0 && seg.synced < seg.bytes {
                self.fs
                    .open_segment(&segment_path(&self.dir, n), false)?
                    .sync_data()?;
            }
        }
        self.fs.sync_dir(&self.dir)?;
        self.dir_dirty = false;
        for seg in self.segments.values_mut() {
            seg.synced = seg.bytes;
        }
        if let Some(active) = self.segments.get_mut(&self.active) {
            active.synced = self.flushed;
        }
        Ok(())
    }

    /// The envelope bytes of a pending event, as appended (also before its commit), checked
    /// against the record's length, checksum and id.
    ///
    /// # Errors
    ///
    /// [`SpoolError::Unknown`] when the event is not pending; [`SpoolError::Corrupt`] when
    /// its bytes on disk are not its record; [`SpoolError::Io`].
    pub fn read(&mut self, event_id: u128) -> Result<Vec<u8>, SpoolError> {
        let loc = *self
            .live
            .get(&event_id)
            .ok_or(SpoolError::Unknown(event_id))?;
        let mut record = vec![0; loc.record_len()];
        if loc.segment == self.active && loc.at >= self.flushed {
            let from = (loc.at - self.flushed) as usize;
            let bytes = self
                .buffer
                .get(from..from + record.len())
                .ok_or(SpoolError::Corrupt(event_id))?;
            record.copy_from_slice(bytes);
        } else {
            let file = if loc.segment == self.active {
                &mut self.file
            } else {
                match &mut self.reader {
                    Some((n, file)) if *n == loc.segment => file,
                    reader => {
                        let file = self
                            .fs
                            .open_segment(&segment_path(&self.dir, loc.segment), false)?;
                        &mut reader.insert((loc.segment, file)).1
                    }
                }
            };
            match file.read_exact_at(&mut record, loc.at) {
                Ok(()) => {}
                // The file is shorter than the index says: it was cut under the spool.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(SpoolError::Corrupt(event_id))
                }
                Err(e) => return Err(e.into()),
            }
        }
        let envelope = verified_envelope(&record, event_id).ok_or(SpoolError::Corrupt(event_id))?;
        let skip = record.len() - envelope.len();
        record.drain(..skip);
        Ok(record)
    }

    /// Makes everything appended so far durable (one `fsync`).
    ///
    /// # Errors
    ///
    /// When the file system refuses.
    pub fn commit(&mut self) -> Result<(), SpoolError> {
        let synced = self.prepare_commit()?.sync()?;
        self.mark_synced(&synced);
        Ok(())
    }

    /// Writes what was appended to the active segment and returns the files whose fsync makes
    /// it durable, so that the fsync can run on another thread while appends go on.
    /// Everything appended before this call is durable once [`Commit::sync`] returns.
    ///
    /// # Errors
    ///
    /// When the file system refuses: nothing is lost from the spool (what was not written
    /// stays buffered for the next commit), but it is not durable yet.
    pub fn prepare_commit(&mut self) -> Result<Commit, SpoolError> {
        self.write_buffer()?;
        let active = self.file.try_clone()?;
        let mut files = Vec::new();
        let mut marks = Vec::new();
        // Closed segments not known durable: just closed, or their last sync failed.
        let stale: Vec<(u64, u64, bool)> = self
            .segments
            .iter()
            .filter(|(n, s)| **n != self.active && s.synced < s.bytes)
            .map(|(n, s)| (*n, s.bytes, s.live > 0))
            .collect();
        for (n, bytes, live) in stale {
            let file = match self.unsynced.iter().position(|(u, _)| *u == n) {
                Some(at) => self.unsynced.swap_remove(at).1,
                // Nothing pending in it: its acknowledgements only save a resend.
                None if !live => continue,
                None => self.fs.open_segment(&segment_path(&self.dir, n), false)?,
            };
            files.push(file);
            marks.push((n, bytes));
        }
        files.push(active);
        marks.push((self.active, self.flushed));
        let dir = self.dir_dirty.then(|| (self.fs.clone(), self.dir.clone()));
        self.dir_dirty = false;
        Ok(Commit {
            files,
            dir,
            synced: Synced(marks),
        })
    }

    /// Writes the buffer to the active segment at `flushed`. On failure the buffer is kept
    /// and the segment's tail marked for cutting; nothing the index points to moves.
    fn write_buffer(&mut self) -> Result<(), SpoolError> {
        if self.dirty_tail {
            self.cut_tail()?;
        }
        let mut done = 0;
        while done < self.buffer.len() {
            match self
                .file
                .write_at(&self.buffer[done..], self.flushed + done as u64)
            {
                Ok(0) => {
                    self.dirty_tail = true;
                    return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.dirty_tail = true;
                    return Err(e.into());
                }
            }
        }
        self.flushed += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Removes what a failed write may have left past `flushed`: the file is cut back, or,
    /// if it cannot be, the buffered records move to a fresh segment and the old one keeps
    /// only what the index knows (recovery skips the rest by checksum).
    fn cut_tail(&mut self) -> Result<(), SpoolError> {
        if self.file.set_len(self.flushed).is_ok() {
            self.dirty_tail = false;
            return Ok(());
        }
        let (old, flushed) = (self.active, self.flushed);
        self.open_next_segment()?;
        let next = self.active;
        let mut moved = 0;
        for loc in self.live.values_mut() {
            if loc.segment == old && loc.at >= flushed {
                loc.segment = next;
                loc.at -= flushed;
                moved += 1;
            }
        }
        if let Some(seg) = self.segments.get_mut(&old) {
            seg.live -= moved;
            seg.bytes = flushed;
            seg.synced = seg.synced.min(flushed);
        }
        self.segments.insert(
            next,
            Segment {
                bytes: self.buffer.len() as u64,
                live: moved,
                synced: 0,
            },
        );
        self.dirty_tail = false;
        Ok(())
    }

    /// Records that the collector answered for these events (they will not come back), and
    /// deletes segments left with nothing to replay. The index changes at once, whatever
    /// the disk does; the acknowledgement record is durable with the next commit (if it is
    /// lost, the events are sent again after a restart and the collector deduplicates them).
    /// Unknown ids are ignored.
    pub fn ack(&mut self, event_ids: &[u128]) -> Acked {
        let mut acked = Acked::default();
        let mut known = Vec::with_capacity(event_ids.len());
        for id in event_ids {
            if let Some(loc) = self.live.remove(id) {
                acked.freed += u64::from(loc.len);
                if let Some(seg) = self.segments.get_mut(&loc.segment) {
                    seg.live = seg.live.saturating_sub(1);
                }
                known.push(*id);
            }
        }
        if known.is_empty() {
            return acked;
        }
        for ids in known.chunks(ACKS_PER_RECORD) {
            let mut body = Vec::with_capacity(1 + 16 * ids.len());
            body.push(KIND_ACK);
            for id in ids {
                body.extend_from_slice(&id.to_le_bytes());
            }
            let size = HEADER + body.len();
            if self.buffer.len() + size > BUFFER_BYTES {
                if let Err(e) = self.write_buffer() {
                    acked.error.get_or_insert(e);
                }
            }
            // With the disk refusing writes for long, the record stays in memory only up to
            // the buffer's bound: past it, it is lost (a resend after a restart, deduplicated
            // by the collector), never the index.
            if self.buffer.len() + size <= MAX_BUFFER_BYTES {
                put_record(&mut self.buffer, &[&body]);
                self.used += size as u64;
                self.segments.entry(self.active).or_default().bytes += size as u64;
            }
        }
        // Nothing left to replay anywhere: start afresh in a new segment.
        let afresh = self.live.is_empty()
            && match self.start_afresh() {
                Ok(()) => true,
                Err(e) => {
                    acked.error.get_or_insert(e);
                    false
                }
            };
        match self.delete_finished() {
            Err(e) => {
                acked.error.get_or_insert(e);
            }
            Ok(()) if afresh && self.segments.len() == 1 => {
                // Every older segment is gone, and with it what the carried acks named.
                let carried = self.buffer.len() as u64;
                self.buffer.clear();
                self.segments.entry(self.active).or_default().bytes = 0;
                self.used = self.used.saturating_sub(carried);
            }
            Ok(()) => {}
        }
        acked
    }

    /// Starts the next segment: the current one is written out first, and the new file must
    /// exist before it becomes the active one. The closed segment is fsynced by the next
    /// commit (a rotation never waits for the disk). On error nothing changed.
    fn rotate(&mut self) -> Result<(), SpoolError> {
        self.write_buffer()?;
        self.open_next_segment()
    }

    /// Makes a new, empty segment file the active one, once it exists; the closed one is
    /// fsynced by the next commit. On error nothing changed.
    fn open_next_segment(&mut self) -> Result<(), SpoolError> {
        let next = self.active.checked_add(1).ok_or_else(|| {
            std::io::Error::other("segment numbers exhausted (a file named like the last one)")
        })?;
        let file = self.fs.open_segment(&segment_path(&self.dir, next), true)?;
        let closed = std::mem::replace(&mut self.file, file);
        self.unsynced.push((self.active, closed));
        self.active = next;
        self.flushed = 0;
        self.next_rotation = 0;
        self.dir_dirty = true;
        self.segments.insert(next, Segment::default());
        Ok(())
    }

    /// With nothing pending, starts a new segment without writing the buffer's events (all
    /// acknowledged): on a full disk this is how the spool gets its space back, since the old
    /// segments can then all be deleted. The buffer's acknowledgements move to the new
    /// segment, in case an old segment cannot be deleted.
    fn start_afresh(&mut self) -> Result<(), SpoolError> {
        debug_assert!(self.live.is_empty());
        let (old, buffered) = (self.active, self.buffer.len() as u64);
        let acks: Vec<u8> = scan(&self.buffer)
            .records
            .into_iter()
            .filter(|&(at, _)| self.buffer[at] == KIND_ACK)
            .flat_map(|(at, len)| self.buffer[at - HEADER..at + len].iter().copied())
            .collect();
        self.open_next_segment()?;
        self.buffer = acks;
        self.dirty_tail = false;
        if let Some(seg) = self.segments.get_mut(&old) {
            seg.bytes = seg.bytes.saturating_sub(buffered);
            seg.synced = seg.synced.min(seg.bytes);
        }
        let carried = self.buffer.len() as u64;
        self.segments.entry(self.active).or_default().bytes = carried;
        self.used = self.used.saturating_sub(buffered) + carried;
        Ok(())
    }

    /// Deletes closed segments whose events are all acknowledged. An acknowledgement in a
    /// later segment may name events of an earlier one: earlier segments go first, so a
    /// replay never sees an event whose acknowledgement was deleted before it. A segment the
    /// file system refuses to delete stays (and so do the ones after it) until the next try.
    fn delete_finished(&mut self) -> Result<(), SpoolError> {
        let finished: Vec<u64> = self
            .segments
            .iter()
            .take_while(|(n, s)| **n != self.active && s.live == 0)
            .map(|(n, _)| *n)
            .collect();
        for n in finished {
            match self.fs.remove(&segment_path(&self.dir, n)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(s) = self.segments.remove(&n) {
                self.used = self.used.saturating_sub(s.bytes);
            }
            if self.reader.as_ref().is_some_and(|(r, _)| *r == n) {
                self.reader = None;
            }
            self.unsynced.retain(|(u, _)| *u != n);
        }
        Ok(())
    }
}

impl Drop for Spool {
    /// A clean close hands what is buffered to the OS (no fsync: as a process exit would);
    /// durability is [`Spool::commit`]'s job.
    fn drop(&mut self) {
        if let Err(e) = self.write_buffer() {
            // Leave no part of what could not be written: a record that made it whole would
            // come back at the next start though it was counted as not kept.
            let _ = self.file.set_len(self.flushed);
            tracing::warn!(error = %e, "spool: could not write its last records at close");
        }
    }
}

#[cfg(test)]
mod tests;
