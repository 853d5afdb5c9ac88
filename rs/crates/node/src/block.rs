//! Block devices and partitions as the kernel lists them in sysfs (`/sys/class/block/*/uevent`),
//! for an initramfs or a node without udev: the partition named `root_a` is found by its GPT name.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A partition of a disk, by its GPT name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The GPT partition name (PARTNAME).
    pub name: String,
    /// The kernel's device name, e.g. `vda3`.
    pub devname: String,
    /// The device node, e.g. `/dev/vda3`.
    pub node: PathBuf,
    /// The partition number on its disk.
    pub number: u32,
    pub major: u32,
    pub minor: u32,
    /// Size in bytes.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("cannot list block devices in {dir}: {source}")]
    List { dir: PathBuf, source: io::Error },
    #[error("{path}: {problem}")]
    Uevent { path: PathBuf, problem: String },
    #[error("no partition named {name:?} (partitions: {known})")]
    NotFound { name: String, known: String },
    #[error("two partitions are named {name:?} ({a} and {b}): partition names must be unique")]
    Duplicate { name: String, a: String, b: String },
}

/// Every partition the kernel knows, sorted by device name. `sys_block` is `/sys/class/block`,
/// `dev` is `/dev` (parameters so tests can use a fake tree). Entries without a PARTNAME are skipped.
pub fn partitions(sys_block: &Path, dev: &Path) -> Result<Vec<Partition>, BlockError> {
    let list_err = |source| BlockError::List {
        dir: sys_block.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(sys_block).map_err(list_err)? {
        let dir = entry.map_err(list_err)?.path();
        let uevent = dir.join("uevent");
        let Ok(text) = fs::read_to_string(&uevent) else {
            continue;
        };
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        };
        if field("DEVTYPE") != Some("partition") {
            continue;
        }
        let Some(name) = field("PARTNAME") else {
            continue;
        };
        let bad = |problem: &str| BlockError::Uevent {
            path: uevent.clone(),
            problem: problem.to_string(),
        };
        let number = |key: &str| -> Result<u32, BlockError> {
            field(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(&format!("no numeric {key}")))
        };
        let devname = field("DEVNAME").ok_or_else(|| bad("no DEVNAME"))?;
        if devname.is_empty() || devname.contains(['/', '\0']) || devname.starts_with('.') {
            return Err(bad("DEVNAME is not a plain device name"));
        }
        let sectors: u64 = fs::read_to_string(dir.join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad("no readable size next to it"))?;
        out.push(Partition {
            name: name.to_string(),
            devname: devname.to_string(),
            node: dev.join(devname),
            number: number("PARTN")?,
            major: number("MAJOR")?,
            minor: number("MINOR")?,
            size: sectors
                .checked_mul(512)
                .ok_or_else(|| bad("size overflows"))?,
        });
    }
    out.sort_by(|a, b| a.devname.cmp(&b.devname));
    Ok(out)
}

/// What `by_name` needs of a partition, whether the kernel's ([`Partition`]) or an image file's
/// ([`crate::disk::PartRef`]): its GPT name, and how an error names it.
pub trait Named {
    fn name(&self) -> &str;
    fn label(&self) -> String;
}

impl Named for Partition {
    fn name(&self) -> &str {
        &self.name
    }
    fn label(&self) -> String {
        self.devname.clone()
    }
}

/// The one partition named `name`.
pub fn by_name<'a, P: Named>(parts: &'a [P], name: &str) -> Result<&'a P, BlockError> {
    let mut found = parts.iter().filter(|p| p.name() == name);
    let first = found.next().ok_or_else(|| BlockError::NotFound {
        name: name.to_string(),
        known: parts
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    if let Some(second) = found.next() {
        return Err(BlockError::Duplicate {
            name: name.to_string(),
            a: first.label(),
            b: second.label(),
        });
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, dev: &str, uevent: &str, sectors: u64) {
        let d = dir.join(dev);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("uevent"), uevent).unwrap();
        fs::write(d.join("size"), format!("{sectors}\n")).unwrap();
    }

    #[test]
    fn lists_named_partitions_and_skips_disks() {
        let t = tempfile::tempdir().unwrap();
        fake(
            t.path(),
            "vda",
            "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
            100,
        );
        fake(
            t.path(),
            "vda2",
            "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=root_a\n",
            2048,
        );
        let parts = partitions(t.path(), Path::new("/dev")).unwrap();
        assert_eq!(parts.len(), 1);
        let p = by_name(&parts, "root_a").unwrap();
        assert_eq!(
            (p.node.as_path(), p.size, p.number),
            (Path::new("/dev/vda2"), 1 << 20, 2)
        );
        assert!(matches!(
            by_name(&parts, "root_b"),
            Err(BlockError::NotFound { .. })
        ));
    }

    #[test]
    fn a_devname_that_leaves_dev_is_refused() {
        let t = tempfile::tempdir().unwrap();
        fake(
            t.path(),
            "x",
            "MAJOR=1\nMINOR=1\nDEVNAME=../etc/passwd\nDEVTYPE=partition\nPARTN=1\nPARTNAME=root\n",
            8,
        );
        assert!(matches!(
            partitions(t.path(), Path::new("/dev")),
            Err(BlockError::Uevent { .. })
        ));
    }
}
