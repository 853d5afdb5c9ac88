use std::fmt;
use std::io;

use crate::{RootHash, BLOCK_SIZE, MAX_SALT_SIZE, SUPERBLOCK_SIZE};

/// Why a superblock (or the devices it describes) is refused. Each names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuperblockError {
    #[error("truncated: {len} bytes, a dm-verity superblock has {SUPERBLOCK_SIZE}")]
    Truncated { len: u64 },
    #[error("no dm-verity superblock: the magic is {found}, expected \"verity\\0\\0\"")]
    Magic { found: String },
    #[error("superblock version {0} is not supported (only 1)")]
    Version(u32),
    #[error("hash type {0} is not supported (only 1, salt before data; 0 is Chrome OS's format)")]
    HashType(u32),
    #[error("hash algorithm {0:?} is not supported (only \"sha256\")")]
    Algorithm(String),
    #[error("data block size {0} is not supported (only {BLOCK_SIZE})")]
    DataBlockSize(u32),
    #[error("hash block size {0} is not supported (only {BLOCK_SIZE})")]
    HashBlockSize(u32),
    #[error("salt size {0} exceeds the maximum of {MAX_SALT_SIZE} bytes")]
    SaltSize(usize),
    #[error("data_blocks is 0: a hash tree covers at least one data block")]
    NoDataBlocks,
    #[error("data_blocks {0} is too large: the data would not fit in 2^64 bytes")]
    TooManyDataBlocks(u64),
    #[error("{field} (bytes {start}..{end}) must be zero and is not")]
    NonZero {
        field: &'static str,
        start: usize,
        end: usize,
    },
    #[error(
        "data_blocks is {data_blocks} ({needed} bytes) but the data device has only {size} bytes"
    )]
    DataDeviceTooSmall {
        data_blocks: u64,
        needed: u64,
        size: u64,
    },
    #[error(
        "the hash device has {size} bytes but the tree for {data_blocks} data blocks needs {needed}: \
         it is truncated or belongs to a larger image"
    )]
    HashDeviceTooSmall {
        data_blocks: u64,
        needed: u64,
        size: u64,
    },
}

/// The most significant damaged block a verification found (see [`crate::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// The top of the tree does not hash to the expected root hash: the hash device belongs to
    /// another image, the root hash is wrong, or the top-level block (or the salt) is damaged.
    RootHash {
        expected: RootHash,
        actual: RootHash,
        /// True when there is no tree (one data block): the root hash is that block's digest.
        of_data_block: bool,
    },
    /// A stored hash block does not match its digest one level up (which itself matched).
    HashBlock {
        /// Tree level, 0 = the digests of the data blocks.
        level: usize,
        /// Index of the block within its level.
        index: u64,
        /// Block number on the hash device (the superblock is block 0).
        block: u64,
    },
    /// A data block does not match its digest in level 0 (which itself matched).
    DataBlock {
        index: u64,
        /// The level-0 hash block holding its digest, as a hash device block number.
        hash_block: u64,
    },
}

impl Corruption {
    /// Higher is closer to the root: the highest mismatch explains the ones below it.
    pub(crate) fn rank(&self) -> usize {
        match self {
            Corruption::RootHash { .. } => usize::MAX,
            Corruption::HashBlock { level, .. } => level + 1,
            Corruption::DataBlock { .. } => 0,
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bs = BLOCK_SIZE as u64;
        match self {
            Corruption::RootHash {
                expected,
                actual,
                of_data_block,
            } => write!(
                f,
                "root hash mismatch: expected {expected}, {} hashes to {actual} (a hash device of \
                 another image, a wrong root hash, or a damaged {})",
                if *of_data_block {
                    "the only data block"
                } else {
                    "the hash device's top-level block"
                },
                if *of_data_block {
                    "data block"
                } else {
                    "top-level block or salt"
                },
            ),
            Corruption::HashBlock {
                level,
                index,
                block,
            } => write!(
                f,
                "hash block {block} of the hash device (bytes {}..{}, level {level} block {index}) \
                 does not match its digest in level {}",
                block * bs,
                (block + 1) * bs,
                level + 1
            ),
            Corruption::DataBlock { index, hash_block } => write!(
                f,
                "data block {index} (bytes {}..{} of the data device) does not match its digest in \
                 hash block {hash_block} (level 0)",
                index * bs,
                (index + 1) * bs
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{device}: invalid dm-verity superblock: {source}")]
    Superblock {
        device: String,
        #[source]
        source: SuperblockError,
    },
    #[error("cannot read {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {name}: {source}")]
    Write {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{name} is {size} bytes, not a positive multiple of {BLOCK_SIZE}: dm-verity hashes whole \
         4 KiB blocks (pad the image to a 4 KiB multiple; icos-ext4 images always are)"
    )]
    DataSize { name: String, size: u64 },
    #[error(
        "{data} has {size} bytes, but the superblock of {hash} covers {data_blocks} data blocks \
         ({needed} bytes): the data is truncated or the hash device belongs to a larger image"
    )]
    DataTooSmall {
        data: String,
        hash: String,
        data_blocks: u64,
        needed: u64,
        size: u64,
    },
    #[error("{name} ends after {read} bytes, but the hash tree covers {needed} bytes")]
    ShortData {
        name: String,
        read: u64,
        needed: u64,
    },
    #[error("the output {output} is the input {input}: write the hash device to another file")]
    SameFile { input: String, output: String },
    #[error(
        "a one-block data device has no hash tree: its root hash is the digest of the data block \
         itself, so only the data can be checked against it (use verify)"
    )]
    NoHashTree,
    #[error("{data} and {hash} do not verify: {first}{}", more_text(*.more))]
    Corrupt {
        data: String,
        hash: String,
        /// The mismatch closest to the root; it explains the mismatches below it.
        first: Box<Corruption>,
        /// How many other mismatches the pass saw (often consequences of `first`).
        more: u64,
    },
    #[error("{0}")]
    Invalid(String),
}

fn more_text(more: u64) -> String {
    match more {
        0 => String::new(),
        1 => "; 1 other block mismatches too".to_string(),
        n => format!("; {n} other blocks mismatch too"),
    }
}
