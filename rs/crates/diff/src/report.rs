//! Findings, their order, and their two renderings (one line per finding, or JSON).

use serde::Serialize;
use serde_json::Value;

use crate::ext4map::Role;
use crate::rootfs::Side;
use crate::stream::RegionKind;

/// The `schema` value of the JSON report. v2: artifacts are hashed by icos-diff (not taken from
/// SHA256SUMS), manifests are checked against the bytes they describe (`manifest_mismatch`),
/// every differing region and ext4 structure is reported (`bytes_differ` counts,
/// `structure_differs`, `more_structures`), and `outside_files` is gone.
pub const REPORT_SCHEMA: &str = "icos.diff-report/v2";

/// One difference between the two builds. The JSON form is the variant's fields plus `kind`
/// (the variant name in snake_case) and `message` (the human-readable line).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A release artifact exists in one directory only.
    ArtifactOnlyIn { artifact: String, side: Side },
    /// A release artifact differs (sha256 computed by icos-diff from the file's bytes).
    ArtifactDiffers {
        artifact: String,
        a: String,
        b: String,
    },
    /// SHA256SUMS lists a file that is not in its directory.
    ArtifactMissing { artifact: String, side: Side },
    /// A manifest says something about bytes that the bytes contradict: a stale or forged
    /// manifest. `side` is absent when A's and B's manifests agree with each other but the bytes
    /// they describe differ (then one of them is wrong, which one is not known).
    ManifestMismatch {
        #[serde(skip_serializing_if = "Option::is_none")]
        side: Option<Side>,
        manifest: String,
        /// What the manifest says it about: a file name, a JSON path or a rootfs path.
        claim: String,
        detail: String,
    },
    /// A field of a JSON manifest differs (`a`/`b` absent when the field is absent on that side).
    ManifestField {
        manifest: String,
        path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<Value>,
    },
    /// A partition differs: `source` is `build-manifest` (its `image_sha256` values, in `a`/`b`)
    /// or the name of the package whose disk image was compared byte by byte.
    PartitionDiffers {
        partition: String,
        source: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<String>,
    },
    /// A path of the root filesystem exists in one build only.
    FileOnlyIn {
        partition: String,
        path: String,
        side: Side,
    },
    /// An attribute of a path differs: `type`, `content`, `size`, `mode`, `uid`, `gid`, `mtime`,
    /// `target`, `xattr NAME`, `major` or `minor`.
    FileDiffers {
        partition: String,
        path: String,
        attribute: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<Value>,
    },
    /// A member of a package exists in one build only.
    MemberOnlyIn {
        artifact: String,
        member: String,
        side: Side,
    },
    /// A section of a unified kernel image (a `.efi` member) differs, or exists in one build only:
    /// `.cmdline` (and with it the root hash), `.osrel`, `.initrd`, `.linux` or a stub section.
    UkiSectionDiffers {
        artifact: String,
        member: String,
        section: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<String>,
    },
    /// A member of a package has different sizes.
    MemberSizeDiffers {
        artifact: String,
        member: String,
        a: u64,
        b: u64,
    },
    /// A region of a packaged image (partition, GPT structure, unpartitioned space, whole
    /// member) whose bytes differ: where the first differing byte is, and how many differ.
    BytesDiffer {
        artifact: String,
        member: String,
        region: String,
        region_kind: RegionKind,
        /// Set when the region is a partition (or a filesystem image standing for one).
        #[serde(skip_serializing_if = "Option::is_none")]
        partition: Option<String>,
        /// Offset of the first differing byte inside the region (the partition).
        region_offset: u64,
        /// The same offset inside the member (the disk).
        member_offset: u64,
        /// Differing bytes, and the runs of consecutive differing bytes they form.
        bytes: u64,
        runs: u64,
    },
    /// One ext4 structure of a differing region whose bytes differ: the superblock, a group
    /// descriptor, a bitmap, an inode, or the data blocks of one owner (a file, directory,
    /// extent tree, xattr block, the journal) or of no owner.
    StructureDiffers {
        artifact: String,
        member: String,
        region_kind: RegionKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        partition: Option<String>,
        /// `superblock`, `group_descriptors`, `inode_table`, `data_block`, … (see [`crate::ext4::Ext4Location`]).
        structure: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        group: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        inode: Option<u64>,
        /// The differing fields (superblock, descriptor and inode fields).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        fields: Vec<String>,
        /// Differing blocks as `[first, last]` ranges (data blocks and bitmaps), the first few.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        blocks: Vec<[u64; 2]>,
        /// Path of the inode or of the owner of the blocks in A, and in B when it differs.
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        path_b: Option<String>,
        /// What the blocks are to their owner (`file_data`, `directory`, `extent_tree`, …).
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
        region_offset: u64,
        member_offset: u64,
        bytes: u64,
        /// The structure for people: `inode 37 (/etc/motd): i_mtime, i_ctime differ`.
        description: String,
    },
    /// More structures of a region differ than are listed.
    MoreStructures {
        artifact: String,
        member: String,
        region: String,
        more: usize,
    },
}

