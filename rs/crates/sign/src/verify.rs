//! Verification of a release directory.
//!
//! A release directory holds exactly:
//! - `SHA256SUMS` and `SHA256SUMS.minisig` (required): the signed list of artifacts;
//! - every file listed in `SHA256SUMS` (required, hash must match);
//! - optionally `NAME.minisig` for a listed file (for example `build-manifest.json.minisig`),
//!   which must then verify too;
//! - optionally the metadata files made from the artifacts after `SHA256SUMS` exists,
//!   [`METADATA_FILES`] (`provenance.intoto.json`, `sbom.spdx.json`): they cannot be listed in the
//!   sums they describe, so each must carry its own valid `NAME.minisig`.
//!
//! Anything else (an unlisted file, a signature without its file, a directory, a symlink) is a
//! problem: every byte of a release is covered by a signature.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

use icos_common::sha256_file;

use crate::keys::{KeyId, PublicKey};
use crate::minisig::{verify_reader, SigProblem, SIG_SUFFIX};
use crate::sums::{parse_sums, SUMS_NAME};

/// Metadata files allowed in a release without being listed in `SHA256SUMS`; each must be signed.
pub const METADATA_FILES: &[&str] = &["provenance.intoto.json", "sbom.spdx.json"];

/// One thing wrong with a release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Signature(#[from] SigProblem),
    #[error("{SUMS_NAME} is missing: a release directory must contain {SUMS_NAME} and {SUMS_NAME}{SIG_SUFFIX}")]
    NoSums,
    #[error("{0}")]
    BadSums(String),
    #[error("{name} is listed in {SUMS_NAME} but missing from the release directory")]
    Missing { name: String },
    #[error("{name}: sha256 mismatch: {SUMS_NAME} says {expected}, the file has {actual}: the file was modified or replaced")]
    HashMismatch {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("{name} is not a regular file ({kind}): a release directory holds only regular files")]
    NotRegular { name: String, kind: &'static str },
    #[error("{name} is not listed in {SUMS_NAME} and is not an allowed signed metadata file ({}): remove it, or rebuild the sums", METADATA_FILES.join(", "))]
    Extra { name: String },
    #[error("{name} is a signature, but {file} is not part of the release: remove it")]
    OrphanSignature { name: String, file: String },
    #[error("{name} is not listed in {SUMS_NAME}, so it needs its own signature {name}{SIG_SUFFIX}: run `icos-sign sign` on it")]
    Unsigned { name: String },
    #[error("cannot read {name}: {reason}")]
    Io { name: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read release directory {dir}: {source}")]
    Dir { dir: PathBuf, source: io::Error },
    #[error("release {dir} does NOT verify ({} problem{}):{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    Failed {
        dir: PathBuf,
        problems: Vec<Problem>,
    },
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            write!(f, "\n  - {p}")?;
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Regular => "a regular file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Other => "a special file",
        }
    }
}

