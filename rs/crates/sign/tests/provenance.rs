//! SLSA v1 provenance: required fields, determinism, refusals.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::write_sums;
use icos_sign::provenance::{
    provenance, BUILD_TYPE, DEFAULT_BUILDER_ID, PREDICATE_TYPE, STATEMENT_TYPE,
};
use icos_sign::{render_provenance, write_provenance, ProvenanceError, ProvenanceRequest};
use serde_json::Value;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn digest_of(data: &[u8]) -> String {
    icos_common::Digest::of(data).to_string()
}

/// A release directory with artifacts, a build manifest that matches them and SHA256SUMS.
fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let disk = b"disk image".to_vec();
    let update = b"update image".to_vec();
    fs::write(dir.join("disk-img.tar.zst"), &disk).unwrap();
    fs::write(dir.join("update-img.tar.zst"), &update).unwrap();
    fs::write(dir.join("rootfs.manifest.json"), "{}\n").unwrap();
    let manifest = serde_json::json!({
        "schema": "icos.build-manifest/v1",
        "image": "default",
        "source_date_epoch": 1_700_000_000u64,
        "seed": "seed-1",
        "tools": [
            {"name": "icos-tools", "version": "0.1.0", "digest": digest_of(b"tools")},
            {"name": "rustc", "version": "1.96.0 (abc 2026-01-01)", "digest": digest_of(b"rustc-web.deb"),
             "package": "deb:rustc-web"}
        ],
        "inputs": [
            {"name": "base", "uri": format!("oci:base@{}", digest_of(b"m")), "digest": digest_of(b"m")},
            {"name": "/etc/motd", "digest": digest_of(b"motd")}
        ],
        "rootfs": {"manifest_sha256": digest_of(b"{}\n"), "tar_sha256": digest_of(b"t"), "entries": 3},
        "disk": {"size": 1},
        "artifacts": [
            {"name": "disk-img.tar.zst", "sha256": digest_of(&disk), "size": disk.len()},
            {"name": "update-img.tar.zst", "sha256": digest_of(&update), "size": update.len()}
        ],
        "a_future_field": [1, 2, 3]
    });
    let mpath = dir.join("build-manifest.json");
    fs::write(&mpath, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    write_sums(
        dir,
        &[
            "build-manifest.json",
            "disk-img.tar.zst",
            "rootfs.manifest.json",
            "update-img.tar.zst",
        ],
    );
    (mpath, dir.join("SHA256SUMS"))
}

fn req<'a>(m: &'a Path, s: &'a Path) -> ProvenanceRequest<'a> {
    ProvenanceRequest {
        build_manifest: m,
        sums: s,
        commit: COMMIT,
        repo_uri: Some("git+https://example.org/ic-os.git"),
        builder_id: None,
    }
}

#[test]
fn statement_has_the_required_in_toto_and_slsa_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (m, s) = fixture(dir.path());
    let v = provenance(&req(&m, &s)).unwrap();

    // in-toto Statement v1
    assert_eq!(v["_type"], STATEMENT_TYPE);
    assert_eq!(STATEMENT_TYPE, "https://in-toto.io/Statement/v1");
    assert_eq!(v["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(PREDICATE_TYPE, "https://slsa.dev/provenance/v1");
    let subjects = v["subject"].as_array().unwrap();
    let sums = fs::read_to_string(&s).unwrap();
    assert_eq!(subjects.len(), sums.lines().count());
    for (subject, line) in subjects.iter().zip(sums.lines()) {
        let (hex, name) = line.split_once("  ").unwrap();
        assert_eq!(subject["name"], name);
        assert_eq!(subject["digest"]["sha256"], hex);
    }

    // SLSA v1 predicate
    let p = &v["predicate"];
    let bd = &p["buildDefinition"];
    assert_eq!(bd["buildType"], BUILD_TYPE);
    assert_eq!(bd["externalParameters"]["image"], "default");
    assert_eq!(bd["externalParameters"]["source"]["commit"], COMMIT);
    assert_eq!(
        bd["externalParameters"]["source"]["repository"],
        "git+https://example.org/ic-os.git"
    );
    assert_eq!(
        bd["internalParameters"]["sourceDateEpoch"],
        1_700_000_000u64
    );
    let deps = bd["resolvedDependencies"].as_array().unwrap();
    assert_eq!(deps[0]["digest"]["gitCommit"], COMMIT);
    assert_eq!(deps[0]["uri"], "git+https://example.org/ic-os.git");
    let names: Vec<&str> = deps.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["source", "icos-tools", "rustc", "/etc/motd", "base"]
    );
    for d in deps {
        // every dependency is identified by a digest, not by a name and version
        assert!(
            d["digest"].as_object().is_some_and(|o| !o.is_empty()),
            "{d}"
        );
    }
    assert_eq!(
        deps[1]["digest"]["sha256"],
        icos_common::Digest::of(b"tools").hex()
    );
    assert_eq!(deps[1]["annotations"]["version"], "0.1.0");
    assert_eq!(
        deps[2]["digest"]["sha256"],
        icos_common::Digest::of(b"rustc-web.deb").hex()
    );
    assert_eq!(deps[2]["annotations"]["package"], "deb:rustc-web");
    assert_eq!(deps[4]["uri"], format!("oci:base@{}", digest_of(b"m")));

    let rd = &p["runDetails"];
    assert_eq!(rd["builder"]["id"], DEFAULT_BUILDER_ID);
    assert_eq!(rd["metadata"]["startedOn"], "2023-11-14T22:13:20Z");
    assert_eq!(rd["metadata"]["finishedOn"], "2023-11-14T22:13:20Z");
    let inv = rd["metadata"]["invocationId"].as_str().unwrap();
    assert_eq!(inv.len(), 64);
    assert_eq!(rd["byproducts"][0]["name"], "build-manifest.json");
    assert_eq!(
        rd["byproducts"][0]["digest"]["sha256"],
        icos_common::sha256_file(&m).unwrap().0.hex()
    );

    // The invocation id follows the commit.
    let other = "1123456789abcdef0123456789abcdef01234567";
    let v2 = provenance(&ProvenanceRequest {
        commit: other,
        ..req(&m, &s)
    })
    .unwrap();
    assert_ne!(
        v2["predicate"]["runDetails"]["metadata"]["invocationId"],
        inv
    );
}

