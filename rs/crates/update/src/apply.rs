//! Applying a verified update manifest and its package to a node's disk: the inactive slot's two
//! partitions and a new, boot-counted UKI on the ESP. See the crate documentation for the order.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use icos_node::disk::{by_name, Disk, PartRef};
use icos_node::root::HASH_SUFFIX;
use icos_verity::{root_hash_of_hash_device, RootHash, Superblock};

use crate::esp::{good_name, EntryName, Esp, PARTIAL_SUFFIX, TRIES};
use crate::manifest::{UpdateManifest, Version, MEMBERS};
use crate::package::{self, Expect, Sink};
use crate::UpdateError;

/// What the node runs, from trusted places: the root hash from the kernel command line (which
/// the UKI carries) and IMAGE_ID / IMAGE_VERSION from the running root's `/etc/os-release`
/// (dm-verity protected, and the same bytes as the UKI's `.osrel`).
#[derive(Clone, Debug)]
pub struct Running {
    pub root_hash: RootHash,
    pub image_id: String,
    pub version: String,
}

/// The IMAGE_ID and IMAGE_VERSION of an os-release file's text.
pub fn os_release_fields(text: &str, path: &Path) -> Result<(String, String), UpdateError> {
    let field = |key: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .next_back()
            .map(|v| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                UpdateError::Refused(format!(
                    "{} sets no {key}: cannot tell which version runs, so no upgrade is safe",
                    path.display()
                ))
            })
    };
    Ok((field("IMAGE_ID")?, field("IMAGE_VERSION")?))
}

/// A slot: a data partition and its hash partition.
#[derive(Clone, Debug)]
pub struct SlotPair {
    pub data: PartRef,
    pub hash: PartRef,
}

/// The running slot (its hash partition belongs to `root_hash`) and the one to write.
pub fn slots(parts: &[PartRef], root_hash: &RootHash) -> Result<(SlotPair, SlotPair), UpdateError> {
    let mut pairs = Vec::new();
    for hash in parts.iter().filter(|p| p.name.ends_with(HASH_SUFFIX)) {
        let data_name = &hash.name[..hash.name.len() - HASH_SUFFIX.len()];
        let data = by_name(parts, data_name)?;
        pairs.push(SlotPair {
            data: data.clone(),
            hash: hash.clone(),
        });
    }
    if pairs.len() != 2 {
        return Err(UpdateError::Refused(format!(
            "the disk has {} slots (partition pairs X / X{HASH_SUFFIX}), an A/B disk has 2",
            pairs.len()
        )));
    }
    let belongs = |p: &SlotPair| -> bool {
        let Ok(mut h) = p.hash.open_read() else {
            return false;
        };
        let Ok(sb) = Superblock::read_from(&mut h) else {
            return false;
        };
        sb.check_data_size(p.data.size).is_ok()
            && root_hash_of_hash_device(&mut h, &sb).is_ok_and(|r| &r == root_hash)
    };
    let (a, b) = (belongs(&pairs[0]), belongs(&pairs[1]));
    let (active, inactive) = match (a, b) {
        (true, false) => (pairs[0].clone(), pairs[1].clone()),
        (false, true) => (pairs[1].clone(), pairs[0].clone()),
        (true, true) => {
            return Err(UpdateError::Refused(format!(
                "both slots belong to the running root hash {}: nothing to overwrite safely",
                root_hash.to_hex()
            )))
        }
        (false, false) => {
            return Err(UpdateError::Refused(format!(
            "neither {} nor {} belongs to the running root hash {}: cannot tell which slot runs",
            pairs[0].data.name,
            pairs[1].data.name,
            root_hash.to_hex()
        )))
        }
    };
    Ok((active, inactive))
}

/// What an upgrade did.
#[derive(Clone, Debug)]
pub struct Applied {
    pub slot: String,
    pub hash_slot: String,
    pub entry: String,
    pub removed: Vec<String>,
}

