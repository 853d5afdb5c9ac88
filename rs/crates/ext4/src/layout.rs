//! Geometry (block groups, where their metadata sits) and the block plan (which blocks each inode gets).
//!
//! Allocation is one cursor moving forward through the data area of each group in turn, in inode
//! order: the plan is a pure function of the tree and the geometry, so it is reproducible, and
//! the used data blocks of every group form a prefix, which keeps the bitmaps trivial.

use crate::extent::{self, Extent, MAX_EXTENT_LEN};
use crate::le::u32_of;

pub const BLOCK_SIZE: u64 = 4096;
pub const INODE_SIZE: u64 = 256;
/// Default bytes per inode (mke2fs' default for ext4).
pub const INODE_RATIO: u64 = 16384;
/// `--size auto` adds this percentage of the minimum size…
pub const AUTO_HEADROOM_PERCENT: u64 = 10;
/// …plus this many bytes, then rounds up to 1 MiB.
pub const AUTO_HEADROOM_BYTES: u64 = 4 << 20;

pub const DEFAULT_BLOCKS_PER_GROUP: u64 = 8 * BLOCK_SIZE;
pub const DESC_SIZE: u64 = 32;
const INODES_PER_BLOCK: u64 = BLOCK_SIZE / INODE_SIZE;
/// mke2fs drops a last group smaller than its metadata plus this many blocks.
const MIN_LAST_GROUP_DATA: u64 = 50;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub blocks_count: u64,
    pub blocks_per_group: u64,
    pub groups: u64,
    pub inodes_per_group: u64,
    pub itable_blocks: u64,
    pub gdt_blocks: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// Not even the metadata of the first group fits.
    NoRoom,
    /// More inodes per group than a bitmap block or the group can hold: more groups (a larger
    /// image) spread them thinner.
    TooManyInodes { per_group: u64 },
    /// The descriptor table does not fit the first group (only with small test group sizes).
    TooManyGroups { groups: u64 },
    /// More than 2^32 - 1 inodes in all.
    InodesOver32Bits { inodes: u64 },
    /// Beyond 2^32 - 1 blocks (needs the 64bit feature, which we do not use).
    Over16TiB,
}

/// Groups 0, 1 and powers of 3, 5 and 7 carry superblock and descriptor backups (sparse_super).
pub fn has_super(group: u64) -> bool {
    fn power_of(mut n: u64, base: u64) -> bool {
        while n.is_multiple_of(base) {
            n /= base;
        }
        n == 1
    }
    group <= 1 || power_of(group, 3) || power_of(group, 5) || power_of(group, 7)
}

impl Geometry {
    /// The geometry for `blocks` blocks with at least `min_inodes` inodes (and, unless
    /// `explicit_inodes`, one inode per [`INODE_RATIO`] bytes).
    pub fn new(
        blocks: u64,
        blocks_per_group: u64,
        min_inodes: u64,
        explicit_inodes: bool,
    ) -> Result<Geometry, GeometryError> {
        if blocks > u64::from(u32::MAX) {
            return Err(GeometryError::Over16TiB);
        }
        let bpg = blocks_per_group;
        let mut blocks = blocks;
        loop {
            let groups = blocks.div_ceil(bpg);
            if groups == 0 {
                return Err(GeometryError::NoRoom);
            }
            let by_ratio = if explicit_inodes {
                0
            } else {
                blocks * BLOCK_SIZE / INODE_RATIO
            };
            let wanted = min_inodes.max(by_ratio);
            let ipg = wanted.div_ceil(groups).div_ceil(INODES_PER_BLOCK).max(1) * INODES_PER_BLOCK;
            let geo = Geometry {
                blocks_count: blocks,
                blocks_per_group: bpg,
                groups,
                inodes_per_group: ipg,
                itable_blocks: ipg / INODES_PER_BLOCK,
                gdt_blocks: (groups * DESC_SIZE).div_ceil(BLOCK_SIZE),
            };
            // The group must hold its own metadata, and the inode bitmap is one block.
            if geo.super_blocks(0) + 3 > bpg {
                return Err(GeometryError::TooManyGroups { groups });
            }
            if ipg > 8 * BLOCK_SIZE || geo.meta_blocks(0) + 1 > bpg {
                return Err(GeometryError::TooManyInodes { per_group: ipg });
            }
            if ipg * groups > u64::from(u32::MAX) {
                return Err(GeometryError::InodesOver32Bits {
                    inodes: ipg * groups,
                });
            }
            let last = groups - 1;
            let last_len = geo.group_len(last);
            if groups > 1 && last_len < geo.meta_blocks(last) + MIN_LAST_GROUP_DATA {
                blocks -= last_len;
                continue;
            }
            if last_len < geo.meta_blocks(last) + 1 {
                return Err(GeometryError::NoRoom);
            }
            return Ok(geo);
        }
    }

