//! Writes an ext4 filesystem image directly from a normalized rootfs tar, without root, mounts or host tools.
//!
//! Why this crate exists: no maintained Rust crate writes ext4, and Debian's mke2fs 1.47.0 only
//! populates from a directory (extraction, fakeroot for owners and devices, host atime/ctime copied
//! in, SOURCE_DATE_EPOCH ignored). Writing the format from the tar stream is reproducible by
//! construction and skips the extraction.
//!
//! How: two passes over the tar. Pass 1 reads headers only (seeking over file data) and builds the
//! tree in memory (metadata only: memory grows with the number of entries, never with their size).
//! From the totals it fixes the geometry and plans every block (sequential allocation in inode order).
//! Pass 2 streams file contents straight to their planned blocks. Finally inode tables, directories,
//! extent-tree and xattr blocks, bitmaps, group descriptors and superblocks are written. The output
//! is sparse: it is sized with `set_len` and only non-zero blocks are written.
//!
//! On-disk choices (see [`FEATURES`]): 4 KiB blocks, 256-byte inodes (extra_isize 32), 32-byte group
//! descriptors, per-group bitmaps and inode tables, sparse_super backups, no journal, no
//! metadata_csum, no resize inode, linear directories. Inode numbers follow tar order (root 2,
//! lost+found 11, then 12, 13, …); blocks are allocated in inode order.

mod dir;
mod extent;
mod inode;
mod layout;
mod le;
mod superblock;
mod tree;
mod writer;
mod xattr;

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::str::FromStr;

use icos_common::{AtomicFile, SourceDateEpoch};
use serde::Serialize;

pub use layout::{AUTO_HEADROOM_BYTES, AUTO_HEADROOM_PERCENT, BLOCK_SIZE, INODE_RATIO, INODE_SIZE};

/// The schema name written into `params.json`.
pub const PARAMS_SCHEMA: &str = "icos.ext4-params/v1";

/// The feature flags every image carries, in e2fsprogs' spelling, sorted.
pub const FEATURES: &[&str] = &[
    "dir_index",
    "dir_nlink",
    "ext_attr",
    "extent",
    "extra_isize",
    "filetype",
    "huge_file",
    "large_file",
    "sparse_super",
];

/// How large the image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageSize {
    /// Computed from the content: the smallest size that holds it, plus
    /// [`AUTO_HEADROOM_PERCENT`] % and [`AUTO_HEADROOM_BYTES`], rounded up to 1 MiB.
    Auto,
    /// Exactly this many bytes (a multiple of 4 KiB).
    Bytes(u64),
}

impl FromStr for ImageSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            Ok(ImageSize::Auto)
        } else {
            icos_common::parse_size(s).map(ImageSize::Bytes)
        }
    }
}

impl fmt::Display for ImageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSize::Auto => f.write_str("auto"),
            ImageSize::Bytes(b) => write!(f, "{b}"),
        }
    }
}

/// Everything besides the tar that determines the image bytes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Build seed: the filesystem UUID and directory hash seed are derived from it and the label.
    pub seed: String,
    /// Every timestamp in the image; tar mtimes newer than this are clamped to it.
    pub source_date_epoch: SourceDateEpoch,
    pub size: ImageSize,
    /// Volume label, at most 16 bytes.
    pub label: String,
    /// Minimum number of inodes; default: one per [`INODE_RATIO`] bytes, and at least what the content needs.
    pub inodes: Option<u64>,
    /// Blocks per block group: 32768 (the ext4 maximum for 4 KiB blocks) unless a test wants many
    /// small groups (any multiple of 8 from 1024 up).
    pub blocks_per_group: u32,
}

impl Options {
    pub fn new(seed: impl Into<String>, source_date_epoch: SourceDateEpoch) -> Self {
        Options {
            seed: seed.into(),
            source_date_epoch,
            size: ImageSize::Auto,
            label: "root".to_string(),
            inodes: None,
            blocks_per_group: le::u32_of(layout::DEFAULT_BLOCKS_PER_GROUP, "a constant"),
        }
    }
}

/// What was built: written as `params.json` (schema [`PARAMS_SCHEMA`]) by the `icos-ext4` tool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ext4Params {
    pub schema: String,
    pub uuid: String,
    pub hash_seed: String,
    pub label: String,
    pub block_size: u32,
    pub size_bytes: u64,
    pub blocks_count: u64,
    pub free_blocks: u64,
    pub inodes_count: u64,
    pub free_inodes: u64,
    pub inode_size: u32,
    pub features: Vec<String>,
    pub source_date_epoch: u64,
}

/// Progress of pass 2, in bytes of file data copied.
pub trait Progress {
    /// Called once when the total is known, before any data is copied.
    fn start(&mut self, _total_bytes: u64) {}
    fn advance(&mut self, _bytes: u64) {}
}

/// No progress reporting.
pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read rootfs tar {tar}: {source}")]
    ReadTar {
        tar: String,
        #[source]
        source: io::Error,
    },
    #[error("rootfs tar {tar} is malformed {at}: {reason}")]
    Malformed {
        tar: String,
        at: String,
        reason: String,
    },
    #[error("rootfs tar {tar}, entry {entry:?}: {reason}")]
    Entry {
        tar: String,
        entry: String,
        reason: String,
    },
    #[error(
        "image size {size} bytes is too small for the content of {tar}: it needs at least {needed} bytes; \
         pass --size {needed_mib}MiB or more, or --size auto (which picks {auto} bytes)"
    )]
    TooSmall {
        tar: String,
        size: u64,
        needed: u64,
        needed_mib: u64,
        auto: u64,
    },
    #[error("{0}")]
    Options(String),
    #[error("cannot write image {out}: {source}")]
    Write {
        out: String,
        #[source]
        source: io::Error,
    },
}

/// Builds `out` from the rootfs tar at `rootfs`; `out` appears only if everything succeeded.
pub fn build_image(
    rootfs: &Path,
    out: &Path,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Ext4Params, Error> {
    let tar = rootfs.display().to_string();
    let input = File::open(rootfs).map_err(|source| Error::ReadTar {
        tar: tar.clone(),
        source,
    })?;
    let out_name = out.display().to_string();
    let werr = |source| Error::Write {
        out: out_name.clone(),
        source,
    };
    let mut atomic = AtomicFile::create(out).map_err(werr)?;
    let input = SeekBuf(BufReader::with_capacity(1 << 16, input));
    let params = write_image(input, &tar, atomic.file(), &out_name, opts, progress)?;
    atomic.commit().map_err(werr)?;
    Ok(params)
}

/// Writes the image for the tar read from `input` (named `tar_name` in errors) into `out`, which
/// must be empty (it is sized here, and only non-zero blocks are written).
pub fn write_image<R: Read + Seek>(
    input: R,
    tar_name: &str,
    out: &File,
    out_name: &str,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Ext4Params, Error> {
    writer::write_image(input, tar_name, out, out_name, opts, progress)
}

/// A buffered reader whose relative seeks stay inside the buffer when they can: the tar crate
/// seeks after every header (often by 0), which would otherwise discard the buffer each time.
struct SeekBuf<R>(BufReader<R>);

impl<R: Read> Read for SeekBuf<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read + Seek> Seek for SeekBuf<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match pos {
            SeekFrom::Current(n) => {
                self.0.seek_relative(n)?;
                self.0.stream_position()
            }
            other => self.0.seek(other),
        }
    }
}
