//! Where each level of the tree lives on the hash device (cryptsetup's `hash_levels`).

use crate::{BLOCK_SIZE, DIGESTS_PER_BLOCK, HASH_START_BLOCK};

/// One level of the tree: `blocks` hash blocks starting at hash device block `first_block`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub first_block: u64,
    pub blocks: u64,
}

impl Level {
    /// Byte offset of block `index` of this level on the hash device.
    pub fn offset(&self, index: u64) -> u64 {
        (self.first_block + index) * BLOCK_SIZE as u64
    }
}

/// The shape of a tree over `data_blocks` blocks. `levels()[0]` holds the digests of the data
/// blocks and is stored last; the top level (one block) is stored first, at [`HASH_START_BLOCK`].
/// A single data block needs no level at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    data_blocks: u64,
    levels: Vec<Level>,
}

impl Geometry {
    /// `data_blocks` ≥ 1 (the superblock checks it); at most 2^52, so nothing here overflows.
    pub(crate) fn new(data_blocks: u64) -> Geometry {
        assert!(data_blocks >= 1, "a hash tree covers at least one block");
        // Level i holds ceil(data_blocks / 128^(i+1)) blocks; the top level is the first with one.
        let mut sizes = Vec::new();
        let mut below = data_blocks;
        while below > 1 {
            below = below.div_ceil(DIGESTS_PER_BLOCK);
            sizes.push(below);
        }
        let mut levels = vec![
            Level {
                first_block: 0,
                blocks: 0
            };
            sizes.len()
        ];
        let mut next = HASH_START_BLOCK;
        for (i, &blocks) in sizes.iter().enumerate().rev() {
            levels[i] = Level {
                first_block: next,
                blocks,
            };
            next += blocks;
        }
        Geometry {
            data_blocks,
            levels,
        }
    }

    pub fn data_blocks(&self) -> u64 {
        self.data_blocks
    }

    /// Bytes of data the tree covers.
    pub fn data_size(&self) -> u64 {
        self.data_blocks * BLOCK_SIZE as u64
    }

    /// The levels, bottom (level 0, the data blocks' digests) first.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// Hash blocks in the tree (what veritysetup prints as "Hash blocks"), superblock excluded.
    pub fn hash_blocks(&self) -> u64 {
        self.levels.iter().map(|l| l.blocks).sum()
    }

    /// Bytes of the hash device: the superblock's block and the tree.
    pub fn hash_device_size(&self) -> u64 {
        (HASH_START_BLOCK + self.hash_blocks()) * BLOCK_SIZE as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recomputed the way cryptsetup's `hash_levels` does, with shifts.
    fn cryptsetup_levels(data_blocks: u64) -> Vec<(u64, u64)> {
        let bits = 7;
        let mut levels = 0;
        while bits * levels < 64 && (data_blocks - 1) >> (bits * levels) != 0 {
            levels += 1;
        }
        let mut out = vec![(0, 0); levels as usize];
        let mut pos = 1u64;
        for i in (0..levels).rev() {
            let shift = (i + 1) * bits;
            let s = (data_blocks + (1u64 << shift) - 1) >> shift;
            out[i as usize] = (pos, s);
            pos += s;
        }
        out
    }

    #[test]
    fn matches_cryptsetup_hash_levels() {
        for n in [
            1u64,
            2,
            127,
            128,
            129,
            128 * 128,
            128 * 128 + 1,
            262_144,
            128u64.pow(3) + 5,
            (1 << 52) - 1,
        ] {
            let g = Geometry::new(n);
            let got: Vec<_> = g
                .levels()
                .iter()
                .map(|l| (l.first_block, l.blocks))
                .collect();
            assert_eq!(got, cryptsetup_levels(n), "data_blocks {n}");
            assert_eq!(g.levels().last().map_or(1, |l| l.blocks), 1);
        }
    }

    #[test]
    fn sizes_seen_from_veritysetup() {
        // `veritysetup format` on this machine: data blocks → hash blocks, hash file size.
        for (n, hash_blocks, size) in [
            (1, 0, 4096),
            (2, 1, 8192),
            (128, 1, 8192),
            (129, 3, 16384),
            (16385, 132, 544768),
        ] {
            let g = Geometry::new(n);
            assert_eq!(g.hash_blocks(), hash_blocks, "data_blocks {n}");
            assert_eq!(g.hash_device_size(), size, "data_blocks {n}");
        }
    }
}
