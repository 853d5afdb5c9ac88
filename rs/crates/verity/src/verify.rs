//! The node side: check a hash device against its data and a root hash, and name what is damaged.
//!
//! [`verify`] walks the tree bottom-up, comparing each stored level with the level recomputed from
//! the layer below it as stored (data for level 0): level 0 from the data, level i from the stored
//! level i-1, the root hash from the stored top block. When everything matches, the stored tree is
//! exactly the one the data yields. When something does not, each mismatch names the child whose
//! digest disagrees with its (stored) parent; the mismatch closest to the root is reported, since a
//! damaged hash block also disagrees with its children, and a parent closer to the root that
//! matched its own parent is authentic.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Corruption, Error};
use crate::geometry::{Geometry, Level};
use crate::hasher::{for_each_data_digest, read_full, Salted};
use crate::superblock::Superblock;
use crate::{NoProgress, Progress, RootHash, BLOCK_SIZE, DIGESTS_PER_BLOCK, DIGEST_SIZE};

use crate::hasher::LevelHasher;

const BS: usize = BLOCK_SIZE as usize;
/// Hash blocks read per call from the hash device (256 KiB).
const READ_BATCH_BLOCKS: usize = 64;

/// `sha256(salt || top-level block)` of a hash device: the root hash it was built for. Cheap (one
/// block); it proves the partition belongs to a root hash, not that the tree below is intact.
/// A one-block data device has no tree ([`Error::NoHashTree`]).
pub fn root_hash_of_hash_device<H: Read + Seek>(
    mut hash_dev: H,
    sb: &Superblock,
) -> Result<RootHash, Error> {
    let geometry = sb.geometry();
    let Some(top) = geometry.levels().last() else {
        return Err(Error::NoHashTree);
    };
    let mut block = vec![0u8; BS];
    let mut reader = StoredBlocks::new(*top, "hash device");
    reader.next(&mut hash_dev, &mut block)?;
    Ok(RootHash(Salted::new(sb.salt()).digest(&block)))
}

/// Checks a data device and its hash device against `expected` (the root hash the node trusts):
/// the superblock is validated, every level is recomputed and compared byte for byte, and the
/// first damaged block is named ([`Error::Corrupt`]). Returns the hash device's superblock.
/// Not read, as neither the kernel nor veritysetup reads them: bytes 512..4096 of block 0, anything
/// after the tree on the hash device, and data past `data_blocks`.
pub fn verify<D: Read + Seek, H: Read + Seek>(
    data: D,
    hash_dev: H,
    expected: &RootHash,
) -> Result<Superblock, Error> {
    verify_named(
        data,
        "data device",
        hash_dev,
        "hash device",
        expected,
        &mut NoProgress,
    )
}

/// [`verify`] on files or block devices, named by their paths in errors.
pub fn verify_files(
    data: &Path,
    hash_dev: &Path,
    expected: &RootHash,
    progress: &mut dyn Progress,
) -> Result<Superblock, Error> {
    let open = |p: &Path| {
        File::open(p).map_err(|source| Error::Read {
            name: p.display().to_string(),
            source,
        })
    };
    verify_named(
        open(data)?,
        &data.display().to_string(),
        open(hash_dev)?,
        &hash_dev.display().to_string(),
        expected,
        progress,
    )
}

