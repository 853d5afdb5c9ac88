//! `icos-diff` as a user runs it: exit status 0 for identical release directories, 1 for a
//! difference, 2 for an error, which names the input it is about. The library tests
//! (rs/crates/diff/tests) check the findings; only the binary maps an error to 2.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_icos-diff");

/// `icos-diff A B` run in `cwd`, so that paths in its messages are the relative ones given.
fn diff(cwd: &Path, a: &str, b: &str) -> (i32, String, String) {
    let out: Output = Command::new(BIN)
        .args([a, b])
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    (
        out.status.code().expect("icos-diff exited, not killed"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Two release directories `a` and `b` holding the same `notes.txt`.
fn pair() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    for d in ["a", "b"] {
        fs::create_dir(work.path().join(d)).unwrap();
        fs::write(work.path().join(d).join("notes.txt"), "one\n").unwrap();
    }
    work
}

#[test]
fn identical_directories_exit_0() {
    let work = pair();
    assert_eq!(
        diff(work.path(), "a", "b"),
        (0, "identical: a and b\n".into(), String::new())
    );
}

#[test]
fn a_differing_file_exits_1_and_is_named() {
    let work = pair();
    fs::write(work.path().join("b/notes.txt"), "two\n").unwrap();
    // sha256("one\n") = 2c8b08da5ce6…, sha256("two\n") = 27dd8ed44a83…
    assert_eq!(
        diff(work.path(), "a", "b"),
        (
            1,
            "artifact notes.txt: differs (sha256:2c8b08da5ce6… vs sha256:27dd8ed44a83…)\n".into(),
            String::new()
        )
    );
    // A file on one side only is a difference too.
    fs::write(work.path().join("b/notes.txt"), "one\n").unwrap();
    fs::write(work.path().join("a/extra.bin"), "x").unwrap();
    let (code, stdout, stderr) = diff(work.path(), "a", "b");
    assert_eq!((code, stderr.as_str()), (1, ""), "{stdout}");
    assert_eq!(stdout, "artifact extra.bin: only in A\n");
}

#[test]
fn a_missing_directory_exits_2_naming_it() {
    let work = pair();
    assert_eq!(
        diff(work.path(), "a", "nope"),
        (
            2,
            String::new(),
            "icos-diff: error: comparing a with nope: cannot read nope: No such file or directory \
             (os error 2)\n"
                .into()
        )
    );
}

#[test]
fn a_symlink_or_fifo_in_a_release_directory_exits_2_naming_it() {
    let work = pair();
    let b = work.path().join("b");
    fs::remove_file(b.join("notes.txt")).unwrap();
    // To the very same bytes: still refused, and with no report on stdout.
    std::os::unix::fs::symlink(work.path().join("a/notes.txt"), b.join("notes.txt")).unwrap();
    assert_eq!(
        diff(work.path(), "a", "b"),
        (
            2,
            String::new(),
            "icos-diff: error: comparing a with b: b/notes.txt is a symbolic link, which is not \
             followed: icos-diff compares the regular files of two release directories and \
             follows no links (copy the release with `cp -L`)\n"
                .into()
        )
    );
    fs::remove_file(b.join("notes.txt")).unwrap();
    let (ok, out) =
        icos_testsupport::run_checker(Command::new("mkfifo").arg(b.join("notes.txt")), "coreutils");
    assert!(ok, "{out}");
    // Refused without opening it (opening a FIFO with no writer would block forever).
    let (code, stdout, stderr) = diff(work.path(), "a", "b");
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert!(
        stderr.starts_with("icos-diff: error: comparing a with b: b/notes.txt is a FIFO (named pipe), not a regular file"),
        "{stderr}"
    );
}