/// The checks that come before any write: the manifest is for this image, newer than what runs,
/// and fits the inactive slot; the running entry was marked good (its fallback is not ours to
/// destroy before it proved itself). Returns the slots.
pub fn preflight(
    disk: &Disk,
    running: &Running,
    m: &UpdateManifest,
) -> Result<(SlotPair, SlotPair, PartRef), UpdateError> {
    if m.image_id != running.image_id {
        return Err(UpdateError::Refused(format!(
            "the update is for image {:?}, this node runs {:?}",
            m.image_id, running.image_id
        )));
    }
    let (new, old) = (m.version(), Version::parse(&running.version)?);
    if new == old {
        return Err(UpdateError::Refused(format!(
            "replay: version {new} is the version this node runs; an update must be newer"
        )));
    }
    if new < old {
        return Err(UpdateError::Refused(format!(
            "downgrade: version {new} is older than the running version {old}"
        )));
    }
    let parts = disk.partitions()?;
    let (active, inactive) = slots(&parts, &running.root_hash)?;
    for (member, part) in [
        ("root.img", &inactive.data),
        ("root.verity", &inactive.hash),
    ] {
        let size = m.member(member).expect("checked").size;
        if size > part.size {
            return Err(UpdateError::Refused(format!(
                "{member} is {size} bytes, more than the {} bytes of {}",
                part.size,
                part.label()
            )));
        }
    }
    let esp = by_name(&parts, "esp")?.clone();
    let entries = Esp::open(&esp, false)?.entries()?;
    let good = good_name(&running.image_id, &running.version);
    if !entries.contains(&good) {
        let counted = entries.iter().find(|e| {
            EntryName::parse(e)
                .is_some_and(|n| n.image_id == running.image_id && n.version == running.version)
        });
        return Err(UpdateError::Refused(match counted {
            Some(e) => format!(
                "the running entry {e} is still on trial: run `icos-upgrade mark-good` first (its fallback slot is {})",
                inactive.data.name
            ),
            None => format!("the ESP has no entry {good} for the running version"),
        }));
    }
    Ok((active, inactive, esp))
}

/// Applies the update: see the crate documentation. `m` must come from
/// [`crate::manifest::read_signed`]. Nothing is opened for writing before [`preflight`] passed;
/// the active slot never is.
pub fn apply(
    disk: &Disk,
    running: &Running,
    m: &UpdateManifest,
    source: Box<dyn Read + Send>,
    source_name: &str,
    stall: Duration,
) -> Result<Applied, UpdateError> {
    apply_reporting(disk, running, m, source, source_name, stall, &mut |_| {})
}

/// [`apply`], calling `writing` with the inactive slot once every check that comes before
/// writing passed, just before the first byte is written (a node's log shows when the slot
/// stopped being what it was).
pub fn apply_reporting(
    disk: &Disk,
    running: &Running,
    m: &UpdateManifest,
    source: Box<dyn Read + Send>,
    source_name: &str,
    stall: Duration,
    writing: &mut dyn FnMut(&SlotPair),
) -> Result<Applied, UpdateError> {
    let (active, inactive, esp_part) = preflight(disk, running, m)?;
    debug_assert!(inactive.data != active.data && inactive.hash != active.hash);

    // Entries of other versions boot the slot about to be overwritten (or nothing): remove them
    // first, so no entry ever points at a half-written slot.
    writing(&inactive);
    let esp = Esp::open(&esp_part, true)?;
    let mut removed = Vec::new();
    for e in esp.entries()? {
        let stale = e.ends_with(PARTIAL_SUFFIX)
            || EntryName::parse(&e)
                .is_some_and(|n| n.image_id == running.image_id && n.version != running.version);
        if stale {
            esp.remove(&e)?;
            removed.push(e);
        }
    }
    let partial = format!("{}_{}{PARTIAL_SUFFIX}", m.image_id, m.version);
    // From here on the ESP may hold the partial UKI: whatever fails, it goes again, so a failed
    // apply leaves no trace on the ESP beyond the stale entries it removed on purpose.
    let entry = match write_and_switch(
        esp,
        &esp_part,
        &inactive,
        m,
        &partial,
        source,
        source_name,
        stall,
    ) {
        Ok(entry) => entry,
        Err(e) => return Err(discard_partial(&esp_part, &partial, e)),
    };
    Ok(Applied {
        slot: inactive.data.name,
        hash_slot: inactive.hash.name,
        entry,
        removed,
    })
}

