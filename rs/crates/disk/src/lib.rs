//! Assembles a GPT disk image from partition images, with GUIDs derived from a seed.
//!
//! The layout file (TOML) lists the partitions in order; see [`LayoutFile`]. The disk is written
//! in one pass in offset order: protective MBR, primary GPT, each partition image at its offset,
//! backup GPT. Every byte (zeros included) goes through one SHA-256 for the disk digest, each image
//! is mapped in place and hashed on a thread of its own, a second core writes what the first
//! hashed (no image byte is copied in user space), and aligned all-zero 4 KiB blocks are not
//! written (the output is sparse; its length is set at the end). The output is never read back.
//!
//! The GPT is written here rather than with the `gpt` crate: that crate writes headers and
//! entries itself through its own device handle, so it cannot be fed through the single in-order
//! hashing, sparse writer, and it is under 150 lines of fixed-layout structures.

/// Sparse output (shared with icos-rootfs: it lives in icos-common).
pub use icos_common::sparse;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use icos_common::mapped::{MappedBytes, MappedFile, RELEASE_EVERY};
use icos_common::{parse_size, seed, write_behind, AtomicFile, Digest, WriteBehind};
use serde::{Deserialize, Serialize};

use sparse::SparseWriter;

/// Schema of the report written next to the disk.
pub const REPORT_SCHEMA: &str = "icos.disk-report/v1";
pub const SECTOR: u64 = 512;
pub const MIB: u64 = 1 << 20;
/// GPT partition entries: 128 of 128 bytes (32 sectors), the UEFI minimum and what every tool writes.
const ENTRIES: usize = 128;
const ENTRY_SIZE: usize = 128;
const ENTRY_SECTORS: u64 = (ENTRIES * ENTRY_SIZE) as u64 / SECTOR;
/// Longest partition name a GPT entry holds, in UTF-16 code units.
pub const MAX_NAME_UNITS: usize = 36;

/// Partition type aliases, from the UAPI Discoverable Partitions Specification
/// (<https://uapi-group.org/specifications/specs/discoverable_partitions_specification/>),
/// plus the EFI System, XBOOTLDR, generic Linux, swap and BIOS boot types.
pub const PARTITION_TYPES: &[(&str, &str)] = &[
    ("esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
    ("xbootldr", "bc13c2ff-59e6-4262-a352-b275fd6f7172"),
    ("bios-boot", "21686148-6449-6e6f-744e-656564454649"),
    ("linux-generic", "0fc63daf-8483-4772-8e79-3d69d8477de4"),
    ("linux-swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"),
    ("linux-home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915"),
    ("linux-srv", "3b8f8425-20e0-4f3b-907f-1a25a76f98e8"),
    ("linux-var", "4d21b016-b534-45c2-a9fb-5c16e091fd2d"),
    ("linux-tmp", "7ec6f557-3bc5-4aca-b293-16ef5df639d1"),
    ("linux-root-x86-64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
    ("linux-root-arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae"),
    ("linux-usr-x86-64", "8484680c-9521-48c6-9c11-b0720656f69e"),
    ("linux-usr-arm64", "b0e01050-ee5f-4390-949a-9101b17104e9"),
    (
        "linux-root-verity-x86-64",
        "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
    ),
    (
        "linux-root-verity-arm64",
        "df3300ce-d69f-4c92-978c-9bfb0f38d820",
    ),
    (
        "linux-usr-verity-x86-64",
        "77ff5f63-e7b6-4633-acf4-1565b864c0e6",
    ),
    (
        "linux-usr-verity-arm64",
        "6e11a4e7-fbca-4ded-b9e9-e1a512bb664e",
    ),
    (
        "linux-root-verity-sig-x86-64",
        "41092b05-9fc8-4523-994f-2def0408b176",
    ),
    (
        "linux-root-verity-sig-arm64",
        "6db69de6-29f4-4758-a7a5-962190f00ce3",
    ),
    (
        "linux-usr-verity-sig-x86-64",
        "e7bb33fb-06cf-4e81-8273-e543b413e2e2",
    ),
    (
        "linux-usr-verity-sig-arm64",
        "c23ce4ff-44bd-4b00-b2d4-b41b3419e02a",
    ),
];

/// The layout file: `[[partition]]` tables, in partition-number order.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutFile {
    #[serde(default)]
    pub partition: Vec<PartitionSpec>,
}

/// One `[[partition]]` of the layout file, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// GPT partition name; also the key for `--image NAME=PATH` and the GUID purpose.
    pub name: String,
    /// A type alias (see [`PARTITION_TYPES`]) or a type GUID.
    #[serde(rename = "type")]
    pub type_: String,
    /// A size (`64MiB`, a multiple of 512) or `auto` (the image size rounded up to 1 MiB).
    pub size: SizeSpec,
    /// The image to copy, relative to the layout file. Without one the partition is left zeroed.
    pub image: Option<String>,
    /// Byte offset (a multiple of 1 MiB); by default right after the previous partition, 1 MiB aligned.
    pub offset: Option<SizeSpec>,
}

