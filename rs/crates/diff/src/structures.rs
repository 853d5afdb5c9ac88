//! The ext4 structures the differing bytes of a region fall in: one entry per structure (the
//! superblock, a group descriptor, a bitmap, an inode, the data blocks of one owner), with the
//! fields or blocks that differ, named down to the file with [`Ext4Map`].

use std::collections::{BTreeMap, BTreeSet};

use crate::ext4::locate_span;
use crate::ext4map::{Ext4Map, Owner, Role};

/// How many distinct differing data blocks are told apart (the rest are counted).
pub const MAX_DATA_BLOCKS: usize = 100_000;
/// How many other distinct structures (fields of inodes, descriptors, …) are told apart.
pub const MAX_UNITS: usize = 10_000;
/// How many ranges of blocks one structure lists.
const MAX_RANGES: usize = 8;

/// Differing data blocks: block → (region offset of the first differing byte, differing bytes).
pub type DataBlocks = BTreeMap<u64, (u64, u64)>;

/// What [`locate_runs`] found.
pub struct Located {
    /// Every structure but data blocks.
    pub structures: Vec<Structure>,
    pub data: DataBlocks,
    /// Differing bytes past the first [`MAX_DATA_BLOCKS`] data blocks or [`MAX_UNITS`] other
    /// structures, counted but not told apart.
    pub dropped: u64,
}

/// A differing ext4 structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Structure {
    /// `superblock`, `group_descriptors`, `inode_table`, `data_block`, …
    pub structure: String,
    pub group: Option<u64>,
    pub inode: Option<u64>,
    pub fields: Vec<String>,
    /// `[first, last]` block ranges (data blocks and bitmaps), the first [`MAX_RANGES`].
    pub blocks: Vec<[u64; 2]>,
    pub path: Option<String>,
    pub path_b: Option<String>,
    pub role: Option<Role>,
    /// Region offset of the first differing byte, and how many bytes differ.
    pub first: u64,
    pub bytes: u64,
    pub description: String,
}

/// Differing bytes of one structure, before the owners of data blocks are known.
#[derive(Default)]
struct Unit {
    structure: String,
    name: String,
    group: Option<u64>,
    inode: Option<u64>,
    fields: BTreeSet<String>,
    blocks: BTreeSet<u64>,
    first: u64,
    bytes: u64,
}

/// The structures of the filesystem whose first bytes are `head` that the differing `runs`
/// (region offsets) touch; `None` when `head` is not ext4. Data blocks are listed one by one
/// for [`name_structures`] to group by owner.
pub fn locate_runs(head: &[u8], runs: &[(u64, u64)]) -> Option<Located> {
    let mut units: BTreeMap<(String, String), Unit> = BTreeMap::new();
    let mut data = DataBlocks::new();
    let mut data_dropped = 0u64;
    for &(start, end) in runs {
        let mut off = start;
        while off < end {
            let (loc, unit_end) = locate_span(head, off)?;
            let stop = end.min(unit_end).max(off + 1);
            let n = stop - off;
            if loc.structure == "data_block" {
                let b = loc.block.expect("data blocks have a number");
                let room = data.len() < MAX_DATA_BLOCKS;
                match data.get_mut(&b) {
                    Some(d) => d.1 += n,
                    None if room => {
                        data.insert(b, (off, n));
                    }
                    None => data_dropped += n,
                }
                off = stop;
                continue;
            }
            // The unit's name: its description without the field.
            let name = match &loc.field {
                Some(f) => loc
                    .description
                    .strip_suffix(&format!(" ({f})"))
                    .unwrap_or(&loc.description)
                    .to_string(),
                None => loc.description.clone(),
            };
            let name = match loc.inode {
                Some(i) => format!("inode {i}"),
                None => name,
            };
            let key = (loc.structure.clone(), name.clone());
            if units.len() >= MAX_UNITS && !units.contains_key(&key) {
                data_dropped += n;
                off = stop;
                continue;
            }
            let u = units.entry(key).or_insert_with(|| Unit {
                structure: loc.structure.clone(),
                name,
                group: loc.group,
                inode: loc.inode,
                first: off,
                ..Unit::default()
            });
            u.bytes += n;
            if let (Some(b), true) = (loc.block, loc.field.is_none() && loc.inode.is_none()) {
                u.blocks.insert(b);
            }
            if let Some(f) = loc.field {
                u.fields.insert(f);
            }
            off = stop;
        }
    }
    let structures = units
        .into_values()
        .map(|u| Structure {
            description: describe(&u.name, &u.fields, None),
            structure: u.structure,
            group: u.group,
            inode: u.inode,
            fields: u.fields.into_iter().collect(),
            blocks: ranges(&u.blocks),
            path: None,
            path_b: None,
            role: None,
            first: u.first,
            bytes: u.bytes,
        })
        .collect();
    Some(Located {
        structures,
        data,
        dropped: data_dropped,
    })
}

