//! Extent trees: up to 4 extents live in the inode; more need leaf blocks (340 extents each) and,
//! beyond 4 leaves, index levels. Every node is filled completely in order, so the tree has the
//! minimum depth and width (e2fsck's "extent tree could be narrower/shorter" never fires).

use crate::layout::BLOCK_SIZE;
use crate::le::{hi32, lo32, put16, put32, u16_of};

/// Longest initialized extent.
pub const MAX_EXTENT_LEN: u64 = 32768;
const MAGIC: u16 = 0xF30A;
const ROOT_SLOTS: usize = 4;
const BLOCK_SLOTS: usize = (BLOCK_SIZE as usize - 12) / 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub logical: u32,
    pub len: u32,
    pub start: u64,
}

/// Tree blocks needed for `n` extents.
pub fn tree_blocks(n: usize) -> usize {
    let mut total = 0;
    let mut level = n;
    while level > ROOT_SLOTS {
        level = level.div_ceil(BLOCK_SLOTS);
        total += level;
    }
    total
}

pub struct Tree {
    /// The 60 bytes of `i_block`.
    pub root: [u8; 60],
    /// (block number, contents) of every tree block.
    pub blocks: Vec<(u64, Vec<u8>)>,
}

fn header(buf: &mut [u8], entries: usize, max: usize, depth: u16) {
    put16(buf, 0, MAGIC);
    put16(buf, 2, u16_of(entries, "at most BLOCK_SLOTS per node"));
    put16(buf, 4, u16_of(max, "at most BLOCK_SLOTS per node"));
    put16(buf, 6, depth);
}

/// The high 16 bits of a 48-bit block number (ours are below 2^32: Geometry::new).
fn start_hi(block: u64) -> u16 {
    u16_of(hi32(block), "block numbers are below 2^32 (Geometry::new)")
}

fn leaf(buf: &mut [u8], e: &Extent) {
    put32(buf, 0, e.logical);
    put16(buf, 4, u16_of(e.len, "at most MAX_EXTENT_LEN"));
    put16(buf, 6, start_hi(e.start));
    put32(buf, 8, lo32(e.start));
}

fn index(buf: &mut [u8], logical: u32, child: u64) {
    put32(buf, 0, logical);
    put32(buf, 4, lo32(child));
    put16(buf, 8, start_hi(child));
}

/// The tree for `extents` (sorted by logical block) stored in the `tree` blocks planned for it.
pub fn build(extents: &[Extent], tree: &[u64]) -> Tree {
    assert_eq!(
        tree.len(),
        tree_blocks(extents.len()),
        "extent tree blocks planned for a different extent count"
    );
    let mut root = [0u8; 60];
    if extents.len() <= ROOT_SLOTS {
        header(&mut root, extents.len(), ROOT_SLOTS, 0);
        for (i, e) in extents.iter().enumerate() {
            leaf(&mut root[12 + 12 * i..], e);
        }
        return Tree {
            root,
            blocks: Vec::new(),
        };
    }
    let mut next = tree.iter().copied();
    let mut blocks = Vec::with_capacity(tree.len());
    // (first logical block, block number) of each node on the current level.
    let mut level: Vec<(u32, u64)> = Vec::new();
    for chunk in extents.chunks(BLOCK_SLOTS) {
        let blk = next.next().expect("counted above");
        let mut b = vec![0u8; BLOCK_SIZE as usize];
        header(&mut b, chunk.len(), BLOCK_SLOTS, 0);
        for (i, e) in chunk.iter().enumerate() {
            leaf(&mut b[12 + 12 * i..], e);
        }
        blocks.push((blk, b));
        level.push((chunk[0].logical, blk));
    }
    let mut depth = 1u16;
    while level.len() > ROOT_SLOTS {
        let mut up = Vec::new();
        for chunk in level.chunks(BLOCK_SLOTS) {
            let blk = next.next().expect("counted above");
            let mut b = vec![0u8; BLOCK_SIZE as usize];
            header(&mut b, chunk.len(), BLOCK_SLOTS, depth);
            for (i, (logical, child)) in chunk.iter().enumerate() {
                index(&mut b[12 + 12 * i..], *logical, *child);
            }
            blocks.push((blk, b));
            up.push((chunk[0].0, blk));
        }
        level = up;
        depth += 1;
    }
    header(&mut root, level.len(), ROOT_SLOTS, depth);
    for (i, (logical, child)) in level.iter().enumerate() {
        index(&mut root[12 + 12 * i..], *logical, *child);
    }
    Tree { root, blocks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_tree_shapes() {
        assert_eq!(tree_blocks(0), 0);
        assert_eq!(tree_blocks(4), 0);
        assert_eq!(tree_blocks(5), 1);
        assert_eq!(tree_blocks(340 * 4), 4);
        assert_eq!(tree_blocks(340 * 4 + 1), 5 + 1);
        let ext: Vec<Extent> = (0..(340 * 4 + 1))
            .map(|i| Extent {
                logical: i * 2,
                len: 2,
                start: 1000 + i as u64 * 3,
            })
            .collect();
        let t = build(&ext, &(0..6).map(|b| 10 + b).collect::<Vec<_>>());
        assert_eq!(u16::from_le_bytes([t.root[6], t.root[7]]), 2, "depth");
        assert_eq!(
            u16::from_le_bytes([t.root[2], t.root[3]]),
            1,
            "one index block under the root"
        );
        assert_eq!(t.blocks.len(), 6);
        // the fifth leaf starts at extent 1360
        assert_eq!(&t.blocks[4].1[12..16], &(1360u32 * 2).to_le_bytes());
    }
}
