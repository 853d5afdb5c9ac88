//! Verification of a whole release directory: every kind of tampering is named, nothing is taken
//! on trust (file types, the provenance's and SBOM's claims, the size of SHA256SUMS).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::{
    make_release, make_release_variant, quick_key, stock_verify, write_sums, LISTED,
    SIGNED_METADATA,
};
use icos_common::NotRegular;
use icos_sign::{
    sign_file, verify_release, Problem, PublicKey, SigProblem, SigningKey, Verified, VerifyError,
};

/// Verifies in a thread: a verification that blocks (on a FIFO) fails the test instead of hanging.
fn verify(dir: &Path, pk: &PublicKey) -> Result<Verified, VerifyError> {
    let (tx, rx) = mpsc::channel();
    let (dir, pk) = (dir.to_path_buf(), pk.clone());
    std::thread::spawn(move || tx.send(verify_release(&dir, &pk)).unwrap());
    rx.recv_timeout(Duration::from_secs(60))
        .expect("verify_release blocked (did it open a FIFO for reading?)")
}

/// The problems of a release that must not verify, its message, and whether checking stopped.
fn problems(dir: &Path, pk: &PublicKey) -> (Vec<Problem>, String, bool) {
    match verify(dir, pk) {
        Ok(v) => panic!("release verified but should not: {v:?}"),
        Err(e @ VerifyError::Failed { .. }) => {
            let text = e.to_string();
            let VerifyError::Failed {
                problems, fatal, ..
            } = e
            else {
                unreachable!()
            };
            (problems, text, fatal)
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

struct Setup {
    tmp: tempfile::TempDir,
    rel: PathBuf,
    pk: PublicKey,
    key: SigningKey,
    pk_path: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let (_, pk_path, key) = quick_key(tmp.path(), "release");
    let rel = tmp.path().join("release");
    make_release(&rel, &key);
    let pk = PublicKey::load(&pk_path).unwrap();
    Setup {
        tmp,
        rel,
        pk,
        key,
        pk_path,
    }
}

#[test]
fn a_good_release_verifies_with_ours_and_with_stock_minisign() {
    let s = setup();
    let v = verify(&s.rel, &s.pk).unwrap();
    assert_eq!(v.listed, LISTED);
    assert_eq!(
        v.signed,
        [
            "build-manifest.json",
            "provenance.intoto.json",
            "sbom.spdx.json"
        ]
    );
    assert_eq!(v.key, s.pk.id());
    for f in [
        "SHA256SUMS",
        "build-manifest.json",
        "provenance.intoto.json",
        "sbom.spdx.json",
    ] {
        let (ok, out) = stock_verify(&s.rel.join(f), &s.pk_path);
        assert!(ok, "stock minisign rejects {f}: {out}");
    }
    // And coreutils agrees with the sums file.
    let out = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&s.rel)
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
    let s = setup();
    let mut data = fs::read(s.rel.join("disk-img.tar.zst")).unwrap();
    data[10] ^= 0x01;
    fs::write(s.rel.join("disk-img.tar.zst"), data).unwrap();
    let (p, text, fatal) = problems(&s.rel, &s.pk);
    assert_eq!(p.len(), 1, "{text}");
    assert!(!fatal);
    assert!(
        matches!(&p[0], Problem::HashMismatch { name, .. } if name == "disk-img.tar.zst"),
        "{text}"
    );
    assert!(text.contains("disk-img.tar.zst: sha256 mismatch"), "{text}");
}

#[test]
fn a_modified_sums_file_is_detected_by_its_signature_and_stops_the_check() {
    let s = setup();
    // Replace an artifact AND update SHA256SUMS to match: only the signature can tell.
    fs::write(s.rel.join("update-img.tar.zst"), b"evil update").unwrap();
    write_sums(&s.rel, &LISTED);
    let (p, text, fatal) = problems(&s.rel, &s.pk);
    assert!(fatal, "{text}");
    assert_eq!(p.len(), 1, "{text}");
    assert!(
        matches!(&p[0], Problem::Signature(SigProblem::Invalid { sig, .. }) if sig == "SHA256SUMS.minisig"),
        "{text}"
    );
    assert!(
        text.contains("SHA256SUMS.minisig does not match SHA256SUMS"),
        "{text}"
    );
    assert!(text.contains("checking stopped at the first"), "{text}");
}

#[test]
fn a_huge_sums_file_is_refused_before_it_is_read_and_a_bad_one_before_it_is_parsed() {
    let s = setup();
    // 100 MB of sums lines: refused by size, before a byte is parsed (sparse: nothing written).
    let sums = s.rel.join("SHA256SUMS");
    let f = fs::OpenOptions::new().append(true).open(&sums).unwrap();
    f.set_len(100_000_000).unwrap();
    let (p, text, fatal) = problems(&s.rel, &s.pk);
    assert!(fatal);
    assert_eq!(
        p,
        [Problem::TooLarge {
            name: "SHA256SUMS".into(),
            size: 100_000_000,
            max: 1 << 20
        }],
        "{text}"
    );
    // Under the cap but with a bad signature: one problem, however many lines are malformed.
    let garbage = "not a sums line\n".repeat(50_000);
    fs::write(&sums, garbage).unwrap();
    let (p, text, fatal) = problems(&s.rel, &s.pk);
    assert!(fatal);
    assert_eq!(p.len(), 1, "{text}");
    assert!(
        matches!(&p[0], Problem::Signature(SigProblem::Invalid { .. })),
        "{text}"
    );
    assert!(text.len() < 1000, "a bounded report: {text}");
}

#[test]
fn a_modified_signature_is_detected() {
    let s = setup();
    let sig = s.rel.join("SHA256SUMS.minisig");
    let text = fs::read_to_string(&sig).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    // Flip one character inside the Ed25519 signature (past the "ED" + key id prefix).
    let mut b: Vec<char> = lines[1].chars().collect();
    b[40] = if b[40] == 'A' { 'B' } else { 'A' };
    lines[1] = b.into_iter().collect();
    fs::write(&sig, lines.join("\n") + "\n").unwrap();
    let (p, text, _) = problems(&s.rel, &s.pk);
    assert_eq!(p.len(), 1, "{text}");
    assert!(
        matches!(&p[0], Problem::Signature(SigProblem::Invalid { .. })),
        "{text}"
    );
    assert!(text.contains("Signature verification failed"), "{text}");
}

#[test]
fn a_modified_trusted_comment_is_detected() {
    let s = setup();
    let sig = s.rel.join("build-manifest.json.minisig");
    let text = fs::read_to_string(&sig).unwrap();
    // The file signature line is untouched; only the (signed) trusted comment changes.
    let edited = text.replace(" sha256:", " sha256:0");
    assert_ne!(edited, text);
    fs::write(&sig, edited).unwrap();
    let (p, text, _) = problems(&s.rel, &s.pk);
    assert_eq!(p.len(), 1, "{text}");
    assert!(
        text.contains("Comment signature verification failed"),
        "{text}"
    );
    assert!(text.contains("build-manifest.json.minisig"), "{text}");
}

#[test]
fn a_signature_by_another_key_is_called_a_wrong_key() {
    let s = setup();
    let (_, other_pk_path, _) = quick_key(s.tmp.path(), "other");
    let other = PublicKey::load(&other_pk_path).unwrap();
    let (p, text, fatal) = problems(&s.rel, &other);
    // SHA256SUMS's signature names the key mismatch, and nothing past it is believed.
    assert!(fatal);
    assert_eq!(p.len(), 1, "{text}");
    assert!(
        matches!(&p[0], Problem::Signature(SigProblem::WrongKey { .. })),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "made by key ID {}, but the public key has key ID {}",
            s.pk.id(),
            other.id()
        )),
        "{text}"
    );
    assert!(text.contains("wrong key"), "{text}");
}

