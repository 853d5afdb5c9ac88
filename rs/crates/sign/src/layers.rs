//! Which layer of a base image added or removed each Debian package: dpkg's status database as
//! every layer leaves it, compared with the one before.
//!
//! The first layer that carries `/var/lib/dpkg/status` is the starting point (an imported root, a
//! distribution's base); every later layer that rewrites the database is compared with the state
//! before it. A package whose version changed counts as removed (old) and added (new). The layer's
//! `created_by` comes from the config's history, whose non-empty entries map to layers in order.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;

use icos_common::tarread::TarReader;
use icos_common::Digest;
use icos_oci::{BaseRef, Image, OpenOptions, Platform};

use crate::sbom::{parse_dpkg_status, DebPackage, SbomError};

const STATUS: &str = "var/lib/dpkg/status";
const STATUS_MAX: u64 = 256 << 20;

/// The packages one layer added and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerChange {
    /// The layer's position in the manifest (0 = the lowest).
    pub index: usize,
    /// The layer's blob digest as the manifest names it.
    pub digest: Digest,
    /// The history entry's `created_by` (empty when the config has no history for it).
    pub created_by: String,
    pub added: Vec<DebPackage>,
    pub removed: Vec<DebPackage>,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    history: Vec<History>,
}

#[derive(Deserialize)]
struct History {
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    empty_layer: bool,
}

fn bad(base: &str, reason: String) -> SbomError {
    SbomError::BadBase {
        base: base.into(),
        reason,
    }
}

/// dpkg's database as a layer leaves it: `Some(Some(text))` rewritten, `Some(None)` deleted (a
/// whiteout of the file, its directory or an opaque marker), `None` untouched.
fn layer_status(
    image: &Image,
    index: usize,
    base: &str,
) -> Result<Option<Option<String>>, SbomError> {
    let layer = image
        .open_layer(index)
        .map_err(|e| bad(base, format!("layer {index}: {e}")))?;
    let mut archive = TarReader::new(layer);
    let mut found = None;
    while let Some(entry) = archive
        .next_entry()
        .map_err(|e| bad(base, format!("layer {index}: {e}")))?
    {
        let name = String::from_utf8_lossy(&entry.path);
        let name = name
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/');
        let deleted = [
            "var/.wh.lib",
            "var/lib/.wh.dpkg",
            "var/lib/dpkg/.wh.status",
            "var/lib/dpkg/.wh..wh..opq",
        ];
        if deleted.contains(&name) || name == ".wh.var" {
            found = Some(None);
        } else if name == STATUS && tar::EntryType::new(entry.typeflag).is_file() {
            if entry.size > STATUS_MAX {
                return Err(bad(
                    base,
                    format!(
                        "layer {index}: /{STATUS} is {} bytes, more than {STATUS_MAX}",
                        entry.size
                    ),
                ));
            }
            let mut text = String::new();
            archive
                .data()
                .read_to_string(&mut text)
                .map_err(|e| bad(base, format!("layer {index}: /{STATUS}: {e}")))?;
            found = Some(Some(text));
        }
    }
    // Read to the end: the layer's digest is checked only then.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
        .map_err(|e| bad(base, format!("layer {index}: {e}")))?;
    Ok(found)
}

type Installed = BTreeMap<(String, String), DebPackage>;

fn installed(text: Option<&str>, base: &str, index: usize) -> Result<Installed, SbomError> {
    let packages = match text {
        None => Vec::new(),
        Some(t) => {
            parse_dpkg_status(t).map_err(|r| bad(base, format!("layer {index}: /{STATUS}: {r}")))?
        }
    };
    Ok(packages
        .into_iter()
        .map(|p| ((p.name.clone(), p.architecture.clone()), p))
        .collect())
}

/// Every layer after the first one carrying dpkg's database that changed the installed packages.
pub fn dpkg_layer_changes(base: &str, platform: &str) -> Result<Vec<LayerChange>, SbomError> {
    let reference: BaseRef = base.parse().map_err(|e| bad(base, format!("{e}")))?;
    let platform: Platform = platform.parse().map_err(|e| bad(base, format!("{e}")))?;
    let image = Image::open(
        &reference,
        &OpenOptions {
            platform,
            store: None,
        },
    )
    .map_err(|e| bad(base, e.to_string()))?;
    let config: Config = serde_json::from_slice(image.config_json())
        .map_err(|e| bad(base, format!("config: {e}")))?;
    let created_by: Vec<String> = config
        .history
        .into_iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by)
        .collect();
    let layers = image.layers().to_vec();
    let mut state: Option<Installed> = None;
    let mut changes = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let Some(status) = layer_status(&image, index, base)? else {
            continue;
        };
        let now = installed(status.as_deref(), base, index)?;
        if let Some(before) = &state {
            let added: Vec<DebPackage> = now
                .iter()
                .filter(|(k, p)| {
                    before
                        .get(*k)
                        .map(|b| b.version != p.version)
                        .unwrap_or(true)
                })
                .map(|(_, p)| p.clone())
                .collect();
            let removed: Vec<DebPackage> = before
                .iter()
                .filter(|(k, p)| now.get(*k).map(|n| n.version != p.version).unwrap_or(true))
                .map(|(_, p)| p.clone())
                .collect();
            if !added.is_empty() || !removed.is_empty() {
                changes.push(LayerChange {
                    index,
                    digest: layer.digest,
                    created_by: created_by.get(index).cloned().unwrap_or_default(),
                    added,
                    removed,
                });
            }
        }
        state = Some(now);
    }
    Ok(changes)
}
