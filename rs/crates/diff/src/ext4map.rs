//! Which file an inode or a block of an ext4 image belongs to, read from the image itself: the
//! inode tables (every inode's type, extent tree root and xattr block), the extent tree blocks
//! and the directory blocks (names and their parents).
//!
//! Written here rather than taken from an ext4 crate (`ext4-view`, `ext4`): those read an image
//! by random access, and a packaged image is only ever decoded as one stream, never extracted.
//! So the image is read in passes: the first reads the inode tables, each further one the
//! directory and extent tree blocks the previous pass found (they may lie before or after what
//! points to them). Two or three passes suffice for any tree depth seen in practice.
//!
//! Mapped: files, directories and symbolic links by extents or by the ext2/3 block map (direct
//! and indirect blocks), xattr blocks, the journal and the other reserved inodes. Not mapped:
//! inline data (it has no blocks), `meta_bg` layouts, and groups whose descriptors lie past the
//! first 1 MiB.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::ext4::Superblock;
use crate::DiffError;

const EXTENT_MAGIC: u16 = 0xf30a;
const EXTENTS_FL: u32 = 0x0008_0000;
const INLINE_DATA_FL: u32 = 0x1000_0000;
const ROOT_INODE: u64 = 2;
const RESIZE_INODE: u64 = 7;
const JOURNAL_INODE: u64 = 8;
const FIRST_NON_RESERVED: u64 = 11;
/// Further passes after the inode tables (each one level of extent tree or directories).
const MAX_PASSES: usize = 16;

/// What a block is to the inode that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    FileData,
    Directory,
    SymlinkTarget,
    ExtentTree,
    BlockMap,
    Xattr,
    Journal,
}

impl Role {
    pub fn describe(self) -> &'static str {
        match self {
            Role::FileData => "file data",
            Role::Directory => "directory entries",
            Role::SymlinkTarget => "symbolic link target",
            Role::ExtentTree => "extent tree",
            Role::BlockMap => "indirect block of the block map",
            Role::Xattr => "extended attribute block",
            Role::Journal => "journal",
        }
    }
}

/// The owner of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    pub inode: u64,
    pub role: Role,
}

/// Streams chosen blocks of a filesystem image, in increasing order.
pub trait BlockSource {
    /// Calls `visit(block, bytes)` for every block of `wanted` (holes read as zeros).
    fn pass(
        &mut self,
        block_size: u64,
        wanted: &BTreeSet<u64>,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), DiffError>;
}

/// The names and blocks of an ext4 image.
#[derive(Debug, Default)]
pub struct Ext4Map {
    /// child inode → (parent inode, name): the bytewise-smallest link of the child.
    names: BTreeMap<u64, (u64, Vec<u8>)>,
    /// (first block, block count, owner), sorted by first block.
    ranges: Vec<(u64, u64, Owner)>,
    /// Inodes whose blocks are not mapped, and why.
    pub unmapped: BTreeMap<u64, &'static str>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

fn le16(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}
fn le32(b: &[u8], o: usize) -> u64 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) as u64
}

/// What an extent node holds.
enum Node {
    /// Leaves: (first physical block, count).
    Leaves(Vec<(u64, u64)>),
    /// Index entries: the blocks of the nodes below.
    Index(Vec<u64>),
}

/// An extent node (inode `i_block` or a tree block); `None` when the header is not an extent
/// header.
fn extent_node(node: &[u8]) -> Option<Node> {
    if node.len() < 12 || le16(node, 0) as u16 != EXTENT_MAGIC {
        return None;
    }
    let entries = (le16(node, 2) as usize).min((node.len() - 12) / 12);
    let depth = le16(node, 6);
    let at = |i: usize| &node[12 + 12 * i..24 + 12 * i];
    Some(if depth == 0 {
        Node::Leaves(
            (0..entries)
                .map(|i| {
                    let e = at(i);
                    let len = le16(e, 4);
                    // lengths above 32768 mark unwritten extents of (len - 32768) blocks
                    let len = if len > 32_768 { len - 32_768 } else { len };
                    ((le16(e, 6) << 32) | le32(e, 8), len)
                })
                .filter(|&(_, len)| len > 0)
                .collect(),
        )
    } else {
        Node::Index(
            (0..entries)
                .map(|i| {
                    let e = at(i);
                    (le16(e, 8) << 32) | le32(e, 4)
                })
                .collect(),
        )
    })
}

struct Builder {
    map: Ext4Map,
    kinds: BTreeMap<u64, Kind>,
    /// Blocks to read in the next pass: directory blocks (of an inode) and extent tree blocks.
    dir_blocks: BTreeMap<u64, u64>,
    tree_blocks: BTreeMap<u64, u64>,
    /// Indirect blocks of a block map: block → (inode, levels of indirection below it).
    map_blocks: BTreeMap<u64, (u64, u8)>,
    blocks_count: u64,
}

