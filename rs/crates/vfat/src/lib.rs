//! Writes a FAT32 (ESP) filesystem image from a tar with fixed volume id, label, timestamps and
//! sorted directories.
//!
//! The filesystem itself is written by the [`fatfs`] crate; this crate decides everything that
//! must not depend on the host:
//!
//! - the volume id is the first 4 bytes (read big-endian) of
//!   `derive_uuid(seed, "vfat:volume_id:<label>")`, so it prints as the first 8 hex digits of
//!   that UUID (`blkid` shows it as `XXXX-XXXX`);
//! - every timestamp (created, modified, accessed) is `SOURCE_DATE_EPOCH` in UTC, through a
//!   [`fatfs::TimeProvider`] that never reads the clock. FAT cannot store dates before
//!   1980-01-01, so an earlier epoch is clamped to 1980-01-01 00:00:00; the modification time has
//!   a 2-second resolution, so an odd second is rounded down there (the creation time keeps it);
//! - entries are created in sorted order (bytewise by path component, parents first) whatever the
//!   order of the tar, so directory slots and cluster allocation are a function of the content.
//!
//! The input is a tar in the rootfs tar format (ARCHITECTURE.md). Owners, modes and mtimes are
//! ignored: FAT has no place for them. Directories and regular files are copied; a hardlink entry
//! becomes a second copy of its target's data (FAT has no hardlinks); symlinks, devices and fifos
//! are refused, naming the entry.

mod cache;
mod names;
mod tree;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use cache::{LfnRename, SectorCache};

use fatfs::{
    Date, DateTime, FatType, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider,
};
use icos_common::tarread::TarReader;
use icos_common::{seed, AtomicFile, SourceDateEpoch};
use serde::{Deserialize, Serialize};

/// Schema of the parameters file written next to the image.
pub const PARAMS_SCHEMA: &str = "icos.vfat-params/v1";

/// 1980-01-01T00:00:00Z, the earliest instant a FAT directory entry can hold.
pub const FAT_EPOCH: u64 = 315_532_800;

/// 2107-12-31T23:59:59Z, the last second a FAT date (years 1980 + 0..=127) can hold.
pub const FAT_LAST: u64 = 4_354_819_199;

pub(crate) const SECTOR: u64 = 512;
/// Largest FAT32 volume with 512-byte sectors (2^32 sectors).
const MAX_SIZE: u64 = SECTOR << 32;

/// What to build.
#[derive(Clone, Debug)]
pub struct VfatOptions {
    /// Image size in bytes; a multiple of 512.
    pub size: u64,
    /// The build seed; the volume id derives from it and the label.
    pub seed: String,
    /// Volume label, 1 to 11 characters: A-Z, 0-9, space and `!#$%&'()-@^_`{}~`.
    pub label: String,
    pub source_date_epoch: SourceDateEpoch,
}

