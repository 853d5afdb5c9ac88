//! SLSA v1 provenance in an in-toto Statement v1, from the build manifest and `SHA256SUMS`.
//!
//! Deterministic: no clock (start and finish times are the build's SOURCE_DATE_EPOCH), the
//! invocation id is derived from the commit and the build manifest digest, lists are sorted and
//! JSON object keys come out sorted.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use icos_common::{open_regular, AtomicFile, Digest, SourceDateEpoch};

use crate::rfc3339;
use crate::sums::{read_sums, SumsError};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// Our build type: "a Bazel build of `//ic-os:image` in a checkout of the source at a commit".
pub const BUILD_TYPE: &str = "https://icos.invalid/provenance/build-types/bazel-image/v1";
/// The builder id used when none is given.
pub const DEFAULT_BUILDER_ID: &str = "https://icos.invalid/provenance/builders/local-bazel/v1";
const BUILD_MANIFEST_SCHEMA: &str = "icos.build-manifest/v1";

#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("cannot read build manifest {path}: {source}")]
    ReadManifest { path: PathBuf, source: io::Error },
    #[error("build manifest {path} is not valid: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    #[error(transparent)]
    Sums(#[from] SumsError),
    #[error("source commit {0:?} is not a full git commit id (40 or 64 lowercase hex digits): pass the output of `git rev-parse HEAD`")]
    BadCommit(String),
    #[error("{what} {value:?} is not an absolute URI (scheme:...): pass for example https://example.org/...")]
    BadUri { what: &'static str, value: String },
    #[error("{sums} and the build manifest {manifest} disagree about {name}: {sums_digest} vs {manifest_digest}: they come from different builds")]
    Inconsistent {
        sums: PathBuf,
        manifest: PathBuf,
        name: String,
        sums_digest: String,
        manifest_digest: String,
    },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// What the provenance is made from.
#[derive(Debug, Clone)]
pub struct ProvenanceRequest<'a> {
    pub build_manifest: &'a Path,
    pub sums: &'a Path,
    /// The full git commit id of the source.
    pub commit: &'a str,
    pub repo_uri: Option<&'a str>,
    pub builder_id: Option<&'a str>,
}

#[derive(Deserialize)]
struct BuildManifest {
    schema: String,
    image: String,
    source_date_epoch: u64,
    #[serde(default)]
    seed: Option<String>,
    #[serde(default)]
    tools: Vec<Dependency>,
    #[serde(default)]
    inputs: Vec<Dependency>,
    #[serde(default)]
    artifacts: Vec<Artifact>,
}

#[derive(Deserialize)]
struct Dependency {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    /// The pinned package that ships a tool known by its version line.
    #[serde(default)]
    package: Option<String>,
}

#[derive(Deserialize)]
struct Artifact {
    name: String,
    #[serde(default)]
    sha256: Option<String>,
}

/// Builds the provenance statement.
pub fn provenance(req: &ProvenanceRequest) -> Result<Value, ProvenanceError> {
    let mpath = req.build_manifest;
    let bad = |reason: String| ProvenanceError::BadManifest {
        path: mpath.into(),
        reason,
    };
    let mut bytes = Vec::new();
    open_regular(mpath)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| ProvenanceError::ReadManifest {
            path: mpath.into(),
            source,
        })?;
    let manifest_digest = Digest::of(&bytes);
    let m: BuildManifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if m.schema != BUILD_MANIFEST_SCHEMA {
        return Err(bad(format!(
            "schema is {:?}, this tool reads {BUILD_MANIFEST_SCHEMA:?}",
            m.schema
        )));
    }
    if m.source_date_epoch > SourceDateEpoch::MAX {
        return Err(bad(format!(
            "source_date_epoch {} is out of range",
            m.source_date_epoch
        )));
    }
    let commit = req.commit;
    let commit_ok = (commit.len() == 40 || commit.len() == 64)
        && commit
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !commit_ok {
        return Err(ProvenanceError::BadCommit(commit.into()));
    }
    if let Some(u) = req.repo_uri {
        check_uri("--repo-uri", u)?;
    }
    let builder_id = req.builder_id.unwrap_or(DEFAULT_BUILDER_ID);
    check_uri("--builder-id", builder_id)?;

    // Subjects: every artifact in SHA256SUMS.
    let sums = read_sums(req.sums)?;
    let manifest_name = mpath
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let inconsistent = |name: &str, s: String, m: String| ProvenanceError::Inconsistent {
        sums: req.sums.into(),
        manifest: mpath.into(),
        name: name.into(),
        sums_digest: s,
        manifest_digest: m,
    };
    for e in &sums {
        if e.name == manifest_name && e.sha256 != manifest_digest {
            return Err(inconsistent(
                &e.name,
                e.sha256.to_string(),
                format!("{manifest_digest} (the build manifest file itself)"),
            ));
        }
        if let Some(a) = m.artifacts.iter().find(|a| a.name == e.name) {
            if let Some(d) = &a.sha256 {
                if *d != e.sha256.to_string() && *d != e.sha256.hex() {
                    return Err(inconsistent(&e.name, e.sha256.to_string(), d.clone()));
                }
            }
        }
    }
    let subjects: Vec<Value> = sums
        .iter()
        .map(|e| json!({"name": e.name, "digest": {"sha256": e.sha256.hex()}}))
        .collect();

    // Dependencies: the source, then tools, then inputs, each group sorted.
    let mut source = Map::new();
    source.insert("name".into(), json!("source"));
    if let Some(u) = req.repo_uri {
        source.insert("uri".into(), json!(u));
    }
    source.insert("digest".into(), json!({"gitCommit": commit}));
    let mut deps = vec![Value::Object(source)];
    let mut tools = Vec::new();
    for t in &m.tools {
        tools.push(descriptor(t, "tool").map_err(&bad)?);
    }
    let mut inputs = Vec::new();
    for i in &m.inputs {
        inputs.push(descriptor(i, "input").map_err(&bad)?);
    }
    for group in [&mut tools, &mut inputs] {
        group.sort_by_cached_key(|v| {
            (
                v["name"].as_str().unwrap_or_default().to_owned(),
                v.to_string(),
            )
        });
        group.dedup();
    }
    deps.extend(tools);
    deps.extend(inputs);

    let mut source_params = Map::new();
    source_params.insert("commit".into(), json!(commit));
    if let Some(u) = req.repo_uri {
        source_params.insert("repository".into(), json!(u));
    }
    let mut internal = Map::new();
    internal.insert("sourceDateEpoch".into(), json!(m.source_date_epoch));
    if let Some(seed) = &m.seed {
        internal.insert("seed".into(), json!(seed));
    }
    let time = rfc3339(m.source_date_epoch);
    let invocation = {
        let mut pre = b"icos-provenance-invocation-v1\0".to_vec();
        pre.extend_from_slice(commit.as_bytes());
        pre.push(0);
        pre.extend_from_slice(manifest_digest.hex().as_bytes());
        Digest::of(&pre).hex()
    };

    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "image": m.image,
                    "source": Value::Object(source_params),
                },
                "internalParameters": Value::Object(internal),
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": builder_id},
                "metadata": {
                    "invocationId": invocation,
                    "startedOn": time,
                    "finishedOn": time,
                },
                "byproducts": [
                    {"name": manifest_name, "digest": {"sha256": manifest_digest.hex()}}
                ],
            },
        },
    }))
}

