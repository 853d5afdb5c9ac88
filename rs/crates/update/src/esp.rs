//! The boot selection: UKIs in the ESP's `/EFI/Linux`, written through the `fatfs` crate straight
//! onto the ESP partition (the node never mounts it, and the initramfs has no vfat driver).
//!
//! systemd-boot (252) lists every `/EFI/Linux/*.efi` as a Type #2 entry and boots the first in its
//! order: entries with no tries left last, then by the `.osrel`'s IMAGE_ID and IMAGE_VERSION,
//! newest first. A new UKI is named `<image_id>_<version>+3.efi`: it sorts first (its version is
//! the greatest, enforced before writing), and systemd-boot renames it `+2-1`, `+1-2`, `+0-3` on
//! each attempt. If the new slot never reaches `mark-good`, the entry runs out of tries, sorts
//! last, and the old UKI (whose slot was never opened for writing) boots again by itself.
//! `mark-good` renames the running entry to `<image_id>_<version>.efi`: no counter, good for good.

use std::io::{self, Read};

use fatfs::{Date, DateTime, FileSystem, FsOptions, Time, TimeProvider};
use icos_common::Digest;
use icos_node::disk::{PartRef, Window};
use sha2::{Digest as _, Sha256};

/// Where systemd-boot looks for Type #2 entries.
pub const LINUX_DIR: &str = "EFI/Linux";
/// Tries a new entry gets before systemd-boot falls back to the previous one.
pub const TRIES: u32 = 3;
/// The suffix of a UKI while it is written and checked (not `.efi`: systemd-boot ignores it).
pub const PARTIAL_SUFFIX: &str = ".efi.partial";

#[derive(Debug, thiserror::Error)]
#[error("ESP {esp}: {what}: {source}")]
pub struct EspError {
    pub esp: String,
    pub what: String,
    pub source: io::Error,
}

/// An entry file name taken apart: `icos_2+1-2.efi` → ("icos", "2", Some((1, 2))).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryName {
    pub image_id: String,
    pub version: String,
    /// (tries left, tries done), when the entry is still being counted.
    pub counter: Option<(u32, u32)>,
}

impl EntryName {
    pub fn parse(file: &str) -> Option<EntryName> {
        let stem = file
            .strip_suffix(".efi")
            .or_else(|| file.strip_suffix(".EFI"))?;
        let (base, counter) = match stem.rsplit_once('+') {
            Some((base, c)) => {
                let (left, done) = match c.split_once('-') {
                    Some((l, d)) => (l.parse().ok()?, d.parse().ok()?),
                    None => (c.parse().ok()?, 0),
                };
                (base, Some((left, done)))
            }
            None => (stem, None),
        };
        let (image_id, version) = base.rsplit_once('_')?;
        Some(EntryName {
            image_id: image_id.into(),
            version: version.into(),
            counter,
        })
    }
}

/// The plain name of a good entry.
pub fn good_name(image_id: &str, version: &str) -> String {
    format!("{image_id}_{version}.efi")
}

/// Timestamps of what we create on the ESP: 1980-01-01 00:00:00, FAT's first valid instant.
/// fatfs without its clock feature would write date 0 (month 0, day 0), which EDK2's FAT driver
/// rejects on SetInfo: systemd-boot then fails to rename the entry ("Invalid Parameter") and boot
/// counting stops (seen under OVMF). No clock: the node's may be wrong, and nothing reads it.
#[derive(Debug)]
struct FatEpoch;

