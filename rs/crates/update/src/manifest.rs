//! The update manifest (`update-manifest.json`, schema `icos.update-manifest/v1`): what a release
//! says about its update package, signed with the release key (`update-manifest.json.minisig`).
//!
//! A node trusts nothing of the package beyond what this file says: the members' names, order,
//! sizes and digests, the package's own size and digest (so a source never feeds more bytes than
//! that), the version (rollback protection) and the dm-verity root hash the written root must have.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

use icos_common::Digest;
use icos_sign::{minisig::verify_reader, PublicKey, SigProblem};
use serde::{Deserialize, Serialize};

/// The value of `schema`.
pub const SCHEMA: &str = "icos.update-manifest/v1";
/// The manifest's file name; its signature is this name plus `.minisig`.
pub const MANIFEST_NAME: &str = "update-manifest.json";
/// The package's file name.
pub const PACKAGE_NAME: &str = "update-img.tar.zst";
/// The members of a verified image's update package, in package order: the UKI goes to the ESP,
/// the root filesystem and its dm-verity hash device to the inactive slot's two partitions.
pub const MEMBERS: [&str; 3] = ["uki.efi", "root.img", "root.verity"];
/// A manifest larger than this is refused before it is parsed (hostile input).
pub const MAX_MANIFEST_SIZE: u64 = 64 << 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateManifest {
    pub schema: String,
    /// IMAGE_ID of the image (a node refuses an update for another image).
    pub image_id: String,
    /// IMAGE_VERSION (dotted decimal numbers): must be greater than the running one.
    pub version: String,
    /// The dm-verity root hash of `root.img` (64 lowercase hex digits), also in the UKI's cmdline.
    pub root_hash: String,
    pub package: Blob,
    /// Exactly [`MEMBERS`], in that order.
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blob {
    pub name: String,
    pub size: u64,
    pub sha256: Digest,
}

/// One member of the package: its logical content (holes of a sparse member are zeros).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: String,
    pub size: u64,
    pub sha256: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_MANIFEST_SIZE} bytes: not an update manifest")]
    TooLarge { path: PathBuf },
    #[error("the update manifest's signature does not verify, nothing was written: {0}")]
    Signature(SigProblem),
    #[error("{path}: not an update manifest: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("version {0:?} is not dotted decimal numbers (e.g. 2 or 2.3)")]
    BadVersion(String),
}

/// A version: dotted decimal numbers, compared number by number (`1.10` > `1.9`; a missing
/// number counts as 0, so `2` = `2.0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version(Vec<u64>);

impl Version {
    pub fn parse(s: &str) -> Result<Self, ManifestError> {
        let bad = || ManifestError::BadVersion(s.to_string());
        if s.is_empty() || s.len() > 64 {
            return Err(bad());
        }
        s.split('.')
            .map(|n| {
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                n.parse().map_err(|_| bad())
            })
            .collect::<Result<_, _>>()
            .map(Version)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|i| {
                let a = self.0.get(i).copied().unwrap_or(0);
                let b = other.0.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

impl UpdateManifest {
    /// The manifest's bytes as written (pretty JSON, fields in declaration order, a final newline):
    /// deterministic, so the release's signature over it is too.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        v.push(b'\n');
        v
    }

    /// Parses and checks `bytes` (already verified, or made by us): schema, names, order, values.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, ManifestError> {
        let bad = |reason: String| ManifestError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let m: UpdateManifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.schema != SCHEMA {
            return Err(bad(format!("schema {:?}, expected {SCHEMA:?}", m.schema)));
        }
        Version::parse(&m.version).map_err(|e| bad(e.to_string()))?;
        if m.image_id.is_empty()
            || !m
                .image_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(bad(format!(
                "image_id {:?} is not a plain IMAGE_ID ([A-Za-z0-9._-]+)",
                m.image_id
            )));
        }
        icos_verity::RootHash::from_hex(&m.root_hash)
            .map_err(|e| bad(format!("root_hash: {e}")))?;
        if m.root_hash.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("root_hash must be lowercase hex".into()));
        }
        if m.package.name != PACKAGE_NAME {
            return Err(bad(format!(
                "package {:?}, expected {PACKAGE_NAME:?}",
                m.package.name
            )));
        }
        let names: Vec<&str> = m.members.iter().map(|x| x.name.as_str()).collect();
        if names != MEMBERS {
            return Err(bad(format!(
                "members {names:?}, expected exactly {MEMBERS:?} in that order"
            )));
        }
        Ok(m)
    }

    pub fn version(&self) -> Version {
        Version::parse(&self.version).expect("checked by parse")
    }

    pub fn root_hash(&self) -> icos_verity::RootHash {
        icos_verity::RootHash::from_hex(&self.root_hash).expect("checked by parse")
    }

    /// The signed size and digest of member `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// Reads `manifest` and its signature `signature`, verifies the signature with `key` over the