/// The provenance as written to disk: pretty JSON and a final newline.
pub fn render_provenance(req: &ProvenanceRequest) -> Result<Vec<u8>, ProvenanceError> {
    let v = provenance(req)?;
    let mut out = serde_json::to_vec_pretty(&v).expect("a JSON value always serializes");
    out.push(b'\n');
    Ok(out)
}

/// Writes the provenance to `out` atomically.
pub fn write_provenance(req: &ProvenanceRequest, out: &Path) -> Result<(), ProvenanceError> {
    let bytes = render_provenance(req)?;
    let write = || -> io::Result<()> {
        let mut f = AtomicFile::create(out)?;
        f.write_all(&bytes)?;
        f.commit()
    };
    write().map_err(|source| ProvenanceError::Write {
        path: out.into(),
        source,
    })
}

fn check_uri(what: &'static str, u: &str) -> Result<(), ProvenanceError> {
    let scheme_ok = u.split_once(':').is_some_and(|(s, rest)| {
        !rest.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !scheme_ok || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ProvenanceError::BadUri {
            what,
            value: u.into(),
        });
    }
    Ok(())
}

/// An in-toto ResourceDescriptor for a tool or input of the build manifest. Every one carries a
/// digest: a dependency known only by name and version identifies nothing that can be checked.
fn descriptor(d: &Dependency, kind: &str) -> Result<Value, String> {
    let mut v = Map::new();
    v.insert("name".into(), json!(d.name));
    if let Some(u) = &d.uri {
        v.insert("uri".into(), json!(u));
    }
    let dg = d.digest.as_ref().ok_or_else(|| {
        format!(
            "{kind} {:?} has no digest: provenance cannot identify it (the build manifest must record the sha256 of every tool and input)",
            d.name
        )
    })?;
    let (algo, hex) = parse_digest(dg).ok_or_else(|| {
        format!(
            "{kind} {:?} has digest {dg:?}, expected ALGORITHM:HEX such as sha256:<64 hex>",
            d.name
        )
    })?;
    v.insert("digest".into(), json!({ algo: hex }));
    let mut ann = Map::new();
    ann.insert("kind".into(), json!(kind));
    if let Some(ver) = &d.version {
        ann.insert("version".into(), json!(ver));
    }
    if let Some(p) = &d.package {
        ann.insert("package".into(), json!(p));
    }
    v.insert("annotations".into(), Value::Object(ann));
    Ok(Value::Object(v))
}

fn parse_digest(s: &str) -> Option<(String, String)> {
    let (algo, hex) = s.split_once(':')?;
    let algo_ok = !algo.is_empty()
        && algo
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let hex_ok = !hex.is_empty()
        && hex.len() % 2 == 0
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let len_ok = match algo {
        "sha256" => hex.len() == 64,
        "sha512" => hex.len() == 128,
        "sha1" => hex.len() == 40,
        _ => true,
    };
    (algo_ok && hex_ok && len_ok).then(|| (algo.to_owned(), hex.to_owned()))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for package URLs).
pub(crate) fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_uris() {
        assert_eq!(
            parse_digest(&format!("sha256:{}", "a".repeat(64))),
            Some(("sha256".into(), "a".repeat(64)))
        );
        assert_eq!(parse_digest("sha256:abc"), None);
        assert_eq!(parse_digest("sha256"), None);
        assert_eq!(parse_digest("SHA256:00"), None);
        assert!(check_uri("x", "https://example.org/a").is_ok());
        assert!(check_uri("x", "git+https://h/r").is_ok());
        assert!(check_uri("x", "no-scheme").is_err());
        assert!(check_uri("x", "https://a b").is_err());
        assert_eq!(pct("1:2.3+b~x"), "1%3A2.3%2Bb~x");
    }
}
