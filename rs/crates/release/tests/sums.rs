//! SHA256SUMS: written in coreutils format, checked like `sha256sum -c --strict` and stricter
//! about names, links, special files and line lengths.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use icos_common::{Digest, NotRegular};
use icos_release::sums::{check_sums, write_sums, SumProblem, SumsCheck, SumsError, MAX_LINE};
use icos_testsupport::run_checker;

/// `sha256sum -c --strict SHA256SUMS` in `dir`: did it succeed?
fn stock_check(dir: &Path) -> bool {
    run_checker(
        Command::new("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(dir),
        "coreutils",
    )
    .0
}

fn hex(data: &[u8]) -> String {
    Digest::of(data).hex()
}

/// `check_sums` in a thread: a check that blocks (on a FIFO) fails the test instead of hanging.
fn check(sums: &Path) -> Result<SumsCheck, SumsError> {
    let (tx, rx) = mpsc::channel();
    let sums = sums.to_path_buf();
    std::thread::spawn(move || tx.send(check_sums(&sums)).unwrap());
    rx.recv_timeout(Duration::from_secs(20))
        .expect("check_sums blocked (did it open a FIFO for reading?)")
}

#[test]
fn sums_are_coreutils_compatible_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    fs::write(dir.join("b.tar.zst"), b"bbb").unwrap();
    fs::write(dir.join("a manifest.json"), b"{}\n").unwrap();
    fs::write(sub.join("C"), b"c").unwrap();
    let sums = dir.join("SHA256SUMS");
    let files = vec![
        dir.join("b.tar.zst"),
        sub.join("C"),
        dir.join("a manifest.json"),
    ];
    write_sums(&files, &sums).unwrap();
    let text = fs::read_to_string(&sums).unwrap();
    let names: Vec<&str> = text.lines().map(|l| &l[66..]).collect();
    assert_eq!(
        names,
        ["C", "a manifest.json", "b.tar.zst"],
        "bytewise order"
    );
    fs::copy(sub.join("C"), dir.join("C")).unwrap();
    assert!(
        stock_check(dir),
        "sha256sum -c --strict accepts what we wrote"
    );
    let c = check(&sums).unwrap();
    assert_eq!((c.lines, c.ok, c.failed, c.problems), (3, 3, 0, vec![]));

    fs::write(dir.join("b.tar.zst"), b"tampered").unwrap();
    fs::remove_file(dir.join("C")).unwrap();
    let c = check(&sums).unwrap();
    assert_eq!((c.ok, c.failed), (1, 2));
    assert_eq!(c.problems[0], SumProblem::Missing { name: "C".into() });
    assert!(matches!(&c.problems[1], SumProblem::Mismatch { name, .. } if name == "b.tar.zst"));
    assert!(c.problems[1].to_string().contains("b.tar.zst: FAILED"));
    assert!(!stock_check(dir), "sha256sum agrees that the files are bad");

    let e = write_sums(
        &[dir.join("b.tar.zst"), sub.join("b.tar.zst")],
        &dir.join("S2"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("same base name"), "{e}");
    assert!(!dir.join("S2").exists());
}

#[test]
fn every_form_sha256sum_accepts_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("a"), b"a\n").unwrap();
    fs::write(dir.join("b c"), b"b\n").unwrap();
    let (a, b) = (hex(b"a\n"), hex(b"b\n"));
    let text = format!(
        "# a comment\n\n{a}  a\n{} *b c\r\n  {a}  a\nSHA256 (b c) = {b}\n{a}  a",
        b.to_uppercase()
    );
    fs::write(dir.join("SHA256SUMS"), text).unwrap();
    assert!(stock_check(dir));
    let c = check(&dir.join("SHA256SUMS")).unwrap();
    assert_eq!((c.lines, c.ok, c.failed), (5, 5, 0), "{:?}", c.problems);
}

#[test]
fn an_empty_list_fails_as_with_sha256sum() {
    let tmp = tempfile::tempdir().unwrap();
    let sums = tmp.path().join("SHA256SUMS");
    for text in ["", "\n\n", "# only a comment\n"] {
        fs::write(&sums, text).unwrap();
        assert!(!stock_check(tmp.path()), "sha256sum fails on {text:?}");
        let e = check(&sums).unwrap_err();
        assert!(matches!(e, SumsError::Empty { .. }), "{text:?}: {e}");
        assert!(
            e.to_string()
                .contains("no properly formatted checksum lines found"),
            "{e}"
        );
    }
}

