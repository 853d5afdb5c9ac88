//! Refusing a command line whose outputs coincide with each other or with an input.
//!
//! Every output is written to a temporary file and renamed into place, so `--out X --manifest X`
//! would silently keep only the last one written, and an output named like an input would replace
//! the input. Two names are the same file when they name the same directory entry (the parent
//! directory canonicalized, plus the file name: `./x`, `x` and `d/../x` agree) or, when both exist,
//! the same inode (hardlinks, links to it).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One named path on a command line: the flag (or role) that gave it and the path.
pub type Named<'a> = (&'a str, &'a Path);

/// Errors if two outputs, or an output and an input, are the same file, naming both flags.
pub fn check_distinct(outputs: &[Named<'_>], inputs: &[Named<'_>]) -> Result<(), String> {
    for (i, &(flag, path)) in outputs.iter().enumerate() {
        for &(other_flag, other) in &outputs[..i] {
            if same_file(path, other) {
                return Err(format!(
                    "{flag} {} is the same file as {other_flag} {}: every output needs its own path",
                    path.display(),
                    other.display()
                ));
            }
        }
        for &(input_flag, input) in inputs {
            if same_file(path, input) {
                return Err(format!(
                    "{flag} {} is the same file as {input_flag} {}: every output needs its own path",
                    path.display(),
                    input.display()
                ));
            }
        }
    }
    Ok(())
}

/// The directory entry a path names: its parent canonicalized (when it exists) and its name.
fn entry(path: &Path) -> PathBuf {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            },
            n,
        ),
        _ => return fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
    };
    match fs::canonicalize(parent) {
        Ok(p) => p.join(name),
        Err(_) => path.to_path_buf(),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    if entry(a) == entry(b) {
        return true;
    }
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coinciding_outputs_and_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("in.tar"), b"x").unwrap();
        std::fs::hard_link(d.join("in.tar"), d.join("hard.tar")).unwrap();
        std::os::unix::fs::symlink("in.tar", d.join("link.tar")).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        let (out, manifest) = (d.join("out.tar"), d.join("sub/../out.tar"));
        let err = check_distinct(&[("--out", &out), ("--manifest", &manifest)], &[]).unwrap_err();
        assert!(
            err.starts_with("--manifest ")
                && err.contains(" is the same file as --out ")
                && err.ends_with(": every output needs its own path"),
            "{err}"
        );
        for alias in ["in.tar", "hard.tar", "link.tar", "./in.tar"] {
            let out = d.join(alias);
            let err =
                check_distinct(&[("--out", &out)], &[("--tar", &d.join("in.tar"))]).unwrap_err();
            assert!(err.contains("is the same file as --tar"), "{alias}: {err}");
        }
        check_distinct(
            &[("--out", &d.join("a")), ("--manifest", &d.join("b"))],
            &[("--tar", &d.join("in.tar"))],
        )
        .unwrap();
        // Relative names resolve against the working directory like absolute ones.
        check_distinct(
            &[("--out", Path::new("x")), ("--manifest", Path::new("y"))],
            &[],
        )
        .unwrap();
        assert!(
            check_distinct(&[("--out", Path::new("x")), ("--m", Path::new("./x"))], &[]).is_err()
        );
    }
}
