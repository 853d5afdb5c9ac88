//! `docker save` archives: real ones from the Docker daemon (legacy format on Docker < 25), the
//! Docker ≥ 25 shape (OCI layout inside), and hostile ones.

mod common;

use std::fs;
use std::io::Read;
use std::process::Command;

use common::*;
use icos_common::Digest;
use icos_oci::media::*;
use icos_oci::{BaseRef, Image, OpenOptions};
use serde_json::json;

fn open(reference: &str) -> Result<Image, icos_oci::OciError> {
    Image::open(
        &reference.parse::<BaseRef>().unwrap(),
        &OpenOptions::default(),
    )
}

/// Writes a tar of `(name, content)` members in the given order (names are not checked: hostile
/// archives are the point), plus `(name, target)` symlinks.
fn write_tar(path: &std::path::Path, files: &[(&str, &[u8])], symlinks: &[(&str, &str)]) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path would refuse `..`; write the raw name field instead.
        let raw = &mut h.as_gnu_mut().unwrap().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    for (name, target) in symlinks {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_link_name(target).unwrap();
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    }
    b.finish().unwrap();
}

/// The config of an image with these layer tars.
fn legacy_config(tars: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = tars.iter().map(|t| Digest::of(t).to_string()).collect();
    serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}})).unwrap()
}

/// A legacy `docker save` archive: the image whose config lists `config_tars` as diff_ids, with
/// `stored_tars` stored as its layers under `layer_names`. Returns the image ID.
fn legacy_archive_with(
    path: &std::path::Path,
    config_tars: &[Vec<u8>],
    stored_tars: &[Vec<u8>],
    layer_names: &[&str],
) -> Digest {
    let config = legacy_config(config_tars);
    let id = Digest::of(&config);
    let config_name = format!("{}.json", id.hex());
    let manifest = serde_json::to_vec(
        &json!([{"Config": config_name, "RepoTags": ["test:1"], "Layers": layer_names}]),
    )
    .unwrap();
    let mut files: Vec<(&str, &[u8])> = vec![("manifest.json", &manifest), (&config_name, &config)];
    for (name, tar) in layer_names.iter().zip(stored_tars) {
        files.push((name, tar));
    }
    write_tar(path, &files, &[]);
    id
}

fn legacy_archive(path: &std::path::Path, tars: &[Vec<u8>], layer_names: &[&str]) -> Digest {
    legacy_archive_with(path, tars, tars, layer_names)
}

#[test]
fn real_docker_save_archive() {
    if !docker_available() {
        println!("skipped: no docker daemon");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(ctx.join("one.txt"), b"first layer\n").unwrap();
    fs::write(ctx.join("two.bin"), noise(70_000, 4)).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY one.txt /etc/one.txt\nCOPY two.bin /usr/two.bin\n",
    )
    .unwrap();
    let tag = format!("icos-oci-test:{}", std::process::id());
    run(Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(&ctx));
    let save = tmp.path().join("save.tar");
    run(Command::new("docker")
        .args(["save", "-o"])
        .arg(&save)
        .arg(&tag));
    let id = run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &tag]))
        .trim()
        .to_string();
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();

    let reference = format!("docker-archive:{}@{id}", save.display());
    let image = open(&reference).unwrap();
    assert_eq!(image.config_digest().to_string(), id);
    assert_eq!(image.layers().len(), 2);
    let mut found = Vec::new();
    for i in 0..2 {
        let data = read_layer(&image, i).unwrap();
        // The plain layer is its own diff_id: check that independently of our code.
        let layer_file = tmp.path().join(format!("layer{i}.tar"));
        fs::write(&layer_file, &data).unwrap();
        assert_eq!(sha256sum(&layer_file), image.layers()[i].digest.to_string());
        // Read in place from the archive member, the same bytes, and they verify.
        let mapped = image
            .map_layer(i)
            .unwrap()
            .expect("docker save layers are plain");
        assert!(mapped.bytes()[..] == data[..], "layer {i} mapped in place");
        mapped.verify().unwrap();
        let mut archive = tar::Archive::new(&data[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type().is_file() {
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                found.push((entry.path().unwrap().display().to_string(), content));
            }
        }
    }
    assert_eq!(
        found,
        vec![
            ("etc/one.txt".to_string(), b"first layer\n".to_vec()),
            ("usr/two.bin".to_string(), noise(70_000, 4))
        ]
    );

    // The synthesized manifest is deterministic: a second open gives the same digest, and the
    // layout written from it is accepted by skopeo.
    assert_eq!(
        open(&reference).unwrap().manifest_digest(),
        image.manifest_digest()
    );
    require_tool("skopeo", "skopeo");
    let out = tmp.path().join("layout");
    image.write_layout(&out).unwrap();
    let config = run(Command::new("skopeo")
        .args(["inspect", "--config", "--raw"])
        .arg(format!("oci:{}", out.display())));
    assert_eq!(config.as_bytes(), image.config_json());
    let copied = tmp.path().join("copied");
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}", out.display()))
        .arg(format!("dir:{}", copied.display())));

    // An unknown image ID lists the ones the archive holds.
    let e = open(&format!(
        "docker-archive:{}@{}",
        save.display(),
        Digest::of(b"x")
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("has no image with ID") && e.contains(&id) && e.contains(&tag),
        "{e}"
    );
}

