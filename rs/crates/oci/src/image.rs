//! Resolving a pinned reference to one verified image (index → platform manifest → config, layers),
//! streaming its layers, and writing it out as a minimal OCI layout.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use icos_common::mapped::MappedBytes;
use icos_common::Digest;
use serde::Serialize;

use crate::archive::TarIndex;
use crate::error::OciError;
use crate::json::{
    ConfigDoc, Descriptor, IndexDoc, LayoutMarker, ManifestDoc, OutDescriptor, OutIndex, Probe,
};
use crate::media::{self, is_config, is_index, is_manifest, layer_compression, Compression};
use crate::reference::{BaseRef, Platform, Transport};
use crate::registry::Registry;
use crate::source::{
    blob_label, read_document, stream_error, BlobKind, BlobSource, LayoutSource, Storage,
};
use crate::store::BlobStore;
use crate::verify::{verify_bytes, LayerReader, VerifyingReader};

/// How to open an image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Picks the manifest when the pinned digest names an index (default `linux/amd64`).
    pub platform: Platform,
    /// Content-addressed blob cache for registry pulls (`<store>/blobs/sha256/<hex>`). With a
    /// store, a second open of the same image reads nothing from the network. Ignored for local
    /// transports.
    pub store: Option<PathBuf>,
}

/// One layer as the manifest describes it (the stored, possibly compressed, blob).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerDescriptor {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// A resolved, verified base image. The index (if any), manifest and config were checked against
/// their digests and sizes when it was opened; layers are checked while they stream.
pub struct Image {
    pub(crate) reference: BaseRef,
    pub(crate) label: String,
    pub(crate) source: Box<dyn BlobSource>,
    pub(crate) index_digest: Option<Digest>,
    pub(crate) manifest_digest: Digest,
    pub(crate) manifest_media_type: String,
    pub(crate) manifest_json: Vec<u8>,
    pub(crate) config_digest: Digest,
    pub(crate) config_json: Vec<u8>,
    pub(crate) layers: Vec<LayerDescriptor>,
    /// How each layer is named in messages (`layer 0`, or `layer 0 (rootfs.diff_ids[0])`).
    pub(crate) layer_names: Vec<String>,
}

/// An uncompressed layer read in place from a local file or archive member ([`Image::map_layer`]).
/// Its bytes are NOT verified yet: call [`MappedLayer::verify`] (it may run on another thread while
/// the bytes are parsed) and trust nothing read from them until it succeeded.
pub struct MappedLayer {
    bytes: MappedBytes,
    digest: Digest,
    size: u64,
    label: String,
}

impl MappedLayer {
    /// The stored bytes, an uncompressed tar.
    pub fn bytes(&self) -> &MappedBytes {
        &self.bytes
    }

    /// Hashes the bytes and checks them against the layer's digest and size. The error is the one
    /// [`Image::open_layer`]'s stream gives for the same fault (an `io::Error` of kind
    /// `InvalidData` holding a [`crate::BlobError`] that names the blob and the image).
    pub fn verify(&self) -> io::Result<()> {
        verify_bytes(&self.bytes, &self.digest, self.size, &self.label)
    }
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("reference", &self.label)
            .field("index_digest", &self.index_digest)
            .field("manifest_digest", &self.manifest_digest)
            .field("config_digest", &self.config_digest)
            .field("layers", &self.layers)
            .finish()
    }
}

impl Image {
    /// Resolves `base` and verifies its index, manifest and config (and, for local transports,
    /// that every layer blob exists with the declared size).
    pub fn open(base: &BaseRef, opts: &OpenOptions) -> Result<Image, OciError> {
        let label = base.to_string();
        // OCI layouts, in a directory or a tar, share everything but where the blobs are read.
        let storage = match base.transport() {
            Transport::OciDir(dir) => Storage::Dir(dir.clone()),
            Transport::OciArchive(file) => {
                Storage::Tar(TarIndex::open(file).map_err(|e| OciError::read(&label, file, e))?)
            }
            Transport::DockerArchive(file) => {
                let tar = TarIndex::open(file).map_err(|e| OciError::read(&label, file, e))?;
                return crate::docker::open(base, tar, opts);
            }
            Transport::Registry { host, repository } => {
                let store = opts.store.as_deref().map(BlobStore::new);
                let registry = Registry::new(&label, host, repository, store)?;
                return resolve(base, Box::new(registry), opts);
            }
        };
        check_layout_marker(&label, &storage)?;
        let source = LayoutSource {
            reference: label,
            storage,
            aliases: Default::default(),
        };
        resolve(base, Box::new(source), opts)
    }