    pub fn inodes_count(&self) -> u64 {
        self.inodes_per_group * self.groups
    }

    pub fn group_start(&self, g: u64) -> u64 {
        g * self.blocks_per_group
    }

    pub fn group_len(&self, g: u64) -> u64 {
        (self.blocks_count - self.group_start(g)).min(self.blocks_per_group)
    }

    /// Superblock + descriptors (backup groups only), two bitmaps, the inode table.
    pub fn meta_blocks(&self, g: u64) -> u64 {
        self.super_blocks(g) + 2 + self.itable_blocks
    }

    fn super_blocks(&self, g: u64) -> u64 {
        if has_super(g) {
            1 + self.gdt_blocks
        } else {
            0
        }
    }

    pub fn block_bitmap(&self, g: u64) -> u64 {
        self.group_start(g) + self.super_blocks(g)
    }

    pub fn inode_bitmap(&self, g: u64) -> u64 {
        self.block_bitmap(g) + 1
    }

    pub fn inode_table(&self, g: u64) -> u64 {
        self.block_bitmap(g) + 2
    }

    pub fn first_data_block(&self, g: u64) -> u64 {
        self.group_start(g) + self.meta_blocks(g)
    }

    pub fn group_end(&self, g: u64) -> u64 {
        self.group_start(g) + self.group_len(g)
    }
}

/// What one inode needs besides its inode: data blocks (file contents, directory blocks, a long
/// symlink's target) and maybe an xattr block.
#[derive(Clone, Copy, Debug, Default)]
pub struct Demand {
    pub data_blocks: u64,
    /// The shared xattr block the inode refers to, numbered 0, 1, … in order of first use
    /// (see `xattr::share`): its first user's plan allocates it, later users refer to it.
    pub xattr_slot: Option<u32>,
}

/// Distinct xattr blocks the demands refer to.
fn xattr_blocks(demands: &[Demand]) -> u64 {
    demands
        .iter()
        .filter_map(|d| d.xattr_slot)
        .max()
        .map_or(0, |last| u64::from(last) + 1)
}

/// Blocks planned for one inode.
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    pub extents: Vec<Extent>,
    /// Extent-tree blocks (leaves first, then index levels), empty when the extents fit in the inode.
    pub tree: Vec<u64>,
    pub xattr_block: Option<u64>,
}

impl Mapping {
    /// Blocks charged to the inode (i_blocks counts them in 512-byte units).
    pub fn total_blocks(&self) -> u64 {
        self.extents.iter().map(|e| u64::from(e.len)).sum::<u64>()
            + self.tree.len() as u64
            + u64::from(self.xattr_block.is_some())
    }
}

pub struct Plan {
    pub maps: Vec<Mapping>,
    /// The next free block after allocation: groups before its group are full, later ones hold
    /// metadata only.
    pub cursor: u64,
    /// Blocks that did not fit (0 when the plan is valid).
    pub overflow: u64,
}

struct Allocator<'a> {
    geo: &'a Geometry,
    group: u64,
    cursor: u64,
    overflow: u64,
    /// The block of each xattr slot allocated so far.
    xattr_blocks: Vec<u64>,
}

impl Allocator<'_> {
    /// Up to `want` contiguous blocks: (start, count).
    fn take(&mut self, want: u64) -> (u64, u64) {
        while self.group < self.geo.groups && self.cursor >= self.geo.group_end(self.group) {
            self.group += 1;
            if self.group < self.geo.groups {
                self.cursor = self.geo.first_data_block(self.group);
            }
        }
        if self.group >= self.geo.groups {
            self.overflow += want;
            return (0, want);
        }
        let n = want.min(self.geo.group_end(self.group) - self.cursor);
        let start = self.cursor;
        self.cursor += n;
        (start, n)
    }

    fn map(&mut self, demand: Demand) -> Mapping {
        let mut extents = Vec::new();
        let mut logical = 0;
        while logical < demand.data_blocks {
            let (start, len) = self.take((demand.data_blocks - logical).min(MAX_EXTENT_LEN));
            extents.push(Extent {
                logical: u32_of(
                    logical,
                    "file sizes are checked against MAX_FILE_BLOCKS in tree",
                ),
                len: u32_of(len, "at most MAX_EXTENT_LEN"),
                start,
            });
            logical += len;
        }
        let tree = (0..extent::tree_blocks(extents.len()))
            .map(|_| self.take(1).0)
            .collect();
        let xattr_block = demand.xattr_slot.map(|slot| {
            let slot = slot as usize;
            if slot == self.xattr_blocks.len() {
                let block = self.take(1).0;
                self.xattr_blocks.push(block);
            }
            self.xattr_blocks[slot]
        });
        Mapping {
            extents,
            tree,
            xattr_block,
        }
    }
}

