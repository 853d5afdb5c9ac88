//! Release artifacts: sparse deterministic tar.zst packaging, SHA256SUMS and the build manifest.
//!
//! - [`pack`]: a tar of disk images, sparse files in the GNU PAX sparse format 1.0, compressed
//!   with multithreaded zstd (output independent of the worker count), hashed while written.
//! - [`sums`]: `SHA256SUMS` in coreutils format, and its verification.
//! - [`manifest`]: `build-manifest.json` (`icos.build-manifest/v1`), the record of what went into
//!   a build and what came out.

pub mod manifest;
pub mod pack;
pub mod sums;

/// The base name of a path as UTF-8, or `None` (no name, or not UTF-8).
pub(crate) fn base_name(path: &std::path::Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_string)
}
