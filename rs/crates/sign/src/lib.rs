//! Release signing and verification (minisign), SLSA provenance and SPDX SBOM.
