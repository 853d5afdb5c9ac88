//! The 512-byte superblock at the start of the hash device (cryptsetup's `struct verity_sb`,
//! little-endian, packed):
//!
//! ```text
//!   0  signature[8]      "verity\0\0"
//!   8  version u32       1
//!  12  hash_type u32     1
//!  16  uuid[16]          as printed (big-endian fields)
//!  32  algorithm[32]     "sha256", NUL-padded
//!  64  data_block_size u32, 68 hash_block_size u32
//!  72  data_blocks u64
//!  80  salt_size u16, 82 _pad1[6]
//!  88  salt[256]         salt_size bytes, then zeros
//! 344  _pad2[168]
//! ```

use std::io::{Read, Seek, SeekFrom};

use icos_common::seed::{format_uuid, verity_salt, verity_uuid};

use crate::error::{Error, SuperblockError};
use crate::geometry::Geometry;
use crate::{
    BLOCK_SIZE, HASH_ALGORITHM, HASH_TYPE, MAX_SALT_SIZE, SUPERBLOCK_SIZE, SUPERBLOCK_VERSION,
};

const MAGIC: &[u8; 8] = b"verity\0\0";
const ALGORITHM_FIELD: std::ops::Range<usize> = 32..64;
const SALT_FIELD_START: usize = 88;
const PAD2_START: usize = SALT_FIELD_START + MAX_SALT_SIZE;
/// The largest data device whose size in bytes fits in a u64.
const MAX_DATA_BLOCKS: u64 = u64::MAX / BLOCK_SIZE as u64;

/// What a hash device's superblock records. Algorithm, hash type and block sizes are fixed
/// (sha256, 1, 4096), so only these vary; the constructor and the parser keep every field in range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    uuid: [u8; 16],
    salt: Vec<u8>,
    data_blocks: u64,
}

impl Superblock {
    pub fn new(uuid: [u8; 16], salt: &[u8], data_blocks: u64) -> Result<Self, SuperblockError> {
        if salt.len() > MAX_SALT_SIZE {
            return Err(SuperblockError::SaltSize(salt.len()));
        }
        check_data_blocks(data_blocks)?;
        Ok(Superblock {
            uuid,
            salt: salt.to_vec(),
            data_blocks,
        })
    }

    /// The superblock of the tree labelled `label`: salt and UUID from the seed (purposes
    /// `verity:salt:<label>` and `verity:uuid:<label>`). A label is 1–64 bytes of
    /// `[A-Za-z0-9._-]`, so purposes stay unambiguous.
    pub fn from_seed(seed: &str, label: &str, data_blocks: u64) -> Result<Self, Error> {
        check_label(label)?;
        Superblock::new(
            verity_uuid(seed, label),
            &verity_salt(seed, label),
            data_blocks,
        )
        .map_err(|source| Error::Superblock {
            device: "the new hash device".to_string(),
            source,
        })
    }

    pub fn uuid(&self) -> &[u8; 16] {
        &self.uuid
    }

    /// The UUID as veritysetup prints it (`xxxxxxxx-xxxx-…`).
    pub fn uuid_string(&self) -> String {
        format_uuid(&self.uuid)
    }

    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// The salt in hex, or `-` when empty (the kernel table's spelling).
    pub fn salt_hex(&self) -> String {
        if self.salt.is_empty() {
            "-".to_string()
        } else {
            hex::encode(&self.salt)
        }
    }

    pub fn data_blocks(&self) -> u64 {
        self.data_blocks
    }

    /// Bytes of data the tree covers.
    pub fn data_size(&self) -> u64 {
        self.data_blocks * BLOCK_SIZE as u64
    }

    /// Where the tree's levels live on the hash device.
    pub fn geometry(&self) -> Geometry {
        Geometry::new(self.data_blocks)
    }

