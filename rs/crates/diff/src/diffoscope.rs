//! Running diffoscope on one file taken from each rootfs tar.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::package::{Package, Piece};
use crate::report::DiffoscopeRun;
use crate::DiffError;

/// Most output kept from diffoscope.
pub const OUTPUT_LIMIT: usize = 1 << 20;

/// `program` if it contains a `/`, else the first executable file of that name on `PATH`.
pub fn find_program(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.components().count() > 1 {
        return is_exe(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_exe(p))
}

/// Copies the regular-file member `name` (a rootfs path such as `/etc/motd`) of `tar` to `out`.
/// Returns false when the tar has no such member.
pub fn extract_member(tar: &Path, name: &str, out: &Path) -> Result<bool, DiffError> {
    let want = name.trim_start_matches('/');
    let mut pkg = Package::open(tar)?;
    let mut members = pkg.members()?;
    while let Some(mut m) = members.next_member()? {
        if m.name().trim_end_matches('/') != want {
            continue;
        }
        let f = File::create(out).map_err(|e| DiffError::read(out, e))?;
        let mut w = BufWriter::new(f);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match m.next_piece(&mut buf)? {
                Piece::Data(n) => w
                    .write_all(&buf[..n])
                    .map_err(|e| DiffError::read(out, e))?,
                Piece::Zeros(n) => std::io::copy(&mut std::io::repeat(0).take(n), &mut w)
                    .map(|_| ())
                    .map_err(|e| DiffError::read(out, e))?,
                Piece::End => break,
            }
        }
        w.flush().map_err(|e| DiffError::read(out, e))?;
        return Ok(true);
    }
    Ok(false)
}

/// Extracts `path` from both tars into a temporary directory and runs `program --text - A B`.
/// `Ok(Err(reason))` when the file is not in one of the tars.
pub fn run(
    program: &Path,
    path: &str,
    tar_a: &Path,
    tar_b: &Path,
) -> Result<Result<DiffoscopeRun, String>, DiffError> {
    let tmp = tempfile::tempdir().map_err(|e| DiffError::read(std::env::temp_dir(), e))?;
    let base = Path::new(path)
        .file_name()
        .map(|s| s.to_os_string())
        .unwrap_or_else(|| "file".into());
    let mut files = Vec::new();
    for (side, tar) in [("a", tar_a), ("b", tar_b)] {
        let dir = tmp.path().join(side);
        std::fs::create_dir(&dir).map_err(|e| DiffError::read(&dir, e))?;
        let f = dir.join(&base);
        if !extract_member(tar, path, &f)? {
            return Ok(Err(format!("{} has no regular file {path}", tar.display())));
        }
        files.push(f);
    }
    let out = Command::new(program)
        .arg("--text")
        .arg("-")
        .args(&files)
        .current_dir(tmp.path())
        .output()
        .map_err(|source| DiffError::Diffoscope {
            program: program.to_path_buf(),
            source,
        })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        text.push_str(&err);
    }
    if text.len() > OUTPUT_LIMIT {
        let mut cut = OUTPUT_LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[diffoscope output truncated]\n");
    }
    Ok(Ok(DiffoscopeRun {
        path: path.to_string(),
        exit_code: out.status.code(),
        output: text,
    }))
}
