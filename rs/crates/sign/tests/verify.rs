//! Verification of a whole release directory: every kind of tampering is named.

mod common;

use std::fs;
use std::path::Path;

use common::{make_release, quick_key, stock_verify, write_sums};
use icos_sign::{sign_file, verify_release, Problem, PublicKey, SigProblem, VerifyError};

fn problems(dir: &Path, pk: &PublicKey) -> (Vec<Problem>, String) {
    match verify_release(dir, pk) {
        Ok(v) => panic!("release verified but should not: {v:?}"),
        Err(e @ VerifyError::Failed { .. }) => {
            let text = e.to_string();
            let VerifyError::Failed { problems, .. } = e else {
                unreachable!()
            };
            (problems, text)
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn setup() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    PublicKey,
    icos_sign::SigningKey,
    std::path::PathBuf,
) {
    let tmp = tempfile::tempdir().unwrap();
    let (_, pk_path, key) = quick_key(tmp.path(), "release");
    let rel = tmp.path().join("release");
    make_release(&rel, &key);
    let pk = PublicKey::load(&pk_path).unwrap();
    (tmp, rel, pk, key, pk_path)
}

#[test]
fn a_good_release_verifies_with_ours_and_with_stock_minisign() {
    let (_tmp, rel, pk, _key, pk_path) = setup();
    let v = verify_release(&rel, &pk).unwrap();
    assert_eq!(
        v.listed,
        [
            "build-manifest.json",
            "disk-img.tar.zst",
            "rootfs.manifest.json",
            "update-img.tar.zst"
        ]
    );
    assert_eq!(
        v.signed,
        [
            "build-manifest.json",
            "provenance.intoto.json",
            "sbom.spdx.json"
        ]
    );
    assert_eq!(v.key, pk.id());
    for f in [
        "SHA256SUMS",
        "build-manifest.json",
        "provenance.intoto.json",
        "sbom.spdx.json",
    ] {
        let (ok, out) = stock_verify(&rel.join(f), &pk_path);
        assert!(ok, "stock minisign rejects {f}: {out}");
    }
    // And coreutils agrees with the sums file.
    let out = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&rel)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_modified_artifact_is_named() {
    let (_tmp, rel, pk, _, _) = setup();
    let mut data = fs::read(rel.join("disk-img.tar.zst")).unwrap();
    data[10] ^= 0x01;
    fs::write(rel.join("disk-img.tar.zst"), data).unwrap();
    let (p, text) = problems(&rel, &pk);
    assert_eq!(p.len(), 1, "{text}");
    assert!(
        matches!(&p[0], Problem::HashMismatch { name, .. } if name == "disk-img.tar.zst"),
        "{text}"
    );
    assert!(text.contains("disk-img.tar.zst: sha256 mismatch"), "{text}");
}

#[test]
fn a_modified_sums_file_is_detected_by_its_signature() {
    let (_tmp, rel, pk, _, _) = setup();
    // Replace an artifact AND update SHA256SUMS to match: only the signature can tell.
    fs::write(rel.join("update-img.tar.zst"), b"evil update").unwrap();
    write_sums(
        &rel,
        &[
            "build-manifest.json",
            "disk-img.tar.zst",
            "rootfs.manifest.json",
            "update-img.tar.zst",
        ],
    );
    let (p, text) = problems(&rel, &pk);
    assert_eq!(p.len(), 1, "{text}");
    assert!(
        matches!(&p[0], Problem::Signature(SigProblem::Invalid { sig, .. }) if sig == "SHA256SUMS.minisig"),
        "{text}"
    );
    assert!(
        text.contains("SHA256SUMS.minisig does not match SHA256SUMS"),
        "{text}"
    );
}

#[test]
fn a_modified_signature_is_detected() {
    let (_tmp, rel, pk, _, _) = setup();
    let sig = rel.join("SHA256SUMS.minisig");
    let text = fs::read_to_string(&sig).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    // Flip one character inside the Ed25519 signature (past the "ED" + key id prefix).
    let mut b: Vec<char> = lines[1].chars().collect();
    b[40] = if b[40] == 'A' { 'B' } else { 'A' };
    lines[1] = b.into_iter().collect();
    fs::write(&sig, lines.join("\n") + "\n").unwrap();
    let (p, text) = problems(&rel, &pk);
    assert_eq!(p.len(), 1, "{text}");
    assert!(
        matches!(&p[0], Problem::Signature(SigProblem::Invalid { .. })),
        "{text}"
    );
    assert!(text.contains("Signature verification failed"), "{text}");
}

#[test]
fn a_modified_trusted_comment_is_detected() {
    let (_tmp, rel, pk, _, _) = setup();
    let sig = rel.join("build-manifest.json.minisig");
    let text = fs::read_to_string(&sig).unwrap();
    // The file signature line is untouched; only the (signed) trusted comment changes.
    let edited = text.replace(" sha256:", " sha256:0");
    assert_ne!(edited, text);
    fs::write(&sig, edited).unwrap();
    let (p, text) = problems(&rel, &pk);
    assert_eq!(p.len(), 1, "{text}");
    assert!(
        text.contains("Comment signature verification failed"),
        "{text}"
    );
    assert!(text.contains("build-manifest.json.minisig"), "{text}");
}

#[test]
fn a_signature_by_another_key_is_called_a_wrong_key() {
    let (tmp, rel, pk, _, _) = setup();
    let (_, other_pk_path, _) = quick_key(tmp.path(), "other");
    let other = PublicKey::load(&other_pk_path).unwrap();
    let (p, text) = problems(&rel, &other);
    // Every signature in the release names the key mismatch; no file is reported as modified.
    assert_eq!(p.len(), 4, "{text}");
    assert!(
        p.iter()
            .all(|p| matches!(p, Problem::Signature(SigProblem::WrongKey { .. }))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "made by key ID {}, but the public key has key ID {}",
            pk.id(),
            other.id()
        )),
        "{text}"
    );
    assert!(text.contains("wrong key"), "{text}");
}

#[test]
fn a_missing_file_and_an_extra_file_are_refused() {
    let (_tmp, rel, pk, _, _) = setup();
    fs::remove_file(rel.join("rootfs.manifest.json")).unwrap();
    fs::write(rel.join("backdoor.sh"), "#!/bin/sh\n").unwrap();
    let (p, text) = problems(&rel, &pk);
    assert_eq!(p.len(), 2, "{text}");
    assert!(
        p.contains(&Problem::Missing {
            name: "rootfs.manifest.json".into()
        }),
        "{text}"
    );
    assert!(
        p.contains(&Problem::Extra {
            name: "backdoor.sh".into()
        }),
        "{text}"
    );
    assert!(
        text.contains("rootfs.manifest.json is listed in SHA256SUMS but missing"),
        "{text}"
    );
    assert!(
        text.contains("backdoor.sh is not listed in SHA256SUMS"),
        "{text}"
    );
    assert!(text.contains("(2 problems)"), "{text}");
}

#[test]
fn missing_sums_signature_unsigned_metadata_orphan_signature_and_subdirectory_are_refused() {
    let (_tmp, rel, pk, key, _) = setup();
    fs::remove_file(rel.join("SHA256SUMS.minisig")).unwrap();
    fs::remove_file(rel.join("sbom.spdx.json.minisig")).unwrap();
    fs::write(rel.join("notes.txt"), "x").unwrap();
    sign_file(&key, &rel.join("notes.txt")).unwrap();
    fs::remove_file(rel.join("notes.txt")).unwrap();
    fs::create_dir(rel.join("subdir")).unwrap();
    let (p, text) = problems(&rel, &pk);
    assert!(
        p.contains(&Problem::Signature(SigProblem::Missing {
            sig: "SHA256SUMS.minisig".into(),
            file: "SHA256SUMS".into()
        })),
        "{text}"
    );
    assert!(
        p.contains(&Problem::Unsigned {
            name: "sbom.spdx.json".into()
        }),
        "{text}"
    );
    assert!(
        p.contains(&Problem::OrphanSignature {
            name: "notes.txt.minisig".into(),
            file: "notes.txt".into()
        }),
        "{text}"
    );
    assert!(
        p.contains(&Problem::NotRegular {
            name: "subdir".into(),
            kind: "a directory"
        }),
        "{text}"
    );
    assert_eq!(p.len(), 4, "{text}");
}

#[test]
fn a_symlinked_artifact_and_a_malformed_sums_file_are_refused() {
    let (_tmp, rel, pk, _, _) = setup();
    fs::rename(rel.join("disk-img.tar.zst"), rel.join("../elsewhere")).unwrap();
    std::os::unix::fs::symlink("../elsewhere", rel.join("disk-img.tar.zst")).unwrap();
    let (p, text) = problems(&rel, &pk);
    assert_eq!(
        p,
        [Problem::NotRegular {
            name: "disk-img.tar.zst".into(),
            kind: "a symbolic link"
        }],
        "{text}"
    );

    fs::write(rel.join("SHA256SUMS"), "not a sums file\n").unwrap();
    let (p, text) = problems(&rel, &pk);
    assert!(
        matches!(&p[0], Problem::Signature(SigProblem::Invalid { .. })),
        "{text}"
    );
    assert!(p.iter().any(|p| matches!(p, Problem::BadSums(_))), "{text}");
    assert!(text.contains("line 1"), "{text}");
}

#[test]
fn no_release_directory_is_an_error() {
    let (tmp, _, pk, _, _) = setup();
    let err = verify_release(&tmp.path().join("nope"), &pk).unwrap_err();
    assert!(matches!(err, VerifyError::Dir { .. }), "{err}");
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let (p, _) = problems(&empty, &pk);
    assert_eq!(p, [Problem::NoSums]);
}
