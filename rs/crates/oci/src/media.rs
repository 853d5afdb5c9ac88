//! Media types this crate understands, and what each one means for reading a blob.

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The Accept header for manifest requests: every index and manifest type we can read.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "plain",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

pub(crate) fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

pub(crate) fn is_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// The compression of a layer media type, or why the layer cannot be used.
pub fn layer_compression(media_type: &str) -> Result<Compression, String> {
    match media_type {
        OCI_LAYER_TAR => Ok(Compression::None),
        OCI_LAYER_TAR_GZIP | DOCKER_LAYER_TAR_GZIP => Ok(Compression::Gzip),
        OCI_LAYER_TAR_ZSTD => Ok(Compression::Zstd),
        m if m.contains("nondistributable") || m.contains("foreign") => Err(format!(
            "media type {m} is a foreign/non-distributable layer whose content is not part of the \
             image (it would come from another server); such layers are refused: use a base image \
             without them"
        )),
        m => Err(format!(
            "media type {m:?} is not a layer type this tool reads (expected {OCI_LAYER_TAR}, \
             {OCI_LAYER_TAR_GZIP}, {OCI_LAYER_TAR_ZSTD} or {DOCKER_LAYER_TAR_GZIP})"
        )),
    }
}

/// Why a document's media type is not an index or manifest we can read.
pub(crate) fn unsupported_document(media_type: &str) -> String {
    if media_type.starts_with("application/vnd.docker.distribution.manifest.v1") {
        "is a Docker schema 1 manifest, which is not supported: re-push the image with a current \
         tool (e.g. skopeo copy) to get a schema 2 or OCI manifest"
            .to_string()
    } else {
        format!(
            "has media type {media_type:?}, which is neither an image index ({OCI_INDEX}, \
             {DOCKER_MANIFEST_LIST}) nor an image manifest ({OCI_MANIFEST}, {DOCKER_MANIFEST})"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_types() {
        assert_eq!(layer_compression(OCI_LAYER_TAR), Ok(Compression::None));
        assert_eq!(
            layer_compression(DOCKER_LAYER_TAR_GZIP),
            Ok(Compression::Gzip)
        );
        assert_eq!(layer_compression(OCI_LAYER_TAR_ZSTD), Ok(Compression::Zstd));
        let e = layer_compression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
            .unwrap_err();
        assert!(e.contains("foreign/non-distributable"), "{e}");
        let e = layer_compression("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
            .unwrap_err();
        assert!(e.contains("refused"), "{e}");
        let e = layer_compression("application/octet-stream").unwrap_err();
        assert!(e.contains("not a layer type"), "{e}");
    }
}
