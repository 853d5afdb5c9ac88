//! OCI layouts (directory and tar): resolution, platforms, layer streaming, write_layout.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use icos_oci::media::OCI_LAYER_TAR;
use icos_oci::{BaseRef, Image, OpenOptions, Platform};

fn open(reference: &str, platform: &str) -> Result<Image, icos_oci::OciError> {
    let base: BaseRef = reference.parse().unwrap();
    Image::open(
        &base,
        &OpenOptions {
            platform: platform.parse().unwrap(),
            store: None,
        },
    )
}

fn assert_is_fixture(image: &Image, f: &Fixture) {
    assert_eq!(image.manifest_digest(), f.manifest.digest);
    assert_eq!(image.config_digest(), f.config.digest);
    assert_eq!(image.layers().len(), f.tars.len());
    for (i, (layer, want)) in image.layers().iter().zip(&f.layers).enumerate() {
        assert_eq!(
            (layer.digest, layer.size, layer.media_type.as_str()),
            (want.digest, want.size, want.media_type.as_str())
        );
        assert_eq!(
            read_layer(image, i).unwrap(),
            f.tars[i],
            "layer {i} content"
        );
        // Uncompressed layers can also be read in place, and verify there.
        match image.map_layer(i).unwrap() {
            Some(mapped) => {
                assert_eq!(want.media_type, OCI_LAYER_TAR, "layer {i} mapped");
                assert!(
                    mapped.bytes()[..] == f.tars[i][..],
                    "layer {i} mapped bytes"
                );
                mapped.verify().unwrap();
            }
            None => assert_ne!(want.media_type, OCI_LAYER_TAR, "layer {i} not mapped"),
        }
    }
}

#[test]
fn opens_a_layout_by_manifest_digest_and_streams_every_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("layout"));
    // Independent check of the digest the fixture helper computed.
    assert_eq!(
        sha256sum(&b.blob_path(&f.manifest.digest)),
        f.manifest.digest.to_string()
    );
    let image = open(
        &format!("oci:{}@{}", b.dir.display(), f.manifest.digest),
        "linux/amd64",
    )
    .unwrap();
    assert_eq!(image.index_digest(), None);
    assert_eq!(
        image.config_json(),
        fs::read(b.blob_path(&f.config.digest)).unwrap()
    );
    assert_is_fixture(&image, &f);
    // The uncompressed stream of the plain layer is the blob itself.
    assert_eq!(
        sha256sum(&b.blob_path(&f.layers[0].digest)),
        image.layers()[0].digest.to_string()
    );
}

#[test]
fn an_index_digest_picks_the_requested_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let MultiLayout { b, amd, arm, index } =
        multi_platform_layout(&tmp.path().join("layout"), 1, 2);
    let reference = format!("oci:{}@{}", b.dir.display(), index.digest);

    let image = open(&reference, "linux/amd64").unwrap();
    assert_eq!(image.index_digest(), Some(index.digest));
    assert_is_fixture(&image, &amd);

    let base: BaseRef = reference.parse().unwrap();
    let default = Image::open(&base, &OpenOptions::default()).unwrap();
    assert_eq!(default.manifest_digest(), amd.manifest.digest);
    assert_eq!(OpenOptions::default().platform, Platform::default());

    for p in ["linux/arm64", "linux/arm64/v8"] {
        let image = open(&reference, p).unwrap();
        assert_is_fixture(&image, &arm);
    }

    let e = open(&reference, "linux/s390x").unwrap_err().to_string();
    assert!(e.contains("no manifest for platform linux/s390x"), "{e}");
    assert!(e.contains("linux/amd64, linux/arm64/v8"), "{e}");
    assert!(
        e.contains(&index.digest.to_string()) && e.contains(&reference),
        "{e}"
    );
}

#[test]
fn oci_archive_is_read_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("layout"));
    let archive = tmp.path().join("layout.tar");
    tar_dir(&b.dir, &archive);
    fs::remove_dir_all(&b.dir).unwrap();
    let before: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let image = open(
        &format!("oci-archive:{}@{}", archive.display(), f.manifest.digest),
        "linux/amd64",
    )
    .unwrap();
    assert_is_fixture(&image, &f);
    let after: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "nothing may be extracted beside the archive");
}

