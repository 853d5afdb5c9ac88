//! The files of a release directory, hashed here: nothing a listing says is taken as fact.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use icos_common::safe_open::refused_kind;
use icos_common::{open_regular_nofollow, sha256_reader, Digest};

use crate::DiffError;

/// A regular file at the top of a release directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub digest: Digest,
    pub size: u64,
}

/// What a release directory holds.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: BTreeMap<String, FileInfo>,
    /// Subdirectories (not compared).
    pub dirs: BTreeSet<String>,
}

/// Lists and hashes the regular files at the top of `dir`. A symbolic link or a special file is
/// an error (it is opened without following it, and never in a way that blocks); a
/// subdirectory is listed in [`Listing::dirs`].
pub fn list(dir: &Path) -> Result<Listing, DiffError> {
    let mut out = Listing::default();
    for e in std::fs::read_dir(dir).map_err(|e| DiffError::read(dir, e))? {
        let e = e.map_err(|e| DiffError::read(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if e.file_type()
            .map_err(|e| DiffError::read(&path, e))?
            .is_dir()
        {
            out.dirs.insert(name);
            continue;
        }
        let refused = |e: io::Error| match refused_kind(&e) {
            Some(kind) => DiffError::NotRegular {
                path: path.clone(),
                kind,
            },
            None => DiffError::read(&path, e),
        };
        let f = open_regular_nofollow(&path).map_err(refused)?;
        let (digest, size) = sha256_reader(f).map_err(|e| DiffError::read(&path, e))?;
        out.files.insert(name, FileInfo { digest, size });
    }
    Ok(out)
}