/// Shortens sha256 digests (`sha256:` + 64 hex, or 64 hex) to their first 12 hex digits.
fn short(s: &str) -> String {
    let (prefix, hex) = s
        .split_once("sha256:")
        .filter(|(p, _)| p.is_empty())
        .map_or(("", s), |(_, h)| ("sha256:", h));
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("{prefix}{}…", &hex[..12])
    } else {
        s.to_string()
    }
}

fn value(v: &Option<Value>) -> String {
    match v {
        None => "absent".into(),
        Some(Value::String(s)) => short(s),
        Some(v) => v.to_string(),
    }
}

fn side_word(s: Side) -> &'static str {
    match s {
        Side::A => "only in A",
        Side::B => "only in B",
    }
}

impl Finding {
    /// The one-line human-readable form.
    pub fn message(&self) -> String {
        match self {
            Finding::ArtifactOnlyIn { artifact, side } => {
                format!("artifact {artifact}: {}", side_word(*side))
            }
            Finding::ArtifactDiffers { artifact, a, b } => {
                format!(
                    "artifact {artifact}: differs ({} vs {})",
                    short(a),
                    short(b)
                )
            }
            Finding::ArtifactMissing { artifact, side } => {
                format!(
                    "artifact {artifact}: listed in {side}'s SHA256SUMS but missing from {side}"
                )
            }
            Finding::ManifestMismatch {
                side,
                manifest,
                claim,
                detail,
            } => match side {
                Some(s) => format!("{s}'s {manifest}: {claim}: {detail}"),
                None => format!("{manifest}: {claim}: {detail}"),
            },
            Finding::ManifestField {
                manifest,
                path,
                a,
                b,
            } => {
                format!("{manifest}: {path}: {} vs {}", value(a), value(b))
            }
            Finding::PartitionDiffers {
                partition,
                source,
                a,
                b,
            } => match (a, b) {
                (None, None) => format!("partition {partition}: differs (bytes of {source})"),
                _ => format!(
                    "partition {partition}: differs (image {} vs {})",
                    value(&a.clone().map(Value::String)),
                    value(&b.clone().map(Value::String))
                ),
            },
            Finding::FileOnlyIn {
                partition,
                path,
                side,
            } => format!("partition {partition}: file {path}: {}", side_word(*side)),
            Finding::FileDiffers {
                partition,
                path,
                attribute,
                a,
                b,
            } => {
                format!(
                    "partition {partition}: file {path}: {attribute} differs ({} vs {})",
                    value(a),
                    value(b)
                )
            }
            Finding::MemberOnlyIn {
                artifact,
                member,
                side,
            } => format!("artifact {artifact}: member {member}: {}", side_word(*side)),
            Finding::UkiSectionDiffers {
                artifact,
                member,
                section,
                a,
                b,
            } => {
                let side = |s: &Option<String>| s.clone().unwrap_or_else(|| "absent".into());
                format!(
                    "artifact {artifact}: member {member}: UKI section {section} differs ({} vs {})",
                    side(a),
                    side(b)
                )
            }
            Finding::MemberSizeDiffers {
                artifact,
                member,
                a,
                b,
            } => {
                format!("artifact {artifact}: member {member}: size differs ({a} vs {b} bytes)")
            }
            Finding::BytesDiffer {
                artifact,
                member,
                region,
                region_kind,
                partition,
                region_offset,
                member_offset,
                bytes,
                runs,
            } => {
                let count = match bytes {
                    1 => "1 byte differs".to_string(),
                    n => format!("{n} bytes differ in {runs} run{}", plural(*runs)),
                };
                match (region_kind, partition) {
                    (RegionKind::Whole, Some(p)) => format!("artifact {artifact}: member {member} (partition {p}): {count}, the first at offset {region_offset}"),
                    (RegionKind::Whole, None) => format!("artifact {artifact}: member {member}: {count}, the first at offset {region_offset}"),
                    (_, Some(p)) => format!("partition {p}: {count}, the first at partition offset {region_offset} ({member} offset {member_offset})"),
                    (_, None) => format!("artifact {artifact}: member {member}: {region}: {count}, the first at {member} offset {member_offset}"),
                }
            }
            Finding::StructureDiffers {
                artifact,
                member,
                region_kind,
                partition,
                region_offset,
                member_offset,
                description,
                ..
            } => match (region_kind, partition) {
                (RegionKind::Whole, Some(p)) => format!(
                    "artifact {artifact}: member {member} (partition {p}): ext4 {description} (first at offset {region_offset})"
                ),
                (RegionKind::Whole, None) => format!(
                    "artifact {artifact}: member {member}: ext4 {description} (first at offset {region_offset})"
                ),
                (_, Some(p)) => format!(
                    "partition {p}: ext4 {description} (first at partition offset {region_offset}, {member} offset {member_offset})"
                ),
                (_, None) => format!(
                    "artifact {artifact}: member {member}: ext4 {description} (first at {member} offset {member_offset})"
                ),
            },
            Finding::MoreStructures {
                artifact,
                member,
                region,
                more,
            } => format!(
                "artifact {artifact}: member {member}: {region}: … and {more} more differing ext4 structures"
            ),
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Output of diffoscope on the first file whose content differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiffoscopeRun {
    pub path: String,
    /// diffoscope's exit code (1 means "differences shown").
    pub exit_code: Option<i32>,
    pub output: String,
}

/// The comparison of two release directories.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub a: String,
    pub b: String,
    pub identical: bool,
    #[serde(serialize_with = "ser_findings")]
    pub findings: Vec<Finding>,
    /// What could not be compared and why (missing optional inputs, diffoscope absent, …).
    /// Notes never make builds "differ".
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diffoscope: Option<DiffoscopeRun>,
}

fn ser_findings<S: serde::Serializer>(f: &[Finding], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct WithMessage<'a> {
        #[serde(flatten)]
        finding: &'a Finding,
        message: String,
    }
    s.collect_seq(f.iter().map(|finding| WithMessage {
        finding,
        message: finding.message(),
    }))
}

impl Report {
    /// 0 when identical, 1 when anything differs.
    pub fn exit_code(&self) -> i32 {
        if self.identical {
            0
        } else {
            1
        }
    }

    /// One line per finding, most significant first; then notes (`note: …`) and diffoscope output.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if self.identical {
            out.push_str(&format!("identical: {} and {}\n", self.a, self.b));
        }
        for f in &self.findings {
            out.push_str(&f.message());
            out.push('\n');
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if let Some(d) = &self.diffoscope {
            out.push_str(&format!("diffoscope output for {}:\n{}", d.path, d.output));
            if !d.output.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    /// The JSON report (schema `icos.diff-report/v1`), pretty-printed, with a final newline.
    pub fn render_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a report always serializes");
        s.push('\n');
        s
    }
}
