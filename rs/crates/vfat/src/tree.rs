//! The tree read from the tar: an arena of entries indexed by (parent, name), so that every
//! lookup costs the length of one name, whatever the depth; the checks FAT needs; the order to
//! create the entries in.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use icos_common::tarread::TarReader;

use crate::{names, VfatError};

/// A FAT file's size field has 32 bits.
const MAX_FILE_SIZE: u64 = u32::MAX as u64;

/// A FAT directory holds at most 65536 entries of 32 bytes (2 MiB).
const MAX_DIR_SLOTS: usize = 65536;

#[derive(Debug)]
pub(crate) enum Kind {
    /// `explicit`: the tar has an entry for it (else it is a parent the tar left out).
    Dir {
        explicit: bool,
    },
    File {
        offset: u64,
        size: u64,
    },
    /// A hardlink: to the path (components) until [`scan`] resolves it, then to a file node.
    Link(Vec<String>),
    LinkTo(usize),
}

#[derive(Debug)]
pub(crate) struct Node {
    pub name: String,
    pub parent: usize,
    pub kind: Kind,
    children: Vec<usize>,
    /// 32-byte directory entries its children take (directories only).
    slots: usize,
}

/// Node 0 is the root.
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    /// (parent, name) → node.
    index: HashMap<(usize, String), usize>,
    /// (parent, name as FAT compares it) → node.
    upper: HashMap<(usize, Vec<u16>), usize>,
}

enum AddError {
    /// The two paths, bytewise-smaller first.
    Collision(String, String),
    /// The directory (its path) that would overflow.
    Full(String),
}

impl Tree {
    fn add(&mut self, parent: usize, name: &str, kind: Kind) -> Result<usize, AddError> {
        let id = self.nodes.len();
        let key = (parent, names::fat_upcase(name));
        if let Some(&other) = self.upper.get(&key) {
            let this = match parent {
                0 => name.to_string(),
                _ => format!("{}/{name}", self.path(parent)),
            };
            let other = self.path(other);
            let (a, b) = if other <= this {
                (other, this)
            } else {
                (this, other)
            };
            return Err(AddError::Collision(a, b));
        }
        // Each name takes a short-name entry and a long-name entry per 13 UTF-16 units; a
        // subdirectory starts with "." and "..".
        let dir = &mut self.nodes[parent];
        dir.slots += 1 + name.encode_utf16().count().div_ceil(13);
        if dir.slots > MAX_DIR_SLOTS {
            return Err(AddError::Full(match parent {
                0 => "/".to_string(),
                _ => self.path(parent),
            }));
        }
        dir.children.push(id);
        self.upper.insert(key, id);
        self.index.insert((parent, name.to_string()), id);
        self.nodes.push(Node {
            name: name.to_string(),
            parent,
            kind,
            children: Vec::new(),
            slots: 2,
        });
        Ok(id)
    }

