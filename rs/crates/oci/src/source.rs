//! Where blobs come from: a layout directory, a tar archive (layout or `docker save`), or a
//! registry. Sources hand out raw stored bytes; the caller verifies them while reading.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use icos_common::mapped::{MappedBytes, MappedFile};
use icos_common::Digest;

use crate::archive::TarIndex;
use crate::error::OciError;
use crate::verify::{BlobError, VerifyingReader};

/// JSON documents (index, manifest, config) larger than this are refused.
pub const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlobKind {
    /// An index or manifest (registries serve these from `/manifests/`).
    Manifest,
    /// A config or layer.
    Blob,
}

pub(crate) struct RawBlob<'a> {
    pub reader: Box<dyn Read + Send + 'a>,
    /// Where the bytes come from, for messages (a file, an archive member, a store file or a URL).
    pub location: String,
    /// The registry's Content-Type, when there is one.
    pub content_type: Option<String>,
}

pub(crate) trait BlobSource: Send + Sync {
    /// The stored bytes of a blob, unverified. `size` is the descriptor's size when known.
    fn open_blob(
        &self,
        digest: &Digest,
        kind: BlobKind,
        size: Option<u64>,
        what: &str,
    ) -> Result<RawBlob<'_>, OciError>;

    /// The stored size when it is known without reading (local files), to report a size mismatch
    /// or a missing blob before anything is streamed.
    fn stored_size(&self, digest: &Digest, what: &str) -> Result<Option<u64>, OciError>;

    /// Makes sure a blob is present and intact, reading it completely (for a registry with a
    /// store: downloading it into the store). `on_bytes` is called with each chunk's length.
    fn fetch(
        &self,
        digest: &Digest,
        size: u64,
        what: &str,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<(), OciError> {
        let raw = self.open_blob(digest, BlobKind::Blob, Some(size), what)?;
        let label = blob_label(self.reference(), what, digest, &raw.location);
        let mut verified = VerifyingReader::new(raw.reader, *digest, size, label);
        copy_with_progress(&mut verified, &mut io::sink(), on_bytes)
            .map_err(|e| stream_error(self.reference(), e))?;
        Ok(())
    }

    /// The stored bytes mapped in place, and where they are (for messages), when the blob is a
    /// local file or archive member; `Ok(None)` when it must be streamed (a registry without the
    /// blob in its store). Not verified: the caller hashes the bytes.
    fn map_blob(
        &self,
        _digest: &Digest,
        _what: &str,
    ) -> Result<Option<(MappedBytes, String)>, OciError> {
        Ok(None)
    }

    /// The image reference, for messages.
    fn reference(&self) -> &str;
}

/// Maps a whole local file, opened like every input: a FIFO or device is refused, never blocks.
pub(crate) fn map_file(path: &std::path::Path) -> Result<MappedBytes, String> {
    icos_common::open_regular(path)
        .and_then(MappedFile::new)
        .map(|mapped| mapped.whole())
        .map_err(|e| format!("cannot map {}: {e}", path.display()))
}

/// `layer 1 sha256:… of REF (LOCATION)`: how every blob message starts.
pub(crate) fn blob_label(reference: &str, what: &str, digest: &Digest, location: &str) -> String {
    format!("{what} {digest} of {reference} (from {location})")
}

/// Turns an error from a verifying stream into an `OciError` that keeps the blob's message.
pub(crate) fn stream_error(reference: &str, e: io::Error) -> OciError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<BlobError>())
    {
        Some(b) => OciError::Integrity {
            blob: b.blob.clone(),
            problem: b.problem.clone(),
        },
        None => OciError::image(reference, format!("reading failed: {e}")),
    }
}

pub(crate) fn copy_with_progress(
    from: &mut dyn Read,
    to: &mut dyn io::Write,
    on_bytes: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
        on_bytes(n as u64);
    }
}

/// Reads a JSON document completely (size-capped) and checks it against its digest and size.
/// Returns the verified bytes and the registry's Content-Type, if any.
pub(crate) fn read_document(
    source: &dyn BlobSource,
    digest: &Digest,
    kind: BlobKind,
    size: Option<u64>,
    what: &str,
) -> Result<(Vec<u8>, Option<String>), OciError> {
    let reference = source.reference();
    if let Some(size) = size {
        if size > MAX_DOCUMENT_SIZE {
            return Err(OciError::blob(
                reference,
                what,
                digest,
                format!("its descriptor declares {size} bytes, more than the {MAX_DOCUMENT_SIZE}-byte limit for JSON documents"),
            ));
        }
    }
    let raw = source.open_blob(digest, kind, size, what)?;
    let cap = size.unwrap_or(MAX_DOCUMENT_SIZE);
    let mut bytes = Vec::new();
    raw.reader
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(
            |e| match e.get_ref().and_then(|i| i.downcast_ref::<BlobError>()) {
                Some(_) => stream_error(reference, e),
                None => OciError::blob(
                    reference,
                    what,
                    digest,
                    format!("cannot read it from {}: {e}", raw.location),
                ),
            },
        )?;
    let problem = |p: String| {
        OciError::blob(
            reference,
            what,
            digest,
            format!("{p} (from {})", raw.location),
        )
    };
    let len = bytes.len() as u64;
    match size {
        Some(size) if len != size => {
            let relation = if len > size {
                "is longer than"
            } else {
                "is truncated: shorter than"
            };
            return Err(problem(format!(
                "{relation} the {size} bytes its descriptor declares"
            )));
        }
        None if len > cap => {
            return Err(problem(format!(
                "is larger than the {MAX_DOCUMENT_SIZE}-byte limit for JSON documents"
            )));
        }
        _ => {}
    }
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(problem(format!(
            "content does not match the digest: its {len} bytes hash to {actual}"
        )));
    }
    Ok((bytes, raw.content_type))
}