    pub fn reference(&self) -> &BaseRef {
        &self.reference
    }

    /// The index the pinned digest named, when it named one.
    pub fn index_digest(&self) -> Option<Digest> {
        self.index_digest
    }

    pub fn manifest_digest(&self) -> Digest {
        self.manifest_digest
    }

    pub fn manifest_media_type(&self) -> &str {
        &self.manifest_media_type
    }

    /// The manifest, byte for byte as stored (for a legacy `docker save` archive: the OCI manifest
    /// synthesized from manifest.json, with the uncompressed layers).
    pub fn manifest_json(&self) -> &[u8] {
        &self.manifest_json
    }

    /// The image ID.
    pub fn config_digest(&self) -> Digest {
        self.config_digest
    }

    pub fn config_json(&self) -> &[u8] {
        &self.config_json
    }

    pub fn layers(&self) -> &[LayerDescriptor] {
        &self.layers
    }

    fn layer(&self, index: usize) -> Result<&LayerDescriptor, OciError> {
        self.layers.get(index).ok_or_else(|| {
            OciError::image(
                &self.label,
                format!("has no layer {index}: it has {} layers", self.layers.len()),
            )
        })
    }

    fn layer_what(&self, index: usize) -> &str {
        &self.layer_names[index]
    }

    /// The stored (possibly compressed) bytes of layer `index`, verified while they stream: a digest
    /// or size mismatch is an `io::Error` of kind `InvalidData` no later than EOF.
    pub fn open_layer_blob(&self, index: usize) -> Result<Box<dyn Read + Send + '_>, OciError> {
        let layer = self.layer(index)?;
        let what = self.layer_what(index);
        let raw = self
            .source
            .open_blob(&layer.digest, BlobKind::Blob, Some(layer.size), what)?;
        let label = blob_label(&self.label, what, &layer.digest, &raw.location);
        Ok(Box::new(VerifyingReader::new(
            raw.reader,
            layer.digest,
            layer.size,
            label,
        )))
    }

    /// Layer `index` mapped in place, when it is stored uncompressed in a local file or archive
    /// member (an OCI layout, an archive, a registry's store); `Ok(None)` when it must be streamed
    /// with [`Image::open_layer`] instead (compressed, or not stored locally).
    pub fn map_layer(&self, index: usize) -> Result<Option<MappedLayer>, OciError> {
        if self.layer_compression(index)? != Compression::None {
            return Ok(None);
        }
        let layer = self.layer(index)?;
        let what = self.layer_what(index);
        let Some((bytes, location)) = self.source.map_blob(&layer.digest, what)? else {
            return Ok(None);
        };
        Ok(Some(MappedLayer {
            bytes,
            digest: layer.digest,
            size: layer.size,
            label: blob_label(&self.label, what, &layer.digest, &location),
        }))
    }

    /// The UNCOMPRESSED tar stream of layer `index` (gzip, zstd or plain by media type). The stored
    /// bytes are verified against digest and size while they stream; a mismatch, a short or long
    /// blob, or truncated compression surfaces as an `io::Error` (kind `InvalidData`) from `read()`
    /// no later than EOF, and the message names the blob digest and the image reference.
    ///
    /// Read it to EOF (after a tar reader stops at the end-of-archive marker, copy the rest to
    /// `io::sink()`) before trusting what was read.
    pub fn open_layer(&self, index: usize) -> Result<Box<dyn Read + Send + '_>, OciError> {
        let layer = self.layer(index)?;
        let what = self.layer_what(index);
        let compression = layer_compression(&layer.media_type)
            .map_err(|p| OciError::blob(&self.label, what, layer.digest, p))?;
        let raw = self
            .source
            .open_blob(&layer.digest, BlobKind::Blob, Some(layer.size), what)?;
        let label = blob_label(&self.label, what, &layer.digest, &raw.location);
        let verified = VerifyingReader::new(raw.reader, layer.digest, layer.size, label.clone());
        let reader = LayerReader::new(verified, compression, label).map_err(|e| {
            OciError::blob(
                &self.label,
                what,
                layer.digest,
                format!("cannot start decompression: {e}"),
            )
        })?;
        Ok(Box::new(reader))
    }

    /// Reads layer `index` completely and checks it against its digest and size; for a registry
    /// with a store, downloads it into the store. `on_bytes` gets the length of each chunk read.
    pub fn verify_layer(
        &self,
        index: usize,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<(), OciError> {
        let layer = self.layer(index)?;
        self.source
            .fetch(&layer.digest, layer.size, self.layer_what(index), on_bytes)
    }

    /// The compression of layer `index`, from its media type.
    pub fn layer_compression(&self, index: usize) -> Result<Compression, OciError> {
        let layer = self.layer(index)?;
        layer_compression(&layer.media_type)
            .map_err(|p| OciError::blob(&self.label, self.layer_what(index), layer.digest, p))
    }

    /// Writes a minimal OCI image layout holding exactly this image (`index.json` → the manifest,
    /// blobs verbatim, every layer verified on the way), atomically: it is built in a temporary
    /// directory beside `dir` and renamed into place. An existing empty directory or OCI layout at
    /// `dir` is replaced; anything else there is an error.
    pub fn write_layout(&self, dir: &Path) -> Result<(), OciError> {
        let name = dir.file_name().ok_or_else(|| {
            OciError::write(
                dir,
                io::Error::new(io::ErrorKind::InvalidInput, "the path has no final name"),
            )
        })?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| OciError::write(&parent, e))?;
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".partial")
            .tempdir_in(&parent)
            .map_err(|e| OciError::write(&parent, e))?;
        let root = temp.path();
        let blobs = root.join("blobs").join("sha256");
        for d in [root.to_path_buf(), root.join("blobs"), blobs.clone()] {
            fs::create_dir_all(&d)
                .and_then(|_| set_mode(&d, 0o755))
                .map_err(|e| OciError::write(&d, e))?;
        }
        write_file(
            &root.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        let index = OutIndex {
            schema_version: 2,
            media_type: media::OCI_INDEX,
            manifests: vec![OutDescriptor {
                media_type: &self.manifest_media_type,
                digest: self.manifest_digest.to_string(),
                size: self.manifest_json.len() as u64,
            }],
        };
        let index_json = serde_json::to_vec(&index).expect("serializing plain structs cannot fail");
        write_file(&root.join("index.json"), &index_json)?;
        write_file(&blobs.join(self.manifest_digest.hex()), &self.manifest_json)?;
        write_file(&blobs.join(self.config_digest.hex()), &self.config_json)?;
        let mut written = BTreeSet::from([self.manifest_digest, self.config_digest]);
        for (i, layer) in self.layers.iter().enumerate() {
            if !written.insert(layer.digest) {
                continue;
            }
            let path = blobs.join(layer.digest.hex());
            let mut reader = self.open_layer_blob(i)?;
            let mut out = File::create(&path).map_err(|e| OciError::write(&path, e))?;
            io::copy(&mut reader, &mut out).map_err(|e| {
                if e.get_ref()
                    .is_some_and(|inner| inner.is::<crate::verify::BlobError>())
                {
                    stream_error(&self.label, e)
                } else {
                    OciError::write(&path, e)
                }
            })?;
            out.sync_all()
                .and_then(|_| set_mode(&path, 0o644))
                .map_err(|e| OciError::write(&path, e))?;
        }
        replace_dir(temp.keep(), dir)
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    let mut f = File::create(path).map_err(|e| OciError::write(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .and_then(|_| set_mode(path, 0o644))
        .map_err(|e| OciError::write(path, e))
}

/// Renames the finished `built` directory to `target`. An empty directory is replaced by rename
/// itself; an existing OCI layout is moved aside first and removed after the swap.
fn replace_dir(built: PathBuf, target: &Path) -> Result<(), OciError> {
    let cleanup = |e: OciError| {
        let _ = fs::remove_dir_all(&built);
        e
    };
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(cleanup(OciError::write(target, e))),
        Ok(m) if m.is_dir() => {
            let empty = fs::read_dir(target)
                .map_err(|e| cleanup(OciError::write(target, e)))?
                .next()
                .is_none();
            if !empty {
                if !target.join("oci-layout").is_file() {
                    return Err(cleanup(OciError::write(
                        target,
                        io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "exists and is not an OCI layout; refusing to replace it (remove it or choose another path)",
                        ),
                    )));
                }
                let old = built.with_extension("old");
                fs::rename(target, &old).map_err(|e| cleanup(OciError::write(target, e)))?;
                fs::rename(&built, target).map_err(|e| {
                    let _ = fs::rename(&old, target);
                    cleanup(OciError::write(target, e))
                })?;
                return fs::remove_dir_all(&old).map_err(|e| OciError::write(&old, e));
            }
        }
        Ok(_) => {
            return Err(cleanup(OciError::write(
                target,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory; refusing to replace it",
                ),
            )))
        }
    }
    fs::rename(&built, target).map_err(|e| cleanup(OciError::write(target, e)))
}

