//! Opening a spool: its lock, and the recovery of what its segments hold.

use super::*;

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
}
