//! The record format of a segment: `len: u32 LE | crc32: u32 LE | body`, the scanner that
//! reads a segment's records as far as they can be trusted (the recovery's, and its fuzz
//! target's), and the writer of one record.

use std::path::{Path, PathBuf};

use super::MAX_RECORD_BYTES;

pub(super) const HEADER: usize = 8;
/// Kind byte and event id, before the envelope in an event record's body.
pub(super) const EVENT_PREFIX: usize = 17;
pub(super) const KIND_EVENT: u8 = 1;
pub(super) const KIND_ACK: u8 = 2;
/// Acknowledgements per ack record: a record (256 KiB) fits the memory buffer's bound even
/// when the disk refuses writes.
pub(super) const ACKS_PER_RECORD: usize = 16_384;

pub(super) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.log"))
}

/// One segment's records, read as far as they can be trusted.
pub(super) struct Scan {
    /// Offset and length of each good record's body.
    pub(super) records: Vec<(usize, usize)>,
    pub(super) good_len: u64,
    pub(super) corrupt_records: u64,
    pub(super) corrupt_bytes: u64,
}

/// Reads the records of one segment's bytes: the reader the recovery (and its fuzz target)
/// relies on. Never panics, whatever the input.
pub(super) fn scan(data: &[u8]) -> Scan {
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
pub(super) fn verified_envelope(record: &[u8], id: u128) -> Option<&[u8]> {
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

/// Appends one record (header and body parts) to `buffer`.
pub(super) fn put_record(buffer: &mut Vec<u8>, parts: &[&[u8]]) {
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