    /// The 512 bytes `veritysetup format` writes at offset 0 of the hash device.
    pub fn to_bytes(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&SUPERBLOCK_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&HASH_TYPE.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        b[32..32 + HASH_ALGORITHM.len()].copy_from_slice(HASH_ALGORITHM.as_bytes());
        b[64..68].copy_from_slice(&BLOCK_SIZE.to_le_bytes());
        b[68..72].copy_from_slice(&BLOCK_SIZE.to_le_bytes());
        b[72..80].copy_from_slice(&self.data_blocks.to_le_bytes());
        b[80..82].copy_from_slice(&(self.salt.len() as u16).to_le_bytes());
        b[SALT_FIELD_START..SALT_FIELD_START + self.salt.len()].copy_from_slice(&self.salt);
        b
    }

    /// Parses and validates a superblock from untrusted bytes (at least the first 512 bytes of a
    /// hash device). Refuses anything but version 1, hash type 1, sha256 and 4096-byte blocks;
    /// every padding byte must be zero (cryptsetup writes zeros).
    pub fn parse(bytes: &[u8]) -> Result<Self, SuperblockError> {
        if bytes.len() < SUPERBLOCK_SIZE {
            return Err(SuperblockError::Truncated {
                len: bytes.len() as u64,
            });
        }
        let b = &bytes[..SUPERBLOCK_SIZE];
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        if &b[0..8] != MAGIC {
            return Err(SuperblockError::Magic {
                found: b[0..8].escape_ascii().to_string(),
            });
        }
        let version = u32_at(8);
        if version != SUPERBLOCK_VERSION {
            return Err(SuperblockError::Version(version));
        }
        let hash_type = u32_at(12);
        if hash_type != HASH_TYPE {
            return Err(SuperblockError::HashType(hash_type));
        }
        let algorithm = &b[ALGORITHM_FIELD];
        let name_len = algorithm.iter().position(|&c| c == 0).unwrap_or(32);
        if &algorithm[..name_len] != HASH_ALGORITHM.as_bytes() {
            return Err(SuperblockError::Algorithm(
                algorithm[..name_len].escape_ascii().to_string(),
            ));
        }
        check_zero(b, "the algorithm field after \"sha256\"", 32 + name_len, 64)?;
        let data_block_size = u32_at(64);
        if data_block_size != BLOCK_SIZE {
            return Err(SuperblockError::DataBlockSize(data_block_size));
        }
        let hash_block_size = u32_at(68);
        if hash_block_size != BLOCK_SIZE {
            return Err(SuperblockError::HashBlockSize(hash_block_size));
        }
        let data_blocks = u64::from_le_bytes(b[72..80].try_into().expect("8 bytes"));
        check_data_blocks(data_blocks)?;
        let salt_size = u16::from_le_bytes([b[80], b[81]]) as usize;
        if salt_size > MAX_SALT_SIZE {
            return Err(SuperblockError::SaltSize(salt_size));
        }
        check_zero(b, "_pad1", 82, SALT_FIELD_START)?;
        let salt_end = SALT_FIELD_START + salt_size;
        check_zero(
            b,
            "the salt field after salt_size bytes",
            salt_end,
            PAD2_START,
        )?;
        check_zero(b, "_pad2", PAD2_START, SUPERBLOCK_SIZE)?;
        Ok(Superblock {
            uuid: b[16..32].try_into().expect("16 bytes"),
            salt: b[SALT_FIELD_START..salt_end].to_vec(),
            data_blocks,
        })
    }

    /// Reads and validates the superblock at offset 0 of a hash device (named "hash device" in
    /// errors), and checks that the device holds the whole tree it describes.
    pub fn read_from<H: Read + Seek>(hash_dev: &mut H) -> Result<Self, Error> {
        Superblock::read_named(hash_dev, "hash device")
    }

    pub(crate) fn read_named<H: Read + Seek>(hash_dev: &mut H, name: &str) -> Result<Self, Error> {
        let read_err = |source| Error::Read {
            name: name.to_string(),
            source,
        };
        let size = hash_dev.seek(SeekFrom::End(0)).map_err(read_err)?;
        hash_dev.seek(SeekFrom::Start(0)).map_err(read_err)?;
        let mut bytes = Vec::with_capacity(SUPERBLOCK_SIZE);
        hash_dev
            .take(SUPERBLOCK_SIZE as u64)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        let sb_err = |source| Error::Superblock {
            device: name.to_string(),
            source,
        };
        let sb = Superblock::parse(&bytes).map_err(sb_err)?;
        sb.check_hash_size(size).map_err(sb_err)?;
        Ok(sb)
    }

