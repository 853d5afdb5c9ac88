//! Compares two builds and names the artifact, partition, file and attribute that differ.
//!
//! [`diff_dirs`] compares two release directories from the top down:
//! 1. the artifacts (`SHA256SUMS`, and files present in one directory only);
//! 2. the fields of `build-manifest.json` (and the non-entry fields of `rootfs.manifest.json`);
//! 3. the partitions (`disk.partitions[].image_sha256` of the build manifests, or, when they do
//!    not say, the bytes of the two disk images, streamed in lockstep from `disk-img.tar.zst`);
//! 4. the paths and attributes of the root filesystem (the two rootfs manifests);
//! 5. the first differing byte of every differing partition that no file explains, named down to
//!    the ext4 structure (superblock field, group descriptor, bitmap, inode number and field).
//!
//! Packaged images are never extracted: both are decompressed side by side, sparse holes are
//! compared without being expanded, and reading stops once every question is answered.
//! The library never prints; [`Report::render_text`] and [`Report::render_json`] format the result.

mod diffoscope;
mod error;
pub mod ext4;
pub mod gpt;
pub mod json;
pub mod package;
mod report;
pub mod rootfs;
pub mod stream;
mod sums;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use error::DiffError;
pub use report::{DiffoscopeRun, Finding, Report, REPORT_SCHEMA};
pub use rootfs::Side;
pub use sums::{parse_sums, Sums};

use rootfs::{EntryDiff, RootfsManifest};
use stream::{MemberOutcome, Plan, RegionKind, RegionSpec};

pub const SUMS: &str = "SHA256SUMS";
pub const BUILD_MANIFEST: &str = "build-manifest.json";
pub const ROOTFS_MANIFEST: &str = "rootfs.manifest.json";
pub const DISK_PACKAGE: &str = "disk-img.tar.zst";
pub const UPDATE_PACKAGE: &str = "update-img.tar.zst";

/// The artifacts always looked at, whether SHA256SUMS lists them or not.
pub const WELL_KNOWN: [&str; 5] = [
    SUMS,
    BUILD_MANIFEST,
    ROOTFS_MANIFEST,
    DISK_PACKAGE,
    UPDATE_PACKAGE,
];

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Same,
    Differs,
    Unknown,
}

#[derive(Clone, Debug, Default)]
struct PartInfo {
    name: String,
    type_: Option<String>,
    offset: Option<u64>,
    size: Option<u64>,
    image_sha256: Option<String>,
}

fn norm_digest(s: &str) -> String {
    s.strip_prefix("sha256:").unwrap_or(s).to_ascii_lowercase()
}

fn partitions_of(manifest: &Value) -> Vec<PartInfo> {
    let Some(list) = manifest
        .pointer("/disk/partitions")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|p| {
            Some(PartInfo {
                name: p.get("name")?.as_str()?.to_string(),
                type_: p.get("type").and_then(Value::as_str).map(str::to_string),
                offset: p.get("offset").and_then(Value::as_u64),
                size: p.get("size").and_then(Value::as_u64),
                image_sha256: p
                    .get("image_sha256")
                    .and_then(Value::as_str)
                    .map(norm_digest),
            })
        })
        .collect()
}

fn is_root_type(t: &str) -> bool {
    (t.starts_with("linux-root-") && !t.contains("verity"))
        || ROOT_TYPE_GUIDS.contains(&t.to_ascii_lowercase().as_str())
}

/// One side's artifacts: name → sha256 hex, and the names SHA256SUMS lists without a file.
struct Artifacts {
    present: BTreeMap<String, String>,
    listed_missing: BTreeSet<String>,
}

fn read_sums(dir: &Path) -> Result<Option<Sums>, DiffError> {
    let p = dir.join(SUMS);
    if !p.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| DiffError::read(&p, e))?;
    parse_sums(&p, &text).map(Some)
}

