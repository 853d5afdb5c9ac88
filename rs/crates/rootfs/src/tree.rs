//! The flattened filesystem under construction: a sorted map from path to node, plus the
//! regular-file contents kept in one spool file. Memory grows with the number of entries only,
//! and each entry is kept small (a million entries are a real layer's size, see
//! `scripts/bench-fs-shapes.sh`): the path once, boxed; no map for absent xattrs; 32-bit ids.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Read};
use std::ops::Bound;
use std::path::Path;

use icos_common::mapped::{MappedBytes, RELEASE_EVERY};
use icos_common::{Digest, StreamHasher};

use crate::error::EntryProblem;
use crate::path;
use crate::spool::{ContentReader, Spool};

pub(crate) type Xattrs = BTreeMap<String, Vec<u8>>;

/// Attributes kept for every entry (atime/ctime are never kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Already clamped to SOURCE_DATE_EPOCH.
    pub mtime: u64,
    /// None when there are none (most entries): an empty map would still cost 24 bytes.
    xattrs: Option<Box<Xattrs>>,
    pub mode: u32,
    /// Tar readers refuse ids past 32 bits, and the spec's are 32-bit.
    pub uid: u32,
    pub gid: u32,
}

impl Meta {
    pub fn new(mode: u32, uid: u32, gid: u32, mtime: u64, xattrs: Xattrs) -> Self {
        Meta {
            mtime,
            xattrs: (!xattrs.is_empty()).then(|| Box::new(xattrs)),
            mode,
            uid,
            gid,
        }
    }

    /// Extended attributes in name order.
    pub fn xattrs(&self) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.xattrs.iter().flat_map(|map| map.iter())
    }
}

/// A regular file's content and attributes; hardlinks share one inode.
pub(crate) struct Inode {
    pub meta: Meta,
    pub content: Content,
    pub size: u64,
}

/// Where a regular file's bytes are kept until the tar is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Content {
    /// Copied into the spool (streamed layers: compressed, or from the network; the spec's files).
    Spool { offset: u64 },
    /// Left where they are, in a layer mapped in place ([`Tree::add_source`]).
    Mapped { source: u32, offset: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    /// Index into [`Tree::inodes`]; the attributes live in the inode.
    File(usize),
    Symlink(Box<str>),
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

impl Kind {
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File(_) => "regular file",
            Kind::Symlink(_) => "symlink",
            Kind::Char { .. } => "character device",
            Kind::Block { .. } => "block device",
            Kind::Fifo => "fifo",
        }
    }

    fn same_type(&self, other: &Kind) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Unused for [`Kind::File`] (see the inode).
    pub meta: Meta,
    /// The step (layer, or the spec) that last wrote this path: whiteouts only hide entries of
    /// lower steps, and one step must not write conflicting types to one path.
    pub step: u32,
    /// The hardlink group of a symlink, device or fifo with more than one name (regular files
    /// share their [`Inode`] instead). Every member carries the same kind and attributes: a link
    /// copies them, and writing a path anew makes a new node outside the group.
    pub group: Option<u32>,
}

pub(crate) struct Tree {
    pub nodes: BTreeMap<Box<str>, Node>,
    pub inodes: Vec<Inode>,
    /// The SHA-256 of each inode's content, by inode number. Kept apart from the inodes so that
    /// [`Tree::hash_mapped_files`] fills it in while the tar is written from the inodes.
    pub digests: Vec<Digest>,
    spool: Spool,
    /// Layers mapped in place, with their names for messages.
    sources: Vec<(String, MappedBytes)>,
    epoch: u64,
    step: u32,
    /// Whiteouts and opaque directories already applied in this step: a second one finds no
    /// lower-step entry left to hide, and rescanning what this step wrote would make a layer of
    /// repeated markers quadratic.
    hidden_this_step: HashSet<(bool, String)>,
    groups: u32,
}

pub(crate) fn release_all(sources: &[(String, MappedBytes)]) {
    for (_, bytes) in sources {
        bytes.file().release();
    }
}

/// Result of spooling a stream: `Err(got)` when it ended before `expected` bytes.
pub(crate) type SpoolResult = Result<usize, u64>;

