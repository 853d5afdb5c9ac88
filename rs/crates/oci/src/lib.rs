//! Pinned base images: OCI layouts, docker-save archives and OCI registries, always by sha256 digest, every blob verified.
