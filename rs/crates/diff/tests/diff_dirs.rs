//! End-to-end comparisons of synthetic release directories.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use icos_diff::{diff_dirs, DiffError, Options, Report};
use serde_json::{json, Value};

fn has(r: &Report, needle: &str) -> bool {
    lines(r).iter().any(|l| l.contains(needle))
}

#[track_caller]
fn assert_line(r: &Report, line: &str) {
    let all = lines(r);
    assert!(
        all.iter().any(|l| l == line),
        "missing line {line:?} in:\n{}",
        all.join("\n")
    );
}

#[test]
fn identical_dirs_exit_0_and_say_identical() {
    let b = Build::new();
    let p = pair(&b, &b);
    let r = diff(&p);
    assert_eq!(r.exit_code(), 0);
    assert!(r.identical && r.findings.is_empty(), "{}", r.render_text());
    assert!(
        r.render_text().starts_with("identical: "),
        "{}",
        r.render_text()
    );
    let j: Value = serde_json::from_str(&r.render_json()).unwrap();
    assert_eq!(j["identical"], true);
    assert_eq!(j["findings"], json!([]));
}

#[test]
fn changed_file_content_names_partition_path_and_content() {
    let a = Build::new();
    let mut b = a.clone();
    b.disk[ROOT_START + MOTD_DATA] = b'j';
    let new = icos_common::Digest::of(b"jello from icos\n").to_string();
    b.entry_mut("/etc/motd").insert("sha256".into(), json!(new));
    let p = pair(&a, &b);
    let r = diff(&p);
    assert_eq!(r.exit_code(), 1);
    let l = lines(&r);
    // top down: artifacts, then manifest fields, then the partition, then the file
    assert!(
        l[0].starts_with("artifact SHA256SUMS: differs (sha256:"),
        "{l:?}"
    );
    assert!(
        l[1].starts_with("artifact build-manifest.json: differs (sha256:"),
        "{l:?}"
    );
    assert!(
        l[2].starts_with("artifact disk-img.tar.zst: differs (sha256:"),
        "{l:?}"
    );
    let file_line = format!(
        "partition root: file /etc/motd: content differs ({}… vs {}…)",
        &motd_sha()[..19],
        &new[..19]
    );
    assert_line(&r, &file_line);
    let pos = |needle: &str| {
        l.iter()
            .position(|x| x.starts_with(needle))
            .unwrap_or_else(|| panic!("{needle} in {l:?}"))
    };
    assert!(pos("artifact ") < pos("build-manifest.json: disk.partitions[name=root].image_sha256"));
    assert!(pos("build-manifest.json: ") < pos("partition root: differs (image sha256:"));
    // build manifest fields: what went in before what came out (rootfs before disk)
    assert!(
        pos("build-manifest.json: rootfs.manifest_sha256")
            < pos("build-manifest.json: disk.partitions")
    );
    assert!(pos("partition root: differs") < pos("partition root: file /etc/motd"));
    // and the bytes: the file's data block, named by its path, after the file
    let block_line = format!(
        "partition root: ext4 data block 20 (/etc/motd: file data) differs (first at partition offset {MOTD_DATA}, disk.img offset {})",
        ROOT_START + MOTD_DATA
    );
    assert_line(&r, &block_line);
    assert!(pos("partition root: file /etc/motd") < pos(&block_line));
    assert_line(&r, &format!("artifact update-img.tar.zst: member root.img (partition root): ext4 data block 20 (/etc/motd: file data) differs (first at offset {MOTD_DATA})"));
    assert!(!has(&r, "manifest does not describe"), "{l:?}");
}

#[track_caller]
fn one_attribute(change: impl Fn(&mut Build), expect: &str) {
    let a = Build::new();
    let mut b = a.clone();
    change(&mut b);
    let p = pair(&a, &b);
    let r = diff(&p);
    assert_eq!(r.exit_code(), 1);
    assert_line(&r, expect);
}

