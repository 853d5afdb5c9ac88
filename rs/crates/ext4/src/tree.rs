//! Pass 1: the tar's headers become an in-memory tree of inodes (metadata only; file data is
//! skipped with seeks and located by its offset in the tar for pass 2).

use std::collections::HashMap;
use std::io::{Read, Seek};

use tar::EntryType;

use icos_common::tarread::{ReadError, TarReader};

use crate::layout::BLOCK_SIZE;
use crate::xattr::{self, Xattr};
use crate::Error;

pub const ROOT_INO: u32 = 2;
pub const LOST_FOUND_INO: u32 = 11;
/// ext4's limit on hard links to a file (EXT4_LINK_MAX).
pub const LINK_MAX: u32 = 65000;
/// Symlink targets up to this length live in the inode.
pub const FAST_SYMLINK_MAX: usize = 59;
const MAX_SYMLINK: usize = 4095;
/// Logical block numbers are 32 bits: a file spans at most 2^32 - 1 blocks of 4 KiB.
pub const MAX_FILE_SIZE: u64 = (u32::MAX as u64) * BLOCK_SIZE;

#[derive(Debug)]
pub enum Kind {
    /// Reserved inodes 1 and 3-10.
    Reserved,
    Dir {
        parent: u32,
        children: Vec<Child>,
        subdirs: u32,
        min_blocks: u64,
    },
    File {
        size: u64,
        data_pos: u64,
    },
    Symlink {
        target: Box<[u8]>,
    },
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    Fifo,
}

#[derive(Debug)]
pub struct Child {
    pub name: Box<[u8]>,
    pub ino: u32,
}

#[derive(Debug)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky.
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    /// All four inode times.
    pub time: u32,
    pub links: u32,
    /// Sorted; stored in the inode when they fit, else in one block.
    pub xattrs: Vec<Xattr>,
    /// The tar entry name, for errors in pass 2.
    pub entry: Box<str>,
}

impl Node {
    fn reserved() -> Node {
        Node {
            kind: Kind::Reserved,
            perm: 0,
            uid: 0,
            gid: 0,
            time: 0,
            links: 0,
            xattrs: Vec::new(),
            entry: "".into(),
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }

    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Reserved => "reserved inode",
            Kind::Dir { .. } => "directory",
            Kind::File { .. } => "regular file",
            Kind::Symlink { .. } => "symlink",
            Kind::Char { .. } => "character device",
            Kind::Block { .. } => "block device",
            Kind::Fifo => "fifo",
        }
    }
}

pub struct Tree {
    /// Index = inode number - 1.
    pub nodes: Vec<Node>,
    pub data_bytes: u64,
}

