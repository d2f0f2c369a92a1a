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

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Largest record accepted (a header claiming more is corruption).
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// Default cap on the spool's size on disk.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default size at which the active segment is closed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

const HEADER: usize = 8;
const KIND_EVENT: u8 = 1;
const KIND_ACK: u8 = 2;

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

#[derive(Debug, Default)]
struct Segment {
    bytes: u64,
    live: u64,
}

/// Where an event's envelope lies: segment, offset of the envelope in it, length.
#[derive(Debug, Clone, Copy)]
struct Loc {
    segment: u64,
    offset: u64,
    len: u32,
}

/// An open spool (holds the directory's lock until dropped).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    _lock: File,
    active: u64,
    writer: BufWriter<File>,
    segments: BTreeMap<u64, Segment>,
    /// Unacknowledged event → where its envelope is.
    live: HashMap<u128, Loc, BuildIdHasher>,
    /// Closed segments written to the OS but not yet fsynced (the next commit syncs them).
    unsynced: Vec<File>,
    /// A segment was created since the last commit: the directory needs an fsync too.
    dir_dirty: bool,
    used: u64,
    /// The segment last read from, kept open for the next read.
    reader: Option<(u64, File)>,
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

/// Files to fsync to make what was appended durable; see [`Spool::prepare_commit`].
#[derive(Debug)]
pub struct Commit {
    files: Vec<File>,
    dir: Option<File>,
}

impl Commit {
    /// Syncs the files (and the directory, when segments were created): the durability
    /// point. Can run on another thread than the spool's.
    ///
    /// # Errors
    ///
    /// When the file system refuses.
    pub fn sync(self) -> std::io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        if let Some(dir) = &self.dir {
            dir.sync_all()?;
        }
        Ok(())
    }
}

/// One positioned read (`pread` where there is one).
fn read_exact_at(file: &mut File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}

