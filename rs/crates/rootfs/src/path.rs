//! Entry paths inside the image: root-relative, components joined by `/`, no leading or trailing
//! slash; the root directory is the empty string. Kept as `String` because only UTF-8 is accepted,
//! and `String` orders bytewise, which is the order of the rootfs tar.

use crate::error::EntryProblem;

/// Normalizes a tar member name: a leading `/` or `./` and empty or `.` components are dropped;
/// `..` is resolved lexically (never through symlinks: nothing is ever resolved on a filesystem)
/// and refused when it would climb above the root.
pub(crate) fn normalize(raw: &[u8]) -> Result<String, EntryProblem> {
    if raw.contains(&0) {
        return Err(EntryProblem::ContainsNul);
    }
    let text = std::str::from_utf8(raw).map_err(|_| EntryProblem::NonUtf8)?;
    let mut parts: Vec<&str> = Vec::new();
    for component in text.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(EntryProblem::EscapesRoot);
                }
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// The parent of a non-root path (`""` for top-level entries).
pub(crate) fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// The last component of a path.
pub(crate) fn file_name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_escapes() {
        assert_eq!(normalize(b"./etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(normalize(b"/etc//x/").unwrap(), "etc/x");
        assert_eq!(normalize(b"./").unwrap(), "");
        assert_eq!(normalize(b"a/../b").unwrap(), "b");
        assert_eq!(normalize(b"../etc"), Err(EntryProblem::EscapesRoot));
        assert_eq!(normalize(b"a/../../b"), Err(EntryProblem::EscapesRoot));
        assert_eq!(normalize(b"/.."), Err(EntryProblem::EscapesRoot));
        assert_eq!(normalize(b"a\xffb"), Err(EntryProblem::NonUtf8));
        assert_eq!(normalize(b"a\0b"), Err(EntryProblem::ContainsNul));
    }

    #[test]
    fn splits() {
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("a"), "");
        assert_eq!(file_name("a/b/c"), "c");
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a", "b"), "a/b");
    }
}