#[test]
fn output_is_byte_identical_across_runs_and_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let (m, s) = fixture(dir.path());
    let a = dir.path().join("a.intoto.json");
    let b = dir.path().join("b.intoto.json");
    write_provenance(&req(&m, &s), &a).unwrap();
    write_provenance(&req(&m, &s), &b).unwrap();
    let bytes = fs::read(&a).unwrap();
    assert_eq!(bytes, fs::read(&b).unwrap());
    assert_eq!(bytes, render_provenance(&req(&m, &s)).unwrap());
    assert!(bytes.ends_with(b"}\n"));
    // Keys are sorted: "_type" < "predicate" < "predicateType" < "subject".
    let text = String::from_utf8(bytes).unwrap();
    let pos = |k: &str| text.find(&format!("\n  \"{k}\"")).unwrap();
    assert!(
        pos("_type") < pos("predicate")
            && pos("predicate") < pos("predicateType")
            && pos("predicateType") < pos("subject")
    );
    let _: Value = serde_json::from_str(&text).unwrap();

    // A failed run leaves no output file.
    let c = dir.path().join("c.intoto.json");
    assert!(write_provenance(
        &ProvenanceRequest {
            commit: "HEAD",
            ..req(&m, &s)
        },
        &c
    )
    .is_err());
    assert!(!c.exists());
}

#[test]
fn bad_inputs_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (m, s) = fixture(dir.path());

    for bad in ["HEAD", "0123456", &COMMIT.to_uppercase()] {
        let err = provenance(&ProvenanceRequest {
            commit: bad,
            ..req(&m, &s)
        })
        .unwrap_err();
        assert!(matches!(err, ProvenanceError::BadCommit(_)), "{err}");
        assert!(err.to_string().contains("git rev-parse HEAD"));
    }
    let err = provenance(&ProvenanceRequest {
        builder_id: Some("my laptop"),
        ..req(&m, &s)
    })
    .unwrap_err();
    assert!(err.to_string().contains("--builder-id"), "{err}");

    // SHA256SUMS from another build: the build manifest's artifact digest disagrees.
    let sums = fs::read_to_string(&s).unwrap();
    fs::write(dir.path().join("disk-img.tar.zst"), b"another build").unwrap();
    write_sums(
        dir.path(),
        &[
            "build-manifest.json",
            "disk-img.tar.zst",
            "rootfs.manifest.json",
            "update-img.tar.zst",
        ],
    );
    let err = provenance(&req(&m, &s)).unwrap_err();
    assert!(
        matches!(&err, ProvenanceError::Inconsistent { name, .. } if name == "disk-img.tar.zst"),
        "{err}"
    );
    fs::write(&s, &sums).unwrap();

    // A build manifest other than the one SHA256SUMS lists.
    let mut text = fs::read_to_string(&m).unwrap();
    text.push('\n');
    fs::write(&m, &text).unwrap();
    let err = provenance(&req(&m, &s)).unwrap_err();
    assert!(
        matches!(&err, ProvenanceError::Inconsistent { name, .. } if name == "build-manifest.json"),
        "{err}"
    );

    // Wrong schema, unparsable JSON, an input nobody can identify.
    let other = dir.path().join("other.json");
    fs::write(
        &other,
        r#"{"schema":"icos.build-manifest/v2","image":"x","source_date_epoch":1}"#,
    )
    .unwrap();
    let err = provenance(&req(&other, &s)).unwrap_err();
    assert!(err.to_string().contains("icos.build-manifest/v2"), "{err}");
    fs::write(&other, "{not json").unwrap();
    assert!(matches!(
        provenance(&req(&other, &s)).unwrap_err(),
        ProvenanceError::BadManifest { .. }
    ));
    fs::write(&other, r#"{"schema":"icos.build-manifest/v1","image":"x","source_date_epoch":1,"inputs":[{"name":"floating","uri":"https://example.org/latest"}]}"#).unwrap();
    let err = provenance(&req(&other, &s)).unwrap_err();
    assert!(
        err.to_string()
            .contains("input \"floating\" has no digest: provenance cannot identify it"),
        "{err}"
    );
    // A tool known only by its version line (as rustc, cargo and cc were) is refused too.
    fs::write(&other, r#"{"schema":"icos.build-manifest/v1","image":"x","source_date_epoch":1,"tools":[{"name":"cc","version":"x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0"}]}"#).unwrap();
    let err = provenance(&req(&other, &s)).unwrap_err();
    assert!(
        err.to_string()
            .contains("tool \"cc\" has no digest: provenance cannot identify it"),
        "{err}"
    );
    fs::write(&other, r#"{"schema":"icos.build-manifest/v1","image":"x","source_date_epoch":1,"inputs":[{"name":"a","digest":"sha256:xyz"}]}"#).unwrap();
    let err = provenance(&req(&other, &s)).unwrap_err();
    assert!(err.to_string().contains("sha256:xyz"), "{err}");
    let err = provenance(&req(&dir.path().join("absent.json"), &s)).unwrap_err();
    assert!(matches!(err, ProvenanceError::ReadManifest { .. }), "{err}");
}