fn write_record(w: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&crc32fast::hash(body).to_le_bytes())?;
    w.write_all(body)
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
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
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
        let mut numbers: Vec<u64> = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();

        let mut recovery = Recovery::default();
        let mut events: BTreeMap<u64, Vec<(u128, Loc)>> = BTreeMap::new();
        let mut acked: std::collections::HashSet<u128> = std::collections::HashSet::new();
        let mut segments = BTreeMap::new();
        let mut last_good = 0;
        for &n in &numbers {
            let mut data = Vec::new();
            File::open(segment_path(&dir, n))?.read_to_end(&mut data)?;
            let s = scan(&data);
            recovery.corrupt_records += s.corrupt_records;
            recovery.corrupt_bytes += s.corrupt_bytes;
            last_good = s.good_len;
            let list = events.entry(n).or_default();
            for (at, len) in s.records {
                let body = &data[at..at + len];
                match body.first() {
                    Some(&KIND_EVENT) if body.len() >= 17 => {
                        let id = u128::from_le_bytes(body[1..17].try_into().unwrap_or([0; 16]));
                        let loc = Loc {
                            segment: n,
                            offset: (at + 17) as u64,
                            len: (len - 17) as u32,
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
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(segment_path(&dir, active))?;
        if numbers.last().is_some() {
            file.set_len(last_good)?;
        }
        segments.entry(active).or_default();
        let mut file = file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
        let used = segments.values().map(|s| s.bytes).sum();
        let mut spool = Spool {
            dir,
            config,
            _lock: lock,
            active,
            writer: BufWriter::with_capacity(256 * 1024, file),
            segments,
            live,
            used,
            reader: None,
            unsynced: Vec::new(),
            dir_dirty: numbers.is_empty(),
        };
        spool.delete_finished()?;
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

    /// Appends an event (durable after the next [`commit`](Self::commit)).
    ///
    /// # Errors
    ///
    /// [`SpoolError::Full`] when it would pass the size cap (nothing is written);
    /// [`SpoolError::TooLarge`]; [`SpoolError::Io`].
    pub fn append(&mut self, event_id: u128, envelope: &[u8]) -> Result<(), SpoolError> {
        let body_len = 17 + envelope.len();
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
        if self
            .segments
            .get(&self.active)
            .is_some_and(|s| s.bytes + size > self.config.segment_bytes && s.bytes > 0)
        {
            self.rotate()?;
        }
        // The record, written piece by piece: no copy of the envelope on the way.
        let id = event_id.to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[KIND_EVENT]);
        crc.update(&id);
        crc.update(envelope);
        let w = &mut self.writer;
        w.write_all(&(body_len as u32).to_le_bytes())?;
        w.write_all(&crc.finalize().to_le_bytes())?;
        w.write_all(&[KIND_EVENT])?;
        w.write_all(&id)?;
        w.write_all(envelope)?;
        self.used += size;
        let seg = self.segments.entry(self.active).or_default();
        let loc = Loc {
            segment: self.active,
            offset: seg.bytes + (HEADER + 17) as u64,
            len: envelope.len() as u32,
        };
        seg.bytes += size;
        seg.live += 1;
        if let Some(old) = self.live.insert(event_id, loc) {
            // The same id twice (a replayed event appended again): the older copy is dead.
            if let Some(seg) = self.segments.get_mut(&old.segment) {
                seg.live = seg.live.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// Whether `event_id` is written and not yet acknowledged.
    #[must_use]
    pub fn contains(&self, event_id: u128) -> bool {
        self.live.contains_key(&event_id)
    }

    /// The envelope bytes of a pending event, as appended (also before its commit).
    ///
    /// # Errors
    ///
    /// [`SpoolError::Unknown`] when the event is not pending; [`SpoolError::Io`].
    pub fn read(&mut self, event_id: u128) -> Result<Vec<u8>, SpoolError> {
        let loc = *self
            .live
            .get(&event_id)
            .ok_or(SpoolError::Unknown(event_id))?;
        if loc.segment == self.active {
            // Hand buffered bytes to the OS only when the event is among them.
            let in_file = self
                .segments
                .get(&self.active)
                .map_or(0, |s| s.bytes)
                .saturating_sub(self.writer.buffer().len() as u64);
            if loc.offset + u64::from(loc.len) > in_file {
                self.writer.flush()?;
            }
        }
        let file = match &mut self.reader {
            Some((n, file)) if *n == loc.segment => file,
            reader => {
                let file = File::open(segment_path(&self.dir, loc.segment))?;
                &mut reader.insert((loc.segment, file)).1
            }
        };
        let mut bytes = vec![0; loc.len as usize];
        read_exact_at(file, &mut bytes, loc.offset)?;
        Ok(bytes)
    }

    /// Makes everything appended so far durable (one `fsync`).
    ///
    /// # Errors
    ///
    /// When the file system refuses.
    pub fn commit(&mut self) -> Result<(), SpoolError> {
        self.prepare_commit()?.sync()?;
        Ok(())
    }

    /// Hands what was appended to the OS and returns the files whose fsync makes it durable,
    /// so that the fsync can run on another thread while appends go on. Everything appended
    /// before this call is durable once [`Commit::sync`] returns.
    ///
    /// # Errors
    ///
    /// When the file system refuses.
    pub fn prepare_commit(&mut self) -> Result<Commit, SpoolError> {
        self.writer.flush()?;
        let mut files = std::mem::take(&mut self.unsynced);
        files.push(self.writer.get_ref().try_clone()?);
        let dir = if self.dir_dirty {
            self.dir_dirty = false;
            Some(File::open(&self.dir)?)
        } else {
            None
        };
        Ok(Commit { files, dir })
    }

    /// Records that the collector answered for these events (they will not come back), and
    /// deletes segments left with nothing to replay. Durable with the next commit. Returns
    /// the envelope bytes no longer pending (unknown ids are ignored).
    ///
    /// # Errors
    ///
    /// When the file system refuses.
    pub fn ack(&mut self, event_ids: &[u128]) -> Result<u64, SpoolError> {
        let known: Vec<u128> = event_ids
            .iter()
            .copied()
            .filter(|id| self.live.contains_key(id))
            .collect();
        if known.is_empty() {
            return Ok(0);
        }
        let mut freed = 0;
        let mut body = Vec::with_capacity(1 + 16 * known.len());
        body.push(KIND_ACK);
        for id in &known {
            body.extend_from_slice(&id.to_le_bytes());
            if let Some(loc) = self.live.remove(id) {
                freed += u64::from(loc.len);
                if let Some(seg) = self.segments.get_mut(&loc.segment) {
                    seg.live = seg.live.saturating_sub(1);
                }
            }
        }
        let size = (HEADER + body.len()) as u64;
        write_record(&mut self.writer, &body)?;
        self.used += size;
        self.segments.entry(self.active).or_default().bytes += size;
        if self.live.is_empty() {
            // Nothing left to replay anywhere: start afresh in a new segment.
            self.rotate()?;
        }
        self.delete_finished()?;
        Ok(freed)
    }

    /// Starts the next segment. The closed one is handed to the OS now and fsynced by the
    /// next commit (a rotation never waits for the disk).
    fn rotate(&mut self) -> Result<(), SpoolError> {
        self.writer.flush()?;
        self.active += 1;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(segment_path(&self.dir, self.active))?;
        let closed =
            std::mem::replace(&mut self.writer, BufWriter::with_capacity(256 * 1024, file));
        self.unsynced.push(
            closed
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?,
        );
        self.dir_dirty = true;
        self.segments.insert(self.active, Segment::default());
        Ok(())
    }

    /// Deletes closed segments whose events are all acknowledged. An acknowledgement in a
    /// later segment may name events of an earlier one: earlier segments go first, so a
    /// replay never sees an event whose acknowledgement was deleted before it.
    fn delete_finished(&mut self) -> Result<(), SpoolError> {
        let finished: Vec<u64> = self
            .segments
            .iter()
            .take_while(|(n, s)| **n != self.active && s.live == 0)
            .map(|(n, _)| *n)
            .collect();
        for n in finished {
            match std::fs::remove_file(segment_path(&self.dir, n)) {
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
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
