//! Streams that check a blob's digest and size while it is read, and the decompressing layer reader.

use std::fmt;
use std::io::{self, BufReader, Read};

use icos_common::mapped::MappedBytes;
use icos_common::{Digest, HashingReader, StreamHasher};

use crate::media::Compression;

/// A blob failure carried inside an `io::Error` (kind `InvalidData` for verification failures, the
/// original kind for read failures), so callers reading a layer as a plain `Read` still get a
/// message naming the blob and the image, and can downcast.
#[derive(Debug, Clone)]
pub struct BlobError {
    /// Which blob: e.g. `layer 2 sha256:… of oci:dir@sha256:… (dir/blobs/sha256/…)`.
    pub blob: String,
    pub problem: String,
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.blob, self.problem)
    }
}

impl std::error::Error for BlobError {}

fn integrity(blob: &str, problem: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        BlobError {
            blob: blob.to_string(),
            problem,
        },
    )
}

fn is_blob_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<BlobError>())
}

/// Passes a blob's bytes through while hashing them; fails as soon as the blob is longer than its
/// descriptor says, and at EOF if it is shorter or its digest differs. Errors are sticky: once a
/// read failed, every later read fails the same way (never a clean EOF after a mismatch).
pub(crate) struct VerifyingReader<R> {
    inner: Option<HashingReader<io::Take<R>>>,
    expected: Digest,
    size: u64,
    label: String,
    failure: Option<String>,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, size: u64, label: String) -> Self {
        // One byte more than declared, so an over-long blob is noticed instead of silently cut.
        let limited = inner.take(size.saturating_add(1));
        // A layer's digest is computed on a second core while this one unpacks it; a small blob
        // (a manifest, a config) is hashed inline.
        VerifyingReader {
            inner: Some(HashingReader::with_hasher(
                limited,
                StreamHasher::for_len(size),
            )),
            expected,
            size,
            label,
            failure: None,
        }
    }

    fn fail(&mut self, problem: String) -> io::Error {
        self.failure = Some(problem.clone());
        self.inner = None;
        integrity(&self.label, problem)
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(problem) = &self.failure {
            return Err(integrity(&self.label, problem.clone()));
        }
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0); // verified
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let n = inner.read(buf).map_err(|e| {
            io::Error::new(
                e.kind(),
                BlobError {
                    blob: self.label.clone(),
                    problem: format!("reading failed: {e}"),
                },
            )
        })?;
        let count = inner.count();
        if count > self.size {
            return Err(self.fail(format!(
                "blob is longer than the {} bytes its descriptor declares",
                self.size
            )));
        }
        if n == 0 {
            if count != self.size {
                return Err(self.fail(format!(
                    "blob is truncated: {count} bytes where its descriptor declares {}",
                    self.size
                )));
            }
            let (actual, _) = self.inner.take().expect("checked above").finish();
            if actual != self.expected {
                return Err(self.fail(format!(
                    "content does not match the digest: its {count} bytes hash to {actual}"
                )));
            }
        }
        Ok(n)
    }
}

/// Checks bytes read in place against a blob's digest and size, with the messages a
/// [`VerifyingReader`] gives for the same faults.
pub(crate) fn verify_bytes(
    bytes: &MappedBytes,
    expected: &Digest,
    size: u64,
    label: &str,
) -> io::Result<()> {
    let len = bytes.len() as u64;
    let problem = if len > size {
        format!("blob is longer than the {size} bytes its descriptor declares")
    } else if len < size {
        format!("blob is truncated: {len} bytes where its descriptor declares {size}")
    } else {
        let actual = bytes.sha256();
        if actual == *expected {
            return Ok(());
        }
        format!("content does not match the digest: its {len} bytes hash to {actual}")
    };
    Err(integrity(label, problem))
}

type Raw<'a> = Box<dyn Read + Send + 'a>;

enum Decoder<'a> {
    Plain(VerifyingReader<Raw<'a>>),
    Gzip(flate2::read::MultiGzDecoder<VerifyingReader<Raw<'a>>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<VerifyingReader<Raw<'a>>>>),
}

/// The uncompressed tar stream of a layer, over a [`VerifyingReader`] of the stored blob.
pub(crate) struct LayerReader<'a> {
    decoder: Decoder<'a>,
    compression: Compression,
    label: String,
    failure: Option<(io::ErrorKind, BlobError)>,
}

impl<'a> LayerReader<'a> {
    pub fn new(
        verified: VerifyingReader<Raw<'a>>,
        compression: Compression,
        label: String,
    ) -> io::Result<Self> {
        let decoder = match compression {
            Compression::None => Decoder::Plain(verified),
            Compression::Gzip => Decoder::Gzip(flate2::read::MultiGzDecoder::new(verified)),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::new(verified)?),
        };
        Ok(LayerReader {
            decoder,
            compression,
            label,
            failure: None,
        })
    }

    /// At the end of the decompressed data, reads what is left of the stored blob (normally
    /// nothing) so its digest and size are checked before EOF is reported.
    fn drain_stored(&mut self) -> io::Result<()> {
        match &mut self.decoder {
            Decoder::Plain(r) => io::copy(r, &mut io::sink()),
            Decoder::Gzip(d) => io::copy(d.get_mut(), &mut io::sink()),
            Decoder::Zstd(d) => io::copy(d.get_mut(), &mut io::sink()),
        }
        .map(drop)
    }
}

impl Read for LayerReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, failure)) = &self.failure {
            return Err(io::Error::new(*kind, failure.clone()));
        }
        let result = match &mut self.decoder {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        };
        let error = match result {
            Ok(0) if !buf.is_empty() => match self.drain_stored() {
                Ok(()) => return Ok(0),
                Err(e) => e,
            },
            Ok(n) => return Ok(n),
            Err(e) if is_blob_error(&e) => e,
            // A decoder error. If the stored blob is wrong, that is the real cause: report it.
            Err(e) => self
                .drain_stored()
                .err()
                .filter(is_blob_error)
                .unwrap_or_else(|| {
                    integrity(
                        &self.label,
                        format!(
                            "{} data is corrupt or truncated: {e}",
                            self.compression.name()
                        ),
                    )
                }),
        };
        // Sticky, like VerifyingReader: no clean EOF after a failure.
        if let Some(blob) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<BlobError>())
        {
            self.failure = Some((error.kind(), blob.clone()));
        }
        Err(error)
    }
}
