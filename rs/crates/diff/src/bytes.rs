//! The byte-level comparison of two packages (`disk-img.tar.zst`, `update-img.tar.zst`): every
//! differing region (partition, GPT structure, unpartitioned space), every differing ext4
//! structure named down to its file, and every claim of the build manifests about these bytes
//! (partition and disk digests) checked against the bytes themselves.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::ext4map::{Ext4Map, Role};
use crate::package::MemberBlocks;
use crate::report::Finding;
use crate::rootfs::Side;
use crate::stream::{
    self, MemberOutcome, MemberResult, Plan, RegionKind, RegionResult, RegionSpec, Window,
};
use crate::structures::{locate_runs, name_structures, Located};
use crate::{gpt, DiffError, BUILD_MANIFEST, DISK_PACKAGE};

/// How many differing ext4 structures of one region are listed (the rest are counted).
pub const MAX_STRUCTURES: usize = 100;

/// A partition as a build manifest describes it.
#[derive(Clone, Debug, Default)]
pub(crate) struct PartInfo {
    pub name: String,
    pub type_: Option<String>,
    pub offset: Option<u64>,
    pub size: Option<u64>,
    pub image_size: Option<u64>,
    /// Lowercase hex.
    pub image_sha256: Option<String>,
}

pub(crate) fn norm_digest(s: &str) -> String {
    s.strip_prefix("sha256:").unwrap_or(s).to_ascii_lowercase()
}

pub(crate) fn partitions_of(manifest: &Value) -> Vec<PartInfo> {
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
                image_size: p.get("image_size").and_then(Value::as_u64),
                image_sha256: p
                    .get("image_sha256")
                    .and_then(Value::as_str)
                    .map(norm_digest),
            })
        })
        .collect()
}

/// What one side's build manifest says about its disk.
#[derive(Clone, Debug, Default)]
pub(crate) struct Claims {
    pub parts: Vec<PartInfo>,
    /// `disk.sha256`, lowercase hex.
    pub disk_sha256: Option<String>,
}

impl Claims {
    pub fn of(manifest: Option<&Value>) -> Claims {
        Claims {
            parts: manifest.map(partitions_of).unwrap_or_default(),
            disk_sha256: manifest
                .and_then(|m| m.pointer("/disk/sha256"))
                .and_then(Value::as_str)
                .map(norm_digest),
        }
    }
}

/// What the comparison of the packages found.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub partitions: Vec<Finding>,
    pub bytes: Vec<Finding>,
    pub claims: Vec<Finding>,
    pub notes: Vec<String>,
    /// (partition, path) of files whose data blocks differ.
    pub file_data: Vec<(String, String)>,
}

fn short(hex: &str) -> String {
    format!("sha256:{}…", &hex[..hex.len().min(12)])
}

/// The regions of a disk image: from its GPT, else from the build manifest's partitions, else
/// the whole member.
fn plan_disk(head: &[u8], parts: &[PartInfo], member: &str) -> Vec<RegionSpec> {
    let part = |name: &str, start: u64, end: u64| RegionSpec {
        name: name.to_string(),
        kind: RegionKind::Partition,
        start,
        end,
        capture: true,
    };
    let other = |name: &str, kind, start: u64, end: u64| RegionSpec {
        name: name.into(),
        kind,
        start,
        end,
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
            regions.push(part(&p.name, p.start, p.end));
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
                regions.push(part(&p.name, o, o + s));
            }
        }
    } else {
        regions.push(RegionSpec {
            name: member.into(),
            kind: RegionKind::Whole,
            start: 0,
            end: u64::MAX,
            capture: true,
        });
    }
    regions.sort_by_key(|r| (r.start, r.end));
    regions
}

/// Windows of each side to hash: the disk, and each partition image the manifest describes.
fn disk_windows(a: &Claims, b: &Claims) -> Vec<Window> {
    let mut w = Vec::new();
    for (side, c) in [(Side::A, a), (Side::B, b)] {
        if c.disk_sha256.is_some() {
            w.push(Window {
                side,
                label: "disk".into(),
                start: 0,
                end: u64::MAX,
            });
        }
        for p in &c.parts {
            if let (Some(o), Some(n), Some(_)) = (p.offset, p.image_size, &p.image_sha256) {
                w.push(Window {
                    side,
                    label: p.name.clone(),
                    start: o,
                    end: o + n,
                });
            }
        }
    }
    w
}

