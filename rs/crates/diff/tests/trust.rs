//! icos-diff hashes what it compares: listings and manifests are claims it checks against the
//! bytes, never facts it builds on. Each test is a way the old comparison could be fooled.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use icos_diff::{diff_dirs, DiffError, Options, Report};
use serde_json::json;

#[track_caller]
fn assert_line(r: &Report, line: &str) {
    let all = lines(r);
    assert!(
        all.iter().any(|l| l == line),
        "missing line {line:?} in:\n{}",
        all.join("\n")
    );
}

#[track_caller]
fn assert_has(r: &Report, needle: &str) {
    let all = lines(r);
    assert!(
        all.iter().any(|l| l.contains(needle)),
        "no line contains {needle:?} in:\n{}",
        all.join("\n")
    );
}

/// Replaces `name` in `dir` with the same file of `from`.
fn transplant(from: &Path, dir: &Path, name: &str) {
    fs::copy(from.join(name), dir.join(name)).unwrap();
}

#[test]
fn the_same_sums_with_a_changed_package_is_not_identical() {
    let a = Build::new();
    let mut changed = a.clone();
    changed.disk[ROOT_START + MOTD_DATA] = b'J';
    let p = pair(&a, &a);
    // B is A with only disk-img.tar.zst replaced: SHA256SUMS and both manifests still A's.
    let elsewhere = p.a.with_file_name("changed");
    changed.write(&elsewhere);
    transplant(&elsewhere, &p.b, "disk-img.tar.zst");
    assert_eq!(
        fs::read(p.a.join("SHA256SUMS")).unwrap(),
        fs::read(p.b.join("SHA256SUMS")).unwrap()
    );
    let r = diff(&p);
    assert_eq!(r.exit_code(), 1, "{}", r.render_text());
    assert_has(&r, "artifact disk-img.tar.zst: differs (sha256:");
    assert_has(&r, "B's SHA256SUMS: disk-img.tar.zst: lists sha256:");
    assert_has(&r, ", but the file is sha256:");
    // The build manifest's partition and disk digests are checked against B's bytes.
    assert_has(
        &r,
        "B's build-manifest.json: disk.partitions[name=root].image_sha256: says sha256:",
    );
    assert_has(
        &r,
        &format!(
            ", but the first {} bytes of partition root in disk.img (disk-img.tar.zst) is sha256:",
            ROOT_END - ROOT_START
        ),
    );
    assert_has(&r, "B's build-manifest.json: disk.sha256: says sha256:");
    assert!(
        !lines(&r).iter().any(|l| l.starts_with("A's ")),
        "{}",
        r.render_text()
    );
    // And where: the file the changed block belongs to, which both rootfs manifests misdescribe.
    assert_line(&r, &format!(
        "partition root: ext4 data block 20 (/etc/motd: file data) differs (first at partition offset {MOTD_DATA}, disk.img offset {})",
        ROOT_START + MOTD_DATA
    ));
    assert_has(
        &r,
        "rootfs.manifest.json: /etc/motd: A and B both say its content is sha256:",
    );

    // A byte flipped in the compressed stream itself: a difference, or an error naming B's file.
    let p = pair(&a, &a);
    let pkg = p.b.join("disk-img.tar.zst");
    let mut bytes = fs::read(&pkg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    fs::write(&pkg, bytes).unwrap();
    match diff_dirs(&p.a, &p.b, &Options::default()) {
        Ok(r) => {
            assert_eq!(r.exit_code(), 1);
            assert_has(&r, "artifact disk-img.tar.zst: differs");
        }
        Err(e) => assert!(e.to_string().contains("b/disk-img.tar.zst"), "{e}"),
    }
}

fn sbom_files(n: usize) -> Vec<serde_json::Value> {
    ["x", "y"][..n]
        .iter()
        .map(|f| json!({"SPDXID": format!("SPDXRef-File-{f}")}))
        .collect()
}

#[test]
fn provenance_sbom_and_files_listed_nowhere_are_compared() {
    let a = Build::new();
    let p = pair(&a, &a);
    for (dir, digest, files) in [(&p.a, "aa", 1), (&p.b, "bb", 2)] {
        fs::write(
            dir.join("provenance.intoto.json"),
            json!({"_type": "https://in-toto.io/Statement/v1",
                   "subject": [{"name": "disk-img.tar.zst", "digest": {"sha256": digest}}]})
            .to_string(),
        )
        .unwrap();
        fs::write(
            dir.join("sbom.spdx.json"),
            json!({"spdxVersion": "SPDX-2.3", "files": sbom_files(files)}).to_string(),
        )
        .unwrap();
        fs::write(dir.join("notes.bin"), digest).unwrap();
    }
    fs::write(p.b.join("only-in-b.txt"), "x").unwrap();
    let r = diff(&p);
    assert_eq!(r.exit_code(), 1);
    assert_has(&r, "artifact provenance.intoto.json: differs (sha256:");
    assert_line(
        &r,
        "provenance.intoto.json: subject[name=disk-img.tar.zst].digest.sha256: aa vs bb",
    );
    assert_has(&r, "artifact sbom.spdx.json: differs (sha256:");
    assert_line(
        &r,
        "sbom.spdx.json: files[SPDXID=SPDXRef-File-y]: absent vs {\"SPDXID\":\"SPDXRef-File-y\"}",
    );
    assert_has(&r, "artifact notes.bin: differs (sha256:");
    assert_line(&r, "artifact only-in-b.txt: only in B");
}

#[test]
fn a_stale_build_manifest_does_not_hide_the_bytes() {
    let a = Build::new();
    let mut b = a.clone();
    b.disk[ROOT_START + 1024 + 0x30] ^= 1; // s_wtime
    let p = pair(&a, &b);
    // B's build manifest is A's: both say partition root is A's image.
    transplant(&p.a, &p.b, "build-manifest.json");
    write_sums(&p.b);
    let r = diff(&p);
    assert_eq!(r.exit_code(), 1);
    assert_line(&r, "partition root: ext4 superblock: s_wtime differs (first at partition offset 1072, disk.img offset 2098224)");
    assert_has(
        &r,
        "B's build-manifest.json: disk.partitions[name=root].image_sha256: says sha256:",
    );
    assert!(
        !r.notes.iter().any(|n| n.contains("already explain")),
        "{:?}",
        r.notes
    );
    // Without image sizes the manifests cannot be checked side by side: both are suspect.
    let mut a2 = a.clone();
    a2.partition_image_sizes = false;
    let mut b2 = b.clone();
    b2.partition_image_sizes = false;
    let p = pair(&a2, &b2);
    transplant(&p.a, &p.b, "build-manifest.json");
    write_sums(&p.b);
    let r = diff(&p);
    assert_has(
        &r,
        "build-manifest.json: disk.partitions[name=root].image_sha256: A and B both say sha256:",
    );
    assert_has(&r, "but partition root's bytes differ in disk.img (disk-img.tar.zst): one of the manifests does not describe its image");
}

#[test]
fn every_differing_file_and_structure_of_a_partition_is_reported() {
    let a = Build::new();
    let mut b = a.clone();
    // a file's content (and its manifest entry), plus three structures no file explains
    b.disk[ROOT_START + MOTD_DATA] = b'J';
    let new = icos_common::Digest::of(b"Jello from icos\n").to_string();
    b.entry_mut("/etc/motd").insert("sha256".into(), json!(new));
    b.disk[ROOT_START + 1024 + 0x30] ^= 1; // superblock s_wtime
    b.disk[ROOT_START + 2 * 4096 + 7] ^= 1; // block bitmap
    b.disk[ROOT_START + INODE_TABLE + 0x10] ^= 1; // inode 1's i_mtime
    b.disk[ROOT_START + 300 * 4096] = 1; // a free block
    let p = pair(&a, &b);
    let r = diff(&p);
    assert_has(&r, "partition root: file /etc/motd: content differs");
    for line in [
        "partition root: ext4 superblock: s_wtime differs (first at partition offset 1072, disk.img offset 2098224)",
        "partition root: ext4 block bitmap of group 0 differs (first at partition offset 8199, disk.img offset 2105351)",
        "partition root: ext4 inode 1 (a reserved inode): i_mtime differs (first at partition offset 16400, disk.img offset 2113552)",
        "partition root: ext4 data block 20 (/etc/motd: file data) differs (first at partition offset 81920, disk.img offset 2179072)",
        "partition root: ext4 data block 300 (free space: no inode maps it) differs (first at partition offset 1228800, disk.img offset 3325952)",
    ] {
        assert_line(&r, line);
    }
    assert_line(&r, "partition root: 5 bytes differ in 5 runs, the first at partition offset 1072 (disk.img offset 2098224)");
}

#[test]
fn symlinks_and_special_files_in_a_release_directory_are_errors() {
    let a = Build::new();
    let p = pair(&a, &a);
    fs::remove_file(p.b.join("rootfs.manifest.json")).unwrap();
    std::os::unix::fs::symlink(
        p.a.join("rootfs.manifest.json"),
        p.b.join("rootfs.manifest.json"),
    )
    .unwrap();
    let e = diff_dirs(&p.a, &p.b, &Options::default()).unwrap_err();
    assert!(matches!(e, DiffError::NotRegular { .. }), "{e}");
    assert!(
        e.to_string().ends_with("b/rootfs.manifest.json is a symbolic link, which is not followed: icos-diff compares the regular files of two release directories and follows no links (copy the release with `cp -L`)"),
        "{e}"
    );
    fs::remove_file(p.b.join("rootfs.manifest.json")).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(p.b.join("rootfs.manifest.json"))
        .status()
        .unwrap()
        .success());
    let e = diff_dirs(&p.a, &p.b, &Options::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("is a FIFO (named pipe), not a regular file"),
        "{e}"
    );
    // A subdirectory is not compared, and says so.
    fs::remove_file(p.b.join("rootfs.manifest.json")).unwrap();
    transplant(&p.a, &p.b, "rootfs.manifest.json");
    fs::create_dir(p.b.join("tests")).unwrap();
    let r = diff(&p);
    assert_eq!(r.exit_code(), 0, "{}", r.render_text());
    assert_line(&r, "note: tests/ in B: a subdirectory; only the files at the top of a release directory are compared");
}

#[test]
fn many_differing_structures_are_listed_up_to_a_cap_and_counted() {
    let a = Build::new();
    let mut b = a.clone();
    for ino in 0..128 {
        b.disk[ROOT_START + INODE_TABLE + ino * 256 + 0x10] ^= 1; // every inode's i_mtime
    }
    let p = pair(&a, &b);
    let r = diff(&p);
    let inode_lines = lines(&r)
        .iter()
        .filter(|l| l.starts_with("partition root: ext4 inode "))
        .count();
    assert_eq!(inode_lines, 100, "{}", r.render_text());
    assert_line(
        &r,
        "artifact disk-img.tar.zst: member disk.img: partition root: … and 28 more differing ext4 structures",
    );
    // the hundredth listed is inode 100 (in offset order); the 28 after it are counted
    let at = INODE_TABLE + 99 * 256 + 0x10;
    assert_line(
        &r,
        &format!(
            "partition root: ext4 inode 100: i_mtime differs (first at partition offset {at}, disk.img offset {})",
            ROOT_START + at
        ),
    );
}
