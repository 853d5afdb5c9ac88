//! `rootfs.manifest.json` (schema `icos.rootfs-manifest/v1`, see ARCHITECTURE.md).

use std::collections::BTreeMap;

use icos_common::Digest;
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "icos.rootfs-manifest/v1";
pub const TOOL_NAME: &str = "icos-rootfs";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub tool: ToolInfo,
    pub source_date_epoch: u64,
    pub inputs: Inputs,
    pub output: OutputInfo,
    /// In tar order.
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// Absent when the rootfs is built from the spec alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseInput>,
    /// Absent without `--spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<SpecInput>,
    /// Source files injected by `[[file]] source = …`, sorted by path, each once.
    #[serde(default)]
    pub files: Vec<FileInput>,
    /// `[[layer]]` tars in the order they were applied.
    #[serde(default)]
    pub extra_layers: Vec<FileInput>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseInput {
    pub reference: String,
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<BaseLayer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseLayer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecInput {
    pub path: String,
    pub sha256: Digest,
}

/// An input file named in the spec: `path` as written there, digest and size of its bytes on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInput {
    pub path: String,
    pub sha256: Digest,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputInfo {
    pub sha256: Digest,
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    Dir,
    File,
    Hardlink,
    Symlink,
    Char,
    Block,
    Fifo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Absolute; `/` is the root directory.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Four octal digits, setuid/setgid/sticky included.
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Digest>,
    /// Hardlink: the absolute path it links to; symlink: the link text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<u32>,
    /// Attribute name → lowercase hex value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
}

/// Serializes exactly as [`Manifest`] does (same fields, same order), with `entries` any sequence:
/// the builder streams them from its tree instead of collecting a million of them first.
#[derive(Serialize)]
pub(crate) struct ManifestOut<'a, E: Serialize> {
    pub schema: &'a str,
    pub tool: &'a ToolInfo,
    pub source_date_epoch: u64,
    pub inputs: &'a Inputs,
    pub output: &'a OutputInfo,
    pub entries: E,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_form_serializes_like_the_manifest() {
        let entry = Entry {
            path: "/etc/x".into(),
            kind: EntryType::File,
            mode: "0644".into(),
            uid: 1,
            gid: 2,
            mtime: 3,
            size: Some(4),
            sha256: Some(Digest::of(b"x")),
            target: None,
            major: None,
            minor: None,
            xattrs: [("user.a".to_string(), "00".to_string())].into(),
        };
        let manifest = Manifest {
            schema: SCHEMA.into(),
            tool: ToolInfo {
                name: TOOL_NAME.into(),
                version: "1".into(),
            },
            source_date_epoch: 5,
            inputs: Inputs::default(),
            output: OutputInfo {
                sha256: Digest::of(b"tar"),
                size: 6,
            },
            entries: vec![entry.clone(), entry],
        };
        let streamed = ManifestOut {
            schema: &manifest.schema,
            tool: &manifest.tool,
            source_date_epoch: manifest.source_date_epoch,
            inputs: &manifest.inputs,
            output: &manifest.output,
            entries: &manifest.entries[..],
        };
        assert_eq!(
            serde_json::to_string_pretty(&streamed).unwrap(),
            serde_json::to_string_pretty(&manifest).unwrap()
        );
    }
}