fn describe(name: &str, fields: &BTreeSet<String>, path: Option<&str>) -> String {
    let name = match path {
        Some(p) => format!("{name} ({p})"),
        None => name.to_string(),
    };
    match fields.len() {
        0 => format!("{name} differs"),
        1 => format!("{name}: {} differs", fields.iter().next().expect("one")),
        _ => format!(
            "{name}: {} differ",
            fields.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Consecutive blocks as `[first, last]` ranges, the first [`MAX_RANGES`].
fn ranges(blocks: &BTreeSet<u64>) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    for &b in blocks {
        let full = out.len() == MAX_RANGES;
        match out.last_mut() {
            Some(r) if r[1] + 1 == b => r[1] = b,
            _ if full => break,
            _ => out.push([b, b]),
        }
    }
    out
}

fn ranges_text(r: &[[u64; 2]], count: u64) -> String {
    let parts: Vec<String> = r
        .iter()
        .map(|[a, b]| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let listed: u64 = r.iter().map(|[a, b]| b - a + 1).sum();
    let more = if listed < count { ", …" } else { "" };
    if count == 1 {
        format!("data block {}", parts.join(", "))
    } else {
        format!("data blocks {}{more} ({count} blocks)", parts.join(", "))
    }
}

/// The path of `inode`, or what it is when it has none.
fn label(inode: u64, map: &Ext4Map) -> String {
    match (map.path(inode), Ext4Map::reserved(inode)) {
        (Some(p), _) => p,
        (None, Some(r)) => format!("{r} (inode {inode})"),
        (None, None) => format!("inode {inode} (no directory names it)"),
    }
}

fn owner_text(o: Option<Owner>, map: Option<&Ext4Map>) -> Option<String> {
    let map = map?;
    Some(match o {
        None => "free space: no inode maps it".to_string(),
        Some(o) => format!("{}: {}", label(o.inode, map), o.role.describe()),
    })
}

/// Names inodes by their paths and groups the differing data blocks by owner, in A and in B.
pub fn name_structures(
    mut structures: Vec<Structure>,
    data: &DataBlocks,
    map_a: Option<&Ext4Map>,
    map_b: Option<&Ext4Map>,
) -> Vec<Structure> {
    for s in &mut structures {
        if let Some(i) = s.inode {
            let pa = map_a.and_then(|m| m.path(i));
            let pb = map_b.and_then(|m| m.path(i));
            let fields: BTreeSet<String> = s.fields.iter().cloned().collect();
            let what = pa.as_deref().or(Ext4Map::reserved(i));
            s.description = describe(&format!("inode {i}"), &fields, what);
            if pb.is_some() && pb != pa {
                s.description = format!(
                    "{} (in B: {})",
                    s.description,
                    pb.as_deref().unwrap_or("no name")
                );
                s.path_b = pb;
            }
            s.path = pa;
        }
    }
    // data blocks by (owner in A, owner in B): (blocks, first offset, bytes)
    type Owners = (Option<Owner>, Option<Owner>);
    let mut by_owner: BTreeMap<Owners, (BTreeSet<u64>, u64, u64)> = BTreeMap::new();
    for (&b, &(first, bytes)) in data {
        let key = (
            map_a.and_then(|m| m.owner(b)),
            map_b.and_then(|m| m.owner(b)),
        );
        let e = by_owner
            .entry(key)
            .or_insert_with(|| (BTreeSet::new(), first, 0));
        e.0.insert(b);
        e.1 = e.1.min(first);
        e.2 += bytes;
    }
    for ((oa, ob), (blocks, first, bytes)) in by_owner {
        let r = ranges(&blocks);
        let ta = owner_text(oa, map_a);
        let tb = owner_text(ob, map_b);
        let whose = match (&ta, &tb) {
            (Some(a), Some(b)) if a != b => format!(" ({a}; in B: {b})"),
            (Some(a), _) => format!(" ({a})"),
            (None, _) => " (owner not mapped)".to_string(),
        };
        let verb = if blocks.len() == 1 {
            "differs"
        } else {
            "differ"
        };
        structures.push(Structure {
            structure: "data_block".into(),
            group: None,
            inode: oa.map(|o| o.inode),
            fields: Vec::new(),
            description: format!("{}{whose} {verb}", ranges_text(&r, blocks.len() as u64)),
            blocks: r,
            path: oa.and_then(|o| map_a.and_then(|m| m.path(o.inode))),
            path_b: ob
                .filter(|b| Some(*b) != oa)
                .and_then(|o| map_b.and_then(|m| m.path(o.inode))),
            role: oa.or(ob).map(|o| o.role),
            first,
            bytes,
        });
    }
    structures.sort_by_key(|s| s.first);
    structures
}
