//! The content-addressed blob store for registry pulls: `<store>/blobs/sha256/<hex>`, the same
//! shape as an OCI layout's blob directory. A blob appears under its name only after it was
//! verified (written to a temporary file beside it, then renamed).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use icos_common::{AtomicFile, Digest};

use crate::error::OciError;
use crate::source::{copy_with_progress, stream_error};
use crate::verify::{BlobError, VerifyingReader};

pub(crate) struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn new(root: &Path) -> Self {
        BlobStore {
            root: root.to_path_buf(),
        }
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// The stored file, if present.
    pub fn open(&self, digest: &Digest) -> Result<Option<(File, u64)>, OciError> {
        let path = self.path(digest);
        match File::open(&path) {
            Ok(f) => {
                let len = f.metadata().map_err(|e| OciError::write(&path, e))?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(OciError::Write {
                path: path.display().to_string(),
                cause: e,
            }),
        }
    }

    fn prepare(&self, digest: &Digest) -> Result<AtomicFile, OciError> {
        let path = self.path(digest);
        let dir = path.parent().expect("blob path has a parent");
        fs::create_dir_all(dir).map_err(|e| OciError::write(dir, e))?;
        AtomicFile::create(&path).map_err(|e| OciError::write(&path, e))
    }

    /// Stores bytes that the caller has already verified against `digest`.
    pub fn put_verified(&self, digest: &Digest, bytes: &[u8]) -> Result<(), OciError> {
        let mut out = self.prepare(digest)?;
        io::Write::write_all(&mut out, bytes).map_err(|e| OciError::write(self.path(digest), e))?;
        out.commit()
            .map_err(|e| OciError::write(self.path(digest), e))
    }

    /// Streams a blob into the store, verifying digest and size on the way; on any failure the
    /// temporary file is removed and nothing appears under the blob's name.
    pub fn put_stream(
        &self,
        reader: &mut dyn Read,
        digest: &Digest,
        size: u64,
        label: String,
        reference: &str,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<(), OciError> {
        let mut out = self.prepare(digest)?;
        let mut verified = VerifyingReader::new(reader, *digest, size, label);
        copy_with_progress(&mut verified, &mut out, on_bytes).map_err(|e| {
            if e.get_ref().is_some_and(|inner| inner.is::<BlobError>()) {
                stream_error(reference, e)
            } else {
                OciError::write(self.path(digest), e)
            }
        })?;
        out.commit()
            .map_err(|e| OciError::write(self.path(digest), e))
    }
}
