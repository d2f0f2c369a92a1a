//! Making appends durable: the memory buffer written to the active segment, the group
//! commit's fsync (on any thread), and the recovery of a write the disk refused.

use super::*;

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

impl Spool {
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
    pub(super) fn sync_written(&mut self) -> Result<(), SpoolError> {
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
    pub(super) fn write_buffer(&mut self) -> Result<(), SpoolError> {
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
    pub(super) fn cut_tail(&mut self) -> Result<(), SpoolError> {
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
}