/// Plans blocks for every inode's demand (index = inode number - 1), in inode order.
pub fn plan(geo: &Geometry, demands: &[Demand]) -> Plan {
    let mut a = Allocator {
        geo,
        group: 0,
        cursor: geo.first_data_block(0),
        overflow: 0,
        xattr_blocks: Vec::new(),
    };
    let maps = demands.iter().map(|d| a.map(*d)).collect();
    Plan {
        maps,
        cursor: a.cursor,
        overflow: a.overflow,
    }
}

/// The smallest block count whose plan has no overflow: grow from an estimate until the content
/// fits, then bisect down (exact where fitting is monotonic, which holds except right at a
/// dropped tiny last group). Too many inodes for the groups of a size is "does not fit" like too
/// little room: more blocks bring more groups, each with its own inode table (a tree of empty
/// files needs no data blocks, but 32768 inodes at most per group).
pub fn min_blocks(
    demands: &[Demand],
    blocks_per_group: u64,
    min_inodes: u64,
    explicit_inodes: bool,
) -> Result<u64, GeometryError> {
    // Ok(None) = does not fit; Ok(Some(overflow)) with 0 = fits.
    let attempt = |blocks: u64| -> Result<Option<u64>, GeometryError> {
        match Geometry::new(blocks, blocks_per_group, min_inodes, explicit_inodes) {
            Err(GeometryError::NoRoom | GeometryError::TooManyInodes { .. }) => Ok(None),
            Err(e) => Err(e),
            Ok(geo) => Ok(Some(plan(&geo, demands).overflow)),
        }
    };
    let content = demands
        .iter()
        .fold(0u64, |sum, d| sum.saturating_add(d.data_blocks));
    let content = content.saturating_add(xattr_blocks(demands));
    let mut lo = content; // cannot fit: the metadata needs blocks too
    let mut hi = content + 64;
    loop {
        if hi > u64::from(u32::MAX) {
            return Err(GeometryError::Over16TiB);
        }
        match attempt(hi)? {
            Some(0) => break,
            // New groups bring their own metadata: grow by the shortfall plus some.
            Some(overflow) => {
                lo = hi;
                hi += overflow + overflow / 8 + 64;
            }
            None => {
                lo = hi;
                hi += hi / 4 + 16;
            }
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if attempt(mid)? == Some(0) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// `--size auto`: the minimum plus the documented headroom, rounded up to 1 MiB.
pub fn auto_size_bytes(min_blocks: u64) -> u64 {
    let min = min_blocks * BLOCK_SIZE;
    let with_headroom = min + min * AUTO_HEADROOM_PERCENT / 100 + AUTO_HEADROOM_BYTES;
    with_headroom.div_ceil(1 << 20) << 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups() {
        let with: Vec<u64> = (0..60).filter(|g| has_super(*g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49]);
    }

    #[test]
    fn small_last_group_is_dropped_and_allocation_skips_metadata() {
        let geo = Geometry::new(32768 + 100, 32768, 0, false).unwrap();
        assert_eq!(geo.groups, 1);
        assert_eq!(geo.blocks_count, 32768);
        let geo = Geometry::new(4096, 1024, 0, false).unwrap();
        assert_eq!(geo.groups, 4);
        let p = plan(
            &geo,
            &[Demand {
                data_blocks: 3000,
                xattr_slot: None,
            }],
        );
        assert_eq!(p.overflow, 0);
        let e = &p.maps[0].extents;
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].start, geo.first_data_block(0));
        assert_eq!(e[1].start, geo.first_data_block(1));
        assert_eq!(e.iter().map(|e| u64::from(e.len)).sum::<u64>(), 3000);
        let p = plan(
            &geo,
            &[Demand {
                data_blocks: 5000,
                xattr_slot: None,
            }],
        );
        assert!(p.overflow > 0);
    }
}
