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

use crate::manifest::{Entry, EntryType};
use crate::tree::{Kind, Meta, Tree};

const BLOCK: usize = 512;
/// Largest uid/gid/device number a 7-digit octal ustar field holds, plus one.
const USTAR_ID_LIMIT: u64 = 1 << 21;
/// 11 octal digits: sizes from 8 GiB on need a PAX `size` record.
const USTAR_SIZE_LIMIT: u64 = 1 << 33;
/// Name of the PAX extended header members: fixed, so it depends on nothing.
const PAX_HEADER_NAME: &[u8] = b"./@PaxHeader";

struct Member<'a> {
    name: String,
    typeflag: u8,
    link: String,
    meta: &'a Meta,
    size: u64,
    major: u32,
    minor: u32,
}

/// Streams the tree as a tar to `out` in bytewise path order; returns the manifest entries.
pub(crate) fn write_tar(tree: &Tree, out: &mut dyn Write) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::with_capacity(tree.nodes.len());
    // The first (bytewise-smallest) path seen for each inode carries the data.
    let mut first_path: Vec<Option<&str>> = vec![None; tree.inodes.len()];
    // Likewise for hardlink groups of symlinks, devices and fifos: the first path is the entry
    // of its type, the others are type `1` links to it.
    let mut first_in_group: HashMap<u32, &str> = HashMap::new();
    let mut buffer = Vec::new();
    for (path, node) in &tree.nodes {
        let meta = tree.meta_of(node);
        let is_dir = node.kind == Kind::Dir;
        let name = match (path.is_empty(), is_dir) {
            (true, _) => "./".to_string(),
            (false, true) => format!("./{path}/"),
            (false, false) => format!("./{path}"),
        };
        let mut manifest = Entry {
            path: format!("/{path}"),
            kind: EntryType::Dir,
            mode: format!("{:04o}", meta.mode),
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
            size: None,
            sha256: None,
            target: None,
            major: None,
            minor: None,
            xattrs: BTreeMap::new(),
        };
        let mut member = Member {
            name,
            typeflag: b'5',
            link: String::new(),
            meta,
            size: 0,
            major: 0,
            minor: 0,
        };
        let mut data = None;
        let group_first = node
            .group
            .and_then(|group| match first_in_group.entry(group) {
                Slot::Occupied(first) => Some(*first.get()),
                Slot::Vacant(slot) => {
                    slot.insert(path);
                    None
                }
            });
        let file_first = match node.kind {
            Kind::File(inode_index) => first_path[inode_index],
            _ => None,
        };
        if let Some(first) = group_first.or(file_first) {
            member.typeflag = b'1';
            member.link = format!("./{first}");
            manifest.kind = EntryType::Hardlink;
            manifest.target = Some(format!("/{first}"));
        } else {
            match &node.kind {
                Kind::Dir => {}
                Kind::File(inode_index) => {
                    let inode = &tree.inodes[*inode_index];
                    first_path[*inode_index] = Some(path);
                    member.typeflag = b'0';
                    member.size = inode.size;
                    manifest.kind = EntryType::File;
                    manifest.size = Some(inode.size);
                    manifest.sha256 = Some(inode.sha256);
                    data = Some(inode);
                }
                Kind::Symlink(target) => {
                    member.typeflag = b'2';
                    member.link = target.clone();
                    manifest.kind = EntryType::Symlink;
                    manifest.target = Some(target.clone());
                }
                Kind::Char { major, minor } | Kind::Block { major, minor } => {
                    let is_char = matches!(node.kind, Kind::Char { .. });
                    member.typeflag = if is_char { b'3' } else { b'4' };
                    member.major = *major;
                    member.minor = *minor;
                    manifest.kind = if is_char {
                        EntryType::Char
                    } else {
                        EntryType::Block
                    };
                    manifest.major = Some(*major);
                    manifest.minor = Some(*minor);
                }
                Kind::Fifo => {
                    member.typeflag = b'6';
                    manifest.kind = EntryType::Fifo;
                }
            }
        }
        // Attributes belong to the inode: the data-carrying entry holds them, not its hardlinks.
        let with_xattrs = member.typeflag != b'1';
        if with_xattrs {
            manifest.xattrs = meta
                .xattrs
                .iter()
                .map(|(k, v)| (k.clone(), hex::encode(v)))
                .collect();
        }
        write_member(out, &member, with_xattrs)?;
        if let Some(inode) = data {
            tree.copy_content(inode, &mut buffer, out)?;
            pad(out, inode.size)?;
        }
        entries.push(manifest);
    }
    out.write_all(&[0u8; 2 * BLOCK])?;
    Ok(entries)
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
    let uid = numeric("uid", meta.uid, USTAR_ID_LIMIT);
    let gid = numeric("gid", meta.gid, USTAR_ID_LIMIT);
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
        for (key, value) in &meta.xattrs {
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
        let meta = Meta {
            mode: 0o644,
            uid: 1 << 21,
            gid: 5,
            mtime: 7,
            xattrs: Default::default(),
        };
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
