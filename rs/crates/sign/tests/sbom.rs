//! SPDX 2.3 SBOM from a rootfs tar built here in the test (icos rootfs tar format).

use std::fs;
use std::path::{Path, PathBuf};

use icos_sign::{render_sbom, write_sbom, SbomError, SbomRequest};
use icos_testsupport::pax_record;
use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};

const SDE: u64 = 1_700_000_000;

enum Kind<'a> {
    Dir,
    File(&'a [u8]),
    /// A file with the xattr `user.nl` (value given), carried in a hand-written PAX header.
    XattrFile(&'a [u8], &'a [u8]),
    Symlink(&'a str),
    Hardlink(&'a str),
}

const STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc (2.36-9)
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: old-tool
Status: deinstall ok config-files
Architecture: amd64
Version: 0.9-1

Package: libstdc++6
Status: install ok installed
Architecture: amd64
Source: gcc-12
Version: 12.2.0-14

Package: tzdata
Status: install ok installed
Architecture: all
Version: 1:2024a-0+deb12u1
";

fn tree(status: Option<&[u8]>) -> Vec<(&'static str, Kind<'_>)> {
    let mut t = vec![
        ("/", Kind::Dir),
        ("/bin", Kind::Dir),
        ("/bin/sh", Kind::Symlink("busybox")),
        // A second name of a symlink (issue 13): a link, but not a file of the SBOM.
        ("/bin/sh.link", Kind::Hardlink("/bin/sh")),
        ("/etc", Kind::Dir),
        ("/etc/motd", Kind::File(b"welcome\n")),
        (
            "/etc/passwd",
            Kind::File(b"root:x:0:0:root:/root:/bin/sh\n"),
        ),
        ("/usr", Kind::Dir),
        ("/usr/bin", Kind::Dir),
        ("/usr/bin/ping", Kind::File(b"\x7fELF ping")),
        ("/usr/bin/ping6", Kind::Hardlink("/usr/bin/ping")),
        ("/var", Kind::Dir),
        ("/var/lib", Kind::Dir),
        ("/var/lib/dpkg", Kind::Dir),
    ];
    if let Some(s) = status {
        t.push(("/var/lib/dpkg/status", Kind::File(s)));
    }
    t
}

/// Writes rootfs.tar and rootfs.manifest.json (formats of ARCHITECTURE.md) into `dir`.
fn build_rootfs(dir: &Path, entries: &[(&str, Kind)]) -> (PathBuf, PathBuf) {
    let mut b = tar::Builder::new(Vec::new());
    let mut manifest_entries = Vec::new();
    for (path, kind) in entries {
        let name = match (path, kind) {
            (&"/", _) => "./".to_string(),
            (p, Kind::Dir) => format!(".{p}/"),
            (p, _) => format!(".{p}"),
        };
        let mut h = tar::Header::new_ustar();
        let mut pax = Vec::new();
        if let Kind::XattrFile(_, value) = kind {
            pax.extend(pax_record("SCHILY.xattr.user.nl", value));
        }
        if name.len() > 100 {
            pax.extend(pax_record("path", name.as_bytes()));
        }
        if !pax.is_empty() {
            let mut x = tar::Header::new_ustar();
            x.as_old_mut().name[..12].copy_from_slice(b"./@PaxHeader");
            x.set_entry_type(tar::EntryType::XHeader);
            x.set_size(pax.len() as u64);
            x.set_cksum();
            b.append(&x, &pax[..]).unwrap();
        }
        let short = &name.as_bytes()[..name.len().min(100)];
        h.as_old_mut().name[..short.len()].copy_from_slice(short);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(SDE);
        let mut m = json!({"path": path, "uid": 0, "gid": 0, "mtime": SDE});
        let data: &[u8] = match kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                m["type"] = json!("dir");
                m["mode"] = json!("0755");
                b""
            }
            Kind::File(d) | Kind::XattrFile(d, _) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                m["type"] = json!("file");
                m["mode"] = json!("0644");
                m["size"] = json!(d.len());
                m["sha256"] = json!(icos_common::Digest::of(d).to_string());
                d
            }
            Kind::Symlink(t) | Kind::Hardlink(t) => {
                let (ty, link, mode) = match kind {
                    Kind::Symlink(_) => (tar::EntryType::Symlink, t.to_string(), "0777"),
                    _ => (tar::EntryType::Link, format!(".{t}"), "0644"),
                };
                h.set_entry_type(ty);
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
                h.set_mode(u32::from_str_radix(mode, 8).unwrap());
                m["type"] = json!(if ty == tar::EntryType::Symlink {
                    "symlink"
                } else {
                    "hardlink"
                });
                m["mode"] = json!(mode);
                m["target"] = json!(t);
                b""
            }
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
        manifest_entries.push(m);
    }
    let tar = b.into_inner().unwrap();
    let manifest = json!({
        "schema": "icos.rootfs-manifest/v1",
        "tool": {"name": "icos-rootfs", "version": "0.1.0"},
        "source_date_epoch": SDE,
        "inputs": {"base": {"reference": "oci:x@sha256:00", "layers": []}},
        "output": {"sha256": icos_common::Digest::of(&tar).to_string(), "size": tar.len()},
        "entries": manifest_entries,
    });
    let (t, m) = (dir.join("rootfs.tar"), dir.join("rootfs.manifest.json"));
    fs::write(&t, tar).unwrap();
    fs::write(&m, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    (t, m)
}

fn req<'a>(t: &'a Path, m: &'a Path) -> SbomRequest<'a> {
    SbomRequest {
        rootfs_tar: t,
        rootfs_manifest: m,
        name: "default",
        layer_changes: &[],
    }
}

#[test]
fn sbom_has_the_spdx_2_3_fields_the_debian_packages_and_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let (t, m) = build_rootfs(dir.path(), &tree(Some(STATUS.as_bytes())));
    let doc: Value = serde_json::from_slice(&render_sbom(&req(&t, &m)).unwrap()).unwrap();
    let tar_hex = icos_common::sha256_file(&t).unwrap().0.hex();

    // Document creation information (SPDX 2.3 clause 6): all required.
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["dataLicense"], "CC0-1.0");
    assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
    assert_eq!(doc["name"], "default");
    assert_eq!(
        doc["documentNamespace"],
        format!("https://icos.invalid/spdx/default-{tar_hex}")
    );
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        doc["creationInfo"]["creators"],
        json!([format!("Tool: icos-sign-{}", env!("CARGO_PKG_VERSION"))])
    );

    // Packages: the root filesystem, then the installed Debian packages (not old-tool), sorted.
    let packages = doc["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "libc6", "libstdc++6", "tzdata"]);
    for p in packages {
        for field in ["SPDXID", "name", "downloadLocation"] {
            assert!(p[field].is_string(), "package lacks {field}: {p}");
        }
        assert!(p["SPDXID"]
            .as_str()
            .unwrap()
            .starts_with("SPDXRef-Package-"));
        assert!(
            p["SPDXID"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c)),
            "{p}"
        );
    }
    let rootfs = &packages[0];
    assert_eq!(rootfs["SPDXID"], "SPDXRef-Package-rootfs");
    assert_eq!(rootfs["filesAnalyzed"], true);
    assert_eq!(
        rootfs["checksums"],
        json!([{"algorithm": "SHA256", "checksumValue": tar_hex}])
    );
    let libc = &packages[1];
    assert_eq!(libc["SPDXID"], "SPDXRef-Package-deb-libc6-amd64");
    assert_eq!(libc["versionInfo"], "2.36-9+deb12u4");
    assert_eq!(libc["sourceInfo"], "built package from: glibc 2.36-9");
    assert_eq!(libc["filesAnalyzed"], false);
    assert_eq!(
        libc["externalRefs"],
        json!([{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                "referenceLocator": "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"}])
    );
    assert_eq!(
        packages[2]["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64"
    );
    assert_eq!(
        packages[2]["sourceInfo"],
        "built package from: gcc-12 12.2.0-14"
    );
    assert_eq!(
        packages[3]["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/tzdata@1%3A2024a-0%2Bdeb12u1?arch=all"
    );

    // Files: every regular file and hardlink, with SHA1 (required by SPDX 2.3) and SHA256.
    let files = doc["files"].as_array().unwrap();
    let file_names: Vec<&str> = files
        .iter()
        .map(|f| f["fileName"].as_str().unwrap())
        .collect();
    assert_eq!(
        file_names,
        [
            "./etc/motd",
            "./etc/passwd",
            "./usr/bin/ping",
            "./usr/bin/ping6",
            "./var/lib/dpkg/status"
        ]
    );
    let contents: [&[u8]; 5] = [
        b"welcome\n",
        b"root:x:0:0:root:/root:/bin/sh\n",
        b"\x7fELF ping",
        b"\x7fELF ping",
        STATUS.as_bytes(),
    ];
    let mut sha1s = Vec::new();
    for (f, data) in files.iter().zip(contents) {
        let sha1 = hex::encode(Sha1::digest(data));
        assert_eq!(
            f["checksums"],
            json!([{"algorithm": "SHA1", "checksumValue": sha1},
                   {"algorithm": "SHA256", "checksumValue": icos_common::Digest::of(data).hex()}]),
            "{f}"
        );
        assert!(f["SPDXID"].as_str().unwrap().starts_with("SPDXRef-File-"));
        sha1s.push(sha1);
    }
    sha1s.sort();
    assert_eq!(
        rootfs["packageVerificationCode"]["packageVerificationCodeValue"],
        hex::encode(Sha1::digest(sha1s.concat().as_bytes()))
    );

    // Relationships: the document describes the rootfs, which contains every package and file.
    let rels = doc["relationships"].as_array().unwrap();
    assert_eq!(
        rels[0],
        json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Package-rootfs"})
    );
    assert_eq!(rels.len(), 1 + 3 + 5);
    let mut ids: Vec<&str> = packages
        .iter()
        .chain(files)
        .map(|e| e["SPDXID"].as_str().unwrap())
        .collect();
    for r in &rels[1..] {
        assert_eq!(r["spdxElementId"], "SPDXRef-Package-rootfs");
        assert_eq!(r["relationshipType"], "CONTAINS");
        assert!(ids.contains(&r["relatedSpdxElement"].as_str().unwrap()));
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "SPDX ids are not unique");
}

#[test]
fn sbom_is_byte_identical_across_runs_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (t, m) = build_rootfs(dir.path(), &tree(Some(STATUS.as_bytes())));
    let (a, b) = (
        dir.path().join("a.spdx.json"),
        dir.path().join("b.spdx.json"),
    );
    write_sbom(&req(&t, &m), &a).unwrap();
    // Same content under other names, elsewhere.
    let other = dir.path().join("elsewhere");
    fs::create_dir(&other).unwrap();
    fs::copy(&t, other.join("x.tar")).unwrap();
    fs::copy(&m, other.join("y.json")).unwrap();
    write_sbom(&req(&other.join("x.tar"), &other.join("y.json")), &b).unwrap();
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    assert!(fs::read(&a).unwrap().ends_with(b"}\n"));
}