impl Tree {
    pub fn new(spool_dir: &Path, epoch: u64) -> io::Result<Self> {
        let spool = Spool::new(spool_dir)?;
        let mut nodes = BTreeMap::new();
        nodes.insert(
            Box::from(""),
            Node {
                kind: Kind::Dir,
                meta: implicit_dir_meta(epoch),
                step: 0,
                group: None,
            },
        );
        Ok(Tree {
            nodes,
            inodes: Vec::new(),
            digests: Vec::new(),
            spool,
            sources: Vec::new(),
            epoch,
            step: 0,
            hidden_this_step: HashSet::new(),
            groups: 0,
        })
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Starts a new step (a layer, or the spec's injections).
    pub fn begin_step(&mut self) {
        self.step += 1;
        self.hidden_this_step.clear();
    }

    /// Copies exactly `expected` bytes (or fewer if the stream ends) into the spool, hashing them,
    /// and makes an inode of them. I/O errors are returned as the outer error.
    pub fn spool_file(
        &mut self,
        reader: &mut dyn Read,
        expected: u64,
        meta: Meta,
    ) -> io::Result<SpoolResult> {
        let offset = self.spool.len();
        // A big file is hashed on the second core while this one copies it.
        let mut hasher = StreamHasher::for_len(expected);
        let copied = self.spool.append(reader, &mut hasher)?;
        if copied != expected {
            return Ok(Err(copied));
        }
        self.inodes.push(Inode {
            meta,
            content: Content::Spool { offset },
            size: copied,
        });
        self.digests.push(hasher.finish());
        Ok(Ok(self.inodes.len() - 1))
    }

    /// Keeps a layer mapped in place for [`Tree::mapped_file`]; returns its source number.
    pub fn add_source(&mut self, name: &str, bytes: MappedBytes) -> u32 {
        self.sources.push((name.to_string(), bytes));
        u32::try_from(self.sources.len() - 1).expect("fewer than 2^32 layers")
    }

    /// Makes an inode of `size` bytes at `offset` of mapped source `source`; `Err(available)` when
    /// the source ends before. The bytes are not read here: [`Tree::hash_mapped_files`] hashes
    /// them later, beside the writing of the tar.
    pub fn mapped_file(
        &mut self,
        source: u32,
        offset: u64,
        size: u64,
        meta: Meta,
    ) -> Result<usize, u64> {
        let bytes = &self.sources[source as usize].1;
        let available = (bytes.len() as u64).saturating_sub(offset);
        if available < size {
            return Err(available);
        }
        self.inodes.push(Inode {
            meta,
            content: Content::Mapped { source, offset },
            size,
        });
        // Set by Tree::hash_mapped_files.
        self.digests.push(Digest::from_bytes([0; 32]));
        Ok(self.inodes.len() - 1)
    }

    /// Hashes every inode left in a mapped source into `digests` (the tree's own, taken out while
    /// this runs on one core and another writes the tar), in source order, with the pages given
    /// back as it goes ([`RELEASE_EVERY`]).
    pub fn hash_mapped_files(&self, digests: &mut [Digest]) {
        // Where in which source the pages were last given back: the distance walked counts, not
        // the bytes hashed (a million small files span a gigabyte of headers and padding).
        let mut released_at = (u32::MAX, 0);
        for (inode, digest) in self.inodes.iter().zip(digests) {
            let Content::Mapped { source, offset } = inode.content else {
                continue;
            };
            let bytes = &self.sources[source as usize].1;
            if released_at.0 != source || offset.abs_diff(released_at.1) >= RELEASE_EVERY {
                bytes.file().release();
                released_at = (source, offset);
            }
            // In bounds: checked when the inode was made (Tree::mapped_file).
            let content = bytes.slice(offset..offset + inode.size).expect("in bounds");
            *digest = if inode.size < RELEASE_EVERY {
                Digest::of(&content)
            } else {
                content.sha256() // gives the pages back as it goes
            };
        }
    }

    /// Gives back the resident pages of every layer mapped in place ([`MappedFile::release`]).
    ///
    /// [`MappedFile::release`]: icos_common::mapped::MappedFile::release
    pub fn release_sources(&self) {
        release_all(&self.sources);
    }

    /// Reads contents back for the output, in any order (fastest in the spool's own).
    pub fn content_reader(&self) -> ContentReader<'_> {
        ContentReader::new(&self.spool, &self.sources)
    }

    /// Fails if a layer mapped in place was written while it was used (the tripwire of
    /// [`icos_common::mapped`]): the output would not be the layers that were verified.
    pub fn check_sources_unchanged(&self) -> Result<(), (String, io::Error)> {
        for (name, bytes) in &self.sources {
            bytes
                .file()
                .check_unchanged()
                .map_err(|e| (name.clone(), e))?;
        }
        Ok(())
    }

    pub fn meta_of<'a>(&'a self, node: &'a Node) -> &'a Meta {
        match node.kind {
            Kind::File(inode) => &self.inodes[inode].meta,
            _ => &node.meta,
        }
    }

    /// Checks that every ancestor of `path` is a directory, creating missing ones (0755 0:0, mtime
    /// = SOURCE_DATE_EPOCH) when `create`. Returns false when an ancestor is missing and not created.
    ///
    /// The tree keeps every ancestor of a node as a directory (nodes are only added here and
    /// removed with their subtrees), so the walk goes up from the parent and stops at the first
    /// ancestor that exists: one lookup for an entry whose parent is there, whatever its depth
    /// (walking every ancestor made 10,000 nested directories quadratic).
    pub fn check_parents(&mut self, path: &str, create: bool) -> Result<bool, EntryProblem> {
        let mut missing = Vec::new();
        let mut ancestor = path;
        while !ancestor.is_empty() {
            ancestor = path::parent(ancestor);
            if ancestor.is_empty() {
                break; // the root is always a directory
            }
            match self.nodes.get(ancestor) {
                Some(Node {
                    kind: Kind::Dir, ..
                }) => break,
                Some(other) => {
                    return Err(EntryProblem::ParentNotDirectory {
                        parent: ancestor.to_string(),
                        kind: other.kind.describe(),
                    })
                }
                None if create => missing.push(ancestor),
                None => return Ok(false),
            }
        }
        for ancestor in missing {
            let node = Node {
                kind: Kind::Dir,
                meta: implicit_dir_meta(self.epoch),
                step: self.step,
                group: None,
            };
            self.nodes.insert(Box::from(ancestor), node);
        }
        Ok(true)
    }

    /// Writes `kind` at `path` in the current step, with layer semantics: a directory over a
    /// directory updates its attributes and keeps the children; anything else replaces the old
    /// entry and its whole subtree. One step must not write two different types to one path.
    pub fn put(&mut self, path: &str, kind: Kind, meta: Meta) -> Result<(), EntryProblem> {
        if path.is_empty() && kind != Kind::Dir {
            return Err(EntryProblem::RootNotDirectory {
                kind: kind.describe(),
            });
        }
        self.check_parents(path, true)?;
        let step = self.step;
        if let Some(existing) = self.nodes.get_mut(path) {
            if existing.step == step && !existing.kind.same_type(&kind) {
                return Err(EntryProblem::ConflictingTypes {
                    earlier: existing.kind.describe(),
                    later: kind.describe(),
                });
            }
            if existing.kind == Kind::Dir && kind != Kind::Dir {
                self.remove_subtree(path, false, None);
            }
        }
        let node = Node {
            kind,
            meta,
            step,
            group: None,
        };
        self.nodes.insert(Box::from(path), node);
        Ok(())
    }

    /// Writes `path` in the current step as another name of the non-directory at `target`: a
    /// regular file shares its inode; a symlink, device or fifo joins (or starts) `target`'s
    /// hardlink group. The caller checked that `target` exists and is not a directory.
    pub fn link(&mut self, path: &str, target: &str) -> Result<(), EntryProblem> {
        let source = &self.nodes[target];
        let (kind, meta) = (source.kind.clone(), source.meta.clone());
        let group = match (&kind, source.group) {
            (Kind::File(_), _) => None,
            (_, Some(group)) => Some(group),
            (_, None) => {
                let group = self.groups;
                self.groups += 1;
                self.nodes.get_mut(target).expect("checked above").group = Some(group);
                Some(group)
            }
        };
        self.put(path, kind, meta)?;
        self.nodes.get_mut(path).expect("just written").group = group;
        Ok(())
    }

    /// Applies `.wh.NAME` found in directory `dir`: deletes `dir/NAME` and its subtree as they were
    /// in lower steps (entries written by the current step survive, per the OCI spec).
    pub fn whiteout(&mut self, dir: &str, name: &str) -> Result<(), EntryProblem> {
        let what = match name {
            "" => Some("its own directory"),
            "." => Some("its own directory"),
            ".." => Some("the parent directory"),
            _ => None,
        };
        if let Some(what) = what {
            return Err(EntryProblem::InvalidWhiteout {
                name: format!(".wh.{name}"),
                what,
            });
        }
        let target = path::join(dir, name);
        if !self.check_parents(&target, false)? {
            return Ok(()); // nothing below a missing directory to delete
        }
        if !self.hidden_this_step.insert((false, target.clone())) {
            return Ok(());
        }
        let step = self.step;
        self.remove_subtree(&target, true, Some(step));
        Ok(())
    }

    /// Applies `.wh..wh..opq` in `dir`: the directory's children from lower steps disappear.
    pub fn opaque(&mut self, dir: &str) -> Result<(), EntryProblem> {
        if !dir.is_empty() {
            let mut probe = dir.to_string();
            probe.push_str("/.wh..wh..opq");
            if !self.check_parents(&probe, false)? {
                return Ok(());
            }
        }
        if !self.hidden_this_step.insert((true, dir.to_string())) {
            return Ok(());
        }
        let step = self.step;
        self.remove_subtree(dir, false, Some(step));
        Ok(())
    }

    /// Removes `root` (if `include_self`) and everything below it. With `keep_step`, entries
    /// written by that step survive, and so do the directories leading to them.
    pub fn remove_subtree(
        &mut self,
        root: &str,
        include_self: bool,
        keep_step: Option<u32>,
    ) -> usize {
        let descendants: Vec<Box<str>> = if root.is_empty() {
            self.nodes.keys().skip(1).cloned().collect()
        } else {
            self.nodes
                .range::<str, _>(children_range(root).as_bounds())
                .map(|(k, _)| k.clone())
                .collect()
        };
        let mut needed: BTreeSet<&str> = BTreeSet::new();
        let mut removed = 0;
        // Reverse sorted order visits every descendant of a path before the path itself.
        for key in descendants.iter().rev() {
            let keep = needed.contains(&**key)
                || keep_step.is_some_and(|s| self.nodes.get(key).is_some_and(|n| n.step == s));
            if keep {
                needed.insert(path::parent(key));
            } else {
                self.nodes.remove(key);
                removed += 1;
            }
        }
        if include_self && !root.is_empty() {
            let keep = needed.contains(root)
                || keep_step.is_some_and(|s| self.nodes.get(root).is_some_and(|n| n.step == s));
            if !keep && self.nodes.remove(root).is_some() {
                removed += 1;
            }
        }
        removed
    }

    pub fn has_children(&self, dir: &str) -> bool {
        if dir.is_empty() {
            return self.nodes.len() > 1;
        }
        self.nodes
            .range::<str, _>(children_range(dir).as_bounds())
            .next()
            .is_some()
    }
}

/// The keys below directory `dir` are exactly those in ["dir/", "dir0"): '0' follows '/' in ASCII.
struct ChildrenRange {
    low: String,
    high: String,
}

fn children_range(dir: &str) -> ChildrenRange {
    ChildrenRange {
        low: format!("{dir}/"),
        high: format!("{dir}0"),
    }
}

impl ChildrenRange {
    fn as_bounds(&self) -> (Bound<&str>, Bound<&str>) {
        (Bound::Included(&self.low), Bound::Excluded(&self.high))
    }
}

pub(crate) fn implicit_dir_meta(epoch: u64) -> Meta {
    Meta::new(0o755, 0, 0, epoch, Xattrs::new())
}
