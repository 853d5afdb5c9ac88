//! Opening the verified root: the slot whose hash partition belongs to the root hash the kernel
//! command line carries, mapped read-only through dm-verity.
//!
//! The command line names no partition. Every data partition `X` with a hash partition `X_verity`
//! is a candidate; the slot is the one whose hash partition's top block hashes (salted) to the
//! trusted root hash. So one UKI boots whichever slot holds its image, and an update package needs
//! no slot-specific boot artifact. The hash partition's superblock is not trusted beyond finding
//! the tree: any change to it changes the tree's shape or salt, and with it the root hash.

use std::fs::File;
use std::path::PathBuf;

use icos_verity::{dm_table_line, root_hash_of_hash_device, RootHash, Superblock};

use crate::block::Partition;
use crate::dm::{Control, Device, DmError, Target};

/// Suffix of a hash partition's name: `root_a` is verified by `root_a_verity`.
pub const HASH_SUFFIX: &str = "_verity";

/// A data partition and the hash partition that belongs to a root hash.
#[derive(Clone, Debug)]
pub struct Slot {
    pub data: Partition,
    pub hash: Partition,
    pub superblock: Superblock,
}

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("no partition pair X / X{HASH_SUFFIX} belongs to root hash {root_hash} (looked at: {looked})")]
    NoSlot { root_hash: String, looked: String },
    #[error(transparent)]
    Dm(#[from] DmError),
    #[error("{0}")]
    Verity(#[from] icos_verity::Error),
}

/// What was found on one candidate pair, for the error message when none matches.
fn describe(data: &Partition, hash: &Partition, outcome: &str) -> String {
    format!("{}+{}: {outcome}", data.name, hash.name)
}

/// The first slot (in device order) whose hash partition belongs to `root_hash`.
pub fn find_slot(parts: &[Partition], root_hash: &RootHash) -> Result<Slot, RootError> {
    let mut looked = Vec::new();
    for hash in parts.iter().filter(|p| p.name.ends_with(HASH_SUFFIX)) {
        let data_name = &hash.name[..hash.name.len() - HASH_SUFFIX.len()];
        let Some(data) = parts.iter().find(|p| p.name == data_name) else {
            looked.push(format!("{}: no partition {data_name}", hash.name));
            continue;
        };
        match check_pair(data, hash, root_hash) {
            Ok(superblock) => {
                return Ok(Slot {
                    data: data.clone(),
                    hash: hash.clone(),
                    superblock,
                })
            }
            Err(outcome) => looked.push(describe(data, hash, &outcome)),
        }
    }
    Err(RootError::NoSlot {
        root_hash: root_hash.to_hex(),
        looked: if looked.is_empty() {
            "no partition named *_verity".into()
        } else {
            looked.join("; ")
        },
    })
}

fn check_pair(
    data: &Partition,
    hash: &Partition,
    root_hash: &RootHash,
) -> Result<Superblock, String> {
    let mut dev =
        File::open(&hash.node).map_err(|e| format!("cannot open {}: {e}", hash.node.display()))?;
    let sb = Superblock::read_from(&mut dev).map_err(|e| e.to_string())?;
    sb.check_data_size(data.size).map_err(|e| e.to_string())?;
    let found = root_hash_of_hash_device(&mut dev, &sb).map_err(|e| e.to_string())?;
    if &found == root_hash {
        Ok(sb)
    } else {
        Err(format!("belongs to root hash {}", found.to_hex()))
    }
}

/// Maps `slot` read-only through dm-verity as device `name`; `opt_args` are dm-verity's optional
/// parameters (none: reads of corrupted blocks fail with EIO).
pub fn open(
    control: &Control,
    name: &str,
    slot: &Slot,
    root_hash: &RootHash,
    opt_args: &[&str],
) -> Result<Device, RootError> {
    let devno = |p: &Partition| format!("{}:{}", p.major, p.minor);
    let line = dm_table_line(
        &slot.superblock,
        root_hash,
        &devno(&slot.data),
        &devno(&slot.hash),
        opt_args,
    )?;
    let mut words = line.splitn(4, ' ');
    let (Some(start), Some(length), Some(target), Some(params)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        unreachable!("dm_table_line renders start, length, target and parameters");
    };
    let table = [Target {
        start: start.parse().expect("a number"),
        length: length.parse().expect("a number"),
        target: target.to_string(),
        params: params.to_string(),
    }];
    Ok(control.create_readonly(name, &table)?)
}

/// Where the mapped device's node goes: `/dev/mapper/NAME`.
pub fn mapper_node(name: &str) -> PathBuf {
    PathBuf::from("/dev/mapper").join(name)
}