/// A layout directory or a tar archive, addressed by member/file names relative to its root.
pub(crate) enum Storage {
    Dir(PathBuf),
    Tar(TarIndex),
}

impl Storage {
    pub fn describe(&self, name: &str) -> String {
        match self {
            Storage::Dir(dir) => dir.join(name).display().to_string(),
            Storage::Tar(tar) => format!("{} member {name}", tar.path().display()),
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        match self {
            Storage::Dir(dir) => dir.join(name).is_file(),
            Storage::Tar(tar) => tar.locate(name).is_ok(),
        }
    }

    /// Size of a file/member; `Ok(None)` when it does not exist, `Err` with a problem otherwise.
    pub fn size(&self, name: &str) -> Result<Option<u64>, String> {
        match self {
            Storage::Dir(dir) => match std::fs::metadata(dir.join(name)) {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(_) => Err(format!("{} is not a regular file", self.describe(name))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {}: {e}", self.describe(name))),
            },
            Storage::Tar(tar) => {
                crate::archive::check_member_name(name)?;
                if !tar.contains(name) {
                    return Ok(None);
                }
                tar.size(name)
                    .map(Some)
                    .map_err(|p| format!("{} {p}", tar.path().display()))
            }
        }
    }

    pub fn open(&self, name: &str) -> Result<Box<dyn Read + Send + '_>, String> {
        match self {
            Storage::Dir(dir) => {
                let path = dir.join(name);
                File::open(&path)
                    .map(|f| Box::new(f) as Box<dyn Read + Send>)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))
            }
            Storage::Tar(tar) => tar
                .open_member(name)
                .map(|r| Box::new(r) as Box<dyn Read + Send>)
                .map_err(|p| format!("{} {p}", tar.path().display())),
        }
    }

    /// A file or member mapped in place (`Ok(None)`: an archive shorter than the member claims).
    pub fn map(&self, name: &str) -> Result<Option<MappedBytes>, String> {
        match self {
            Storage::Dir(dir) => map_file(&dir.join(name)).map(Some),
            Storage::Tar(tar) => tar
                .map_member(name)
                .map_err(|p| format!("{} {p}", tar.path().display())),
        }
    }

    /// Reads a small file (index.json, manifest.json, oci-layout) completely, size-capped.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        self.open(name)?
            .take(MAX_DOCUMENT_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {}: {e}", self.describe(name)))?;
        if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
            return Err(format!(
                "{} is larger than {MAX_DOCUMENT_SIZE} bytes",
                self.describe(name)
            ));
        }
        Ok(bytes)
    }
}

/// Blobs of an OCI layout (`blobs/sha256/<hex>`), or of a `docker save` archive where some blobs
/// live under other member names (`aliases`).
pub(crate) struct LayoutSource {
    pub reference: String,
    pub storage: Storage,
    pub aliases: BTreeMap<Digest, String>,
}

impl LayoutSource {
    pub fn blob_name(&self, digest: &Digest) -> String {
        self.aliases
            .get(digest)
            .cloned()
            .unwrap_or_else(|| format!("blobs/sha256/{}", digest.hex()))
    }

    fn missing(&self, digest: &Digest, what: &str, name: &str) -> OciError {
        OciError::blob(
            &self.reference,
            what,
            digest,
            format!("is missing: there is no {}", self.storage.describe(name)),
        )
    }
}

impl BlobSource for LayoutSource {
    fn open_blob(
        &self,
        digest: &Digest,
        _: BlobKind,
        _: Option<u64>,
        what: &str,
    ) -> Result<RawBlob<'_>, OciError> {
        let name = self.blob_name(digest);
        self.stored_size(digest, what)?;
        let reader = self
            .storage
            .open(&name)
            .map_err(|p| OciError::blob(&self.reference, what, digest, p))?;
        Ok(RawBlob {
            reader,
            location: self.storage.describe(&name),
            content_type: None,
        })
    }

    fn stored_size(&self, digest: &Digest, what: &str) -> Result<Option<u64>, OciError> {
        let name = self.blob_name(digest);
        match self.storage.size(&name) {
            Ok(Some(size)) => Ok(Some(size)),
            Ok(None) => Err(self.missing(digest, what, &name)),
            Err(p) => Err(OciError::blob(&self.reference, what, digest, p)),
        }
    }

    fn map_blob(
        &self,
        digest: &Digest,
        what: &str,
    ) -> Result<Option<(MappedBytes, String)>, OciError> {
        let name = self.blob_name(digest);
        self.stored_size(digest, what)?;
        let mapped = self
            .storage
            .map(&name)
            .map_err(|p| OciError::blob(&self.reference, what, digest, p))?;
        Ok(mapped.map(|bytes| (bytes, self.storage.describe(&name))))
    }

    fn reference(&self) -> &str {
        &self.reference
    }
}
