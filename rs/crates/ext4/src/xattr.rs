//! Extended attributes: in the inode body when they all fit, else all in one xattr block.
//!
//! Entries are sorted by (name index, name length, name), the order the kernel's lookup in a block
//! relies on; the same order is used in the inode. Entry and block hashes follow the kernel
//! (`ext4_xattr_hash_entry`, unsigned name bytes, and `ext4_xattr_rehash`).
//!
//! Inodes with identical attribute sets share one block, as the kernel does through its mbcache
//! (the block's `h_refcount` counts the inodes, each inode's i_blocks still counts the block), up
//! to [`REFCOUNT_MAX`] inodes per block: an SELinux-labelled tree with capabilities would
//! otherwise spend a block per file.

use std::collections::HashMap;

use crate::layout::{BLOCK_SIZE, INODE_SIZE};
use crate::le::{put16, put32, u16_of, u32_of};

pub const EXTRA_ISIZE: usize = 32;
const MAGIC: u32 = 0xEA02_0000;
/// The kernel's EXT4_XATTR_REFCOUNT_MAX: beyond this many users it starts a new block.
pub const REFCOUNT_MAX: u32 = 1024;
const ENTRY_HEADER: usize = 16;
const BLOCK_HEADER: usize = 32;
/// Bytes for xattrs inside a 256-byte inode after the 32 extra bytes.
const IBODY_SPACE: usize = INODE_SIZE as usize - 128 - EXTRA_ISIZE;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Xattr {
    pub index: u8,
    pub name: Box<[u8]>,
    pub value: Box<[u8]>,
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a full attribute name into ext4's name index and suffix and converts ACL values to
/// ext4's on-disk ACL format. Errors say what is wrong, for the caller to attach the entry.
pub fn encode(full: &[u8], value: &[u8]) -> Result<Xattr, String> {
    let show = String::from_utf8_lossy(full).into_owned();
    let (index, name): (u8, &[u8]) = if full == b"system.posix_acl_access" {
        (2, b"")
    } else if full == b"system.posix_acl_default" {
        (3, b"")
    } else if let Some(rest) = full.strip_prefix(b"user.") {
        (1, rest)
    } else if let Some(rest) = full.strip_prefix(b"trusted.") {
        (4, rest)
    } else if let Some(rest) = full.strip_prefix(b"security.") {
        (6, rest)
    } else {
        return Err(format!(
            "xattr {show:?} is in a namespace ext4 cannot store from a tar (use user., trusted., security. \
             or system.posix_acl_access/default)"
        ));
    };
    if index != 2 && index != 3 && name.is_empty() {
        return Err(format!(
            "xattr {show:?} has an empty name after its namespace"
        ));
    }
    if name.len() > 255 {
        return Err(format!("xattr {show:?} has a name longer than 255 bytes"));
    }
    let value = if index == 2 || index == 3 {
        acl_to_disk(value).map_err(|e| format!("xattr {show:?}: {e}"))?
    } else {
        value.to_vec()
    };
    Ok(Xattr {
        index,
        name: name.into(),
        value: value.into(),
    })
}

/// The VFS ACL xattr format (version 2, 8-byte entries) to ext4's (version 1, 4-byte entries for
/// the owner/group/mask/other tags, 8-byte entries with an id for named users and groups).
fn acl_to_disk(v: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || {
        "not a POSIX ACL in the Linux xattr format (version 2 header, 8-byte entries)".to_string()
    };
    if v.len() < 4
        || !(v.len() - 4).is_multiple_of(8)
        || u32::from_le_bytes(v[0..4].try_into().unwrap()) != 2
    {
        return Err(bad());
    }
    let mut out = 1u32.to_le_bytes().to_vec();
    for e in v[4..].chunks(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        out.extend_from_slice(&e[0..4]);
        match tag {
            0x01 | 0x04 | 0x10 | 0x20 => {}
            0x02 | 0x08 => out.extend_from_slice(&e[4..8]),
            _ => return Err(format!("unknown ACL tag {tag:#x}")),
        }
    }
    Ok(out)
}

/// Sorts into the on-disk order; returns the duplicate name if any.
pub fn sort(list: &mut [Xattr]) -> Result<(), (u8, Box<[u8]>)> {
    list.sort_by(|a, b| (a.index, a.name.len(), &a.name).cmp(&(b.index, b.name.len(), &b.name)));
    for w in list.windows(2) {
        if w[0].index == w[1].index && w[0].name == w[1].name {
            return Err((w[0].index, w[0].name.clone()));
        }
    }
    Ok(())
}

fn entries_len(list: &[Xattr]) -> usize {
    list.iter().map(|x| ENTRY_HEADER + pad4(x.name.len())).sum()
}

fn values_len(list: &[Xattr]) -> usize {
    list.iter().map(|x| pad4(x.value.len())).sum()
}

pub fn fits_in_inode(list: &[Xattr]) -> bool {
    list.is_empty() || 4 + entries_len(list) + 4 + values_len(list) <= IBODY_SPACE
}

pub fn fits_in_block(list: &[Xattr]) -> bool {
    BLOCK_HEADER + entries_len(list) + 4 + values_len(list) <= BLOCK_SIZE as usize
}

/// Bytes one block would need (for the error message).
pub fn block_bytes(list: &[Xattr]) -> usize {
    BLOCK_HEADER + entries_len(list) + 4 + values_len(list)
}

pub fn entry_hash(name: &[u8], value: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 5) ^ (h >> 27) ^ u32::from(c);
    }
    for chunk in value.chunks(4) {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h << 16) ^ (h >> 16) ^ u32::from_le_bytes(w);
    }
    h
}

