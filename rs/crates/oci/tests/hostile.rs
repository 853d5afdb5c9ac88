//! Hostile and broken inputs: each must fail with a message naming the blob and saying what is wrong.

mod common;

use std::fs;
use std::io::{self, Read};

use common::*;
use icos_common::Digest;
use icos_oci::media::*;
use icos_oci::{BaseRef, BlobError, Image, OpenOptions};
use serde_json::json;

fn open(reference: &str) -> Result<Image, icos_oci::OciError> {
    Image::open(
        &reference.parse::<BaseRef>().unwrap(),
        &OpenOptions::default(),
    )
}

fn oci_ref(b: &LayoutBuilder, d: &Digest) -> String {
    format!("oci:{}@{}", b.dir.display(), d)
}

/// Reads layer `i` to EOF and returns the error it must end with. An uncompressed layer is also
/// mapped in place: its verification must fail with the same error.
fn layer_error(image: &Image, i: usize) -> io::Error {
    let e = streamed_layer_error(image, i);
    if let Some(mapped) = image.map_layer(i).unwrap() {
        let m = mapped
            .verify()
            .expect_err("a bad layer mapped in place verified");
        assert_eq!((m.kind(), m.to_string()), (e.kind(), e.to_string()));
    }
    e
}

fn streamed_layer_error(image: &Image, i: usize) -> io::Error {
    let mut out = Vec::new();
    let mut reader = image.open_layer(i).unwrap();
    let e = reader
        .read_to_end(&mut out)
        .expect_err("reading a bad layer must fail");
    // The failure is sticky: a retry does not turn into a clean EOF.
    assert!(
        reader.read(&mut [0u8; 16]).is_err(),
        "a second read after the failure succeeded"
    );
    e
}

fn manifest_with(b: &LayoutBuilder, config: &Desc, layers: &[serde_json::Value]) -> Desc {
    b.json_blob(OCI_MANIFEST, &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.json(), "layers": layers}))
}

fn config_for(b: &LayoutBuilder, tars: &[&[u8]]) -> Desc {
    let diff_ids: Vec<String> = tars.iter().map(|t| Digest::of(t).to_string()).collect();
    b.json_blob(OCI_CONFIG, &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
}

#[test]
fn references_without_a_digest_or_with_a_malformed_one_are_refused() {
    let e = "oci:/some/layout"
        .parse::<BaseRef>()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not pinned") && e.contains("oci:/some/layout@sha256:<hex>"),
        "{e}"
    );
    let e = "docker://127.0.0.1:5000/base:latest"
        .parse::<BaseRef>()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("skopeo inspect") && e.contains("docker://127.0.0.1:5000/base@sha256:<hex>"),
        "{e}"
    );
    let e = "oci:/l@sha256:ABCDEF"
        .parse::<BaseRef>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("malformed digest"), "{e}");
}

#[test]
fn manifest_config_and_layer_digest_mismatches() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("l"));
    let reference = oci_ref(&b, &f.manifest.digest);

    // Layer: same size, different content. Open succeeds; reading fails by EOF, naming the blob.
    let layer_path = b.blob_path(&f.layers[0].digest);
    let original = fs::read(&layer_path).unwrap();
    let mut tampered = original.clone();
    tampered[600] ^= 1;
    fs::write(&layer_path, &tampered).unwrap();
    let image = open(&reference).unwrap();
    let e = layer_error(&image, 0);
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let msg = e.to_string();
    assert!(
        msg.contains(&f.layers[0].digest.to_string()) && msg.contains(&reference),
        "{msg}"
    );
    assert!(
        msg.contains("does not match the digest")
            && msg.contains(&Digest::of(&tampered).to_string()),
        "{msg}"
    );
    assert!(e.get_ref().unwrap().downcast_ref::<BlobError>().is_some());
    fs::write(&layer_path, &original).unwrap();

    // Config: content swapped.
    let config_path = b.blob_path(&f.config.digest);
    let config = fs::read(&config_path).unwrap();
    fs::write(
        &config_path,
        String::from_utf8(config.clone())
            .unwrap()
            .replace("amd64", "arm64"),
    )
    .unwrap();
    let e = open(&reference).unwrap_err().to_string();
    assert!(
        e.contains(&format!("config {}", f.config.digest))
            && e.contains("does not match the digest"),
        "{e}"
    );
    fs::write(&config_path, &config).unwrap();

    // Manifest: content swapped.
    let manifest_path = b.blob_path(&f.manifest.digest);
    let manifest = fs::read(&manifest_path).unwrap();
    fs::write(&manifest_path, [&manifest[..], b" "].concat()).unwrap();
    let e = open(&reference).unwrap_err().to_string();
    assert!(
        e.contains(&f.manifest.digest.to_string()) && e.contains("does not match the digest"),
        "{e}"
    );
}

