//! The build side: a hash device from a data image in one sequential pass.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use icos_common::AtomicFile;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::geometry::Geometry;
use crate::hasher::{for_each_data_digest, Salted, TreeBuilder};
use crate::superblock::Superblock;
use crate::verify::same_file;
use crate::{
    NoProgress, Progress, RootHash, BLOCK_SIZE, HASH_ALGORITHM, HASH_START_BLOCK, PARAMS_SCHEMA,
    SUPERBLOCK_SIZE,
};

/// Hash blocks gathered per level before one write (256 KiB).
const WRITE_BATCH_BLOCKS: usize = 64;

/// What was built: the report `icos-verity --report-out` writes (schema [`PARAMS_SCHEMA`]).
/// Fields are declared in sorted order, so the JSON keys are sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerityParams {
    pub data_block_size: u32,
    pub data_blocks: u64,
    /// Bytes of data the tree covers (`data_blocks` × `data_block_size`).
    pub data_size: u64,
    pub hash_algorithm: String,
    pub hash_block_size: u32,
    /// Bytes of the hash device (superblock block and tree).
    pub hash_size: u64,
    /// The kernel table's `hash_start_block`: the tree starts after the superblock's block.
    pub hash_start_block: u64,
    pub label: String,
    /// Lowercase hex.
    pub root_hash: String,
    /// Lowercase hex.
    pub salt: String,
    pub schema: String,
    pub uuid: String,
}

impl VerityParams {
    pub fn new(sb: &Superblock, root_hash: &RootHash, label: &str) -> VerityParams {
        VerityParams {
            data_block_size: BLOCK_SIZE,
            data_blocks: sb.data_blocks(),
            data_size: sb.data_size(),
            hash_algorithm: HASH_ALGORITHM.to_string(),
            hash_block_size: BLOCK_SIZE,
            hash_size: sb.geometry().hash_device_size(),
            hash_start_block: HASH_START_BLOCK,
            label: label.to_string(),
            root_hash: root_hash.to_hex(),
            salt: hex::encode(sb.salt()),
            schema: PARAMS_SCHEMA.to_string(),
            uuid: sb.uuid_string(),
        }
    }
}

/// Writes the hash device for the data image `data` to `out` (through a temporary file renamed
/// on success): salt and UUID from `seed` and `label`, one sequential read of the data.
/// The data's size must be a positive multiple of 4096.
pub fn build_hash_device(
    data: &Path,
    out: &Path,
    seed: &str,
    label: &str,
    progress: &mut dyn Progress,
) -> Result<VerityParams, Error> {
    let data_name = data.display().to_string();
    let out_name = out.display().to_string();
    if same_file(data, out) {
        return Err(Error::SameFile {
            input: data_name,
            output: out_name,
        });
    }
    let read_err = |source| Error::Read {
        name: data_name.clone(),
        source,
    };
    let mut input = File::open(data).map_err(read_err)?;
    let size = input.seek(SeekFrom::End(0)).map_err(read_err)?;
    input.seek(SeekFrom::Start(0)).map_err(read_err)?;
    if size == 0 || size % BLOCK_SIZE as u64 != 0 {
        return Err(Error::DataSize {
            name: data_name,
            size,
        });
    }
    let sb = Superblock::from_seed(seed, label, size / BLOCK_SIZE as u64)?;

    let write_err = |source| Error::Write {
        name: out_name.clone(),
        source,
    };
    let mut atomic = AtomicFile::create(out).map_err(write_err)?;
    let root = format_named(input, &data_name, atomic.file(), &out_name, &sb, progress)?;
    atomic.commit().map_err(write_err)?;
    Ok(VerityParams::new(&sb, &root, label))
}

/// Writes the hash device for `data` (the first `sb.data_blocks()` blocks are read, once, in
/// order) into `hash_dev` from offset 0, exactly as `veritysetup format` lays it out, and returns
/// the root hash. Bytes past the tree are left alone.
pub fn format<D: Read, H: Write + Seek>(
    data: D,
    hash_dev: H,
    sb: &Superblock,
) -> Result<RootHash, Error> {
    format_named(
        data,
        "data device",
        hash_dev,
        "hash device",
        sb,
        &mut NoProgress,
    )
}

