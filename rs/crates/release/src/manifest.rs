//! `build-manifest.json` (schema `icos.build-manifest/v1`): what went into a build and what came
//! out. Field order is fixed by the structs below; maps (filesystem parameters) are sorted by key.
//! The provenance tool reads `inputs`, `tools` and `artifacts`.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use icos_common::{sha256_file, AtomicFile, Digest, HashingReader, SourceDateEpoch};
use icos_disk::{DiskReport, PartitionReport};
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

pub const SCHEMA: &str = "icos.build-manifest/v1";
pub const ROOTFS_SCHEMA: &str = "icos.rootfs-manifest/v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildManifest {
    pub schema: String,
    pub image: String,
    pub source_date_epoch: u64,
    pub seed: String,
    pub tools: Vec<ToolRef>,
    pub inputs: Vec<InputRef>,
    pub rootfs: RootfsSummary,
    pub disk: DiskSummary,
    pub artifacts: Vec<Artifact>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRef {
    pub name: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub digest: Option<Digest>,
    /// For a tool known by its version line (rustc, cargo, cc): the pinned package that ships it
    /// (`deb:rustc-web`), whose .deb digest is `digest`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub package: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRef {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uri: Option<String>,
    pub digest: Digest,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsSummary {
    /// SHA-256 of the rootfs manifest file.
    pub manifest_sha256: Digest,
    /// SHA-256 of the rootfs tar (the manifest's `output.sha256`).
    pub tar_sha256: Digest,
    pub entries: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSummary {
    pub sha256: Digest,
    pub size: u64,
    pub disk_guid: String,
    pub partitions: Vec<ManifestPartition>,
}

/// A partition of the disk report plus, when given, its filesystem's parameters JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPartition {
    #[serde(flatten)]
    pub partition: PartitionReport,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub filesystem: Option<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub name: String,
    pub sha256: Digest,
    pub size: u64,
}

/// Everything the manifest is made from.
#[derive(Clone, Debug)]
pub struct ManifestInputs {
    pub image: String,
    pub source_date_epoch: SourceDateEpoch,
    pub seed: String,
    pub rootfs_manifest: PathBuf,
    pub disk_report: PathBuf,
    /// (partition name, parameters JSON file).
    pub fs_params: Vec<(String, PathBuf)>,
    pub artifacts: Vec<PathBuf>,
    pub tools: Vec<ToolRef>,
    /// Extra inputs, after those taken from the rootfs manifest.
    pub inputs: Vec<InputRef>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid {what}: {message}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    #[error("rootfs manifest {path} was built with SOURCE_DATE_EPOCH {found}, this build uses {expected}: rebuild the rootfs or pass the same epoch")]
    EpochMismatch {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("--fs-params {name}=…: the disk report {report} has no partition {name:?}")]
    UnknownPartition { name: String, report: PathBuf },
    #[error("--fs-params for partition {name:?} is given twice")]
    DuplicateParams { name: String },
    #[error("artifacts {a} and {b} have the same name {name:?}: artifact names must be unique")]
    DuplicateArtifact {
        name: String,
        a: PathBuf,
        b: PathBuf,
    },
    #[error("input {name:?} appears twice (the rootfs manifest already names it, or --input repeats it)")]
    DuplicateInput { name: String },
    #[error("{path}: the file name is not UTF-8")]
    BadName { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

// --- the parts of the rootfs manifest read here (unknown fields are ignored) ---

#[derive(Deserialize)]
struct RootfsManifest {
    schema: String,
    source_date_epoch: u64,
    inputs: RootfsInputs,
    output: RootfsOutput,
    entries: Count,
}

#[derive(Deserialize, Default)]
struct RootfsInputs {
    base: Option<BaseInput>,
    spec: Option<FileInput>,
    #[serde(default)]
    files: Vec<FileInput>,
    #[serde(default)]
    extra_layers: Vec<FileInput>,
}

#[derive(Deserialize)]
struct BaseInput {
    reference: String,
    manifest: Digest,
    config: Option<Digest>,
    #[serde(default)]
    layers: Vec<LayerInput>,
}

#[derive(Deserialize)]
struct LayerInput {
    digest: Digest,
    size: Option<u64>,
}

#[derive(Deserialize)]
struct FileInput {
    path: String,
    sha256: Digest,
    size: Option<u64>,
}

#[derive(Deserialize)]
struct RootfsOutput {
    sha256: Digest,
}

/// The length of a JSON array, counted without keeping its elements (a rootfs manifest lists
/// every path of the image).
struct Count(u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(V)
    }
}

/// The inputs named by a rootfs manifest, in a fixed order: the base (reference and manifest
/// digest), its config, its layers, the image description, injected files, extra layers.
fn rootfs_inputs(inputs: &RootfsInputs) -> Vec<InputRef> {
    let mut out = Vec::new();
    if let Some(base) = &inputs.base {
        out.push(InputRef {
            name: "base".into(),
            uri: Some(base.reference.clone()),
            digest: base.manifest,
            size: None,
        });
        if let Some(c) = base.config {
            out.push(InputRef {
                name: "base:config".into(),
                uri: None,
                digest: c,
                size: None,
            });
        }
        for (i, l) in base.layers.iter().enumerate() {
            out.push(InputRef {
                name: format!("base:layer:{i}"),
                uri: None,
                digest: l.digest,
                size: l.size,
            });
        }
    }
    let file = |f: &FileInput| InputRef {
        name: f.path.clone(),
        uri: None,
        digest: f.sha256,
        size: f.size,
    };
    out.extend(inputs.spec.iter().map(file));
    out.extend(inputs.files.iter().map(file));
    out.extend(inputs.extra_layers.iter().map(file));
    out
}

fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    what: &'static str,
) -> Result<T, ManifestError> {
    let f = File::open(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_reader(BufReader::new(f)).map_err(|e| ManifestError::Parse {
        path: path.to_path_buf(),
        what,
        message: e.to_string(),
    })
}

/// Assembles the manifest (reads and hashes the inputs; writes nothing).
pub fn build_manifest(m: &ManifestInputs) -> Result<BuildManifest, ManifestError> {
    // the rootfs manifest: hashed while it is parsed, entries counted, not kept
    let path = &m.rootfs_manifest;
    let f = File::open(path).map_err(|source| ManifestError::Read {
        path: path.clone(),
        source,
    })?;
    let mut reader = HashingReader::new(BufReader::new(f));
    let rootfs: RootfsManifest =
        serde_json::from_reader(&mut reader).map_err(|e| ManifestError::Parse {
            path: path.clone(),
            what: "rootfs manifest",
            message: e.to_string(),
        })?;
    let (manifest_sha256, _) = reader.finish();
    if rootfs.schema != ROOTFS_SCHEMA {
        return Err(ManifestError::Parse {
            path: path.clone(),
            what: "rootfs manifest",
            message: format!("schema is {:?}, expected {ROOTFS_SCHEMA:?}", rootfs.schema),
        });
    }
    if rootfs.source_date_epoch != m.source_date_epoch.seconds() {
        return Err(ManifestError::EpochMismatch {
            path: path.clone(),
            found: rootfs.source_date_epoch,
            expected: m.source_date_epoch.seconds(),
        });
    }

    let mut inputs = rootfs_inputs(&rootfs.inputs);
    inputs.extend(m.inputs.iter().cloned());
    let mut names = std::collections::BTreeSet::new();
    for i in &inputs {
        if !names.insert(i.name.as_str()) {
            return Err(ManifestError::DuplicateInput {
                name: i.name.clone(),
            });
        }
    }

    let disk: DiskReport =
        icos_disk::read_report(&m.disk_report).map_err(|e| ManifestError::Parse {
            path: m.disk_report.clone(),
            what: "disk report",
            message: e.to_string(),
        })?;
    let mut partitions: Vec<ManifestPartition> = disk
        .partitions
        .into_iter()
        .map(|partition| ManifestPartition {
            partition,
            filesystem: None,
        })
        .collect();
    for (name, params) in &m.fs_params {
        let p = partitions
            .iter_mut()
            .find(|p| &p.partition.name == name)
            .ok_or_else(|| ManifestError::UnknownPartition {
                name: name.clone(),
                report: m.disk_report.clone(),
            })?;
        if p.filesystem.is_some() {
            return Err(ManifestError::DuplicateParams { name: name.clone() });
        }
        p.filesystem = Some(read_json(params, "filesystem parameters file")?);
    }

    let mut artifacts: Vec<Artifact> = Vec::new();
    let mut paths: Vec<&PathBuf> = Vec::new();
    for a in &m.artifacts {
        let name = crate::base_name(a).ok_or_else(|| ManifestError::BadName { path: a.clone() })?;
        if let Some(i) = artifacts.iter().position(|x| x.name == name) {
            return Err(ManifestError::DuplicateArtifact {
                name,
                a: paths[i].clone(),
                b: a.clone(),
            });
        }
        let (sha256, size) = sha256_file(a).map_err(|source| ManifestError::Read {
            path: a.clone(),
            source,
        })?;
        artifacts.push(Artifact { name, sha256, size });
        paths.push(a);
    }

    Ok(BuildManifest {
        schema: SCHEMA.to_string(),
        image: m.image.clone(),
        source_date_epoch: m.source_date_epoch.seconds(),
        seed: m.seed.clone(),
        tools: m.tools.clone(),
        inputs,
        rootfs: RootfsSummary {
            manifest_sha256,
            tar_sha256: rootfs.output.sha256,
            entries: rootfs.entries.0,
        },
        disk: DiskSummary {
            sha256: disk.sha256,
            size: disk.size,
            disk_guid: disk.disk_guid,
            partitions,
        },
        artifacts,
    })
}

/// The tools named by a tools-identity file (written by the Bazel rule that builds the tools):
///
/// ```text
/// icos-tools 0.1.0
/// Cargo.lock sha256:<hex>
/// rustc 1.96.0 (… 2026-…)
/// binary: rustc
/// …
/// cargo 1.96.0 (…)
/// cc: x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0
/// deb rustc-web 1.96.0+dfsg1-1~deb12u2 sha256:<hex>
/// bin icos-ext4 sha256:<hex>
/// ```
///
/// gives `icos-tools` (its version, and as digest the SHA-256 of the whole file, which pins the
/// Cargo.lock, the toolchain and every binary), then every binary the build actions run with its
/// digest, `rustc`, `cargo` and `cc` with their version lines, and every pinned toolchain package
/// as `deb:NAME` with its version and the digest of its .deb.
///
/// `rustc`, `cargo` and `cc` carry the digest of the pinned package that ships them (`rustc-web`
/// or `rustc`, `cargo-web` or `cargo`, `gcc-N` for the `gcc-N` the cc line names), whose version
/// must agree with the version line: the toolchain is unpacked from exactly those .debs, so their
/// digests identify the compilers (the file records no digest of the programs themselves).
pub fn tools_from_identity(path: &Path) -> Result<Vec<ToolRef>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |message: String| ManifestError::Parse {
        path: path.to_path_buf(),
        what: "tools-identity file",
        message,
    };
    let mut lines = text.lines();
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("icos-tools "))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("the first line is not \"icos-tools VERSION\"".into()))?;
    let mut tools = vec![ToolRef {
        name: "icos-tools".into(),
        version: version.to_string(),
        digest: Some(Digest::of(text.as_bytes())),
        package: None,
    }];
    let (mut binaries, mut versions, mut packages) = (Vec::new(), Vec::new(), Vec::new());
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let digest = |word: &str| {
            word.parse::<Digest>()
                .map_err(|e| bad(format!("line \"{line}\": {e}")))
        };
        match words.as_slice() {
            ["bin", name, sha] => binaries.push(ToolRef {
                name: name.to_string(),
                version: version.to_string(),
                digest: Some(digest(sha)?),
                package: None,
            }),
            ["deb", name, package_version, sha] => packages.push(ToolRef {
                name: format!("deb:{name}"),
                version: package_version.to_string(),
                digest: Some(digest(sha)?),
                package: None,
            }),
            ["bin" | "deb", ..] => return Err(bad(format!("malformed line \"{line}\""))),
            _ => {
                let named = [("rustc", "rustc "), ("cargo", "cargo "), ("cc", "cc: ")]
                    .iter()
                    .find_map(|(name, prefix)| {
                        line.strip_prefix(prefix).map(|v| (*name, v.trim()))
                    });
                if let Some((name, v)) = named.filter(|(_, v)| !v.is_empty()) {
                    versions.push(ToolRef {
                        name: name.into(),
                        version: v.to_string(),
                        digest: None,
                        package: None,
                    });
                }
            }
        }
    }
    for tool in &mut versions {
        let pkg = providing_package(tool, &packages).map_err(bad)?;
        tool.digest = pkg.digest;
        tool.package = Some(pkg.name.clone());
    }
    tools.extend(binaries);
    tools.extend(versions);
    tools.extend(packages);
    Ok(tools)
}

