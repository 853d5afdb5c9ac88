//! Applies one uncompressed layer tar stream onto the tree, with OCI whiteout semantics.

use std::io::{self, BufReader, Read};

use base64::Engine as _;
use icos_common::mapped::{MappedBytes, RELEASE_EVERY};
use icos_common::tarread::{self, RawEntry, ReadError, TarReader};
use tar::EntryType;

use crate::error::{EntryProblem, RootfsError};
use crate::path;
use crate::tree::{Kind, Meta, Tree, Xattrs};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// AUFS bookkeeping entries (`.wh..wh.plnk`, `.wh..wh.aufs`): Docker skips them, and so do we.
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";

/// The layer is read with the shared reader of icos-common rather than `tar::Archive`, whose PAX
/// parser splits records at newlines: an xattr value holding a 0x0A byte would fail the layer (or
/// hide the records after it). Header fields the PAX records do not override (mode, device
/// numbers) are still decoded by `tar::Header`.
pub(crate) fn apply(
    tree: &mut Tree,
    layer: &str,
    reader: &mut dyn Read,
) -> Result<(), RootfsError> {
    tree.begin_step();
    // Headers are read 512 bytes at a time: unbuffered, that is a system call per header (the
    // docker-archive member reader reads with pread). Large contents bypass the buffer.
    let mut buffered = BufReader::with_capacity(128 << 10, reader);
    let mut archive = TarReader::new(&mut buffered as &mut dyn Read);
    apply_entries(tree, layer, &mut archive, None)?;
    // Read to the very end: a verifying reader checks the digest only once it has seen every byte.
    read_to_end(archive, layer)
}

/// Reads what follows the end-of-archive marker, bounded (a compressed layer could go on forever).
/// Mapped layers go through it too, so a layer is accepted or refused the same way whichever way
/// it is read.
fn read_to_end<R: Read>(archive: TarReader<R>, layer: &str) -> Result<(), RootfsError> {
    archive.finish().map_err(|e| RootfsError::LayerRead {
        layer: layer.to_string(),
        context: "cannot read the end of the layer".to_string(),
        source: e.into(),
    })?;
    Ok(())
}

/// Applies a layer mapped in place: regular files are left where they lie ([`Tree::mapped_file`];
/// hashed when the tar is written), nothing is copied. The caller verifies the bytes.
pub(crate) fn apply_mapped(
    tree: &mut Tree,
    layer: &str,
    bytes: MappedBytes,
) -> Result<(), RootfsError> {
    tree.begin_step();
    let source = tree.add_source(layer, bytes.clone());
    let mut archive = TarReader::seekable(io::Cursor::new(&bytes[..]));
    apply_entries(tree, layer, &mut archive, Some(source))?;
    read_to_end(archive, layer)
}

fn apply_entries<R: Read>(
    tree: &mut Tree,
    layer: &str,
    archive: &mut TarReader<R>,
    mapped: Option<u32>,
) -> Result<(), RootfsError> {
    let mut last_entry: Option<String> = None;
    // For a mapped layer: where the last release of its pages was (see RELEASE_EVERY).
    let mut released_at = 0;
    let read_error = |last: &Option<String>, source: io::Error| RootfsError::LayerRead {
        layer: layer.to_string(),
        context: match last {
            Some(entry) => format!("cannot read the tar header after entry {entry:?}"),
            None => "cannot read the first tar header".to_string(),
        },
        source,
    };
    while let Some(entry) = archive
        .next_entry()
        .map_err(|e| read_error(&last_entry, e.into()))?
    {
        let display = String::from_utf8_lossy(&entry.path).into_owned();
        let entry_error = |problem| RootfsError::Entry {
            layer: layer.to_string(),
            entry: display.clone(),
            problem,
        };
        match apply_entry(tree, archive, &entry, mapped) {
            Ok(()) => {}
            Err(Failure::Entry(problem)) => return Err(entry_error(problem)),
            Err(Failure::Read(source)) => {
                return Err(RootfsError::LayerRead {
                    layer: layer.to_string(),
                    context: format!("cannot read the data of entry {display:?}"),
                    source,
                })
            }
        }
        last_entry = Some(display);
        if mapped.is_some() && entry.data_pos - released_at >= RELEASE_EVERY {
            tree.release_sources();
            released_at = entry.data_pos;
        }
    }
    Ok(())
}

enum Failure {
    Entry(EntryProblem),
    Read(io::Error),
}

impl From<EntryProblem> for Failure {
    fn from(p: EntryProblem) -> Self {
        Failure::Entry(p)
    }
}

fn bad_header(field: &'static str) -> impl Fn(io::Error) -> Failure {
    move |e| {
        Failure::Entry(EntryProblem::BadHeader {
            field,
            detail: e.to_string(),
        })
    }
}

