//! The spool's file operations, behind a seam that tests can make fail.
//!
//! [`OsFs`] is the real file system. Tests wrap it to fail any chosen call — a full disk
//! (`ENOSPC`), an I/O error, a short write, a failed open, delete or fsync — and check that
//! the spool's index still matches its files afterwards (`spool/tests.rs`).
//!
//! Writes are positioned (`pwrite`): the spool says where every byte goes, so a failed or
//! short write never leaves a file cursor somewhere the index does not know about.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// A segment file: positioned reads and writes, length, fsync.
pub trait SegmentFile: Send + std::fmt::Debug {
    /// Writes some of `buf` at `offset`; returns how many bytes were written (maybe fewer
    /// than asked, as `pwrite` may).
    ///
    /// # Errors
    ///
    /// When the file system refuses (`ENOSPC`, `EIO`, …).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    ///
    /// # Errors
    ///
    /// When the file system refuses, or the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Cuts (or extends) the file to `len` bytes.
    ///
    /// # Errors
    ///
    /// When the file system refuses.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    ///
    /// # Errors
    ///
    /// When the file system refuses: what was written since the last successful sync may not
    /// be on disk.
    fn sync_data(&self) -> io::Result<()>;
    /// A second handle on the same file, for the fsync thread.
    ///
    /// # Errors
    ///
    /// When the file system refuses (out of file descriptors).
    fn try_clone(&self) -> io::Result<Box<dyn SegmentFile>>;
}

/// The file operations of a spool directory.
pub trait SpoolFs: Send + Sync + std::fmt::Debug + 'static {
    /// Creates the directory and its parents.
    ///
    /// # Errors
    ///
    /// When the file system refuses.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The numbers of the segment files (`<n>.log`) in `dir`, in any order.
    ///
    /// # Errors
    ///
    /// When the directory cannot be listed.
    fn segments(&self, dir: &Path) -> io::Result<Vec<u64>>;
    /// A whole file's bytes.
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens a segment for reading and writing; `create` makes a new, empty one (truncating
    /// any file of that name).
    ///
    /// # Errors
    ///
    /// When the file system refuses.
    fn open_segment(&self, path: &Path, create: bool) -> io::Result<Box<dyn SegmentFile>>;
    /// Deletes a file.
    ///
    /// # Errors
    ///
    /// When the file system refuses (`NotFound` included).
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable (created and deleted files).
    ///
    /// # Errors
    ///
    /// When the file system refuses.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile(File);

impl SegmentFile for OsFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::write_at(&self.0, buf, offset)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_write(&self.0, buf, offset)
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(&self.0, buf, offset)
        }
        #[cfg(windows)]
        {
            let mut done = 0;
            while done < buf.len() {
                let n = std::os::windows::fs::FileExt::seek_read(
                    &self.0,
                    &mut buf[done..],
                    offset + done as u64,
                )?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                done += n;
            }
            Ok(())
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn try_clone(&self) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(OsFile(self.0.try_clone()?)))
    }
}

impl SpoolFs for OsFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn segments(&self, dir: &Path) -> io::Result<Vec<u64>> {
        Ok(std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            // Only files: anything else of that name is not a segment of ours.
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".log")?.parse().ok()
            })
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn open_segment(&self, path: &Path, create: bool) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(create)
            .open(path)?;
        Ok(Box::new(OsFile(file)))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