#[test]
fn legacy_archive_layers_are_checked_against_diff_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let tars = vec![
        layer_tar(&[("a", b"one")]),
        layer_tar(&[("b", &noise(50_000, 2))]),
    ];
    let good = tmp.path().join("good.tar");
    let id = legacy_archive(&good, &tars, &["l1/layer.tar", "l2/layer.tar"]);
    let image = open(&format!("docker-archive:{}@{id}", good.display())).unwrap();
    assert_eq!(image.index_digest(), None);
    assert_eq!(Digest::of(image.manifest_json()), image.manifest_digest());
    for (i, t) in tars.iter().enumerate() {
        assert_eq!(&read_layer(&image, i).unwrap(), t);
        assert_eq!(image.layers()[i].media_type, OCI_LAYER_TAR);
    }

    // Same archive, second layer altered (same size): its diff_id no longer matches.
    let mut bad_tars = tars.clone();
    bad_tars[1][1000] ^= 0x20;
    let bad = tmp.path().join("bad.tar");
    assert_eq!(
        legacy_archive_with(&bad, &tars, &bad_tars, &["l1/layer.tar", "l2/layer.tar"]),
        id
    );
    let reference = format!("docker-archive:{}@{id}", bad.display());
    let image = open(&reference).unwrap();
    assert_eq!(read_layer(&image, 0).unwrap(), tars[0]);
    let mut out = Vec::new();
    let e = image
        .open_layer(1)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    let msg = e.to_string();
    assert!(
        msg.contains("rootfs.diff_ids[1]")
            && msg.contains("l2/layer.tar")
            && msg.contains("does not match"),
        "{msg}"
    );
    assert!(msg.contains(&reference), "{msg}");
}

#[test]
fn hostile_member_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = layer_tar(&[("a", b"one")]);
    for (i, name) in ["../evil/layer.tar", "/abs/layer.tar", "ok/../../layer.tar"]
        .into_iter()
        .enumerate()
    {
        let path = tmp.path().join(format!("hostile{i}.tar"));
        let id = legacy_archive(&path, std::slice::from_ref(&tar), &[name]);
        let e = open(&format!("docker-archive:{}@{id}", path.display()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("absolute or contains '..'") && e.contains(name),
            "{name}: {e}"
        );
    }

    // A hostile Config name.
    let path = tmp.path().join("config.tar");
    let manifest =
        serde_json::to_vec(&json!([{"Config": "../../etc/passwd", "Layers": []}])).unwrap();
    write_tar(&path, &[("manifest.json", &manifest)], &[]);
    let e = open(&format!(
        "docker-archive:{}@{}",
        path.display(),
        Digest::of(b"x")
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("absolute or contains '..'") && e.contains("../../etc/passwd"),
        "{e}"
    );

    // A symlink member that points outside the archive.
    let path = tmp.path().join("symlink.tar");
    let diff = Digest::of(&tar).to_string();
    let config = serde_json::to_vec(
        &json!({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff]}}),
    )
    .unwrap();
    let id = Digest::of(&config);
    let manifest =
        serde_json::to_vec(&json!([{"Config": "c.json", "Layers": ["l/layer.tar"]}])).unwrap();
    write_tar(
        &path,
        &[("manifest.json", &manifest), ("c.json", &config)],
        &[("l/layer.tar", "../../../etc/passwd")],
    );
    let e = open(&format!("docker-archive:{}@{id}", path.display()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside the archive"), "{e}");

    // A symlink inside the archive is followed.
    let path = tmp.path().join("inside.tar");
    write_tar(
        &path,
        &[
            ("manifest.json", &manifest),
            ("c.json", &config),
            ("blobs/x", &tar),
        ],
        &[("l/layer.tar", "../blobs/x")],
    );
    let image = open(&format!("docker-archive:{}@{id}", path.display())).unwrap();
    assert_eq!(read_layer(&image, 0).unwrap(), tar);
}

#[test]
fn docker_25_archive_with_an_oci_layout_opens_by_image_id_or_manifest_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("save");
    let b = LayoutBuilder::new(&dir);
    let tars = [
        layer_tar(&[("etc/x", b"x")]),
        layer_tar(&[("usr/y", &noise(30_000, 7))]),
    ];
    let f = b.image(
        &[
            (OCI_LAYER_TAR, tars[0].clone(), tars[0].clone()),
            (OCI_LAYER_TAR, tars[1].clone(), tars[1].clone()),
        ],
        "amd64",
    );
    b.write_index_json(&[(&f.manifest, "latest")]);
    let manifest_json = json!([{
        "Config": format!("blobs/sha256/{}", f.config.digest.hex()),
        "RepoTags": ["save:latest"],
        "Layers": f.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
    }]);
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest_json).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("repositories"), br#"{"save":{"latest":"x"}}"#).unwrap();
    let archive = tmp.path().join("save.tar");
    tar_dir(&dir, &archive);

    for pin in [f.config.digest, f.manifest.digest] {
        let image = open(&format!("docker-archive:{}@{pin}", archive.display())).unwrap();
        assert_eq!(
            image.manifest_digest(),
            f.manifest.digest,
            "pinned by {pin}"
        );
        assert_eq!(image.config_digest(), f.config.digest);
        for (i, t) in tars.iter().enumerate() {
            assert_eq!(&read_layer(&image, i).unwrap(), t);
        }
    }
    let e = open(&format!(
        "docker-archive:{}@{}",
        archive.display(),
        Digest::of(b"none")
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("has no image with ID")
            && e.contains("index.json")
            && e.contains(&f.config.digest.to_string()),
        "{e}"
    );
}