#[test]
fn symlinks_and_special_files_are_refused_saying_what_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    let dir = tmp.path().join("release");
    fs::create_dir(&dir).unwrap();
    fs::write(&outside, b"secret\n").unwrap();
    // The digest matches: only the refusal to follow the link can catch it.
    symlink(&outside, dir.join("link")).unwrap();
    fs::create_dir(dir.join("subdir")).unwrap();
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    fs::write(dir.join("ok"), b"ok\n").unwrap();
    let text = format!(
        "{}  fifo\n{}  link\n{}  ok\n{}  subdir\n",
        hex(b""),
        hex(b"secret\n"),
        hex(b"ok\n"),
        hex(b"")
    );
    fs::write(dir.join("SHA256SUMS"), text).unwrap();
    let c = check(&dir.join("SHA256SUMS")).unwrap();
    assert_eq!(c.ok, 1);
    assert_eq!(
        c.problems,
        [
            SumProblem::NotRegular {
                name: "fifo".into(),
                kind: NotRegular::Fifo
            },
            SumProblem::NotRegular {
                name: "link".into(),
                kind: NotRegular::Symlink
            },
            SumProblem::NotRegular {
                name: "subdir".into(),
                kind: NotRegular::Directory
            },
        ]
    );
    assert_eq!(
        c.problems[1].to_string(),
        "link: FAILED: is a symbolic link, which is not followed; SHA256SUMS lists regular files of its own directory"
    );
    assert_eq!(
        c.problems[0].to_string(),
        "fifo: FAILED: is a FIFO (named pipe), not a regular file; SHA256SUMS lists regular files of its own directory"
    );
    // A symlinked SHA256SUMS itself is followed (it is the file the user named).
    symlink(dir.join("SHA256SUMS"), tmp.path().join("SUMS-LINK")).unwrap();
    let sums_link_dir = tmp.path().join("SUMS-LINK");
    assert!(check(&sums_link_dir).is_ok());
}

#[test]
fn names_that_are_not_plain_file_names_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("release");
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(tmp.path().join("x"), b"x\n").unwrap();
    fs::write(dir.join("sub/x"), b"x\n").unwrap();
    let h = hex(b"x\n");
    let lines = [
        ("../x", "it climbs out of the directory with '..'"),
        ("/etc/hostname", "it is an absolute path"),
        (
            "sub/x",
            "it names a file in another directory (it contains '/')",
        ),
        ("..", "it names a directory ('.' or '..'), not a file"),
        ("a\\b", "it contains a backslash"),
    ];
    let text: String = lines.iter().map(|(n, _)| format!("{h}  {n}\n")).collect();
    fs::write(dir.join("SHA256SUMS"), text).unwrap();
    let c = check(&dir.join("SHA256SUMS")).unwrap();
    assert_eq!((c.ok, c.failed), (0, lines.len()));
    for (i, (name, why)) in lines.iter().enumerate() {
        assert_eq!(
            c.problems[i],
            SumProblem::BadName {
                line: i + 1,
                name: name.to_string(),
                why
            }
        );
    }
    assert_eq!(
        c.problems[0].to_string(),
        "line 1: \"../x\" is not a plain file name: it climbs out of the directory with '..'; SHA256SUMS names files of its own directory, one path component each"
    );
    // A line that is not a sums line at all is named as such, and checking goes on.
    fs::write(dir.join("ok"), b"x\n").unwrap();
    fs::write(
        dir.join("SHA256SUMS"),
        format!("not a sums line\n{h}  ok\n{h}\n"),
    )
    .unwrap();
    let c = check(&dir.join("SHA256SUMS")).unwrap();
    assert_eq!((c.ok, c.failed), (1, 2));
    assert!(
        matches!(&c.problems[0], SumProblem::Malformed { line: 1, .. }),
        "{:?}",
        c.problems
    );
    assert!(c.problems[1]
        .to_string()
        .starts_with("line 3: improperly formatted SHA256SUMS line"));
}

#[test]
fn a_huge_line_is_refused_without_reading_it_into_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let sums = tmp.path().join("SHA256SUMS");
    // 64 MiB without a newline, after one good line; sparse, so the test writes almost nothing.
    fs::write(tmp.path().join("a"), b"a").unwrap();
    fs::write(&sums, format!("{}  a\n", hex(b"a"))).unwrap();
    let f = fs::OpenOptions::new().append(true).open(&sums).unwrap();
    f.set_len(64 << 20).unwrap();
    let e = check(&sums).unwrap_err();
    assert!(matches!(e, SumsError::LineTooLong { line: 2, .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("line 2 is longer than {MAX_LINE} bytes")),
        "{e}"
    );
    // A line of exactly the limit (newline included; leading blanks are allowed) is still read.
    let line = format!("{}  a\n", hex(b"a"));
    fs::write(
        &sums,
        format!("{}{line}", " ".repeat(MAX_LINE - line.len())),
    )
    .unwrap();
    assert_eq!(check(&sums).unwrap().ok, 1);
}