#[test]
fn mode_mtime_owner_xattr_target_and_presence_are_named() {
    one_attribute(
        |b| {
            drop(
                b.entry_mut("/etc/motd")
                    .insert("mode".into(), json!("0600")),
            )
        },
        "partition root: file /etc/motd: mode differs (0644 vs 0600)",
    );
    one_attribute(
        |b| {
            drop(
                b.entry_mut("/etc/motd")
                    .insert("mtime".into(), json!(1600000000)),
            )
        },
        "partition root: file /etc/motd: mtime differs (1700000000 vs 1600000000)",
    );
    one_attribute(
        |b| drop(b.entry_mut("/etc/motd").insert("uid".into(), json!(1000))),
        "partition root: file /etc/motd: uid differs (0 vs 1000)",
    );
    one_attribute(
        |b| drop(b.entry_mut("/usr/bin/ping").insert("xattrs".into(), json!({"security.capability": "01", "user.new": "00"}))),
        "partition root: file /usr/bin/ping: xattr security.capability differs (0100000200200000000000000000000000000000 vs 01)",
    );
    one_attribute(|b| drop(b.entry_mut("/usr/bin/ping").remove("xattrs")), "partition root: file /usr/bin/ping: xattr security.capability differs (0100000200200000000000000000000000000000 vs absent)");
    one_attribute(
        |b| {
            drop(
                b.entry_mut("/bin/sh")
                    .insert("target".into(), json!("dash")),
            )
        },
        "partition root: file /bin/sh: target differs (busybox vs dash)",
    );
    one_attribute(
        |b| b.entries.retain(|e| e["path"] != "/bin/sh"),
        "partition root: file /bin/sh: only in A",
    );
}

#[test]
fn byte_change_no_file_explains_is_located_in_the_ext4_inode_table() {
    let a = Build::new();
    let mut b = a.clone();
    // inode 12's i_ctime: inode table at block 4, 256-byte inodes
    let inner = 4 * 4096 + 11 * 256 + 0x0c;
    b.disk[ROOT_START + inner] ^= 0x01;
    for shas in [true, false] {
        let (mut a, mut b) = (a.clone(), b.clone());
        a.partition_shas = shas;
        b.partition_shas = shas;
        let p = pair(&a, &b);
        let r = diff(&p);
        assert_eq!(r.exit_code(), 1);
        assert_line(
            &r,
            &format!(
                "partition root: 1 byte differs, the first at partition offset {inner} (disk.img offset {})",
                ROOT_START + inner
            ),
        );
        assert_line(&r, &format!(
            "partition root: ext4 inode 12 (/etc/motd): i_ctime differs (first at partition offset {inner}, disk.img offset {})",
            ROOT_START + inner
        ));
        assert_line(&r, &format!("artifact update-img.tar.zst: member root.img (partition root): ext4 inode 12 (/etc/motd): i_ctime differs (first at offset {inner})"));
        if shas {
            assert!(
                has(&r, "partition root: differs (image sha256:"),
                "{}",
                r.render_text()
            );
        } else {
            assert_line(&r, "partition root: differs (bytes of disk-img.tar.zst)");
        }
        assert!(!has(&r, "partition esp"), "{}", r.render_text());
        assert!(!has(&r, "partition root: file /"), "{}", r.render_text());
    }
}

#[test]
fn byte_change_in_a_hole_of_a_and_in_the_superblock_are_located() {
    let a = Build::new();
    let mut b = a.clone();
    // block 100 of the root filesystem is a hole in A (all zeros), data in B
    b.disk[ROOT_START + 100 * 4096 + 7] = 0x5a;
    // the ESP differs in its superblock-less boot sector; no manifest entries describe the ESP
    b.disk[ESP_START + 3] = b'M';
    let p = pair(&a, &b);
    let r = diff(&p);
    assert_line(
        &r,
        &format!(
            "partition root: ext4 data block 100 (free space: no inode maps it) differs (first at partition offset {}, disk.img offset {})",
            100 * 4096 + 7,
            ROOT_START + 100 * 4096 + 7
        ),
    );
    assert_line(
        &r,
        &format!(
            "partition esp: 1 byte differs, the first at partition offset 3 (disk.img offset {})",
            ESP_START + 3
        ),
    );
    // boot.img is found to be partition esp by its digest in the build manifest
    assert_line(
        &r,
        "artifact update-img.tar.zst: member boot.img (partition esp): 1 byte differs, the first at offset 3",
    );

    let mut c = a.clone();
    c.disk[ROOT_START + 1024 + 0x30] = 9; // s_wtime
    let p = pair(&a, &c);
    assert!(
        has(
            &diff(&p),
            "partition root: ext4 superblock: s_wtime differs (first at partition offset 1072"
        ),
        "{}",
        diff(&p).render_text()
    );
}

