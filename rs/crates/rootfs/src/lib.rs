//! Flattens OCI layers, applies an image's own changes and writes one normalized,
//! byte-reproducible rootfs tar and its manifest (formats: ARCHITECTURE.md, "The rootfs tar" and
//! "rootfs.manifest.json").
//!
//! Two passes with memory bounded by the number of entries: pass 1 reads every layer once, keeps a
//! sorted map path → metadata and appends file contents to one anonymous spool file (hashing them
//! on the way); pass 2 writes the sorted tar, reading contents back from the spool and hashing the
//! output as it is written. Nothing is ever extracted onto the host.
//!
//! ```no_run
//! use icos_rootfs::{ImageSpec, RootfsBuilder};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let epoch = "1700000000".parse()?;
//! let mut rootfs = RootfsBuilder::new(std::path::Path::new("out"), epoch)?;
//! rootfs.apply_layer("layer 1 of base.tar", std::fs::File::open("base.tar")?)?;
//! rootfs.apply_spec(&ImageSpec::load("image.toml".as_ref(), &[])?)?;
//! rootfs.write("out/rootfs.tar".as_ref(), "out/rootfs.manifest.json".as_ref(), None)?;
//! # Ok(()) }
//! ```

mod builder;
mod error;
mod layer;
pub mod manifest;
mod path;
mod source;
mod spec;
mod spool;
mod tree;
mod writer;

pub use builder::{BuildReport, RootfsBuilder};
pub use error::{EntryProblem, RootfsError};
pub use manifest::Manifest;
pub use spec::ImageSpec;
