//! Compares two builds and names the artifact, partition, file and attribute that differ.
//!
//! [`diff_dirs`] compares two release directories from the top down, hashing every byte it
//! compares itself (a listing such as `SHA256SUMS` is a claim to check, never a fact):
//! 1. every regular file of both directories, present in one or both (`SHA256SUMS`, the
//!    manifests, the packages, the provenance, the SBOM, anything else);
//! 2. what the manifests say about those bytes (`SHA256SUMS`, the build manifest's artifact,
//!    rootfs manifest, disk and partition digests): a manifest that disagrees with the bytes
//!    it describes is named, side by side;
//! 3. the fields of every JSON file that differs (build manifest, rootfs manifest without its
//!    entries, provenance, SBOM), by JSON path;
//! 4. the partitions (`disk.partitions[].image_sha256` of the build manifests, and the bytes);
//! 5. the paths and attributes of the root filesystem (the two rootfs manifests);
//! 6. the bytes of every differing package, streamed in lockstep: every differing region, and
//!    in an ext4 partition every differing structure (superblock field, group descriptor,
//!    bitmap, inode and field, data blocks), inodes and blocks named by their file's path.
//!
//! Packaged images are never extracted: both are decompressed side by side and sparse holes
//! are compared without being expanded. The library never prints; [`Report::render_text`] and
//! [`Report::render_json`] format the result.

mod bytes;
mod diffoscope;
mod error;
pub mod ext4;
pub mod ext4map;
mod files;
pub mod gpt;
pub mod json;
pub mod package;
mod report;
pub mod rootfs;
pub mod stream;
mod structures;
mod sums;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use error::DiffError;
pub use report::{DiffoscopeRun, Finding, Report, REPORT_SCHEMA};
pub use rootfs::Side;
pub use sums::{parse_sums, Sums};

use bytes::{Claims, Found};
use files::Listing;
use rootfs::{EntryDiff, RootfsManifest};

pub const SUMS: &str = "SHA256SUMS";
pub const BUILD_MANIFEST: &str = "build-manifest.json";
pub const ROOTFS_MANIFEST: &str = "rootfs.manifest.json";
pub const DISK_PACKAGE: &str = "disk-img.tar.zst";
pub const UPDATE_PACKAGE: &str = "update-img.tar.zst";

/// How many differing fields of one JSON file are listed (the rest are counted in a note).
pub const MAX_JSON_FIELDS: usize = 50;

/// Root partition type GUIDs (UAPI discoverable partitions: x86-64, arm64).
const ROOT_TYPE_GUIDS: [&str; 2] = [
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
    "b921b045-1df0-41c3-af44-4c6f280d3fae",
];

/// What to do besides the comparison itself.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Run diffoscope on the first file whose content differs (needs both rootfs tars).
    pub diffoscope: bool,
    /// The rootfs tars of A and B, to take that file from.
    pub rootfs_tar_a: Option<PathBuf>,
    pub rootfs_tar_b: Option<PathBuf>,
    /// The diffoscope program (default: `diffoscope` on PATH).
    pub diffoscope_program: Option<PathBuf>,
}

fn is_root_type(t: &str) -> bool {
    (t.starts_with("linux-root-") && !t.contains("verity"))
        || ROOT_TYPE_GUIDS.contains(&t.to_ascii_lowercase().as_str())
}