/// exact bytes read, and only then parses them. The signature's trusted comment must name
/// [`MANIFEST_NAME`] (a signature of another release file is refused).
pub fn read_signed(
    manifest: &Path,
    signature: &Path,
    key: &PublicKey,
) -> Result<UpdateManifest, ManifestError> {
    let bytes = read_capped(manifest)?;
    let sig = read_capped(signature)?;
    let sig = String::from_utf8(sig).map_err(|_| ManifestError::Malformed {
        path: signature.to_path_buf(),
        reason: "not UTF-8 text: not a minisign signature".into(),
    })?;
    let sig_name = format!("{MANIFEST_NAME}{}", icos_sign::minisig::SIG_SUFFIX);
    verify_reader(
        key,
        &sig,
        std::io::Cursor::new(&bytes),
        MANIFEST_NAME,
        &sig_name,
    )
    .map_err(ManifestError::Signature)?;
    UpdateManifest::parse(&bytes, manifest)
}

fn read_capped(path: &Path) -> Result<Vec<u8>, ManifestError> {
    use std::io::Read;
    let read = |source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = icos_common::open_regular(path).map_err(read)?;
    let mut bytes = Vec::new();
    f.take(MAX_MANIFEST_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(ManifestError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("1.10") > v("1.9"));
        assert!(v("2") > v("1.99"));
        assert_eq!(v("2").cmp(&v("2.0")), Ordering::Equal);
        assert!(v("10") > v("9"));
        for bad in ["", "1.", ".1", "1..2", "v2", "1.-1", "+1", "1 "] {
            let e = Version::parse(bad).unwrap_err().to_string();
            assert!(e.contains("not dotted decimal numbers"), "{bad}: {e}");
        }
    }

    fn sample() -> UpdateManifest {
        let d = Digest::of(b"x");
        UpdateManifest {
            schema: SCHEMA.into(),
            image_id: "icos".into(),
            version: "2".into(),
            root_hash: "ab".repeat(32),
            package: Blob {
                name: PACKAGE_NAME.into(),
                size: 10,
                sha256: d,
            },
            members: MEMBERS
                .iter()
                .map(|n| Member {
                    name: n.to_string(),
                    size: 1,
                    sha256: d,
                })
                .collect(),
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let m = sample();
        let p = Path::new("m.json");
        assert_eq!(UpdateManifest::parse(&m.to_bytes(), p).unwrap(), m);

        let mut swapped = m.clone();
        swapped.members.swap(1, 2);
        let e = UpdateManifest::parse(&swapped.to_bytes(), p).unwrap_err();
        assert!(e.to_string().contains("in that order"), "{e}");

        let mut extra = m.clone();
        extra.members.push(extra.members[0].clone());
        let e = UpdateManifest::parse(&extra.to_bytes(), p).unwrap_err();
        assert!(e.to_string().contains("expected exactly"), "{e}");

        let text = String::from_utf8(m.to_bytes()).unwrap();
        let unknown = text.replacen("{", "{\"slot\": \"b\",", 1);
        let e = UpdateManifest::parse(unknown.as_bytes(), p).unwrap_err();
        assert!(e.to_string().contains("unknown field `slot`"), "{e}");

        let schema = text.replace(SCHEMA, "icos.update-manifest/v2");
        let e = UpdateManifest::parse(schema.as_bytes(), p).unwrap_err();
        assert!(e.to_string().contains("schema"), "{e}");
    }
}