fn verify_named<D: Read + Seek, H: Read + Seek>(
    mut data: D,
    data_name: &str,
    mut hash_dev: H,
    hash_name: &str,
    expected: &RootHash,
    progress: &mut dyn Progress,
) -> Result<Superblock, Error> {
    let sb = Superblock::read_named(&mut hash_dev, hash_name)?;
    let data_err = |source| Error::Read {
        name: data_name.to_string(),
        source,
    };
    let data_size = data.seek(SeekFrom::End(0)).map_err(data_err)?;
    data.seek(SeekFrom::Start(0)).map_err(data_err)?;
    if data_size < sb.data_size() {
        return Err(Error::DataTooSmall {
            data: data_name.to_string(),
            hash: hash_name.to_string(),
            data_blocks: sb.data_blocks(),
            needed: sb.data_size(),
            size: data_size,
        });
    }

    let geometry = sb.geometry();
    let salted = Salted::new(sb.salt());
    let mut findings = Findings::default();

    // Level 0 from the data (or, without a tree, the root hash from the one data block).
    let levels = geometry.levels();
    let mut only_block_digest = None;
    if let Some(&level0) = levels.first() {
        let mut check = LevelCheck::new(level0, 0, hash_name);
        for_each_data_digest(
            &mut data,
            data_name,
            sb.data_blocks(),
            &salted,
            progress,
            |_, d| check.push(&d, &mut hash_dev, &geometry, &mut findings),
        )?;
        check.finish(&mut hash_dev, &geometry, &mut findings)?;
    } else {
        for_each_data_digest(&mut data, data_name, 1, &salted, progress, |_, d| {
            only_block_digest = Some(d);
            Ok(())
        })?;
    }

    // Level i from the stored level i-1.
    let mut block = vec![0u8; BS];
    for i in 1..levels.len() {
        let mut below = StoredBlocks::new(levels[i - 1], hash_name);
        let mut check = LevelCheck::new(levels[i], i, hash_name);
        for _ in 0..levels[i - 1].blocks {
            below.next(&mut hash_dev, &mut block)?;
            check.push(
                &salted.digest(&block),
                &mut hash_dev,
                &geometry,
                &mut findings,
            )?;
        }
        check.finish(&mut hash_dev, &geometry, &mut findings)?;
    }

    // The root hash from the stored top block.
    let (actual, of_data_block) = match only_block_digest {
        Some(d) => (RootHash(d), true),
        None => (root_hash_of_hash_device(&mut hash_dev, &sb)?, false),
    };
    if actual != *expected {
        findings.add(Corruption::RootHash {
            expected: *expected,
            actual,
            of_data_block,
        });
    }

    match findings.first {
        None => Ok(sb),
        Some(first) => Err(Error::Corrupt {
            data: data_name.to_string(),
            hash: hash_name.to_string(),
            first: Box::new(first),
            more: findings.count - 1,
        }),
    }
}

/// The mismatch closest to the root, and how many there were.
#[derive(Default)]
struct Findings {
    first: Option<Corruption>,
    count: u64,
}

impl Findings {
    fn add(&mut self, c: Corruption) {
        self.count += 1;
        if self.first.as_ref().is_none_or(|f| c.rank() > f.rank()) {
            self.first = Some(c);
        }
    }
}

/// Recomputes one level from the digests of the layer below and compares each block with the
/// stored one as soon as it is complete.
struct LevelCheck<'n> {
    level: usize,
    hasher: LevelHasher,
    stored: StoredBlocks<'n>,
    stored_block: Vec<u8>,
    index: u64,
    /// Digests pushed into the current block (to tell digest slots from padding).
    children: u64,
}

impl<'n> LevelCheck<'n> {
    fn new(at: Level, level: usize, hash_name: &'n str) -> Self {
        LevelCheck {
            level,
            hasher: LevelHasher::new(),
            stored: StoredBlocks::new(at, hash_name),
            stored_block: vec![0; BS],
            index: 0,
            children: 0,
        }
    }

    fn push<H: Read + Seek>(
        &mut self,
        d: &[u8; DIGEST_SIZE],
        hash_dev: &mut H,
        geometry: &Geometry,
        findings: &mut Findings,
    ) -> Result<(), Error> {
        self.children += 1;
        if self.hasher.push(d) {
            self.compare(hash_dev, geometry, findings)?;
        }
        Ok(())
    }