/// The pinned package of `packages` (`deb:NAME` tool refs) that ships `tool` (rustc, cargo or
/// cc), checked against the tool's version line.
fn providing_package<'p>(tool: &ToolRef, packages: &'p [ToolRef]) -> Result<&'p ToolRef, String> {
    let gcc = tool
        .version
        .split_whitespace()
        .next()
        .and_then(|program| program.rsplit_once("gcc-"))
        .map(|(_, major)| format!("gcc-{major}"));
    let candidates: Vec<String> = match tool.name.as_str() {
        "rustc" => vec!["rustc-web".into(), "rustc".into()],
        "cargo" => vec!["cargo-web".into(), "cargo".into()],
        _ => gcc.into_iter().collect(),
    };
    let pkg = candidates
        .iter()
        .find_map(|c| packages.iter().find(|p| p.name == format!("deb:{c}")))
        .ok_or_else(|| {
            format!(
                "{} \"{}\" is shipped by none of its pinned packages (deb {}): every tool of the build must be identified by a digest",
                tool.name,
                tool.version,
                if candidates.is_empty() { "gcc-N".to_string() } else { candidates.join(" or deb ") }
            )
        })?;
    // rustc/cargo: "1.96.0 (…)" vs "1.96.0+dfsg1-1~deb12u2"; cc: "… (Debian 12.2.0-14) 12.2.0".
    let agrees = if tool.name == "cc" {
        tool.version.contains(&format!("(Debian {})", pkg.version))
    } else {
        let upstream = pkg.version.rsplit(':').next().unwrap_or_default();
        let upstream = upstream.split(['+', '-', '~']).next().unwrap_or_default();
        tool.version.split_whitespace().next() == Some(upstream)
    };
    if !agrees {
        return Err(format!(
            "{} \"{}\" does not match its pinned package {} {}: the file mixes two toolchains",
            tool.name, tool.version, pkg.name, pkg.version
        ));
    }
    Ok(pkg)
}

/// Writes the manifest as pretty JSON with a final newline; returns the file's digest.
pub fn write_manifest(manifest: &BuildManifest, out: &Path) -> Result<Digest, ManifestError> {
    let wr = |source: io::Error| ManifestError::Write {
        path: out.to_path_buf(),
        source,
    };
    let mut f = AtomicFile::create(out).map_err(wr)?;
    let mut h = icos_common::HashingWriter::new(&mut f);
    serde_json::to_writer_pretty(&mut h, manifest).map_err(|e| wr(e.into()))?;
    h.write_all(b"\n").map_err(wr)?;
    let (_, digest, _) = h.finish();
    f.commit().map_err(wr)?;
    Ok(digest)
}
