//! Writes a reproducible initramfs: the entries of a rootfs tar (ARCHITECTURE.md format) as a
//! `newc` cpio archive, gzip-compressed with no name and no timestamp in the gzip header.
//!
//! The newc writer is hand-written (about 60 lines): the format is thirteen fixed-width hex
//! fields per entry, and writing it directly gives exact control over inode numbers, link counts
//! and ordering, which is what makes the archive byte-reproducible. Order, owners, modes and
//! mtimes come from the tar, which `icos-rootfs` already normalized; inode numbers are assigned
//! in tar order. xattrs cannot be represented in newc and are refused rather than dropped.
//!
//! Hardlinks: every name of a regular file, fifo or device group shares one ino and carries the
//! group's link count, which is what the kernel's unpacker (init/initramfs.c, `maybe_link`) needs
//! to link the later names to the first. It never links symlinks (`do_symlink` makes each one
//! anew), so a hardlink to a symlink is written as a second symlink with its own ino and the same
//! target: the closest the kernel can build, and what it would build from a shared ino anyway.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use icos_common::tarread::TarReader;
use icos_common::{AtomicFile, Digest, HashingWriter};

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: entry {entry:?}: {reason}")]
    BadEntry {
        path: PathBuf,
        entry: String,
        reason: String,
    },
}

/// What [`write_initramfs`] wrote.
#[derive(Debug)]
pub struct Summary {
    pub entries: u32,
    pub sha256: Digest,
    pub size: u64,
}

const S_IFIFO: u32 = 0o010000;
const S_IFCHR: u32 = 0o020000;
const S_IFDIR: u32 = 0o040000;
const S_IFBLK: u32 = 0o060000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

struct Header<'a> {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    size: u32,
    rdev: (u32, u32),
    name: &'a str,
}

/// What a hardlink to an earlier entry needs to know about it.
struct Primary {
    ino: u32,
    /// The S_IF* bits.
    file_type: u32,
    rdev: (u32, u32),
    /// A symlink's target, kept only when a hardlink names the symlink.
    symlink_target: Option<Vec<u8>>,
    symlink_size: u32,
}

fn pad4(out: &mut impl Write, len: u64) -> io::Result<()> {
    let pad = (4 - (len % 4)) % 4;
    out.write_all(&[0u8; 3][..pad as usize])
}

fn write_header(out: &mut impl Write, h: &Header) -> io::Result<()> {
    // Names come from PAX records, which the tar reader bounds; still, never wrap.
    let namesize = u32::try_from(h.name.len() + 1)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "name longer than 4 GiB"))?;
    write!(
        out,
        "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
        h.ino,
        h.mode,
        h.uid,
        h.gid,
        h.nlink,
        h.mtime,
        h.size,
        0,
        0,
        h.rdev.0,
        h.rdev.1,
        namesize,
        0
    )?;
    out.write_all(h.name.as_bytes())?;
    out.write_all(&[0])?;
    pad4(out, 110 + namesize as u64)
}