    /// The path from the root, for messages.
    pub fn path(&self, mut id: usize) -> String {
        let mut parts = Vec::new();
        while id != 0 {
            parts.push(self.nodes[id].name.as_str());
            id = self.nodes[id].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// (offset, size) of a file's data in the tar, through a hardlink if need be.
    pub fn data(&self, id: usize) -> Option<(u64, u64)> {
        match self.nodes[id].kind {
            Kind::File { offset, size } => Some((offset, size)),
            Kind::LinkTo(target) => self.data(target),
            _ => None,
        }
    }

    /// (node, depth) in creation order: depth first, parents before children; among siblings,
    /// literal short names of the alias form first (see `names`), then bytewise.
    pub fn creation_order(&mut self) -> Vec<(usize, usize)> {
        let rank = |n: &Node| (!names::claims_alias_form(&n.name), n.name.clone());
        for id in 0..self.nodes.len() {
            let mut children = std::mem::take(&mut self.nodes[id].children);
            children.sort_by_cached_key(|&c| rank(&self.nodes[c]));
            self.nodes[id].children = children;
        }
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<(usize, usize)> = self.nodes[0]
            .children
            .iter()
            .rev()
            .map(|&c| (c, 1))
            .collect();
        while let Some((id, depth)) = stack.pop() {
            order.push((id, depth));
            stack.extend(
                self.nodes[id]
                    .children
                    .iter()
                    .rev()
                    .map(|&c| (c, depth + 1)),
            );
        }
        order
    }
}

fn entry_kind_name(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Symlink => "symlink",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        tar::EntryType::GNUSparse => "GNU sparse file (not in the rootfs tar format)",
        _ => "tar entry of an unsupported type",
    }
}

fn components(tree: &Path, raw: &Path) -> Result<Vec<String>, VfatError> {
    let shown = raw.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for c in raw.components() {
        match c {
            Component::CurDir | Component::RootDir => {}
            Component::Normal(n) => {
                let s = n.to_str().ok_or_else(|| VfatError::BadEntry {
                    tree: tree.to_path_buf(),
                    entry: shown.clone(),
                    problem: "is not valid UTF-8, which FAT long names cannot hold".into(),
                })?;
                out.push(s.to_string());
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(VfatError::BadEntry {
                    tree: tree.to_path_buf(),
                    entry: shown,
                    problem: "leaves the tree ('..'): the rootfs tar format has no such paths"
                        .into(),
                })
            }
        }
    }
    for name in &out {
        names::check_name(name).map_err(|problem| VfatError::BadEntry {
            tree: tree.to_path_buf(),
            entry: shown.clone(),
            problem,
        })?;
    }
    let units = names::path_units(&out);
    if units > names::MAX_PATH_UNITS {
        return Err(VfatError::BadEntry {
            tree: tree.to_path_buf(),
            entry: shown,
            problem: format!(
                "has a path of {units} UTF-16 units, more than FAT's {} (260 with the trailing NUL, \
                 counting a \\ before each component): shorten or flatten it",
                names::MAX_PATH_UNITS
            ),
        });
    }
    Ok(out)
}

/// Reads the tar's headers (not its data) into a tree, checking everything FAT needs.
///
/// The shared reader of icos-common, not `tar::Archive`: the tar crate splits PAX records at
/// newlines, so a tree whose xattr value holds a 0x0A byte would fail here although FAT ignores
/// xattrs.
pub(crate) fn scan(
    tree: &Path,
    archive: &mut TarReader<BufReader<File>>,
) -> Result<Tree, VfatError> {
    let rd = |source: io::Error| VfatError::ReadTree {
        path: tree.to_path_buf(),
        source,
    };
    let bad = |entry: String, problem: String| VfatError::BadEntry {
        tree: tree.to_path_buf(),
        entry,
        problem,
    };
    let mut t = Tree {
        nodes: vec![Node {
            name: String::new(),
            parent: 0,
            kind: Kind::Dir { explicit: true },
            children: Vec::new(),
            slots: 1, // the volume label
        }],
        index: HashMap::new(),
        upper: HashMap::new(),
    };
    let add = |t: &mut Tree, parent: usize, name: &str, kind: Kind| {
        t.add(parent, name, kind).map_err(|e| match e {
            AddError::Collision(a, b) => VfatError::CaseCollision { tree: tree.to_path_buf(), a, b },
            AddError::Full(dir) => bad(
                dir,
                format!(
                    "needs more than FAT's {MAX_DIR_SLOTS} directory entries of 32 bytes: spread its \
                     children over subdirectories"
                ),
            ),
        })
    };

    while let Some(e) = archive.next_entry().map_err(|e| rd(e.into()))? {
        let raw = Path::new(OsStr::from_bytes(&e.path));
        let shown = raw.to_string_lossy().into_owned();
        let path = components(tree, raw)?;
        let ty = tar::EntryType::new(e.typeflag);
        if e.pax.iter().any(|(k, _)| k.starts_with(b"GNU.sparse.")) {
            return Err(VfatError::Unsupported {
                tree: tree.to_path_buf(),
                entry: shown,
                kind: "GNU sparse file (not in the rootfs tar format)",
            });
        }
        let kind = match ty {
            tar::EntryType::XGlobalHeader => continue, // metadata only (e.g. Python's tarfile)
            tar::EntryType::Directory => Kind::Dir { explicit: true },
            tar::EntryType::Regular | tar::EntryType::Continuous if e.size > MAX_FILE_SIZE => {
                return Err(bad(
                    shown,
                    format!(
                        "is {} bytes; a FAT file holds at most {MAX_FILE_SIZE} bytes (4 GiB - 1)",
                        e.size
                    ),
                ));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File {
                offset: e.data_pos,
                size: e.size,
            },
            tar::EntryType::Link => {
                let target = e
                    .link
                    .as_deref()
                    .ok_or_else(|| bad(shown.clone(), "is a hardlink without a target".into()))?;
                Kind::Link(components(tree, Path::new(OsStr::from_bytes(target)))?)
            }
            other => {
                return Err(VfatError::Unsupported {
                    tree: tree.to_path_buf(),
                    entry: shown,
                    kind: entry_kind_name(other),
                })
            }
        };
        let Some((name, parents)) = path.split_last() else {
            if matches!(kind, Kind::Dir { .. }) {
                continue; // the root directory
            }
            return Err(bad(shown, "names the root but is not a directory".into()));
        };
        // Parents missing from the tar are directories like any other (made before their children).
        let mut parent = 0;
        for c in parents {
            parent = match t.index.get(&(parent, c.clone())) {
                Some(&id) if matches!(t.nodes[id].kind, Kind::Dir { .. }) => id,
                Some(&id) => {
                    return Err(bad(
                        shown,
                        format!("is below {:?}, which is a file", t.path(id)),
                    ));
                }
                None => add(&mut t, parent, c, Kind::Dir { explicit: false })?,
            };
        }
        match t.index.get(&(parent, name.clone())) {
            None => {
                add(&mut t, parent, name, kind)?;
            }
            Some(&id) => match (&mut t.nodes[id].kind, kind) {
                (
                    Kind::Dir {
                        explicit: explicit @ false,
                    },
                    Kind::Dir { .. },
                ) => *explicit = true,
                (Kind::Dir { explicit: false }, _) => {
                    return Err(bad(
                        shown,
                        "is not a directory, but the tar has entries below it".into(),
                    ));
                }
                _ => return Err(bad(shown, "appears twice in the tar".into())),
            },
        }
    }

    // Hardlinks share their target's data: the target must be a regular file of the tar.
    for id in 0..t.nodes.len() {
        let Kind::Link(target) = &t.nodes[id].kind else {
            continue;
        };
        let mut at = Some(0);
        for c in target {
            at = at.and_then(|p| t.index.get(&(p, c.clone())).copied());
        }
        match at {
            Some(target_id) if matches!(t.nodes[target_id].kind, Kind::File { .. }) => {
                t.nodes[id].kind = Kind::LinkTo(target_id);
            }
            _ => {
                let target = target.join("/");
                return Err(bad(
                    t.path(id),
                    format!("is a hardlink to {target:?}, which is not a regular file in the tar"),
                ));
            }
        }
    }
    Ok(t)
}
