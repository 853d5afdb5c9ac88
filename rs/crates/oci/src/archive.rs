//! Tar archives read in place: the members are indexed once (name → offset and size of the data)
//! and then read with positioned reads. Nothing is ever extracted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use icos_common::mapped::{MappedBytes, MappedFile};

use icos_common::tarread::{ReadError, TarReader};

#[derive(Debug, Clone)]
enum Member {
    File {
        offset: u64,
        size: u64,
    },
    /// A symlink (target relative to the member's directory) or hardlink (target from the root),
    /// already turned into a normalized archive path, or `Err` when it points outside the archive.
    Link(Result<String, String>),
    Unsupported(&'static str),
    /// The name appears more than once: ambiguous, so never used.
    Duplicate,
}

pub(crate) struct TarIndex {
    path: PathBuf,
    file: Arc<File>,
    /// The whole archive mapped, once a member is first read in place.
    mapped: OnceLock<Arc<MappedFile>>,
    members: BTreeMap<String, Member>,
}

/// How to follow links between members before giving up (a loop, or a chain too long to be honest).
const MAX_LINK_HOPS: usize = 8;

impl TarIndex {
    /// Indexes every member of the tar at `path`. `Err` is a problem description.
    pub fn open(path: &Path) -> Result<TarIndex, io::Error> {
        let file = File::open(path)?;
        let mut members = BTreeMap::new();
        // icos-common's reader, not `tar::Archive`: the tar crate splits PAX records at newlines
        // when it picks a member's name, so a value holding a newline could hide or forge one.
        let mut archive = TarReader::seekable(BufReader::new(&file));
        let not_readable = |e: ReadError| {
            let e = io::Error::from(e);
            io::Error::new(e.kind(), format!("not a readable tar archive: {e}"))
        };
        while let Some(entry) = archive.next_entry().map_err(not_readable)? {
            let Ok(raw_name) = std::str::from_utf8(&entry.path).map(str::to_string) else {
                continue; // a name we could never be asked for
            };
            let Some(name) = normalize(&raw_name) else {
                continue;
            };
            let kind = tar::EntryType::new(entry.typeflag);
            let member = if kind.is_file() || kind.is_contiguous() {
                Member::File {
                    offset: entry.data_pos,
                    size: entry.size,
                }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link
                    .as_deref()
                    .and_then(|t| std::str::from_utf8(t).ok().map(str::to_string))
                    .unwrap_or_default();
                let base = if kind.is_symlink() { parent(&name) } else { "" };
                Member::Link(resolve_link(base, &target))
            } else if kind.is_gnu_sparse() {
                Member::Unsupported("a sparse file")
            } else if kind.is_dir() {
                continue;
            } else {
                Member::Unsupported("not a regular file")
            };
            if members.insert(name.clone(), member).is_some() {
                members.insert(name, Member::Duplicate);
            }
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            file: Arc::new(file),
            mapped: OnceLock::new(),
            members,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, name: &str) -> bool {
        normalize(name).is_some_and(|n| self.members.contains_key(&n))
    }

    /// Offset and size of a regular-file member, following links inside the archive.
    /// `Err` explains why the name cannot be used (hostile, missing, ambiguous, not a file).
    pub fn locate(&self, name: &str) -> Result<(u64, u64), String> {
        check_member_name(name)?;
        let mut current =
            normalize(name).ok_or_else(|| format!("member name {name:?} is empty"))?;
        for _ in 0..=MAX_LINK_HOPS {
            match self.members.get(&current) {
                None => return Err(format!("has no member {current:?}")),
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Duplicate) => {
                    return Err(format!(
                        "member {current:?} appears more than once; refusing an ambiguous archive"
                    ))
                }
                Some(Member::Unsupported(what)) => {
                    return Err(format!("member {current:?} is {what}"))
                }
                Some(Member::Link(Err(problem))) => {
                    return Err(format!("member {current:?} {problem}"))
                }
                Some(Member::Link(Ok(target))) => current = target.clone(),
            }
        }
        Err(format!(
            "member {name:?} is a chain of more than {MAX_LINK_HOPS} links"
        ))
    }

    /// Size of a member without reading it.
    pub fn size(&self, name: &str) -> Result<u64, String> {
        self.locate(name).map(|(_, size)| size)
    }