fn read_json(path: &Path) -> Result<Value, DiffError> {
    let f = icos_common::open_regular(path).map_err(|e| DiffError::read(path, e))?;
    serde_json::from_reader(BufReader::new(f)).map_err(|e| DiffError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn short(hex: &str) -> String {
    format!("sha256:{}…", &hex[..hex.len().min(12)])
}

/// One side of the comparison.
struct Release {
    dir: PathBuf,
    side: Side,
    listing: Listing,
}

impl Release {
    fn has(&self, name: &str) -> bool {
        self.listing.files.contains_key(name)
    }

    fn hex(&self, name: &str) -> Option<String> {
        self.listing.files.get(name).map(|f| f.digest.hex())
    }

    /// A JSON file of the release, if it has it.
    fn json(&self, name: &str) -> Result<Option<Value>, DiffError> {
        self.has(name)
            .then(|| read_json(&self.dir.join(name)))
            .transpose()
    }
}

/// `SHA256SUMS` of one side against the files: missing ones, and digests the files do not have.
fn check_sums(
    r: &Release,
    missing: &mut Vec<Finding>,
    claims: &mut Vec<Finding>,
) -> Result<(), DiffError> {
    if !r.has(SUMS) {
        return Ok(());
    }
    let p = r.dir.join(SUMS);
    let text = icos_common::open_regular(&p)
        .and_then(std::io::read_to_string)
        .map_err(|e| DiffError::read(&p, e))?;
    for (name, listed) in parse_sums(&p, &text)? {
        match r.hex(&name) {
            None => missing.push(Finding::ArtifactMissing {
                artifact: name,
                side: r.side,
            }),
            Some(actual) if actual != listed => claims.push(Finding::ManifestMismatch {
                side: Some(r.side),
                manifest: SUMS.into(),
                claim: name.clone(),
                detail: format!(
                    "lists {}, but the file is {}: {SUMS} does not describe the file",
                    short(&listed),
                    short(&actual)
                ),
            }),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The build manifest of one side against the files it names (artifacts, rootfs manifest).
fn check_build_manifest(r: &Release, manifest: &Value, claims: &mut Vec<Finding>) {
    let mut said: Vec<(String, String, String)> = Vec::new();
    if let Some(arts) = manifest.get("artifacts").and_then(Value::as_array) {
        for a in arts {
            if let (Some(n), Some(d)) = (
                a.get("name").and_then(Value::as_str),
                a.get("sha256").and_then(Value::as_str),
            ) {
                said.push((
                    format!("artifacts[name={n}].sha256"),
                    n.into(),
                    bytes::norm_digest(d),
                ));
            }
        }
    }
    if let Some(d) = manifest
        .pointer("/rootfs/manifest_sha256")
        .and_then(Value::as_str)
    {
        said.push((
            "rootfs.manifest_sha256".into(),
            ROOTFS_MANIFEST.into(),
            bytes::norm_digest(d),
        ));
    }
    for (claim, file, digest) in said {
        if let Some(actual) = r.hex(&file).filter(|a| *a != digest) {
            claims.push(Finding::ManifestMismatch {
                side: Some(r.side),
                manifest: BUILD_MANIFEST.into(),
                claim,
                detail: format!(
                    "says {}, but {file} is {}: the manifest does not describe the file",
                    short(&digest),
                    short(&actual)
                ),
            });
        }
    }
}

/// The fields of a JSON file that differ, at most [`MAX_JSON_FIELDS`] (the rest in a note).
fn json_fields(
    name: &str,
    x: &Value,
    y: &Value,
    rank: bool,
    out: &mut Vec<Finding>,
    notes: &mut Vec<String>,
) {
    let mut diffs = json::diff_json(x, y);
    if rank {
        // causes before effects: what went in (tools, inputs, seed, epoch), then what came out
        diffs.sort_by_key(|d| build_manifest_rank(&d.path));
    }
    let total = diffs.len();
    for d in diffs.into_iter().take(MAX_JSON_FIELDS) {
        out.push(Finding::ManifestField {
            manifest: name.into(),
            path: d.path,
            a: d.a,
            b: d.b,
        });
    }
    if total > MAX_JSON_FIELDS {
        notes.push(format!(
            "{name}: {} more differing fields are not listed",
            total - MAX_JSON_FIELDS
        ));
    }
}

/// Compares two release directories. Errors only for unreadable or malformed inputs (and for
/// symbolic links or special files in them); a file missing on one side is a finding.
pub fn diff_dirs(a: &Path, b: &Path, opts: &Options) -> Result<Report, DiffError> {
    for d in [a, b] {
        // A missing path says so (not "not a directory"): the usual slip is a wrong path.
        let meta = std::fs::metadata(d).map_err(|e| DiffError::read(d, e))?;
        if !meta.is_dir() {
            return Err(DiffError::NotADirectory {
                path: d.to_path_buf(),
            });
        }
    }
    let ra = Release {
        dir: a.to_path_buf(),
        side: Side::A,
        listing: files::list(a)?,
    };
    let rb = Release {
        dir: b.to_path_buf(),
        side: Side::B,
        listing: files::list(b)?,
    };
    let mut notes = Vec::new();
    let mut f_artifacts = Vec::new();
    let mut f_claims = Vec::new();
    let mut f_fields = Vec::new();
    let mut f_partitions = Vec::new();
    let mut f_files = Vec::new();
    let mut f_bytes = Vec::new();

    for r in [&ra, &rb] {
        for d in &r.listing.dirs {
            notes.push(format!(
                "{d}/ in {}: a subdirectory; only the files at the top of a release directory are compared",
                r.side
            ));
        }
    }

    // 1. every file, by the digest of its bytes
    let names: BTreeSet<&String> = ra
        .listing
        .files
        .keys()
        .chain(rb.listing.files.keys())
        .collect();
    let mut differing: BTreeSet<String> = BTreeSet::new();
    for n in &names {
        match (ra.hex(n), rb.hex(n)) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) => f_artifacts.push(Finding::ArtifactDiffers {
                artifact: n.to_string(),
                a: format!("sha256:{x}"),
                b: format!("sha256:{y}"),
            }),
            (x, _) => f_artifacts.push(Finding::ArtifactOnlyIn {
                artifact: n.to_string(),
                side: if x.is_some() { Side::A } else { Side::B },
            }),
        }
        differing.insert(n.to_string());
    }

    // 2. what the manifests say about the files
    for r in [&ra, &rb] {
        check_sums(r, &mut f_artifacts, &mut f_claims)?;
    }
    let (bm_a, bm_b) = (ra.json(BUILD_MANIFEST)?, rb.json(BUILD_MANIFEST)?);
    for (r, m) in [(&ra, &bm_a), (&rb, &bm_b)] {
        if let Some(m) = m {
            check_build_manifest(r, m, &mut f_claims);
        }
    }

    // 3. JSON fields of every differing JSON file
    if let (Some(x), Some(y)) = (&bm_a, &bm_b) {
        json_fields(BUILD_MANIFEST, x, y, true, &mut f_fields, &mut notes);
    }
    let rm: Option<(RootfsManifest, RootfsManifest)> =
        match (ra.has(ROOTFS_MANIFEST), rb.has(ROOTFS_MANIFEST)) {
            (true, true) => Some((
                rootfs::read_rootfs_manifest(&a.join(ROOTFS_MANIFEST))?,
                rootfs::read_rootfs_manifest(&b.join(ROOTFS_MANIFEST))?,
            )),
            _ => None,
        };
    if let Some((x, y)) = &rm {
        json_fields(
            ROOTFS_MANIFEST,
            &x.other,
            &y.other,
            false,
            &mut f_fields,
            &mut notes,
        );
    }
    for n in differing
        .iter()
        .filter(|n| n.ends_with(".json") && *n != BUILD_MANIFEST && *n != ROOTFS_MANIFEST)
    {
        if !(ra.has(n) && rb.has(n)) {
            continue;
        }
        match (read_json(&a.join(n)), read_json(&b.join(n))) {
            (Ok(x), Ok(y)) => json_fields(n, &x, &y, false, &mut f_fields, &mut notes),
            _ => notes.push(format!(
                "{n}: not valid JSON on both sides; compared by digest only"
            )),
        }
    }

    // 4. partitions by the build manifests
    let claims_a = Claims::of(bm_a.as_ref());
    let claims_b = Claims::of(bm_b.as_ref());
    let mut order: Vec<&str> = Vec::new();
    for p in claims_a.parts.iter().chain(&claims_b.parts) {
        if !order.contains(&p.name.as_str()) {
            order.push(&p.name);
        }
    }
    let mut reported_partitions = BTreeSet::new();
    for name in order {
        let digest = |c: &Claims| {
            c.parts
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.image_sha256.clone())
        };
        if let (Some(x), Some(y)) = (digest(&claims_a), digest(&claims_b)) {
            if x != y {
                reported_partitions.insert(name.to_string());
                f_partitions.push(Finding::PartitionDiffers {
                    partition: name.to_string(),
                    source: BUILD_MANIFEST.into(),
                    a: Some(format!("sha256:{x}")),
                    b: Some(format!("sha256:{y}")),
                });
            }
        }
    }
    let root_name: Option<String> = claims_a
        .parts
        .iter()
        .chain(&claims_b.parts)
        .find(|p| p.name == "root")
        .or_else(|| {
            claims_a
                .parts
                .iter()
                .find(|p| p.type_.as_deref().is_some_and(is_root_type))
        })
        .map(|p| p.name.clone());
    let root_label = root_name.clone().unwrap_or_else(|| "root".into());

    // 5. files of the root filesystem
    let mut entry_diffs: BTreeMap<String, ()> = BTreeMap::new();
    if let Some((x, y)) = &rm {
        for d in rootfs::diff_entries(&x.entries, &y.entries) {
            f_files.push(match d {
                EntryDiff::OnlyIn { path, side } => {
                    entry_diffs.insert(path.clone(), ());
                    Finding::FileOnlyIn {
                        partition: root_label.clone(),
                        path,
                        side,
                    }
                }
                EntryDiff::Attribute {
                    path,
                    attribute,
                    a,
                    b,
                } => {
                    if attribute == "content" {
                        entry_diffs.insert(path.clone(), ());
                    }
                    Finding::FileDiffers {
                        partition: root_label.clone(),
                        path,
                        attribute,
                        a,
                        b,
                    }
                }
            });
        }
    }

    // 6. bytes of the packages that differ
    let mut found = Found::default();
    for package in [DISK_PACKAGE, UPDATE_PACKAGE] {
        if differing.contains(package) && ra.has(package) && rb.has(package) {
            bytes::compare_package(
                a,
                b,
                package,
                (&claims_a, &claims_b),
                &mut reported_partitions,
                &mut found,
            )?;
        }
    }
    f_partitions.extend(found.partitions);
    f_bytes.extend(found.bytes);
    f_claims.extend(found.claims);
    notes.extend(found.notes);
    // A file whose data blocks differ while both rootfs manifests say its content is the same.
    let mut stale: BTreeSet<&str> = BTreeSet::new();
    for (partition, path) in &found.file_data {
        let Some((x, y)) = &rm else { break };
        if Some(partition) != root_name.as_ref() || entry_diffs.contains_key(path) {
            continue;
        }
        if let (Some(ex), Some(_)) = (x.entries.get(path), y.entries.get(path)) {
            if stale.insert(path) {
                f_claims.push(Finding::ManifestMismatch {
                    side: None,
                    manifest: ROOTFS_MANIFEST.into(),
                    claim: path.clone(),
                    detail: format!(
                        "A and B both say its content is {}, but its data blocks differ in partition {partition}: one of the manifests does not describe its image",
                        ex.sha256.as_deref().map_or("(none)".into(), |d| short(&bytes::norm_digest(d)))
                    ),
                });
            }
        }
    }
    if rm.is_none()
        && f_partitions.iter().any(|f| {
            matches!(f, Finding::PartitionDiffers { partition, .. } if Some(partition) == root_name.as_ref())
        })
    {
        notes.push(format!("partition {root_label} differs but the rootfs manifests are not both available: files not compared"));
    }

    // diffoscope
    let mut diffoscope = None;
    if opts.diffoscope {
        let first = f_files.iter().find_map(|f| match f {
            Finding::FileDiffers {
                path, attribute, ..
            } if attribute == "content" => Some(path.clone()),
            _ => None,
        });
        let program = opts
            .diffoscope_program
            .clone()
            .unwrap_or_else(|| PathBuf::from("diffoscope"));
        match (first, &opts.rootfs_tar_a, &opts.rootfs_tar_b, diffoscope::find_program(&program)) {
            (None, ..) => notes.push("diffoscope: no file content differs; not run".into()),
            (Some(_), None, _, _) | (Some(_), _, None, _) => {
                notes.push("diffoscope: give --rootfs-tar-a and --rootfs-tar-b to compare file contents; not run".into())
            }
            (Some(_), _, _, None) => notes.push(format!("diffoscope: {} is not installed (not found on PATH); not run", program.display())),
            (Some(path), Some(ta), Some(tb), Some(prog)) => match diffoscope::run(&prog, &path, ta, tb)? {
                Ok(run) => diffoscope = Some(run),
                Err(why) => notes.push(format!("diffoscope: {why}; not run")),
            },
        }
    }

    let mut findings = f_artifacts;
    findings.extend(f_claims);
    findings.extend(f_fields);
    findings.extend(f_partitions);
    findings.extend(f_files);
    findings.extend(f_bytes);
    Ok(Report {
        schema: REPORT_SCHEMA,
        a: a.display().to_string(),
        b: b.display().to_string(),
        identical: findings.is_empty(),
        findings,
        notes,
        diffoscope,
    })
}

/// Order of the build manifest's top-level fields in the report (stable sort, unknown fields last).
fn build_manifest_rank(path: &str) -> usize {
    const ORDER: [&str; 9] = [
        "schema",
        "image",
        "tools",
        "inputs",
        "seed",
        "source_date_epoch",
        "rootfs",
        "disk",
        "artifacts",
    ];
    let top = path.split(['.', '[']).next().unwrap_or(path);
    ORDER.iter().position(|k| *k == top).unwrap_or(ORDER.len())
}