/// Compares `package` of release directories `a` and `b`.
pub(crate) fn compare_package(
    a: &Path,
    b: &Path,
    package: &str,
    claims: (&Claims, &Claims),
    reported_partitions: &mut BTreeSet<String>,
    found: &mut Found,
) -> Result<(), DiffError> {
    let disk = package == DISK_PACKAGE;
    let (ca, cb) = claims;
    let mut planner = |member: &str, _size: u64, head: &[u8]| -> Plan {
        if disk {
            Plan {
                regions: plan_disk(head, &ca.parts, member),
                windows: disk_windows(ca, cb),
            }
        } else {
            let whole = |side| Window {
                side,
                label: member.into(),
                start: 0,
                end: u64::MAX,
            };
            Plan {
                regions: vec![RegionSpec {
                    name: member.to_string(),
                    kind: RegionKind::Whole,
                    start: 0,
                    end: u64::MAX,
                    capture: true,
                }],
                windows: vec![whole(Side::A), whole(Side::B)],
            }
        }
    };
    let (pa, pb) = (a.join(package), b.join(package));
    let outcomes = stream::compare_packages(&pa, &pb, &mut planner)?;
    let mut all_equal = true;
    let mut uki_members = Vec::new();
    for o in outcomes {
        let m = match o {
            MemberOutcome::OnlyIn { name, side } => {
                all_equal = false;
                found.bytes.push(Finding::MemberOnlyIn {
                    artifact: package.into(),
                    member: name,
                    side,
                });
                continue;
            }
            MemberOutcome::Compared(m) => m,
        };
        if m.size_a != m.size_b {
            found.bytes.push(Finding::MemberSizeDiffers {
                artifact: package.into(),
                member: m.name.clone(),
                a: m.size_a,
                b: m.size_b,
            });
        }
        all_equal &= !m.differs();
        if m.differs() && m.name.ends_with(".efi") {
            uki_members.push(m.name.clone());
        }
        check_windows(package, disk, &m, (ca, cb), found);
        let member_partition = if disk {
            None
        } else {
            member_partition(&m, ca, cb)
        };
        for r in m.regions.iter().filter(|r| r.run_count > 0) {
            let partition = match r.spec.kind {
                RegionKind::Partition => Some(r.spec.name.clone()),
                RegionKind::Whole => member_partition.clone(),
                _ => None,
            };
            if let (true, Some(p)) = (disk, &partition) {
                if reported_partitions.insert(p.clone()) {
                    found.partitions.push(Finding::PartitionDiffers {
                        partition: p.clone(),
                        source: package.into(),
                        a: None,
                        b: None,
                    });
                }
            }
            if let Some(p) = &partition {
                manifests_agree_but_bytes_differ(p, package, &m.name, disk, (ca, cb), found);
            }
            region_findings(&pa, &pb, package, &m.name, r, partition, found)?;
        }
    }
    if all_equal {
        found.notes.push(format!("{package}: differs, but its members are byte-identical: the difference is in the packaging (tar headers or compression)"));
    }
    for member in uki_members {
        uki_sections(&pa, &pb, package, &member, found)?;
    }
    Ok(())
}

