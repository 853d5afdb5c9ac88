//! Sparse output: all-zero 4 KiB blocks are skipped (left as holes), everything else is written.
//!
//! Which blocks are holes is decided by their content alone (aligned 4 KiB blocks of the output
//! that are all zeros), never by the host filesystem's extent layout, so the bytes read back are
//! the same everywhere; only the allocation differs.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

/// The block size holes are found in.
pub const BLOCK: usize = 4096;

/// Whether `b` is all zero bytes.
pub fn is_zero(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(16);
    // 16 bytes at a time: the compiler turns this into wide compares.
    let wide = chunks
        .by_ref()
        .all(|c| u128::from_ne_bytes(c.try_into().expect("16 bytes")) == 0);
    wide && chunks.remainder().iter().all(|&x| x == 0)
}

/// A sequential writer that leaves aligned all-zero 4 KiB blocks unwritten.
///
/// Data is written with positioned writes, consecutive data blocks batched together; call
/// [`SparseWriter::finish`] to write the last partial block and set the file length.
pub struct SparseWriter<'a> {
    file: &'a File,
    /// Bytes accepted so far (the logical position).
    pos: u64,
    /// A partial block (pos % BLOCK bytes) not yet decided on.
    pending: Vec<u8>,
    /// Consecutive data bytes waiting to be written at `run_start`.
    run: Vec<u8>,
    run_start: u64,
}

const RUN_LIMIT: usize = 1 << 20;

impl<'a> SparseWriter<'a> {
    /// Starts writing at offset 0 of `file` (whose existing length is ignored and reset by finish).
    pub fn new(file: &'a File) -> Self {
        SparseWriter {
            file,
            pos: 0,
            pending: Vec::with_capacity(BLOCK),
            run: Vec::with_capacity(RUN_LIMIT),
            run_start: 0,
        }
    }

    /// The number of bytes accepted so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn flush_run(&mut self) -> io::Result<()> {
        if !self.run.is_empty() {
            self.file.write_all_at(&self.run, self.run_start)?;
            self.run.clear();
        }
        Ok(())
    }

    /// A complete block that starts at `start`.
    fn block(&mut self, start: u64, data: &[u8]) -> io::Result<()> {
        if is_zero(data) {
            return self.flush_run();
        }
        if self.run.is_empty() {
            self.run_start = start;
        }
        self.run.extend_from_slice(data);
        if self.run.len() >= RUN_LIMIT {
            self.flush_run()?;
        }
        Ok(())
    }

    /// Writes whatever is pending and sets the file length to the number of bytes accepted.
    pub fn finish(mut self) -> io::Result<u64> {
        let start = self.pos - self.pending.len() as u64;
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.block(start, &pending)?;
        }
        self.flush_run()?;
        self.file.set_len(self.pos)?;
        Ok(self.pos)
    }
}

impl Write for SparseWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        // complete a pending partial block first
        if !self.pending.is_empty() {
            let take = rest.len().min(BLOCK - self.pending.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.pos += take as u64;
            if self.pending.len() == BLOCK {
                let start = self.pos - BLOCK as u64;
                let block = std::mem::take(&mut self.pending);
                self.block(start, &block)?;
                self.pending = block;
                self.pending.clear();
            }
        }
        // whole blocks straight from the caller's buffer
        while rest.len() >= BLOCK {
            let start = self.pos;
            self.block(start, &rest[..BLOCK])?;
            rest = &rest[BLOCK..];
            self.pos += BLOCK as u64;
        }
        if !rest.is_empty() {
            self.pending.extend_from_slice(rest);
            self.pos += rest.len() as u64;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Feeds `n` zero bytes to `w`.
pub fn write_zeros(w: &mut impl Write, mut n: u64) -> io::Result<()> {
    static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        w.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn zero_blocks_become_holes_and_content_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = File::create(&path).unwrap();
        let mut data = vec![0u8; 64 * BLOCK + 100];
        data[5] = 1; // block 0
        data[40 * BLOCK + 7] = 2; // block 40
        data[64 * BLOCK + 99] = 3; // the partial tail
        let mut w = SparseWriter::new(&f);
        // odd-sized writes that straddle block boundaries
        for chunk in data.chunks(1000) {
            w.write_all(chunk).unwrap();
        }
        assert_eq!(w.finish().unwrap(), data.len() as u64);
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == data);
        let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            allocated <= 8 * BLOCK as u64,
            "{allocated} bytes allocated for 3 data blocks"
        );
        assert!(
            is_zero(&[0; 33]) && !is_zero(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        );
    }
}