/// Converts the rootfs tar at `tar_path` into a gzip-compressed newc initramfs at `out` (atomically).
///
/// The tar is read with the shared reader of icos-common, not `tar::Archive`: the tar crate splits
/// PAX records at newlines, so it missed an xattr whose value holds a 0x0A byte (and dropped it
/// silently) and lost a long name holding a newline.
pub fn write_initramfs(tar_path: &Path, out: &Path) -> Result<Summary, InitramfsError> {
    let io_in = |source| InitramfsError::Io {
        path: tar_path.to_path_buf(),
        source,
    };
    let io_out = |source| InitramfsError::Io {
        path: out.to_path_buf(),
        source,
    };
    let bad = |entry: &str, reason: &str| InitramfsError::BadEntry {
        path: tar_path.to_path_buf(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    };

    // Pass 1: link counts of hardlink groups (the primary is the first entry, ARCHITECTURE.md).
    // For a symlink the count only says that it is linked to: its links become symlinks of their
    // own (module comment).
    let mut links: BTreeMap<String, u32> = BTreeMap::new();
    let open = || -> Result<_, InitramfsError> {
        let file = File::open(tar_path).map_err(io_in)?;
        Ok(TarReader::seekable(BufReader::with_capacity(1 << 16, file)).rootfs_contract())
    };
    let mut archive = open()?;
    while let Some(entry) = archive.next_entry().map_err(|e| io_in(e.into()))? {
        if tar::EntryType::new(entry.typeflag).is_hard_link() {
            let target = String::from_utf8_lossy(entry.link.as_deref().unwrap_or_default());
            *links.entry(cpio_name(&target)).or_insert(1) += 1;
        }
    }

    let mut file = AtomicFile::create(out).map_err(io_out)?;
    let mut gz = GzBuilder::new().write(HashingWriter::new(file.file()), Compression::best());
    // The first name of each non-directory: what a later hardlink to it becomes.
    let mut inodes: BTreeMap<String, Primary> = BTreeMap::new();
    let mut next_ino = 1u32;
    let mut archive = open()?;
    while let Some(entry) = archive.next_entry().map_err(|e| io_in(e.into()))? {
        let raw = String::from_utf8_lossy(&entry.path).into_owned();
        let name = cpio_name(&raw);
        if name.split('/').any(|c| c == "..") {
            return Err(bad(&raw, "path contains '..'"));
        }
        if entry.xattrs().next().is_some() {
            return Err(bad(&raw, "has xattrs, which a newc initramfs cannot carry"));
        }
        let h = tar::Header::from_byte_slice(&entry.header);
        let perm = h.mode().map_err(io_in)? & 0o7777;
        let uid = entry.uid().map_err(|e| bad(&raw, &e))?;
        let gid = entry.gid().map_err(|e| bad(&raw, &e))?;
        let mtime = u32::try_from(entry.mtime().map_err(|e| bad(&raw, &e))?)
            .map_err(|_| bad(&raw, "mtime beyond 2106"))?;
        let kind = h.entry_type();
        // A device's number that does not parse is refused, never read as 0:0.
        let rdev = if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            match (h.device_major(), h.device_minor()) {
                (Ok(major), Ok(minor)) => (major.unwrap_or(0), minor.unwrap_or(0)),
                _ => return Err(bad(&raw, "bad device number field")),
            }
        } else {
            (0, 0)
        };
        let mut header = Header {
            ino: 0,
            mode: 0,
            uid,
            gid,
            nlink: 1,
            mtime,
            size: 0,
            rdev: (0, 0),
            name: &name,
        };
        let mut body: Option<Vec<u8>> = None;
        let mut stream_body = false;
        match kind {
            tar::EntryType::Directory => header.mode = S_IFDIR | perm,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                header.mode = S_IFREG | perm;
                header.size =
                    u32::try_from(entry.size).map_err(|_| bad(&raw, "larger than 4 GiB"))?;
                stream_body = true;
            }
            tar::EntryType::Link => {
                let target = cpio_name(&String::from_utf8_lossy(
                    entry.link.as_deref().unwrap_or_default(),
                ));
                let primary = inodes.get(&target).ok_or_else(|| {
                    bad(
                        &raw,
                        &format!(
                            "hardlink to {target:?}, which is not an earlier non-directory entry"
                        ),
                    )
                })?;
                header.mode = primary.file_type | perm;
                header.rdev = primary.rdev;
                match &primary.symlink_target {
                    // Its own symlink (module comment): own ino, link count 1.
                    Some(text) => {
                        header.mode = S_IFLNK | 0o777;
                        header.size = primary.symlink_size;
                        body = Some(text.clone());
                    }
                    // Same inode, no body: the kernel links it to the name written first.
                    None => {
                        header.ino = primary.ino;
                        header.nlink = links.get(&target).copied().unwrap_or(2);
                    }
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link
                    .clone()
                    .ok_or_else(|| bad(&raw, "symlink without target"))?;
                header.mode = S_IFLNK | 0o777;
                header.size = u32::try_from(target.len())
                    .map_err(|_| bad(&raw, "symlink target longer than 4 GiB"))?;
                body = Some(target);
            }
            tar::EntryType::Char => {
                header.mode = S_IFCHR | perm;
                header.rdev = rdev;
            }
            tar::EntryType::Block => {
                header.mode = S_IFBLK | perm;
                header.rdev = rdev;
            }
            tar::EntryType::Fifo => header.mode = S_IFIFO | perm,
            other => return Err(bad(&raw, &format!("unsupported entry type {other:?}"))),
        }
        if header.ino == 0 {
            header.ino = next_ino;
            next_ino += 1;
            if kind != tar::EntryType::Directory && kind != tar::EntryType::Link {
                let is_symlink = kind == tar::EntryType::Symlink;
                if !is_symlink {
                    header.nlink = links.get(&name).copied().unwrap_or(1);
                }
                // Only a symlink that is linked to needs its target kept.
                let keep_target = is_symlink && links.contains_key(&name);
                let primary = Primary {
                    ino: header.ino,
                    file_type: header.mode & !0o7777,
                    rdev: header.rdev,
                    symlink_size: header.size,
                    symlink_target: body.clone().filter(|_| keep_target),
                };
                inodes.insert(name.clone(), primary);
            }
        }
        write_header(&mut gz, &header).map_err(io_out)?;
        let size = header.size as u64;
        if stream_body {
            let copied = io::copy(&mut archive.data().take(size), &mut gz).map_err(io_in)?;
            if copied != size {
                return Err(bad(
                    &raw,
                    "content shorter than its header says (truncated tar)",
                ));
            }
        } else if let Some(data) = body {
            gz.write_all(&data).map_err(io_out)?;
        }
        pad4(&mut gz, size).map_err(io_out)?;
    }
    let trailer = Header {
        ino: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        nlink: 1,
        mtime: 0,
        size: 0,
        rdev: (0, 0),
        name: "TRAILER!!!",
    };
    write_header(&mut gz, &trailer).map_err(io_out)?;
    let (_, sha256, size) = gz.finish().map_err(io_out)?.finish();
    file.commit().map_err(io_out)?;
    Ok(Summary {
        entries: next_ino - 1,
        sha256,
        size,
    })
}

/// `./bin/sh` → `bin/sh`, `./` → `.`, `./etc/` → `etc`.
fn cpio_name(tar_name: &str) -> String {
    let trimmed = tar_name
        .trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/');
    if trimmed.is_empty() {
        ".".to_string()
    } else {
        trimmed.to_string()
    }
}
