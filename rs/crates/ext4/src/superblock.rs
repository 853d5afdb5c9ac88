//! Superblock and group descriptors.

use crate::layout::{Geometry, BLOCK_SIZE, DESC_SIZE, INODE_SIZE};
use crate::le::{put16, put32, u16_of, u32_of};
use crate::xattr::EXTRA_ISIZE;

const COMPAT_EXT_ATTR: u32 = 0x8;
const COMPAT_DIR_INDEX: u32 = 0x20;
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_EXTENTS: u32 = 0x40;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_LARGE_FILE: u32 = 0x2;
const RO_COMPAT_HUGE_FILE: u32 = 0x8;
const RO_COMPAT_DIR_NLINK: u32 = 0x20;
const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;

pub struct Info {
    pub free_blocks: u64,
    pub free_inodes: u64,
    pub uuid: [u8; 16],
    pub hash_seed: [u8; 16],
    pub label: [u8; 16],
    pub time: u32,
}

#[derive(Clone, Copy, Default)]
pub struct GroupStats {
    pub free_blocks: u64,
    pub free_inodes: u64,
    pub used_dirs: u64,
}

/// Block and inode counts and numbers: `Geometry::new` keeps them below 2^32.
fn n32(v: u64) -> u32 {
    u32_of(v, "block and inode counts are below 2^32 (Geometry::new)")
}

/// Per-group counts: at most 32768 blocks and inodes per group (`Geometry::new`).
fn n16(v: u64) -> u16 {
    u16_of(
        v,
        "at most 32768 blocks and inodes per group (Geometry::new)",
    )
}

/// The 1024-byte superblock as stored in group `group` (backups record their group number).
pub fn superblock(geo: &Geometry, info: &Info, group: u64) -> [u8; 1024] {
    let mut s = [0u8; 1024];
    put32(&mut s, 0x00, n32(geo.inodes_count()));
    put32(&mut s, 0x04, n32(geo.blocks_count));
    put32(&mut s, 0x08, 0); // no root-reserved blocks: the root is mounted read-only
    put32(&mut s, 0x0C, n32(info.free_blocks));
    put32(&mut s, 0x10, n32(info.free_inodes));
    put32(&mut s, 0x14, 0); // first data block (0 with 4 KiB blocks)
    put32(&mut s, 0x18, 2); // log2(block size) - 10
    put32(&mut s, 0x1C, 2); // cluster size = block size
    put32(&mut s, 0x20, n32(geo.blocks_per_group));
    put32(&mut s, 0x24, n32(geo.blocks_per_group));
    put32(&mut s, 0x28, n32(geo.inodes_per_group));
    put32(&mut s, 0x2C, 0); // last mount time: never mounted
    put32(&mut s, 0x30, info.time); // last write time
    put16(&mut s, 0x34, 0); // mount count
    put16(&mut s, 0x36, 0xFFFF); // max mount count -1: no count-based fsck
    put16(&mut s, 0x38, 0xEF53);
    put16(&mut s, 0x3A, 1); // state: clean
    put16(&mut s, 0x3C, 1); // errors: continue (mke2fs' default)
    put32(&mut s, 0x40, info.time); // last check
    put32(&mut s, 0x44, 0); // no time-based fsck
    put32(&mut s, 0x48, 0); // creator OS: Linux
    put32(&mut s, 0x4C, 1); // dynamic revision
    put32(&mut s, 0x54, 11); // first non-reserved inode
    put16(&mut s, 0x58, u16_of(INODE_SIZE, "a constant"));
    // s_block_group_nr is 16 bits; e2fsprogs (write_backup_super) stores 65535 for later groups.
    put16(&mut s, 0x5A, u16::try_from(group).unwrap_or(u16::MAX));
    put32(&mut s, 0x5C, COMPAT_EXT_ATTR | COMPAT_DIR_INDEX);
    put32(&mut s, 0x60, INCOMPAT_FILETYPE | INCOMPAT_EXTENTS);
    put32(
        &mut s,
        0x64,
        RO_COMPAT_SPARSE_SUPER
            | RO_COMPAT_LARGE_FILE
            | RO_COMPAT_HUGE_FILE
            | RO_COMPAT_DIR_NLINK
            | RO_COMPAT_EXTRA_ISIZE,
    );
    s[0x68..0x78].copy_from_slice(&info.uuid);
    s[0x78..0x88].copy_from_slice(&info.label);
    s[0xEC..0xFC].copy_from_slice(&info.hash_seed);
    s[0xFC] = 1; // default hash: half_md4 (used if the kernel ever indexes a directory)
    put16(&mut s, 0xFE, 0); // 32-byte group descriptors
    put32(&mut s, 0x100, 0x000C); // default mount options: user_xattr, acl
    put32(&mut s, 0x108, info.time); // mkfs time
    put16(&mut s, 0x15C, u16_of(EXTRA_ISIZE, "a constant")); // min extra isize
    put16(&mut s, 0x15E, u16_of(EXTRA_ISIZE, "a constant")); // want extra isize
    put32(&mut s, 0x160, 0x0002); // directory hashes use unsigned chars
    s
}

pub fn descriptors(geo: &Geometry, stats: &[GroupStats]) -> Vec<u8> {
    let mut d = vec![0u8; (geo.gdt_blocks * BLOCK_SIZE) as usize];
    for (g, st) in stats.iter().enumerate() {
        let at = g * DESC_SIZE as usize;
        let g = g as u64;
        put32(&mut d, at, n32(geo.block_bitmap(g)));
        put32(&mut d, at + 4, n32(geo.inode_bitmap(g)));
        put32(&mut d, at + 8, n32(geo.inode_table(g)));
        put16(&mut d, at + 12, n16(st.free_blocks));
        put16(&mut d, at + 14, n16(st.free_inodes));
        put16(&mut d, at + 16, n16(st.used_dirs));
    }
    d
}
