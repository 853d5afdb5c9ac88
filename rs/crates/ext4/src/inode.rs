//! The 256-byte inode.

use crate::layout::{Mapping, BLOCK_SIZE};
use crate::tree::{Kind, Node, FAST_SYMLINK_MAX, LINK_MAX};
use crate::xattr::{self, EXTRA_ISIZE};

const EXTENTS_FL: u32 = 0x0008_0000;

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The `_extra` word of a timestamp: nanoseconds (0) and the epoch bits that carry seconds
/// beyond 2038 (the low 32 bits are read as signed).
fn time_extra(t: u32) -> u32 {
    let t = t as i64;
    (((t - (t as u32 as i32 as i64)) >> 32) & 3) as u32
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

/// Renders `node` into `buf` (256 bytes). `extent_root` is the i_block of extent-mapped inodes.
pub fn render(node: &Node, map: &Mapping, extent_root: Option<&[u8; 60]>, buf: &mut [u8]) {
    let (type_bits, size, links): (u16, u64, u32) = match &node.kind {
        Kind::Reserved => return,
        Kind::Dir { subdirs, .. } => {
            let dir_blocks: u64 = map.extents.iter().map(|e| e.len as u64).sum();
            // dir_nlink: a count that would overflow is written as 1 ("many").
            let links = if 2 + subdirs >= LINK_MAX {
                1
            } else {
                2 + subdirs
            };
            (0x4000, dir_blocks * BLOCK_SIZE, links)
        }
        Kind::File { size, .. } => (0x8000, *size, node.links),
        Kind::Symlink { target } => (0xA000, target.len() as u64, node.links),
        Kind::Char { .. } => (0x2000, 0, node.links),
        Kind::Block { .. } => (0x6000, 0, node.links),
        Kind::Fifo => (0x1000, 0, node.links),
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
    let sectors = map.total_blocks() * (BLOCK_SIZE / 512);
    put16(buf, 0, type_bits | node.perm);
    put16(buf, 2, node.uid as u16);
    put32(buf, 4, size as u32);
    for at in [8, 12, 16] {
        put32(buf, at, node.time); // atime, ctime, mtime
    }
    put16(buf, 24, node.gid as u16);
    put16(buf, 26, links as u16);
    put32(buf, 28, sectors as u32);
    put32(buf, 32, if extent_root.is_some() { EXTENTS_FL } else { 0 });
    buf[40..100].copy_from_slice(&i_block);
    put32(buf, 104, map.xattr_block.unwrap_or(0) as u32);
    put32(buf, 108, (size >> 32) as u32);
    put16(buf, 116, (sectors >> 32) as u16);
    put16(buf, 120, (node.uid >> 16) as u16);
    put16(buf, 122, (node.gid >> 16) as u16);
    put16(buf, 128, EXTRA_ISIZE as u16);
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
