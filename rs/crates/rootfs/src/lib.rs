//! Flattens OCI layers, applies an image's own changes and writes one normalized, byte-reproducible rootfs tar and its manifest.
