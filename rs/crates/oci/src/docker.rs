//! `docker save` archives: the legacy format (manifest.json, `<id>/layer.tar`, `<config>.json`) and
//! Docker ≥ 25's, which carries an OCI layout (index.json, blobs/sha256) beside manifest.json.
//! The pinned digest is the image ID (config digest), or a manifest/index digest when the archive
//! carries a layout.

use std::collections::BTreeMap;

use icos_common::Digest;

use crate::archive::{check_member_name, TarIndex};
use crate::error::OciError;
use crate::image::{
    build_image, classify, parse_descriptor, resolve_document, DocKind, Image, OpenOptions,
};
use crate::json::{ConfigDoc, DockerSaveEntry, IndexDoc, OutDescriptor, OutManifest, Probe};
use crate::media::{self, is_index, is_manifest};
use crate::reference::BaseRef;
use crate::source::{read_document, BlobKind, BlobSource, LayoutSource, Storage};

pub(crate) fn open(base: &BaseRef, tar: TarIndex, opts: &OpenOptions) -> Result<Image, OciError> {
    let label = base.to_string();
    let digest = base.digest();
    let mut storage = Storage::Tar(tar);
    let has_layout = storage.exists("oci-layout") && storage.exists("index.json");
    if has_layout {
        let source = LayoutSource {
            reference: label.clone(),
            storage,
            aliases: BTreeMap::new(),
        };
        if source.stored_size(&digest, "blob").is_ok() {
            let (bytes, _) = read_document(
                &source,
                &digest,
                BlobKind::Manifest,
                None,
                "image ID or manifest",
            )?;
            let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| {
                OciError::blob(
                    &label,
                    "image ID or manifest",
                    digest,
                    format!("is not a JSON object: {e}"),
                )
            })?;
            let is_config =
                probe.rootfs.is_some() && probe.layers.is_none() && probe.manifests.is_none();
            if !is_config {
                return resolve_document(base, Box::new(source), digest, bytes, None, opts);
            }
            if let Some((m_digest, m_bytes, m_type)) =
                find_manifest_for_config(&source, &label, &digest)?
            {
                return build_image(
                    base,
                    Box::new(source),
                    None,
                    m_digest,
                    m_bytes,
                    m_type,
                    None,
                );
            }
        }
        storage = source.storage;
    }
    open_legacy(base, storage, has_layout)
}

/// The manifest (listed in index.json, directly or through one index) whose config is `config`.
fn find_manifest_for_config(
    source: &LayoutSource,
    label: &str,
    config: &Digest,
) -> Result<Option<(Digest, Vec<u8>, String)>, OciError> {
    let index_bytes = source
        .storage
        .read_small("index.json")
        .map_err(|p| OciError::image(label, p))?;
    let index: IndexDoc = serde_json::from_slice(&index_bytes).map_err(|e| {
        OciError::image(label, format!("index.json is not a valid image index: {e}"))
    })?;
    let mut candidates = Vec::new();
    for d in &index.manifests {
        let (digest, size, media_type) = parse_descriptor(label, "index.json entry", d)?;
        if is_index(&media_type) {
            let (bytes, _) =
                read_document(source, &digest, BlobKind::Manifest, Some(size), "index")?;
            let nested: IndexDoc = serde_json::from_slice(&bytes).map_err(|e| {
                OciError::blob(
                    label,
                    "index",
                    digest,
                    format!("is not a valid image index: {e}"),
                )
            })?;
            for n in &nested.manifests {
                candidates.push(parse_descriptor(label, "index entry", n)?);
            }
        } else {
            candidates.push((digest, size, media_type));
        }
    }
    for (digest, size, media_type) in candidates {
        if !is_manifest(&media_type) || !source.storage.exists(&source.blob_name(&digest)) {
            continue;
        }
        let (bytes, _) =
            read_document(source, &digest, BlobKind::Manifest, Some(size), "manifest")?;
        if let DocKind::Manifest(mt) =
            classify(label, "manifest", &digest, &bytes, Some(&media_type))?
        {
            #[derive(serde::Deserialize)]
            struct ConfigOnly {
                config: crate::json::Descriptor,
            }
            let names_config = serde_json::from_slice::<ConfigOnly>(&bytes)
                .ok()
                .is_some_and(|m| m.config.digest == config.to_string());
            if names_config {
                return Ok(Some((digest, bytes, mt)));
            }
        }
    }
    Ok(None)
}

