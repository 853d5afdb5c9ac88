//! Orchestration: pass 1 (tree), geometry and plan, pass 2 (file data), then all metadata.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use icos_common::seed::{derive_uuid, format_uuid};

use crate::layout::{self, Demand, Geometry, GeometryError, Mapping, Plan, BLOCK_SIZE, INODE_SIZE};
use crate::le::u32_of;
use crate::superblock::{self, GroupStats, Info};
use crate::tree::{self, Kind, Tree, FAST_SYMLINK_MAX};
use crate::{
    dir, extent, inode, xattr, Error, Ext4Params, ImageSize, Options, Progress, FEATURES,
    PARAMS_SCHEMA,
};

const BS: usize = BLOCK_SIZE as usize;
/// Pass 2 copies file data in chunks of this size (a multiple of the block size).
const CHUNK: usize = 1 << 20;

fn is_zero(b: &[u8]) -> bool {
    // Word-wise OR: vectorizes, unlike an early-exit byte loop.
    b.chunks(64).all(|c| c.iter().fold(0u8, |a, &x| a | x) == 0)
}

/// Writes `data` (whole blocks) at block `block`, skipping all-zero blocks so the file stays sparse.
fn write_blocks(out: &File, block: u64, data: &[u8]) -> io::Result<()> {
    debug_assert_eq!(data.len() % BS, 0);
    let mut run_start: Option<usize> = None;
    for (i, b) in data.chunks(BS).enumerate() {
        match (is_zero(b), run_start) {
            (false, None) => run_start = Some(i),
            (true, Some(s)) => {
                out.write_all_at(&data[s * BS..i * BS], (block + s as u64) * BLOCK_SIZE)?;
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = run_start {
        out.write_all_at(&data[s * BS..], (block + s as u64) * BLOCK_SIZE)?;
    }
    Ok(())
}

/// Data blocks and xattr block each inode needs (index = inode number - 1).
fn demands(tree: &Tree, sharing: &xattr::Sharing) -> Vec<Demand> {
    tree.nodes
        .iter()
        .zip(&sharing.slot_of)
        .map(|(n, &xattr_slot)| {
            let data_blocks = match &n.kind {
                Kind::Dir {
                    children,
                    min_blocks,
                    ..
                } => dir::split(children, *min_blocks).len() as u64,
                Kind::File { size, .. } => size.div_ceil(BLOCK_SIZE),
                Kind::Symlink { target } if target.len() > FAST_SYMLINK_MAX => 1,
                _ => 0,
            };
            Demand {
                data_blocks,
                xattr_slot,
            }
        })
        .collect()
}

fn label_bytes(label: &str) -> Result<[u8; 16], Error> {
    if label.len() > 16 || label.contains('\0') {
        return Err(Error::Options(format!(
            "label {label:?} does not fit: an ext4 volume label is at most 16 bytes without NUL"
        )));
    }
    let mut b = [0u8; 16];
    b[..label.len()].copy_from_slice(label.as_bytes());
    Ok(b)
}

fn geometry_error(e: GeometryError, what: &str) -> Error {
    Error::Options(match e {
        GeometryError::NoRoom => format!("{what} cannot hold even the filesystem metadata: use a larger --size"),
        GeometryError::TooManyInodes { per_group } => format!(
            "{what} would need {per_group} inodes per block group, more than a group holds: use a larger --size \
             or fewer --inodes"
        ),
        GeometryError::TooManyGroups { groups } => format!(
            "{what} would have {groups} block groups, whose descriptors do not fit one group: use more blocks per group"
        ),
        GeometryError::InodesOver32Bits { inodes } => format!(
            "{what} would need {inodes} inodes, more than ext4's 4294967295: use fewer --inodes"
        ),
        GeometryError::Over16TiB => {
            format!("{what} is larger than 16 TiB, the limit of ext4 without the 64bit feature")
        }
    })
}

/// Chooses the geometry and plans every block.
fn layout(
    tree: &Tree,
    sharing: &xattr::Sharing,
    tar: &str,
    opts: &Options,
) -> Result<(Geometry, Plan, u64), Error> {
    let bpg = u64::from(opts.blocks_per_group);
    if !(1024..=layout::DEFAULT_BLOCKS_PER_GROUP).contains(&bpg) || !bpg.is_multiple_of(8) {
        return Err(Error::Options(format!(
            "blocks per group {bpg} is not a multiple of 8 between 1024 and {}",
            layout::DEFAULT_BLOCKS_PER_GROUP
        )));
    }
    let needed_inodes = tree.nodes.len() as u64;
    let (min_inodes, explicit) = match opts.inodes {
        Some(n) if n < needed_inodes => {
            return Err(Error::Options(format!(
                "--inodes {n} is too few: {tar} needs {needed_inodes} (including the 11 reserved ones)"
            )));
        }
        Some(n) if n > u64::from(u32::MAX) => {
            return Err(Error::Options(format!(
                "--inodes {n} is more than an ext4 filesystem holds (4294967295)"
            )));
        }
        Some(n) => (n, true),
        None => (needed_inodes, false),
    };
    let demands = demands(tree, sharing);
    // The minimum (and the auto size built on it) takes a few dozen trial plans: only computed
    // when needed.
    let min_blocks = || {
        layout::min_blocks(&demands, bpg, min_inodes, explicit)
            .map_err(|e| geometry_error(e, &format!("the content of {tar}")))
    };
    let size = match opts.size {
        ImageSize::Bytes(b) if b % BLOCK_SIZE != 0 => {
            return Err(Error::Options(format!(
                "size {b} bytes is not a multiple of 4 KiB (the block size): use e.g. {}",
                b.div_ceil(BLOCK_SIZE) * BLOCK_SIZE
            )));
        }
        ImageSize::Bytes(b) => b,
        ImageSize::Auto => layout::auto_size_bytes(min_blocks()?),
    };
    let too_small = || -> Error {
        match min_blocks() {
            Err(e) => e,
            Ok(min) => Error::TooSmall {
                tar: tar.to_string(),
                size,
                needed: min * BLOCK_SIZE,
                needed_mib: (min * BLOCK_SIZE).div_ceil(1 << 20),
                auto: layout::auto_size_bytes(min),
            },
        }
    };
    let mut blocks = size / BLOCK_SIZE;
    loop {
        match Geometry::new(blocks, bpg, min_inodes, explicit) {
            Ok(geo) => {
                let plan = layout::plan(&geo, &demands);
                if plan.overflow == 0 {
                    return Ok((geo, plan, blocks * BLOCK_SIZE));
                }
            }
            // Too little room, or too few groups for the inodes: a larger size fixes both.
            Err(GeometryError::NoRoom | GeometryError::TooManyInodes { .. }) => {}
            Err(e) => return Err(geometry_error(e, &format!("an image of {size} bytes"))),
        }
        if opts.size != ImageSize::Auto {
            return Err(too_small());
        }
        // The auto headroom covers the larger inode tables of the larger size in practice;
        // should it not, grow by 1 MiB steps (still a pure function of the content).
        blocks += 256;
    }
}

/// Pass 2: copies every regular file's data from the tar to its planned blocks.
fn copy_data<R: Read + Seek>(
    tree: &Tree,
    plan: &Plan,
    input: &mut R,
    tar: &str,
    out: &File,
    out_name: &str,
    progress: &mut dyn Progress,
) -> Result<(), Error> {
    let mut buf = vec![0u8; CHUNK];
    let mut pos: Option<u64> = None;
    for (node, map) in tree.nodes.iter().zip(&plan.maps) {
        let Kind::File { size, data_pos } = node.kind else {
            continue;
        };
        if size == 0 {
            continue;
        }
        let read_err = |e: io::Error| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::Entry {
                    tar: tar.to_string(),
                    entry: node.entry.to_string(),
                    reason: format!("its {size} bytes of data are cut short: the tar is truncated"),
                }
            } else {
                Error::ReadTar {
                    tar: tar.to_string(),
                    source: e,
                }
            }
        };
        if pos != Some(data_pos) {
            input.seek(SeekFrom::Start(data_pos)).map_err(read_err)?;
        }
        let mut left = size;
        for e in &map.extents {
            let mut done = 0u64; // bytes of this extent written
            let extent_bytes = (u64::from(e.len) * BLOCK_SIZE).min(left);
            while done < extent_bytes {
                let n = (extent_bytes - done).min(CHUNK as u64) as usize;
                input.read_exact(&mut buf[..n]).map_err(read_err)?;
                let padded = n.div_ceil(BS) * BS;
                buf[n..padded].fill(0);
                write_blocks(out, e.start + done / BLOCK_SIZE, &buf[..padded]).map_err(
                    |source| Error::Write {
                        out: out_name.to_string(),
                        source,
                    },
                )?;
                done += n as u64;
                progress.advance(n as u64);
            }
            left -= extent_bytes;
        }
        pos = Some(data_pos + size);
    }
    Ok(())
}

pub fn write_image<R: Read + Seek>(
    input: R,
    tar: &str,
    out: &File,
    out_name: &str,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Ext4Params, Error> {
    let label = label_bytes(&opts.label)?;
    let sde = u32::try_from(opts.source_date_epoch.seconds()).map_err(|_| {
        Error::Options(format!(
            "SOURCE_DATE_EPOCH {} is beyond 2106-02-07, the last second ext4's 32-bit times hold",
            opts.source_date_epoch
        ))
    })?;
    let (tree, mut input) = tree::read_tree(input, tar, sde)?;
    let sharing = xattr::share(tree.nodes.iter().map(|n| n.xattrs.as_slice()));
    let (geo, plan, size_bytes) = layout(&tree, &sharing, tar, opts)?;
    let werr = |source| Error::Write {
        out: out_name.to_string(),
        source,
    };

    out.set_len(size_bytes).map_err(werr)?;
    progress.start(tree.data_bytes);
    copy_data(&tree, &plan, &mut input, tar, out, out_name, progress)?;

    // Inode tables, and with them extent-tree, directory, symlink and xattr blocks.
    let used_inodes = tree.nodes.len() as u64;
    let mut stats = vec![GroupStats::default(); geo.groups as usize];
    let mut table = vec![0u8; BS];
    let mut xattr_written = vec![false; sharing.refcount.len()];
    for g in 0..geo.groups {
        let first = g * geo.inodes_per_group; // index of the group's first inode
        let last = (first + geo.inodes_per_group).min(used_inodes);
        stats[g as usize].free_inodes = geo.inodes_per_group - last.saturating_sub(first);
        if first >= last {
            continue;
        }
        for tblock in 0..(last - first).div_ceil(BS as u64 / INODE_SIZE) {
            table.fill(0);
            for slot in 0..(BS as u64 / INODE_SIZE) {
                let idx = first + tblock * (BS as u64 / INODE_SIZE) + slot;
                if idx >= last {
                    break;
                }
                let ino = u32_of(idx + 1, "inode numbers are checked in tree");
                let node = &tree.nodes[idx as usize];
                let map = &plan.maps[idx as usize];
                if node.is_dir() {
                    stats[g as usize].used_dirs += 1;
                }
                // A shared xattr block is written by its first user (allocation is in inode
                // order, so that is where it was allocated).
                if let (Some(blk), Some(slot)) = (map.xattr_block, sharing.slot_of[idx as usize]) {
                    if !xattr_written[slot as usize] {
                        let refs = sharing.refcount[slot as usize];
                        write_blocks(out, blk, &xattr::block(&node.xattrs, refs)).map_err(werr)?;
                        xattr_written[slot as usize] = true;
                    }
                }
                let root = write_inode_blocks(&tree, ino, map, out).map_err(werr)?;
                let at = (slot * INODE_SIZE) as usize;
                inode::render(
                    node,
                    map,
                    root.as_ref(),
                    &mut table[at..at + INODE_SIZE as usize],
                );
            }
            write_blocks(out, geo.inode_table(g) + tblock, &table).map_err(werr)?;
        }
    }

    // Bitmaps: metadata and the allocated prefix of each group's data area are in use.
    let cursor_group = (plan.cursor.saturating_sub(1)) / geo.blocks_per_group;
    let mut used_blocks = 0u64;
    let mut bitmap = vec![0u8; BS];
    for g in 0..geo.groups {
        let used_data = if g < cursor_group {
            geo.group_end(g) - geo.first_data_block(g)
        } else if g == cursor_group {
            plan.cursor - geo.first_data_block(g)
        } else {
            0
        };
        let used = geo.meta_blocks(g) + used_data;
        used_blocks += used;
        stats[g as usize].free_blocks = geo.group_len(g) - used;
        // Bits past the group's end are set, as e2fsck and the kernel expect.
        fill_bitmap(&mut bitmap, used, geo.group_len(g));
        write_blocks(out, geo.block_bitmap(g), &bitmap).map_err(werr)?;
        let first = g * geo.inodes_per_group;
        let used_in_group = used_inodes.saturating_sub(first).min(geo.inodes_per_group);
        fill_bitmap(&mut bitmap, used_in_group, geo.inodes_per_group);
        write_blocks(out, geo.inode_bitmap(g), &bitmap).map_err(werr)?;
    }

    let uuid = derive_uuid(&opts.seed, &format!("ext4:uuid:{}", opts.label));
    let hash_seed = derive_uuid(&opts.seed, &format!("ext4:hash_seed:{}", opts.label));
    let info = Info {
        free_blocks: geo.blocks_count - used_blocks,
        free_inodes: geo.inodes_count() - used_inodes,
        uuid,
        hash_seed,
        label,
        time: sde,
    };
    let gdt = superblock::descriptors(&geo, &stats);
    for g in (0..geo.groups).filter(|g| layout::has_super(*g)) {
        let mut first = vec![0u8; BS];
        let sb = superblock::superblock(&geo, &info, g);
        // Group 0's superblock sits 1024 bytes into block 0 (after the boot sector); backups start their block.
        let at = if g == 0 { 1024 } else { 0 };
        first[at..at + 1024].copy_from_slice(&sb);
        write_blocks(out, geo.group_start(g), &first).map_err(werr)?;
        write_blocks(out, geo.group_start(g) + 1, &gdt).map_err(werr)?;
    }

    Ok(Ext4Params {
        schema: PARAMS_SCHEMA.to_string(),
        uuid: format_uuid(&uuid),
        hash_seed: format_uuid(&hash_seed),
        label: opts.label.clone(),
        block_size: u32_of(BLOCK_SIZE, "a constant"),
        size_bytes,
        blocks_count: geo.blocks_count,
        free_blocks: info.free_blocks,
        inodes_count: geo.inodes_count(),
        free_inodes: info.free_inodes,
        inode_size: u32_of(INODE_SIZE, "a constant"),
        features: FEATURES.iter().map(|f| f.to_string()).collect(),
        source_date_epoch: opts.source_date_epoch.seconds(),
    })
}

/// Sets the first `used` bits, clears the rest up to `len`, and sets every bit after `len`.
fn fill_bitmap(b: &mut [u8], used: u64, len: u64) {
    b.fill(0);
    for bit in (0..used).chain(len..(b.len() as u64 * 8)) {
        b[(bit / 8) as usize] |= 1 << (bit % 8);
    }
}

/// Writes the blocks an inode owns besides file data and its xattr block; returns the extent
/// root for mapped inodes.
fn write_inode_blocks(
    tree: &Tree,
    ino: u32,
    map: &Mapping,
    out: &File,
) -> io::Result<Option<[u8; 60]>> {
    let node = tree.node(ino);
    let mapped = match &node.kind {
        Kind::File { .. } | Kind::Dir { .. } => true,
        Kind::Symlink { target } => target.len() > FAST_SYMLINK_MAX,
        _ => false,
    };
    if !mapped {
        return Ok(None);
    }
    let t = extent::build(&map.extents, &map.tree);
    for (blk, data) in &t.blocks {
        write_blocks(out, *blk, data)?;
    }
    match &node.kind {
        Kind::Dir {
            parent,
            children,
            min_blocks,
            ..
        } => {
            let starts = dir::split(children, *min_blocks);
            let mut blocks = map
                .extents
                .iter()
                .flat_map(|e| e.start..e.start + u64::from(e.len));
            for i in 0..starts.len() {
                let blk = blocks
                    .next()
                    .expect("planned one block per directory block");
                write_blocks(
                    out,
                    blk,
                    &dir::render(tree, ino, *parent, children, &starts, i),
                )?;
            }
        }
        Kind::Symlink { target } => {
            let mut b = vec![0u8; BS];
            b[..target.len()].copy_from_slice(target);
            write_blocks(out, map.extents[0].start, &b)?;
        }
        _ => {}
    }
    Ok(Some(t.root))
}
