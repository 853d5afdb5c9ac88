use std::io;
use std::path::PathBuf;

/// Why a comparison could not be made. Every variant names the input and the problem.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("{path}: not a directory (give two release directories, e.g. bazel-bin/ic-os of two builds)")]
    NotADirectory { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} {kind}: icos-diff compares the regular files of two release directories and follows no links (copy the release with `cp -L`)")]
    NotRegular {
        path: PathBuf,
        kind: icos_common::NotRegular,
    },
    #[error("{path}: not valid JSON: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("cannot run diffoscope ({program}): {source}")]
    Diffoscope { program: PathBuf, source: io::Error },
}

impl DiffError {
    pub(crate) fn read(path: impl Into<PathBuf>, source: io::Error) -> Self {
        DiffError::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DiffError::Malformed {
            path: path.into(),
            message: message.into(),
        }
    }
}
