//! `icos-sign` as a user runs it: the keys it makes cost what stock minisign's cost, keys made
//! by stock `minisign -G` sign through it, and stock minisign checks what it signs.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;

// The release fixture of icos-sign's own tests (a complete signed release, made through the
// library), so that the binary is run on the very releases the library tests verify.
#[path = "../../crates/sign/tests/common/mod.rs"]
mod common;

const BIN: &str = env!("CARGO_BIN_EXE_icos-sign");

/// `icos-sign ARGS`, without a password in the environment: (exit status, stdout, stderr).
fn icos_sign(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("ICOS_SIGN_PASSWORD")
        .output()
        .unwrap();
    (
        out.status.code().expect("icos-sign exited, not killed"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("ICOS_SIGN_PASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "icos-sign {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// (kdf algorithm, opslimit, memlimit) of a minisign secret key file, read from its bytes.
fn kdf_fields(path: &Path) -> (Vec<u8>, u64, u64) {
    let text = fs::read_to_string(path).unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.lines().nth(1).unwrap())
        .unwrap();
    let le = |r: std::ops::Range<usize>| u64::from_le_bytes(raw[r].try_into().unwrap());
    (raw[2..4].to_vec(), le(38..46), le(46..54))
}

#[test]
fn keygen_makes_keys_as_costly_as_stock_minisign_and_signs_what_minisign_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    fs::write(dir.path().join("pw"), "a password\n").unwrap();
    run(&[
        "keygen",
        "--secret-key",
        &p("release.key"),
        "--public-key",
        &p("release.pub"),
        "--password-file",
        &p("pw"),
    ]);
    // scrypt ("Sc") with opslimit 2^25 and memlimit 1 GiB: what `minisign -G` writes.
    assert_eq!(
        kdf_fields(&dir.path().join("release.key")),
        (b"Sc".to_vec(), 33_554_432, 1_073_741_824)
    );
    fs::write(dir.path().join("SHA256SUMS"), "x\n").unwrap();
    run(&[
        "sign",
        "--secret-key",
        &p("release.key"),
        "--password-file",
        &p("pw"),
        &p("SHA256SUMS"),
    ]);
    let out = Command::new("minisign")
        .args(["-Vm", &p("SHA256SUMS"), "-p", &p("release.pub")])
        .output()
        .expect("stock minisign (Debian package minisign) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stock minisign (Debian package minisign) with `stdin` as its standard input: it reads a
/// password from there when that is not a terminal. Returns (success, stdout + stderr).
fn minisign(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("minisign")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stock minisign (Debian package minisign) is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn keys_from_stock_minisign_sign_through_the_binary_and_stock_minisign_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();

    // Unencrypted (`-W`): no password asked, none needed.
    let (ok, out) = minisign(&["-G", "-W", "-p", &p("w.pub"), "-s", &p("w.key")], "");
    assert!(ok, "minisign -G -W: {out}");
    fs::write(dir.path().join("SHA256SUMS"), "a release's sums\n").unwrap();
    assert_eq!(
        icos_sign(&["sign", "--secret-key", &p("w.key"), &p("SHA256SUMS")]),
        (
            0,
            format!(
                "signed {} -> {}\n",
                p("SHA256SUMS"),
                p("SHA256SUMS.minisig")
            ),
            String::new()
        )
    );
    let (ok, out) = minisign(&["-Vm", &p("SHA256SUMS"), "-p", &p("w.pub")], "");
    assert!(
        ok,
        "stock minisign rejects a signature by its own -W key: {out}"
    );
    assert!(
        out.contains("Signature and comment signature verified"),
        "{out}"
    );

    // Encrypted with a password (stock minisign's scrypt limits), given to icos-sign in a file.
    let (ok, out) = minisign(
        &["-G", "-p", &p("e.pub"), "-s", &p("e.key")],
        "stock pass\nstock pass\n",
    );
    assert!(ok, "minisign -G: {out}");
    fs::write(dir.path().join("pw"), "stock pass\n").unwrap();
    fs::write(dir.path().join("wrong-pw"), "stock pas\n").unwrap();
    fs::write(dir.path().join("build-manifest.json"), "{}\n").unwrap();
    // Without its password, or with a wrong one, the key signs nothing.
    assert_eq!(
        icos_sign(&[
            "sign",
            "--secret-key",
            &p("e.key"),
            &p("build-manifest.json")
        ]),
        (
            1,
            String::new(),
            format!(
                "icos-sign: error: secret key {} is encrypted: give its password with \
                 --password-file FILE or ICOS_SIGN_PASSWORD\n",
                p("e.key")
            )
        )
    );
    assert_eq!(
        icos_sign(&[
            "sign",
            "--secret-key",
            &p("e.key"),
            "--password-file",
            &p("wrong-pw"),
            &p("build-manifest.json")
        ]),
        (
            1,
            String::new(),
            format!(
                "icos-sign: error: wrong password for secret key {} (the decrypted key fails its \
                 checksum): check the password file or ICOS_SIGN_PASSWORD\n",
                p("e.key")
            )
        )
    );
    assert!(!dir.path().join("build-manifest.json.minisig").exists());
    run(&[
        "sign",
        "--secret-key",
        &p("e.key"),
        "--password-file",
        &p("pw"),
        &p("build-manifest.json"),
    ]);
    let (ok, out) = minisign(&["-Vm", &p("build-manifest.json"), "-p", &p("e.pub")], "");
    assert!(
        ok,
        "stock minisign rejects a signature by its own key: {out}"
    );
    // And not with the other key: the signature is bound to the key that made it.
    let (ok, out) = minisign(&["-Vm", &p("build-manifest.json"), "-p", &p("w.pub")], "");
    assert!(!ok, "verified with the wrong key: {out}");
}

/// A minisign public key's key ID as minisign prints it: bytes 2..10 of the key, little-endian.
fn key_id(public_key: &Path) -> String {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(
            fs::read_to_string(public_key)
                .unwrap()
                .lines()
                .nth(1)
                .unwrap(),
        )
        .unwrap();
    format!(
        "{:016X}",
        u64::from_le_bytes(raw[2..10].try_into().unwrap())
    )
}

#[test]
fn verify_prints_what_it_verified_and_exits_1_naming_a_wrong_key_or_a_tampered_file() {
    let work = tempfile::tempdir().unwrap();
    let (_, pk, key) = common::quick_key(work.path(), "release");
    let (_, other_pk, _) = common::quick_key(work.path(), "other");
    let (id, other_id) = (key_id(&pk), key_id(&other_pk));
    let rel = work.path().join("release");
    common::make_release(&rel, &key);
    let (pk, other_pk, rel_s) = (
        pk.to_str().unwrap(),
        other_pk.to_str().unwrap(),
        rel.to_str().unwrap(),
    );
    assert_eq!(
        icos_sign(&["verify", "--public-key", pk, rel_s]),
        (
            0,
            format!(
                "verified {rel_s}: 4 files listed in SHA256SUMS, signed by key ID {id}\n\
                 also signed: build-manifest.json, provenance.intoto.json, sbom.spdx.json\n"
            ),
            String::new()
        )
    );
    assert_eq!(
        icos_sign(&["verify", "--public-key", other_pk, rel_s]),
        (
            1,
            String::new(),
            format!(
                "icos-sign: error: release {rel_s} does NOT verify (1 problem, checking stopped \
                 at the first):\n  - signature SHA256SUMS.minisig was made by key ID {id}, but \
                 the public key has key ID {other_id}: wrong key (verify with the release's \
                 public key)\n"
            )
        )
    );
    let update = rel.join("update-img.tar.zst");
    let (listed, _) = icos_common::sha256_file(&update).unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(&update).unwrap();
    f.write_all(b"x").unwrap();
    let (now, _) = icos_common::sha256_file(&update).unwrap();
    assert_eq!(
        icos_sign(&["verify", "--public-key", pk, rel_s]),
        (
            1,
            String::new(),
            format!(
                "icos-sign: error: release {rel_s} does NOT verify (1 problem):\n  - \
                 update-img.tar.zst: sha256 mismatch: SHA256SUMS says {listed}, the file has \
                 {now}: the file was modified or replaced\n"
            )
        )
    );
}