impl Tree {
    pub fn node(&self, ino: u32) -> &Node {
        &self.nodes[ino as usize - 1]
    }
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Checks a tar name and returns the path relative to the root ("" for the root itself).
/// Directories may end with one `/`; everything else may not.
fn normalize(raw: &[u8], is_dir: bool) -> Result<Vec<u8>, String> {
    if raw == b"./" || raw == b"." {
        return Ok(Vec::new());
    }
    let Some(mut rel) = raw.strip_prefix(b"./") else {
        return Err(
            "name does not start with \"./\" (the rootfs tar contract names every entry ./PATH)"
                .into(),
        );
    };
    if let Some(r) = rel.strip_suffix(b"/") {
        if !is_dir {
            return Err("name ends with \"/\" but the entry is not a directory".into());
        }
        rel = r;
    }
    check_components(rel)?;
    Ok(rel.to_vec())
}

fn check_components(rel: &[u8]) -> Result<(), String> {
    if rel.is_empty() {
        return Err("empty path".into());
    }
    for c in rel.split(|&b| b == b'/') {
        match c {
            b"" => return Err("path has an empty component (\"//\" or a leading \"/\")".into()),
            b"." | b".." => {
                return Err(format!(
                    "path has a {:?} component: entries must not escape or alias the root",
                    show(c)
                ))
            }
            _ if c.contains(&0) => return Err("path contains a NUL byte".into()),
            _ if c.len() > 255 => {
                return Err("a path component is longer than 255 bytes (the ext4 limit)".into())
            }
            _ => {}
        }
    }
    Ok(())
}

/// A hardlink's target: the first path of the group, with or without the leading `./`.
fn normalize_link(raw: &[u8]) -> Result<Vec<u8>, String> {
    let rel = raw.strip_prefix(b"./").unwrap_or(raw);
    check_components(rel).map_err(|e| format!("hardlink target {:?}: {e}", show(raw)))?;
    Ok(rel.to_vec())
}

pub fn read_tree<R: Read + Seek>(reader: R, tar: &str, sde: u32) -> Result<(Tree, R), Error> {
    let entry_err = |entry: &str, reason: String| Error::Entry {
        tar: tar.to_string(),
        entry: entry.to_string(),
        reason,
    };

    let mut nodes: Vec<Node> = (0..LOST_FOUND_INO).map(|_| Node::reserved()).collect();
    // lost+found exists even if the tar has none (e2fsck expects it); four blocks like mke2fs makes.
    nodes[LOST_FOUND_INO as usize - 1] = Node {
        kind: Kind::Dir {
            parent: ROOT_INO,
            children: Vec::new(),
            subdirs: 0,
            min_blocks: 4,
        },
        perm: 0o700,
        uid: 0,
        gid: 0,
        time: sde,
        links: 1,
        xattrs: Vec::new(),
        entry: "./lost+found/".into(),
    };
    let mut lost_found_from_tar = false;
    let mut paths: HashMap<Vec<u8>, u32> = HashMap::new();
    paths.insert(b"lost+found".to_vec(), LOST_FOUND_INO);
    let mut data_bytes = 0u64;
    let mut last_entry = String::new();
    let mut seen_root = false;

    // A rootfs tar always ends with its end-of-archive marker: without it, it is truncated.
    let mut reader = TarReader::seekable(reader)
        .require_end_marker()
        .rootfs_contract();
    loop {
        let raw = match reader.next_entry() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(ReadError::Io(source)) => {
                return Err(Error::ReadTar {
                    tar: tar.to_string(),
                    source,
                })
            }
            Err(ReadError::Bad(reason)) => {
                return Err(Error::Malformed {
                    tar: tar.to_string(),
                    at: if last_entry.is_empty() {
                        "at its start".into()
                    } else {
                        format!("after entry {last_entry:?}")
                    },
                    reason,
                })
            }
        };
        let name = show(&raw.path);
        let err = |reason: String| entry_err(&name, reason);
        let header = tar::Header::from_byte_slice(&raw.header);
        let etype = header.entry_type();
        let is_dir = etype == EntryType::Directory;
        let mode = header
            .mode()
            .map_err(|e| err(format!("bad mode field: {e}")))?;
        let perm = u16::try_from(mode & 0o7777).expect("12 bits");
        let (uid, gid) = (raw.uid().map_err(err)?, raw.gid().map_err(err)?);
        // Sparse files, ACL text forms and libarchive's xattr records are refused.
        let refused = raw.pax.iter().map(|(k, _)| k).find(|k| {
            k.starts_with(b"GNU.sparse.")
                || k.starts_with(b"SCHILY.acl.")
                || k.starts_with(b"LIBARCHIVE.xattr.")
        });
        if let Some(k) = refused.map(|k| String::from_utf8_lossy(k)) {
            return Err(err(if k.starts_with("GNU.sparse.") {
                "sparse files are not supported (the rootfs tar has no sparse entries)".to_string()
            } else {
                format!("PAX record {k:?} is not supported: carry ACLs and xattrs as SCHILY.xattr.* records")
            }));
        }
        let mut xattrs = Vec::new();
        for (k, v) in raw.xattrs() {
            xattrs.push(xattr::encode(k, v).map_err(err)?);
        }
        if let Err((idx, n)) = xattr::sort(&mut xattrs) {
            return Err(err(format!(
                "xattr {:?} (name index {idx}) appears twice",
                show(&n)
            )));
        }
        if !xattr::fits_in_inode(&xattrs) && !xattr::fits_in_block(&xattrs) {
            return Err(err(format!(
                "its xattrs need {} bytes but one 4 KiB xattr block holds at most 4096 (large xattr values \
                 need the ea_inode feature, which this writer does not use): shrink them",
                xattr::block_bytes(&xattrs)
            )));
        }
        // Clamped to the epoch, which is a u32: the conversion cannot fail.
        let time = u32::try_from(raw.mtime().map_err(err)?.min(u64::from(sde))).unwrap_or(sde);
        let (size, data_pos) = (raw.size, raw.data_pos);

        let rel = normalize(&raw.path, is_dir).map_err(err)?;
        if !seen_root {
            if !rel.is_empty() || !is_dir {
                return Err(err(
                    "the first entry must be the root directory \"./\" (the rootfs tar contract)"
                        .into(),
                ));
            }
            seen_root = true;
            nodes[ROOT_INO as usize - 1] = Node {
                kind: Kind::Dir {
                    parent: ROOT_INO,
                    children: vec![Child {
                        name: b"lost+found".as_slice().into(),
                        ino: LOST_FOUND_INO,
                    }],
                    subdirs: 1,
                    min_blocks: 1,
                },
                perm,
                uid,
                gid,
                time,
                links: 1,
                xattrs,
                entry: name.clone().into(),
            };
            paths.insert(Vec::new(), ROOT_INO);
            last_entry = name;
            continue;
        }
        if rel.is_empty() {
            return Err(err("duplicate root directory entry".into()));
        }
        let (parent_rel, child_name) = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&rel[..0], &rel[..]),
        };
        let Some(&parent) = paths.get(parent_rel) else {
            return Err(err(format!(
                "its parent directory ./{}/ is not in the tar before it (entries must be sorted so that a \
                 parent precedes its children)",
                show(parent_rel)
            )));
        };
        if !nodes[parent as usize - 1].is_dir() {
            return Err(err(format!(
                "its parent ./{} is a {}, not a directory",
                show(parent_rel),
                nodes[parent as usize - 1].type_name()
            )));
        }

        if rel == b"lost+found" {
            if !is_dir {
                return Err(err(format!(
                    "/lost+found must be a directory (e2fsck needs it), but this entry is a {etype:?} entry"
                )));
            }
            if lost_found_from_tar {
                return Err(err("duplicate path".into()));
            }
            lost_found_from_tar = true;
            let n = &mut nodes[LOST_FOUND_INO as usize - 1];
            (n.perm, n.uid, n.gid, n.time, n.xattrs, n.entry) =
                (perm, uid, gid, time, xattrs, name.clone().into());
            last_entry = name;
            continue;
        }
        if let Some(&first) = paths.get(&rel) {
            return Err(err(format!(
                "duplicate path: {} already came earlier",
                nodes[first as usize - 1].entry
            )));
        }

        let dev = |which: &str| -> Result<(u32, u32), Error> {
            match (header.device_major(), header.device_minor()) {
                (Ok(Some(ma)), Ok(Some(mi))) if ma < (1 << 12) && mi < (1 << 20) => Ok((ma, mi)),
                (Ok(Some(ma)), Ok(Some(mi))) => Err(err(format!(
                    "{which} device {ma}:{mi} is out of range (Linux allows major < 4096, minor < 1048576)"
                ))),
                _ => Err(err(format!("{which} device has no readable major/minor numbers"))),
            }
        };
        let kind = match etype {
            EntryType::Link => {
                let target = raw.link.clone().ok_or_else(|| err("hardlink without a target".into()))?;
                let target_rel = normalize_link(&target).map_err(err)?;
                let Some(&ino) = paths.get(&target_rel) else {
                    return Err(err(format!("hardlink target {:?} is not an earlier entry of the tar", show(&target))));
                };
                let node = &mut nodes[ino as usize - 1];
                if node.is_dir() {
                    return Err(err(format!("hardlink target {:?} is a directory", show(&target))));
                }
                if node.links >= LINK_MAX {
                    return Err(err(format!("more than {LINK_MAX} hard links to {:?}", show(&target))));
                }
                node.links += 1;
                add_child(&mut nodes, parent, child_name, ino, false);
                paths.insert(rel, ino);
                last_entry = name;
                continue;
            }
            EntryType::Regular | EntryType::Continuous => {
                if size > MAX_FILE_SIZE {
                    return Err(err(format!(
                        "its size {size} bytes is more than ext4 holds in one file with 4 KiB blocks \
                         ({MAX_FILE_SIZE} bytes, 2^32 - 1 blocks)"
                    )));
                }
                data_bytes = data_bytes
                    .checked_add(size)
                    .ok_or_else(|| err("the file sizes add up to more than 2^64 bytes".into()))?;
                Kind::File { size, data_pos }
            }
            EntryType::Directory => Kind::Dir { parent, children: Vec::new(), subdirs: 0, min_blocks: 1 },
            EntryType::Symlink => {
                let target = raw.link.clone().unwrap_or_default();
                if target.is_empty() || target.contains(&0) || target.len() > MAX_SYMLINK {
                    return Err(err(format!(
                        "symlink target must be 1 to {MAX_SYMLINK} bytes without NUL, got {} bytes",
                        target.len()
                    )));
                }
                Kind::Symlink { target: target.into() }
            }
            EntryType::Char => {
                let (major, minor) = dev("character")?;
                Kind::Char { major, minor }
            }
            EntryType::Block => {
                let (major, minor) = dev("block")?;
                Kind::Block { major, minor }
            }
            EntryType::Fifo => Kind::Fifo,
            other => {
                return Err(err(format!(
                    "unsupported entry type {other:?} (type byte {:?}): a rootfs tar holds only regular files, \
                     hardlinks, symlinks, directories, character and block devices and fifos",
                    other.as_byte() as char
                )))
            }
        };
        let ino =
            u32::try_from(nodes.len() + 1).map_err(|_| err("more than 2^32 inodes".into()))?;
        let is_dir = matches!(kind, Kind::Dir { .. });
        nodes.push(Node {
            kind,
            perm,
            uid,
            gid,
            time,
            links: 1,
            xattrs,
            entry: name.clone().into(),
        });
        add_child(&mut nodes, parent, child_name, ino, is_dir);
        paths.insert(rel, ino);
        last_entry = name;
    }
    if !seen_root {
        return Err(Error::Malformed {
            tar: tar.to_string(),
            at: "at its start".into(),
            reason: "no entries: a rootfs tar starts with the root directory \"./\"".into(),
        });
    }
    Ok((Tree { nodes, data_bytes }, reader.into_inner()))
}