impl TimeProvider for FatEpoch {
    fn get_current_date(&self) -> Date {
        Date {
            year: 1980,
            month: 1,
            day: 1,
        }
    }
    fn get_current_date_time(&self) -> DateTime {
        DateTime {
            date: self.get_current_date(),
            time: Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

static FAT_EPOCH: FatEpoch = FatEpoch;

/// The ESP, opened through fatfs on its partition.
pub struct Esp {
    label: String,
    fs: FileSystem<Window>,
}

impl Esp {
    pub fn open(part: &PartRef, write: bool) -> Result<Esp, EspError> {
        let label = part.label();
        let err = |what: &str| {
            let label = label.clone();
            let what = what.to_string();
            move |source| EspError {
                esp: label,
                what,
                source,
            }
        };
        let window = if write {
            part.open_write()
        } else {
            part.open_read()
        }
        .map_err(err("cannot open the partition"))?;
        let fs = FileSystem::new(window, FsOptions::new().time_provider(&FAT_EPOCH))
            .map_err(err("not a FAT file system fatfs can read"))?;
        Ok(Esp { label, fs })
    }

    fn err(&self, what: String) -> impl FnOnce(io::Error) -> EspError + '_ {
        move |source| EspError {
            esp: self.label.clone(),
            what,
            source,
        }
    }

    /// The file names in `/EFI/Linux`, sorted.
    pub fn entries(&self) -> Result<Vec<String>, EspError> {
        let dir = self
            .fs
            .root_dir()
            .open_dir(LINUX_DIR)
            .map_err(self.err(format!("cannot open /{LINUX_DIR}")))?;
        let mut names = Vec::new();
        for e in dir.iter() {
            let e = e.map_err(self.err(format!("cannot list /{LINUX_DIR}")))?;
            if e.is_file() {
                names.push(e.file_name());
            }
        }
        names.sort();
        Ok(names)
    }

    /// (created, modified) dates of `/EFI/Linux/<name>` as (year, month, day).
    pub fn dates(&self, name: &str) -> Result<[(u16, u16, u16); 2], EspError> {
        let dir = self
            .fs
            .root_dir()
            .open_dir(LINUX_DIR)
            .map_err(self.err(format!("cannot open /{LINUX_DIR}")))?;
        for e in dir.iter() {
            let e = e.map_err(self.err(format!("cannot list /{LINUX_DIR}")))?;
            if e.file_name() == name {
                let d = |t: DateTime| (t.date.year, t.date.month, t.date.day);
                return Ok([d(e.created()), d(e.modified())]);
            }
        }
        Err(self.err(format!("no /{LINUX_DIR}/{name}"))(
            io::ErrorKind::NotFound.into(),
        ))
    }

    pub fn remove(&self, name: &str) -> Result<(), EspError> {
        self.fs
            .root_dir()
            .remove(&format!("{LINUX_DIR}/{name}"))
            .map_err(self.err(format!("cannot remove /{LINUX_DIR}/{name}")))
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<(), EspError> {
        let dir = self
            .fs
            .root_dir()
            .open_dir(LINUX_DIR)
            .map_err(self.err(format!("cannot open /{LINUX_DIR}")))?;
        dir.rename(from, &dir, to)
            .map_err(self.err(format!("cannot rename /{LINUX_DIR}/{from} to {to}")))
    }

    /// Creates (or empties) `/EFI/Linux/<name>` for writing.
    pub fn create_file(&self, name: &str) -> Result<fatfs::File<'_, Window>, EspError> {
        let path = format!("{LINUX_DIR}/{name}");
        let mut f = self
            .fs
            .root_dir()
            .create_file(&path)
            .map_err(self.err(format!("cannot create /{path}")))?;
        f.truncate()
            .map_err(self.err(format!("cannot empty /{path}")))?;
        Ok(f)
    }

    /// sha256 and size of `/EFI/Linux/<name>` as read back.
    pub fn hash_file(&self, name: &str) -> Result<(Digest, u64), EspError> {
        let path = format!("{LINUX_DIR}/{name}");
        let mut f = self
            .fs
            .root_dir()
            .open_file(&path)
            .map_err(self.err(format!("cannot open /{path}")))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let k = f
                .read(&mut buf)
                .map_err(self.err(format!("cannot read /{path}")))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            n += k as u64;
        }
        Ok((Digest::from_bytes(h.finalize().into()), n))
    }

    /// Writes every change to the partition and syncs it.
    pub fn close(self) -> Result<(), EspError> {
        let label = self.label.clone();
        self.fs.unmount().map_err(|source| EspError {
            esp: label,
            what: "cannot write the file system back".into(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        let p = |s| EntryName::parse(s);
        assert_eq!(
            p("icos_2+1-2.efi"),
            Some(EntryName {
                image_id: "icos".into(),
                version: "2".into(),
                counter: Some((1, 2))
            })
        );
        assert_eq!(p("icos_2+3.efi").unwrap().counter, Some((3, 0)));
        assert_eq!(p("my_os_1.10.efi").unwrap().image_id, "my_os");
        assert_eq!(p("icos_1.efi").unwrap().counter, None);
        assert_eq!(p("icos_1.efi.partial"), None);
        assert_eq!(p("icos_2+x.efi"), None);
    }
}
