//! Verification of a release directory.
//!
//! A release directory holds exactly these regular files:
//! - `SHA256SUMS` and `SHA256SUMS.minisig`: the signed list of artifacts;
//! - every file listed in `SHA256SUMS`, with a matching hash: `build-manifest.json`,
//!   `rootfs.manifest.json` and the artifacts the build manifest names, nothing else;
//! - `provenance.intoto.json` and `sbom.spdx.json` ([`METADATA_FILES`]), made after `SHA256SUMS`
//!   (so not listed in it), each with its own valid `NAME.minisig`;
//! - optionally `NAME.minisig` for a listed file, which must then verify too.
//!
//! Nothing is taken on trust: every file is opened without following symbolic links and must be
//! a regular file (FIFOs are never opened in a way that blocks); `SHA256SUMS` is size-capped and
//! its signature checked before a byte of it is parsed, and a problem with it stops the check;
//! the provenance must describe exactly the artifacts of `SHA256SUMS` (names and digests), the
//! SBOM the root filesystem the build manifest names, and the build manifest exactly the files
//! `SHA256SUMS` lists ([`crate::bind`]). Every other problem is collected; the first
//! [`MAX_PROBLEMS`] are kept and the rest counted.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use icos_common::safe_open::refused_kind;
use icos_common::{open_regular_nofollow, sha256_reader, NotRegular};

use crate::bind;
use crate::keys::{KeyId, PublicKey};
use crate::minisig::{verify_reader, SigProblem, SIG_SUFFIX};
use crate::sums::{parse_sums, SumEntry, SUMS_NAME};

pub const PROVENANCE_NAME: &str = "provenance.intoto.json";
pub const SBOM_NAME: &str = "sbom.spdx.json";
pub const BUILD_MANIFEST_NAME: &str = "build-manifest.json";
pub const ROOTFS_MANIFEST_NAME: &str = "rootfs.manifest.json";
/// The signed metadata files every release holds besides what `SHA256SUMS` lists.
pub const METADATA_FILES: &[&str] = &[PROVENANCE_NAME, SBOM_NAME];

/// The largest `SHA256SUMS` read (a release lists a handful of files).
pub const SUMS_MAX: u64 = 1 << 20;
/// The largest signature file read (minisign's comments are at most a few KiB).
pub const SIG_MAX: u64 = 64 << 10;
/// The largest build manifest read into memory.
pub const BUILD_MANIFEST_MAX: u64 = 64 << 20;
/// The largest provenance read into memory.
pub const PROVENANCE_MAX: u64 = 64 << 20;
/// How many problems are kept (and printed); the rest are counted.
pub const MAX_PROBLEMS: usize = 50;

/// One thing wrong with a release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Signature(#[from] SigProblem),
    #[error("{SUMS_NAME} is missing: a release directory must contain {SUMS_NAME} and {SUMS_NAME}{SIG_SUFFIX}")]
    NoSums,
    #[error("{0}")]
    BadSums(String),
    #[error("{name} is {size} bytes, more than the {max} a release's {name} may have: not a release file")]
    TooLarge { name: String, size: u64, max: u64 },
    #[error("{name} is listed in {SUMS_NAME} but missing from the release directory")]
    Missing { name: String },
    #[error("{name} is missing: a release holds {}, each with its signature (scripts/release.sh makes them)", METADATA_FILES.join(" and "))]
    MissingMetadata { name: String },
    #[error("{name}: sha256 mismatch: {SUMS_NAME} says {expected}, the file has {actual}: the file was modified or replaced")]
    HashMismatch {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("{name} {}: a release directory holds only regular files", kind)]
    NotRegular { name: String, kind: NotRegular },
    #[error("{name} is not listed in {SUMS_NAME} and is not part of a release: remove it, or rebuild the release")]
    Extra { name: String },
    #[error("{name} is a signature, but {file} is not part of the release: remove it")]
    OrphanSignature { name: String, file: String },
    #[error("{name} is not listed in {SUMS_NAME}, so it needs its own signature {name}{SIG_SUFFIX}: run `icos-sign sign` on it")]
    Unsigned { name: String },
    #[error("{name} does not belong to this release: {reason}")]
    NotBound { name: String, reason: String },
    #[error("{name} cannot be checked against the release: {reason}")]
    BadMetadata { name: String, reason: String },
    #[error("cannot read {name}: {reason}")]
    Io { name: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read release directory {dir}: {source}")]
    Dir { dir: PathBuf, source: io::Error },
    #[error("release {dir} does NOT verify ({total} problem{}{}):{}", if *total == 1 { "" } else { "s" }, if *fatal { ", checking stopped at the first" } else { "" }, ProblemList(problems, *total))]
    Failed {
        dir: PathBuf,
        /// The first [`MAX_PROBLEMS`] problems.
        problems: Vec<Problem>,
        /// How many problems were found in all.
        total: usize,
        /// Whether checking stopped at a problem that makes the rest meaningless (a missing,
        /// unsigned or malformed `SHA256SUMS`).
        fatal: bool,
    },
}

