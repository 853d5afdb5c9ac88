//! Input files mapped into memory, read in place instead of copied.
//!
//! icos-rootfs reads an uncompressed layer twice: once to verify and index it, once to copy file
//! contents into the output in path order. Mapped, the second read needs no copy of its own (no
//! spool file written and read back), and the digest can be computed on another core from the
//! same pages while this one parses.
//!
//! A mapping assumes that nobody writes the file while it is mapped, like every build tool
//! assumes of its inputs (Bazel's are read-only). [`MappedFile::check_unchanged`] is the
//! tripwire for a writer that ignores this: a `write(2)` or truncation changes the size, mtime or
//! ctime it compares. A truncation while the pages are read kills the process with SIGBUS instead;
//! outputs are written under temporary names ([`crate::AtomicFile`]), so nothing partial remains
//! under a final name either way.

use std::fs::File;
use std::io;
use std::ops::{Deref, Range};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use memmap2::Mmap;
use sha2::{Digest as _, Sha256};

use crate::Digest;

/// How many bytes a reader of a mapping may touch between two [`MappedFile::release`] calls.
pub const RELEASE_EVERY: u64 = 32 << 20;

/// One regular file mapped read-only, with what its metadata said when it was mapped.
pub struct MappedFile {
    map: Mmap,
    file: File,
    stamp: Stamp,
}

/// What any write to the file changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(file: &File) -> io::Result<Stamp> {
        let m = file.metadata()?;
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

impl MappedFile {
    /// Maps `file` (a regular file the caller opened) whole. An empty file maps to no bytes.
    pub fn new(file: File) -> io::Result<Arc<MappedFile>> {
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let stamp = Stamp::of(&file)?;
        // SAFETY: the mapping is read-only and private to this process; the module's contract
        // (inputs are not written while mapped) is checked by `check_unchanged`, and the bytes are
        // only ever read as plain `u8`s, so a writer that breaks it yields wrong bytes (caught by
        // the digests and the tripwire), never an invalid value.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(stamp.len as usize)
                .map(&file)?
        };
        Ok(Arc::new(MappedFile { map, file, stamp }))
    }

    /// The file's length when it was mapped.
    pub fn len(&self) -> u64 {
        self.stamp.len
    }

    pub fn is_empty(&self) -> bool {
        self.stamp.len == 0
    }

    /// All the mapped bytes.
    pub fn whole(self: &Arc<Self>) -> MappedBytes {
        MappedBytes {
            file: Arc::clone(self),
            range: 0..self.map.len(),
        }
    }

    /// The mapped bytes from `range`, or None when the file is shorter than that.
    pub fn slice(self: &Arc<Self>, range: Range<u64>) -> Option<MappedBytes> {
        let start = usize::try_from(range.start).ok()?;
        let end = usize::try_from(range.end).ok()?;
        (start <= end && end <= self.map.len()).then(|| MappedBytes {
            file: Arc::clone(self),
            range: start..end,
        })
    }

    /// Gives this process's page mappings back (its RSS falls); the bytes stay in the page cache
    /// and a later read maps them again. Readers walking a large file call it every few MiB
    /// ([`RELEASE_EVERY`]), so a 1 GiB layer costs no 1 GiB of resident memory.
    pub fn release(&self) {
        if self.map.is_empty() {
            return;
        }
        // SAFETY: MADV_DONTNEED on a read-only file mapping only drops page-table entries: a
        // page is read again from the page cache on its next access (it is not zeroed, which is
        // what makes the advice unsafe for anonymous or written private memory). Safe while other
        // threads read the same pages. A failure only leaves the pages mapped.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }

    /// Fails if the file was written, truncated or replaced in place since it was mapped.
    pub fn check_unchanged(&self) -> io::Result<()> {
        let now = Stamp::of(&self.file)?;
        if now != self.stamp {
            return Err(io::Error::other(format!(
                "the file changed while it was being read ({} bytes, mtime {}.{:09}, now {} bytes, mtime {}.{:09}): inputs must not be written during a build",
                self.stamp.len, self.stamp.mtime.0, self.stamp.mtime.1, now.len, now.mtime.0, now.mtime.1
            )));
        }
        Ok(())
    }
}

/// A range of a [`MappedFile`]: cheap to clone, derefs to its bytes.
#[derive(Clone)]
pub struct MappedBytes {
    file: Arc<MappedFile>,
    range: Range<usize>,
}

impl MappedBytes {
    /// The whole file this range belongs to (for [`MappedFile::check_unchanged`]).
    pub fn file(&self) -> &Arc<MappedFile> {
        &self.file
    }

    /// The bytes from `range` of these ones, or None when they are shorter than that.
    pub fn slice(&self, range: Range<u64>) -> Option<MappedBytes> {
        let start = self
            .range
            .start
            .checked_add(usize::try_from(range.start).ok()?)?;
        let end = self
            .range
            .start
            .checked_add(usize::try_from(range.end).ok()?)?;
        (start <= end && end <= self.range.end).then(|| MappedBytes {
            file: Arc::clone(&self.file),
            range: start..end,
        })
    }

    /// The SHA-256 of these bytes, read [`RELEASE_EVERY`] bytes at a time with the file's pages
    /// released after each step: hashing a large file does not make it resident.
    pub fn sha256(&self) -> Digest {
        let mut hasher = Sha256::new();
        for chunk in self.chunks(RELEASE_EVERY as usize) {
            hasher.update(chunk);
            self.file.release();
        }
        Digest::from_bytes(hasher.finalize().into())
    }
}

impl Deref for MappedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.file.map[self.range.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn slices_are_bounded_and_writes_trip_the_check() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(b"0123456789").unwrap();
        let mapped = MappedFile::new(File::open(tmp.path()).unwrap()).unwrap();
        assert_eq!(&*mapped.slice(2..5).unwrap(), b"234");
        assert_eq!(&*mapped.slice(10..10).unwrap(), b"");
        assert!(mapped.slice(5..11).is_none(), "past the end");
        #[allow(clippy::reversed_empty_ranges)] // on purpose: a hostile range
        let backwards = 6..5;
        assert!(mapped.slice(backwards).is_none(), "backwards");
        let middle = mapped.slice(2..8).unwrap();
        assert_eq!(&*middle.slice(1..3).unwrap(), b"34");
        assert!(
            middle.slice(0..7).is_none(),
            "past the slice's end, inside the file"
        );
        assert!(middle.slice(3..u64::MAX).is_none(), "far past the end");
        mapped.check_unchanged().unwrap();
        mapped.release();
        assert_eq!(
            &*mapped.slice(0..10).unwrap(),
            b"0123456789",
            "read again after a release"
        );

        // Same length, one byte rewritten: mtime and ctime move (nanosecond stamps; wait for the
        // clock to move past the first write's stamp on coarse filesystems).
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::OpenOptions::new()
            .write(true)
            .open(tmp.path())
            .unwrap()
            .write_all(b"X")
            .unwrap();
        let e = mapped.check_unchanged().unwrap_err().to_string();
        assert!(e.contains("changed while it was being read"), "{e}");
    }

    #[test]
    fn an_empty_file_maps_to_no_bytes() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let mapped = MappedFile::new(File::open(tmp.path()).unwrap()).unwrap();
        assert!(mapped.slice(0..0).unwrap().is_empty());
        assert!(mapped.slice(0..1).is_none());
    }
}
