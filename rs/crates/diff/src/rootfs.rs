//! Comparison of two rootfs manifests (schema `icos.rootfs-manifest/v1`, see ARCHITECTURE.md).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::DiffError;

/// One entry of a rootfs manifest. Unknown fields are ignored, absent ones are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ManifestEntry {
    pub path: String,
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub uid: Option<u64>,
    #[serde(default)]
    pub gid: Option<u64>,
    #[serde(default)]
    pub mtime: Option<i64>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub xattrs: BTreeMap<String, String>,
    #[serde(default)]
    pub major: Option<u64>,
    #[serde(default)]
    pub minor: Option<u64>,
}

/// A rootfs manifest: the entries by path, and every other top-level field as JSON.
#[derive(Debug, Default)]
pub struct RootfsManifest {
    pub entries: BTreeMap<String, ManifestEntry>,
    /// Top-level fields other than `entries` (schema, tool, inputs, output, …).
    pub other: Value,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    entries: Vec<ManifestEntry>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

/// Reads a rootfs manifest; a path listed twice is an error.
pub fn read_rootfs_manifest(path: &Path) -> Result<RootfsManifest, DiffError> {
    let f = File::open(path).map_err(|e| DiffError::read(path, e))?;
    let raw: Raw = serde_json::from_reader(BufReader::new(f)).map_err(|e| DiffError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut entries = BTreeMap::new();
    for e in raw.entries {
        let p = e.path.clone();
        if entries.insert(p.clone(), e).is_some() {
            return Err(DiffError::malformed(
                path,
                format!("entry {p:?} is listed twice"),
            ));
        }
    }
    Ok(RootfsManifest {
        entries,
        other: Value::Object(raw.other),
    })
}

/// Which side a path or artifact is present on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    A,
    B,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::A => "A",
            Side::B => "B",
        })
    }
}

/// A difference about one path.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryDiff {
    OnlyIn {
        path: String,
        side: Side,
    },
    /// `attribute` is one of `type`, `content`, `size`, `mode`, `uid`, `gid`, `mtime`, `target`,
    /// `xattr NAME`, `major`, `minor`.
    Attribute {
        path: String,
        attribute: String,
        a: Option<Value>,
        b: Option<Value>,
    },
}

fn opt<T: Into<Value> + Clone>(v: &Option<T>) -> Option<Value> {
    v.clone().map(Into::into)
}

/// The differences between two sets of entries: paths sorted bytewise, and for each path the
/// attributes in the order type, content, size, mode, uid, gid, mtime, target, xattrs (by name),
/// major, minor.
pub fn diff_entries(
    a: &BTreeMap<String, ManifestEntry>,
    b: &BTreeMap<String, ManifestEntry>,
) -> Vec<EntryDiff> {
    let mut out = Vec::new();
    let mut ia = a.iter().peekable();
    let mut ib = b.iter().peekable();
    loop {
        let (ea, eb) = match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some((pa, _)), Some((pb, _))) if pa < pb => (ia.next(), None),
            (Some((pa, _)), Some((pb, _))) if pa > pb => (None, ib.next()),
            (Some(_), Some(_)) => (ia.next(), ib.next()),
            (Some(_), None) => (ia.next(), None),
            (None, Some(_)) => (None, ib.next()),
        };
        match (ea, eb) {
            (Some((p, _)), None) => out.push(EntryDiff::OnlyIn {
                path: p.clone(),
                side: Side::A,
            }),
            (None, Some((p, _))) => out.push(EntryDiff::OnlyIn {
                path: p.clone(),
                side: Side::B,
            }),
            (Some((p, x)), Some((_, y))) => diff_entry(p, x, y, &mut out),
            (None, None) => unreachable!("loop ends when both are exhausted"),
        }
    }
    out
}

fn diff_entry(path: &str, x: &ManifestEntry, y: &ManifestEntry, out: &mut Vec<EntryDiff>) {
    let mut push = |attribute: &str, a: Option<Value>, b: Option<Value>| {
        if a != b {
            out.push(EntryDiff::Attribute {
                path: path.to_string(),
                attribute: attribute.to_string(),
                a,
                b,
            });
        }
    };
    push("type", opt(&x.type_), opt(&y.type_));
    push("content", opt(&x.sha256), opt(&y.sha256));
    push("size", opt(&x.size), opt(&y.size));
    push("mode", opt(&x.mode), opt(&y.mode));
    push("uid", opt(&x.uid), opt(&y.uid));
    push("gid", opt(&x.gid), opt(&y.gid));
    push("mtime", opt(&x.mtime), opt(&y.mtime));
    push("target", opt(&x.target), opt(&y.target));
    let names: std::collections::BTreeSet<&String> =
        x.xattrs.keys().chain(y.xattrs.keys()).collect();
    for n in names {
        push(
            &format!("xattr {n}"),
            x.xattrs.get(n).cloned().map(Value::String),
            y.xattrs.get(n).cloned().map(Value::String),
        );
    }
    push("major", opt(&x.major), opt(&y.major));
    push("minor", opt(&x.minor), opt(&y.minor));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            type_: Some("file".into()),
            mode: Some("0644".into()),
            uid: Some(0),
            gid: Some(0),
            mtime: Some(5),
            size: Some(1),
            sha256: Some("sha256:aa".into()),
            ..Default::default()
        }
    }

    #[test]
    fn every_attribute_and_presence_is_reported_in_order() {
        let mut a = BTreeMap::new();
        let mut b = BTreeMap::new();
        for p in ["/a", "/b", "/c"] {
            a.insert(p.to_string(), e(p));
        }
        for p in ["/b", "/c", "/d"] {
            b.insert(p.to_string(), e(p));
        }
        let c = b.get_mut("/c").unwrap();
        c.gid = Some(7);
        c.sha256 = Some("sha256:bb".into());
        c.xattrs.insert("user.x".into(), "00".into());
        let d = diff_entries(&a, &b);
        let attr = |p: &str, at: &str| EntryDiff::Attribute {
            path: p.into(),
            attribute: at.into(),
            a: None,
            b: None,
        };
        let shape: Vec<EntryDiff> = d
            .iter()
            .map(|x| match x {
                EntryDiff::Attribute {
                    path, attribute, ..
                } => attr(path, attribute),
                o => o.clone(),
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                EntryDiff::OnlyIn {
                    path: "/a".into(),
                    side: Side::A
                },
                attr("/c", "content"),
                attr("/c", "gid"),
                attr("/c", "xattr user.x"),
                EntryDiff::OnlyIn {
                    path: "/d".into(),
                    side: Side::B
                },
            ]
        );
        assert!(diff_entries(&a, &a).is_empty());
    }
}