#[test]
fn a_missing_file_and_an_extra_file_are_refused() {
    let s = setup();
    fs::remove_file(s.rel.join("rootfs.manifest.json")).unwrap();
    fs::write(s.rel.join("backdoor.sh"), "#!/bin/sh\n").unwrap();
    let (p, text, _) = problems(&s.rel, &s.pk);
    assert_eq!(
        p,
        [
            Problem::Missing {
                name: "rootfs.manifest.json".into()
            },
            Problem::Extra {
                name: "backdoor.sh".into()
            }
        ],
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

/// Replaces `name` in the release by a symbolic link, a directory or a FIFO.
fn replace(rel: &Path, name: &str, with: &str) {
    let path = rel.join(name);
    let keep = rel.with_file_name(format!("kept-{name}"));
    fs::rename(&path, &keep).unwrap();
    match with {
        // A link to the genuine file, outside the directory: its bytes would verify.
        "symlink" => std::os::unix::fs::symlink(&keep, &path).unwrap(),
        "directory" => fs::create_dir(&path).unwrap(),
        "fifo" => assert!(Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap()
            .success()),
        _ => unreachable!(),
    }
}

#[test]
fn provenance_or_sbom_that_is_a_symlink_directory_or_fifo_is_refused() {
    for name in SIGNED_METADATA {
        for (with, kind) in [
            ("symlink", NotRegular::Symlink),
            ("directory", NotRegular::Directory),
            ("fifo", NotRegular::Fifo),
        ] {
            let s = setup();
            replace(&s.rel, name, with);
            let (p, text, _) = problems(&s.rel, &s.pk);
            assert_eq!(
                p,
                [Problem::NotRegular {
                    name: name.into(),
                    kind
                }],
                "{name} as a {with}: {text}"
            );
            if with == "symlink" {
                assert!(
                    text.contains(&format!("{name} is a symbolic link, which is not followed: a release directory holds only regular files")),
                    "{text}"
                );
            }
        }
    }
    // The same for SHA256SUMS itself (fatal) and for an artifact.
    let s = setup();
    replace(&s.rel, "SHA256SUMS", "fifo");
    let (p, _, fatal) = problems(&s.rel, &s.pk);
    assert!(fatal);
    assert_eq!(
        p,
        [Problem::NotRegular {
            name: "SHA256SUMS".into(),
            kind: NotRegular::Fifo
        }]
    );
    let s = setup();
    replace(&s.rel, "disk-img.tar.zst", "symlink");
    let (p, text, _) = problems(&s.rel, &s.pk);
    assert_eq!(
        p,
        [Problem::NotRegular {
            name: "disk-img.tar.zst".into(),
            kind: NotRegular::Symlink
        }],
        "{text}"
    );
    let s = setup();
    replace(&s.rel, "sbom.spdx.json.minisig", "symlink");
    let (p, text, _) = problems(&s.rel, &s.pk);
    assert_eq!(
        p,
        [Problem::NotRegular {
            name: "sbom.spdx.json.minisig".into(),
            kind: NotRegular::Symlink
        }],
        "{text}"
    );
}

#[test]
fn metadata_from_another_release_signed_by_the_same_key_is_refused() {
    let s = setup();
    let other = s.tmp.path().join("other");
    make_release_variant(&other, &s.key, "b");
    verify(&other, &s.pk).unwrap();
    for name in SIGNED_METADATA {
        let rel = s.tmp.path().join(format!("mixed-{name}"));
        copy_dir(&s.rel, &rel);
        for f in [name.to_string(), format!("{name}.minisig")] {
            fs::copy(other.join(&f), rel.join(&f)).unwrap();
        }
        let (p, text, _) = problems(&rel, &s.pk);
        assert_eq!(p.len(), 1, "{text}");
        assert!(
            matches!(&p[0], Problem::NotBound { name: n, .. } if n == name),
            "{text}"
        );
        let expect = if name == "provenance.intoto.json" {
            "provenance.intoto.json does not belong to this release: its subject build-manifest.json has sha256:"
        } else {
            "sbom.spdx.json does not belong to this release: its root filesystem SPDXRef-Package-rootfs has SHA256 "
        };
        assert!(text.contains(expect), "{text}");
        assert!(
            text.contains("it describes the artifacts of another build")
                || text.contains("it describes another root filesystem"),
            "{text}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_release_without_its_provenance_and_sbom_is_refused() {
    let s = setup();
    for name in SIGNED_METADATA {
        fs::remove_file(s.rel.join(name)).unwrap();
        fs::remove_file(s.rel.join(format!("{name}.minisig"))).unwrap();
    }
    let (p, text, _) = problems(&s.rel, &s.pk);
    assert_eq!(
        p,
        [
            Problem::MissingMetadata {
                name: "provenance.intoto.json".into()
            },
            Problem::MissingMetadata {
                name: "sbom.spdx.json".into()
            }
        ],
        "{text}"
    );
    assert!(text.contains("provenance.intoto.json is missing: a release holds provenance.intoto.json and sbom.spdx.json, each with its signature"), "{text}");
}

#[test]
fn sums_that_list_what_the_build_manifest_does_not_name_are_refused() {
    let s = setup();
    fs::write(s.rel.join("extra.bin"), b"smuggled").unwrap();
    let mut names = LISTED.to_vec();
    names.push("extra.bin");
    write_sums(&s.rel, &names);
    sign_file(&s.key, &s.rel.join("SHA256SUMS")).unwrap();
    let (p, text, _) = problems(&s.rel, &s.pk);
    assert!(
        p.contains(&Problem::NotBound {
            name: "extra.bin".into(),
            reason: "SHA256SUMS lists it, but build-manifest.json names no such artifact".into()
        }),
        "{text}"
    );
    // The provenance was made for the old sums: it does not name extra.bin.
    assert!(
        text.contains("SHA256SUMS lists extra.bin, which is not a subject"),
        "{text}"
    );

    // Sums without the build manifest.
    let s = setup();
    write_sums(&s.rel, &LISTED[1..]);
    sign_file(&s.key, &s.rel.join("SHA256SUMS")).unwrap();
    let (_, text, _) = problems(&s.rel, &s.pk);
    assert!(
        text.contains("SHA256SUMS does not list build-manifest.json"),
        "{text}"
    );
}

#[test]
fn missing_signatures_orphan_signatures_and_subdirectories_are_refused() {
    let s = setup();
    fs::remove_file(s.rel.join("sbom.spdx.json.minisig")).unwrap();
    fs::write(s.rel.join("notes.txt"), "x").unwrap();
    sign_file(&s.key, &s.rel.join("notes.txt")).unwrap();
    fs::remove_file(s.rel.join("notes.txt")).unwrap();
    fs::create_dir(s.rel.join("subdir")).unwrap();
    let (p, text, _) = problems(&s.rel, &s.pk);
    assert_eq!(
        p,
        [
            Problem::Signature(SigProblem::Missing {
                sig: "sbom.spdx.json.minisig".into(),
                file: "sbom.spdx.json".into()
            }),
            Problem::OrphanSignature {
                name: "notes.txt.minisig".into(),
                file: "notes.txt".into()
            },
            Problem::NotRegular {
                name: "subdir".into(),
                kind: NotRegular::Directory
            },
        ],
        "{text}"
    );

    // Without SHA256SUMS's signature nothing else is looked at.
    fs::remove_file(s.rel.join("SHA256SUMS.minisig")).unwrap();
    let (p, _, fatal) = problems(&s.rel, &s.pk);
    assert!(fatal);
    assert_eq!(
        p,
        [Problem::Signature(SigProblem::Missing {
            sig: "SHA256SUMS.minisig".into(),
            file: "SHA256SUMS".into()
        })]
    );
}

#[test]
fn a_signed_but_malformed_sums_file_stops_the_check() {
    let s = setup();
    fs::write(s.rel.join("SHA256SUMS"), "not a sums file\n").unwrap();
    sign_file(&s.key, &s.rel.join("SHA256SUMS")).unwrap();
    let (p, text, fatal) = problems(&s.rel, &s.pk);
    assert!(fatal);
    assert_eq!(p.len(), 1, "{text}");
    assert!(matches!(&p[0], Problem::BadSums(_)), "{text}");
    assert!(text.contains("line 1"), "{text}");
}

#[test]
fn many_problems_are_counted_but_a_bounded_number_is_printed() {
    let s = setup();
    for i in 0..200 {
        fs::write(s.rel.join(format!("extra-{i:03}")), b"x").unwrap();
    }
    let (p, text, _) = problems(&s.rel, &s.pk);
    assert_eq!(p.len(), icos_sign::verify::MAX_PROBLEMS);
    assert!(text.contains("(200 problems)"), "{text}");
    assert!(text.ends_with("\n  … and 150 more"), "{text}");
    assert_eq!(text.lines().count(), 1 + 50 + 1);
}

#[test]
fn no_release_directory_is_an_error() {
    let s = setup();
    let err = verify_release(&s.tmp.path().join("nope"), &s.pk).unwrap_err();
    assert!(matches!(err, VerifyError::Dir { .. }), "{err}");
    let empty = s.tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let (p, _, fatal) = problems(&empty, &s.pk);
    assert!(fatal);
    assert_eq!(p, [Problem::NoSums]);
}