fn apply_entry<R: Read>(
    tree: &mut Tree,
    archive: &mut TarReader<R>,
    entry: &RawEntry,
    mapped: Option<u32>,
) -> Result<(), Failure> {
    let entry_type = EntryType::new(entry.typeflag);
    if entry_type == EntryType::XGlobalHeader {
        // `git archive` writes one with a comment; anything else would rewrite later entries.
        let data = archive
            .data_to_vec(tarread::MAX_EXTENSION)
            .map_err(|e| match e {
                ReadError::Io(e) => Failure::Read(e),
                ReadError::Bad(detail) => Failure::Entry(EntryProblem::BadHeader {
                    field: "PAX global header",
                    detail,
                }),
            })?;
        let records = tarread::pax_records(&data).map_err(|detail| EntryProblem::BadHeader {
            field: "PAX global header",
            detail,
        })?;
        let records = utf8_keys(records.into_iter())?;
        return match records.into_iter().find(|(key, _)| key != "comment") {
            Some((key, _)) => Err(EntryProblem::GlobalHeader { key }.into()),
            None => Ok(()),
        };
    }
    let pax = utf8_keys(entry.pax.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
    if pax.iter().any(|(key, _)| key.starts_with("GNU.sparse.")) {
        return Err(EntryProblem::Sparse.into());
    }

    let raw_path = &entry.path[..];
    let target = path::normalize(raw_path)?;
    let name = path::file_name(&target);
    if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        let dir = path::parent(&target);
        if name == OPAQUE_MARKER {
            tree.opaque(dir)?;
        } else if name.starts_with(WHITEOUT_META_PREFIX) {
            // AUFS metadata: not content.
        } else {
            tree.whiteout(dir, hidden)?;
        }
        return Ok(());
    }

    let header = tar::Header::from_byte_slice(&entry.header);
    let mode = header.mode().map_err(bad_header("mode"))? & 0o7777;
    let uid = entry.uid().map_err(|detail| EntryProblem::BadHeader {
        field: "uid",
        detail,
    })?;
    let gid = entry.gid().map_err(|detail| EntryProblem::BadHeader {
        field: "gid",
        detail,
    })?;
    let mtime = match entry.pax_value(b"mtime") {
        Some(value) => parse_pax_time(value)?,
        None => header.mtime().map_err(bad_header("mtime"))?,
    };
    let meta = Meta::new(
        mode,
        uid,
        gid,
        mtime.min(tree.epoch()),
        collect_xattrs(&pax)?,
    );

    let kind = match entry_type {
        EntryType::Directory => Kind::Dir,
        EntryType::Regular | EntryType::Continuous => {
            // Check the place before spending I/O on the content.
            if target.is_empty() {
                return Err(EntryProblem::RootNotDirectory {
                    kind: "regular file",
                }
                .into());
            }
            tree.check_parents(&target, false)?;
            let expected = entry.size;
            let made = match mapped {
                Some(source) => tree.mapped_file(source, entry.data_pos, expected, meta.clone()),
                None => tree
                    .spool_file(&mut archive.data(), expected, meta.clone())
                    .map_err(Failure::Read)?,
            };
            match made {
                Ok(inode) => Kind::File(inode),
                Err(got) => return Err(EntryProblem::Truncated { expected, got }.into()),
            }
        }
        EntryType::Link => {
            let raw = entry.link.clone().unwrap_or_default();
            let link_target = match path::normalize(&raw) {
                Ok(t) => t,
                Err(EntryProblem::EscapesRoot) => {
                    return Err(EntryProblem::HardlinkEscapes {
                        target: String::from_utf8_lossy(&raw).into_owned(),
                    }
                    .into())
                }
                Err(_) => return Err(EntryProblem::HardlinkNonUtf8.into()),
            };
            return link(tree, &target, &link_target);
        }
        EntryType::Symlink => {
            let raw = entry.link.clone().unwrap_or_default();
            if raw.is_empty() {
                return Err(EntryProblem::BadSymlinkTarget("empty").into());
            }
            if raw.contains(&0) {
                return Err(EntryProblem::BadSymlinkTarget("contains a NUL byte").into());
            }
            let text = String::from_utf8(raw)
                .map_err(|_| EntryProblem::BadSymlinkTarget("not valid UTF-8"))?;
            Kind::Symlink(text.into())
        }
        EntryType::Char | EntryType::Block => {
            let major = header
                .device_major()
                .map_err(bad_header("device major"))?
                .unwrap_or(0);
            let minor = header
                .device_minor()
                .map_err(bad_header("device minor"))?
                .unwrap_or(0);
            if entry_type == EntryType::Char {
                Kind::Char { major, minor }
            } else {
                Kind::Block { major, minor }
            }
        }
        EntryType::Fifo => Kind::Fifo,
        EntryType::GNUSparse => return Err(EntryProblem::Sparse.into()),
        other => {
            let typeflag = other.as_byte() as char;
            let what = match typeflag {
                's' => "socket",
                'V' => "GNU volume header",
                'M' => "GNU multi-volume continuation",
                'D' => "GNU dump directory",
                'N' => "old GNU long name",
                _ => "unknown type",
            };
            return Err(EntryProblem::UnsupportedType { typeflag, what }.into());
        }
    };
    let meta = if matches!(kind, Kind::File(_)) {
        Meta::default()
    } else {
        meta
    };
    let mut meta = meta;
    if matches!(kind, Kind::Symlink(_)) {
        meta.mode = 0o777; // symlink permissions mean nothing on Linux
    }
    tree.put(&target, kind, meta)?;
    Ok(())
}