    pub fn open_member(&self, name: &str) -> Result<MemberReader, String> {
        let (offset, size) = self.locate(name)?;
        Ok(MemberReader {
            file: Arc::clone(&self.file),
            pos: offset,
            end: offset + size,
        })
    }
}

impl TarIndex {
    /// A regular-file member's data mapped in place; `Ok(None)` when the archive is shorter than
    /// the member claims (reading it as a stream reports that).
    pub fn map_member(&self, name: &str) -> Result<Option<MappedBytes>, String> {
        let (offset, size) = self.locate(name)?;
        let mapped = match self.mapped.get() {
            Some(mapped) => mapped,
            None => {
                let file = self
                    .file
                    .try_clone()
                    .and_then(MappedFile::new)
                    .map_err(|e| format!("cannot map {}: {e}", self.path.display()))?;
                self.mapped.get_or_init(|| file)
            }
        };
        Ok(mapped.slice(offset..offset.saturating_add(size)))
    }
}

/// Refuses names that could mean something outside the archive root if anyone ever used them as paths.
pub(crate) fn check_member_name(name: &str) -> Result<(), String> {
    if name.starts_with('/') || name.split('/').any(|c| c == "..") {
        return Err(format!(
            "member name {name:?} is absolute or contains '..'; refusing it (a hostile or broken archive)"
        ));
    }
    Ok(())
}

/// `./a//b/` → `a/b`; `None` for the root.
fn normalize(name: &str) -> Option<String> {
    let parts: Vec<&str> = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

fn parent(name: &str) -> &str {
    name.rfind('/').map_or("", |i| &name[..i])
}

/// Joins a link target to its base directory, resolving `..` without ever leaving the archive root.
fn resolve_link(base: &str, target: &str) -> Result<String, String> {
    if target.starts_with('/') {
        return Err(format!(
            "is a link to the absolute path {target:?}; refusing it"
        ));
    }
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!(
                        "is a link to {target:?}, outside the archive; refusing it"
                    ));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// A member's data, read with positioned reads on the shared archive file.
pub(crate) struct MemberReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside this member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use icos_testsupport::pax_record;

    #[test]
    fn names_and_links() {
        assert_eq!(normalize("./a//b/").as_deref(), Some("a/b"));
        assert_eq!(normalize("./"), None);
        assert!(check_member_name("../x").is_err());
        assert!(check_member_name("a/../../x").is_err());
        assert!(check_member_name("/etc/passwd").is_err());
        assert!(check_member_name("blobs/sha256/ab").is_ok());
        assert_eq!(
            resolve_link("blobs/sha256", "../../layer.tar").unwrap(),
            "layer.tar"
        );
        assert!(resolve_link("a", "../../x").is_err());
        assert!(resolve_link("a", "/x").is_err());
    }

    #[test]
    fn pax_values_with_newlines_neither_break_nor_rename_members() {
        // A comment whose second line looks like a `path` record of its own to a parser that
        // splits at newlines, then the member's real (long) name.
        let long = format!("blobs/sha256/{}", "a".repeat(100));
        let records = [
            pax_record("comment", b"x\n22 path=manifest.json"),
            pax_record("path", long.as_bytes()),
        ]
        .concat();
        let mut t = Vec::new();
        let mut add = |name: &str, kind: tar::EntryType, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.extend_from_slice(h.as_bytes());
            t.extend_from_slice(data);
            t.resize(t.len().div_ceil(512) * 512, 0);
        };
        add("PaxHeader", tar::EntryType::XHeader, &records);
        add("truncated", tar::EntryType::Regular, b"blob");
        add("index.json", tar::EntryType::Regular, b"{}");
        t.extend_from_slice(&[0u8; 1024]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, &t).unwrap();
        let index = TarIndex::open(&path).unwrap();
        assert!(index.contains(&long));
        assert!(!index.contains("manifest.json") && !index.contains("truncated"));
        let mut data = String::new();
        index
            .open_member(&long)
            .unwrap()
            .read_to_string(&mut data)
            .unwrap();
        assert_eq!(data, "blob");
        assert_eq!(index.size("index.json"), Ok(2));
    }
}
