//! Which base layer added or removed each Debian package, read from a real OCI layout.

use std::fs;
use std::path::Path;

use icos_common::Digest;
use icos_sign::layers::dpkg_layer_changes;
use serde_json::json;

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn status(packages: &[(&str, &str)]) -> String {
    packages
        .iter()
        .map(|(name, version)| {
            format!("Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {version}\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A layer tar holding `files` (path, content); a path ending in `.wh.X` is a whiteout.
fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn blob(dir: &Path, bytes: &[u8]) -> (Digest, usize) {
    let d = Digest::of(bytes);
    fs::write(dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    (d, bytes.len())
}

/// An OCI layout of `layers` with one history entry each (plus an empty one); returns the pin.
fn image(dir: &Path, layers: &[(Vec<u8>, &str)]) -> (String, Vec<Digest>) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descs = Vec::new();
    let mut digests = Vec::new();
    let mut history =
        vec![json!({"created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true})];
    let mut diff_ids = Vec::new();
    for (tar, created_by) in layers {
        let (d, n) = blob(dir, tar);
        descs.push(json!({"mediaType": LAYER, "digest": d.to_string(), "size": n}));
        diff_ids.push(d.to_string());
        digests.push(d);
        history.push(json!({"created_by": created_by}));
    }
    let config = json!({"architecture": "amd64", "os": "linux", "config": {}, "history": history,
                        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let (cd, cn) = blob(dir, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cn},
        "layers": descs});
    let (md, mn) = blob(dir, &serde_json::to_vec(&manifest).unwrap());
    let index = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": mn}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    (format!("oci:{}@{md}", dir.display()), digests)
}

#[test]
fn layers_that_change_dpkg_status_are_named_with_what_they_added_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (pin, digests) = image(
        dir.path(),
        &[
            (
                layer(&[("var/lib/dpkg/status", &status(&[("a", "1"), ("b", "1")]))]),
                "imported",
            ),
            // Touches other files only: no change reported.
            (
                layer(&[("etc/motd", "hi\n")]),
                "/bin/sh -c echo hi > /etc/motd",
            ),
            (
                layer(&[("./var/lib/dpkg/status", &status(&[("a", "2"), ("c", "1")]))]),
                "/bin/sh -c dpkg -i a.deb c.deb && dpkg --purge b",
            ),
            (
                layer(&[("var/lib/dpkg/.wh.status", "")]),
                "/bin/sh -c rm /var/lib/dpkg/status",
            ),
        ],
    );
    let changes = dpkg_layer_changes(&pin, "linux/amd64").unwrap();
    let names = |ps: &[icos_sign::sbom::DebPackage]| -> Vec<String> {
        ps.iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect()
    };
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0].index, 2);
    assert_eq!(changes[0].digest, digests[2]);
    assert_eq!(
        changes[0].created_by,
        "/bin/sh -c dpkg -i a.deb c.deb && dpkg --purge b"
    );
    assert_eq!(names(&changes[0].added), ["a=2", "c=1"]);
    assert_eq!(names(&changes[0].removed), ["a=1", "b=1"]);
    // A whiteout of the database removes every package.
    assert_eq!(changes[1].index, 3);
    assert!(changes[1].added.is_empty());
    assert_eq!(names(&changes[1].removed), ["a=2", "c=1"]);
}

#[test]
fn a_bad_base_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (pin, _) = image(
        dir.path(),
        &[(layer(&[("var/lib/dpkg/status", "garbage line\n")]), "x")],
    );
    let err = dpkg_layer_changes(&pin, "linux/amd64")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer 0: /var/lib/dpkg/status") && err.contains("not 'Field: value'"),
        "{err}"
    );
    let err = dpkg_layer_changes("oci:/nonexistent", "linux/amd64")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("base oci:/nonexistent: "), "{err}");
}