fn top_level_files(dir: &Path) -> Result<BTreeSet<String>, DiffError> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(dir).map_err(|e| DiffError::read(dir, e))? {
        let e = e.map_err(|e| DiffError::read(dir, e))?;
        if e.path().is_file() {
            out.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(out)
}

fn artifacts(
    dir: &Path,
    names: &BTreeSet<String>,
    sums: Option<&Sums>,
) -> Result<Artifacts, DiffError> {
    let mut present = BTreeMap::new();
    let mut listed_missing = BTreeSet::new();
    for n in names {
        let p = dir.join(n);
        let listed = sums.and_then(|s| s.get(n));
        if !p.is_file() {
            if listed.is_some() {
                listed_missing.insert(n.clone());
            }
            continue;
        }
        let hex = match listed {
            Some(h) => h.clone(),
            None => icos_common::sha256_file(&p)
                .map_err(|e| DiffError::read(&p, e))?
                .0
                .hex(),
        };
        present.insert(n.clone(), hex);
    }
    Ok(Artifacts {
        present,
        listed_missing,
    })
}

fn read_json(path: &Path) -> Result<Value, DiffError> {
    let f = File::open(path).map_err(|e| DiffError::read(path, e))?;
    serde_json::from_reader(BufReader::new(f)).map_err(|e| DiffError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads `name` from both directories with `read`, noting a side where it is not available.
fn both<T>(
    a: &Path,
    b: &Path,
    name: &str,
    notes: &mut Vec<String>,
    read: impl Fn(&Path) -> Result<T, DiffError>,
) -> Result<Option<(T, T)>, DiffError> {
    let (pa, pb) = (a.join(name), b.join(name));
    match (pa.is_file(), pb.is_file()) {
        (true, true) => Ok(Some((read(&pa)?, read(&pb)?))),
        (x, y) => {
            let missing = match (x, y) {
                (false, false) => "A or B",
                (false, true) => "A",
                _ => "B",
            };
            notes.push(format!("{name}: not available in {missing}; not compared"));
            Ok(None)
        }
    }
}

/// Compares two release directories. Errors only for unreadable or malformed inputs; a missing
/// optional file is a note in the report.
pub fn diff_dirs(a: &Path, b: &Path, opts: &Options) -> Result<Report, DiffError> {
    for d in [a, b] {
        if !d.is_dir() {
            return Err(DiffError::NotADirectory {
                path: d.to_path_buf(),
            });
        }
    }
    let mut notes = Vec::new();
    let mut f_artifacts = Vec::new();
    let mut f_fields = Vec::new();
    let mut f_partitions = Vec::new();
    let mut f_files = Vec::new();
    let mut f_bytes = Vec::new();

    // 1. artifacts
    let (sums_a, sums_b) = (read_sums(a)?, read_sums(b)?);
    let names: BTreeSet<String> = if sums_a.is_some() || sums_b.is_some() {
        let mut n: BTreeSet<String> = WELL_KNOWN.iter().map(|s| s.to_string()).collect();
        for s in [&sums_a, &sums_b].into_iter().flatten() {
            n.extend(s.keys().cloned());
        }
        n
    } else {
        notes.push(format!(
            "{SUMS}: not available in A or B; every top-level file was hashed"
        ));
        let mut n = top_level_files(a)?;
        n.extend(top_level_files(b)?);
        n
    };
    let art_a = artifacts(a, &names, sums_a.as_ref())?;
    let art_b = artifacts(b, &names, sums_b.as_ref())?;
    let mut differing: BTreeSet<String> = BTreeSet::new();
    for n in &names {
        match (art_a.present.get(n), art_b.present.get(n)) {
            (Some(x), Some(y)) if x != y => {
                differing.insert(n.clone());
                f_artifacts.push(Finding::ArtifactDiffers {
                    artifact: n.clone(),
                    a: format!("sha256:{x}"),
                    b: format!("sha256:{y}"),
                });
            }
            (Some(_), None) => {
                differing.insert(n.clone());
                f_artifacts.push(Finding::ArtifactOnlyIn {
                    artifact: n.clone(),
                    side: Side::A,
                });
            }
            (None, Some(_)) => {
                differing.insert(n.clone());
                f_artifacts.push(Finding::ArtifactOnlyIn {
                    artifact: n.clone(),
                    side: Side::B,
                });
            }
            _ => {}
        }
        for (side, art) in [(Side::A, &art_a), (Side::B, &art_b)] {
            if art.listed_missing.contains(n) {
                f_artifacts.push(Finding::ArtifactMissing {
                    artifact: n.clone(),
                    side,
                });
            }
        }
    }

    // 2. build manifest
    let bm = both(a, b, BUILD_MANIFEST, &mut notes, read_json)?;
    if let Some((x, y)) = &bm {
        let mut diffs = json::diff_json(x, y);
        // causes before effects: what went in (tools, inputs, seed, epoch), then what came out
        diffs.sort_by_key(|d| build_manifest_rank(&d.path));
        for d in diffs {
            f_fields.push(Finding::ManifestField {
                manifest: BUILD_MANIFEST.into(),
                path: d.path,
                a: d.a,
                b: d.b,
            });
        }
    }
    // rootfs manifest: fields other than the entries
    let rm: Option<(RootfsManifest, RootfsManifest)> = both(
        a,
        b,
        ROOTFS_MANIFEST,
        &mut notes,
        rootfs::read_rootfs_manifest,
    )?;
    if let Some((x, y)) = &rm {
        for d in json::diff_json(&x.other, &y.other) {
            f_fields.push(Finding::ManifestField {
                manifest: ROOTFS_MANIFEST.into(),
                path: d.path,
                a: d.a,
                b: d.b,
            });
        }
    }

    // 3. partitions by the build manifests
    let (parts_a, parts_b) = bm
        .as_ref()
        .map(|(x, y)| (partitions_of(x), partitions_of(y)))
        .unwrap_or_default();
    let mut status: BTreeMap<String, Status> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for p in parts_a.iter().chain(&parts_b) {
        if !order.contains(&p.name) {
            order.push(p.name.clone());
        }
    }
    for name in &order {
        let ia = parts_a
            .iter()
            .find(|p| &p.name == name)
            .and_then(|p| p.image_sha256.clone());
        let ib = parts_b
            .iter()
            .find(|p| &p.name == name)
            .and_then(|p| p.image_sha256.clone());
        let st = match (&ia, &ib) {
            (Some(x), Some(y)) if x == y => Status::Same,
            (Some(x), Some(y)) => {
                f_partitions.push(Finding::PartitionDiffers {
                    partition: name.clone(),
                    source: BUILD_MANIFEST.into(),
                    a: Some(format!("sha256:{x}")),
                    b: Some(format!("sha256:{y}")),
                });
                Status::Differs
            }
            _ => Status::Unknown,
        };
        status.insert(name.clone(), st);
    }
    let root_name: Option<String> = parts_a
        .iter()
        .find(|p| p.name == "root")
        .or_else(|| {
            parts_a
                .iter()
                .find(|p| p.type_.as_deref().is_some_and(is_root_type))
        })
        .map(|p| p.name.clone());
    let any_known_differs = status.values().any(|s| *s == Status::Differs);

    // 4. files of the root filesystem
    let root_label = root_name.clone().unwrap_or_else(|| "root".into());
    let entry_diffs = rm
        .as_ref()
        .map(|(x, y)| rootfs::diff_entries(&x.entries, &y.entries));
    for d in entry_diffs.iter().flatten() {
        f_files.push(match d {
            EntryDiff::OnlyIn { path, side } => Finding::FileOnlyIn {
                partition: root_label.clone(),
                path: path.clone(),
                side: *side,
            },
            EntryDiff::Attribute {
                path,
                attribute,
                a,
                b,
            } => Finding::FileDiffers {
                partition: root_label.clone(),
                path: path.clone(),
                attribute: attribute.clone(),
                a: a.clone(),
                b: b.clone(),
            },
        });
    }
    let files_explain = entry_diffs.as_ref().is_some_and(|d| !d.is_empty());
    let files_equal = entry_diffs.as_ref().is_some_and(|d| d.is_empty());

    // 5. bytes of the packaged images
    let is_root = |name: &str, type_guid: Option<&str>| match &root_name {
        Some(r) => r == name,
        None => name == "root" || type_guid.is_some_and(is_root_type),
    };
    let interest =
        |name: &str, root: bool| match status.get(name).copied().unwrap_or(Status::Unknown) {
            Status::Same => false,
            _ if root && files_explain => false,
            _ => true,
        };
    let mut reported_partitions: BTreeSet<String> = f_partitions
        .iter()
        .filter_map(|f| {
            if let Finding::PartitionDiffers { partition, .. } = f {
                Some(partition.clone())
            } else {
                None
            }
        })
        .collect();
    for package in [DISK_PACKAGE, UPDATE_PACKAGE] {
        if !differing.contains(package)
            || !art_a.present.contains_key(package)
            || !art_b.present.contains_key(package)
        {
            continue;
        }
        let disk = package == DISK_PACKAGE;
        let mut planner = |member: &str, _size: u64, head: &[u8]| -> Plan {
            if disk {
                plan_disk(
                    head,
                    &parts_a,
                    &is_root,
                    &interest,
                    !any_known_differs,
                    member,
                )
            } else {
                let stem = member.strip_suffix(".img").unwrap_or(member);
                let root = is_root(stem, None);
                Plan {
                    regions: vec![RegionSpec {
                        name: member.to_string(),
                        kind: RegionKind::Whole,
                        start: 0,
                        end: u64::MAX,
                        interest: interest(stem, root),
                        capture: true,
                    }],
                    gap_interest: false,
                }
            }
        };
        let outcomes = stream::compare_packages(&a.join(package), &b.join(package), &mut planner)?;
        let before = f_bytes.len();
        let mut all_equal = true;
        for o in outcomes {
            let m = match o {
                MemberOutcome::OnlyIn { name, side } => {
                    all_equal = false;
                    f_bytes.push(Finding::MemberOnlyIn {
                        artifact: package.into(),
                        member: name,
                        side,
                    });
                    continue;
                }
                MemberOutcome::Compared(m) => m,
            };
            if m.size_a != m.size_b {
                all_equal = false;
                f_bytes.push(Finding::MemberSizeDiffers {
                    artifact: package.into(),
                    member: m.name.clone(),
                    a: m.size_a,
                    b: m.size_b,
                });
            }
            for r in &m.regions {
                if !r.compared_to_end {
                    all_equal = false;
                }
                let Some(off) = r.first_diff else { continue };
                all_equal = false;
                if !r.spec.interest {
                    // found on the way to a region of interest, but already explained above
                    continue;
                }
                let inner = off - r.spec.start;
                let partition = match r.spec.kind {
                    RegionKind::Partition => Some(r.spec.name.clone()),
                    RegionKind::Whole if !disk => {
                        let stem = m.name.strip_suffix(".img").unwrap_or(&m.name);
                        status
                            .contains_key(stem)
                            .then(|| stem.to_string())
                            .or_else(|| is_root(stem, None).then(|| stem.to_string()))
                    }
                    _ => None,
                };
                if disk {
                    if let Some(p) = &partition {
                        if reported_partitions.insert(p.clone()) {
                            f_partitions.push(Finding::PartitionDiffers {
                                partition: p.clone(),
                                source: package.into(),
                                a: None,
                                b: None,
                            });
                        }
                    }
                }
                let root = partition.as_deref().is_some_and(|p| is_root(p, None));
                let ext4 = if matches!(r.spec.kind, RegionKind::Partition | RegionKind::Whole) {
                    ext4::locate(&r.head_a, inner)
                } else {
                    None
                };
                f_bytes.push(Finding::BytesDiffer {
                    artifact: package.into(),
                    member: m.name.clone(),
                    region: r.spec.name.clone(),
                    region_kind: r.spec.kind,
                    partition,
                    region_offset: inner,
                    member_offset: off,
                    outside_files: root && files_equal,
                    ext4,
                });
            }
        }
        if all_equal {
            notes.push(format!("{package}: differs, but its members are byte-identical: the difference is in the packaging (tar headers or compression)"));
        } else if f_bytes.len() == before {
            notes.push(format!("{package}: differs; not compared byte by byte where the manifests already explain the difference"));
        }
    }
    if rm.is_none() && f_partitions.iter().any(|f| matches!(f, Finding::PartitionDiffers { partition, .. } if is_root(partition, None))) {
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

/// Regions of a disk image: from its GPT, else from the build manifest's partitions, else whole.
fn plan_disk(
    head: &[u8],
    parts: &[PartInfo],
    is_root: &dyn Fn(&str, Option<&str>) -> bool,
    interest: &dyn Fn(&str, bool) -> bool,
    outside_interest: bool,
    member: &str,
) -> Plan {
    let part = |name: &str, start: u64, end: u64, root: bool| {
        let i = interest(name, root);
        RegionSpec {
            name: name.to_string(),
            kind: RegionKind::Partition,
            start,
            end,
            interest: i,
            capture: i,
        }
    };
    let other = |name: &str, kind, start: u64, end: u64| RegionSpec {
        name: name.into(),
        kind,
        start,
        end,
        interest: outside_interest,
        capture: false,
    };
    let mut regions = Vec::new();
    if let Some(g) = gpt::parse_gpt(head) {
        regions.push(other(
            "protective MBR",
            RegionKind::ProtectiveMbr,
            0,
            gpt::SECTOR,
        ));
        regions.push(other(
            "primary GPT header",
            RegionKind::GptHeader,
            gpt::SECTOR,
            2 * gpt::SECTOR,
        ));
        regions.push(other(
            "primary GPT entries",
            RegionKind::GptEntries,
            g.entries_start,
            g.entries_start + g.entries_len,
        ));
        for p in &g.partitions {
            regions.push(part(
                &p.name,
                p.start,
                p.end,
                is_root(&p.name, Some(&p.type_guid)),
            ));
        }
        if g.backup_header >= g.entries_len {
            regions.push(other(
                "backup GPT entries",
                RegionKind::BackupGptEntries,
                g.backup_header - g.entries_len,
                g.backup_header,
            ));
        }
        regions.push(other(
            "backup GPT header",
            RegionKind::BackupGptHeader,
            g.backup_header,
            g.backup_header + gpt::SECTOR,
        ));
    } else if parts.iter().any(|p| p.offset.is_some() && p.size.is_some()) {
        for p in parts {
            if let (Some(o), Some(s)) = (p.offset, p.size) {
                regions.push(part(
                    &p.name,
                    o,
                    o + s,
                    is_root(&p.name, p.type_.as_deref()),
                ));
            }
        }
    } else {
        return Plan {
            regions: vec![RegionSpec {
                name: member.into(),
                kind: RegionKind::Whole,
                start: 0,
                end: u64::MAX,
                interest: true,
                capture: true,
            }],
            gap_interest: true,
        };
    }
    regions.sort_by_key(|r| (r.start, r.end));
    Plan {
        regions,
        gap_interest: outside_interest,
    }
}
