//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use icos_common::sha256_file;
use icos_sign::{keygen, sign_file, Protection, SigningKey};

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

pub const ARTIFACTS: &[(&str, &[u8])] = &[
    (
        "build-manifest.json",
        b"{\"schema\":\"icos.build-manifest/v1\"}\n",
    ),
    (
        "disk-img.tar.zst",
        b"\x28\xb5\x2f\xfd pretend disk image bytes",
    ),
    (
        "rootfs.manifest.json",
        b"{\"schema\":\"icos.rootfs-manifest/v1\"}\n",
    ),
    (
        "update-img.tar.zst",
        b"\x28\xb5\x2f\xfd pretend update image bytes",
    ),
];

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

/// A complete signed release in `dir`: artifacts, SHA256SUMS, provenance and SBOM stand-ins, and
/// signatures of SHA256SUMS, build-manifest.json, provenance.intoto.json and sbom.spdx.json.
pub fn make_release(dir: &Path, key: &SigningKey) {
    fs::create_dir_all(dir).unwrap();
    for (name, data) in ARTIFACTS {
        fs::write(dir.join(name), data).unwrap();
    }
    let names: Vec<&str> = ARTIFACTS.iter().map(|(n, _)| *n).collect();
    write_sums(dir, &names);
    fs::write(
        dir.join("provenance.intoto.json"),
        "{\"_type\":\"https://in-toto.io/Statement/v1\"}\n",
    )
    .unwrap();
    fs::write(
        dir.join("sbom.spdx.json"),
        "{\"spdxVersion\":\"SPDX-2.3\"}\n",
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
