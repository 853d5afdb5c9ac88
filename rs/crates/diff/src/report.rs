//! Findings, their order, and their two renderings (one line per finding, or JSON).

use serde::Serialize;
use serde_json::Value;

use crate::ext4::Ext4Location;
use crate::rootfs::Side;
use crate::stream::RegionKind;

/// The `schema` value of the JSON report.
pub const REPORT_SCHEMA: &str = "icos.diff-report/v1";

/// One difference between the two builds. The JSON form is the variant's fields plus `kind`
/// (the variant name in snake_case) and `message` (the human-readable line).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A release artifact exists in one directory only.
    ArtifactOnlyIn { artifact: String, side: Side },
    /// A release artifact differs (sha256 from SHA256SUMS, or computed when not listed there).
    ArtifactDiffers {
        artifact: String,
        a: String,
        b: String,
    },
    /// SHA256SUMS lists a file that is not in its directory.
    ArtifactMissing { artifact: String, side: Side },
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
    /// A member of a package has different sizes.
    MemberSizeDiffers {
        artifact: String,
        member: String,
        a: u64,
        b: u64,
    },
    /// The first differing byte of a region of a packaged image.
    BytesDiffer {
        artifact: String,
        member: String,
        region: String,
        region_kind: RegionKind,
        /// Set when the region is a partition (or a filesystem image standing for one).
        #[serde(skip_serializing_if = "Option::is_none")]
        partition: Option<String>,
        /// Offset inside the region (the partition).
        region_offset: u64,
        /// Offset inside the member (the disk).
        member_offset: u64,
        /// True when the rootfs manifests are equal, so no file explains the difference.
        outside_files: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        ext4: Option<Ext4Location>,
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
                outside_files,
                ext4,
            } => {
                let what = if *outside_files {
                    "filesystem metadata outside any file: "
                } else {
                    ""
                };
                let place = match (region_kind, partition) {
                    (RegionKind::Whole, Some(p)) => format!("artifact {artifact}: member {member} (partition {p}): {what}first differing byte at offset {region_offset}"),
                    (RegionKind::Whole, None) => format!("artifact {artifact}: member {member}: {what}first differing byte at offset {region_offset}"),
                    (_, Some(p)) => {
                        format!("partition {p}: {what}first differing byte at partition offset {region_offset} ({member} offset {member_offset})")
                    }
                    (_, None) => format!("artifact {artifact}: member {member}: {region}: first differing byte at {member} offset {member_offset}"),
                };
                match ext4 {
                    Some(l) => format!("{place}: ext4 {}", l.description),
                    None => place,
                }
            }
        }
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