/// Streams the package into the inactive slot and `/EFI/Linux/<partial>`, checks what landed and
/// renames the UKI to its boot-counted name, which it returns. `esp` is open for writing.
#[allow(clippy::too_many_arguments)]
fn write_and_switch(
    esp: Esp,
    esp_part: &PartRef,
    inactive: &SlotPair,
    m: &UpdateManifest,
    partial: &str,
    source: Box<dyn Read + Send>,
    source_name: &str,
    stall: Duration,
) -> Result<String, UpdateError> {
    let write_err = |p: &PartRef| {
        let label = p.label();
        move |source| UpdateError::Io {
            what: format!("cannot open {label} for writing"),
            source,
        }
    };
    let mut data = inactive
        .data
        .open_write()
        .map_err(write_err(&inactive.data))?;
    let mut hash = inactive
        .hash
        .open_write()
        .map_err(write_err(&inactive.hash))?;
    {
        let mut uki = esp.create_file(partial)?;
        let mut sinks = [
            Sink {
                target: format!("{} /EFI/Linux/{partial}", esp_part.label()),
                out: &mut uki,
            },
            Sink {
                target: inactive.data.label(),
                out: &mut data,
            },
            Sink {
                target: inactive.hash.label(),
                out: &mut hash,
            },
        ];
        let expect = Expect {
            size: m.package.size,
            sha256: m.package.sha256,
            members: &m.members,
        };
        package::stream(source, source_name, Some(&expect), stall, &mut sinks)?;
        uki.flush().map_err(|source| UpdateError::Io {
            what: format!("cannot write /EFI/Linux/{partial}"),
            source,
        })?;
    }
    esp.close()?;
    for (w, p) in [(&mut data, &inactive.data), (&mut hash, &inactive.hash)] {
        w.flush()
            .and_then(|()| w.sync_and_drop_cache())
            .map_err(|source| UpdateError::Io {
                what: format!("cannot sync {}", p.label()),
                source,
            })?;
    }
    drop((data, hash));

    // What landed: the whole tree recomputed from the written data, against the signed root hash.
    let read_err = |p: &PartRef| {
        let label = p.label();
        move |source| UpdateError::Io {
            what: format!("cannot read back {label}"),
            source,
        }
    };
    let data = inactive
        .data
        .open_read()
        .map_err(read_err(&inactive.data))?;
    let hash = inactive
        .hash
        .open_read()
        .map_err(read_err(&inactive.hash))?;
    icos_verity::verify(data, hash, &m.root_hash()).map_err(|source| UpdateError::Verity {
        slot: format!("{} + {}", inactive.data.label(), inactive.hash.name),
        source,
    })?;

    let esp = Esp::open(esp_part, true)?;
    let signed = m.member(MEMBERS[0]).expect("checked");
    let (sha, size) = esp.hash_file(partial)?;
    if sha != signed.sha256 || size != signed.size {
        return Err(UpdateError::ReadBack {
            what: format!("{} /EFI/Linux/{partial}", esp_part.label()),
            found: format!("{size} bytes, {sha}"),
            signed: format!("{} bytes, {}", signed.size, signed.sha256),
        });
    }
    // The switch: the entry appears under a name systemd-boot lists, with tries left.
    let entry = format!("{}_{}+{TRIES}.efi", m.image_id, m.version);
    esp.rename(partial, &entry)?;
    esp.close()?;
    Ok(entry)
}

/// After a failed write: removes `/EFI/Linux/<partial>` if it is there, and returns `error`
/// (naming the leftover too when it could not be removed).
fn discard_partial(esp_part: &PartRef, partial: &str, error: UpdateError) -> UpdateError {
    let removed = Esp::open(esp_part, true).and_then(|esp| {
        if esp.entries()?.iter().any(|e| e == partial) {
            esp.remove(partial)?;
        }
        esp.close()
    });
    match removed {
        Ok(()) => error,
        Err(cleanup) => UpdateError::Leftover {
            error: Box::new(error),
            partial: format!("{} /{}/{partial}", esp_part.label(), crate::esp::LINUX_DIR),
            cleanup,
        },
    }
}

/// What `mark-good` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marked {
    /// The running entry was on trial and is now good: (old name, new name).
    Renamed(String, String),
    /// It was good already.
    AlreadyGood(String),
}

/// Marks the running version's entry good: `<id>_<version>+L-D.efi` → `<id>_<version>.efi`.
/// Checks first that the running root hash belongs to a slot of this disk.
pub fn mark_good(disk: &Disk, running: &Running) -> Result<Marked, UpdateError> {
    let parts = disk.partitions()?;
    slots(&parts, &running.root_hash)?;
    let esp_part = by_name(&parts, "esp")?;
    let esp = Esp::open(esp_part, true)?;
    let good = good_name(&running.image_id, &running.version);
    let entries = esp.entries()?;
    let counted: Vec<&String> = entries
        .iter()
        .filter(|e| {
            EntryName::parse(e).is_some_and(|n| {
                n.image_id == running.image_id
                    && n.version == running.version
                    && n.counter.is_some()
            })
        })
        .collect();
    let out = match (counted.as_slice(), entries.contains(&good)) {
        ([], true) => Marked::AlreadyGood(good),
        ([one], false) => {
            esp.rename(one, &good)?;
            Marked::Renamed(one.to_string(), good)
        }
        ([], false) => {
            return Err(UpdateError::Refused(format!(
                "the ESP has no entry for the running version {} ({good} or a counted one)",
                running.version
            )))
        }
        _ => {
            return Err(UpdateError::Refused(format!(
                "the ESP has several entries for the running version {}: {}",
                running.version,
                entries.join(", ")
            )))
        }
    };
    esp.close()?;
    Ok(out)
}
