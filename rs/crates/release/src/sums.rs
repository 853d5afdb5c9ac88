//! `SHA256SUMS` in the coreutils format: one `<64 hex>  <name>\n` line per file, name = the file's
//! base name, lines sorted bytewise by name. `sha256sum -c SHA256SUMS` run in the directory of the
//! files verifies it; so does [`check_sums`], which resolves names against the directory of the
//! `SHA256SUMS` file itself (so it works from any working directory) and is stricter than
//! sha256sum about what a listed name may be (see there).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use icos_common::safe_open::refused_kind;
use icos_common::{
    open_regular, open_regular_nofollow, sha256_file, sha256_reader, AtomicFile, Digest, NotRegular,
};

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
    #[error("{path} line {line} is longer than {MAX_LINE} bytes: not a SHA256SUMS line (a file name has at most 255 bytes)")]
    LineTooLong { path: PathBuf, line: usize },
    #[error("{path}: no properly formatted checksum lines found (an empty list verifies nothing)")]
    Empty { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// One line of `SHA256SUMS` that failed verification. Like `sha256sum -c --strict`, checking goes
/// on after each of these and fails at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SumProblem {
    /// The listed file does not exist.
    Missing { name: String },
    /// The file's bytes have another digest.
    Mismatch {
        name: String,
        expected: Digest,
        actual: Digest,
    },
    /// The listed name is a symbolic link, a directory, a FIFO, … (links are never followed).
    NotRegular { name: String, kind: NotRegular },
    /// The listed file exists but cannot be read.
    Unreadable { name: String, reason: String },
    /// A line names something other than a plain file name of the directory.
    BadName {
        line: usize,
        name: String,
        why: &'static str,
    },
    /// A line is not a SHA256SUMS line at all.
    Malformed { line: usize, why: String },
}

impl std::fmt::Display for SumProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SumProblem::Missing { name } => {
                write!(f, "{name}: FAILED open or read (no such file)")
            }
            SumProblem::Mismatch {
                name,
                expected,
                actual,
            } => {
                write!(f, "{name}: FAILED (expected {expected}, found {actual})")
            }
            SumProblem::NotRegular { name, kind } => write!(
                f,
                "{name}: FAILED: {kind}; SHA256SUMS lists regular files of its own directory"
            ),
            SumProblem::Unreadable { name, reason } => {
                write!(f, "{name}: FAILED open or read ({reason})")
            }
            SumProblem::BadName { line, name, why } => write!(
                f,
                "line {line}: {name:?} is not a plain file name: {why}; SHA256SUMS names files of its own directory, one path component each"
            ),
            SumProblem::Malformed { line, why } => write!(
                f,
                "line {line}: improperly formatted SHA256SUMS line ({why}): expected `<64 hex digits>  <file name>`"
            ),
        }
    }
}

/// The longest line `check_sums` reads: 64 hex digits, two separators and a name of at most 255
/// bytes (NAME_MAX) fit many times over; anything longer is refused before it is kept in memory.
pub const MAX_LINE: usize = 4096;
/// The most problems [`check_sums`] keeps; the rest are counted.
pub const MAX_KEPT_PROBLEMS: usize = 100;

/// The result of checking a sums file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SumsCheck {
    /// Lines that named a file (properly formatted or not), blank and comment lines excluded.
    pub lines: usize,
    /// Files that verified.
    pub ok: usize,
    /// The first [`MAX_KEPT_PROBLEMS`] problems, in line order.
    pub problems: Vec<SumProblem>,
    /// How many problems there were in all.
    pub failed: usize,
}