/// Writes the entries at `entries_at` and the values downward from `values_end`; value offsets
/// are relative to `base`. Returns the entry hashes.
fn write_entries(
    buf: &mut [u8],
    list: &[Xattr],
    entries_at: usize,
    values_end: usize,
    base: usize,
) -> Vec<u32> {
    let mut pos = entries_at;
    let mut end = values_end;
    let mut hashes = Vec::with_capacity(list.len());
    for x in list {
        end -= pad4(x.value.len());
        let offs = if x.value.is_empty() { 0 } else { end - base };
        buf[end..end + x.value.len()].copy_from_slice(&x.value);
        let hash = entry_hash(&x.name, &x.value);
        let e = &mut buf[pos..];
        e[0] = u8::try_from(x.name.len()).expect("names are at most 255 bytes (encode)");
        e[1] = x.index;
        put16(e, 2, u16_of(offs, "offsets inside one 4 KiB block"));
        put32(e, 4, 0); // e_value_inum: no ea_inode
        put32(
            e,
            8,
            u32_of(x.value.len(), "values fit one 4 KiB block (tree)"),
        );
        put32(e, 12, hash);
        e[16..16 + x.name.len()].copy_from_slice(&x.name);
        pos += ENTRY_HEADER + pad4(x.name.len());
        hashes.push(hash);
    }
    hashes
}

/// Fills the inode body after the extra fields (`inode[128 + EXTRA_ISIZE..]`).
pub fn write_ibody(inode: &mut [u8], list: &[Xattr]) {
    if list.is_empty() {
        return;
    }
    let start = 128 + EXTRA_ISIZE;
    inode[start..start + 4].copy_from_slice(&MAGIC.to_le_bytes());
    write_entries(inode, list, start + 4, INODE_SIZE as usize, start + 4);
}

/// Which inodes share which xattr block.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sharing {
    /// Per inode (index = inode number - 1): its block's slot, numbered in order of first use.
    pub slot_of: Vec<Option<u32>>,
    /// Per slot: how many inodes refer to it (h_refcount).
    pub refcount: Vec<u32>,
}

/// Assigns a block slot to every attribute set that does not fit in its inode: identical sets
/// (same entries, same order, since every list is sorted) share a slot until it has
/// [`REFCOUNT_MAX`] users. The order of `lists` (inode order) decides the numbering.
pub fn share<'a>(lists: impl IntoIterator<Item = &'a [Xattr]>) -> Sharing {
    let mut open: HashMap<&[Xattr], u32> = HashMap::new();
    let mut sharing = Sharing::default();
    for list in lists {
        if fits_in_inode(list) {
            sharing.slot_of.push(None);
            continue;
        }
        let slot = match open.get(list) {
            Some(&slot) if sharing.refcount[slot as usize] < REFCOUNT_MAX => slot,
            _ => {
                let slot = u32_of(sharing.refcount.len(), "one slot per inode at most");
                sharing.refcount.push(0);
                open.insert(list, slot);
                slot
            }
        };
        sharing.refcount[slot as usize] += 1;
        sharing.slot_of.push(Some(slot));
    }
    sharing
}