/// A size in the layout file: a string (`"64MiB"`, `"auto"`) or a plain integer of bytes.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum SizeSpec {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot read layout {path}: {source}")]
    ReadLayout { path: PathBuf, source: io::Error },
    #[error("layout {path} is not valid: {message}")]
    ParseLayout { path: PathBuf, message: String },
    #[error("layout {path}: {message}")]
    Layout { path: PathBuf, message: String },
    #[error("layout {path}: partition {name:?} has unknown type {type_:?}: use a GUID or one of: {known}")]
    UnknownType {
        path: PathBuf,
        name: String,
        type_: String,
        known: String,
    },
    #[error("layout {path}: partitions {a:?} ({a_start}..{a_end}) and {b:?} ({b_start}..{b_end}) overlap: change their offsets or sizes")]
    Overlap {
        path: PathBuf,
        a: String,
        a_start: u64,
        a_end: u64,
        b: String,
        b_start: u64,
        b_end: u64,
    },
    #[error("partition {name:?}: image {image} is {image_size} bytes, larger than the partition ({size} bytes): raise its size or use size = \"auto\"")]
    ImageTooLarge {
        name: String,
        image: PathBuf,
        image_size: u64,
        size: u64,
    },
    #[error("partition {name:?}: cannot read image {image}: {source}")]
    Image {
        name: String,
        image: PathBuf,
        source: io::Error,
    },
    #[error("partition {name:?}: image {image} changed while it was copied ({expected} bytes expected): do not modify inputs during the build")]
    ImageChanged {
        name: String,
        image: PathBuf,
        expected: u64,
    },
    #[error(
        "--image {name}=…: there is no partition named {name:?} in {path} (partitions: {known})"
    )]
    UnknownImage {
        path: PathBuf,
        name: String,
        known: String,
    },
    #[error("disk size {size} bytes {problem}")]
    DiskSize { size: u64, problem: String },
    #[error("disk report {path}: {message} (write it with icos-disk --report-out)")]
    Report { path: PathBuf, message: String },
    #[error("cannot write disk image {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// A partition with everything decided: placement, GUIDs, image.
#[derive(Clone, Debug)]
pub struct Partition {
    pub name: String,
    pub type_: String,
    pub type_guid: [u8; 16],
    pub guid: [u8; 16],
    pub offset: u64,
    pub size: u64,
    pub image: Option<PathBuf>,
    pub image_size: u64,
}

/// The placed layout of a disk.
#[derive(Clone, Debug)]
pub struct Plan {
    pub disk_size: u64,
    pub disk_guid: [u8; 16],
    /// In layout (partition-number) order.
    pub partitions: Vec<Partition>,
}

/// What to build besides the layout.
#[derive(Clone, Debug, Default)]
pub struct DiskOptions {
    pub seed: String,
    /// `--image NAME=PATH` overrides, by partition name.
    pub images: BTreeMap<String, PathBuf>,
    /// A total disk size instead of "end of the last partition + 1 MiB".
    pub disk_size: Option<u64>,
}

/// The report of a built disk (`icos.disk-report/v1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskReport {
    pub schema: String,
    pub size: u64,
    /// SHA-256 of the whole disk image, zeros included.
    pub sha256: Digest,
    pub disk_guid: String,
    pub sector_size: u64,
    pub partitions: Vec<PartitionReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReport {
    pub name: String,
    /// The type as written in the layout (alias or GUID).
    #[serde(rename = "type")]
    pub type_: String,
    pub type_guid: String,
    pub guid: String,
    pub first_lba: u64,
    /// Inclusive, as in the GPT.
    pub last_lba: u64,
    pub offset: u64,
    pub size: u64,
    pub image_size: u64,
    /// Absent when the partition has no image (left zeroed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image_sha256: Option<Digest>,
    /// For a dm-verity hash partition: the root hash its tree yields (from the hash image's
    /// params, `icos-disk --verity NAME=PARAMS`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verity_root_hash: Option<String>,
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case) into big-endian bytes.
pub fn parse_guid(s: &str) -> Option<[u8; 16]> {
    let parts: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(parts.concat(), &mut out).ok()?;
    Some(out)
}