#[test]
fn size_mismatches_are_caught_before_and_while_streaming() {
    let tmp = tempfile::tempdir().unwrap();
    let b = LayoutBuilder::new(&tmp.path().join("l"));
    let tar = layer_tar(&[("a", b"content")]);
    let layer = b.blob(OCI_LAYER_TAR_GZIP, &gzip(&tar));
    let config = config_for(&b, &[&tar]);
    // The manifest declares one byte more than the stored layer.
    let mut lying = layer.json();
    lying["size"] = json!(layer.size + 1);
    let m = manifest_with(&b, &config, &[lying]);
    let e = open(&oci_ref(&b, &m.digest)).unwrap_err().to_string();
    assert!(
        e.contains("size mismatch") && e.contains(&layer.digest.to_string()),
        "{e}"
    );

    // A config whose descriptor size is wrong.
    let mut short_config = config.json();
    short_config["size"] = json!(config.size - 1);
    let m = b.json_blob(OCI_MANIFEST, &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": short_config, "layers": [layer.json()]}));
    let e = open(&oci_ref(&b, &m.digest)).unwrap_err().to_string();
    assert!(e.contains("config") && e.contains("longer than the"), "{e}");

    // While streaming: the blob grows after open (a long blob), then shrinks (a short one).
    let good = manifest_with(&b, &config, &[layer.json()]);
    let image = open(&oci_ref(&b, &good.digest)).unwrap();
    let path = b.blob_path(&layer.digest);
    let stored = fs::read(&path).unwrap();
    fs::write(&path, [&stored[..], b"extra"].concat()).unwrap();
    let mut blob = Vec::new();
    let e = image
        .open_layer_blob(0)
        .unwrap()
        .read_to_end(&mut blob)
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("longer than"), "{e}");
    fs::write(&path, &stored[..stored.len() - 3]).unwrap();
    let e = layer_error(&image, 0);
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");

    // The same for an uncompressed layer, read in place.
    let plain = b.blob(OCI_LAYER_TAR, &tar);
    let m = manifest_with(&b, &config, &[plain.json()]);
    let image = open(&oci_ref(&b, &m.digest)).unwrap();
    let path = b.blob_path(&plain.digest);
    fs::write(&path, [&tar[..], b"extra"].concat()).unwrap();
    let e = image.map_layer(0).unwrap().unwrap().verify().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("longer than"), "{e}");
    fs::write(&path, &tar[..tar.len() - 3]).unwrap();
    let e = layer_error(&image, 0); // also checks the mapped layer's error is the same
    assert!(e.to_string().contains("blob is truncated"), "{e}");
}

