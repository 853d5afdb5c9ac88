//! Building blocks shared by every icos tool.
//!
//! - [`Digest`]: a validated `sha256:<64 hex>` content digest.
//! - [`HashingReader`] / [`HashingWriter`]: hash bytes while they stream past; [`write_behind`]:
//!   hash an output on this thread while a second one writes it.
//! - [`AtomicFile`]: write to a temporary file beside the target, rename on success only,
//!   so a failed run never leaves a partial output under its final name.
//! - [`SourceDateEpoch`]: the one clock every tool uses; never "now".
//! - [`progress`]: progress bars and one-line summaries that only show on a terminal.
//! - [`seed`]: UUIDs and ids derived from the build seed.
//! - [`parse_size`]: `64MiB`-style sizes.
//! - [`check_distinct`]: refuse outputs that coincide with each other or with an input.
//! - [`mapped`]: input files mapped into memory and read in place, with a tripwire for writers.
//! - [`sparse`]: a writer that leaves aligned all-zero 4 KiB blocks as holes.
//! - [`safe_open`]: open an input only if it is a regular file (optionally refusing symlinks),
//!   never blocking on a FIFO.
//! - [`tarread`]: the tar reader every tool uses (PAX records parsed by their length prefix);
//!   [`tarcontract`]: the rootfs tar contract it checks when asked.

mod atomic;
mod digest;
pub mod distinct;
mod epoch;
mod hashing;
pub mod mapped;
pub mod progress;
pub mod safe_open;
pub mod seed;
mod size;
pub mod sparse;
pub mod tarcontract;
pub mod tarread;
mod write_behind;

pub use atomic::AtomicFile;
pub use digest::{Digest, DigestError};
pub use distinct::check_distinct;
pub use epoch::{EpochError, SourceDateEpoch};
pub use hashing::{
    sha256_file, sha256_reader, BackgroundSha256, HashingReader, HashingWriter, StreamHasher,
};
pub use safe_open::{open_regular, open_regular_nofollow, NotRegular};
pub use size::parse_size;
pub use write_behind::{write_behind, WriteBehind};

/// The version string every tool records in the manifests it writes.
pub const TOOLS_VERSION: &str = env!("CARGO_PKG_VERSION");
