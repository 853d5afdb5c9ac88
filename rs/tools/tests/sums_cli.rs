//! `icos-sums` as a user runs it: `--out` writes what `sha256sum -c --strict` accepts, and
//! `--check` prints "SHA256SUMS: N files OK" and exits 0, or names every failing file (at most
//! MAX_KEPT_PROBLEMS of them, then a count of the rest) and exits 1. The library tests
//! (rs/crates/release/tests/sums.rs) check `check_sums`; these check what the binary prints.

use std::fs;
use std::path::Path;
use std::process::Command;

use icos_common::Digest;
use icos_release::sums::MAX_KEPT_PROBLEMS;

const BIN: &str = env!("CARGO_BIN_EXE_icos-sums");

/// `icos-sums ARGS` run in `cwd`: (exit status, stdout, stderr).
fn sums(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    (
        out.status.code().expect("icos-sums exited, not killed"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `rel/` under a temporary directory with three files and their SHA256SUMS, written by
/// `icos-sums --out`.
fn release() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    let rel = work.path().join("rel");
    fs::create_dir(&rel).unwrap();
    for (name, data) in [
        ("a.bin", "one\n"),
        ("b.json", "two\n"),
        ("c.zst", "three\n"),
    ] {
        fs::write(rel.join(name), data).unwrap();
    }
    let out = sums(
        work.path(),
        &[
            "--out",
            "rel/SHA256SUMS",
            "rel/c.zst",
            "rel/a.bin",
            "rel/b.json",
        ],
    );
    assert_eq!(out, (0, String::new(), String::new()));
    work
}

#[test]
fn a_good_list_prints_how_many_files_are_ok_and_exits_0() {
    let work = release();
    let text = fs::read_to_string(work.path().join("rel/SHA256SUMS")).unwrap();
    // Base names, sorted, in coreutils' format.
    assert_eq!(
        text,
        format!(
            "{}  a.bin\n{}  b.json\n{}  c.zst\n",
            Digest::of(b"one\n").hex(),
            Digest::of(b"two\n").hex(),
            Digest::of(b"three\n").hex()
        )
    );
    let (ok, out) = icos_testsupport::run_checker(
        Command::new("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(work.path().join("rel")),
        "coreutils",
    );
    assert!(ok, "{out}");
    assert_eq!(
        sums(work.path(), &["--check", "rel/SHA256SUMS"]),
        (0, "rel/SHA256SUMS: 3 files OK\n".into(), String::new())
    );
}

#[test]
fn a_mismatch_exits_1_naming_the_file_and_both_digests() {
    let work = release();
    fs::write(work.path().join("rel/b.json"), "two!\n").unwrap();
    assert_eq!(
        sums(work.path(), &["--check", "rel/SHA256SUMS"]),
        (
            1,
            String::new(),
            format!(
                "rel/SHA256SUMS: b.json: FAILED (expected {}, found {})\n\
                 icos-sums: error: 1 of 3 lines of rel/SHA256SUMS failed verification\n",
                Digest::of(b"two\n"),
                Digest::of(b"two!\n")
            )
        )
    );
}

#[test]
fn more_problems_than_the_cap_are_listed_up_to_it_and_counted() {
    let work = tempfile::tempdir().unwrap();
    let rel = work.path().join("rel");
    fs::create_dir(&rel).unwrap();
    // MAX_KEPT_PROBLEMS + 23 files listed and missing, then one present and right.
    let extra = 23;
    let hex = Digest::of(b"gone\n").hex();
    let mut list: String = (0..MAX_KEPT_PROBLEMS + extra)
        .map(|i| format!("{hex}  f{i:04}\n"))
        .collect();
    list.push_str(&format!("{}  ok.txt\n", Digest::of(b"here\n").hex()));
    fs::write(rel.join("ok.txt"), "here\n").unwrap();
    fs::write(rel.join("SHA256SUMS"), list).unwrap();

    let (code, stdout, stderr) = sums(work.path(), &["--check", "rel/SHA256SUMS"]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    let mut expected: Vec<String> = (0..MAX_KEPT_PROBLEMS)
        .map(|i| format!("rel/SHA256SUMS: f{i:04}: FAILED open or read (no such file)"))
        .collect();
    expected.push(format!("rel/SHA256SUMS: … and {extra} more problems"));
    expected.push(format!(
        "icos-sums: error: {} of {} lines of rel/SHA256SUMS failed verification",
        MAX_KEPT_PROBLEMS + extra,
        MAX_KEPT_PROBLEMS + extra + 1
    ));
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected);
    assert_eq!(MAX_KEPT_PROBLEMS, 100, "the cap `icos-sums --help` states");
}

#[test]
fn an_empty_list_fails_as_with_sha256sum() {
    let work = tempfile::tempdir().unwrap();
    let rel = work.path().join("rel");
    fs::create_dir(&rel).unwrap();
    fs::write(rel.join("a.bin"), "one\n").unwrap();
    for text in ["", "\n\n", "# nothing listed\n"] {
        fs::write(rel.join("SHA256SUMS"), text).unwrap();
        assert_eq!(
            sums(work.path(), &["--check", "rel/SHA256SUMS"]),
            (
                1,
                String::new(),
                "icos-sums: error: rel/SHA256SUMS: no properly formatted checksum lines found \
                 (an empty list verifies nothing)\n"
                    .into()
            ),
            "SHA256SUMS = {text:?}"
        );
        // Stock sha256sum refuses it too.
        let (ok, out) = icos_testsupport::run_checker(
            Command::new("sha256sum")
                .args(["-c", "--strict", "SHA256SUMS"])
                .current_dir(&rel),
            "coreutils",
        );
        assert!(!ok, "sha256sum accepted {text:?}: {out}");
    }
}

#[test]
fn a_missing_list_is_named_with_the_reason_once() {
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        sums(work.path(), &["--check", "SHA256SUMS"]),
        (
            1,
            String::new(),
            "icos-sums: error: cannot read SHA256SUMS: No such file or directory (os error 2)\n"
                .into()
        )
    );
}