    fn finish<H: Read + Seek>(
        mut self,
        hash_dev: &mut H,
        geometry: &Geometry,
        findings: &mut Findings,
    ) -> Result<(), Error> {
        if self.hasher.flush() {
            self.compare(hash_dev, geometry, findings)?;
        }
        Ok(())
    }

    fn compare<H: Read + Seek>(
        &mut self,
        hash_dev: &mut H,
        geometry: &Geometry,
        findings: &mut Findings,
    ) -> Result<(), Error> {
        self.stored.next(hash_dev, &mut self.stored_block)?;
        let computed = self.hasher.block();
        let here = geometry.levels()[self.level];
        if computed[..] != self.stored_block[..] {
            let slots = computed
                .chunks_exact(DIGEST_SIZE)
                .zip(self.stored_block.chunks_exact(DIGEST_SIZE));
            let mut padding_differs = false;
            for (k, (c, s)) in slots.enumerate() {
                if c == s {
                    continue;
                }
                if k as u64 >= self.children {
                    padding_differs = true;
                    continue;
                }
                let child = self.index * DIGESTS_PER_BLOCK + k as u64;
                findings.add(if self.level == 0 {
                    Corruption::DataBlock {
                        index: child,
                        hash_block: here.first_block + self.index,
                    }
                } else {
                    let below = geometry.levels()[self.level - 1];
                    Corruption::HashBlock {
                        level: self.level - 1,
                        index: child,
                        block: below.first_block + child,
                    }
                });
            }
            if padding_differs {
                // The stored block itself is damaged past its last digest.
                findings.add(Corruption::HashBlock {
                    level: self.level,
                    index: self.index,
                    block: here.first_block + self.index,
                });
            }
        }
        self.index += 1;
        self.children = 0;
        Ok(())
    }
}

/// Reads the blocks of one level of the hash device in order, a batch at a time, seeking before
/// each batch (other readers may share the device).
struct StoredBlocks<'n> {
    level: Level,
    name: &'n str,
    next_index: u64,
    batch: Vec<u8>,
    batch_pos: usize,
}

impl<'n> StoredBlocks<'n> {
    fn new(level: Level, name: &'n str) -> Self {
        StoredBlocks {
            level,
            name,
            next_index: 0,
            batch: Vec::new(),
            batch_pos: 0,
        }
    }

    fn next<H: Read + Seek>(&mut self, hash_dev: &mut H, out: &mut [u8]) -> Result<(), Error> {
        if self.batch_pos == self.batch.len() {
            let left = self.level.blocks - self.next_index;
            let count = left.min(READ_BATCH_BLOCKS as u64) as usize;
            assert!(count > 0, "read past the end of a level");
            let offset = self.level.offset(self.next_index);
            self.batch.resize(count * BS, 0);
            let err = |source| Error::Read {
                name: self.name.to_string(),
                source,
            };
            hash_dev.seek(SeekFrom::Start(offset)).map_err(err)?;
            let got = read_full(hash_dev, &mut self.batch).map_err(err)?;
            if got < self.batch.len() {
                // The size was checked against the superblock; the device shrank meanwhile.
                return Err(Error::ShortData {
                    name: self.name.to_string(),
                    read: offset + got as u64,
                    needed: self.level.offset(self.next_index + count as u64),
                });
            }
            self.next_index += count as u64;
            self.batch_pos = 0;
        }
        out.copy_from_slice(&self.batch[self.batch_pos..self.batch_pos + BS]);
        self.batch_pos += BS;
        Ok(())
    }
}

/// Whether `a` and `b` name the same file: the same inode when both exist, else the same
/// absolute path (symlinks resolved in the existing parts). Guards outputs against inputs.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
        #[cfg(not(unix))]
        {
            let _ = (ma, mb);
        }
    }
    let resolve = |p: &Path| -> Option<std::path::PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
            _ => std::env::current_dir().ok()?,
        };
        Some(parent.join(p.file_name()?))
    };
    matches!((resolve(a), resolve(b)), (Some(x), Some(y)) if x == y)
}
