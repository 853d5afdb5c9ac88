//! Regular-file contents while the tree is built: one anonymous temporary file, appended to in
//! large batches while the layers are read, and read back in the output's order.
//!
//! A layer of a million small files would otherwise cost two system calls per file (a write while
//! spooling, a read while writing the tar): the tail of the spool is kept in memory until a batch
//! is full, and reads that follow the spool's own order are served from a read-ahead window.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use icos_common::mapped::{MappedBytes, RELEASE_EVERY};
use icos_common::{StreamHasher, WriteBehind};

use crate::tree::{release_all, Content};

/// Size of a write batch, of the read-ahead window at its largest, and of one read of a large file.
const BATCH: usize = 128 << 10;
/// The first read-ahead after a jump; doubled while reads keep following the spool's order.
const FIRST_READ_AHEAD: usize = 16 << 10;

/// Append-only store of file contents (unlinked at creation, so it never shows up in the output
/// directory and vanishes even if the process is killed).
pub(crate) struct Spool {
    file: File,
    /// Bytes in the spool, including the `tail_len` bytes not yet written to `file`.
    len: u64,
    tail: Box<[u8]>,
    tail_len: usize,
}

impl Spool {
    pub fn new(dir: &Path) -> io::Result<Self> {
        Ok(Spool {
            file: tempfile::tempfile_in(dir)?,
            len: 0,
            tail: vec![0; BATCH].into_boxed_slice(),
            tail_len: 0,
        })
    }

    /// Where the next appended byte goes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Appends everything `reader` yields, feeding it to `hasher` too; returns the byte count.
    pub fn append(&mut self, reader: &mut dyn Read, hasher: &mut StreamHasher) -> io::Result<u64> {
        let mut copied = 0u64;
        loop {
            if self.tail_len == self.tail.len() {
                self.flush_tail()?;
            }
            let free = &mut self.tail[self.tail_len..];
            let n = match reader.read(free) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&free[..n]);
            self.tail_len += n;
            self.len += n as u64;
            copied += n as u64;
        }
        Ok(copied)
    }

    fn flush_tail(&mut self) -> io::Result<()> {
        let start = self.len - self.tail_len as u64;
        self.file.write_all_at(&self.tail[..self.tail_len], start)?;
        self.tail_len = 0;
        Ok(())
    }

    /// Fills `buf` from `offset`, out of the file or the tail still in memory.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let tail_start = self.len - self.tail_len as u64;
        let in_file = (tail_start.saturating_sub(offset) as usize).min(buf.len());
        let (from_file, from_tail) = buf.split_at_mut(in_file);
        self.file.read_exact_at(from_file, offset)?;
        if !from_tail.is_empty() {
            let at = (offset + in_file as u64 - tail_start) as usize;
            from_tail.copy_from_slice(&self.tail[at..at + from_tail.len()]);
        }
        Ok(())
    }
}

/// Reads contents back out of a [`Spool`] through one window: a file that starts where the last
/// one ended (the output mostly follows the layers' order) is usually in the window already.
/// Contents of layers mapped in place are written straight from the mapping.
pub(crate) struct ContentReader<'a> {
    spool: &'a Spool,
    sources: &'a [(String, MappedBytes)],
    window: Box<[u8]>,
    window_start: u64,
    window_len: usize,
    /// Where the last copy ended.
    last_end: u64,
    /// Bytes of mapped layers touched since their pages were last released (see RELEASE_EVERY).
    mapped_touched: u64,
    read_ahead: usize,
}

impl<'a> ContentReader<'a> {
    pub fn new(spool: &'a Spool, sources: &'a [(String, MappedBytes)]) -> Self {
        ContentReader {
            spool,
            sources,
            window: vec![0; BATCH].into_boxed_slice(),
            window_start: 0,
            window_len: 0,
            last_end: u64::MAX,
            mapped_touched: 0,
            read_ahead: 0,
        }
    }

    /// Writes the `size` bytes of `content` to `out`: mapped contents by reference.
    pub fn copy(
        &mut self,
        content: Content,
        size: u64,
        out: &mut WriteBehind<'a>,
    ) -> io::Result<()> {
        match content {
            Content::Spool { offset } => self.copy_spooled(offset, size, out),
            Content::Mapped { source, offset } => {
                // A small file still touches a whole page.
                self.mapped_touched += size + 4096;
                if self.mapped_touched >= RELEASE_EVERY {
                    release_all(self.sources);
                    self.mapped_touched = 0;
                }
                // In bounds: checked when the inode was made (Tree::mapped_file).
                let bytes: &'a [u8] = &self.sources[source as usize].1;
                out.write_borrowed(&bytes[offset as usize..(offset + size) as usize])
            }
        }
    }

    fn copy_spooled(&mut self, offset: u64, size: u64, out: &mut dyn Write) -> io::Result<()> {
        if offset != self.last_end {
            // A jump: read no more than this file until reads follow each other again, so an
            // output in another order than the spool costs no more than one read per file.
            self.read_ahead = 0;
        }
        let end = offset + size;
        let mut position = offset;
        while position < end {
            let window_end = self.window_start + self.window_len as u64;
            if position < self.window_start || position >= window_end {
                let needed = (end - position).min(BATCH as u64) as usize;
                let available = (self.spool.len() - position).min(BATCH as u64) as usize;
                let len = needed.max(self.read_ahead).min(available);
                self.spool
                    .read_exact_at(&mut self.window[..len], position)?;
                self.window_start = position;
                self.window_len = len;
                self.read_ahead = (self.read_ahead * 2).clamp(FIRST_READ_AHEAD, BATCH);
            }
            let from = (position - self.window_start) as usize;
            let n = (self.window_len - from).min((end - position) as usize);
            out.write_all(&self.window[from..from + n])?;
            position += n as u64;
        }
        self.last_end = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool_with(parts: &[Vec<u8>]) -> (tempfile::TempDir, Spool, Vec<(u64, u64)>) {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path()).unwrap();
        let mut places = Vec::new();
        for part in parts {
            let offset = spool.len();
            let n = spool
                .append(&mut &part[..], &mut StreamHasher::for_len(0))
                .unwrap();
            places.push((offset, n));
        }
        (dir, spool, places)
    }

    #[test]
    fn contents_read_back_in_any_order_across_batches_and_the_unwritten_tail() {
        // Sizes around the batch and window sizes, so reads straddle the file and the tail.
        let sizes = [
            1,
            0,
            5000,
            BATCH - 3,
            7,
            BATCH + 11,
            3 * BATCH / 2,
            1,
            40_000,
        ];
        let parts: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j * 7) as u8).collect())
            .collect();
        let (_dir, spool, places) = spool_with(&parts);
        assert!(spool.tail_len > 0, "the last bytes are still in memory");
        let orders: [Vec<usize>; 3] = [
            (0..parts.len()).collect(),
            (0..parts.len()).rev().collect(),
            vec![3, 0, 1, 2, 8, 4, 5, 7, 6, 2, 3],
        ];
        for order in orders {
            let mut reader = ContentReader::new(&spool, &[]);
            for &i in &order {
                let mut out = Vec::new();
                reader
                    .copy_spooled(places[i].0, places[i].1, &mut out)
                    .unwrap();
                assert_eq!(out, parts[i], "part {i} in order {order:?}");
            }
        }
    }
}