impl SumsCheck {
    fn push(&mut self, p: SumProblem) {
        self.failed += 1;
        if self.problems.len() < MAX_KEPT_PROBLEMS {
            self.problems.push(p);
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

/// Verifies every line of `sums` as `sha256sum -c --strict` does, run in the directory of `sums`
/// (so it works from any working directory), with these differences, all refusals:
/// - a listed name must be a *plain* file name: one path component, not `.` or `..`, no `/` (so
///   neither absolute nor in another directory), no backslash (sha256sum's escape for odd
///   names; the tools never write one) and no control characters;
/// - a listed name must be a regular file; a symbolic link is not followed, and FIFOs, devices
///   and directories are refused (never opened in a way that blocks);
/// - a line longer than [`MAX_LINE`] stops the check (memory stays bounded).
///
/// Accepted like sha256sum: `<hex>  name`, `<hex> *name`, `<hex> name`, the tagged form
/// `SHA256 (name) = <hex>`, upper-case hex, CRLF line endings, blank lines and `#` comments.
/// A file without a single properly formatted line is an error, as for sha256sum.
pub fn check_sums(sums: &Path) -> Result<SumsCheck, SumsError> {
    let rd = |source: io::Error| SumsError::Read {
        path: sums.to_path_buf(),
        source,
    };
    let dir = match sums.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut reader = BufReader::new(open_regular(sums).map_err(rd)?);
    let mut out = SumsCheck::default();
    let mut formatted = 0usize;
    let mut raw = Vec::new();
    for line_no in 1.. {
        raw.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut raw)
            .map_err(rd)?;
        if n == 0 {
            break;
        }
        if raw.len() > MAX_LINE {
            return Err(SumsError::LineTooLong {
                path: sums.to_path_buf(),
                line: line_no,
            });
        }
        let line = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            out.lines += 1;
            out.push(SumProblem::Malformed {
                line: line_no,
                why: "not UTF-8".into(),
            });
            continue;
        };
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.lines += 1;
        let (expected, name) = match parse_line(line) {
            Ok(x) => x,
            Err(why) => {
                out.push(SumProblem::Malformed { line: line_no, why });
                continue;
            }
        };
        formatted += 1;
        if let Err(why) = plain_name(name) {
            out.push(SumProblem::BadName {
                line: line_no,
                name: name.to_string(),
                why,
            });
            continue;
        }
        let name = name.to_string();
        let digest = open_regular_nofollow(&dir.join(&name)).and_then(sha256_reader);
        match digest {
            Ok((actual, _)) if actual == expected => out.ok += 1,
            Ok((actual, _)) => out.push(SumProblem::Mismatch {
                name,
                expected,
                actual,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => out.push(SumProblem::Missing { name }),
            Err(e) => match refused_kind(&e) {
                Some(kind) => out.push(SumProblem::NotRegular { name, kind }),
                None => out.push(SumProblem::Unreadable {
                    name,
                    reason: e.to_string(),
                }),
            },
        }
    }
    if formatted == 0 {
        return Err(SumsError::Empty {
            path: sums.to_path_buf(),
        });
    }
    Ok(out)
}

/// `<hex>  name`, `<hex> *name`, `<hex> name` or `SHA256 (name) = <hex>` → (digest, name).
fn parse_line(line: &str) -> Result<(Digest, &str), String> {
    if line.starts_with('\\') {
        return Err("a backslash-escaped name, which names no plain file".into());
    }
    let (hex, name) = if let Some(rest) = line.strip_prefix("SHA256 (") {
        rest.rsplit_once(") = ")
            .map(|(name, hex)| (hex, name))
            .ok_or("a tagged line without ') = '")?
    } else {
        let hex = line
            .get(..64)
            .ok_or("it does not start with 64 hex digits")?;
        let rest = line[64..]
            .strip_prefix(' ')
            .ok_or("no space after the 64 hex digits")?;
        let name = rest.strip_prefix([' ', '*']).unwrap_or(rest);
        (hex, name)
    };
    let digest = Digest::from_hex(&hex.to_ascii_lowercase())
        .map_err(|_| format!("{hex:?} is not 64 hex digits"))?;
    if name.is_empty() {
        return Err("no file name".into());
    }
    Ok((digest, name))
}

/// Why `name` is not one plain file name of a directory, if it is not.
fn plain_name(name: &str) -> Result<(), &'static str> {
    if name == "." || name == ".." {
        Err("it names a directory ('.' or '..'), not a file")
    } else if name.starts_with('/') {
        Err("it is an absolute path")
    } else if name.split('/').any(|c| c == "..") {
        Err("it climbs out of the directory with '..'")
    } else if name.contains('/') {
        Err("it names a file in another directory (it contains '/')")
    } else if name.contains('\\') {
        Err("it contains a backslash")
    } else if name.chars().any(char::is_control) {
        Err("it contains control characters")
    } else {
        Ok(())
    }
}
