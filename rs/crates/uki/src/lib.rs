//! Unified kernel images (UKIs): systemd's `linuxx64.efi.stub` with the kernel, the initramfs,
//! the kernel command line and os-release appended as PE sections, written deterministically, and
//! read back section by section.
//!
//! - [`write_uki`]: stub + [`UkiSpec`] → UKI (through a temporary file renamed on success), with
//!   an [`UkiReport`] (schema `icos.uki-report/v1`; [`write_report`], [`read_report`]).
//! - [`read_sections`], [`read_section`], [`copy_section`]: the sections of a UKI, checked against
//!   hostile input (a UKI read from a FAT partition anyone may have written).
//! - [`root_hash_from_verity_params`], [`cmdline_with_root_hash`]: the `roothash=` the UKI carries.
//!
//! The rules each section must follow for systemd-stub/systemd-boot 252 to use it unchanged are
//! in [`payload`]; the header checks shared by writer and reader are in `pe`.

mod checksum;
pub mod payload;
mod pe;
mod read;
mod write;

use std::fs;
use std::io;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use icos_common::{AtomicFile, Digest};
use serde::{Deserialize, Serialize};

pub use checksum::PeChecksum;
pub use pe::{HEADER_READ_MAX, MAX_SECTIONS};
pub use read::{copy_section, read_section, read_sections};
pub use write::{write_uki, UkiSpec, SECTION_ORDER, STUB_MAX};

/// The `schema` of [`UkiReport`].
pub const REPORT_SCHEMA: &str = "icos.uki-report/v1";
/// The `schema` of the dm-verity parameters `--cmdline-from-verity` reads.
pub const VERITY_PARAMS_SCHEMA: &str = "icos.verity-params/v1";

#[derive(Debug, thiserror::Error)]
pub enum UkiError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a usable systemd-stub: {reason}")]
    BadStub { path: PathBuf, reason: String },
    #[error("{}{section}: {reason}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    BadInput {
        section: &'static str,
        path: Option<PathBuf>,
        reason: String,
    },
    #[error("{path}: not a valid UKI: {reason}")]
    BadImage { path: PathBuf, reason: String },
    #[error("{path}: {what} is {size} bytes, more than the {max} bytes allowed")]
    TooLarge {
        path: PathBuf,
        what: String,
        size: u64,
        max: u64,
    },
    #[error("{path}: has no section {name}")]
    NoSection { path: PathBuf, name: String },
    #[error("{path}: {count} sections match {name} as systemd-stub matches names (by prefix); it would use the last, so the UKI is ambiguous")]
    Ambiguous {
        path: PathBuf,
        name: String,
        count: usize,
    },
    #[error("{path}: {reason}")]
    VerityParams { path: PathBuf, reason: String },
    #[error("the output {output} is the same file as {other}: write it somewhere else")]
    SameFile { output: PathBuf, other: PathBuf },
    #[error("{0}")]
    Usage(String),
}

/// One section of a UKI as [`read_sections`] and the report list it. `size` is the
/// VirtualSize, the number of bytes systemd-stub uses; `sha256` covers exactly those bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionInfo {
    pub name: String,
    pub virtual_address: u32,
    pub file_offset: u32,
    pub size: u32,
    pub sha256: Digest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub sha256: Digest,
    pub size: u64,
}

/// What [`write_uki`] wrote (`icos.uki-report/v1`): every section of the UKI, the stub's
/// included, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UkiReport {
    pub schema: String,
    pub size: u64,
    pub sha256: Digest,
    /// The PE CheckSum written into the optional header.
    pub pe_checksum: u32,
    pub stub: FileDigest,
    pub cmdline: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uname: Option<String>,
    pub sections: Vec<SectionInfo>,
}

/// Writes `report` as pretty JSON to `out` (atomically).
pub fn write_report(report: &UkiReport, out: &Path) -> Result<(), UkiError> {
    let wr = |source: io::Error| UkiError::Io {
        path: out.to_path_buf(),
        source,
    };
    let mut f = AtomicFile::create(out).map_err(wr)?;
    serde_json::to_writer_pretty(&mut f, report).map_err(|e| wr(e.into()))?;
    f.write_all(b"\n").map_err(wr)?;
    f.commit().map_err(wr)
}