fn open_legacy(base: &BaseRef, storage: Storage, has_layout: bool) -> Result<Image, OciError> {
    let label = base.to_string();
    let digest = base.digest();
    if !storage.exists("manifest.json") {
        return Err(OciError::image(
            &label,
            "is neither a docker save archive (no manifest.json) nor an OCI layout (no index.json and oci-layout)",
        ));
    }
    let bad = |p: String| OciError::image(&label, p);
    let manifest_bytes = storage.read_small("manifest.json").map_err(bad)?;
    let entries: Vec<DockerSaveEntry> = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| bad(format!("manifest.json is not a docker save manifest: {e}")))?;

    let mut seen = Vec::new();
    let mut chosen = None;
    for entry in entries {
        check_member_name(&entry.config).map_err(|p| bad(format!("manifest.json: Config {p}")))?;
        let config_bytes = storage
            .read_small(&entry.config)
            .map_err(|p| bad(format!("manifest.json: Config: {p}")))?;
        let id = Digest::of(&config_bytes);
        let tags = entry.repo_tags.clone().unwrap_or_default().join(", ");
        seen.push(if tags.is_empty() {
            id.to_string()
        } else {
            format!("{id} ({tags})")
        });
        if id == digest && chosen.is_none() {
            chosen = Some((entry, config_bytes));
        }
    }
    let Some((entry, config_json)) = chosen else {
        let also = if has_layout {
            " or the manifest digests in its index.json"
        } else {
            ""
        };
        return Err(bad(format!(
            "has no image with ID {digest}; pin one of the image IDs it holds{also}: {}",
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join("; ")
            }
        )));
    };
    let config: ConfigDoc = serde_json::from_slice(&config_json).map_err(|e| {
        OciError::blob(
            &label,
            "config",
            digest,
            format!("is not a valid image config: {e}"),
        )
    })?;
    let diff_ids = config.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    if diff_ids.len() != entry.layers.len() {
        return Err(OciError::blob(
            &label,
            "config",
            digest,
            format!(
                "lists {} rootfs.diff_ids, but manifest.json lists {} layers",
                diff_ids.len(),
                entry.layers.len()
            ),
        ));
    }

    // The layers are the uncompressed tars whose digests are the diff_ids: describe them with an
    // OCI manifest of our own (deterministic bytes), so the rest of the pipeline sees one shape.
    let mut aliases = BTreeMap::new();
    aliases.insert(digest, entry.config.clone());
    let mut layers = Vec::new();
    let mut names = Vec::new();
    for (i, (member, diff_id)) in entry.layers.iter().zip(&diff_ids).enumerate() {
        let what = format!("layer {i} (rootfs.diff_ids[{i}], member {member})");
        check_member_name(member).map_err(|p| bad(format!("manifest.json: Layers[{i}] {p}")))?;
        let layer_digest: Digest = diff_id.parse().map_err(|e| {
            OciError::blob(
                &label,
                "config",
                digest,
                format!("rootfs.diff_ids[{i}]: {e}"),
            )
        })?;
        let size = match storage.size(member) {
            Ok(Some(size)) => size,
            Ok(None) => {
                return Err(bad(format!(
                    "manifest.json: Layers[{i}] names {member:?}, which the archive lacks"
                )))
            }
            Err(p) => return Err(bad(format!("manifest.json: Layers[{i}]: {p}"))),
        };
        // The same diff_id twice: either member will do, both are verified against it.
        aliases
            .entry(layer_digest)
            .or_insert_with(|| member.clone());
        names.push(what);
        layers.push(OutLayer {
            digest: layer_digest,
            size,
        });
    }
    let manifest = OutManifest {
        schema_version: 2,
        media_type: media::OCI_MANIFEST,
        config: OutDescriptor {
            media_type: media::OCI_CONFIG,
            digest: digest.to_string(),
            size: config_json.len() as u64,
        },
        layers: layers
            .iter()
            .map(|l| OutDescriptor {
                media_type: media::OCI_LAYER_TAR,
                digest: l.digest.to_string(),
                size: l.size,
            })
            .collect(),
    };
    let manifest_json =
        serde_json::to_vec(&manifest).expect("serializing plain structs cannot fail");
    let manifest_digest = Digest::of(&manifest_json);
    let source = LayoutSource {
        reference: label,
        storage,
        aliases,
    };
    build_image(
        base,
        Box::new(source),
        None,
        manifest_digest,
        manifest_json,
        media::OCI_MANIFEST.to_string(),
        Some(names),
    )
}

struct OutLayer {
    digest: Digest,
    size: u64,
}
