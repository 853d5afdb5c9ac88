//! `icos-sign` as a user runs it: the keys it makes cost what stock minisign's cost, and stock
//! minisign checks what it signs with them.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;

const BIN: &str = env!("CARGO_BIN_EXE_icos-sign");

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN).args(args).output().unwrap();
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