#[test]
fn gpt_difference_outside_partitions_is_named() {
    let a = Build::new();
    let mut b = a.clone();
    b.disk[BACKUP_HEADER + 56] ^= 0xff; // backup header's disk GUID, at the very end of the disk
    let p = pair(&a, &b);
    let r = diff(&p);
    assert_line(&r, &format!("artifact disk-img.tar.zst: member disk.img: backup GPT header: 1 byte differs, the first at disk.img offset {}", BACKUP_HEADER + 56));
    assert!(!has(&r, "partition "), "{}", r.render_text());
}

#[test]
fn build_manifest_fields_are_named_by_json_path() {
    let a = Build::new();
    let mut b = a.clone();
    b.seed = "seed-2".into();
    let p = pair(&a, &b);
    let r = diff(&p);
    assert_eq!(r.exit_code(), 1);
    assert_line(&r, "build-manifest.json: seed: seed-1 vs seed-2");
    assert!(has(&r, "artifact build-manifest.json: differs (sha256:"));
}

#[test]
fn missing_artifacts_are_named() {
    let b = Build::new();
    let p = pair(&b, &b);
    fs::remove_file(p.b.join("update-img.tar.zst")).unwrap();
    write_sums(&p.b);
    let r = diff(&p);
    assert_eq!(r.exit_code(), 1);
    assert_line(&r, "artifact update-img.tar.zst: only in A");
    // still listed in SHA256SUMS, but gone
    fs::remove_file(p.a.join("rootfs.manifest.json")).unwrap();
    let r = diff(&p);
    assert_line(
        &r,
        "artifact rootfs.manifest.json: listed in A's SHA256SUMS but missing from A",
    );
    assert_line(&r, "artifact rootfs.manifest.json: only in B");
}

#[test]
fn json_report_has_the_same_findings_in_the_same_order() {
    let a = Build::new();
    let mut b = a.clone();
    b.seed = "seed-2".into();
    b.entry_mut("/etc/motd")
        .insert("mode".into(), json!("0600"));
    b.disk[ROOT_START + 4096 + 0x1e] = 0x77; // bg_checksum of group 0
    let p = pair(&a, &b);
    let r = diff(&p);
    let j: Value = serde_json::from_str(&r.render_json()).unwrap();
    assert_eq!(j["schema"], "icos.diff-report/v2");
    assert_eq!(j["identical"], false);
    let findings = j["findings"].as_array().unwrap();
    let messages: Vec<&str> = findings
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    let text = r.render_text();
    let text_lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("note: ")).collect();
    assert_eq!(messages, text_lines);
    let seed = findings.iter().find(|f| f["path"] == "seed").unwrap();
    assert_eq!(seed["kind"], "manifest_field");
    assert_eq!(
        (seed["a"].clone(), seed["b"].clone()),
        (json!("seed-1"), json!("seed-2"))
    );
    let mode = findings.iter().find(|f| f["attribute"] == "mode").unwrap();
    assert_eq!(mode["kind"], "file_differs");
    assert_eq!(
        (
            mode["path"].clone(),
            mode["partition"].clone(),
            mode["a"].clone()
        ),
        (json!("/etc/motd"), json!("root"), json!("0644"))
    );
    // a differing file does not hide the bytes that differ in the same partition
    assert!(findings.iter().any(|f| f["kind"] == "structure_differs"
        && f["partition"] == "root"
        && f["structure"] == "group_descriptors"));

    // the byte-level finding, when no file explains it
    let mut c = a.clone();
    c.disk[ROOT_START + 4096 + 0x1e] = 0x77;
    let p = pair(&a, &c);
    let j: Value = serde_json::from_str(&diff(&p).render_json()).unwrap();
    let find = |kind: &str| {
        j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == kind && f["artifact"] == "disk-img.tar.zst")
            .unwrap()
            .clone()
    };
    let bytes = find("bytes_differ");
    assert_eq!(bytes["partition"], "root");
    assert_eq!(bytes["region_kind"], "partition");
    assert_eq!(bytes["region_offset"], 4096 + 0x1e);
    assert_eq!(bytes["member_offset"], ROOT_START + 4096 + 0x1e);
    assert_eq!(
        (bytes["bytes"].clone(), bytes["runs"].clone()),
        (json!(1), json!(1))
    );
    let s = find("structure_differs");
    assert_eq!(s["structure"], "group_descriptors");
    assert_eq!(s["fields"], json!(["bg_checksum"]));
    assert_eq!(s["group"], 0);
    assert_eq!(
        s["description"],
        "group descriptor of group 0: bg_checksum differs"
    );
}

