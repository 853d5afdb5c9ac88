//! What ties a release's files together: the provenance names the artifacts of `SHA256SUMS`, the
//! SBOM the root filesystem of the build manifest, the build manifest the files of `SHA256SUMS`.
//! A validly signed file from another release (same key) fails here.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};

use serde::Deserialize;

use icos_common::Digest;

use crate::provenance::{PREDICATE_TYPE, STATEMENT_TYPE};
use crate::sbom::ROOTFS_ID;
use crate::sums::{SumEntry, SUMS_NAME};
use crate::verify::{
    Problem, BUILD_MANIFEST_NAME, PROVENANCE_NAME, ROOTFS_MANIFEST_NAME, SBOM_NAME,
};

/// The largest SBOM parsed (it lists every file of the root filesystem; only its packages are
/// kept while it is read).
pub const SBOM_MAX: u64 = 1 << 30;

/// What a verified build manifest says about the release.
#[derive(Debug)]
pub(crate) struct BuildFacts {
    rootfs_tar: Digest,
    rootfs_manifest: Digest,
    artifacts: BTreeMap<String, Digest>,
}

#[derive(Deserialize)]
struct BuildManifest {
    rootfs: Rootfs,
    artifacts: Vec<Artifact>,
}

#[derive(Deserialize)]
struct Rootfs {
    manifest_sha256: Digest,
    tar_sha256: Digest,
}

#[derive(Deserialize)]
struct Artifact {
    name: String,
    sha256: Digest,
}

fn not_bound(name: &str, reason: String) -> Problem {
    Problem::NotBound {
        name: name.into(),
        reason,
    }
}

fn bad(name: &str, reason: String) -> Problem {
    Problem::BadMetadata {
        name: name.into(),
        reason,
    }
}

/// Reads the facts of a build manifest whose digest `SHA256SUMS` vouches for.
pub(crate) fn build_facts(bytes: &[u8]) -> Result<BuildFacts, Problem> {
    let m: BuildManifest = serde_json::from_slice(bytes).map_err(|e| {
        bad(
            BUILD_MANIFEST_NAME,
            format!("not an icos build manifest: {e}"),
        )
    })?;
    let mut artifacts = BTreeMap::new();
    for a in m.artifacts {
        if artifacts.insert(a.name.clone(), a.sha256).is_some() {
            return Err(bad(
                BUILD_MANIFEST_NAME,
                format!("it lists artifact {} twice", a.name),
            ));
        }
    }
    Ok(BuildFacts {
        rootfs_tar: m.rootfs.tar_sha256,
        rootfs_manifest: m.rootfs.manifest_sha256,
        artifacts,
    })
}

/// `SHA256SUMS` lists the build manifest, the rootfs manifest it names and its artifacts, with
/// the digests it records, and nothing else.
pub(crate) fn sums_match_manifest(entries: &[SumEntry], facts: &BuildFacts) -> Vec<Problem> {
    let mut want = facts.artifacts.clone();
    want.insert(ROOTFS_MANIFEST_NAME.into(), facts.rootfs_manifest);
    let mut out = Vec::new();
    for e in entries {
        if e.name == BUILD_MANIFEST_NAME {
            continue;
        }
        match want.remove(&e.name) {
            None => out.push(not_bound(
                &e.name,
                format!("{SUMS_NAME} lists it, but {BUILD_MANIFEST_NAME} names no such artifact"),
            )),
            Some(d) if d != e.sha256 => out.push(not_bound(
                &e.name,
                format!(
                    "{SUMS_NAME} lists {}, {BUILD_MANIFEST_NAME} records {d}: they come from different builds",
                    e.sha256
                ),
            )),
            Some(_) => {}
        }
    }
    for (name, d) in want {
        out.push(not_bound(
            &name,
            format!("{BUILD_MANIFEST_NAME} names it ({d}), but {SUMS_NAME} does not list it"),
        ));
    }
    out
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    type_: String,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    subject: Vec<Subject>,
}

#[derive(Deserialize)]
struct Subject {
    name: String,
    digest: SubjectDigest,
}

#[derive(Deserialize)]
struct SubjectDigest {
    sha256: String,
}

