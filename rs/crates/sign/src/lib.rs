//! Release signing and verification (minisign), SLSA provenance and SPDX SBOM.
//!
//! - [`keys`]: minisign key pairs (`keygen`, loading ours and stock `minisign -G` keys).
//! - [`minisig`]: deterministic `FILE.minisig` signatures that stock `minisign -V` accepts.
//! - [`verify`]: verification of a whole release directory: its files, their signatures, and
//!   that the provenance, SBOM and build manifest describe this release (`bind`).
//! - [`provenance`]: in-toto Statement v1 with a SLSA v1 provenance predicate.
//! - [`sbom`]: SPDX 2.3 JSON of the root filesystem and its Debian packages.
//!
//! Nothing here prints or exits; errors name the input and the problem. No output depends on the
//! clock: times are SOURCE_DATE_EPOCH values read from the build's manifests.

mod bind;
pub mod keys;
pub mod layers;
pub mod minisig;
pub mod provenance;
pub mod sbom;
pub mod sums;
pub mod verify;

pub use keys::{
    keygen, keygen_with_limits, KdfLimits, KeyError, KeyId, Password, Protection, PublicKey,
    SigningKey, PASSWORD_ENV,
};
pub use minisig::{sign_file, verify_file, SigProblem, SignError};
pub use provenance::{render_provenance, write_provenance, ProvenanceError, ProvenanceRequest};
pub use sbom::{render_sbom, write_sbom, SbomError, SbomRequest};
pub use sums::{read_sums, SumEntry, SumsError};
pub use verify::{
    verify_release, Problem, Verified, VerifyError, BUILD_MANIFEST_NAME, METADATA_FILES,
    PROVENANCE_NAME, ROOTFS_MANIFEST_NAME, SBOM_NAME,
};

/// Seconds since the epoch as RFC 3339 UTC with whole seconds: `2023-11-14T22:13:20Z`.
pub fn rfc3339(seconds: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