struct ProblemList<'a>(&'a [Problem], usize);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            write!(f, "\n  - {p}")?;
        }
        if self.1 > self.0.len() {
            write!(f, "\n  … and {} more", self.1 - self.0.len())?;
        }
        Ok(())
    }
}

/// A release that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The files listed in `SHA256SUMS`, all present with matching hashes.
    pub listed: Vec<String>,
    /// Files with their own valid signature (besides `SHA256SUMS`), sorted.
    pub signed: Vec<String>,
    /// The key that signed it.
    pub key: KeyId,
}

/// The problems found so far: the first [`MAX_PROBLEMS`] kept, all counted.
#[derive(Default)]
struct Problems {
    kept: Vec<Problem>,
    total: usize,
}

impl Problems {
    fn push(&mut self, p: impl Into<Problem>) {
        self.total += 1;
        if self.kept.len() < MAX_PROBLEMS {
            self.kept.push(p.into());
        }
    }
}

/// What `open_regular_nofollow` said about a release file, as a problem.
fn open_problem(name: &str, e: io::Error) -> Problem {
    match refused_kind(&e) {
        Some(kind) => Problem::NotRegular {
            name: name.into(),
            kind,
        },
        None => Problem::Io {
            name: name.into(),
            reason: e.to_string(),
        },
    }
}

/// Opens release file `name` (no symlinks, regular files only); `Ok(None)` when it is absent.
fn open(dir: &Path, name: &str) -> Result<Option<File>, Problem> {
    match open_regular_nofollow(&dir.join(name)) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(open_problem(name, e)),
    }
}

