//! `SHA256SUMS` in the coreutils format: one `<64 hex>  <name>\n` line per file, name = the file's
//! base name, lines sorted bytewise by name. `sha256sum -c SHA256SUMS` run in the directory of the
//! files verifies it; so does [`check_sums`], which resolves names against the directory of the
//! `SHA256SUMS` file itself (so it works from any working directory).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use icos_common::{sha256_file, AtomicFile, Digest};

#[derive(Debug, thiserror::Error)]
pub enum SumsError {
    #[error("nothing to sum: name at least one file")]
    NoFiles,
    #[error("{path}: the base name must be UTF-8 without newlines or backslashes (sha256sum would escape it)")]
    BadName { path: PathBuf },
    #[error("{a} and {b} have the same base name {name:?}: SHA256SUMS names files by base name, so they must differ")]
    Duplicate {
        name: String,
        a: PathBuf,
        b: PathBuf,
    },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: not a SHA256SUMS line (<64 hex digits>  <name>)")]
    Malformed { path: PathBuf, line: usize },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// One file that failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SumProblem {
    Missing {
        name: String,
    },
    Mismatch {
        name: String,
        expected: Digest,
        actual: Digest,
    },
}

impl std::fmt::Display for SumProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SumProblem::Missing { name } => write!(f, "{name}: FAILED open or read (missing)"),
            SumProblem::Mismatch {
                name,
                expected,
                actual,
            } => {
                write!(f, "{name}: FAILED (expected {expected}, found {actual})")
            }
        }
    }
}

/// Hashes `files` and writes `out`; returns the (name, digest) lines in file order.
pub fn write_sums(files: &[PathBuf], out: &Path) -> Result<Vec<(String, Digest)>, SumsError> {
    if files.is_empty() {
        return Err(SumsError::NoFiles);
    }
    let mut by_name: BTreeMap<String, &PathBuf> = BTreeMap::new();
    for path in files {
        let name = crate::base_name(path)
            .filter(|n| !n.contains('\n') && !n.contains('\\') && !n.contains('\r'))
            .ok_or_else(|| SumsError::BadName { path: path.clone() })?;
        if let Some(a) = by_name.insert(name.clone(), path) {
            return Err(SumsError::Duplicate {
                name,
                a: a.clone(),
                b: path.clone(),
            });
        }
    }
    let mut lines = Vec::new();
    for (name, path) in by_name {
        let (digest, _) = sha256_file(path).map_err(|source| SumsError::Read {
            path: path.clone(),
            source,
        })?;
        lines.push((name, digest));
    }
    let wr = |source: io::Error| SumsError::Write {
        path: out.to_path_buf(),
        source,
    };
    let mut f = AtomicFile::create(out).map_err(wr)?;
    for (name, digest) in &lines {
        writeln!(f, "{}  {name}", digest.hex()).map_err(wr)?;
    }
    f.commit().map_err(wr)?;
    Ok(lines)
}

/// Verifies every line of `sums`; returns the files that are missing or differ (empty = all good)
/// and the number of lines checked.
pub fn check_sums(sums: &Path) -> Result<(Vec<SumProblem>, usize), SumsError> {
    let rd = |source: io::Error| SumsError::Read {
        path: sums.to_path_buf(),
        source,
    };
    let dir = sums.parent().unwrap_or(Path::new(""));
    let reader = BufReader::new(File::open(sums).map_err(rd)?);
    let mut problems = Vec::new();
    let mut count = 0;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(rd)?;
        if line.is_empty() {
            continue;
        }
        let malformed = || SumsError::Malformed {
            path: sums.to_path_buf(),
            line: i + 1,
        };
        // "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode)
        let (hex, name) = line.split_at_checked(64).ok_or_else(malformed)?;
        let name = name
            .strip_prefix("  ")
            .or_else(|| name.strip_prefix(" *"))
            .ok_or_else(malformed)?;
        let expected = Digest::from_hex(hex).map_err(|_| malformed())?;
        if name.is_empty() || name.contains('/') {
            return Err(malformed());
        }
        count += 1;
        match sha256_file(&dir.join(name)) {
            Ok((actual, _)) if actual == expected => {}
            Ok((actual, _)) => problems.push(SumProblem::Mismatch {
                name: name.to_string(),
                expected,
                actual,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => problems.push(SumProblem::Missing {
                name: name.to_string(),
            }),
            Err(source) => {
                return Err(SumsError::Read {
                    path: dir.join(name),
                    source,
                })
            }
        }
    }
    Ok((problems, count))
}
