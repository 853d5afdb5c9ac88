//! Writes the normalized rootfs tar (format: ARCHITECTURE.md, "The rootfs tar") and collects the
//! manifest entries on the way.
//!
//! Headers are written by hand instead of through `tar::Builder`/`tar::Header::set_path`: those
//! route names through `std::path`, which drops the `./` prefix and the trailing `/` the format
//! requires, picks GNU or ustar encodings on its own and orders PAX records as given. A ustar
//! header is 512 bytes of fixed fields; writing them here keeps every byte under our control.

use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use icos_common::WriteBehind;
use serde::{Serialize, Serializer};

use crate::manifest::{Entry, EntryType};
use crate::tree::{Inode, Kind, Meta, Tree};

const BLOCK: usize = 512;
/// Largest uid/gid/device number a 7-digit octal ustar field holds, plus one.
const USTAR_ID_LIMIT: u64 = 1 << 21;
/// 11 octal digits: sizes from 8 GiB on need a PAX `size` record.
const USTAR_SIZE_LIMIT: u64 = 1 << 33;
/// Name of the PAX extended header members: fixed, so it depends on nothing.
const PAX_HEADER_NAME: &[u8] = b"./@PaxHeader";

/// One entry of the output, as the tar and the manifest both describe it.
struct Resolved<'a> {
    path: &'a str,
    meta: &'a Meta,
    what: What<'a>,
}

enum What<'a> {
    Dir,
    /// The first (bytewise-smallest) path of an inode carries its data (the inode and its
    /// number)...
    File(&'a Inode, usize),
    /// ...and its other paths link to that one.
    Hardlink(&'a str),
    Symlink(&'a str),
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

/// The tree's entries in bytewise path order, hardlinks resolved. Walked twice (tar, then the
/// manifest) rather than collected: the manifest of a million entries would not fit the memory
/// budget next to the tree.
fn resolved(tree: &Tree) -> impl Iterator<Item = Resolved<'_>> {
    let mut first_path: Vec<Option<&str>> = vec![None; tree.inodes.len()];
    // Likewise for hardlink groups of symlinks, devices and fifos: the first path is the entry of
    // its type, the others link to it.
    let mut first_in_group: HashMap<u32, &str> = HashMap::new();
    tree.nodes.iter().map(move |(path, node)| {
        let group_first = node
            .group
            .and_then(|group| match first_in_group.entry(group) {
                Slot::Occupied(first) => Some(*first.get()),
                Slot::Vacant(slot) => {
                    slot.insert(path);
                    None
                }
            });
        let what = match (&node.kind, group_first) {
            (_, Some(first)) => What::Hardlink(first),
            (Kind::Dir, _) => What::Dir,
            (Kind::File(inode), _) => match first_path[*inode] {
                Some(first) => What::Hardlink(first),
                None => {
                    first_path[*inode] = Some(path);
                    What::File(&tree.inodes[*inode], *inode)
                }
            },
            (Kind::Symlink(target), _) => What::Symlink(target),
            (&Kind::Char { major, minor }, _) => What::Char { major, minor },
            (&Kind::Block { major, minor }, _) => What::Block { major, minor },
            (Kind::Fifo, _) => What::Fifo,
        };
        Resolved {
            path,
            meta: tree.meta_of(node),
            what,
        }
    })
}

struct Member<'a> {
    name: String,
    typeflag: u8,
    link: String,
    meta: &'a Meta,
    size: u64,
    major: u32,
    minor: u32,
}

/// Streams the tree as a tar to `out` in bytewise path order; returns the number of entries.
pub(crate) fn write_tar<'t>(tree: &'t Tree, out: &mut WriteBehind<'t>) -> io::Result<usize> {
    let mut contents = tree.content_reader();
    let mut count = 0;
    for entry in resolved(tree) {
        let path = entry.path;
        let name = match (path.is_empty(), matches!(entry.what, What::Dir)) {
            (true, _) => "./".to_string(),
            (false, true) => format!("./{path}/"),
            (false, false) => format!("./{path}"),
        };
        let mut member = Member {
            name,
            typeflag: b'5',
            link: String::new(),
            meta: entry.meta,
            size: 0,
            major: 0,
            minor: 0,
        };
        let mut data = None;
        match entry.what {
            What::Dir => {}
            What::File(inode, _) => {
                member.typeflag = b'0';
                member.size = inode.size;
                data = Some(inode);
            }
            What::Hardlink(first) => {
                member.typeflag = b'1';
                member.link = format!("./{first}");
            }
            What::Symlink(target) => {
                member.typeflag = b'2';
                member.link = target.to_string();
            }
            What::Char { major, minor } | What::Block { major, minor } => {
                member.typeflag = if matches!(entry.what, What::Char { .. }) {
                    b'3'
                } else {
                    b'4'
                };
                member.major = major;
                member.minor = minor;
            }
            What::Fifo => member.typeflag = b'6',
        }
        // Attributes belong to the inode: the data-carrying entry holds them, not its hardlinks.
        let with_xattrs = member.typeflag != b'1';
        write_member(out, &member, with_xattrs)?;
        if let Some(inode) = data {
            contents.copy(inode.content, inode.size, out)?;
            pad(out, inode.size)?;
        }
        count += 1;
    }
    out.write_all(&[0u8; 2 * BLOCK])?;
    Ok(count)
}

