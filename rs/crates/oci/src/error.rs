use std::io;

/// Everything that can go wrong resolving, verifying or writing a base image.
///
/// Every message names the input (reference, file or blob) and says what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("base reference {input:?}: {problem}")]
    InvalidReference { input: String, problem: String },

    #[error("platform {input:?}: {problem}")]
    InvalidPlatform { input: String, problem: String },

    /// A local input (layout directory, archive, store file) could not be read.
    #[error("{reference}: cannot read {path}: {cause}")]
    Read {
        reference: String,
        path: String,
        cause: io::Error,
    },

    /// A blob or JSON document failed verification or has the wrong type or shape.
    #[error("{reference}: {what} {digest}: {problem}")]
    Blob {
        reference: String,
        what: String,
        digest: String,
        problem: String,
    },

    /// A blob failed verification while it streamed (`blob` names it and the image).
    #[error("{blob}: {problem}")]
    Integrity { blob: String, problem: String },

    /// The image as a whole is unusable (missing platform, not an image, archive problems).
    #[error("{reference}: {problem}")]
    Image { reference: String, problem: String },

    /// The registry could not be reached, refused us, or answered something unusable.
    #[error("{reference}: registry {registry}: {problem}")]
    Registry {
        reference: String,
        registry: String,
        problem: String,
    },

    /// An output (OCI layout, blob store) could not be written.
    #[error("cannot write {path}: {cause}")]
    Write { path: String, cause: io::Error },
}

impl OciError {
    pub(crate) fn blob(
        reference: &str,
        what: &str,
        digest: impl ToString,
        problem: impl Into<String>,
    ) -> Self {
        OciError::Blob {
            reference: reference.to_string(),
            what: what.to_string(),
            digest: digest.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn image(reference: &str, problem: impl Into<String>) -> Self {
        OciError::Image {
            reference: reference.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn read(
        reference: &str,
        path: impl AsRef<std::path::Path>,
        cause: io::Error,
    ) -> Self {
        OciError::Read {
            reference: reference.to_string(),
            path: path.as_ref().display().to_string(),
            cause,
        }
    }

    pub(crate) fn write(path: impl AsRef<std::path::Path>, cause: io::Error) -> Self {
        OciError::Write {
            path: path.as_ref().display().to_string(),
            cause,
        }
    }
}