/// Verifies the release in `dir` against `pk`; every problem found is reported, not just the first.
pub fn verify_release(dir: &Path, pk: &PublicKey) -> Result<Verified, VerifyError> {
    let mut present: BTreeMap<String, Kind> = BTreeMap::new();
    let mut problems = Vec::new();
    let rd = fs::read_dir(dir).map_err(|source| VerifyError::Dir {
        dir: dir.into(),
        source,
    })?;
    for entry in rd {
        let entry = entry.map_err(|source| VerifyError::Dir {
            dir: dir.into(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = match entry.file_type() {
            Ok(t) if t.is_file() => Kind::Regular,
            Ok(t) if t.is_dir() => Kind::Dir,
            Ok(t) if t.is_symlink() => Kind::Symlink,
            Ok(_) => Kind::Other,
            Err(e) => {
                problems.push(Problem::Io {
                    name: name.clone(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        present.insert(name, kind);
    }

    // Names accounted for (listed, signature, metadata); anything else is extra.
    let mut accounted: BTreeMap<String, ()> = BTreeMap::new();
    let require_regular = |name: &str, problems: &mut Vec<Problem>| -> bool {
        match present.get(name) {
            None => false,
            Some(Kind::Regular) => true,
            Some(k) => {
                problems.push(Problem::NotRegular {
                    name: name.into(),
                    kind: k.describe(),
                });
                false
            }
        }
    };

    let sums_sig = format!("{SUMS_NAME}{SIG_SUFFIX}");
    accounted.insert(SUMS_NAME.into(), ());
    accounted.insert(sums_sig.clone(), ());
    let mut listed = Vec::new();
    let mut signed = Vec::new();

    if !present.contains_key(SUMS_NAME) {
        problems.push(Problem::NoSums);
    } else if require_regular(SUMS_NAME, &mut problems) {
        let sums_path = dir.join(SUMS_NAME);
        match fs::read(&sums_path) {
            Err(e) => problems.push(Problem::Io {
                name: SUMS_NAME.into(),
                reason: e.to_string(),
            }),
            Ok(bytes) => {
                // The signature first: a bad signature means none of what follows can be trusted,
                // but the file checks still run so that every problem is named at once.
                match read_sig(dir, &sums_sig, SUMS_NAME, &present) {
                    Err(p) => problems.push(p),
                    Ok(text) => {
                        if let Err(p) =
                            verify_reader(pk, &text, Cursor::new(&bytes), SUMS_NAME, &sums_sig)
                        {
                            problems.push(p.into());
                        }
                    }
                }
                let text = String::from_utf8_lossy(&bytes);
                match parse_sums(&text, &sums_path) {
                    Err(e) => problems.push(Problem::BadSums(e.to_string())),
                    Ok(entries) => {
                        for e in &entries {
                            accounted.insert(e.name.clone(), ());
                            if e.name == SUMS_NAME || e.name.ends_with(SIG_SUFFIX) {
                                problems.push(Problem::BadSums(format!(
                                    "{SUMS_NAME} lists {}, a sums or signature file, which cannot be covered by the sums it is part of",
                                    e.name
                                )));
                                continue;
                            }
                            if !present.contains_key(&e.name) {
                                problems.push(Problem::Missing {
                                    name: e.name.clone(),
                                });
                                continue;
                            }
                            if !require_regular(&e.name, &mut problems) {
                                continue;
                            }
                            match sha256_file(&dir.join(&e.name)) {
                                Err(err) => problems.push(Problem::Io {
                                    name: e.name.clone(),
                                    reason: err.to_string(),
                                }),
                                Ok((actual, _)) if actual != e.sha256 => {
                                    problems.push(Problem::HashMismatch {
                                        name: e.name.clone(),
                                        expected: e.sha256.to_string(),
                                        actual: actual.to_string(),
                                    })
                                }
                                Ok(_) => listed.push(e.name.clone()),
                            }
                        }
                    }
                }
            }
        }
    }

    // Unlisted metadata must be signed.
    for meta in METADATA_FILES {
        if present.contains_key(*meta) && !accounted.contains_key(*meta) {
            accounted.insert((*meta).into(), ());
            if !present.contains_key(&format!("{meta}{SIG_SUFFIX}")) {
                problems.push(Problem::Unsigned {
                    name: (*meta).into(),
                });
            }
        }
    }

    // Every other signature must belong to a file of the release and verify.
    let sig_names: Vec<String> = present
        .keys()
        .filter(|n| n.ends_with(SIG_SUFFIX) && **n != sums_sig)
        .cloned()
        .collect();
    for sig_name in sig_names {
        let file = sig_name[..sig_name.len() - SIG_SUFFIX.len()].to_owned();
        accounted.insert(sig_name.clone(), ());
        if !accounted.contains_key(&file) || !present.contains_key(&file) {
            problems.push(Problem::OrphanSignature {
                name: sig_name,
                file,
            });
            continue;
        }
        // A listed file that is not regular was reported above.
        if !require_regular(&sig_name, &mut problems) || present.get(&file) != Some(&Kind::Regular)
        {
            continue;
        }
        let text = match read_sig(dir, &sig_name, &file, &present) {
            Ok(t) => t,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        match File::open(dir.join(&file)) {
            Err(e) => problems.push(Problem::Io {
                name: file.clone(),
                reason: e.to_string(),
            }),
            Ok(f) => match verify_reader(pk, &text, f, &file, &sig_name) {
                Ok(_) => signed.push(file),
                Err(p) => problems.push(p.into()),
            },
        }
    }

    for (name, kind) in &present {
        if !accounted.contains_key(name) {
            problems.push(match kind {
                Kind::Regular => Problem::Extra { name: name.clone() },
                k => Problem::NotRegular {
                    name: name.clone(),
                    kind: k.describe(),
                },
            });
        }
    }

    if problems.is_empty() {
        signed.sort();
        Ok(Verified {
            listed,
            signed,
            key: pk.id(),
        })
    } else {
        Err(VerifyError::Failed {
            dir: dir.into(),
            problems,
        })
    }
}

fn read_sig(
    dir: &Path,
    sig_name: &str,
    file: &str,
    present: &BTreeMap<String, Kind>,
) -> Result<String, Problem> {
    match present.get(sig_name) {
        None => Err(SigProblem::Missing {
            sig: sig_name.into(),
            file: file.into(),
        }
        .into()),
        Some(Kind::Regular) => fs::read_to_string(dir.join(sig_name)).map_err(|e| {
            SigProblem::Malformed {
                sig: sig_name.into(),
                file: file.into(),
                reason: e.to_string(),
            }
            .into()
        }),
        Some(k) => Err(Problem::NotRegular {
            name: sig_name.into(),
            kind: k.describe(),
        }),
    }
}