impl Builder {
    fn role(&self, inode: u64) -> Role {
        if inode == JOURNAL_INODE {
            return Role::Journal;
        }
        match self.kinds.get(&inode) {
            Some(Kind::Dir) => Role::Directory,
            Some(Kind::Symlink) => Role::SymlinkTarget,
            _ => Role::FileData,
        }
    }

    fn add_range(&mut self, inode: u64, start: u64, len: u64, role: Role) {
        if start >= self.blocks_count {
            return;
        }
        let len = len.min(self.blocks_count - start);
        self.map.ranges.push((start, len, Owner { inode, role }));
        if role == Role::Directory {
            for b in start..start + len {
                self.dir_blocks.insert(b, inode);
            }
        }
    }

    /// An extent node of `inode` (its root in the inode, or a tree block).
    fn extents(&mut self, inode: u64, node: &[u8]) {
        match extent_node(node) {
            None => {
                self.map
                    .unmapped
                    .insert(inode, "its extent tree is damaged");
            }
            Some(Node::Leaves(leaves)) => {
                let role = self.role(inode);
                for (start, len) in leaves {
                    self.add_range(inode, start, len, role);
                }
            }
            Some(Node::Index(children)) => {
                for b in children {
                    if b < self.blocks_count {
                        self.map.ranges.push((
                            b,
                            1,
                            Owner {
                                inode,
                                role: Role::ExtentTree,
                            },
                        ));
                        self.tree_blocks.insert(b, inode);
                    }
                }
            }
        }
    }

    /// An entry of a block map: a data block (`level` 0) or an indirect block.
    fn mapped_block(&mut self, inode: u64, block: u64, level: u8) {
        if block == 0 || block >= self.blocks_count {
            return;
        }
        if level == 0 {
            let role = self.role(inode);
            self.add_range(inode, block, 1, role);
        } else {
            self.add_range(inode, block, 1, Role::BlockMap);
            self.map_blocks.insert(block, (inode, level - 1));
        }
    }

    fn inode(&mut self, ino: u64, raw: &[u8]) {
        let mode = le16(raw, 0);
        let (links, dtime, flags) = (le16(raw, 0x1a), le32(raw, 0x14), le32(raw, 0x20) as u32);
        if mode == 0 || dtime != 0 || links == 0 {
            return; // free or deleted
        }
        let kind = match mode & 0xf000 {
            0x4000 => Kind::Dir,
            0x8000 => Kind::File,
            0xa000 => Kind::Symlink,
            _ => Kind::Other,
        };
        self.kinds.insert(ino, kind);
        let acl = le32(raw, 0x68) | (le16(raw, 0x76) << 32);
        if acl != 0 {
            self.add_range(ino, acl, 1, Role::Xattr);
        }
        if kind == Kind::Other {
            return;
        }
        if flags & INLINE_DATA_FL != 0 {
            self.map.unmapped.insert(ino, "its data is inline");
        } else if flags & EXTENTS_FL != 0 {
            self.extents(ino, &raw[0x28..0x64]);
        } else if kind != Kind::Symlink || le32(raw, 0x1c) != 0 {
            // the ext2/3 block map: 12 direct blocks, then single, double and triple indirect
            // (a fast symbolic link keeps its target in i_block and has no blocks)
            for i in 0..15usize {
                let level = i.saturating_sub(11) as u8;
                self.mapped_block(ino, le32(raw, 0x28 + 4 * i), level);
            }
        }
    }

    /// An indirect block of a block map: its entries, `level` levels above the data.
    fn map_block(&mut self, inode: u64, level: u8, block: &[u8]) {
        for i in 0..block.len() / 4 {
            self.mapped_block(inode, le32(block, 4 * i), level);
        }
    }

    fn dir_block(&mut self, dir: u64, block: &[u8]) {
        let mut off = 0;
        while off + 8 <= block.len() {
            let rec_len = le16(block, off + 4) as usize;
            if rec_len < 8 || off + rec_len > block.len() {
                return; // damaged: stop at what can be read
            }
            let ino = le32(block, off);
            let name_len = (block[off + 6] as usize).min(rec_len - 8);
            let name = &block[off + 8..off + 8 + name_len];
            if ino != 0 && name != b"." && name != b".." && ino != dir {
                let link = (dir, name.to_vec());
                let keep = match self.map.names.get(&ino) {
                    Some((p, n)) => (n, p) > (&link.1, &link.0),
                    None => true,
                };
                if keep {
                    self.map.names.insert(ino, link);
                }
            }
            off += rec_len;
        }
    }
}

