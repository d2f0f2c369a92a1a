//! The durable spool: an append-only log of events on disk, so that what was tracked
//! survives a crash or restart until the collector has answered for it.
//!
//! This module is the storage engine; the tracker's spool thread drives it (append on
//! arrival, [`Spool::commit`] once per group, [`Spool::ack`] when the collector answered).
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

mod commit;
mod fs;
mod record;
mod recover;
pub use commit::{Commit, Synced};
pub use fs::{OsFs, SegmentFile, SpoolFs};
#[doc(hidden)]
pub use record::scan_for_fuzzing;
use record::{
    put_record, scan, segment_path, verified_envelope, ACKS_PER_RECORD, EVENT_PREFIX, HEADER,
    KIND_ACK, KIND_EVENT,
};

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
    Io(std::io::Error),
}

// The cause is in the message, so it is not also a `source()` (it would print twice).
impl From<std::io::Error> for SpoolError {
    fn from(e: std::io::Error) -> Self {
        SpoolError::Io(e)
    }
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

impl Spool {
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