/// Adds `path` as another name of `target`'s inode, whatever its type but a directory: a regular
/// file, symlink, device or fifo (ARCHITECTURE.md, "The rootfs tar": hardlinks).
fn link(tree: &mut Tree, path: &str, target: &str) -> Result<(), Failure> {
    match tree.nodes.get(target) {
        None => {
            return Err(EntryProblem::HardlinkTargetMissing {
                target: target.to_string(),
            }
            .into())
        }
        Some(node) if node.kind == Kind::Dir => {
            return Err(EntryProblem::HardlinkToDirectory {
                target: target.to_string(),
            }
            .into())
        }
        Some(_) => {}
    }
    if path == target {
        return Ok(());
    }
    tree.link(path, target)?;
    Ok(())
}

/// PAX records with their keys as text (every PAX key we act on is ASCII).
fn utf8_keys<'a>(
    records: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Vec<(String, Vec<u8>)>, EntryProblem> {
    records
        .map(|(key, value)| match std::str::from_utf8(key) {
            Ok(key) => Ok((key.to_string(), value.to_vec())),
            Err(_) => Err(EntryProblem::BadHeader {
                field: "PAX record",
                detail: "key is not UTF-8".to_string(),
            }),
        })
        .collect()
}

/// PAX times are decimal seconds, possibly negative or fractional; whole seconds, floored at 0.
fn parse_pax_time(value: &[u8]) -> Result<u64, EntryProblem> {
    let bad = || EntryProblem::BadHeader {
        field: "PAX mtime",
        detail: format!(
            "{:?} is not a decimal number of seconds",
            String::from_utf8_lossy(value)
        ),
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if negative {
        return Ok(0);
    }
    // Anything beyond u64 is clamped to SOURCE_DATE_EPOCH by the caller anyway.
    Ok(whole.parse::<u64>().unwrap_or(u64::MAX))
}

/// `SCHILY.xattr.NAME` (raw value) and `LIBARCHIVE.xattr.URLENCODED-NAME` (base64 value); when both
/// name one attribute, the SCHILY record wins (GNU tar and libarchive write identical values).
fn collect_xattrs(pax: &[(String, Vec<u8>)]) -> Result<Xattrs, EntryProblem> {
    let mut xattrs = Xattrs::new();
    for (key, value) in pax {
        if let Some(encoded) = key.strip_prefix("LIBARCHIVE.xattr.") {
            let bad = |detail: String| EntryProblem::BadXattr {
                key: key.clone(),
                detail,
            };
            let name =
                percent_decode(encoded).ok_or_else(|| bad("bad %-escape in the name".into()))?;
            let decoded = base64_engine()
                .decode(value)
                .map_err(|e| bad(format!("value is not base64: {e}")))?;
            check_xattr_name(&name).map_err(|d| bad(d.to_string()))?;
            xattrs.insert(name, decoded);
        }
    }
    for (key, value) in pax {
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            check_xattr_name(name).map_err(|d| EntryProblem::BadXattr {
                key: key.clone(),
                detail: d.to_string(),
            })?;
            xattrs.insert(name.to_string(), value.clone());
        }
    }
    Ok(xattrs)
}

pub(crate) fn check_xattr_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty attribute name");
    }
    if name.contains('\0') {
        return Err("attribute name contains a NUL byte");
    }
    Ok(())
}

fn base64_engine() -> base64::engine::GeneralPurpose {
    // libarchive writes unpadded base64; accept both forms.
    let config = base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
    base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, config)
}

/// libarchive %-escapes attribute names in PAX keys; a two-line decoder beats a dependency.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"1700000000.75").unwrap(), 1_700_000_000);
        assert_eq!(parse_pax_time(b"-5.5").unwrap(), 0);
        assert_eq!(parse_pax_time(b"12").unwrap(), 12);
        assert!(parse_pax_time(b"soon").is_err());
        assert!(parse_pax_time(b"1.2.3").is_err());
    }

    #[test]
    fn percent_names() {
        assert_eq!(percent_decode("user.a%3Db").unwrap(), "user.a=b");
        assert!(percent_decode("user.%zz").is_none());
    }
}