/// Reads a report written by [`write_report`], checking its schema.
pub fn read_report(path: &Path) -> Result<UkiReport, UkiError> {
    let bad = |reason: String| UkiError::BadInput {
        section: "report",
        path: Some(path.to_path_buf()),
        reason,
    };
    let data = write::read_capped(path, 16 * 1024 * 1024, "the UKI report")?;
    let report: UkiReport =
        serde_json::from_slice(&data).map_err(|e| bad(format!("not a UKI report: {e}")))?;
    if report.schema != REPORT_SCHEMA {
        return Err(bad(format!(
            "schema is {:?}, expected {REPORT_SCHEMA:?}",
            report.schema
        )));
    }
    Ok(report)
}

/// Refuses outputs that are one of the inputs or each other (the same path, a symlink to it or
/// a hardlink of it): the output is written to a temporary file and renamed over its name, which
/// would replace an input the run is still reading.
pub fn check_outputs_distinct(inputs: &[&Path], outputs: &[&Path]) -> Result<(), UkiError> {
    for (i, out) in outputs.iter().enumerate() {
        for other in inputs.iter().chain(&outputs[i + 1..]) {
            if same_file(out, other) {
                return Err(UkiError::SameFile {
                    output: out.to_path_buf(),
                    other: other.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    if let (Ok(x), Ok(y)) = (fs::metadata(a), fs::metadata(b)) {
        use std::os::unix::fs::MetadataExt;
        return x.dev() == y.dev() && x.ino() == y.ino();
    }
    resolve(a) == resolve(b)
}

/// The absolute path a possibly not yet existing file would have.
fn resolve(p: &Path) -> PathBuf {
    if let Ok(c) = fs::canonicalize(p) {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            fs::canonicalize(dir)
                .map(|d| d.join(name))
                .unwrap_or_else(|_| p.to_path_buf())
        }
        _ => p.to_path_buf(),
    }
}

/// The root hash in the dm-verity parameters the verity tool writes (schema
/// `icos.verity-params/v1`, field `root_hash`: 64 lowercase hex digits).
pub fn root_hash_from_verity_params(path: &Path) -> Result<String, UkiError> {
    let bad = |reason: String| UkiError::VerityParams {
        path: path.to_path_buf(),
        reason,
    };
    let data = write::read_capped(path, 1024 * 1024, "the verity parameters")?;
    let v: serde_json::Value =
        serde_json::from_slice(&data).map_err(|e| bad(format!("not JSON: {e}")))?;
    let schema = v.get("schema").and_then(|s| s.as_str());
    if schema != Some(VERITY_PARAMS_SCHEMA) {
        return Err(bad(format!(
            "schema is {schema:?}, expected {VERITY_PARAMS_SCHEMA:?}: pass the params file the verity tool wrote"
        )));
    }
    let hash = v
        .get("root_hash")
        .and_then(|h| h.as_str())
        .ok_or_else(|| bad("has no string field root_hash".into()))?;
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad(format!(
            "root_hash {hash:?} is not 64 lowercase hex digits (a sha256 root hash)"
        )));
    }
    Ok(hash.to_string())
}

/// `cmdline` with ` roothash=<hex>` appended; refuses a command line that already sets roothash=,
/// which would leave two values for the initramfs to choose from.
pub fn cmdline_with_root_hash(cmdline: &str, root_hash: &str) -> Result<String, UkiError> {
    if cmdline.split(' ').any(|arg| arg.starts_with("roothash=")) {
        return Err(UkiError::Usage(format!(
            "the command line {cmdline:?} already sets roothash=; drop it or the verity parameters"
        )));
    }
    Ok(if cmdline.is_empty() {
        format!("roothash={root_hash}")
    } else {
        format!("{cmdline} roothash={root_hash}")
    })
}