/// The type GUID for an alias or a GUID string.
pub fn type_guid(type_: &str) -> Option<[u8; 16]> {
    PARTITION_TYPES
        .iter()
        .find(|(alias, _)| *alias == type_)
        .map(|(_, g)| parse_guid(g).expect("static GUIDs are well-formed"))
        .or_else(|| parse_guid(type_))
}

/// GPT stores a GUID's first three fields little-endian ("mixed-endian"); UUID bytes are big-endian.
pub fn guid_to_gpt(u: &[u8; 16]) -> [u8; 16] {
    let mut g = *u;
    g[0..4].reverse();
    g[4..6].reverse();
    g[6..8].reverse();
    g
}

fn align_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

fn size_value(path: &Path, what: &str, s: &SizeSpec) -> Result<Option<u64>, DiskError> {
    match s {
        SizeSpec::Bytes(n) => Ok(Some(*n)),
        SizeSpec::Text(t) if t == "auto" => Ok(None),
        SizeSpec::Text(t) => parse_size(t).map(Some).map_err(|m| DiskError::Layout {
            path: path.to_path_buf(),
            message: format!("{what}: {m}"),
        }),
    }
}

/// Reads a layout file.
pub fn read_layout(path: &Path) -> Result<LayoutFile, DiskError> {
    let text = std::fs::read_to_string(path).map_err(|source| DiskError::ReadLayout {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| DiskError::ParseLayout {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Places the partitions of `layout` (read from `layout_path`): checks names, types, images and
/// sizes, derives the GUIDs, and computes offsets and the disk size.
pub fn plan(
    layout_path: &Path,
    layout: &LayoutFile,
    opts: &DiskOptions,
) -> Result<Plan, DiskError> {
    let lerr = |message: String| DiskError::Layout {
        path: layout_path.to_path_buf(),
        message,
    };
    if layout.partition.is_empty() {
        return Err(lerr("declares no [[partition]]".into()));
    }
    if layout.partition.len() > ENTRIES {
        return Err(lerr(format!(
            "declares {} partitions; a GPT holds at most {ENTRIES}",
            layout.partition.len()
        )));
    }
    let names: Vec<&str> = layout.partition.iter().map(|p| p.name.as_str()).collect();
    for name in opts.images.keys() {
        if !names.contains(&name.as_str()) {
            return Err(DiskError::UnknownImage {
                path: layout_path.to_path_buf(),
                name: name.clone(),
                known: names.join(", "),
            });
        }
    }
    let base = layout_path.parent().unwrap_or(Path::new(""));
    let mut seen = BTreeSet::new();
    let mut parts = Vec::new();
    let mut next = MIB;
    for spec in &layout.partition {
        let name = &spec.name;
        if name.is_empty() || name.encode_utf16().count() > MAX_NAME_UNITS {
            return Err(lerr(format!(
                "partition name {name:?} must be 1 to {MAX_NAME_UNITS} UTF-16 characters"
            )));
        }
        if name.chars().any(|c| c.is_control() || c == '=') {
            return Err(lerr(format!(
                "partition name {name:?} must not contain control characters or '='"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(lerr(format!(
                "partition name {name:?} is used twice: names must be unique"
            )));
        }
        let type_guid = type_guid(&spec.type_).ok_or_else(|| DiskError::UnknownType {
            path: layout_path.to_path_buf(),
            name: name.clone(),
            type_: spec.type_.clone(),
            known: PARTITION_TYPES
                .iter()
                .map(|(a, _)| *a)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let image = match opts.images.get(name) {
            Some(p) => Some(p.clone()),
            None => spec.image.as_ref().map(|i| base.join(i)),
        };
        let image_size = match &image {
            Some(p) => {
                let md = std::fs::metadata(p).map_err(|source| DiskError::Image {
                    name: name.clone(),
                    image: p.clone(),
                    source,
                })?;
                if !md.is_file() {
                    return Err(DiskError::Image {
                        name: name.clone(),
                        image: p.clone(),
                        source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
                    });
                }
                md.len()
            }
            None => 0,
        };
        let size = match size_value(layout_path, &format!("partition {name:?} size"), &spec.size)? {
            Some(s) => s,
            None if image.is_some() && image_size > 0 => align_up(image_size, MIB),
            None => {
                return Err(lerr(format!(
                    "partition {name:?}: size = \"auto\" needs a non-empty image"
                )))
            }
        };
        if size == 0 || !size.is_multiple_of(SECTOR) {
            return Err(lerr(format!(
                "partition {name:?}: size {size} is not a positive multiple of 512 bytes"
            )));
        }
        if let Some(img) = &image {
            if image_size > size {
                return Err(DiskError::ImageTooLarge {
                    name: name.clone(),
                    image: img.clone(),
                    image_size,
                    size,
                });
            }
        }
        let offset = match &spec.offset {
            None => next,
            Some(o) => {
                let o = size_value(layout_path, &format!("partition {name:?} offset"), o)?
                    .ok_or_else(|| {
                        lerr(format!(
                            "partition {name:?}: offset cannot be \"auto\"; leave it out"
                        ))
                    })?;
                if o < MIB || !o.is_multiple_of(MIB) {
                    return Err(lerr(format!("partition {name:?}: offset {o} is not a multiple of 1 MiB (at least 1 MiB)")));
                }
                o
            }
        };
        next = align_up(offset + size, MIB);
        parts.push(Partition {
            name: name.clone(),
            type_: spec.type_.clone(),
            type_guid,
            guid: seed::derive_uuid(&opts.seed, &format!("gpt:partition:{name}")),
            offset,
            size,
            image,
            image_size,
        });
    }
    let mut by_offset: Vec<&Partition> = parts.iter().collect();
    by_offset.sort_by_key(|p| p.offset);
    for w in by_offset.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.offset + a.size > b.offset {
            return Err(DiskError::Overlap {
                path: layout_path.to_path_buf(),
                a: a.name.clone(),
                a_start: a.offset,
                a_end: a.offset + a.size,
                b: b.name.clone(),
                b_start: b.offset,
                b_end: b.offset + b.size,
            });
        }
    }
    let end = by_offset
        .iter()
        .map(|p| p.offset + p.size)
        .max()
        .expect("at least one partition");
    // The backup GPT takes the last 33 sectors; the last usable LBA is before them.
    let min_size = align_up(end, SECTOR) + (ENTRY_SECTORS + 1) * SECTOR;
    let disk_size = match opts.disk_size {
        None => align_up(end, MIB) + MIB,
        Some(s) if !s.is_multiple_of(SECTOR) => {
            return Err(DiskError::DiskSize {
                size: s,
                problem: "is not a multiple of 512 bytes".into(),
            })
        }
        Some(s) if s < min_size => {
            return Err(DiskError::DiskSize {
                size: s,
                problem: format!(
                    "leaves no room for the partitions and the backup GPT: use at least {min_size}"
                ),
            })
        }
        Some(s) => s,
    };
    Ok(Plan {
        disk_size,
        disk_guid: seed::derive_uuid(&opts.seed, "gpt:disk"),
        partitions: parts,
    })
}

/// The partition entry array (128 × 128 bytes).
fn entry_array(plan: &Plan) -> Vec<u8> {
    let mut a = vec![0u8; ENTRIES * ENTRY_SIZE];
    for (i, p) in plan.partitions.iter().enumerate() {
        let e = &mut a[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE];
        e[0..16].copy_from_slice(&guid_to_gpt(&p.type_guid));
        e[16..32].copy_from_slice(&guid_to_gpt(&p.guid));
        e[32..40].copy_from_slice(&(p.offset / SECTOR).to_le_bytes());
        e[40..48].copy_from_slice(&((p.offset + p.size) / SECTOR - 1).to_le_bytes());
        // attributes (48..56) stay 0
        for (j, unit) in p.name.encode_utf16().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
        }
    }
    a
}

/// A GPT header sector.
fn header(plan: &Plan, entries_crc: u32, primary: bool) -> [u8; SECTOR as usize] {
    let last = plan.disk_size / SECTOR - 1;
    let (my_lba, alt_lba, entries_lba) = if primary {
        (1, last, 2)
    } else {
        (last, 1, last - ENTRY_SECTORS)
    };
    let mut h = [0u8; SECTOR as usize];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&my_lba.to_le_bytes());
    h[32..40].copy_from_slice(&alt_lba.to_le_bytes());
    h[40..48].copy_from_slice(&(2 + ENTRY_SECTORS).to_le_bytes());
    h[48..56].copy_from_slice(&(last - ENTRY_SECTORS - 1).to_le_bytes());
    h[56..72].copy_from_slice(&guid_to_gpt(&plan.disk_guid));
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
    h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..92]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The protective MBR: one partition of type 0xEE covering the disk (capped at 2^32-1 sectors).
fn protective_mbr(plan: &Plan) -> [u8; SECTOR as usize] {
    let mut m = [0u8; SECTOR as usize];
    let sectors = (plan.disk_size / SECTOR - 1).min(u32::MAX as u64) as u32;
    let e = &mut m[446..462];
    e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    e[4] = 0xee;
    e[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    e[8..12].copy_from_slice(&1u32.to_le_bytes());
    e[12..16].copy_from_slice(&sectors.to_le_bytes());
    m[510] = 0x55;
    m[511] = 0xaa;
    m
}

/// Builds the disk image `out` from the layout file at `layout_path`.
pub fn build_disk(
    layout_path: &Path,
    out: &Path,
    opts: &DiskOptions,
) -> Result<DiskReport, DiskError> {
    let layout = read_layout(layout_path)?;
    let plan = plan(layout_path, &layout, opts)?;
    write_disk(&plan, out)
}

/// The root hash a dm-verity params file (schema `icos.verity-params/v1`, written by
/// `icos-verity`) records: 64 lowercase hex digits.
pub fn verity_root_hash(params: &Path) -> Result<String, DiskError> {
    let bad = |message: String| DiskError::Report {
        path: params.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(params).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if value["schema"] != "icos.verity-params/v1" {
        return Err(bad("its schema is not icos.verity-params/v1".into()));
    }
    value["root_hash"]
        .as_str()
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .map(str::to_string)
        .ok_or_else(|| bad("root_hash is not 64 lowercase hex digits".into()))
}

/// Writes a planned disk; see the crate documentation for how.
pub fn write_disk(plan: &Plan, out: &Path) -> Result<DiskReport, DiskError> {
    let wr = |source: io::Error| DiskError::Write {
        path: out.to_path_buf(),
        source,
    };
    let entries = entry_array(plan);
    let entries_crc = crc32fast::hash(&entries);

    // Every image mapped first: the disk's bytes are borrowed from the mappings (see below).
    let mut images: Vec<Option<MappedBytes>> = Vec::with_capacity(plan.partitions.len());
    for p in &plan.partitions {
        images.push(match &p.image {
            None => None,
            Some(path) => Some(map_image(p, path)?),
        });
    }

    let mut file = AtomicFile::create(out).map_err(wr)?;
    let file_ref: &File = file.file();
    let mut order: Vec<usize> = (0..plan.partitions.len()).collect();
    order.sort_by_key(|&i| plan.partitions[i].offset);
    let mut digests: Vec<Option<Digest>> = vec![None; plan.partitions.len()];
    // The disk is hashed on this core as it is produced, each image on a thread of its own
    // from its mapping, and a second core writes (icos_common::write_behind): no image byte is
    // copied in user space.
    let (digests, sparse, sha256, size) = {
        let ((), sparse, sha256, size) = write_behind(SparseWriter::new(file_ref), |disk| {
            disk.write_all(&protective_mbr(plan))?;
            disk.write_all(&header(plan, entries_crc, true))?;
            disk.write_all(&entries)?;
            for &i in &order {
                let p = &plan.partitions[i];
                let gap = p.offset - disk.count();
                disk.write_zeros(gap)?;
                if let Some(image) = &images[i] {
                    digests[i] = Some(copy_image(disk, image)?);
                }
                let pad = p.offset + p.size - disk.count();
                disk.write_zeros(pad)?;
            }
            let backup_entries_at = plan.disk_size - (ENTRY_SECTORS + 1) * SECTOR;
            let tail = backup_entries_at - disk.count();
            disk.write_zeros(tail)?;
            disk.write_all(&entries)?;
            disk.write_all(&header(plan, entries_crc, false))
        })
        .map_err(wr)?;
        (digests, sparse, sha256, size)
    };
    debug_assert_eq!(size, plan.disk_size);
    for (p, image) in plan.partitions.iter().zip(&images) {
        if let (Some(path), Some(image)) = (&p.image, image) {
            image
                .file()
                .check_unchanged()
                .map_err(|_| DiskError::ImageChanged {
                    name: p.name.clone(),
                    image: path.clone(),
                    expected: p.image_size,
                })?;
        }
    }
    sparse.finish().map_err(wr)?;
    file.commit().map_err(wr)?;

    let partitions = plan
        .partitions
        .iter()
        .zip(digests)
        .map(|(p, d)| PartitionReport {
            name: p.name.clone(),
            type_: p.type_.clone(),
            type_guid: seed::format_uuid(&p.type_guid),
            guid: seed::format_uuid(&p.guid),
            first_lba: p.offset / SECTOR,
            last_lba: (p.offset + p.size) / SECTOR - 1,
            offset: p.offset,
            size: p.size,
            image_size: p.image_size,
            image_sha256: d,
            verity_root_hash: None,
        })
        .collect();
    Ok(DiskReport {
        schema: REPORT_SCHEMA.to_string(),
        size,
        sha256,
        disk_guid: seed::format_uuid(&plan.disk_guid),
        sector_size: SECTOR,
        partitions,
    })
}

/// A partition image mapped in place, refused unless it still has the size it was planned with.
fn map_image(p: &Partition, path: &Path) -> Result<MappedBytes, DiskError> {
    let ierr = |source: io::Error| DiskError::Image {
        name: p.name.clone(),
        image: path.to_path_buf(),
        source,
    };
    // Opened like every input: a FIFO or device is refused, never blocks.
    let bytes = icos_common::open_regular(path)
        .and_then(MappedFile::new)
        .map_err(ierr)?
        .whole();
    if bytes.len() as u64 != p.image_size {
        return Err(DiskError::ImageChanged {
            name: p.name.clone(),
            image: path.to_path_buf(),
            expected: p.image_size,
        });
    }
    Ok(bytes)
}

/// Appends an image to the disk, in steps that give its pages back as they go; returns the
/// image's own digest, computed on another thread meanwhile.
fn copy_image<'a>(disk: &mut WriteBehind<'a>, image: &'a MappedBytes) -> io::Result<Digest> {
    std::thread::scope(|scope| {
        let digest = scope.spawn(|| image.sha256());
        let mut written = Ok(());
        for chunk in image.chunks(RELEASE_EVERY as usize) {
            written = disk.write_borrowed(chunk);
            if written.is_err() {
                break;
            }
            image.file().release();
        }
        let digest = digest.join().expect("the hashing thread panicked");
        written.map(|()| digest)
    })
}

/// Writes a report as pretty JSON (with a final newline) through an [`AtomicFile`].
pub fn write_report(report: &DiskReport, out: &Path) -> Result<(), DiskError> {
    let wr = |source: io::Error| DiskError::Write {
        path: out.to_path_buf(),
        source,
    };
    let mut f = AtomicFile::create(out).map_err(wr)?;
    serde_json::to_writer_pretty(&mut f, report).map_err(|e| wr(e.into()))?;
    f.write_all(b"\n").map_err(wr)?;
    f.commit().map_err(wr)
}

/// Reads a report written by [`write_report`].
pub fn read_report(path: &Path) -> Result<DiskReport, DiskError> {
    let f = File::open(path).map_err(|e| DiskError::Report {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let report: DiskReport =
        serde_json::from_reader(BufReader::new(f)).map_err(|e| DiskError::Report {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if report.schema != REPORT_SCHEMA {
        return Err(DiskError::Report {
            path: path.to_path_buf(),
            message: format!("schema is {:?}, expected {REPORT_SCHEMA:?}", report.schema),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_mixed_endian_on_disk() {
        let u = parse_guid("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        assert_eq!(
            seed::format_uuid(&u),
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
        );
        assert_eq!(
            guid_to_gpt(&u),
            [
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ]
        );
        assert!(parse_guid("c12a7328f81f11d2ba4b00a0c93ec93b").is_none());
        assert!(parse_guid("g12a7328-f81f-11d2-ba4b-00a0c93ec93b").is_none());
        assert_eq!(type_guid("esp"), Some(u));
        assert_eq!(type_guid("not-a-type"), None);
    }
}