/// The parameters of a built image (`icos.vfat-params/v1`), recorded in the build manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfatParams {
    pub schema: String,
    /// `XXXX-XXXX`, as `blkid` and `/etc/fstab` write it.
    pub volume_id: String,
    pub label: String,
    /// Always `FAT32`.
    pub fat_type: String,
    pub size_bytes: u64,
    pub cluster_size: u32,
    pub source_date_epoch: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum VfatError {
    #[error("cannot read the ESP tree {path}: {source}")]
    ReadTree { path: PathBuf, source: io::Error },
    #[error("ESP tree {tree}: entry {entry:?} is a {kind}; a FAT filesystem holds only directories and regular files: remove it from the tree")]
    Unsupported {
        tree: PathBuf,
        entry: String,
        kind: &'static str,
    },
    #[error("ESP tree {tree}: entry {entry:?} {problem}")]
    BadEntry {
        tree: PathBuf,
        entry: String,
        problem: String,
    },
    #[error("ESP tree {tree}: {a:?} and {b:?} differ only in letter case, which FAT cannot tell apart: rename one of them")]
    CaseCollision { tree: PathBuf, a: String, b: String },
    #[error("volume label {label:?} {problem}")]
    BadLabel { label: String, problem: String },
    #[error("SOURCE_DATE_EPOCH {epoch} is after 2107-12-31, the last day a FAT date holds")]
    BadEpoch { epoch: u64 },
    #[error("image size {size} bytes {problem}")]
    BadSize { size: u64, problem: String },
    #[error("the ESP tree {tree} does not fit in {size} bytes (out of space at {entry:?}): increase --size")]
    Full {
        tree: PathBuf,
        size: u64,
        entry: String,
    },
    #[error("cannot write the FAT image {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The volume id for `seed` and `label`: the first 4 bytes of `derive_uuid(seed, "vfat:volume_id:<label>")`.
pub fn volume_id(seed: &str, label: &str) -> u32 {
    let u = seed::derive_uuid(seed, &format!("vfat:volume_id:{label}"));
    u32::from_be_bytes([u[0], u[1], u[2], u[3]])
}

/// Formats a volume id the way `blkid` does: `XXXX-XXXX`.
pub fn format_volume_id(id: u32) -> String {
    format!("{:04X}-{:04X}", id >> 16, id & 0xffff)
}

/// The FAT date and time (UTC) for an epoch, clamped to FAT's range: 1980-01-01 00:00:00 if
/// earlier, 2107-12-31 23:59:59 if later (`build_vfat` refuses later epochs).
pub fn fat_date_time(epoch: SourceDateEpoch) -> DateTime {
    let t = epoch.seconds().clamp(FAT_EPOCH, FAT_LAST);
    let days = i64::try_from(t / 86_400).expect("clamped to 2107");
    let secs = t % 86_400;
    let (year, month, day) = civil_from_days(days);
    // Every part is bounded by the clamp above: years 1980-2107, hours < 24, minutes < 60.
    let n = |v: i64| u16::try_from(v).expect("a calendar field of 1980-2107");
    let s = |v: u64| u16::try_from(v).expect("a time of day field");
    DateTime {
        date: Date {
            year: n(year),
            month: n(month),
            day: n(day),
        },
        time: Time {
            hour: s(secs / 3600),
            min: s(secs / 60 % 60),
            sec: s(secs % 60),
            millis: 0,
        },
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// Howard Hinnant's `civil_from_days`; written out because it is ten lines and no date crate is
/// needed anywhere else in the tools.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn validate_label(label: &str) -> Result<[u8; 11], VfatError> {
    let bad = |problem: &str| VfatError::BadLabel {
        label: label.to_string(),
        problem: problem.to_string(),
    };
    if label.is_empty() || label.len() > 11 {
        return Err(bad("must be 1 to 11 characters long"));
    }
    if label.starts_with(' ') {
        return Err(bad("must not start with a space"));
    }
    for c in label.chars() {
        let ok = c.is_ascii_uppercase() || c.is_ascii_digit() || " !#$%&'()-@^_`{}~".contains(c);
        if !ok {
            return Err(bad(&format!(
                "contains {c:?}: use A-Z, 0-9, space and !#$%&'()-@^_`{{}}~ (FAT labels are upper case)"
            )));
        }
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(out)
}

thread_local! {
    /// The timestamp the [`EpochClock`] hands to fatfs on this thread. fatfs wants a `&'static`
    /// provider; a thread-local keeps concurrent builds on different threads independent.
    static CURRENT: Cell<DateTime> = const {
        Cell::new(DateTime {
            date: Date { year: 1980, month: 1, day: 1 },
            time: Time { hour: 0, min: 0, sec: 0, millis: 0 },
        })
    };
}

/// A [`TimeProvider`] that returns SOURCE_DATE_EPOCH, never the clock.
#[derive(Debug)]
struct EpochClock;

impl TimeProvider for EpochClock {
    fn get_current_date(&self) -> Date {
        CURRENT.with(|c| c.get().date)
    }
    fn get_current_date_time(&self) -> DateTime {
        CURRENT.with(|c| c.get())
    }
}

static EPOCH_CLOCK: EpochClock = EpochClock;

/// What fatfs made for an entry.
enum Made<D, F> {
    Dir(D),
    File(F),
}

/// Builds the FAT32 image `out` from the tar `tree`; returns the parameters to record.
///
/// Nothing appears under `out` unless the whole image was written.
pub fn build_vfat(tree: &Path, out: &Path, opts: &VfatOptions) -> Result<VfatParams, VfatError> {
    let label_bytes = validate_label(&opts.label)?;
    if opts.source_date_epoch.seconds() > FAT_LAST {
        return Err(VfatError::BadEpoch {
            epoch: opts.source_date_epoch.seconds(),
        });
    }
    if opts.size == 0 || !opts.size.is_multiple_of(SECTOR) {
        return Err(VfatError::BadSize {
            size: opts.size,
            problem: "is not a positive multiple of 512 (the sector size)".into(),
        });
    }
    if opts.size > MAX_SIZE {
        return Err(VfatError::BadSize {
            size: opts.size,
            problem: "is larger than FAT32 allows with 512-byte sectors (2 TiB)".into(),
        });
    }

    let file = File::open(tree).map_err(|source| VfatError::ReadTree {
        path: tree.to_path_buf(),
        source,
    })?;
    let mut archive = TarReader::seekable(BufReader::new(file));
    let mut sorted = tree::scan(tree, &mut archive)?;
    let order = sorted.creation_order();
    let mut data = archive.into_inner();

    let wr = |source: io::Error| VfatError::Write {
        path: out.to_path_buf(),
        source,
    };
    let mut image = AtomicFile::create(out).map_err(wr)?;
    image.file().set_len(opts.size).map_err(wr)?;

    let id = volume_id(&opts.seed, &opts.label);
    let format = FormatVolumeOptions::new()
        .fat_type(FatType::Fat32)
        .volume_id(id)
        .volume_label(label_bytes);
    let too_small = || {
        VfatError::BadSize {
        size: opts.size,
        problem: "is too small for FAT32 (at least 65525 clusters of 512 bytes): use --size 33MiB or more".into(),
    }
    };
    {
        let mut disk = SectorCache::new(image.file(), Rc::default());
        fatfs::format_volume(&mut disk, format).map_err(|e| match e.kind() {
            // fatfs reports geometry problems as `Other`; anything else is the file's own error.
            io::ErrorKind::Other => too_small(),
            _ => wr(e),
        })?;
        disk.write_back().map_err(wr)?;
    }
    image.file().seek(SeekFrom::Start(0)).map_err(wr)?;

    CURRENT.with(|c| c.set(fat_date_time(opts.source_date_epoch)));
    let rename = Rc::new(RefCell::new(None));
    let mut disk = SectorCache::new(image.file(), Rc::clone(&rename));
    let mut bpb = [0u8; 4];
    disk.seek(SeekFrom::Start(0x2c))
        .and_then(|_| disk.read_exact(&mut bpb))
        .map_err(wr)?;
    disk.root_cluster = Some(u32::from_le_bytes(bpb));
    disk.seek(SeekFrom::Start(0)).map_err(wr)?;
    let fs =
        FileSystem::new(&mut disk, FsOptions::new().time_provider(&EPOCH_CLOCK)).map_err(wr)?;
    if fs.fat_type() != FatType::Fat32 {
        return Err(too_small());
    }
    let cluster_size = fs.cluster_size();
    let full = |entry: &str| VfatError::Full {
        tree: tree.to_path_buf(),
        size: opts.size,
        entry: entry.to_string(),
    };
    // An error while writing is "full" when no free cluster is left; otherwise it is reported as is.
    let classify = |fs: &FileSystem<&mut SectorCache<&mut File>>, entry: &str, e: io::Error| {
        match fs.stats() {
            Ok(s) if s.free_clusters() == 0 => full(entry),
            _ => VfatError::Write {
                path: out.to_path_buf(),
                source: io::Error::new(e.kind(), format!("at {entry:?}: {e}")),
            },
        }
    };

    let mut buf = vec![0u8; 1 << 16];
    // The open directories along the current path (the root first) with the fatfs keys of the
    // names made in each: entries come depth first, so each is made in the last directory kept
    // after cutting the stack to its depth, and no path is walked from the root again.
    let mut open = vec![(fs.root_dir(), HashSet::new())];
    for &(id, depth) in &order {
        open.truncate(depth);
        let (dir, taken) = open.last_mut().expect("parents come before their children");
        let node = &sorted.nodes[id];
        let name = &node.name;
        let entry = || sorted.path(id);
        let plan = names::plan(name, taken).map_err(|problem| VfatError::BadEntry {
            tree: tree.to_path_buf(),
            entry: entry(),
            problem,
        })?;
        let fatfs_name = match &plan {
            names::Plan::Direct => name.clone(),
            names::Plan::Placeholder(p) => {
                *rename.borrow_mut() = Some(LfnRename {
                    from: p.encode_utf16().collect(),
                    to: name.encode_utf16().collect(),
                    slots_done: 0,
                });
                p.clone()
            }
        };
        taken.insert(names::fatfs_key(name));
        let made = match node.kind {
            tree::Kind::Dir { .. } => dir.create_dir(&fatfs_name).map(Made::Dir),
            _ => dir.create_file(&fatfs_name).map(Made::File),
        }
        .map_err(|e| classify(&fs, &entry(), e))?;
        if let Some(r) = rename.borrow_mut().take() {
            if r.slots_done != r.slots() {
                return Err(VfatError::Write {
                    path: out.to_path_buf(),
                    source: io::Error::other(format!(
                        "at {:?}: {} of its {} long-name entries were renamed from the placeholder \
                         {fatfs_name:?} (a fatfs change?)",
                        entry(),
                        r.slots_done,
                        r.slots()
                    )),
                });
            }
        }
        let mut f = match made {
            Made::Dir(new_dir) => {
                open.push((new_dir, HashSet::new()));
                continue;
            }
            Made::File(f) => f,
        };
        let (offset, size) = sorted
            .data(id)
            .expect("files and resolved hardlinks have data (scan)");
        data.seek(SeekFrom::Start(offset))
            .map_err(|source| VfatError::ReadTree {
                path: tree.to_path_buf(),
                source,
            })?;
        let mut left = size;
        while left > 0 {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            data.read_exact(&mut buf[..n])
                .map_err(|source| VfatError::ReadTree {
                    path: tree.to_path_buf(),
                    source,
                })?;
            f.write_all(&buf[..n])
                .map_err(|e| classify(&fs, &entry(), e))?;
            left -= n as u64;
        }
        f.flush().map_err(|e| classify(&fs, &entry(), e))?;
    }
    drop(open);
    // Counting the free clusters records the count in the FSInfo sector (written by unmount);
    // otherwise it says "unknown" and fsck.fat notes it.
    fs.stats().map_err(wr)?;
    fs.unmount().map_err(wr)?;
    disk.write_back().map_err(wr)?;
    drop(disk);
    image.commit().map_err(wr)?;

    Ok(VfatParams {
        schema: PARAMS_SCHEMA.to_string(),
        volume_id: format_volume_id(id),
        label: opts.label.clone(),
        fat_type: "FAT32".to_string(),
        size_bytes: opts.size,
        cluster_size,
        source_date_epoch: opts.source_date_epoch.seconds(),
    })
}

/// Writes the parameters as pretty JSON (with a final newline) through an [`AtomicFile`].
pub fn write_params(params: &VfatParams, out: &Path) -> Result<(), VfatError> {
    let wr = |source: io::Error| VfatError::Write {
        path: out.to_path_buf(),
        source,
    };
    let mut f = AtomicFile::create(out).map_err(wr)?;
    serde_json::to_writer_pretty(&mut f, params).map_err(|e| wr(e.into()))?;
    f.write_all(b"\n").map_err(wr)?;
    f.commit().map_err(wr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_and_clamped() {
        // 2023-11-14T22:13:20Z
        let dt = fat_date_time(SourceDateEpoch(1_700_000_000));
        assert_eq!((dt.date.year, dt.date.month, dt.date.day), (2023, 11, 14));
        assert_eq!((dt.time.hour, dt.time.min, dt.time.sec), (22, 13, 20));
        // 2000-02-29T23:59:59Z: a leap day
        let dt = fat_date_time(SourceDateEpoch(951_868_799));
        assert_eq!((dt.date.year, dt.date.month, dt.date.day), (2000, 2, 29));
        assert_eq!((dt.time.hour, dt.time.min, dt.time.sec), (23, 59, 59));
        // before 1980: clamped
        let dt = fat_date_time(SourceDateEpoch(0));
        assert_eq!((dt.date.year, dt.date.month, dt.date.day), (1980, 1, 1));
        assert_eq!((dt.time.hour, dt.time.min, dt.time.sec), (0, 0, 0));
        let dt = fat_date_time(SourceDateEpoch(SourceDateEpoch::MAX));
        assert_eq!(dt.date.year, 2106);
        let dt = fat_date_time(SourceDateEpoch(FAT_LAST));
        assert_eq!((dt.date.year, dt.date.month, dt.date.day), (2107, 12, 31));
        assert_eq!((dt.time.hour, dt.time.min, dt.time.sec), (23, 59, 59));
        let dt = fat_date_time(SourceDateEpoch(u64::MAX));
        assert_eq!((dt.date.year, dt.date.month, dt.date.day), (2107, 12, 31));
    }

    #[test]
    fn labels_are_checked() {
        assert_eq!(&validate_label("ESP").unwrap(), b"ESP        ");
        assert!(validate_label("").is_err());
        assert!(validate_label("TWELVE_CHARS").is_err());
        let e = validate_label("esp").unwrap_err().to_string();
        assert!(e.contains("upper case"), "{e}");
        assert!(validate_label("A.B").is_err());
    }

    #[test]
    fn volume_id_is_the_uuid_prefix() {
        let id = volume_id("s", "ESP");
        let u = seed::format_uuid(&seed::derive_uuid("s", "vfat:volume_id:ESP"));
        assert_eq!(format!("{id:08x}"), u[..8]);
        assert_ne!(id, volume_id("t", "ESP"));
        assert_eq!(format_volume_id(0x1234abcd), "1234-ABCD");
    }
}