/// The root hash of `data` under `sb`'s salt, streaming over the data only (no hash device):
/// what the node compares with the root hash it was given.
pub fn compute_root_hash<D: Read>(data: D, sb: &Superblock) -> Result<RootHash, Error> {
    let salted = Salted::new(sb.salt());
    let geometry = sb.geometry();
    let mut tree = TreeBuilder::new(&salted, geometry.levels().len());
    let mut ignore = |_: usize, _: u64, _: &[u8; 4096]| Ok(());
    for_each_data_digest(
        data,
        "data device",
        sb.data_blocks(),
        &salted,
        &mut NoProgress,
        |_, d| tree.push_data_digest(d, &mut ignore),
    )?;
    let (root, _) = tree.finish(&mut ignore)?;
    Ok(RootHash(root))
}

pub(crate) fn format_named<D: Read, H: Write + Seek>(
    data: D,
    data_name: &str,
    mut hash_dev: H,
    hash_name: &str,
    sb: &Superblock,
    progress: &mut dyn Progress,
) -> Result<RootHash, Error> {
    let geometry = sb.geometry();
    let mut first = vec![0u8; BLOCK_SIZE as usize];
    first[..SUPERBLOCK_SIZE].copy_from_slice(&sb.to_bytes());
    let mut writer = LevelWriter {
        out: &mut hash_dev,
        name: hash_name,
        geometry: &geometry,
        pending: vec![Vec::new(); geometry.levels().len()],
    };
    writer.write_at(0, &first)?;

    let salted = Salted::new(sb.salt());
    let mut tree = TreeBuilder::new(&salted, geometry.levels().len());
    let mut emit = |level: usize, index: u64, block: &[u8; 4096]| writer.push(level, index, block);
    for_each_data_digest(
        data,
        data_name,
        sb.data_blocks(),
        &salted,
        progress,
        |_, d| tree.push_data_digest(d, &mut emit),
    )?;
    let (root, emitted) = tree.finish(&mut emit)?;
    let planned: Vec<u64> = geometry.levels().iter().map(|l| l.blocks).collect();
    assert_eq!(emitted, planned, "the tree's levels follow the geometry");
    writer.flush_all()?;
    hash_dev.flush().map_err(|source| Error::Write {
        name: hash_name.to_string(),
        source,
    })?;
    Ok(RootHash(root))
}

/// Puts each emitted hash block at its planned offset; consecutive blocks of a level are written
/// together.
struct LevelWriter<'a, H: Write + Seek> {
    out: &'a mut H,
    name: &'a str,
    geometry: &'a Geometry,
    /// Per level: blocks not yet written, ending just before the next block of that level.
    pending: Vec<Vec<u8>>,
}

impl<H: Write + Seek> LevelWriter<'_, H> {
    fn push(&mut self, level: usize, index: u64, block: &[u8; 4096]) -> Result<(), Error> {
        self.pending[level].extend_from_slice(block);
        if self.pending[level].len() >= WRITE_BATCH_BLOCKS * BLOCK_SIZE as usize {
            self.flush_level(level, index + 1)?;
        }
        Ok(())
    }

    /// Writes level `level`'s pending blocks, which end before its block `next_index`.
    fn flush_level(&mut self, level: usize, next_index: u64) -> Result<(), Error> {
        let pending = std::mem::take(&mut self.pending[level]);
        let count = (pending.len() / BLOCK_SIZE as usize) as u64;
        let offset = self.geometry.levels()[level].offset(next_index - count);
        self.write_at(offset, &pending)?;
        self.pending[level] = pending;
        self.pending[level].clear();
        Ok(())
    }

    fn flush_all(&mut self) -> Result<(), Error> {
        for level in 0..self.pending.len() {
            let blocks = self.geometry.levels()[level].blocks;
            self.flush_level(level, blocks)?;
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        let w = |source| Error::Write {
            name: self.name.to_string(),
            source,
        };
        self.out.seek(SeekFrom::Start(offset)).map_err(w)?;
        self.out.write_all(bytes).map_err(w)
    }
}
