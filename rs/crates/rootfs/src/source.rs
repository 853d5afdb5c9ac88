//! Opening a spec's `source` files without letting a spec reach host files.
//!
//! The rule (ARCHITECTURE.md, "What each tool may touch"): a source is named by a relative path
//! without `..` (checked in `spec.rs`), looked up under the source roots, and what it finally is,
//! after every symbolic link, must be a regular file whose canonical path lies inside one of:
//!
//! - a source root, canonicalized (the spec's directory or each `--source-root`);
//! - under Bazel's sandbox: that root's twin in the execroot the sandbox mirrors. Bazel stages
//!   each input as a symbolic link from the sandbox (the action's working directory,
//!   `…/execroot/<ws>`) to the same relative path in the real execroot (`…/execroot/<ws>`), whose
//!   top-level entries link into the workspace or the output tree. The real execroot is learnt
//!   from that first link, which Bazel made, and only when the working directory is a sandbox
//!   (its first path component under the root is a real directory, not the execroot's link into
//!   the workspace). Any link after it is still judged by where it ends up.
//!
//! So a staged input still resolves into the workspace or bazel-out, while `../../etc/shadow`,
//! a source that is a link to `/etc/shadow` (in the workspace or anywhere else) and `/dev/zero`
//! are refused before a byte is read.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

use icos_common::safe_open;

use crate::spec::SpecSource;

/// Opens a resolved source for reading if it stays inside the allowed directories and is a
/// regular file; otherwise says why, naming the path.
pub(crate) fn open_confined(source: &SpecSource, roots: &[PathBuf]) -> Result<File, String> {
    let path = &source.resolved;
    let allowed = allowed_dirs(source, roots);
    let canonical =
        fs::canonicalize(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // Checked before opening: opening some devices has effects of its own.
    if !inside(&canonical, &allowed) {
        return Err(escape(path, &canonical, roots));
    }
    let file = safe_open::open_regular(path).map_err(|e| format!("{} {e}", path.display()))?;
    // What was opened, not what the name points at now: a link swapped in between is caught.
    let opened = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| format!("cannot check where {} leads: {e}", path.display()))?;
    if !inside(&opened, &allowed) {
        return Err(escape(path, &opened, roots));
    }
    Ok(file)
}

fn escape(path: &Path, target: &Path, roots: &[PathBuf]) -> String {
    let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    format!(
        "{} resolves to {}, outside the source roots ({}); a source and every symbolic link it goes through must stay inside a source root (or the Bazel execroot that stages it)",
        path.display(),
        target.display(),
        roots.join(", ")
    )
}

fn inside(path: &Path, allowed: &[PathBuf]) -> bool {
    allowed.iter().any(|dir| path.starts_with(dir))
}

fn allowed_dirs(source: &SpecSource, roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut allowed: Vec<PathBuf> = roots
        .iter()
        .filter_map(|r| fs::canonicalize(r).ok())
        .collect();
    if let Some(execroot) = sandbox_execroot(&source.resolved) {
        allowed.extend(
            roots
                .iter()
                .filter(|r| r.is_relative())
                .filter_map(|r| fs::canonicalize(execroot.join(r)).ok()),
        );
    }
    allowed
}

/// The real execroot a Bazel sandbox mirrors, learnt from the link Bazel staged for `path`.
fn sandbox_execroot(path: &Path) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    let workspace = cwd.file_name()?;
    if cwd.parent()?.file_name()? != OsStr::new("execroot") {
        return None;
    }
    let relative = if path.is_absolute() {
        path.strip_prefix(&cwd).ok()?
    } else {
        path
    };
    let relative: PathBuf = relative
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    // In the unsandboxed execroot the top-level entries are links into the workspace, and the
    // links below them are the workspace's own: nothing there is Bazel's staging.
    let first = relative.components().next()?;
    if fs::symlink_metadata(cwd.join(first))
        .ok()?
        .file_type()
        .is_symlink()
    {
        return None;
    }
    let staged = cwd.join(&relative);
    if !fs::symlink_metadata(&staged).ok()?.file_type().is_symlink() {
        return None;
    }
    let target = fs::read_link(&staged).ok()?;
    if !target.is_absolute() {
        return None;
    }
    // target = EXECROOT/relative, EXECROOT = …/execroot/<ws>.
    let mut execroot = target.as_path();
    for _ in relative.components() {
        execroot = execroot.parent()?;
    }
    if execroot.join(&relative) != target
        || execroot.file_name()? != workspace
        || execroot.parent()?.file_name()? != OsStr::new("execroot")
    {
        return None;
    }
    Some(execroot.to_path_buf())
}