fn check_layout_marker(label: &str, storage: &Storage) -> Result<(), OciError> {
    if !storage.exists("oci-layout") {
        return Err(OciError::image(
            label,
            format!(
                "is not an OCI image layout: there is no {}",
                storage.describe("oci-layout")
            ),
        ));
    }
    let bytes = storage
        .read_small("oci-layout")
        .map_err(|p| OciError::image(label, p))?;
    let marker: LayoutMarker = serde_json::from_slice(&bytes).map_err(|e| {
        OciError::image(
            label,
            format!("{} is not valid: {e}", storage.describe("oci-layout")),
        )
    })?;
    if !marker.image_layout_version.starts_with("1.") {
        return Err(OciError::image(
            label,
            format!(
                "OCI layout version {:?} is not supported (expected 1.x)",
                marker.image_layout_version
            ),
        ));
    }
    Ok(())
}

pub(crate) enum DocKind {
    Index,
    Manifest(String),
}

/// Decides whether a document is an index or a manifest from its own `mediaType`, which must agree
/// with the media type it was referenced with (descriptor or Content-Type), if any.
pub(crate) fn classify(
    label: &str,
    what: &str,
    digest: &Digest,
    bytes: &[u8],
    declared: Option<&str>,
) -> Result<DocKind, OciError> {
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| OciError::blob(label, what, digest, format!("is not a JSON object: {e}")))?;
    let media_type = match (probe.media_type.as_deref(), declared) {
        (Some(own), Some(declared)) if own != declared => {
            return Err(OciError::blob(
                label,
                what,
                digest,
                format!("says its mediaType is {own:?}, but it was referenced as {declared:?}"),
            ))
        }
        (Some(own), _) => own.to_string(),
        (None, Some(declared)) => declared.to_string(),
        // OCI 1.0 allowed documents without mediaType; fall back to their shape.
        (None, None) if probe.manifests.is_some() => media::OCI_INDEX.to_string(),
        (None, None) if probe.config.is_some() && probe.layers.is_some() => {
            media::OCI_MANIFEST.to_string()
        }
        (None, None) => {
            let hint = if probe.rootfs.is_some() {
                " (it looks like an image config: pin the manifest digest)"
            } else {
                ""
            };
            return Err(OciError::blob(
                label,
                what,
                digest,
                format!("is neither an image index nor a manifest{hint}"),
            ));
        }
    };
    if is_index(&media_type) {
        Ok(DocKind::Index)
    } else if is_manifest(&media_type) {
        Ok(DocKind::Manifest(media_type))
    } else {
        Err(OciError::blob(
            label,
            what,
            digest,
            media::unsupported_document(&media_type),
        ))
    }
}