#[test]
fn truncated_gzip_and_zstd_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let b = LayoutBuilder::new(&tmp.path().join("l"));
    let tar = layer_tar(&[("big", &noise(100_000, 9))]);
    let gz = gzip(&tar);
    let zs = zstd(&tar);
    // The stored blobs themselves are cut short (and described truthfully), so only the
    // decompressor can notice.
    let gz_cut = b.blob(OCI_LAYER_TAR_GZIP, &gz[..gz.len() / 2]);
    let zs_cut = b.blob(OCI_LAYER_TAR_ZSTD, &zs[..zs.len() - 10]);
    let config = config_for(&b, &[&tar, &tar]);
    let m = manifest_with(&b, &config, &[gz_cut.json(), zs_cut.json()]);
    let reference = oci_ref(&b, &m.digest);
    let image = open(&reference).unwrap();
    for (i, (what, d)) in [("gzip", &gz_cut), ("zstd", &zs_cut)]
        .into_iter()
        .enumerate()
    {
        let e = layer_error(&image, i);
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{what}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{what} data is corrupt or truncated")),
            "{msg}"
        );
        assert!(
            msg.contains(&d.digest.to_string()) && msg.contains(&reference),
            "{msg}"
        );
    }
}

#[test]
fn wrong_media_types() {
    let tmp = tempfile::tempdir().unwrap();
    let b = LayoutBuilder::new(&tmp.path().join("l"));
    let tar = layer_tar(&[("a", b"x")]);
    let layer = b.blob(OCI_LAYER_TAR, &tar);
    let config = config_for(&b, &[&tar]);

    // A config that is not an image config (an artifact).
    let mut odd_config = config.json();
    odd_config["mediaType"] = json!("application/vnd.cncf.helm.config.v1+json");
    let m = b.json_blob(OCI_MANIFEST, &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": odd_config, "layers": [layer.json()]}));
    let e = open(&oci_ref(&b, &m.digest)).unwrap_err().to_string();
    assert!(
        e.contains("not an image config") && e.contains(&config.digest.to_string()),
        "{e}"
    );

    // Foreign and non-distributable layers.
    for mt in [
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ] {
        let mut foreign = layer.json();
        foreign["mediaType"] = json!(mt);
        let m = manifest_with(&b, &config, &[foreign]);
        let e = open(&oci_ref(&b, &m.digest)).unwrap_err().to_string();
        assert!(
            e.contains("foreign/non-distributable") && e.contains(&layer.digest.to_string()),
            "{e}"
        );
    }
    // An unknown layer type.
    let mut odd = layer.json();
    odd["mediaType"] = json!("application/x-rar");
    let m = manifest_with(&b, &config, &[odd]);
    let e = open(&oci_ref(&b, &m.digest)).unwrap_err().to_string();
    assert!(
        e.contains("\"application/x-rar\" is not a layer type"),
        "{e}"
    );

    // A schema 1 manifest, and a document that is a config, pinned as the image.
    let s1 = b.json_blob("x", &json!({"schemaVersion": 1, "mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws", "fsLayers": []}));
    let e = open(&oci_ref(&b, &s1.digest)).unwrap_err().to_string();
    assert!(
        e.contains("schema 1") && e.contains(&s1.digest.to_string()),
        "{e}"
    );
    let e = open(&oci_ref(&b, &config.digest)).unwrap_err().to_string();
    assert!(
        e.contains("neither an image index nor a manifest")
            && e.contains("pin the manifest digest"),
        "{e}"
    );

    // An index entry that says "OCI manifest" for a document that says "Docker manifest".
    let docker_manifest = b.json_blob(
        DOCKER_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config.json(), "layers": [layer.json()]}),
    );
    let mut entry = docker_manifest.json();
    entry["mediaType"] = json!(OCI_MANIFEST);
    entry["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let index = b.json_blob(
        OCI_INDEX,
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}),
    );
    let e = open(&oci_ref(&b, &index.digest)).unwrap_err().to_string();
    assert!(
        e.contains("referenced as") && e.contains(&docker_manifest.digest.to_string()),
        "{e}"
    );
    // ... while the Docker manifest on its own is fine.
    let image = open(&oci_ref(&b, &docker_manifest.digest)).unwrap();
    assert_eq!(image.manifest_media_type(), DOCKER_MANIFEST);
}