/// Names the sections in which a differing unified kernel image member differs: each side is
/// copied out of its package and read with the UKI reader (which refuses a malformed PE).
fn uki_sections(
    pa: &Path,
    pb: &Path,
    package: &str,
    member: &str,
    found: &mut Found,
) -> Result<(), DiffError> {
    let dir =
        tempfile::tempdir().map_err(|e| DiffError::read(Path::new("a temporary directory"), e))?;
    let mut sections = Vec::new();
    for (side, pkg) in [("a", pa), ("b", pb)] {
        let out = dir.path().join(side);
        if !crate::diffoscope::extract_member(pkg, member, &out)? {
            return Ok(());
        }
        match icos_uki::read_sections(&out) {
            Ok(list) => sections.push(list),
            Err(e) => {
                found.notes.push(format!(
                    "{package}: {member}: side {side} is not a readable UKI: {e}"
                ));
                return Ok(());
            }
        }
    }
    let describe = |s: &icos_uki::SectionInfo| format!("{} bytes, {}", s.size, s.sha256);
    let (a, b) = (&sections[0], &sections[1]);
    let mut names: Vec<&str> = a.iter().chain(b).map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let sa = a.iter().find(|s| s.name == name);
        let sb = b.iter().find(|s| s.name == name);
        let differs = match (sa, sb) {
            (Some(x), Some(y)) => x.sha256 != y.sha256 || x.size != y.size,
            _ => true,
        };
        if differs {
            found.bytes.push(Finding::UkiSectionDiffers {
                artifact: package.into(),
                member: member.into(),
                section: name.into(),
                a: sa.map(describe),
                b: sb.map(describe),
            });
        }
    }
    Ok(())
}

/// The partition a whole-image member (`root.img`) stands for: the one named like it, else the
/// one whose image digest it has.
fn member_partition(m: &MemberResult, ca: &Claims, cb: &Claims) -> Option<String> {
    let stem = m.name.strip_suffix(".img").unwrap_or(&m.name);
    let all = || ca.parts.iter().chain(&cb.parts);
    if all().any(|p| p.name == stem) {
        return Some(stem.to_string());
    }
    let digest = m
        .windows
        .iter()
        .find(|w| w.window.side == Side::A && w.complete)?
        .digest
        .hex();
    all()
        .find(|p| p.image_sha256.as_deref() == Some(digest.as_str()))
        .map(|p| p.name.clone())
}

/// Each side's manifest claims (disk and partition digests) against that side's bytes.
fn check_windows(
    package: &str,
    disk: bool,
    m: &MemberResult,
    claims: (&Claims, &Claims),
    found: &mut Found,
) {
    for w in m.windows.iter().filter(|w| w.complete) {
        let c = if w.window.side == Side::A {
            claims.0
        } else {
            claims.1
        };
        let actual = w.digest.hex();
        let (claim, said, what) = if disk && w.window.label == "disk" {
            (
                "disk.sha256".to_string(),
                c.disk_sha256.clone(),
                format!("{} in {package}", m.name),
            )
        } else {
            let name = if disk {
                w.window.label.clone()
            } else {
                m.name.strip_suffix(".img").unwrap_or(&m.name).to_string()
            };
            let Some(p) = c.parts.iter().find(|p| p.name == name) else {
                continue;
            };
            let what = if disk {
                format!(
                    "the first {} bytes of partition {name} in {} ({package})",
                    w.window.end - w.window.start,
                    m.name
                )
            } else {
                format!("member {} of {package}", m.name)
            };
            (
                format!("disk.partitions[name={name}].image_sha256"),
                p.image_sha256.clone(),
                what,
            )
        };
        if let Some(said) = said.filter(|s| *s != actual) {
            found.claims.push(Finding::ManifestMismatch {
                side: Some(w.window.side),
                manifest: BUILD_MANIFEST.into(),
                claim,
                detail: format!(
                    "says {}, but {what} is {}: the manifest does not describe these bytes",
                    short(&said),
                    short(&actual)
                ),
            });
        }
    }
}

