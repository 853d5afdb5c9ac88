//! Linear directory blocks: ".", "..", then the children in tar order, packed greedily; the last
//! record of each block stretches to the block end.

use crate::layout::BLOCK_SIZE;
use crate::le::{put16, put32, u16_of};
use crate::tree::{Child, Kind, Tree};

const BS: usize = BLOCK_SIZE as usize;

fn rec_len(name_len: usize) -> usize {
    (8 + name_len + 3) & !3
}

/// Index of the first child in each block; block 0 also holds "." and "..". Extra empty blocks
/// (up to `min_blocks`) start at `children.len()`.
pub fn split(children: &[Child], min_blocks: u64) -> Vec<usize> {
    let mut starts = vec![0];
    let mut used = rec_len(1) + rec_len(2);
    for (i, c) in children.iter().enumerate() {
        let r = rec_len(c.name.len());
        if used + r > BS {
            starts.push(i);
            used = 0;
        }
        used += r;
    }
    while (starts.len() as u64) < min_blocks {
        starts.push(children.len());
    }
    starts
}

pub fn file_type(kind: &Kind) -> u8 {
    match kind {
        Kind::File { .. } => 1,
        Kind::Dir { .. } => 2,
        Kind::Char { .. } => 3,
        Kind::Block { .. } => 4,
        Kind::Fifo => 5,
        Kind::Symlink { .. } => 7,
        Kind::Reserved => 0,
    }
}

fn put(b: &mut [u8], at: usize, ino: u32, rec: usize, name: &[u8], ftype: u8) {
    put32(b, at, ino);
    put16(b, at + 4, u16_of(rec, "records lie inside one 4 KiB block"));
    b[at + 6] = u8::try_from(name.len()).expect("names are at most 255 bytes (tree)");
    b[at + 7] = ftype;
    b[at + 8..at + 8 + name.len()].copy_from_slice(name);
}

/// Renders block `index` of directory `ino` (whose blocks start with `starts`).
pub fn render(
    tree: &Tree,
    ino: u32,
    parent: u32,
    children: &[Child],
    starts: &[usize],
    index: usize,
) -> Vec<u8> {
    let mut b = vec![0u8; BS];
    let from = starts[index];
    let to = starts.get(index + 1).copied().unwrap_or(children.len());
    // (inode, name, type) in order; the last record takes the rest of the block.
    let mut recs: Vec<(u32, &[u8], u8)> = Vec::with_capacity(to - from + 2);
    if index == 0 {
        recs.push((ino, b".", 2));
        recs.push((parent, b"..", 2));
    }
    for c in &children[from..to] {
        recs.push((c.ino, &c.name, file_type(&tree.node(c.ino).kind)));
    }
    if recs.is_empty() {
        // An empty block: one unused record spanning it.
        put(&mut b, 0, 0, BS, b"", 0);
        return b;
    }
    let mut at = 0;
    let last = recs.len() - 1;
    for (i, (child, name, ftype)) in recs.into_iter().enumerate() {
        let rec = if i == last {
            BS - at
        } else {
            rec_len(name.len())
        };
        put(&mut b, at, child, rec, name, ftype);
        at += rec;
    }
    b
}
