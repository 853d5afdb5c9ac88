//! The rootfs tar contract (ARCHITECTURE.md, "The rootfs tar"), checked entry by entry by the
//! shared reader for every tool that reads a rootfs tar: every name starts with `./`, the root
//! `./` comes first, entries are sorted bytewise by path (strictly: no path twice), and each
//! entry's parent directory came before it.

use std::collections::HashMap;

/// Remembers what a rootfs tar has listed so far: the last path and every path, whether it is a
/// directory (memory is bounded by the number of entries, as for every consumer's own tree).
#[derive(Debug, Default)]
pub struct RootfsContract {
    last: Option<Vec<u8>>,
    is_dir: HashMap<Vec<u8>, bool>,
}

impl RootfsContract {
    /// Checks the next entry: its name as stored (`./a/b`, `./a/`) and whether it is a directory.
    pub fn check(&mut self, name: &[u8], is_dir: bool) -> Result<(), String> {
        let shown = String::from_utf8_lossy(name);
        let Some(rest) = name.strip_prefix(b"./") else {
            return Err(format!(
                "entry {shown:?}: the name does not start with \"./\" (the rootfs tar contract names every entry ./PATH)"
            ));
        };
        let path = rest.strip_suffix(b"/").unwrap_or(rest);
        if !path.is_empty() {
            for c in path.split(|&b| b == b'/') {
                let problem = match c {
                    b"" => "an empty component (\"//\")",
                    b"." => "a \".\" component",
                    b".." => "a \"..\" component, which could escape the root",
                    _ => continue,
                };
                return Err(format!(
                    "entry {shown:?}: the path has {problem} (the rootfs tar contract names each path canonically)"
                ));
            }
        }
        let Some(last) = &self.last else {
            if !path.is_empty() || !is_dir {
                return Err(format!(
                    "entry {shown:?}: the first entry must be the root directory \"./\" (the rootfs tar contract)"
                ));
            }
            self.last = Some(Vec::new());
            self.is_dir.insert(Vec::new(), true);
            return Ok(());
        };
        if path <= last.as_slice() {
            let problem = if path == last.as_slice() {
                "is listed twice".to_string()
            } else {
                format!(
                    "comes after \"./{}\" but sorts before it",
                    String::from_utf8_lossy(last)
                )
            };
            return Err(format!(
                "entry {shown:?} {problem} (the rootfs tar contract: sorted bytewise by path, each path once)"
            ));
        }
        let parent = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => &path[..i],
            None => &path[..0],
        };
        match self.is_dir.get(parent) {
            Some(true) => {}
            Some(false) => {
                return Err(format!(
                    "entry {shown:?}: its parent \"./{}\" is not a directory",
                    String::from_utf8_lossy(parent)
                ))
            }
            None => {
                return Err(format!(
                    "entry {shown:?}: its parent directory \"./{}/\" is not in the tar before it (the rootfs tar contract: a parent precedes its children)",
                    String::from_utf8_lossy(parent)
                ))
            }
        }
        self.is_dir.insert(path.to_vec(), is_dir);
        self.last = Some(path.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(entries: &[(&str, bool)]) -> Result<(), String> {
        let mut c = RootfsContract::default();
        entries
            .iter()
            .try_for_each(|(n, d)| c.check(n.as_bytes(), *d))
    }

    #[test]
    fn sorted_trees_pass_and_every_breach_is_named() {
        run(&[
            ("./", true),
            ("./a/", true),
            ("./a-b", false),
            ("./a/b", false),
            ("./a/c/", true),
            ("./a/c/d", false),
        ])
        .unwrap();
        let cases: [(&[(&str, bool)], &str); 9] = [
            (
                &[("./", true), ("./../etc/passwd", false)],
                "a \"..\" component",
            ),
            (&[("./", true), (".//etc", false)], "an empty component"),
            (
                &[("./", true), ("./f", false), ("./f/x", false)],
                "its parent \"./f\" is not a directory",
            ),
            (&[("./a", false)], "the first entry must be the root"),
            (&[("./", true), ("a", false)], "does not start with \"./\""),
            (
                &[("./", true), ("./a/b", false), ("./a/", true)],
                "entry \"./a/b\": its parent directory \"./a/\" is not in the tar before it",
            ),
            (
                &[("./", true), ("./b", false), ("./a", false)],
                "entry \"./a\" comes after \"./b\" but sorts before it",
            ),
            (
                &[("./", true), ("./a", false), ("./a", false)],
                "entry \"./a\" is listed twice",
            ),
            (
                &[("./", true), ("./a-b", false), ("./a/b", false)],
                "its parent directory \"./a/\" is not in the tar before it",
            ),
        ];
        for (entries, expected) in cases {
            let err = run(entries).unwrap_err();
            assert!(err.contains(expected), "{entries:?}: {err}");
        }
    }
}
