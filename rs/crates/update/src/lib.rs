//! Signed upgrades of a verified A/B node.
//!
//! Release side ([`make_manifest`]): the update manifest (`update-manifest.json`, [`manifest`])
//! describes `update-img.tar.zst` (its size and sha256, each member's size and sha256, the image
//! id, the version and the new root's dm-verity root hash); `scripts/release.sh` signs it with the
//! release key like every other release file.
//!
//! Node side ([`apply::apply`], `icos-upgrade apply`), in this order:
//! 1. the manifest's signature is verified with the baked release key over the exact bytes read,
//!    before they are parsed ([`manifest::read_signed`]);
//! 2. [`apply::preflight`]: the update is for this image, its version is greater than the running
//!    one (IMAGE_VERSION of the running root's `/etc/os-release`: equal is a replay, lower a
//!    downgrade), the running slot is the one whose hash partition belongs to `roothash=`, the
//!    other slot is the target and is big enough, and the running entry is marked good;
//! 3. stale entries (other versions: they boot the slot about to be overwritten) leave the ESP;
//! 4. the package streams ([`package::stream`]) into the inactive slot's data and hash partitions
//!    and the UKI into `/EFI/Linux/<id>_<version>.efi.partial` (a name systemd-boot ignores),
//!    hashed while written, never beyond the signed sizes, timing out on a stalled source;
//! 5. the written slot's whole dm-verity tree is recomputed and checked against the signed root
//!    hash, and the UKI is read back and checked against its signed sha256;
//! 6. only then the switch: the UKI is renamed `<id>_<version>+3.efi`, which systemd-boot boots
//!    first and counts down; [`apply::mark_good`] after a good boot drops the counter.
//!
//! Any error before step 6 leaves the ESP without a new entry (the `.efi.partial` goes again), so
//! the running entry stays the default. The active slot is never opened for writing.

pub mod apply;
pub mod esp;
pub mod manifest;
pub mod package;

use std::path::Path;
use std::time::Duration;

use icos_common::open_regular;

pub use apply::{apply, apply_reporting, mark_good, Applied, Marked, Running};
pub use manifest::{read_signed, UpdateManifest, Version};

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Package(#[from] package::PackageError),
    #[error(transparent)]
    Esp(#[from] esp::EspError),
    #[error(transparent)]
    Disk(#[from] icos_node::disk::DiskError),
    #[error(transparent)]
    Block(#[from] icos_node::block::BlockError),
    #[error("refused, nothing was written: {0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the written slot {slot} does not verify against the signed root hash, the boot entry is unchanged: {source}")]
    Verity {
        slot: String,
        source: icos_verity::Error,
    },
    #[error("{what} reads back as {found}, but the signed manifest says {signed}; the boot entry is unchanged")]
    ReadBack {
        what: String,
        found: String,
        signed: String,
    },
    #[error("{0}")]
    Build(String),
    #[error("{error}; and {partial} is left over: {cleanup}")]
    Leftover {
        error: Box<UpdateError>,
        partial: String,
        cleanup: esp::EspError,
    },
}

/// The update manifest of `package` (built by icos-pack from `uki` and the root's two images):
/// every member hashed as read back from the package, the root hash from the verity parameters,
/// and the UKI checked to carry the same version, image id and root hash.
pub fn make_manifest(
    package: &Path,
    uki: &Path,
    verity_params: &Path,
    image_id: &str,
    version: &str,
) -> Result<UpdateManifest, UpdateError> {
    let build = UpdateError::Build;
    let root_hash =
        icos_uki::root_hash_from_verity_params(verity_params).map_err(|e| build(e.to_string()))?;
    let source = open_regular(package).map_err(|source| UpdateError::Io {
        what: format!("cannot open {}", package.display()),
        source,
    })?;
    let mut sinks: Vec<Box<dyn std::io::Write>> = (0..manifest::MEMBERS.len())
        .map(|_| Box::new(std::io::sink()) as Box<dyn std::io::Write>)
        .collect();
    let mut sinks: Vec<package::Sink<'_>> = sinks
        .iter_mut()
        .map(|s| package::Sink {
            target: "nowhere".into(),
            out: s.as_mut(),
        })
        .collect();
    let (members, sha256, size) = package::stream(
        Box::new(source),
        &package.display().to_string(),
        None,
        Duration::from_secs(600),
        &mut sinks,
    )?;
    let (uki_sha, uki_size) = icos_common::sha256_file(uki).map_err(|source| UpdateError::Io {
        what: format!("cannot read {}", uki.display()),
        source,
    })?;
    if (uki_sha, uki_size) != (members[0].sha256, members[0].size) {
        return Err(build(format!(
            "{} is not the package's {} member",
            uki.display(),
            manifest::MEMBERS[0]
        )));
    }
    let uki_err = |e: icos_uki::UkiError| build(e.to_string());
    let osrel = icos_uki::read_section(uki, ".osrel").map_err(uki_err)?;
    let osrel = String::from_utf8_lossy(&osrel);
    let (id, ver) = apply::os_release_fields(&osrel, uki)?;
    if (id.as_str(), ver.as_str()) != (image_id, version) {
        return Err(build(format!(
            "the UKI's .osrel says IMAGE_ID={id} IMAGE_VERSION={ver}, the release says {image_id} {version}"
        )));
    }
    let cmdline = icos_uki::read_section(uki, ".cmdline").map_err(uki_err)?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    if !cmdline
        .split_whitespace()
        .any(|w| w == format!("roothash={root_hash}"))
    {
        return Err(build(format!(
            "the UKI's command line {cmdline:?} does not carry roothash={root_hash}"
        )));
    }
    let m = UpdateManifest {
        schema: manifest::SCHEMA.into(),
        image_id: image_id.into(),
        version: version.into(),
        root_hash,
        package: manifest::Blob {
            name: manifest::PACKAGE_NAME.into(),
            size,
            sha256,
        },
        members,
    };
    // What we write must parse as what a node accepts.
    UpdateManifest::parse(&m.to_bytes(), package)?;
    Ok(m)
}