    /// The data device must hold every block the tree covers (it may be larger: a partition
    /// rounded up).
    pub fn check_data_size(&self, data_size: u64) -> Result<(), SuperblockError> {
        if data_size < self.data_size() {
            return Err(SuperblockError::DataDeviceTooSmall {
                data_blocks: self.data_blocks,
                needed: self.data_size(),
                size: data_size,
            });
        }
        Ok(())
    }

    /// The hash device must hold the superblock's block and the whole tree.
    pub fn check_hash_size(&self, hash_size: u64) -> Result<(), SuperblockError> {
        let needed = self.geometry().hash_device_size();
        if hash_size < needed {
            return Err(SuperblockError::HashDeviceTooSmall {
                data_blocks: self.data_blocks,
                needed,
                size: hash_size,
            });
        }
        Ok(())
    }
}

fn check_data_blocks(data_blocks: u64) -> Result<(), SuperblockError> {
    match data_blocks {
        0 => Err(SuperblockError::NoDataBlocks),
        n if n > MAX_DATA_BLOCKS => Err(SuperblockError::TooManyDataBlocks(n)),
        _ => Ok(()),
    }
}

fn check_zero(
    b: &[u8],
    field: &'static str,
    start: usize,
    end: usize,
) -> Result<(), SuperblockError> {
    if b[start..end].iter().any(|&c| c != 0) {
        return Err(SuperblockError::NonZero { field, start, end });
    }
    Ok(())
}

fn check_label(label: &str) -> Result<(), Error> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && label
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
    if !ok {
        return Err(Error::Invalid(format!(
            "label {label:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ - \
             (it names the seed purposes verity:salt:<label> and verity:uuid:<label>)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let sb = Superblock::new([7; 16], &[1, 2, 3], 129).unwrap();
        let bytes = sb.to_bytes();
        assert_eq!(Superblock::parse(&bytes).unwrap(), sb);
        let empty = Superblock::new([0; 16], &[], 1).unwrap();
        assert_eq!(Superblock::parse(&empty.to_bytes()).unwrap(), empty);
        assert_eq!(empty.salt_hex(), "-");
    }

    #[test]
    fn field_offsets_follow_struct_verity_sb() {
        let sb = Superblock::new([0xaa; 16], &[0x55; 32], 0x0102_0304_0506).unwrap();
        let b = sb.to_bytes();
        assert_eq!(&b[0..8], b"verity\0\0");
        assert_eq!(&b[8..16], &[1, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&b[16..32], &[0xaa; 16]);
        assert_eq!(&b[32..39], b"sha256\0");
        assert_eq!(&b[64..72], &[0, 0x10, 0, 0, 0, 0x10, 0, 0]);
        assert_eq!(&b[72..80], &[6, 5, 4, 3, 2, 1, 0, 0]);
        assert_eq!(&b[80..82], &[32, 0]);
        assert_eq!(&b[88..120], &[0x55; 32]);
        assert!(b[120..].iter().all(|&c| c == 0));
    }

    #[test]
    fn constructor_keeps_fields_in_range() {
        assert_eq!(
            Superblock::new([0; 16], &[0; 257], 1).unwrap_err(),
            SuperblockError::SaltSize(257)
        );
        assert_eq!(
            Superblock::new([0; 16], &[], 0).unwrap_err(),
            SuperblockError::NoDataBlocks
        );
        assert!(Superblock::new([0; 16], &[], MAX_DATA_BLOCKS).is_ok());
        assert_eq!(
            Superblock::new([0; 16], &[], MAX_DATA_BLOCKS + 1).unwrap_err(),
            SuperblockError::TooManyDataBlocks(MAX_DATA_BLOCKS + 1)
        );
    }

    #[test]
    fn labels_are_checked() {
        assert!(Superblock::from_seed("s", "root-a_1.x", 1).is_ok());
        for bad in ["", "a b", "root:x", "ü", &"x".repeat(65)] {
            let e = Superblock::from_seed("s", bad, 1).unwrap_err().to_string();
            assert!(e.contains("must be 1 to 64 characters"), "{e}");
        }
    }
}