impl Ext4Map {
    /// Reads the map of the filesystem whose first bytes are `head`, from `src`. `None` when
    /// `head` holds no ext4 superblock or its group descriptors cannot be read.
    pub fn build(head: &[u8], src: &mut dyn BlockSource) -> Result<Option<Ext4Map>, DiffError> {
        let Some(sb) = Superblock::parse(head) else {
            return Ok(None);
        };
        let Some(tables) = sb.group_tables(head) else {
            return Ok(None);
        };
        let bs = sb.block_size;
        let per_block = bs / sb.inode_size;
        let itable_blocks = sb.inode_table_blocks();
        // block → first inode number it holds
        let mut itable: BTreeMap<u64, u64> = BTreeMap::new();
        for (g, t) in tables.iter().enumerate() {
            for k in 0..itable_blocks {
                // Saturating: hostile descriptors and counts must not overflow (fuzzing).
                let first = (g as u64)
                    .saturating_mul(sb.inodes_per_group)
                    .saturating_add(k * per_block + 1);
                if first <= sb.inodes_per_group.saturating_mul(g as u64 + 1) {
                    itable.insert(t.inode_table.saturating_add(k), first);
                }
            }
        }
        let mut b = Builder {
            map: Ext4Map::default(),
            kinds: BTreeMap::new(),
            dir_blocks: BTreeMap::new(),
            tree_blocks: BTreeMap::new(),
            map_blocks: BTreeMap::new(),
            blocks_count: sb.blocks_count,
        };
        let wanted: BTreeSet<u64> = itable.keys().copied().collect();
        let isz = sb.inode_size as usize;
        src.pass(bs, &wanted, &mut |block, bytes| {
            let first = itable[&block];
            for (i, raw) in bytes.chunks_exact(isz).enumerate() {
                b.inode(first + i as u64, raw);
            }
        })?;
        let mut seen = BTreeSet::new();
        for _ in 0..MAX_PASSES {
            let dirs = std::mem::take(&mut b.dir_blocks);
            let trees = std::mem::take(&mut b.tree_blocks);
            let maps = std::mem::take(&mut b.map_blocks);
            let wanted: BTreeSet<u64> = dirs
                .keys()
                .chain(trees.keys())
                .chain(maps.keys())
                .copied()
                .filter(|k| seen.insert(*k))
                .collect();
            if wanted.is_empty() {
                break;
            }
            src.pass(bs, &wanted, &mut |block, bytes| {
                if let Some(&ino) = trees.get(&block) {
                    b.extents(ino, bytes);
                }
                if let Some(&(ino, level)) = maps.get(&block) {
                    b.map_block(ino, level, bytes);
                }
                if let Some(&ino) = dirs.get(&block) {
                    b.dir_block(ino, bytes);
                }
            })?;
        }
        let mut map = b.map;
        map.ranges.sort();
        Ok(Some(map))
    }

    /// The owner of `block`, if any inode maps it (ranges never overlap in a sound image; a
    /// shared xattr block is named by one of its owners).
    pub fn owner(&self, block: u64) -> Option<Owner> {
        let i = self.ranges.partition_point(|r| r.0 <= block);
        let r = self.ranges[..i].last()?;
        (block < r.0 + r.1).then_some(r.2)
    }

    /// What a reserved inode is (`None` for the root and ordinary inodes).
    pub fn reserved(inode: u64) -> Option<&'static str> {
        match inode {
            JOURNAL_INODE => Some("the journal"),
            RESIZE_INODE => Some("the resize inode"),
            ROOT_INODE => None,
            i if i < FIRST_NON_RESERVED => Some("a reserved inode"),
            _ => None,
        }
    }

    /// The path of `inode` (`/` for the root), when a directory names it.
    pub fn path(&self, inode: u64) -> Option<String> {
        if inode == ROOT_INODE {
            return Some("/".into());
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut ino = inode;
        while ino != ROOT_INODE {
            let (parent, name) = self.names.get(&ino)?;
            parts.push(name);
            ino = *parent;
            if parts.len() > 4096 {
                return None; // a loop: damaged directories
            }
        }
        let mut out = String::new();
        for p in parts.iter().rev() {
            out.push('/');
            out.push_str(&String::from_utf8_lossy(p));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves blocks from a byte slice, zeros past its end.
    struct Slice(Vec<u8>);

    impl BlockSource for Slice {
        fn pass(
            &mut self,
            block_size: u64,
            wanted: &BTreeSet<u64>,
            visit: &mut dyn FnMut(u64, &[u8]),
        ) -> Result<(), DiffError> {
            for &b in wanted {
                let mut buf = vec![0u8; block_size as usize];
                let start = b.saturating_mul(block_size).min(self.0.len() as u64) as usize;
                let end = (start + buf.len()).min(self.0.len());
                buf[..end - start].copy_from_slice(&self.0[start..end]);
                visit(b, &buf);
            }
            Ok(())
        }
    }

    /// Found by fuzzing (rs/fuzz ext4): an inode table at the end of u64 overflowed.
    #[test]
    fn a_hostile_inode_table_address_does_not_overflow() {
        let h = crate::ext4::tests::hostile_64bit_head();
        assert!(Ext4Map::build(&h, &mut Slice(h.clone())).is_ok());
    }
}