/// Reads an opened release file whole, refusing one larger than `max` before reading it.
fn read_capped(mut f: File, name: &str, max: u64) -> Result<Vec<u8>, Problem> {
    let io_err = |e: io::Error| Problem::Io {
        name: name.into(),
        reason: e.to_string(),
    };
    let size = f.metadata().map_err(io_err)?.len();
    if size > max {
        return Err(Problem::TooLarge {
            name: name.into(),
            size,
            max,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    (&mut f)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > max {
        // It grew while being read.
        return Err(Problem::TooLarge {
            name: name.into(),
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

/// The text of signature `sig_name` (of `file`), opened safely and size-capped.
fn read_sig(dir: &Path, sig_name: &str, file: &str) -> Result<String, Problem> {
    let f = open(dir, sig_name)?.ok_or_else(|| SigProblem::Missing {
        sig: sig_name.into(),
        file: file.into(),
    })?;
    let bytes = read_capped(f, sig_name, SIG_MAX)?;
    String::from_utf8(bytes).map_err(|_| {
        SigProblem::Malformed {
            sig: sig_name.into(),
            file: file.into(),
            reason: "not UTF-8 text".into(),
        }
        .into()
    })
}

/// Verifies the signature of the opened file `name` (read from its start, streamed).
fn check_sig(dir: &Path, pk: &PublicKey, name: &str, data: &mut File) -> Result<(), Problem> {
    let sig_name = format!("{name}{SIG_SUFFIX}");
    let text = read_sig(dir, &sig_name, name)?;
    data.rewind().map_err(|e| Problem::Io {
        name: name.into(),
        reason: e.to_string(),
    })?;
    verify_reader(pk, &text, &mut *data, name, &sig_name)?;
    data.rewind().map_err(|e| Problem::Io {
        name: name.into(),
        reason: e.to_string(),
    })?;
    Ok(())
}

/// Lists the directory: every name with the type of what it names (not followed).
fn list(dir: &Path) -> Result<BTreeMap<String, Option<NotRegular>>, VerifyError> {
    let dir_err = |source| VerifyError::Dir {
        dir: dir.into(),
        source,
    };
    let mut present = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(dir_err)? {
        let entry = entry.map_err(dir_err)?;
        let kind = entry.file_type().map_err(dir_err)?;
        present.insert(
            entry.file_name().to_string_lossy().into_owned(),
            NotRegular::of(kind),
        );
    }
    Ok(present)
}

/// `SHA256SUMS`, verified before it is parsed. Any problem here is fatal.
fn signed_sums(dir: &Path, pk: &PublicKey) -> Result<Vec<SumEntry>, Problem> {
    let f = open(dir, SUMS_NAME)?.ok_or(Problem::NoSums)?;
    let bytes = read_capped(f, SUMS_NAME, SUMS_MAX)?;
    let sig_name = format!("{SUMS_NAME}{SIG_SUFFIX}");
    let sig = read_sig(dir, &sig_name, SUMS_NAME)?;
    verify_reader(pk, &sig, Cursor::new(&bytes), SUMS_NAME, &sig_name)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Problem::BadSums(format!("{SUMS_NAME} is not UTF-8 text")))?;
    parse_sums(text, Path::new(SUMS_NAME)).map_err(|e| Problem::BadSums(e.to_string()))
}

/// Verifies the release in `dir` against `pk`.
pub fn verify_release(dir: &Path, pk: &PublicKey) -> Result<Verified, VerifyError> {
    let present = list(dir)?;
    let failed = |problems: Problems, fatal: bool| VerifyError::Failed {
        dir: dir.into(),
        problems: problems.kept,
        total: problems.total,
        fatal,
    };
    let mut problems = Problems::default();

    // 1. SHA256SUMS: nothing below means anything unless it is there, signed and well-formed.
    let entries = match signed_sums(dir, pk) {
        Ok(e) => e,
        Err(p) => {
            problems.push(p);
            return Err(failed(problems, true));
        }
    };
    let sums_sig = format!("{SUMS_NAME}{SIG_SUFFIX}");
    let mut accounted: Vec<String> = vec![SUMS_NAME.into(), sums_sig];

    // 2. Every listed file, hashed from what was opened.
    let mut listed = Vec::new();
    let mut signed = Vec::new();
    let mut build_manifest: Option<Vec<u8>> = None;
    for e in &entries {
        accounted.push(e.name.clone());
        if e.name == SUMS_NAME
            || e.name.ends_with(SIG_SUFFIX)
            || METADATA_FILES.contains(&e.name.as_str())
        {
            problems.push(Problem::BadSums(format!(
                "{SUMS_NAME} lists {}, which is not an artifact: {SUMS_NAME}, signatures, the provenance and the SBOM cannot be covered by the sums they describe or sign",
                e.name
            )));
            continue;
        }
        let mut file = match open(dir, &e.name) {
            Ok(Some(f)) => f,
            Ok(None) => {
                problems.push(Problem::Missing {
                    name: e.name.clone(),
                });
                continue;
            }
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let digest = if e.name == BUILD_MANIFEST_NAME {
            // Kept in memory: its facts bind the SBOM and the sums to the build.
            read_capped(file, &e.name, BUILD_MANIFEST_MAX).map(|bytes| {
                let d = icos_common::Digest::of(&bytes);
                if d == e.sha256 {
                    build_manifest = Some(bytes);
                }
                d
            })
        } else {
            sha256_reader(&mut file)
                .map(|(d, _)| d)
                .map_err(|err| Problem::Io {
                    name: e.name.clone(),
                    reason: err.to_string(),
                })
        };
        match digest {
            Err(p) => problems.push(p),
            Ok(actual) if actual != e.sha256 => problems.push(Problem::HashMismatch {
                name: e.name.clone(),
                expected: e.sha256.to_string(),
                actual: actual.to_string(),
            }),
            Ok(_) => listed.push(e.name.clone()),
        }
    }

    // 3. The provenance and the SBOM: present, regular, signed, and about this release.
    let facts = build_manifest.as_deref().map(bind::build_facts);
    for meta in METADATA_FILES {
        accounted.push(meta.to_string());
        accounted.push(format!("{meta}{SIG_SUFFIX}"));
        let mut file = match open(dir, meta) {
            Ok(Some(f)) => f,
            Ok(None) => {
                problems.push(Problem::MissingMetadata {
                    name: meta.to_string(),
                });
                continue;
            }
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        if let Err(p) = check_sig(dir, pk, meta, &mut file) {
            problems.push(p);
            continue;
        }
        signed.push(meta.to_string());
        let bound = if *meta == PROVENANCE_NAME {
            read_capped(file, meta, PROVENANCE_MAX)
                .and_then(|bytes| bind::provenance_subjects(&bytes, &entries))
        } else {
            match &facts {
                Some(Ok(f)) => bind::sbom_root(file, f),
                // The build manifest's own problem is reported below or above.
                _ => Ok(()),
            }
        };
        if let Err(p) = bound {
            problems.push(p);
        }
    }

    // 4. The build manifest names exactly what SHA256SUMS lists.
    match &facts {
        None if !entries.iter().any(|e| e.name == BUILD_MANIFEST_NAME) => {
            problems.push(Problem::BadSums(format!(
                "{SUMS_NAME} does not list {BUILD_MANIFEST_NAME}: a release's sums cover its build manifest"
            )))
        }
        None => {} // listed but missing or modified: reported above
        Some(Err(p)) => problems.push(p.clone()),
        Some(Ok(f)) => {
            for p in bind::sums_match_manifest(&entries, f) {
                problems.push(p);
            }
        }
    }

    // 5. Signatures of listed files, and anything else in the directory.
    for (name, kind) in &present {
        if accounted.contains(name) {
            continue;
        }
        if let Some(file) = name.strip_suffix(SIG_SUFFIX) {
            if listed.iter().any(|l| l == file) {
                let mut data = match open(dir, file) {
                    Ok(Some(f)) => f,
                    Ok(None) => continue, // reported above
                    Err(p) => {
                        problems.push(p);
                        continue;
                    }
                };
                match check_sig(dir, pk, file, &mut data) {
                    Ok(()) => signed.push(file.to_string()),
                    Err(p) => problems.push(p),
                }
            } else if !entries.iter().any(|e| e.name == file) {
                problems.push(Problem::OrphanSignature {
                    name: name.clone(),
                    file: file.to_string(),
                });
            }
            continue;
        }
        problems.push(match kind {
            None => Problem::Extra { name: name.clone() },
            Some(k) => Problem::NotRegular {
                name: name.clone(),
                kind: *k,
            },
        });
    }

    if problems.total > 0 {
        return Err(failed(problems, false));
    }
    signed.sort();
    Ok(Verified {
        listed,
        signed,
        key: pk.id(),
    })
}
