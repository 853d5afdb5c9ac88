//! The JSON documents of the OCI image spec (and Docker's equivalents), only the fields we use.
//! Unknown fields are ignored; documents are kept verbatim as bytes, these structs only read them.

use serde::{Deserialize, Serialize};

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
    #[serde(default)]
    pub urls: Option<Vec<String>>,
}

#[derive(Deserialize, Debug, Clone)]
pub(crate) struct PlatformJson {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl PlatformJson {
    pub fn display(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{}", self.os, self.architecture, v),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// Just enough to tell an index from a manifest from a config.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Probe {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub layers: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub rootfs: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexDoc {
    pub schema_version: u32,
    pub manifests: Vec<Descriptor>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestDoc {
    pub schema_version: u32,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Deserialize, Debug)]
pub(crate) struct ConfigDoc {
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

#[derive(Deserialize, Debug)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One image of Docker's `manifest.json` in a `docker save` archive.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerSaveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// `oci-layout` marker file.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayoutMarker {
    pub image_layout_version: String,
}

// Documents we write. Field order is the serialization order, so output bytes are fixed.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutDescriptor<'a> {
    pub media_type: &'a str,
    pub digest: String,
    pub size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutIndex<'a> {
    pub schema_version: u32,
    pub media_type: &'a str,
    pub manifests: Vec<OutDescriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutManifest<'a> {
    pub schema_version: u32,
    pub media_type: &'a str,
    pub config: OutDescriptor<'a>,
    pub layers: Vec<OutDescriptor<'a>>,
}