fn manifest_entry(tree: &Tree, entry: &Resolved<'_>) -> Entry {
    let path = entry.path;
    let meta = entry.meta;
    let mut manifest = Entry {
        path: format!("/{path}"),
        kind: EntryType::Dir,
        mode: format!("{:04o}", meta.mode),
        uid: meta.uid.into(),
        gid: meta.gid.into(),
        mtime: meta.mtime,
        size: None,
        sha256: None,
        target: None,
        major: None,
        minor: None,
        xattrs: BTreeMap::new(),
    };
    match entry.what {
        What::Dir => {}
        What::File(inode, number) => {
            manifest.kind = EntryType::File;
            manifest.size = Some(inode.size);
            manifest.sha256 = Some(tree.digests[number]);
        }
        What::Hardlink(first) => {
            manifest.kind = EntryType::Hardlink;
            manifest.target = Some(format!("/{first}"));
        }
        What::Symlink(target) => {
            manifest.kind = EntryType::Symlink;
            manifest.target = Some(target.to_string());
        }
        What::Char { major, minor } | What::Block { major, minor } => {
            manifest.kind = if matches!(entry.what, What::Char { .. }) {
                EntryType::Char
            } else {
                EntryType::Block
            };
            manifest.major = Some(major);
            manifest.minor = Some(minor);
        }
        What::Fifo => manifest.kind = EntryType::Fifo,
    }
    if !matches!(entry.what, What::Hardlink(_)) {
        manifest.xattrs = meta
            .xattrs()
            .map(|(k, v)| (k.clone(), hex::encode(v)))
            .collect();
    }
    manifest
}

/// The manifest entries of the tree, in tar order.
pub(crate) fn manifest_entries(tree: &Tree) -> Vec<Entry> {
    resolved(tree).map(|e| manifest_entry(tree, &e)).collect()
}

/// Serializes as the manifest's `entries` array, one entry at a time.
pub(crate) struct ManifestEntries<'a>(pub &'a Tree);

impl Serialize for ManifestEntries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(resolved(self.0).map(|e| manifest_entry(self.0, &e)))
    }
}

fn write_member(out: &mut dyn Write, member: &Member<'_>, with_xattrs: bool) -> io::Result<()> {
    let meta = member.meta;
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    let (prefix, name) = match split_ustar_name(member.name.as_bytes()) {
        Some(split) => split,
        None => {
            pax.push(("path".into(), member.name.as_bytes().to_vec()));
            (&b""[..], truncate(member.name.as_bytes(), 100))
        }
    };
    let link = if member.link.len() > 100 {
        pax.push(("linkpath".into(), member.link.as_bytes().to_vec()));
        truncate(member.link.as_bytes(), 100)
    } else {
        member.link.as_bytes()
    };
    let mut numeric = |key: &str, value: u64, limit: u64| {
        if value >= limit {
            pax.push((key.to_string(), value.to_string().into_bytes()));
            0
        } else {
            value
        }
    };
    let uid = numeric("uid", meta.uid.into(), USTAR_ID_LIMIT);
    let gid = numeric("gid", meta.gid.into(), USTAR_ID_LIMIT);
    let size = numeric("size", member.size, USTAR_SIZE_LIMIT);
    if u64::from(member.major) >= USTAR_ID_LIMIT || u64::from(member.minor) >= USTAR_ID_LIMIT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "device numbers of {} do not fit a ustar header",
                member.name
            ),
        ));
    }
    if with_xattrs {
        for (key, value) in meta.xattrs() {
            pax.push((format!("SCHILY.xattr.{key}"), value.clone()));
        }
    }
    if !pax.is_empty() {
        pax.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut records = Vec::new();
        for (key, value) in &pax {
            pax_record(&mut records, key, value);
        }
        let header = ustar_header(&UstarFields {
            prefix: b"",
            name: PAX_HEADER_NAME,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: records.len() as u64,
            mtime: meta.mtime,
            typeflag: b'x',
            link: b"",
            major: 0,
            minor: 0,
        });
        out.write_all(&header)?;
        out.write_all(&records)?;
        pad(out, records.len() as u64)?;
    }
    let header = ustar_header(&UstarFields {
        prefix,
        name,
        mode: meta.mode,
        uid,
        gid,
        size,
        mtime: meta.mtime,
        typeflag: member.typeflag,
        link,
        major: member.major,
        minor: member.minor,
    });
    out.write_all(&header)
}

