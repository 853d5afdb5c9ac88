//! SPDX 2.3 JSON SBOM of a root filesystem, from the rootfs tar and `rootfs.manifest.json`.
//!
//! The tar is streamed once: its sha256 is checked against the manifest's `output`, every regular
//! file is hashed (SHA1, which SPDX 2.3 requires on each file, and SHA256, which must match the
//! manifest), and `/var/lib/dpkg/status` is read for the installed Debian packages.
//!
//! Deterministic: `created` is the manifest's SOURCE_DATE_EPOCH, the document namespace and every
//! SPDX id derive from names, paths and the tar digest, packages are sorted, files follow the
//! manifest order (bytewise by path) and JSON object keys come out sorted.

use std::collections::{BTreeMap, BTreeSet};

use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use icos_common::tarread::TarReader;
use icos_common::{open_regular, AtomicFile, Digest, HashingReader, SourceDateEpoch};

use crate::layers::LayerChange;
use crate::provenance::pct;
use crate::rfc3339;

const ROOTFS_MANIFEST_SCHEMA: &str = "icos.rootfs-manifest/v1";
/// Where the documentNamespace of every SBOM lives: `<prefix><name>-<rootfs tar sha256 hex>`.
pub const NAMESPACE_PREFIX: &str = "https://icos.invalid/spdx/";
const DPKG_STATUS: &str = "/var/lib/dpkg/status";
const DPKG_STATUS_MAX: u64 = 256 << 20;
pub(crate) const ROOTFS_ID: &str = "SPDXRef-Package-rootfs";

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("SBOM name {0:?} is not usable: use letters, digits, '.', '_' and '-' only (it becomes part of the document namespace URI)")]
    BadName(String),
    #[error("cannot read rootfs manifest {path}: {source}")]
    ReadManifest { path: PathBuf, source: io::Error },
    #[error("rootfs manifest {path} is not valid: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    #[error("cannot read rootfs tar {path}: {source}")]
    ReadTar { path: PathBuf, source: io::Error },
    #[error("rootfs tar {path} is not a valid icos rootfs tar: {reason}")]
    BadTar { path: PathBuf, reason: String },
    #[error("rootfs tar {tar} does not match manifest {manifest}: {reason}: pass the tar and manifest of the same icos-rootfs run")]
    Mismatch {
        tar: PathBuf,
        manifest: PathBuf,
        reason: String,
    },
    #[error("{DPKG_STATUS} in {tar} is malformed: {reason}")]
    BadDpkgStatus { tar: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("base {base}: {reason}")]
    BadBase { base: String, reason: String },
}

/// What the SBOM is made from.
#[derive(Debug, Clone)]
pub struct SbomRequest<'a> {
    pub rootfs_tar: &'a Path,
    pub rootfs_manifest: &'a Path,
    /// The document and root package name (for example the image name).
    pub name: &'a str,
    /// What each layer of the base did to the Debian packages ([`crate::layers`]): a package a
    /// layer added carries an annotation naming that layer; packages removed are annotated on the
    /// root filesystem package.
    pub layer_changes: &'a [LayerChange],
}

#[derive(Deserialize)]
struct RootfsManifest {
    schema: String,
    source_date_epoch: u64,
    output: Output,
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Output {
    sha256: Digest,
    size: u64,
}

#[derive(Deserialize)]
struct Entry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    sha256: Option<Digest>,
    #[serde(default)]
    target: Option<String>,
}

#[derive(Clone, Copy)]
struct FileHashes {
    sha1: [u8; 20],
    sha256: Digest,
}

/// An installed Debian package from the dpkg status database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DebPackage {
    pub name: String,
    pub architecture: String,
    pub version: String,
    /// Source package name and version (`Source:` field; the binary's own when absent).
    pub source: Option<(String, Option<String>)>,
}

impl DebPackage {
    /// `pkg:deb/debian/NAME@VERSION?arch=ARCH`, percent-encoded.
    pub fn purl(&self) -> String {
        format!(
            "pkg:deb/debian/{}@{}?arch={}",
            pct(&self.name),
            pct(&self.version),
            pct(&self.architecture)
        )
    }
}

