//! The block cache every fatfs access goes through, and the fixes applied to what fatfs writes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use crate::SECTOR;

/// A write-back cache of 4 KiB blocks in front of the image file.
///
/// fatfs reads and writes FAT entries four bytes at a time; straight to the file that is one
/// system call each. fatfs 0.3 has no buffering of its own and `fscommon::BufStream` is a plain
/// read buffer, so this keeps the touched blocks in memory until `write_back`. The cache is bounded:
/// when it holds more than `LIMIT` blocks it is written back and cleared, in block order.
pub(crate) struct SectorCache<F: Read + Write + Seek> {
    inner: F,
    pos: u64,
    /// The FAT32 root directory's first cluster, once the volume is formatted.
    pub(crate) root_cluster: Option<u32>,
    /// A long name to put in place of a placeholder while fatfs writes it (see [`LfnRename`]).
    rename: Rc<RefCell<Option<LfnRename>>>,
    blocks: BTreeMap<u64, Box<[u8; BLOCK]>>,
    /// The blocks changed since the last flush: fatfs flushes after every file, and a flush
    /// must cost what changed, not the whole cache.
    dirty: BTreeSet<u64>,
}

const BLOCK: usize = 4096;
const LIMIT: usize = 4096; // 16 MiB

impl<F: Read + Write + Seek> SectorCache<F> {
    pub(crate) fn new(inner: F, rename: Rc<RefCell<Option<LfnRename>>>) -> Self {
        SectorCache {
            inner,
            pos: 0,
            root_cluster: None,
            rename,
            blocks: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// Writes every changed block to the file, in block order.
    pub(crate) fn write_back(&mut self) -> io::Result<()> {
        for index in std::mem::take(&mut self.dirty) {
            let b = &self.blocks[&index];
            self.inner.seek(SeekFrom::Start(index * BLOCK as u64))?;
            self.inner.write_all(&b[..])?;
        }
        self.inner.flush()
    }

    /// Block `index`, read in if need be (callers that change it add it to `dirty`).
    fn block(&mut self, index: u64) -> io::Result<&mut [u8; BLOCK]> {
        if !self.blocks.contains_key(&index) {
            if self.blocks.len() >= LIMIT {
                self.write_back()?;
                self.blocks.clear();
            }
            let mut b = Box::new([0u8; BLOCK]);
            self.inner.seek(SeekFrom::Start(index * BLOCK as u64))?;
            let mut got = 0;
            while got < BLOCK {
                match self.inner.read(&mut b[got..])? {
                    0 => break, // past the end: reads as zeros, as a sparse file does
                    n => got += n,
                }
            }
            self.blocks.insert(index, b);
        }
        Ok(self.blocks.get_mut(&index).expect("inserted above"))
    }
}

impl<F: Read + Write + Seek> SectorCache<F> {
    /// Works around a fatfs 0.3.6 bug: `create_dir` writes a long-name entry before each of the
    /// new directory's `.` and `..` entries, so the directory starts
    /// `[LFN "."] [.] [LFN ".."] [..]`, which fsck.fat rejects (`.` and `..` must be the first two
    /// slots), and gives `..` of a top-level directory the root's cluster number instead of 0.
    /// When the write that completes such a `..` entry lands (the last step of
    /// `create_dir`, before anything else is put in the directory), the four slots are rewritten
    /// to `[.] [..] [free] [free]`. fatfs keeps no copy of directory contents, so it then appends
    /// the directory's children from slot 2 on.
    fn fix_dot_entries(&mut self, end: u64) -> io::Result<()> {
        if end < 128 || !(end - 128).is_multiple_of(SECTOR) {
            return Ok(());
        }
        let start = end - 128; // sector aligned, so the 128 bytes lie in one block
        let root_cluster = self.root_cluster;
        let off = (start % BLOCK as u64) as usize;
        let index = start / BLOCK as u64;
        let s = &mut self.block(index)?[off..off + 128];
        const LFN: u8 = 0x0f;
        const DIRECTORY: u8 = 0x10;
        let pattern = s[11] == LFN
            && &s[32..43] == b".          "
            && s[43] == DIRECTORY
            && s[75] == LFN
            && &s[96..107] == b"..         "
            && s[107] == DIRECTORY;
        if pattern {
            s.copy_within(32..64, 0);
            s.copy_within(96..128, 32);
            s[64..128].fill(0);
            // A `..` that points at the FAT32 root directory must say cluster 0 (FAT spec);
            // fatfs writes the root's cluster number there.
            let dotdot = &mut s[32..64];
            let cluster = u32::from(u16::from_le_bytes([dotdot[26], dotdot[27]]))
                | u32::from(u16::from_le_bytes([dotdot[20], dotdot[21]])) << 16;
            if Some(cluster) == root_cluster {
                dotdot[20..22].fill(0);
                dotdot[26..28].fill(0);
            }
            self.dirty.insert(index);
        }
        Ok(())
    }
}

impl<F: Read + Write + Seek> SectorCache<F> {
    /// While a [`LfnRename`] is pending, a long-name slot that fatfs has just finished writing
    /// and that holds the placeholder's characters gets the real name's instead.
    fn rename_lfn_slot(&mut self, end: u64) -> io::Result<()> {
        let rename = Rc::clone(&self.rename);
        let mut pending = rename.borrow_mut();
        let Some(r) = pending.as_mut() else {
            return Ok(());
        };
        let start = end - 32; // 32-byte aligned, so the slot lies in one block
        let off = (start % BLOCK as u64) as usize;
        let index = start / BLOCK as u64;
        let slot = &mut self.block(index)?[off..off + 32];
        const LFN: u8 = 0x0f;
        if slot[11] != LFN {
            return Ok(());
        }
        let order = usize::from(slot[0] & 0x1f);
        if order == 0 || lfn_chunk(&r.from, order) != slot_units(slot) {
            return Ok(());
        }
        for (i, unit) in lfn_chunk(&r.to, order).into_iter().enumerate() {
            let at = LFN_UNIT_OFFSETS[i];
            slot[at..at + 2].copy_from_slice(&unit.to_le_bytes());
        }
        self.dirty.insert(index);
        r.slots_done += 1;
        Ok(())
    }
}

/// A long name that fatfs 0.3.6 cannot be given directly (see `names::Plan`): the entry is
/// created under `from`, a placeholder with as many UTF-16 units (so the same slots), and its
/// long-name slots are rewritten to `to` as they are written. The short name and the slots'
/// checksum stay as fatfs made them for the placeholder.
#[derive(Debug)]
pub(crate) struct LfnRename {
    pub from: Vec<u16>,
    pub to: Vec<u16>,
    /// Slots rewritten so far: the caller checks that every slot of the name was.
    pub slots_done: usize,
}

impl LfnRename {
    /// How many long-name slots the name takes.
    pub fn slots(&self) -> usize {
        self.to.len().div_ceil(13)
    }
}

/// Where a long-name slot keeps its 13 UTF-16 units: 5 at byte 1, 6 at byte 14, 2 at byte 28.
const LFN_UNIT_OFFSETS: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

fn slot_units(slot: &[u8]) -> [u16; 13] {
    LFN_UNIT_OFFSETS.map(|at| u16::from_le_bytes([slot[at], slot[at + 1]]))
}

/// The 13 units slot `order` (1-based) of `name` holds: the name's units, a 0x0000 terminator
/// when the name ends inside the slot with room left, then 0xFFFF padding.
fn lfn_chunk(name: &[u16], order: usize) -> [u16; 13] {
    std::array::from_fn(|i| {
        let idx = (order - 1) * 13 + i;
        match idx.cmp(&name.len()) {
            std::cmp::Ordering::Less => name[idx],
            std::cmp::Ordering::Equal => 0x0000,
            std::cmp::Ordering::Greater => 0xFFFF,
        }
    })
}

impl<F: Read + Write + Seek> Read for SectorCache<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let index = self.pos / BLOCK as u64;
        let off = (self.pos % BLOCK as u64) as usize;
        let n = buf.len().min(BLOCK - off);
        let b = self.block(index)?;
        buf[..n].copy_from_slice(&b[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<F: Read + Write + Seek> Write for SectorCache<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let index = self.pos / BLOCK as u64;
        let off = (self.pos % BLOCK as u64) as usize;
        let n = buf.len().min(BLOCK - off);
        if off == 0 && n == BLOCK && !self.blocks.contains_key(&index) {
            // A whole block of file data: write it through, no need to cache it.
            self.inner.seek(SeekFrom::Start(self.pos))?;
            self.inner.write_all(&buf[..BLOCK])?;
        } else {
            self.block(index)?[off..off + n].copy_from_slice(&buf[..n]);
            self.dirty.insert(index);
        }
        self.pos += n as u64;
        if self.pos.is_multiple_of(32) {
            self.fix_dot_entries(self.pos)?;
            self.rename_lfn_slot(self.pos)?;
        }
        Ok(n)
    }

    /// Nothing: fatfs flushes after every file it closes, and writing the changed blocks back
    /// then would cost system calls per file for blocks that change again with the next one.
    /// The cache writes back when it is full and when its owner calls [`SectorCache::write_back`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<F: Read + Write + Seek> Seek for SectorCache<F> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = match pos {
            SeekFrom::Start(p) => p,
            SeekFrom::Current(d) => self
                .pos
                .checked_add_signed(d)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?,
            SeekFrom::End(d) => {
                let end = self.inner.seek(SeekFrom::End(0))?;
                end.checked_add_signed(d).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "seek before start")
                })?
            }
        };
        Ok(self.pos)
    }
}