#[test]
fn index_without_the_requested_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let b = LayoutBuilder::new(&tmp.path().join("l"));
    let arm = b.image(&standard_layers(3), "arm64");
    let index = b.index(&[(&arm.manifest, "linux/arm64/v8")]);
    let e = open(&oci_ref(&b, &index.digest)).unwrap_err().to_string();
    assert!(
        e.contains("no manifest for platform linux/amd64") && e.contains("it has: linux/arm64/v8"),
        "{e}"
    );
    assert!(e.contains("--platform"), "{e}");
}

#[test]
fn missing_blobs_oversized_documents_and_non_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("l"));
    let reference = oci_ref(&b, &f.manifest.digest);

    fs::rename(b.blob_path(&f.layers[2].digest), tmp.path().join("aside")).unwrap();
    let e = open(&reference).unwrap_err().to_string();
    assert!(
        e.contains("layer 2") && e.contains("is missing") && e.contains(&f.layers[2].digest.hex()),
        "{e}"
    );

    let huge = vec![b' '; (icos_oci::MAX_DOCUMENT_SIZE + 1) as usize];
    let big = b.blob(OCI_MANIFEST, &huge);
    let e = open(&oci_ref(&b, &big.digest)).unwrap_err().to_string();
    assert!(
        e.contains("larger than the") && e.contains(&big.digest.to_string()),
        "{e}"
    );

    fs::remove_file(b.dir.join("oci-layout")).unwrap();
    let e = open(&reference).unwrap_err().to_string();
    assert!(e.contains("is not an OCI image layout"), "{e}");

    let e = open(&format!(
        "oci:{}@{}",
        tmp.path().join("nope").display(),
        f.manifest.digest
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("is not an OCI image layout"), "{e}");

    let e = open(&format!(
        "oci-archive:{}@{}",
        tmp.path().join("nope.tar").display(),
        f.manifest.digest
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("nope.tar") && e.contains("No such file"), "{e}");

    let junk = tmp.path().join("junk.tar");
    fs::write(&junk, noise(5000, 1)).unwrap();
    let e = open(&format!(
        "oci-archive:{}@{}",
        junk.display(),
        f.manifest.digest
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("junk.tar"), "{e}");
}

#[test]
fn malformed_descriptors() {
    let tmp = tempfile::tempdir().unwrap();
    let b = LayoutBuilder::new(&tmp.path().join("l"));
    let tar = layer_tar(&[("a", b"x")]);
    let layer = b.blob(OCI_LAYER_TAR, &tar);
    let config = config_for(&b, &[&tar]);
    let mut bad = layer.json();
    bad["digest"] = json!("sha256:../../../etc/passwd");
    let m = manifest_with(&b, &config, &[bad]);
    let e = open(&oci_ref(&b, &m.digest)).unwrap_err().to_string();
    assert!(e.contains("malformed digest"), "{e}");

    let mut negative = layer.json();
    negative["size"] = json!(-1);
    let m = manifest_with(&b, &config, &[negative]);
    let e = open(&oci_ref(&b, &m.digest)).unwrap_err().to_string();
    assert!(e.contains("negative size"), "{e}");

    // An uncompressed layer must be its own diff_id.
    let other = config_for(&b, &[b"something else"]);
    let m = manifest_with(&b, &other, &[layer.json()]);
    let e = open(&oci_ref(&b, &m.digest)).unwrap_err().to_string();
    assert!(e.contains("rootfs.diff_ids[0]"), "{e}");

    // Layer count and diff_ids disagree.
    let two = config_for(&b, &[&tar, &tar]);
    let m = manifest_with(&b, &two, &[layer.json()]);
    let e = open(&oci_ref(&b, &m.digest)).unwrap_err().to_string();
    assert!(
        e.contains("lists 2 rootfs.diff_ids") && e.contains("has 1 layers"),
        "{e}"
    );
}