/// Splits a name into ustar `prefix` and `name` fields at a `/` (the prefix as short as possible),
/// or returns None when it cannot fit and needs a PAX `path` record.
fn split_ustar_name(full: &[u8]) -> Option<(&[u8], &[u8])> {
    if full.len() <= 100 {
        return Some((b"", full));
    }
    full.iter().enumerate().find_map(|(i, &b)| {
        let rest = full.len() - i - 1;
        (b == b'/' && i <= 155 && rest <= 100 && rest > 0).then(|| (&full[..i], &full[i + 1..]))
    })
}

fn truncate(bytes: &[u8], len: usize) -> &[u8] {
    &bytes[..bytes.len().min(len)]
}

/// One PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts its own digits.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

struct UstarFields<'a> {
    prefix: &'a [u8],
    name: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    link: &'a [u8],
    major: u32,
    minor: u32,
}

/// A POSIX ustar header block; uname/gname stay empty (numeric owners only).
fn ustar_header(f: &UstarFields<'_>) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..f.name.len()].copy_from_slice(f.name);
    octal(&mut h[100..108], u64::from(f.mode));
    octal(&mut h[108..116], f.uid);
    octal(&mut h[116..124], f.gid);
    octal(&mut h[124..136], f.size);
    octal(&mut h[136..148], f.mtime);
    h[156] = f.typeflag;
    h[157..157 + f.link.len()].copy_from_slice(f.link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], u64::from(f.major));
    octal(&mut h[337..345], u64::from(f.minor));
    h[345..345 + f.prefix.len()].copy_from_slice(f.prefix);
    // The checksum is computed with its own field as eight spaces, then stored as 6 digits, NUL, space.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let digits = format!("{sum:06o}");
    h[148..154].copy_from_slice(digits.as_bytes());
    h[154] = 0;
    h[155] = b' ';
    h
}

/// Zero-padded octal digits filling the field except a final NUL. Callers keep values in range.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    debug_assert!(
        digits.len() == width,
        "{value} does not fit {width} octal digits"
    );
    field[..width].copy_from_slice(&digits.as_bytes()[digits.len() - width..]);
    field[width] = 0;
}

fn pad(out: &mut dyn Write, len: u64) -> io::Result<()> {
    let rest = (BLOCK - (len % BLOCK as u64) as usize) % BLOCK;
    out.write_all(&[0u8; BLOCK][..rest])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Meta;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        pax_record(&mut out, "path", b"abc");
        assert_eq!(out, b"12 path=abc\n");
        // Crossing a digit boundary: a body of 97 bytes makes a 99-byte record, 98 → 101 (100
        // would need three digits, making it 101).
        let mut out = Vec::new();
        pax_record(&mut out, "k", &[b'x'; 93]);
        assert_eq!(out.len(), 99);
        assert!(out.starts_with(b"99 k="));
        let mut out = Vec::new();
        pax_record(&mut out, "k", &[b'x'; 94]);
        assert_eq!(out.len(), 101);
        assert!(out.starts_with(b"101 k="));
    }

    #[test]
    fn huge_sizes_and_ids_go_to_pax() {
        let meta = Meta::new(0o644, 1 << 21, 5, 7, Default::default());
        let member = Member {
            name: "./big".into(),
            typeflag: b'0',
            link: String::new(),
            meta: &meta,
            size: 1 << 33,
            major: 0,
            minor: 0,
        };
        let mut out = Vec::new();
        write_member(&mut out, &member, true).unwrap();
        assert_eq!(
            out.len(),
            3 * BLOCK,
            "PAX header, its records, then the ustar header"
        );
        assert_eq!(out[156], b'x');
        let records = std::str::from_utf8(&out[BLOCK..2 * BLOCK])
            .unwrap()
            .trim_end_matches('\0');
        assert_eq!(records, "19 size=8589934592\n15 uid=2097152\n");
        let header = &out[2 * BLOCK..];
        assert_eq!(
            &header[124..136],
            b"00000000000\0",
            "ustar size field left at zero"
        );
        assert_eq!(
            &header[108..116],
            b"0000000\0",
            "ustar uid field left at zero"
        );
        assert_eq!(&header[116..124], b"0000005\0");
        // The tar crate reads it back through the PAX records.
        let mut archive = tar::Archive::new(&out[..]);
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(
            (entry.size(), entry.header().uid().unwrap()),
            (1 << 33, 1 << 21)
        );
    }

    #[test]
    fn ustar_split() {
        let short = b"./a/b";
        assert_eq!(split_ustar_name(short), Some((&b""[..], &short[..])));
        let long = format!("./{}/{}", "d".repeat(120), "f".repeat(90));
        let (prefix, name) = split_ustar_name(long.as_bytes()).unwrap();
        assert_eq!(name, "f".repeat(90).as_bytes());
        assert_eq!(prefix.len(), 122);
        let too_long = format!("./{}", "x".repeat(200));
        assert_eq!(split_ustar_name(too_long.as_bytes()), None);
        // A trailing slash never leaves an empty name field.
        let dir = format!("./{}/", "d".repeat(120));
        assert_eq!(split_ustar_name(dir.as_bytes()), None);
    }
}
