//! `SHA256SUMS` in coreutils format: `<64 lowercase hex>  <name>\n`, one per artifact, sorted
//! bytewise by name, names without directories.

use std::io;
use std::path::{Path, PathBuf};

use icos_common::{open_regular, Digest};

/// The file name of the sums file in a release directory.
pub const SUMS_NAME: &str = "SHA256SUMS";

#[derive(Debug, thiserror::Error)]
pub enum SumsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} line {line}: {problem} (expected `<64 lowercase hex>  <file name>`, as `sha256sum` writes)")]
    Malformed {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{path} lists no file: an empty release cannot be signed or verified")]
    Empty { path: PathBuf },
}

/// One line of `SHA256SUMS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumEntry {
    pub name: String,
    pub sha256: Digest,
}

/// Parses the text of a sums file; `path` names it in errors.
pub fn parse_sums(text: &str, path: &Path) -> Result<Vec<SumEntry>, SumsError> {
    let mut out: Vec<SumEntry> = Vec::new();
    let malformed = |line: usize, problem: String| SumsError::Malformed {
        path: path.into(),
        line,
        problem,
    };
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(malformed(
            text.lines().count(),
            "the last line has no line ending".into(),
        ));
    }
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let (hex, name) = line
            .split_once("  ")
            .ok_or_else(|| malformed(n, "no two-space separator between digest and name".into()))?;
        let sha256 = Digest::from_hex(hex)
            .map_err(|_| malformed(n, format!("{hex:?} is not 64 lowercase hex digits")))?;
        check_name(name).map_err(|p| malformed(n, p))?;
        if let Some(prev) = out.last() {
            if prev.name.as_bytes() >= name.as_bytes() {
                let what = if prev.name == name {
                    "is listed twice"
                } else {
                    "is out of order (names must be sorted bytewise)"
                };
                return Err(malformed(n, format!("{name:?} {what}")));
            }
        }
        out.push(SumEntry {
            name: name.to_owned(),
            sha256,
        });
    }
    if out.is_empty() {
        return Err(SumsError::Empty { path: path.into() });
    }
    Ok(out)
}

/// Reads and parses a sums file.
pub fn read_sums(path: &Path) -> Result<Vec<SumEntry>, SumsError> {
    let text = open_regular(path)
        .and_then(io::read_to_string)
        .map_err(|source| SumsError::Read {
            path: path.into(),
            source,
        })?;
    parse_sums(&text, path)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the file name is empty".into());
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\\') {
        return Err(format!(
            "{name:?} is not a plain file name (release files live in one directory)"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{name:?} contains control characters"));
    }
    if name.starts_with(' ') || name.starts_with('*') {
        return Err(format!(
            "{name:?} starts with a space or '*' (binary-mode marker): use exactly two spaces"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn parses_and_refuses() {
        let p = Path::new("SHA256SUMS");
        let ok = format!("{H}  a.tar\n{H}  b.json\n");
        let e = parse_sums(&ok, p).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].name, "b.json");
        assert_eq!(e[0].sha256.hex(), H);

        for (bad, want) in [
            (format!("{H}  b\n{H}  a\n"), "out of order"),
            (format!("{H}  a\n{H}  a\n"), "listed twice"),
            (format!("{H} a\n"), "two-space"),
            (format!("{}  a\n", H.to_uppercase()), "64 lowercase hex"),
            (format!("{H}  ../a\n"), "plain file name"),
            (format!("{H}  a"), "no line ending"),
            (format!("{H}   a\n"), "starts with a space"),
            (String::new(), "lists no file"),
        ] {
            let err = parse_sums(&bad, p).unwrap_err().to_string();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
    }
}