fn add_child(nodes: &mut [Node], parent: u32, name: &[u8], ino: u32, is_dir: bool) {
    if let Kind::Dir {
        children, subdirs, ..
    } = &mut nodes[parent as usize - 1].kind
    {
        children.push(Child {
            name: name.into(),
            ino,
        });
        if is_dir {
            *subdirs += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize(b"./", true).unwrap(), b"");
        assert_eq!(normalize(b"./a/b/", true).unwrap(), b"a/b");
        assert_eq!(normalize(b"./a/b", false).unwrap(), b"a/b");
        assert!(normalize(b"a/b", false).unwrap_err().contains("./"));
        assert!(normalize(b"./a/", false)
            .unwrap_err()
            .contains("not a directory"));
        assert!(normalize(b"./../etc/passwd", false)
            .unwrap_err()
            .contains("escape"));
        assert!(normalize(b"./a/../../b", false)
            .unwrap_err()
            .contains("escape"));
        assert!(normalize(b".//etc", false)
            .unwrap_err()
            .contains("empty component"));
        assert!(normalize(b"./a/./b", false).unwrap_err().contains("escape"));
        assert_eq!(normalize_link(b"usr/bin/x").unwrap(), b"usr/bin/x");
        assert!(normalize_link(b"/etc/shadow").is_err());
    }
}
