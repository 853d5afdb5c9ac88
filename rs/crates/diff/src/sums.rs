//! `SHA256SUMS` in coreutils format: `<64 hex>  <name>` (text mode) or `<64 hex> *<name>` (binary mode).

use std::collections::BTreeMap;
use std::path::Path;

use crate::DiffError;

/// Name → lowercase hex digest, sorted by name.
pub type Sums = BTreeMap<String, String>;

/// Parses the text of a SHA256SUMS file; `path` is only used in error messages.
pub fn parse_sums(path: &Path, text: &str) -> Result<Sums, DiffError> {
    let mut out = Sums::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad =
            |what: &str| DiffError::malformed(path, format!("line {}: {what}: {line:?}", i + 1));
        let (hex, rest) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected '<sha256 hex>  <name>'"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the digest is not 64 hex digits"));
        }
        let name = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(|| bad("expected two spaces or ' *' between digest and name"))?;
        let name = name.strip_prefix("./").unwrap_or(name);
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        if let Some(prev) = out.insert(name.to_string(), hex.to_ascii_lowercase()) {
            if prev != hex.to_ascii_lowercase() {
                return Err(bad("the name is listed twice with different digests"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_binary_mode_and_rejects_garbage() {
        let h = "ab".repeat(32);
        let text = format!("{h}  disk-img.tar.zst\n{} *./SHA\n\n", "CD".repeat(32));
        let s = parse_sums(Path::new("S"), &text).unwrap();
        assert_eq!(s["disk-img.tar.zst"], h);
        assert_eq!(s["SHA"], "cd".repeat(32));
        let e = parse_sums(Path::new("S"), "xyz  a\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("S: line 1") && e.contains("64 hex"), "{e}");
        assert!(parse_sums(Path::new("S"), &format!("{h}\tname\n")).is_err());
    }
}