/// When neither side's bytes could be hashed against its manifest (no image size), but both
/// manifests give the partition the same digest while its bytes differ, one of them is wrong.
fn manifests_agree_but_bytes_differ(
    partition: &str,
    package: &str,
    member: &str,
    disk: bool,
    (ca, cb): (&Claims, &Claims),
    found: &mut Found,
) {
    let find = |c: &Claims| c.parts.iter().find(|p| p.name == partition).cloned();
    let (Some(x), Some(y)) = (find(ca), find(cb)) else {
        return;
    };
    let hashable = |p: &PartInfo| !disk || (p.offset.is_some() && p.image_size.is_some());
    if x.image_sha256.is_some()
        && x.image_sha256 == y.image_sha256
        && !(hashable(&x) && hashable(&y))
    {
        found.claims.push(Finding::ManifestMismatch {
            side: None,
            manifest: BUILD_MANIFEST.into(),
            claim: format!("disk.partitions[name={partition}].image_sha256"),
            detail: format!(
                "A and B both say {}, but partition {partition}'s bytes differ in {member} ({package}): one of the manifests does not describe its image",
                short(x.image_sha256.as_deref().unwrap_or_default())
            ),
        });
    }
}

/// The findings of one differing region: a summary, then every differing ext4 structure.
fn region_findings(
    pa: &Path,
    pb: &Path,
    package: &str,
    member: &str,
    r: &RegionResult,
    partition: Option<String>,
    found: &mut Found,
) -> Result<(), DiffError> {
    let first = r.first_diff().expect("a differing region has a first run");
    found.bytes.push(Finding::BytesDiffer {
        artifact: package.into(),
        member: member.into(),
        region: r.spec.name.clone(),
        region_kind: r.spec.kind,
        partition: partition.clone(),
        region_offset: first - r.spec.start,
        member_offset: first,
        bytes: r.diff_bytes,
        runs: r.run_count,
    });
    if !r.spec.capture {
        return Ok(());
    }
    let start = r.spec.start;
    let runs: Vec<(u64, u64)> = r.runs.iter().map(|(s, e)| (s - start, e - start)).collect();
    let Some(Located {
        structures,
        data,
        dropped,
    }) = locate_runs(&r.head_a, &runs)
    else {
        return Ok(()); // not ext4: the summary is all there is
    };
    let where_ = partition
        .as_ref()
        .map_or(member.to_string(), |p| format!("partition {p}"));
    if r.run_count as usize > r.runs.len() {
        found.notes.push(format!("{package}: {where_}: only the first {} of {} differing runs were mapped to ext4 structures", r.runs.len(), r.run_count));
    }
    if dropped > 0 {
        found.notes.push(format!(
            "{package}: {where_}: {dropped} differing bytes past the first {} data blocks or {} other ext4 structures are counted, not named",
            crate::structures::MAX_DATA_BLOCKS,
            crate::structures::MAX_UNITS
        ));
    }
    let needs_map = !data.is_empty() || structures.iter().any(|s| s.inode.is_some());
    let (map_a, map_b) = if needs_map {
        let src = |p: &Path| MemberBlocks {
            package: p.to_path_buf(),
            member: member.to_string(),
            start,
        };
        // B's filesystem is mapped with its own geometry (its superblock and descriptors).
        let mut b = src(pb);
        let head_b = b.head(r.head_a.len() as u64)?;
        (
            Ext4Map::build(&r.head_a, &mut src(pa))?,
            Ext4Map::build(&head_b, &mut b)?,
        )
    } else {
        (None, None)
    };
    let named = name_structures(structures, &data, map_a.as_ref(), map_b.as_ref());
    let total = named.len();
    for s in named.into_iter().take(MAX_STRUCTURES) {
        if let (Some(Role::FileData), Some(path), Some(p)) = (s.role, &s.path, &partition) {
            found.file_data.push((p.clone(), path.clone()));
        }
        found.bytes.push(Finding::StructureDiffers {
            artifact: package.into(),
            member: member.into(),
            region_kind: r.spec.kind,
            partition: partition.clone(),
            structure: s.structure,
            group: s.group,
            inode: s.inode,
            fields: s.fields,
            blocks: s.blocks,
            path: s.path,
            path_b: s.path_b,
            role: s.role,
            region_offset: s.first,
            member_offset: s.first + start,
            bytes: s.bytes,
            description: s.description,
        });
    }
    if total > MAX_STRUCTURES {
        found.bytes.push(Finding::MoreStructures {
            artifact: package.into(),
            member: member.into(),
            region: where_,
            more: total - MAX_STRUCTURES,
        });
    }
    Ok(())
}