#[test]
fn packaging_only_difference_is_a_note() {
    let a = Build::new();
    let mut b = a.clone();
    b.package_mtime += 1;
    let p = pair(&a, &b);
    let r = diff(&p);
    assert_eq!(r.exit_code(), 1);
    assert_line(&r, "note: disk-img.tar.zst: differs, but its members are byte-identical: the difference is in the packaging (tar headers or compression)");
    assert!(!has(&r, "partition"), "{}", r.render_text());
}

#[test]
fn errors_name_the_input() {
    let b = Build::new();
    let p = pair(&b, &b);
    let missing = p.a.with_file_name("nope");
    let e = diff_dirs(&missing, &p.b, &Options::default()).unwrap_err();
    assert!(matches!(e, DiffError::Read { .. }), "{e}");
    assert!(
        e.to_string().contains("nope") && e.to_string().contains("No such file"),
        "{e}"
    );
    let file = p.b.join("SHA256SUMS");
    let e = diff_dirs(&p.a, &file, &Options::default()).unwrap_err();
    assert!(matches!(e, DiffError::NotADirectory { .. }), "{e}");
    assert!(e.to_string().contains("SHA256SUMS: not a directory"), "{e}");
    fs::write(p.b.join("build-manifest.json"), "{not json").unwrap();
    let e = diff_dirs(&p.a, &p.b, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("b/build-manifest.json") && e.contains("not valid JSON"),
        "{e}"
    );
    fs::write(p.b.join("disk-img.tar.zst"), b"\x28\xb5\x2f\xfdgarbage").unwrap();
    fs::write(
        p.b.join("build-manifest.json"),
        fs::read(p.a.join("build-manifest.json")).unwrap(),
    )
    .unwrap();
    write_sums(&p.b);
    let e = diff_dirs(&p.a, &p.b, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("b/disk-img.tar.zst"), "{e}");
}

fn rootfs_tar(path: &Path, motd: &[u8]) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    append_plain(&mut b, "./etc/hostname", b"icos\n", 0);
    append_plain(&mut b, "./etc/motd", motd, 0);
    b.into_inner().unwrap();
}

#[test]
fn diffoscope_runs_on_the_first_differing_file_or_says_why_not() {
    let a = Build::new();
    let mut b = a.clone();
    b.entry_mut("/etc/motd").insert(
        "sha256".into(),
        json!(icos_common::Digest::of(b"other\n").to_string()),
    );
    let p = pair(&a, &b);
    let (ta, tb) = (p.a.with_file_name("a.tar"), p.a.with_file_name("b.tar"));
    rootfs_tar(&ta, b"hello from icos\n");
    rootfs_tar(&tb, b"other\n");
    // a stand-in diffoscope that shows its arguments and both files
    let fake = p.a.with_file_name("fake-diffoscope");
    fs::write(&fake, "#!/bin/sh\necho \"args: $1 $2 $(basename $(dirname $3))/$(basename $3) $(basename $(dirname $4))/$(basename $4)\"\ncat \"$3\" \"$4\"\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let mut opts = Options {
        diffoscope: true,
        rootfs_tar_a: Some(ta.clone()),
        rootfs_tar_b: Some(tb.clone()),
        diffoscope_program: Some(fake),
    };
    let r = diff_dirs(&p.a, &p.b, &opts).unwrap();
    let d = r.diffoscope.clone().expect("diffoscope ran");
    assert_eq!(d.path, "/etc/motd");
    assert_eq!(d.exit_code, Some(1));
    assert_eq!(
        d.output,
        "args: --text - a/motd b/motd\nhello from icos\nother\n"
    );
    assert!(r
        .render_text()
        .contains("diffoscope output for /etc/motd:\nargs: --text -"));

    opts.diffoscope_program = Some(p.a.with_file_name("no-such-diffoscope"));
    let r = diff_dirs(&p.a, &p.b, &opts).unwrap();
    assert!(r.diffoscope.is_none());
    assert!(
        r.notes.iter().any(|n| n.contains("is not installed")),
        "{:?}",
        r.notes
    );

    opts.rootfs_tar_b = None;
    let r = diff_dirs(&p.a, &p.b, &opts).unwrap();
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("--rootfs-tar-a and --rootfs-tar-b")),
        "{:?}",
        r.notes
    );
}
