//! dm-verity hash trees in cryptsetup's on-disk format, written and checked in pure Rust.
//!
//! Why by hand: no maintained crate writes veritysetup's layout (the superblock plus the tree
//! levels at their planned offsets), and the node side must check a hash partition without
//! `libcryptsetup` or device-mapper ioctls. The format is small and fixed here to one choice:
//! format (hash type) 1, sha256, 4096-byte data and hash blocks, the salt hashed before each block.
//!
//! Layout of a hash device, exactly as `veritysetup format` writes it:
//!
//! ```text
//! block 0            512-byte superblock ("verity\0\0", struct verity_sb), zeros to 4096
//! block 1 …          the top level (one block), then each lower level, down to level 0
//!                    (the digests of the data blocks); each level zero-padded to whole blocks
//! ```
//!
//! A hash block holds 128 digests `sha256(salt || child block)`; the root hash is
//! `sha256(salt || top-level block)` (for a one-block data device there is no tree and the root hash
//! is the digest of that block). The kernel's table names the tree's first block as
//! `hash_start_block` = [`HASH_START_BLOCK`] (the superblock occupies block 0).
//!
//! - Build side: [`build_hash_device`] (paths, atomic output, ids from the seed) over [`format`]
//!   (any reader and writer), one sequential pass over the data, memory independent of its size.
//! - Node side: [`Superblock::read_from`] parses untrusted bytes, [`root_hash_of_hash_device`] is
//!   the cheap "does this partition belong to that root hash" check, [`compute_root_hash`] streams
//!   the data only, and [`verify`] / [`verify_files`] recompute every level against the hash
//!   device and name the first damaged block. [`dm_table_line`] renders the kernel's table.

mod build;
mod error;
mod geometry;
mod hasher;
mod superblock;
mod table;
mod verify;

use std::fmt;
use std::str::FromStr;

pub use build::{build_hash_device, compute_root_hash, format, VerityParams};
pub use error::{Corruption, Error, SuperblockError};
pub use geometry::{Geometry, Level};
pub use superblock::Superblock;
pub use table::dm_table_line;
pub use verify::{root_hash_of_hash_device, same_file, verify, verify_files};

/// The schema name of the params report ([`VerityParams`]).
pub const PARAMS_SCHEMA: &str = "icos.verity-params/v1";
/// Data and hash block size, in bytes (the only one supported).
pub const BLOCK_SIZE: u32 = 4096;
/// The hash algorithm (the only one supported), as the superblock and the kernel table spell it.
pub const HASH_ALGORITHM: &str = "sha256";
/// Bytes per digest.
pub const DIGEST_SIZE: usize = 32;
/// Digests per hash block.
pub const DIGESTS_PER_BLOCK: u64 = (BLOCK_SIZE as u64) / (DIGEST_SIZE as u64);
/// Size of the on-disk superblock (`struct verity_sb`).
pub const SUPERBLOCK_SIZE: usize = 512;
/// The superblock version written and accepted.
pub const SUPERBLOCK_VERSION: u32 = 1;
/// Hash type 1: the salt is hashed before each block ("normal"; 0 is Chrome OS's salt-after).
pub const HASH_TYPE: u32 = 1;
/// The largest salt the superblock can hold.
pub const MAX_SALT_SIZE: usize = 256;
/// The first block of the tree on the hash device: the superblock occupies block 0.
pub const HASH_START_BLOCK: u64 = 1;

/// A root hash: the sha256 digest that the kernel command line carries.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RootHash(pub [u8; DIGEST_SIZE]);

impl RootHash {
    /// Parses 64 hexadecimal digits (either case).
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let mut out = [0u8; DIGEST_SIZE];
        if s.len() != 2 * DIGEST_SIZE || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(Error::Invalid(format!(
                "root hash {s:?} is not 64 hexadecimal digits (a sha256 digest)"
            )));
        }
        Ok(RootHash(out))
    }

    /// Lowercase hexadecimal, as veritysetup prints it and the kernel table takes it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for RootHash {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        RootHash::from_hex(s)
    }
}

impl fmt::Display for RootHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for RootHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootHash({})", self.to_hex())
    }
}

/// Progress of a pass over the data, in bytes.
pub trait Progress {
    /// Called once with the number of data bytes the pass reads, before it reads any.
    fn start(&mut self, _total_bytes: u64) {}
    fn advance(&mut self, _bytes: u64) {}
}

/// No progress reporting.
pub struct NoProgress;
impl Progress for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_hash_hex_round_trip_and_refusals() {
        let s = "00ff".repeat(16);
        let r = RootHash::from_hex(&s).unwrap();
        assert_eq!(r.to_hex(), s);
        assert_eq!(RootHash::from_hex(&s.to_uppercase()).unwrap(), r);
        for bad in ["", "00", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64)] {
            let e = RootHash::from_hex(bad).unwrap_err().to_string();
            assert!(e.contains("not 64 hexadecimal digits"), "{e}");
        }
    }
}
