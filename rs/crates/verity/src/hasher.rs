//! Salted block digests, hash blocks filled digest by digest, and the cascade of levels that turns
//! a stream of data digests into the whole tree with one partial block per level in memory.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::{Progress, BLOCK_SIZE, DIGESTS_PER_BLOCK, DIGEST_SIZE};

pub(crate) type Digest = [u8; DIGEST_SIZE];

const BS: usize = BLOCK_SIZE as usize;
/// Data read per call (64 KiB): the buffer stays in the CPU's cache, so the kernel's copy into it
/// and the hashing that follows are cheap (on 1 GiB, measured: 0.13 s of system time, against
/// 0.45 s with 256 KiB reads). One thread: hashing with SHA-NI outruns most disks, the build
/// machine's cores are shared with other actions, and per-chunk hand-offs between threads cost
/// more wall time than they save on a busy machine (measured with 1 MiB chunks on two threads).
const CHUNK_BLOCKS: usize = 16;

/// `sha256(salt || block)`: hash type 1.
pub(crate) struct Salted(Sha256);

impl Salted {
    pub(crate) fn new(salt: &[u8]) -> Salted {
        let mut h = Sha256::new();
        h.update(salt);
        Salted(h)
    }

    pub(crate) fn digest(&self, block: &[u8]) -> Digest {
        let mut h = self.0.clone();
        h.update(block);
        h.finalize().into()
    }
}

/// One hash block being filled with digests; complete after 128, zero-padded when flushed early.
pub(crate) struct LevelHasher {
    block: Box<[u8; BS]>,
    filled: usize,
}

impl LevelHasher {
    pub(crate) fn new() -> LevelHasher {
        LevelHasher {
            block: Box::new([0; BS]),
            filled: 0,
        }
    }

    /// Adds a digest; true when that completed the block (read it with [`Self::block`] before the
    /// next push overwrites it).
    pub(crate) fn push(&mut self, d: &Digest) -> bool {
        self.block[self.filled * DIGEST_SIZE..][..DIGEST_SIZE].copy_from_slice(d);
        self.filled += 1;
        if self.filled as u64 == DIGESTS_PER_BLOCK {
            self.filled = 0;
            true
        } else {
            false
        }
    }

    /// Completes a partial block with zeros; true when there was one.
    pub(crate) fn flush(&mut self) -> bool {
        if self.filled == 0 {
            return false;
        }
        self.block[self.filled * DIGEST_SIZE..].fill(0);
        self.filled = 0;
        true
    }

    pub(crate) fn block(&self) -> &[u8; BS] {
        &self.block
    }
}

/// Receives each finished hash block: its level, its index within the level, its bytes.
pub(crate) type Emit<'a> = dyn FnMut(usize, u64, &[u8; BS]) -> Result<(), Error> + 'a;

/// The whole tree from a stream of data-block digests: level i's completed block is emitted and
/// its digest pushed into level i+1; the top level's digest is the root hash.
pub(crate) struct TreeBuilder<'s> {
    salted: &'s Salted,
    levels: Vec<LevelHasher>,
    emitted: Vec<u64>,
    root: Option<Digest>,
}

impl<'s> TreeBuilder<'s> {
    pub(crate) fn new(salted: &'s Salted, levels: usize) -> Self {
        TreeBuilder {
            salted,
            levels: (0..levels).map(|_| LevelHasher::new()).collect(),
            emitted: vec![0; levels],
            root: None,
        }
    }

    pub(crate) fn push_data_digest(&mut self, d: Digest, emit: &mut Emit) -> Result<(), Error> {
        self.push_at(0, d, emit)
    }

    fn push_at(&mut self, mut level: usize, mut d: Digest, emit: &mut Emit) -> Result<(), Error> {
        loop {
            if level == self.levels.len() {
                debug_assert!(self.root.is_none(), "two digests reached the top");
                self.root = Some(d);
                return Ok(());
            }
            if !self.levels[level].push(&d) {
                return Ok(());
            }
            d = self.emit_block(level, emit)?;
            level += 1;
        }
    }

    fn emit_block(&mut self, level: usize, emit: &mut Emit) -> Result<Digest, Error> {
        let index = self.emitted[level];
        self.emitted[level] += 1;
        let block = self.levels[level].block();
        emit(level, index, block)?;
        Ok(self.salted.digest(block))
    }

    /// Pads and emits every partial block, bottom up; returns the root hash and the number of
    /// blocks emitted per level.
    pub(crate) fn finish(mut self, emit: &mut Emit) -> Result<(Digest, Vec<u64>), Error> {
        for level in 0..self.levels.len() {
            if self.levels[level].flush() {
                let d = self.emit_block(level, emit)?;
                self.push_at(level + 1, d, emit)?;
            }
        }
        let root = self.root.expect("the top level always completes one block");
        Ok((root, self.emitted))
    }
}

/// Streams exactly `blocks` data blocks from `data` (named `name` in errors) and calls `each` with
/// every block's index and salted digest, in order.
pub(crate) fn for_each_data_digest<R: Read>(
    mut data: R,
    name: &str,
    blocks: u64,
    salted: &Salted,
    progress: &mut dyn Progress,
    mut each: impl FnMut(u64, Digest) -> Result<(), Error>,
) -> Result<(), Error> {
    let needed = blocks * BLOCK_SIZE as u64;
    progress.start(needed);
    let mut buf = vec![0u8; CHUNK_BLOCKS * BS];
    let mut index = 0u64;
    while index < blocks {
        let want = ((blocks - index).min(CHUNK_BLOCKS as u64)) as usize * BS;
        let got = read_full(&mut data, &mut buf[..want]).map_err(|source| Error::Read {
            name: name.to_string(),
            source,
        })?;
        if got < want {
            return Err(Error::ShortData {
                name: name.to_string(),
                read: index * BLOCK_SIZE as u64 + got as u64,
                needed,
            });
        }
        for block in buf[..want].chunks_exact(BS) {
            each(index, salted.digest(block))?;
            index += 1;
        }
        progress.advance(want as u64);
    }
    Ok(())
}

/// Fills `buf` unless the reader ends first; returns the bytes read.
pub(crate) fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_goes_first() {
        let s = Salted::new(b"salt");
        let mut h = Sha256::new();
        h.update(b"saltdata");
        assert_eq!(s.digest(b"data"), <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn level_hasher_pads_with_zeros() {
        let mut l = LevelHasher::new();
        for _ in 0..127 {
            assert!(!l.push(&[0xff; 32]));
        }
        assert!(l.push(&[0xee; 32]));
        assert_eq!(&l.block()[127 * 32..], &[0xee; 32]);
        assert!(!l.push(&[1; 32]));
        assert!(l.flush());
        assert_eq!(&l.block()[..32], &[1; 32]);
        assert!(l.block()[32..].iter().all(|&b| b == 0));
        assert!(!l.flush());
    }
}