#[test]
fn without_dpkg_status_only_the_rootfs_package_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (t, m) = build_rootfs(dir.path(), &tree(None));
    let doc: Value = serde_json::from_slice(&render_sbom(&req(&t, &m)).unwrap()).unwrap();
    assert_eq!(doc["packages"].as_array().unwrap().len(), 1);
    assert_eq!(doc["files"].as_array().unwrap().len(), 4);
}

#[test]
fn a_tar_that_does_not_match_its_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (t, m) = build_rootfs(dir.path(), &tree(Some(STATUS.as_bytes())));

    // A tar from another build.
    let mut bytes = fs::read(&t).unwrap();
    let pos = bytes.windows(8).position(|w| w == b"welcome\n").unwrap();
    bytes[pos] = b'W';
    fs::write(&t, &bytes).unwrap();
    let err = render_sbom(&req(&t, &m)).unwrap_err();
    assert!(matches!(err, SbomError::Mismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("the manifest's output is"),
        "{err}"
    );

    // The manifest's output matches, but one file's digest does not.
    let mut manifest: Value = serde_json::from_slice(&fs::read(&m).unwrap()).unwrap();
    manifest["output"]["sha256"] = json!(icos_common::Digest::of(&bytes).to_string());
    fs::write(&m, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let err = render_sbom(&req(&t, &m)).unwrap_err();
    assert!(
        err.to_string().contains("/etc/motd: the tar holds"),
        "{err}"
    );

    // A file in the tar that the manifest does not list.
    let (t2, m2) = build_rootfs(dir.path(), &tree(Some(STATUS.as_bytes())));
    let mut manifest: Value = serde_json::from_slice(&fs::read(&m2).unwrap()).unwrap();
    manifest["entries"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["path"] != "/etc/passwd");
    fs::write(&m2, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let err = render_sbom(&req(&t2, &m2)).unwrap_err();
    assert!(
        err.to_string()
            .contains("/etc/passwd is a regular file in the tar but not in the manifest"),
        "{err}"
    );
}

#[test]
fn bad_names_manifests_and_status_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (t, m) = build_rootfs(
        dir.path(),
        &tree(Some(
            b"Package: broken\nStatus: install ok installed\nArchitecture: amd64\n",
        )),
    );
    let err = render_sbom(&req(&t, &m)).unwrap_err();
    assert!(matches!(err, SbomError::BadDpkgStatus { .. }), "{err}");
    assert!(
        err.to_string().contains("\"broken\" has no Version"),
        "{err}"
    );

    let err = render_sbom(&SbomRequest {
        name: "my image/../x",
        ..req(&t, &m)
    })
    .unwrap_err();
    assert!(matches!(err, SbomError::BadName(_)), "{err}");

    let bad = dir.path().join("bad.json");
    fs::write(&bad, r#"{"schema":"icos.rootfs-manifest/v9","source_date_epoch":1,"output":{"sha256":"sha256:00","size":1},"entries":[]}"#).unwrap();
    let err = render_sbom(&req(&t, &bad)).unwrap_err();
    assert!(matches!(err, SbomError::BadManifest { .. }), "{err}");

    let not_tar = dir.path().join("not.tar");
    fs::write(&not_tar, vec![b'x'; 1024]).unwrap();
    let err = render_sbom(&req(&not_tar, &m)).unwrap_err();
    assert!(matches!(err, SbomError::BadTar { .. }), "{err}");
    let out = dir.path().join("out.json");
    assert!(write_sbom(&req(&not_tar, &m), &out).is_err());
    assert!(!out.exists(), "a failed run left an output");
}

#[test]
fn xattr_values_with_newlines_do_not_hide_files() {
    // The PAX header holds an xattr value with 0x0A and '=' bytes, then a long name's path. The
    // value's second line looks like a record of its own (a forged path) to a parser that splits
    // at newlines instead of honouring the length prefix.
    let dir = tempfile::tempdir().unwrap();
    let long = format!("/usr/bin/{}", "n".repeat(120));
    let mut entries: Vec<(&str, Kind)> = tree(None);
    entries.push((
        &long,
        Kind::XattrFile(b"long file\n", b"a=b\n19 path=./etc/evil"),
    ));
    let (t, m) = build_rootfs(dir.path(), &entries);
    let doc: Value = serde_json::from_slice(&render_sbom(&req(&t, &m)).unwrap()).unwrap();
    let files = doc["files"].as_array().unwrap();
    let file = files
        .iter()
        .find(|f| f["fileName"] == format!(".{long}"))
        .unwrap_or_else(|| panic!("no {long} in {files:?}"));
    assert_eq!(
        file["checksums"][0]["checksumValue"],
        hex::encode(Sha1::digest(b"long file\n"))
    );
    assert!(!files.iter().any(|f| f["fileName"] == "./etc/evil"));
}

#[test]
fn packages_a_base_layer_added_or_removed_are_annotated_with_that_layer() {
    use icos_sign::layers::LayerChange;
    use icos_sign::sbom::{parse_dpkg_status, DebPackage};
    let dir = tempfile::tempdir().unwrap();
    let (t, m) = build_rootfs(dir.path(), &tree(Some(STATUS.as_bytes())));
    let installed = parse_dpkg_status(STATUS).unwrap();
    let tzdata = installed
        .iter()
        .find(|p| p.name == "tzdata")
        .unwrap()
        .clone();
    let gone = DebPackage {
        name: "e2fsprogs".into(),
        architecture: "amd64".into(),
        version: "1.47.0-2+b2".into(),
        source: None,
    };
    let digest: icos_common::Digest =
        "sha256:a6f62acdf15970fc8cb03ce4bd6d733e43b2cfd8d832cf5343eadde7fd574c48"
            .parse()
            .unwrap();
    let changes = [LayerChange {
        index: 3,
        digest,
        created_by: "/bin/sh -c dpkg -i tzdata.deb && dpkg --purge e2fsprogs".into(),
        // A package added but no longer in the image is not annotated anywhere.
        added: vec![
            tzdata,
            DebPackage {
                name: "later-removed".into(),
                ..gone.clone()
            },
        ],
        removed: vec![gone],
    }];
    let doc: Value = serde_json::from_slice(
        &render_sbom(&SbomRequest {
            layer_changes: &changes,
            ..req(&t, &m)
        })
        .unwrap(),
    )
    .unwrap();
    let by_name = |n: &str| {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    let label = format!("base layer 3 ({digest}, dpkg -i tzdata.deb && dpkg --purge e2fsprogs)");
    let note = |comment: String| {
        json!([{"annotationDate": "2023-11-14T22:13:20Z", "annotationType": "OTHER",
                "annotator": format!("Tool: icos-sign-{}", env!("CARGO_PKG_VERSION")), "comment": comment}])
    };
    assert_eq!(
        by_name("tzdata")["annotations"],
        note(format!("added by {label}"))
    );
    assert!(by_name("libc6").get("annotations").is_none());
    assert_eq!(
        by_name("default")["annotations"],
        note(format!(
            "removed by {label}: pkg:deb/debian/e2fsprogs@1.47.0-2%2Bb2?arch=amd64"
        ))
    );
    assert!(!doc.to_string().contains("later-removed"));
}