/// The provenance's subjects are exactly the entries of `SHA256SUMS`, names and digests.
pub(crate) fn provenance_subjects(bytes: &[u8], entries: &[SumEntry]) -> Result<(), Problem> {
    let name = PROVENANCE_NAME;
    let st: Statement = serde_json::from_slice(bytes)
        .map_err(|e| bad(name, format!("not an in-toto statement with subjects: {e}")))?;
    if st.type_ != STATEMENT_TYPE || st.predicate_type != PREDICATE_TYPE {
        return Err(bad(
            name,
            format!(
                "it is a {:?} statement of {:?}, not {STATEMENT_TYPE:?} of {PREDICATE_TYPE:?}",
                st.type_, st.predicate_type
            ),
        ));
    }
    let mut subjects: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &st.subject {
        if subjects.insert(&s.name, &s.digest.sha256).is_some() {
            return Err(bad(name, format!("subject {} is listed twice", s.name)));
        }
    }
    let mut diffs = Vec::new();
    for e in entries {
        let hex = e.sha256.hex();
        match subjects.remove(e.name.as_str()) {
            None => diffs.push(format!(
                "{SUMS_NAME} lists {}, which is not a subject",
                e.name
            )),
            Some(d) if d != hex => diffs.push(format!(
                "its subject {} has sha256:{d}, {SUMS_NAME} lists sha256:{hex}",
                e.name
            )),
            Some(_) => {}
        }
    }
    for s in subjects.keys() {
        diffs.push(format!("its subject {s} is not listed in {SUMS_NAME}"));
    }
    match diffs.len() {
        0 => Ok(()),
        n => Err(not_bound(
            name,
            format!(
                "{}{}: it describes the artifacts of another build",
                diffs[..n.min(3)].join("; "),
                if n > 3 {
                    format!(" (and {} more differences)", n - 3)
                } else {
                    String::new()
                }
            ),
        )),
    }
}

#[derive(Deserialize)]
struct Sbom {
    #[serde(rename = "spdxVersion")]
    spdx_version: String,
    packages: Vec<SbomPackage>,
}

#[derive(Deserialize)]
struct SbomPackage {
    #[serde(rename = "SPDXID")]
    id: String,
    #[serde(default)]
    checksums: Vec<Checksum>,
}

#[derive(Deserialize)]
struct Checksum {
    algorithm: String,
    #[serde(rename = "checksumValue")]
    value: String,
}

/// The SBOM's root filesystem package carries the rootfs tar digest of the build manifest.
pub(crate) fn sbom_root(file: File, facts: &BuildFacts) -> Result<(), Problem> {
    let name = SBOM_NAME;
    let size = file.metadata().map_err(|e| bad(name, e.to_string()))?.len();
    if size > SBOM_MAX {
        return Err(Problem::TooLarge {
            name: name.into(),
            size,
            max: SBOM_MAX,
        });
    }
    // Streamed: the files it lists are skipped, not kept.
    let sbom: Sbom = serde_json::from_reader(BufReader::new(file.take(SBOM_MAX)))
        .map_err(|e| bad(name, format!("not an SPDX document with packages: {e}")))?;
    if sbom.spdx_version != "SPDX-2.3" {
        return Err(bad(
            name,
            format!("it is {:?}, not SPDX-2.3", sbom.spdx_version),
        ));
    }
    let root = sbom
        .packages
        .iter()
        .find(|p| p.id == ROOTFS_ID)
        .ok_or_else(|| {
            bad(
                name,
                format!("it has no root filesystem package {ROOTFS_ID}"),
            )
        })?;
    let want = facts.rootfs_tar.hex();
    let have: Vec<&str> = root
        .checksums
        .iter()
        .filter(|c| c.algorithm == "SHA256")
        .map(|c| c.value.as_str())
        .collect();
    if have != [want.as_str()] {
        return Err(not_bound(
            name,
            format!(
                "its root filesystem {ROOTFS_ID} has SHA256 {}, {BUILD_MANIFEST_NAME} records the rootfs tar sha256:{want}: it describes another root filesystem",
                if have.is_empty() { "none".to_string() } else { have.join(", ") }
            ),
        ));
    }
    Ok(())
}