/// A descriptor's digest, size and media type, each checked.
pub(crate) fn parse_descriptor(
    label: &str,
    what: &str,
    d: &Descriptor,
) -> Result<(Digest, u64, String), OciError> {
    let digest: Digest = d.digest.parse().map_err(|e| {
        OciError::blob(
            label,
            what,
            &d.digest,
            format!("has a malformed digest: {e}"),
        )
    })?;
    let size = u64::try_from(d.size).map_err(|_| {
        OciError::blob(
            label,
            what,
            digest,
            format!("has a negative size {}", d.size),
        )
    })?;
    let media_type = d
        .media_type
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| OciError::blob(label, what, digest, "has no mediaType in its descriptor"))?;
    Ok((digest, size, media_type))
}

/// Reads the pinned document and resolves it to one image.
pub(crate) fn resolve(
    base: &BaseRef,
    source: Box<dyn BlobSource>,
    opts: &OpenOptions,
) -> Result<Image, OciError> {
    let digest = base.digest();
    let (bytes, content_type) = read_document(
        &*source,
        &digest,
        BlobKind::Manifest,
        None,
        "manifest or index",
    )?;
    // A registry's Content-Type is a hint only when it is one of the types we asked for.
    let declared = content_type.filter(|c| is_index(c) || is_manifest(c));
    resolve_document(base, source, digest, bytes, declared.as_deref(), opts)
}

