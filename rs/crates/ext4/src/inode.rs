//! The 256-byte inode.

use crate::layout::{Mapping, BLOCK_SIZE};
use crate::le::{hi16, hi32, lo16, lo32, put16, put32, u16_of, u32_of};
use crate::tree::{Kind, Node, FAST_SYMLINK_MAX, LINK_MAX};
use crate::xattr::{self, EXTRA_ISIZE};

const EXTENTS_FL: u32 = 0x0008_0000;

/// The `_extra` word of a timestamp: nanoseconds (0) and the epoch bits that carry seconds
/// beyond 2038. The kernel reads the 32-bit field as signed; a time past i32::MAX (2038-01-19)
/// therefore needs epoch 1, which adds 2^32.
fn time_extra(t: u32) -> u32 {
    u32::from(i32::try_from(t).is_err())
}

/// Linux `dev_t` in `i_block`, as the kernel and mke2fs write it: the old 16-bit form in
/// i_block[0] when major and minor fit in a byte, else the new 32-bit form in i_block[1].
fn encode_dev(major: u32, minor: u32) -> [u8; 60] {
    let mut b = [0u8; 60];
    if major < 256 && minor < 256 {
        put32(&mut b, 0, (major << 8) | minor);
    } else {
        put32(
            &mut b,
            4,
            (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12),
        );
    }
    b
}

/// A directory's link count: ".", its entry in the parent and each subdirectory's "..". Above
/// EXT4_LINK_MAX it is stored as 1, "many" (dir_nlink), exactly where the kernel
/// (`ext4_inc_count`) and e2fsck (pass 4) switch: at 65001, not at 65000.
pub fn dir_links(subdirs: u32) -> u16 {
    match subdirs.checked_add(2) {
        Some(n) if n <= LINK_MAX => u16::try_from(n).expect("LINK_MAX fits in 16 bits"),
        _ => 1,
    }
}

/// Renders `node` into `buf` (256 bytes). `extent_root` is the i_block of extent-mapped inodes.
pub fn render(node: &Node, map: &Mapping, extent_root: Option<&[u8; 60]>, buf: &mut [u8]) {
    let links = |n: u32| u16_of(n, "hard links are counted up to LINK_MAX in tree");
    let (type_bits, size, links): (u16, u64, u16) = match &node.kind {
        Kind::Reserved => return,
        Kind::Dir { subdirs, .. } => {
            let dir_blocks: u64 = map.extents.iter().map(|e| u64::from(e.len)).sum();
            (0x4000, dir_blocks * BLOCK_SIZE, dir_links(*subdirs))
        }
        Kind::File { size, .. } => (0x8000, *size, links(node.links)),
        Kind::Symlink { target } => (0xA000, target.len() as u64, links(node.links)),
        Kind::Char { .. } => (0x2000, 0, links(node.links)),
        Kind::Block { .. } => (0x6000, 0, links(node.links)),
        Kind::Fifo => (0x1000, 0, links(node.links)),
    };
    let i_block: [u8; 60] = match (&node.kind, extent_root) {
        (_, Some(root)) => *root,
        (Kind::Symlink { target }, None) => {
            debug_assert!(target.len() <= FAST_SYMLINK_MAX);
            let mut b = [0u8; 60];
            b[..target.len()].copy_from_slice(target);
            b
        }
        (Kind::Char { major, minor } | Kind::Block { major, minor }, None) => {
            encode_dev(*major, *minor)
        }
        _ => [0u8; 60],
    };
    // i_blocks (512-byte units) is 48 bits with huge_file; at most 2^32 blocks fit the image.
    let sectors = map.total_blocks() * (BLOCK_SIZE / 512);
    put16(buf, 0, type_bits | node.perm);
    put16(buf, 2, lo16(node.uid));
    put32(buf, 4, lo32(size));
    for at in [8, 12, 16] {
        put32(buf, at, node.time); // atime, ctime, mtime
    }
    put16(buf, 24, lo16(node.gid));
    put16(buf, 26, links);
    put32(buf, 28, lo32(sectors));
    put32(buf, 32, if extent_root.is_some() { EXTENTS_FL } else { 0 });
    buf[40..100].copy_from_slice(&i_block);
    let xattr_block = map.xattr_block.unwrap_or(0);
    put32(
        buf,
        104,
        u32_of(xattr_block, "block numbers < 2^32 (Geometry::new)"),
    );
    put32(buf, 108, hi32(size));
    put16(
        buf,
        116,
        u16_of(hi32(sectors), "at most 2^35 sectors in an image"),
    );
    put16(buf, 120, hi16(node.uid));
    put16(buf, 122, hi16(node.gid));
    put16(buf, 128, u16_of(EXTRA_ISIZE, "a constant"));
    let extra = time_extra(node.time);
    for at in [132, 136, 140, 148] {
        put32(buf, at, extra); // ctime, mtime, atime, crtime extra
    }
    put32(buf, 144, node.time); // crtime
    if map.xattr_block.is_none() {
        xattr::write_ibody(buf, &node.xattrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_devices() {
        assert_eq!(time_extra(1_700_000_000), 0);
        assert_eq!(time_extra(i32::MAX as u32), 0);
        assert_eq!(time_extra(i32::MAX as u32 + 1), 1); // 2038-01-19T03:14:08Z
        assert_eq!(time_extra(u32::MAX), 1); // 2106 needs epoch bit 1
        let d = encode_dev(8, 1);
        assert_eq!(&d[0..8], &[1, 8, 0, 0, 0, 0, 0, 0]);
        let d = encode_dev(259, 70000);
        assert_eq!(u32::from_le_bytes(d[0..4].try_into().unwrap()), 0);
        let v = u32::from_le_bytes(d[4..8].try_into().unwrap());
        assert_eq!(
            ((v & 0xfff00) >> 8, (v & 0xff) | ((v >> 12) & 0xfff00)),
            (259, 70000)
        );
    }
}
