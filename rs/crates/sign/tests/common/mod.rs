//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use icos_common::{sha256_file, Digest};
use icos_sign::{
    keygen, sign_file, write_provenance, write_sbom, Protection, ProvenanceRequest, SbomRequest,
    SigningKey,
};
use serde_json::json;

/// Stock minisign (Debian package `minisign`); a test that needs it fails when it is missing.
pub fn minisign() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("minisign");
        if p.is_file() {
            return p;
        }
    }
    panic!("the `minisign` program is not installed: run `apt-get install -y minisign` (Debian package minisign)");
}

/// Runs stock minisign with `stdin` as standard input.
pub fn run_minisign(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(minisign())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run minisign");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `minisign -Vm FILE -p PUB`; returns (success, stdout+stderr).
pub fn stock_verify(file: &Path, public_key: &Path) -> (bool, String) {
    let out = run_minisign(
        &[
            "-Vm",
            file.to_str().unwrap(),
            "-p",
            public_key.to_str().unwrap(),
        ],
        "",
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// An unencrypted key pair (fast: no scrypt) in `dir` as NAME.key / NAME.pub.
pub fn quick_key(dir: &Path, name: &str) -> (PathBuf, PathBuf, SigningKey) {
    let sk = dir.join(format!("{name}.key"));
    let pk = dir.join(format!("{name}.pub"));
    keygen(&sk, &pk, &Protection::Unencrypted, false).unwrap();
    let key = SigningKey::load(&sk, None).unwrap();
    (sk, pk, key)
}

/// The files `SHA256SUMS` of a release lists, sorted.
pub const LISTED: [&str; 4] = [
    "build-manifest.json",
    "disk-img.tar.zst",
    "rootfs.manifest.json",
    "update-img.tar.zst",
];
/// The files a release holds besides the listed ones.
pub const SIGNED_METADATA: [&str; 2] = ["provenance.intoto.json", "sbom.spdx.json"];
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const SDE: u64 = 1_700_000_000;

/// Writes SHA256SUMS (sorted, coreutils format) for `names` in `dir`.
pub fn write_sums(dir: &Path, names: &[&str]) {
    let mut names = names.to_vec();
    names.sort();
    let mut text = String::new();
    for n in names {
        let (d, _) = sha256_file(&dir.join(n)).unwrap();
        text.push_str(&format!("{}  {n}\n", d.hex()));
    }
    fs::write(dir.join("SHA256SUMS"), text).unwrap();
}

fn digest(data: &[u8]) -> String {
    Digest::of(data).to_string()
}

/// A rootfs tar (`./`, `./etc/`, `./etc/motd` holding `motd`) and its manifest, in the formats of
/// ARCHITECTURE.md. Returns (tar bytes, manifest bytes).
pub fn rootfs(motd: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut entries = Vec::new();
    for (name, path, data) in [
        ("./", "/", None),
        ("./etc/", "/etc", None),
        ("./etc/motd", "/etc/motd", Some(motd)),
    ] {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mtime(SDE);
        h.set_uid(0);
        h.set_gid(0);
        let mut m = json!({"path": path, "uid": 0, "gid": 0, "mtime": SDE});
        match data {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                m["type"] = json!("dir");
                m["mode"] = json!("0755");
            }
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                m["type"] = json!("file");
                m["mode"] = json!("0644");
                m["size"] = json!(d.len());
                m["sha256"] = json!(digest(d));
            }
        }
        let data = data.unwrap_or(b"");
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
        entries.push(m);
    }
    let tar = b.into_inner().unwrap();
    let manifest = json!({
        "schema": "icos.rootfs-manifest/v1",
        "tool": {"name": "icos-rootfs", "version": "0.1.0"},
        "source_date_epoch": SDE,
        "inputs": {},
        "output": {"sha256": digest(&tar), "size": tar.len()},
        "entries": entries,
    });
    (tar, serde_json::to_vec_pretty(&manifest).unwrap())
}

/// A complete signed release of build `variant` in `dir`: artifacts, a build manifest and a
/// rootfs manifest that describe them, SHA256SUMS, the provenance and the SBOM made by icos-sign
/// from them, and signatures of SHA256SUMS, build-manifest.json, the provenance and the SBOM.
/// Two variants are two builds: every file differs. The rootfs tar is kept beside `dir`.
pub fn make_release_variant(dir: &Path, key: &SigningKey, variant: &str) {
    fs::create_dir_all(dir).unwrap();
    let (tar, rootfs_manifest) = rootfs(format!("welcome to build {variant}\n").as_bytes());
    let tar_path = dir.with_file_name(format!(
        "{}.rootfs.tar",
        dir.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&tar_path, &tar).unwrap();
    fs::write(dir.join("rootfs.manifest.json"), &rootfs_manifest).unwrap();
    let zstd_magic = [0x28, 0xb5, 0x2f, 0xfd];
    let disk = [
        &zstd_magic[..],
        format!(" disk image of build {variant}").as_bytes(),
    ]
    .concat();
    let update = [
        &zstd_magic[..],
        format!(" update image of build {variant}").as_bytes(),
    ]
    .concat();
    fs::write(dir.join("disk-img.tar.zst"), &disk).unwrap();
    fs::write(dir.join("update-img.tar.zst"), &update).unwrap();
    let manifest = json!({
        "schema": "icos.build-manifest/v1",
        "image": "default",
        "source_date_epoch": SDE,
        "seed": format!("seed-{variant}"),
        "tools": [{"name": "icos-tools", "version": "0.1.0", "digest": digest(b"tools")}],
        "inputs": [{"name": "base", "uri": format!("oci:base@{}", digest(b"base")), "digest": digest(b"base")}],
        "rootfs": {"manifest_sha256": digest(&rootfs_manifest), "tar_sha256": digest(&tar), "entries": 3},
        "disk": {"sha256": digest(b"disk"), "size": 4, "disk_guid": "00000000-0000-0000-0000-000000000000", "partitions": []},
        "artifacts": [
            {"name": "disk-img.tar.zst", "sha256": digest(&disk), "size": disk.len()},
            {"name": "update-img.tar.zst", "sha256": digest(&update), "size": update.len()},
        ],
    });
    fs::write(
        dir.join("build-manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    write_sums(dir, &LISTED);
    write_provenance(
        &ProvenanceRequest {
            build_manifest: &dir.join("build-manifest.json"),
            sums: &dir.join("SHA256SUMS"),
            commit: COMMIT,
            repo_uri: Some("git+https://example.org/ic-os.git"),
            builder_id: None,
        },
        &dir.join("provenance.intoto.json"),
    )
    .unwrap();
    write_sbom(
        &SbomRequest {
            rootfs_tar: &tar_path,
            rootfs_manifest: &dir.join("rootfs.manifest.json"),
            name: "icos-default",
            layer_changes: &[],
        },
        &dir.join("sbom.spdx.json"),
    )
    .unwrap();
    for f in [
        "SHA256SUMS",
        "build-manifest.json",
        "provenance.intoto.json",
        "sbom.spdx.json",
    ] {
        sign_file(key, &dir.join(f)).unwrap();
    }
}

/// [`make_release_variant`] "a".
pub fn make_release(dir: &Path, key: &SigningKey) {
    make_release_variant(dir, key, "a");
}