#[test]
fn write_layout_is_deterministic_and_accepted_by_skopeo_and_umoci() {
    require_tool("skopeo", "skopeo");
    require_tool("umoci", "umoci");
    let tmp = tempfile::tempdir().unwrap();
    let MultiLayout { b, arm, index, .. } = multi_platform_layout(&tmp.path().join("layout"), 1, 2);
    let image = open(
        &format!("oci:{}@{}", b.dir.display(), index.digest),
        "linux/arm64",
    )
    .unwrap();

    let out = tmp.path().join("out");
    image.write_layout(&out).unwrap();
    let leftovers = hidden_entries(tmp.path());
    assert!(
        leftovers.is_empty(),
        "temporary directories left behind: {leftovers:?}"
    );

    // Exactly the chosen image: manifest, config and its three layers.
    let mut blobs: Vec<String> = fs::read_dir(out.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    blobs.sort();
    let mut want: Vec<String> = [&arm.manifest, &arm.config]
        .into_iter()
        .chain(&arm.layers)
        .map(|d| d.digest.hex())
        .collect();
    want.sort();
    assert_eq!(blobs, want);
    for name in &blobs {
        assert_eq!(
            sha256sum(&out.join("blobs/sha256").join(name)),
            format!("sha256:{name}")
        );
    }

    // skopeo reads it back: the manifest bytes and the config are ours.
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}", out.display())));
    assert_eq!(raw.as_bytes(), image.manifest_json());
    let config = run(Command::new("skopeo")
        .args(["inspect", "--config", "--raw"])
        .arg(format!("oci:{}", out.display())));
    assert_eq!(config.as_bytes(), image.config_json());
    // skopeo copies it (verifying every blob digest) into a directory.
    let copied = tmp.path().join("copied");
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}", out.display()))
        .arg(format!("dir:{}", copied.display())));
    assert_eq!(
        fs::read(copied.join("manifest.json")).unwrap(),
        image.manifest_json()
    );
    // umoci accepts the layout structure.
    let listing = run(Command::new("umoci").args(["ls", "--layout"]).arg(&out));
    assert!(
        listing.trim().is_empty(),
        "no tags expected, got {listing:?}"
    );

    // Our own reader opens it offline by manifest digest.
    let reopened = open(
        &format!("oci:{}@{}", out.display(), arm.manifest.digest),
        "linux/amd64",
    )
    .unwrap();
    assert_is_fixture(&reopened, &arm);

    // A second write replaces the layout with identical bytes.
    let index_before = fs::read(out.join("index.json")).unwrap();
    image.write_layout(&out).unwrap();
    assert_eq!(fs::read(out.join("index.json")).unwrap(), index_before);
    let expected_index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}}]}}"#,
        arm.manifest.digest, arm.manifest.size
    );
    assert_eq!(String::from_utf8(index_before).unwrap(), expected_index);
}

#[test]
fn write_layout_refuses_to_replace_other_things_and_leaves_nothing_on_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("layout"));
    let image = open(
        &format!("oci:{}@{}", b.dir.display(), f.manifest.digest),
        "linux/amd64",
    )
    .unwrap();

    let precious = tmp.path().join("precious");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("notes.txt"), b"keep me").unwrap();
    let e = image.write_layout(&precious).unwrap_err().to_string();
    assert!(
        e.contains("not an OCI layout") && e.contains("precious"),
        "{e}"
    );
    assert_eq!(fs::read(precious.join("notes.txt")).unwrap(), b"keep me");

    // Corrupt a layer after open: writing must fail and leave no output directory.
    let layer = b.blob_path(&f.layers[1].digest);
    let mut bytes = fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&layer, &bytes).unwrap();
    let out = tmp.path().join("out");
    let e = image.write_layout(&out).unwrap_err().to_string();
    assert!(
        e.contains(&f.layers[1].digest.to_string()) && e.contains("does not match"),
        "{e}"
    );
    assert!(
        !out.exists(),
        "a failed write_layout left {}",
        out.display()
    );
    let leftovers = hidden_entries(tmp.path());
    assert!(
        leftovers.is_empty(),
        "temporary directories left behind: {leftovers:?}"
    );
}

#[test]
fn verify_layer_reads_every_byte_and_reports_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("layout"));
    let image = open(
        &format!("oci:{}@{}", b.dir.display(), f.manifest.digest),
        "linux/amd64",
    )
    .unwrap();
    for (i, layer) in f.layers.iter().enumerate() {
        let mut seen = 0;
        image.verify_layer(i, &mut |n| seen += n).unwrap();
        assert_eq!(seen, layer.size);
    }
    let e = image.open_layer(7).err().unwrap().to_string();
    assert!(e.contains("has no layer 7"), "{e}");
}