/// Parses a dpkg status file, keeping the installed packages ("Status: ... installed"), sorted.
pub fn parse_dpkg_status(text: &str) -> Result<Vec<DebPackage>, String> {
    let mut out = Vec::new();
    for (i, para) in text.split("\n\n").enumerate() {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for line in para.lines() {
            if line.is_empty() || line.starts_with(' ') || line.starts_with('\t') {
                continue; // continuation of a multi-line field (Description, Conffiles, ...)
            }
            let (k, v) = line.split_once(':').ok_or_else(|| {
                format!("paragraph {}: line {line:?} is not 'Field: value'", i + 1)
            })?;
            fields.insert(k.trim(), v.trim());
        }
        let Some(name) = fields.get("Package").copied() else {
            if fields.is_empty() {
                continue;
            }
            return Err(format!("paragraph {} has no Package field", i + 1));
        };
        let status = fields.get("Status").copied().unwrap_or("");
        if status.split_whitespace().last() != Some("installed") {
            continue;
        }
        let need = |f: &str| {
            fields
                .get(f)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string())
                .ok_or_else(|| format!("installed package {name:?} has no {f} field"))
        };
        let version = need("Version")?;
        let architecture = need("Architecture")?;
        let source = fields.get("Source").map(|s| match s.split_once(' ') {
            Some((n, v)) => (
                n.to_string(),
                Some(
                    v.trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .to_string(),
                ),
            ),
            None => (s.to_string(), None),
        });
        out.push(DebPackage {
            name: name.to_string(),
            architecture,
            version,
            source,
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Builds the SBOM document.
pub fn sbom(req: &SbomRequest) -> Result<Value, SbomError> {
    let name = req.name;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(SbomError::BadName(name.into()));
    }
    let mpath = req.rootfs_manifest;
    let tpath = req.rootfs_tar;
    let bad_manifest = |reason: String| SbomError::BadManifest {
        path: mpath.into(),
        reason,
    };
    let mut mbytes = Vec::new();
    open_regular(mpath)
        .and_then(|mut f| f.read_to_end(&mut mbytes))
        .map_err(|source| SbomError::ReadManifest {
            path: mpath.into(),
            source,
        })?;
    let manifest: RootfsManifest =
        serde_json::from_slice(&mbytes).map_err(|e| bad_manifest(e.to_string()))?;
    drop(mbytes);
    if manifest.schema != ROOTFS_MANIFEST_SCHEMA {
        return Err(bad_manifest(format!(
            "schema is {:?}, this tool reads {ROOTFS_MANIFEST_SCHEMA:?}",
            manifest.schema
        )));
    }
    if manifest.source_date_epoch > SourceDateEpoch::MAX {
        return Err(bad_manifest(format!(
            "source_date_epoch {} is out of range",
            manifest.source_date_epoch
        )));
    }
    let mismatch = |reason: String| SbomError::Mismatch {
        tar: tpath.into(),
        manifest: mpath.into(),
        reason,
    };

    let scan = scan_tar(tpath)?;
    if scan.digest != manifest.output.sha256 || scan.size != manifest.output.size {
        return Err(mismatch(format!(
            "the tar is {} ({} bytes), the manifest's output is {} ({} bytes)",
            scan.digest, scan.size, manifest.output.sha256, manifest.output.size
        )));
    }

    // Files: every regular file (and hardlink to one) of the manifest, checked against the tar.
    // A hardlink to a symlink, device or fifo is not a file here, as its target is not.
    let special: BTreeSet<&str> = manifest
        .entries
        .iter()
        .filter(|e| !matches!(e.kind.as_str(), "file" | "hardlink" | "dir"))
        .map(|e| e.path.as_str())
        .collect();
    let mut files = Vec::new();
    let mut seen_files = BTreeSet::new();
    for e in &manifest.entries {
        let hashes = match e.kind.as_str() {
            "file" => {
                let h = scan.files.get(&e.path).ok_or_else(|| {
                    mismatch(format!(
                        "{} is a regular file in the manifest but not in the tar",
                        e.path
                    ))
                })?;
                let want = e
                    .sha256
                    .ok_or_else(|| bad_manifest(format!("file {} has no sha256", e.path)))?;
                if h.sha256 != want {
                    return Err(mismatch(format!(
                        "{}: the tar holds {}, the manifest says {want}",
                        e.path, h.sha256
                    )));
                }
                *h
            }
            "hardlink" => {
                let target = e
                    .target
                    .as_ref()
                    .ok_or_else(|| bad_manifest(format!("hardlink {} has no target", e.path)))?;
                if special.contains(target.as_str()) {
                    continue;
                }
                *scan.files.get(target).ok_or_else(|| {
                    mismatch(format!(
                        "hardlink {} points to {target}, which is not a regular file in the tar",
                        e.path
                    ))
                })?
            }
            _ => continue,
        };
        seen_files.insert(e.path.as_str());
        files.push((e.path.as_str(), hashes));
    }
    if let Some(extra) = scan.files.keys().find(|p| !seen_files.contains(p.as_str())) {
        return Err(mismatch(format!(
            "{extra} is a regular file in the tar but not in the manifest"
        )));
    }

    let packages = match &scan.dpkg_status {
        None => Vec::new(),
        Some(text) => parse_dpkg_status(text).map_err(|reason| SbomError::BadDpkgStatus {
            tar: tpath.into(),
            reason,
        })?,
    };

    let mut ids = BTreeSet::new();
    let mut unique = |id: String| -> Result<String, SbomError> {
        if !ids.insert(id.clone()) {
            return Err(SbomError::BadTar {
                path: tpath.into(),
                reason: format!("two entries map to the SPDX id {id}"),
            });
        }
        Ok(id)
    };
    unique("SPDXRef-DOCUMENT".into())?;
    unique(ROOTFS_ID.into())?;

    // The verification code: SHA1 of the sorted SHA1s of every file of the package (SPDX 2.3 7.9).
    let mut sha1s: Vec<String> = files.iter().map(|(_, h)| hex::encode(h.sha1)).collect();
    sha1s.sort();
    let verification = hex::encode(Sha1::digest(sha1s.concat().as_bytes()));

    let mut spdx_packages = vec![json!({
        "SPDXID": ROOTFS_ID,
        "name": name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": true,
        "packageVerificationCode": {"packageVerificationCodeValue": verification},
        "checksums": [{"algorithm": "SHA256", "checksumValue": scan.digest.hex()}],
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "comment": "The root filesystem (rootfs tar) of the image.",
    })];
    let mut relationships = vec![
        json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": ROOTFS_ID}),
    ];
    for p in &packages {
        let id = unique(package_id(p))?;
        let mut v = Map::new();
        v.insert("SPDXID".into(), json!(id));
        v.insert("name".into(), json!(p.name));
        v.insert("versionInfo".into(), json!(p.version));
        v.insert("downloadLocation".into(), json!("NOASSERTION"));
        v.insert("filesAnalyzed".into(), json!(false));
        v.insert("licenseConcluded".into(), json!("NOASSERTION"));
        v.insert("licenseDeclared".into(), json!("NOASSERTION"));
        v.insert("copyrightText".into(), json!("NOASSERTION"));
        v.insert(
            "externalRefs".into(),
            json!([{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": p.purl()}]),
        );
        v.insert(
            "comment".into(),
            json!(format!("Debian package, architecture {}", p.architecture)),
        );
        if let Some((src, ver)) = &p.source {
            let ver = ver.as_deref().unwrap_or(&p.version);
            v.insert(
                "sourceInfo".into(),
                json!(format!("built package from: {src} {ver}")),
            );
        }
        // The last layer that installed this very version is the one that added it.
        if let Some(c) = req.layer_changes.iter().rev().find(|c| c.added.contains(p)) {
            v.insert(
                "annotations".into(),
                json!([annotation(
                    manifest.source_date_epoch,
                    format!("added by base layer {}", layer_label(c))
                )]),
            );
        }
        spdx_packages.push(Value::Object(v));
        relationships.push(json!({"spdxElementId": ROOTFS_ID, "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    let removed: Vec<Value> = req
        .layer_changes
        .iter()
        .flat_map(|c| c.removed.iter().map(move |p| (c, p)))
        .filter(|(_, p)| !packages.contains(p))
        .map(|(c, p)| {
            annotation(
                manifest.source_date_epoch,
                format!("removed by base layer {}: {}", layer_label(c), p.purl()),
            )
        })
        .collect();
    if !removed.is_empty() {
        spdx_packages[0]["annotations"] = Value::Array(removed);
    }

    let mut spdx_files = Vec::with_capacity(files.len());
    for (path, h) in &files {
        let id = unique(file_id(path))?;
        spdx_files.push(json!({
            "SPDXID": id,
            "fileName": format!(".{path}"),
            "checksums": [
                {"algorithm": "SHA1", "checksumValue": hex::encode(h.sha1)},
                {"algorithm": "SHA256", "checksumValue": h.sha256.hex()},
            ],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        }));
        relationships.push(json!({"spdxElementId": ROOTFS_ID, "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }

    Ok(json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!("{NAMESPACE_PREFIX}{name}-{}", scan.digest.hex()),
        "creationInfo": {
            "created": rfc3339(manifest.source_date_epoch),
            "creators": [format!("Tool: icos-sign-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": spdx_packages,
        "files": spdx_files,
        "relationships": relationships,
    }))
}

/// An SPDX annotation by this tool, dated like everything else (SOURCE_DATE_EPOCH).
fn annotation(epoch: u64, comment: String) -> Value {
    json!({
        "annotationDate": rfc3339(epoch),
        "annotationType": "OTHER",
        "annotator": format!("Tool: icos-sign-{}", env!("CARGO_PKG_VERSION")),
        "comment": comment,
    })
}

/// `3 (sha256:…, RUN useradd …)`: the layer's index, digest and history entry.
fn layer_label(c: &LayerChange) -> String {
    let created_by = c.created_by.trim();
    let created_by = created_by.strip_prefix("/bin/sh -c ").unwrap_or(created_by);
    if created_by.is_empty() {
        format!("{} ({})", c.index, c.digest)
    } else {
        format!("{} ({}, {})", c.index, c.digest, created_by)
    }
}

/// The SBOM as written to disk: pretty JSON and a final newline.
pub fn render_sbom(req: &SbomRequest) -> Result<Vec<u8>, SbomError> {
    let v = sbom(req)?;
    let mut out = serde_json::to_vec_pretty(&v).expect("a JSON value always serializes");
    out.push(b'\n');
    Ok(out)
}

/// Writes the SBOM to `out` atomically.
pub fn write_sbom(req: &SbomRequest, out: &Path) -> Result<(), SbomError> {
    let bytes = render_sbom(req)?;
    let write = || -> io::Result<()> {
        let mut f = AtomicFile::create(out)?;
        f.write_all(&bytes)?;
        f.commit()
    };
    write().map_err(|source| SbomError::Write {
        path: out.into(),
        source,
    })
}

struct TarScan {
    digest: Digest,
    size: u64,
    files: BTreeMap<String, FileHashes>,
    dpkg_status: Option<String>,
}

/// One pass over the tar: its digest, and the hashes of its regular files.
fn scan_tar(path: &Path) -> Result<TarScan, SbomError> {
    let read_err = |source| SbomError::ReadTar {
        path: path.into(),
        source,
    };
    let bad = |reason: String| SbomError::BadTar {
        path: path.into(),
        reason,
    };
    let f = open_regular(path).map_err(read_err)?;
    let mut reader = HashingReader::new(BufReader::with_capacity(1 << 16, f));
    let mut files = BTreeMap::new();
    let mut dpkg_status = None;
    {
        // icos-common's reader, not `tar::Archive`: the tar crate splits PAX records at newlines,
        // so an xattr value holding a 0x0A byte made a valid rootfs tar unreadable.
        let mut archive = TarReader::new(&mut reader);
        let mut buf = vec![0u8; 1 << 16];
        while let Some(entry) = archive.next_entry().map_err(|e| bad(e.to_string()))? {
            let ty = tar::EntryType::new(entry.typeflag);
            if !(ty.is_file() || ty == tar::EntryType::Continuous) {
                continue;
            }
            let raw = entry.path;
            let name = String::from_utf8(raw).map_err(|e| {
                bad(format!(
                    "entry name {:?} is not UTF-8",
                    String::from_utf8_lossy(e.as_bytes())
                ))
            })?;
            let rel = name
                .strip_prefix("./")
                .ok_or_else(|| bad(format!("entry {name:?} does not start with ./")))?;
            let p = format!("/{}", rel.trim_end_matches('/'));
            let keep = p == DPKG_STATUS;
            if keep && entry.size > DPKG_STATUS_MAX {
                return Err(bad(format!(
                    "{DPKG_STATUS} is {} bytes, more than the {DPKG_STATUS_MAX} this tool reads",
                    entry.size
                )));
            }
            let mut kept = Vec::new();
            let mut s1 = Sha1::new();
            let mut s256 = Sha256::new();
            loop {
                let n = match archive.data().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(bad(format!("reading {p}: {e}"))),
                };
                s1.update(&buf[..n]);
                s256.update(&buf[..n]);
                if keep {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
            let h = FileHashes {
                sha1: s1.finalize().into(),
                sha256: Digest::from_bytes(s256.finalize().into()),
            };
            if files.insert(p.clone(), h).is_some() {
                return Err(bad(format!("{p} appears twice")));
            }
            if keep {
                dpkg_status = Some(
                    String::from_utf8(kept)
                        .map_err(|_| bad(format!("{DPKG_STATUS} is not UTF-8")))?,
                );
            }
        }
    }
    // The end-of-archive blocks and any padding after them are part of the file's digest.
    io::copy(&mut reader, &mut io::sink()).map_err(read_err)?;
    let (digest, size) = reader.finish();
    Ok(TarScan {
        digest,
        size,
        files,
        dpkg_status,
    })
}

/// Keeps the characters SPDX ids allow (letters, digits, '.', '-'); others become '-'.
fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn short_hash(s: &str) -> String {
    Digest::of(s.as_bytes()).hex()[..8].to_owned()
}

/// `SPDXRef-Package-deb-NAME-ARCH`, with a short hash of the real name when characters had to be
/// replaced (`libstdc++6` → `libstdc--6-<hash>`), so ids stay unique.
fn package_id(p: &DebPackage) -> String {
    let raw = format!("{}-{}", p.name, p.architecture);
    let clean = id_part(&raw);
    if clean == raw {
        format!("SPDXRef-Package-deb-{clean}")
    } else {
        format!(
            "SPDXRef-Package-deb-{clean}-{}",
            short_hash(&format!("{}:{}", p.name, p.architecture))
        )
    }
}

/// `SPDXRef-File-<path with / as ->-<short hash of the path>`.
fn file_id(path: &str) -> String {
    format!(
        "SPDXRef-File-{}-{}",
        id_part(path.trim_start_matches('/')),
        short_hash(path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_installed_only() {
        let text = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9)\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n Shared libraries.\n\nPackage: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\nPackage: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\n";
        let p = parse_dpkg_status(text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "base-files");
        assert_eq!(p[0].source, None);
        assert_eq!(p[1].source, Some(("glibc".into(), Some("2.36-9".into()))));
        assert_eq!(
            p[1].purl(),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
        );
        let err =
            parse_dpkg_status("Package: x\nStatus: install ok installed\nArchitecture: all\n")
                .unwrap_err();
        assert!(err.contains("no Version"), "{err}");
        assert!(parse_dpkg_status("garbage line\n")
            .unwrap_err()
            .contains("not 'Field: value'"));
    }

    #[test]
    fn ids_are_clean_and_distinct() {
        let a = DebPackage {
            name: "libstdc++6".into(),
            architecture: "amd64".into(),
            version: "1".into(),
            source: None,
        };
        let b = DebPackage {
            name: "libstdc--6".into(),
            ..a.clone()
        };
        assert!(package_id(&a).starts_with("SPDXRef-Package-deb-libstdc--6-amd64-"));
        assert_eq!(package_id(&b), "SPDXRef-Package-deb-libstdc--6-amd64");
        assert_ne!(file_id("/a b"), file_id("/a_b"));
        assert!(file_id("/usr/bin/x").starts_with("SPDXRef-File-usr-bin-x-"));
    }
}
