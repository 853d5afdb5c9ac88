//! Release artifacts: sparse deterministic tar.zst packaging, SHA256SUMS, build manifest, signatures, provenance and SBOM.