pub(crate) fn resolve_document(
    base: &BaseRef,
    source: Box<dyn BlobSource>,
    digest: Digest,
    bytes: Vec<u8>,
    declared: Option<&str>,
    opts: &OpenOptions,
) -> Result<Image, OciError> {
    let label = base.to_string();
    match classify(&label, "manifest or index", &digest, &bytes, declared)? {
        DocKind::Manifest(media_type) => {
            build_image(base, source, None, digest, bytes, media_type, None)
        }
        DocKind::Index => {
            let index: IndexDoc = serde_json::from_slice(&bytes).map_err(|e| {
                OciError::blob(
                    &label,
                    "index",
                    digest,
                    format!("is not a valid image index: {e}"),
                )
            })?;
            if index.schema_version != 2 {
                return Err(OciError::blob(
                    &label,
                    "index",
                    digest,
                    format!("has schemaVersion {}, expected 2", index.schema_version),
                ));
            }
            let chosen = pick_platform(&label, &digest, &index, &opts.platform)?;
            let what = format!("manifest for {} in index {digest}", opts.platform);
            let (m_digest, m_size, m_type) = parse_descriptor(&label, &what, chosen)?;
            if is_index(&m_type) {
                return Err(OciError::blob(
                    &label,
                    &what,
                    m_digest,
                    "is itself an index: nested indexes are not supported",
                ));
            }
            if !is_manifest(&m_type) {
                return Err(OciError::blob(
                    &label,
                    &what,
                    m_digest,
                    media::unsupported_document(&m_type),
                ));
            }
            let (m_bytes, _) =
                read_document(&*source, &m_digest, BlobKind::Manifest, Some(m_size), &what)?;
            match classify(&label, &what, &m_digest, &m_bytes, Some(&m_type))? {
                DocKind::Manifest(mt) => {
                    build_image(base, source, Some(digest), m_digest, m_bytes, mt, None)
                }
                DocKind::Index => {
                    unreachable!("classify agrees with the manifest media type checked above")
                }
            }
        }
    }
}

fn pick_platform<'a>(
    label: &str,
    digest: &Digest,
    index: &'a IndexDoc,
    platform: &Platform,
) -> Result<&'a Descriptor, OciError> {
    // The first match in index order: the index is pinned, so the choice is too.
    if let Some(d) = index.manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
    }) {
        return Ok(d);
    }
    let available: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| p.display())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let available = if available.is_empty() {
        "none with a platform".to_string()
    } else {
        available.join(", ")
    };
    Err(OciError::blob(
        label,
        "index",
        digest,
        format!("has no manifest for platform {platform}; it has: {available} (choose one with --platform)"),
    ))
}