/// One xattr block holding all of `list`, referred to by `refcount` inodes.
pub fn block(list: &[Xattr], refcount: u32) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK_SIZE as usize];
    put32(&mut b, 0, MAGIC);
    put32(&mut b, 4, refcount); // h_refcount
    put32(&mut b, 8, 1); // h_blocks
    let hashes = write_entries(&mut b, list, BLOCK_HEADER, BLOCK_SIZE as usize, 0);
    let mut h: u32 = 0;
    for eh in hashes {
        if eh == 0 {
            h = 0;
            break;
        }
        h = (h << 16) ^ (h >> 16) ^ eh;
    }
    put32(&mut b, 12, h); // h_hash
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_limits() {
        let cap = encode(
            b"security.capability",
            &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        )
        .unwrap();
        assert_eq!((cap.index, &*cap.name), (6, &b"capability"[..]));
        assert!(fits_in_inode(std::slice::from_ref(&cap)));
        assert!(encode(b"system.foo", b"x")
            .unwrap_err()
            .contains("namespace"));
        assert!(encode(b"user.", b"x").unwrap_err().contains("empty name"));
        let big = encode(b"user.big", &[7u8; 1000]).unwrap();
        assert!(!fits_in_inode(std::slice::from_ref(&big)));
        assert!(fits_in_block(std::slice::from_ref(&big)));
        let huge = encode(b"user.huge", &[7u8; 5000]).unwrap();
        assert!(!fits_in_block(&[huge]));
        let mut dup = vec![cap.clone(), big, cap];
        assert!(sort(&mut dup).is_err());
        // ACL: user::rw- group::r-- other::r-- in the VFS format -> ext4's short entries
        let mut vfs = 2u32.to_le_bytes().to_vec();
        for (tag, perm) in [(1u16, 6u16), (4, 4), (0x20, 4)] {
            vfs.extend_from_slice(&tag.to_le_bytes());
            vfs.extend_from_slice(&perm.to_le_bytes());
            vfs.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        let acl = encode(b"system.posix_acl_access", &vfs).unwrap();
        assert_eq!(acl.index, 2);
        assert_eq!(
            &*acl.value,
            &[1, 0, 0, 0, 1, 0, 6, 0, 4, 0, 4, 0, 0x20, 0, 4, 0]
        );
        assert!(encode(b"system.posix_acl_access", b"junk").is_err());
    }

    #[test]
    fn identical_sets_share_a_block_up_to_the_kernel_limit() {
        let a = vec![encode(b"user.big", &[1u8; 500]).unwrap()];
        let b = vec![encode(b"user.big", &[2u8; 500]).unwrap()];
        let small = vec![encode(b"user.s", b"1").unwrap()];
        let mut lists: Vec<&[Xattr]> = vec![&a, &small, &b, &[], &a, &b];
        let s = share(lists.iter().copied());
        assert_eq!(
            s.slot_of,
            vec![Some(0), None, Some(1), None, Some(0), Some(1)]
        );
        assert_eq!(s.refcount, vec![2, 2]);
        lists = vec![&a; REFCOUNT_MAX as usize + 1];
        lists.push(&b);
        lists.push(&a);
        let s = share(lists.iter().copied());
        assert_eq!(s.refcount, vec![REFCOUNT_MAX, 2, 1]);
        assert_eq!(s.slot_of[REFCOUNT_MAX as usize], Some(1));
        assert_eq!(s.slot_of[REFCOUNT_MAX as usize + 1], Some(2));
        assert_eq!(s.slot_of[REFCOUNT_MAX as usize + 2], Some(1));
        let blk = block(&a, 7);
        assert_eq!(u32::from_le_bytes(blk[4..8].try_into().unwrap()), 7);
    }
}
