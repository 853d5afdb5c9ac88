//! Pinned base images: OCI layouts, docker-save archives and OCI registries, always by sha256 digest, every blob verified.
//!
//! - [`BaseRef`]: `oci:DIR@sha256:…`, `oci-archive:FILE@sha256:…`, `docker-archive:FILE@sha256:…`,
//!   `docker://HOST[:PORT]/REPO@sha256:…`; unpinned references are refused with advice.
//! - [`Image::open`] resolves the reference (an index through [`OpenOptions::platform`]) and
//!   verifies index, manifest and config against digest and size; [`Image::open_layer`] streams a
//!   layer uncompressed, verifying the stored bytes as they pass; [`Image::map_layer`] maps an
//!   uncompressed local layer in place instead, for readers that come back to its bytes; [`Image::write_layout`] writes the
//!   image as a minimal OCI layout for offline use.
//! - Archives are indexed once and read in place; nothing is ever extracted.
//! - Registries: OCI distribution API v2, anonymous or bearer token (Basic credentials for the
//!   token endpoint from [`USERNAME_ENV`]/[`PASSWORD_ENV`]), plain http only to loopback hosts,
//!   optional content-addressed blob store.

mod archive;
mod docker;
mod error;
mod image;
mod json;
pub mod media;
mod reference;
mod registry;
mod source;
mod store;
mod verify;

pub use error::OciError;
pub use image::{Image, LayerDescriptor, MappedLayer, OpenOptions};
pub use media::Compression;
pub use reference::{BaseRef, Platform, Transport};
pub use registry::{PASSWORD_ENV, USERNAME_ENV};
pub use source::MAX_DOCUMENT_SIZE;
pub use verify::BlobError;