/// Checks a manifest and its config, and the layers' descriptors (and stored sizes where cheap).
/// `layer_names` overrides how layers are named in messages.
pub(crate) fn build_image(
    base: &BaseRef,
    source: Box<dyn BlobSource>,
    index_digest: Option<Digest>,
    manifest_digest: Digest,
    manifest_json: Vec<u8>,
    manifest_media_type: String,
    layer_names: Option<Vec<String>>,
) -> Result<Image, OciError> {
    let label = base.to_string();
    let manifest: ManifestDoc = serde_json::from_slice(&manifest_json).map_err(|e| {
        OciError::blob(
            &label,
            "manifest",
            manifest_digest,
            format!("is not a valid image manifest: {e}"),
        )
    })?;
    if manifest.schema_version != 2 {
        return Err(OciError::blob(
            &label,
            "manifest",
            manifest_digest,
            format!("has schemaVersion {}, expected 2", manifest.schema_version),
        ));
    }
    let (config_digest, config_size, config_type) =
        parse_descriptor(&label, "config", &manifest.config)?;
    if !is_config(&config_type) {
        return Err(OciError::blob(
            &label,
            "config",
            config_digest,
            format!(
                "has media type {config_type:?} in manifest {manifest_digest}, not an image config ({} or {}): \
                 this manifest is not a container image",
                media::OCI_CONFIG,
                media::DOCKER_CONFIG
            ),
        ));
    }
    let (config_json, _) = read_document(
        &*source,
        &config_digest,
        BlobKind::Blob,
        Some(config_size),
        "config",
    )?;
    let config: ConfigDoc = serde_json::from_slice(&config_json).map_err(|e| {
        OciError::blob(
            &label,
            "config",
            config_digest,
            format!("is not a valid image config: {e}"),
        )
    })?;

    let layer_names = layer_names.unwrap_or_else(|| {
        (0..manifest.layers.len())
            .map(|i| format!("layer {i}"))
            .collect()
    });
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (i, d) in manifest.layers.iter().enumerate() {
        let what = &layer_names[i];
        let (digest, size, media_type) = parse_descriptor(&label, what, d)?;
        let compression = layer_compression(&media_type).map_err(|p| {
            OciError::blob(
                &label,
                what,
                digest,
                format!("{p} (in manifest {manifest_digest})"),
            )
        })?;
        if d.urls.as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(OciError::blob(
                &label,
                what,
                digest,
                "has external urls: foreign layers are refused, the image must carry all its content",
            ));
        }
        if let Some(stored) = source.stored_size(&digest, what)? {
            if stored != size {
                return Err(OciError::blob(
                    &label,
                    what,
                    digest,
                    format!(
                        "size mismatch: {stored} bytes are stored, the manifest declares {size}"
                    ),
                ));
            }
        }
        if let Some(diff_id) = config.rootfs.as_ref().and_then(|r| r.diff_ids.get(i)) {
            if compression == Compression::None && *diff_id != digest.to_string() {
                return Err(OciError::blob(
                    &label,
                    what,
                    digest,
                    format!("is uncompressed, so its digest must equal the config's rootfs.diff_ids[{i}] {diff_id}"),
                ));
            }
        }
        layers.push(LayerDescriptor {
            digest,
            size,
            media_type,
        });
    }
    if let Some(rootfs) = &config.rootfs {
        if rootfs.diff_ids.len() != layers.len() {
            return Err(OciError::blob(
                &label,
                "config",
                config_digest,
                format!(
                    "lists {} rootfs.diff_ids, but manifest {manifest_digest} has {} layers",
                    rootfs.diff_ids.len(),
                    layers.len()
                ),
            ));
        }
    }
    Ok(Image {
        reference: base.clone(),
        label,
        source,
        index_digest,
        manifest_digest,
        manifest_media_type,
        manifest_json,
        config_digest,
        config_json,
        layers,
        layer_names,
    })
}
